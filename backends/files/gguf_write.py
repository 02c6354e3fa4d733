"""An RWKV-7 or RWKV-6 state dict (BlinkDL's names) written as a GGUF file that llama.cpp runs
(architecture "rwkv7" or "rwkv6", told from the weights' key names).

    write_gguf(weights, "model.gguf", dtype="f32" | "f16" | "bf16" | "q8_0", tokens=None, name=None,
               rescale_every=None)   # RWKV-6 only: None the World models' 6, 0 none (gguf_write_rwkv6.py)

The tensor names, shapes and metadata keys are those of llama.cpp's own converter (convert_hf_to_gguf.py,
classes Rwkv7Model and Rwkv6Model); models/gguf_file.py and models/gguf_rwkv6.py list the layouts and read
them back. Types, as that converter's --outtype: "f32" everything F32; "f16"/"bf16"/"q8_0" every matrix in
that type except the token-shift LoRA (time_mix_w1/w2), the fused token-shift mixes (time_mix_lerp_fused)
and, for RWKV-6, the decay LoRA (time_mix_decay_w1/w2) and time_mix_first, which stay F32 as do the vectors
and norms; a matrix whose rows are not a whole number of 32-value blocks falls back from Q8_0 to F16, as there.

The vocabulary (llama.cpp's "rwkv" tokenizer, tokens stored as bytes reprs):
- tokens=None and at least 65,530 rows: the RWKV World vocabulary (models/world_vocab_v20230424.txt),
  id 0 '<s>' (bos = eos = 0, eot 261 '\\n\\n', chat template "rwkv-world"), rows past it [PADi];
- tokens given (a str or bytes per id, at most one per row): those, the rows past them [PADi];
- tokens=None and fewer rows (a model with its own vocabulary file, or a test model): every row a
  placeholder [PADi] token of type UNUSED, so llama.cpp still loads the file (it wants one token per row)
  and runs it on token ids; models/gguf_file.py reports such a file's vocabulary as "none".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ai_writer.backends.errors import LoadError

LERP_ORDER = ("r", "w", "k", "v", "a", "g")  # the order of llama.cpp's views into time_mix_lerp_fused
KEEP_F32 = ("time_mix_w1.weight", "time_mix_w2.weight", "time_mix_lerp_fused.weight")
DTYPES = ("f32", "f16", "bf16", "q8_0")
CONTEXT_LENGTH = 1048576  # as llama.cpp's converter: RWKV has no context limit
WORLD_EOT = 261  # '\n\n', which llama.cpp's converter sets as end-of-turn


def write_gguf(weights: dict, path, dtype: str = "f32", tokens=None, name: str | None = None,
               rescale_every: int | None = None) -> Path:
    """Write `weights` (an RWKV-7 or RWKV-6 state dict) to `path`; LoadError (one line) for what cannot be
    written. rescale_every (RWKV-6 only; None: the World models' 6, 0: none) as gguf_write_rwkv6 says."""
    import gguf

    from ai_writer.backends.files import gguf_write_rwkv6 as rwkv6
    from ai_writer.models.checkpoint import NAMES, detect_architecture

    path = Path(path).expanduser()
    if dtype not in DTYPES:
        raise LoadError(f"{path}: GGUF type {dtype!r} is not written (choose one of {', '.join(DTYPES)})")
    architecture = detect_architecture(weights)
    if architecture not in ("rwkv7", "rwkv6"):
        raise LoadError(f"{path}: only RWKV-7 and RWKV-6 weights can be written as GGUF")
    if architecture == "rwkv6":
        rescale_every = rwkv6.RESCALE_EVERY if rescale_every is None else rescale_every
        config = rwkv6.rwkv6_config(weights, path, rescale_every)
        keep_f32 = rwkv6.KEEP_F32
        tensors = rwkv6.rwkv6_gguf_tensors(weights, config.n_layer, rescale_every)
    else:
        from ai_writer.models.rwkv7 import RWKV7Config

        config = RWKV7Config.from_state_dict(weights)
        keep_f32 = KEEP_F32
        tensors = gguf_tensors(weights, config.n_layer)
    token_list, token_types, world = _vocabulary(config.vocab_size, tokens, path)

    file_types = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                  "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(temporary), architecture)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name or path.stem)
    writer.add_size_label(gguf.size_label(sum(int(t.numel()) for t in weights.values()), 0, 0, 0))
    if architecture == "rwkv6":
        rwkv6.add_rwkv6_parameters(writer, config, rescale_every)
    else:
        _add_rwkv7_parameters(writer, weights, config)
    writer.add_file_type(file_types[dtype])
    writer.add_head_count(0)  # required by llama.cpp, unused
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_tokenizer_model("rwkv")
    writer.add_token_list(token_list)
    writer.add_token_types(token_types)
    if world:
        writer.add_bos_token_id(0)
        writer.add_eos_token_id(0)
        writer.add_eot_token_id(WORLD_EOT)
        writer.add_chat_template("rwkv-world")
    try:  # nothing is on disk before write_header_to_file
        for tensor_name, data in tensors:
            data, kind = _encode(tensor_name, data, dtype, keep_f32)
            writer.add_tensor(tensor_name, data, raw_dtype=kind)
    except KeyError as exc:
        raise LoadError(f"{path}: the {NAMES[architecture]} weights have no tensor {exc.args[0]}") from None
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(temporary, path)
    except OSError as exc:
        writer.close()
        temporary.unlink(missing_ok=True)
        raise LoadError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    return path


def _add_rwkv7_parameters(writer, weights: dict, config) -> None:
    """The converter's set_gguf_parameters for RWKV-7, up to the file type."""
    value_rank = config.d_value if config.n_layer > 1 else config.d_iclr  # layer 0's dummies have iclr's rank
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_layer_norm_eps(1e-5)  # torch's LayerNorm default, which BlinkDL's model uses
    writer.add_wkv_head_size(config.head_size)
    writer.add_decay_lora_rank(config.d_decay)
    writer.add_iclr_lora_rank(config.d_iclr)
    writer.add_value_residual_mix_lora_rank(value_rank)
    writer.add_gate_lora_rank(config.d_gate)
    writer.add_feed_forward_length(weights["blocks.0.ffn.key.weight"].shape[0])


def gguf_tensors(weights: dict, n_layer: int):
    """(GGUF name, float32 numpy array) in llama.cpp's RWKV-7 layout, in the order its converter writes them."""

    def f(t):
        return t.detach().to(torch.float32).contiguous().numpy()

    yield "token_embd.weight", f(weights["emb.weight"])
    yield "token_embd_norm.weight", f(weights["blocks.0.ln0.weight"])
    yield "token_embd_norm.bias", f(weights["blocks.0.ln0.bias"])
    yield "output_norm.weight", f(weights["ln_out.weight"])
    yield "output_norm.bias", f(weights["ln_out.bias"])
    yield "output.weight", f(weights["head.weight"])
    for i in range(n_layer):
        b, g = f"blocks.{i}.", f"blk.{i}."
        a = b + "att."
        for part in ("weight", "bias"):
            yield f"{g}attn_norm.{part}", f(weights[f"{b}ln1.{part}"])
        for part in ("weight", "bias"):
            yield f"{g}attn_norm_2.{part}", f(weights[f"{b}ln2.{part}"])
        yield g + "time_mix_lerp_fused.weight", f(torch.stack([weights[f"{a}x_{x}"].reshape(1, 1, -1) for x in LERP_ORDER]))
        for p in ("w", "a", "v", "g"):
            source = "a" if p == "v" and i == 0 else p  # layer 0 mixes no value residual: copies, as llama.cpp's
            if p != "g":
                yield f"{g}time_mix_{p}0.weight", f(weights[f"{a}{source}0"].reshape(-1))
            yield f"{g}time_mix_{p}1.weight", f(weights[f"{a}{source}1"].t())
            yield f"{g}time_mix_{p}2.weight", f(weights[f"{a}{source}2"].t())
        yield g + "time_mix_k_k.weight", f(weights[a + "k_k"].reshape(-1))
        yield g + "time_mix_k_a.weight", f(weights[a + "k_a"].reshape(-1))
        yield g + "time_mix_r_k.weight", f(weights[a + "r_k"].reshape(-1))
        for m in ("receptance", "key", "value", "output"):
            yield f"{g}time_mix_{m}.weight", f(weights[f"{a}{m}.weight"])
        yield g + "time_mix_ln.weight", f(weights[a + "ln_x.weight"])
        yield g + "time_mix_ln.bias", f(weights[a + "ln_x.bias"])
        yield g + "channel_mix_lerp_k.weight", f(weights[b + "ffn.x_k"].reshape(-1))
        yield g + "channel_mix_key.weight", f(weights[b + "ffn.key.weight"])
        yield g + "channel_mix_value.weight", f(weights[b + "ffn.value.weight"])


def _encode(name: str, data: np.ndarray, dtype: str, keep_f32=KEEP_F32):
    """(array to store, its GGML type) for one tensor under the file's type."""
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import QuantError, quantize

    if dtype == "f32" or data.ndim < 2 or name.endswith(keep_f32):
        return data, Q.F32
    kind = {"f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0}[dtype]
    try:
        return quantize(data, kind), kind
    except QuantError:  # rows not a whole number of blocks
        return quantize(data, Q.F16), Q.F16


def _vocabulary(rows: int, tokens, path: Path) -> tuple[list[bytes], list[int], bool]:
    """(escaped token texts, token types, whether it is the World vocabulary) with one token per row."""
    from gguf import TokenType

    from ai_writer.models.world_tokenizer import WORLD_ENTRIES, default_vocab_path, read_world_vocab

    world = tokens is None and rows > WORLD_ENTRIES
    if world:
        vocab_path = default_vocab_path()
        if vocab_path is None:
            raise LoadError(f"{path}: the World vocabulary (world_vocab_v20230424.txt) is not installed")
        by_id = read_world_vocab(vocab_path)
        given = [b"<s>"] + [by_id[i] for i in range(1, WORLD_ENTRIES + 1)]
        types = [TokenType.CONTROL] + [TokenType.NORMAL] * WORLD_ENTRIES
    elif tokens is not None:
        given = [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in tokens]
        types = [TokenType.NORMAL] * len(given)
        if len(given) > rows:
            raise LoadError(f"{path}: {len(given)} tokens for a model of {rows} token rows")
    else:
        given, types = [], []
    texts = [_escape(t) for t in given]
    texts += [f"[PAD{i}]".encode() for i in range(len(given), rows)]
    types += [TokenType.UNUSED] * (rows - len(given))
    return texts, [int(t) for t in types], world


def _escape(token: bytes) -> bytes:
    """The text llama.cpp's RWKV tokenizer unescapes back to `token`: its bytes repr without b''."""
    return repr(token)[2:-1].encode("utf-8")
