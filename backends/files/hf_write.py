"""An RWKV-7 state dict (BlinkDL's names) written as a Hugging Face folder in fla's layout.

    write_hf_folder(weights, folder, shard_bytes=None, vocab=None, dtype=None)

The folder holds config.json (fla's RWKV7Config: model_type "rwkv7", RWKV7ForCausalLM) and
model.safetensors, or, when the tensors pass shard_bytes, shards model-0000N-of-0000M.safetensors with
model.safetensors.index.json, as transformers' save_pretrained writes them. fla (`import fla` then
AutoModelForCausalLM.from_pretrained) and llama.cpp's convert_hf_to_gguf.py read it; the names are
models/hf_layout.py's table. A vocabulary is copied in: `vocab` if given (under its own name), else for a
model of at least 65,530 rows the World vocabulary as rwkv_vocab_v20230424.txt, the file llama.cpp's
converter and fla-hub's tokenizer look for.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ai_writer.backends.errors import LoadError

WORLD_VOCAB_NAME = "rwkv_vocab_v20230424.txt"
DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def write_hf_folder(weights: dict, folder, shard_bytes: int | None = None, vocab=None, dtype=None) -> Path:
    """Write `weights` into `folder` (made if missing); LoadError (one line) for what cannot be written."""
    from safetensors.torch import save_file

    from ai_writer.models.checkpoint import detect_architecture
    from ai_writer.models.hf_layout import INDEX, WEIGHTS, to_fla
    from ai_writer.models.rwkv7 import RWKV7Config
    from ai_writer.models.world_tokenizer import WORLD_ENTRIES, default_vocab_path

    folder = Path(folder).expanduser()
    if detect_architecture(weights) != "rwkv7":
        raise LoadError(f"{folder}: only RWKV-7 weights can be written in fla's layout")
    config = RWKV7Config.from_state_dict(weights)
    tensors = _unshared(to_fla({k: (v.to(dtype) if dtype else v) for k, v in weights.items()}))
    stored = next(iter(tensors.values())).dtype
    vocab = Path(vocab).expanduser() if vocab else (default_vocab_path() if config.vocab_size > WORLD_ENTRIES else None)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shards = _shards(tensors, shard_bytes)
        if len(shards) == 1:
            save_file(shards[0], str(folder / WEIGHTS), metadata={"format": "pt"})
        else:
            weight_map = {}
            for i, shard in enumerate(shards, start=1):
                name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
                save_file(shard, str(folder / name), metadata={"format": "pt"})
                weight_map.update(dict.fromkeys(shard, name))
            total = sum(t.numel() * t.element_size() for t in tensors.values())
            index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
            (folder / INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        fla_config = _config(config, weights, DTYPE_NAMES.get(stored, str(stored).removeprefix("torch.")))
        (folder / "config.json").write_text(json.dumps(fla_config, indent=2) + "\n", encoding="utf-8")
        if vocab is not None:
            target = folder / (WORLD_VOCAB_NAME if vocab == default_vocab_path() else vocab.name)
            if target.resolve() != vocab.resolve():
                shutil.copyfile(vocab, target)
    except OSError as exc:
        raise LoadError(f"{folder}: cannot write it ({exc.strerror or exc})") from None
    return folder


def _unshared(tensors: dict) -> dict:
    """Each tensor with its own memory (safetensors refuses two names over one storage, as a tied head is)."""
    seen = set()
    out = {}
    for name, tensor in tensors.items():
        pointer = tensor.untyped_storage().data_ptr()
        out[name] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return out


def _shards(tensors: dict, shard_bytes: int | None) -> list[dict]:
    """The tensors in order, cut into groups of at most shard_bytes (a larger tensor alone in its own)."""
    if not shard_bytes:
        return [tensors]
    shards, size = [{}], 0
    for name, tensor in tensors.items():
        n = tensor.numel() * tensor.element_size()
        if shards[-1] and size + n > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += n
    return shards


def _config(config, weights: dict, dtype_name: str) -> dict:
    """fla's RWKV7Config fields for this model (the values fla's own converter sets, the rest its defaults)."""
    C, L = config.n_embd, config.n_layer
    ffn = int(weights["blocks.0.ffn.key.weight"].shape[0])
    return {
        "architectures": ["RWKV7ForCausalLM"],
        "model_type": "rwkv7",
        "attn_mode": "chunk",
        "hidden_size": C,
        "hidden_ratio": ffn / C,
        "intermediate_size": ffn,
        "num_hidden_layers": L,
        "head_dim": config.head_size,
        "num_heads": config.n_head,
        "decay_low_rank_dim": config.d_decay,
        "gate_low_rank_dim": config.d_gate,
        "a_low_rank_dim": config.d_iclr,
        "v_low_rank_dim": config.d_value,
        "hidden_act": "sqrelu",
        "max_position_embeddings": 2048,
        "norm_first": True,
        "norm_bias": True,
        "norm_eps": 1e-5,  # fla's GroupNorm takes head_dim * norm_eps = BlinkDL's 64e-5
        "attn": None,
        "use_cache": True,
        "pad_token_id": None,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "fuse_norm": True,
        "fuse_cross_entropy": True,
        "fuse_linear_cross_entropy": False,
        "use_l2warp": True,
        "vocab_size": config.vocab_size,
        "value_dim": [C] * L,
        "torch_dtype": dtype_name,
    }
