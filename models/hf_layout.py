"""RWKV-7 in the Hugging Face / fla layout (flash-linear-attention's RWKV7ForCausalLM), read as BlinkDL's state dict.

    is_hf_folder(path)          # a folder (or its config.json / model*.safetensors) whose config says rwkv7
    weights = read_hf_weights(folder)   # BlinkDL names and shapes; shards through model.safetensors.index.json
    summary = hf_summary(folder)        # n_layer, n_embd, vocab_rows, the tokenizer files there

fla's names (fla/models/rwkv7, fla/layers/rwkv7.py; its utils/convert_from_rwkv7.py goes the other way):

    model.embeddings, model.norm, lm_head                emb, ln_out, head
    model.layers.i.pre_norm / attn_norm / ffn_norm       blocks.i.ln0 (layer 0) / ln1 / ln2
    attn.x_r .. x_g (1, 1, C); k_k, k_a (C,); r_k        att.x_r .. x_g; k_k, k_a (1, 1, C); r_k
    attn.{w,a,v,g}_lora.lora.0.weight (D, C)             att.{w,a,v,g}1 (C, D): transposed
    attn.{w,a,v,g}_lora.lora.2.weight (C, D)             att.{w,a,v,g}2 (D, C): transposed
    attn.{w,a,v}_lora.lora.2.bias (C,)                   att.{w,a,v}0 (1, 1, C)
    attn.r_proj, k_proj, v_proj, o_proj, g_norm          att.receptance, key, value, output, ln_x
    ffn.x_k (C,), ffn.key, ffn.value                     ffn.x_k (1, 1, C), ffn.key, ffn.value

fla's w = -e^-0.5 sigmoid(w0 + ...) is BlinkDL's exp(w) with the same w0, so every value is copied as it
is. Layer 0 has no v_lora there: the state dict gets no blocks.0.att.v0/v1/v2 (models/checkpoint.py puts
zeros, which layer 0 never reads). An older fla stored the six token-shift mixes as one attn.x_x (6, C).
Tensors keep the file's dtype (fla models are often bfloat16).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ai_writer.models.checkpoint import ModelFileError

MODEL_TYPE = "rwkv7"
ARCHITECTURES = ("RWKV7ForCausalLM", "Rwkv7ForCausalLM")
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
LERP_ORDER = ("r", "w", "k", "v", "a", "g")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "rwkv_vocab_v20230424.txt")

# fla name inside a layer -> (BlinkDL name inside the block, how the tensor changes)
#   "same": as it is; "vec": to (1, 1, C); "t": transposed
LAYER_NAMES = {
    "pre_norm.weight": ("ln0.weight", "same"), "pre_norm.bias": ("ln0.bias", "same"),
    "attn_norm.weight": ("ln1.weight", "same"), "attn_norm.bias": ("ln1.bias", "same"),
    "ffn_norm.weight": ("ln2.weight", "same"), "ffn_norm.bias": ("ln2.bias", "same"),
    **{f"attn.x_{x}": (f"att.x_{x}", "vec") for x in LERP_ORDER},
    "attn.k_k": ("att.k_k", "vec"), "attn.k_a": ("att.k_a", "vec"), "attn.r_k": ("att.r_k", "same"),
    **{f"attn.{p}_lora.lora.0.weight": (f"att.{p}1", "t") for p in "wavg"},
    **{f"attn.{p}_lora.lora.2.weight": (f"att.{p}2", "t") for p in "wavg"},
    **{f"attn.{p}_lora.lora.2.bias": (f"att.{p}0", "vec") for p in "wav"},
    "attn.r_proj.weight": ("att.receptance.weight", "same"), "attn.k_proj.weight": ("att.key.weight", "same"),
    "attn.v_proj.weight": ("att.value.weight", "same"), "attn.o_proj.weight": ("att.output.weight", "same"),
    "attn.g_norm.weight": ("att.ln_x.weight", "same"), "attn.g_norm.bias": ("att.ln_x.bias", "same"),
    "ffn.x_k": ("ffn.x_k", "vec"), "ffn.key.weight": ("ffn.key.weight", "same"),
    "ffn.value.weight": ("ffn.value.weight", "same"),
}
TOP_NAMES = {"model.embeddings.weight": "emb.weight", "model.norm.weight": "ln_out.weight",
             "model.norm.bias": "ln_out.bias", "lm_head.weight": "head.weight"}
LAYER_KEY = re.compile(r"model\.layers\.(\d+)\.(.+)")


@dataclass(frozen=True)
class HFSummary:
    folder: Path
    n_layer: int
    n_embd: int
    vocab_rows: int | None  # rows of model.embeddings.weight (config.json's vocab_size if the header lacks it)
    tokenizer_files: list[Path]  # the folder's tokenizer files (a World vocab .txt, tokenizer.json, ...)
    weight_files: list[Path]  # model.safetensors, or the shards the index names


def folder_of(path: str | Path) -> Path:
    """The folder that `path` is, or that its config.json / model*.safetensors / index lies in."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def is_hf_folder(path: str | Path, any_model_type: bool = False) -> bool:
    """Whether `path` is (or lies in) a folder with a config.json of an RWKV-7 model; with any_model_type,
    of any Hugging Face model (read_hf_weights then names the model type it cannot read)."""
    path = Path(path)
    if not path.is_dir() and not (path.name == "config.json" or (path.name.startswith("model") and (
            path.suffix == ".safetensors" or path.name == INDEX))):
        return False
    try:
        config = json.loads((folder_of(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict):
        return False
    return any_model_type and ("model_type" in config or "architectures" in config) or _is_rwkv7(config)


def _is_rwkv7(config: dict) -> bool:
    architectures = config.get("architectures") or []
    return config.get("model_type") == MODEL_TYPE or any(a in ARCHITECTURES for a in architectures if isinstance(a, str))


def read_config(folder: Path) -> dict:
    """config.json of an RWKV-7 folder; ModelFileError (one line) for a missing, broken or other model's one."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: not a JSON object")
    if not _is_rwkv7(config):
        kind = config.get("model_type") or ", ".join(map(str, config.get("architectures") or [])) or "none given"
        raise ModelFileError(
            f"{folder}: a Hugging Face folder of model type {kind!r}, not RWKV-7 ({MODEL_TYPE!r}); "
            "only RWKV-7 models in fla's layout can be opened"
        )
    if config.get("attn"):
        raise ModelFileError(f"{path}: a hybrid model (some layers softmax attention, config 'attn'): not supported")
    for key in ("hidden_size", "num_hidden_layers"):
        if not isinstance(config.get(key), int):
            raise ModelFileError(f"{path}: no {key}")
    return config


def weight_files(folder: Path) -> list[Path]:
    """model.safetensors, or the shards model.safetensors.index.json lists; ModelFileError if missing."""
    single, index = folder / WEIGHTS, folder / INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelFileError(f"{index}: not a readable shard index ({type(exc).__name__}: {exc})") from None
        files = [folder / name for name in names]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise ModelFileError(f"{missing[0]}: a shard that {INDEX} lists is missing")
        return files
    if single.is_file():
        return [single]
    raise ModelFileError(
        f"{folder}: an RWKV-7 folder with no {WEIGHTS} (nor {INDEX}); only safetensors weights are read"
    )


def hf_summary(folder: str | Path) -> HFSummary:
    """What an fla RWKV-7 folder holds, from config.json and the safetensors headers (no tensor read)."""
    from safetensors import safe_open

    folder = folder_of(folder)
    config = read_config(folder)
    files = weight_files(folder)
    rows = None
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as f:
                if "model.embeddings.weight" in f.keys():
                    rows = int(f.get_slice("model.embeddings.weight").get_shape()[0])
        except Exception as exc:  # safetensors raises its own error types for a damaged header
            raise ModelFileError(f"{file}: not a readable safetensors file ({_first_line(exc)})") from None
    if rows is None and isinstance(config.get("vocab_size"), int):
        rows = config["vocab_size"]
    tokenizer_files = [folder / n for n in TOKENIZER_FILES if (folder / n).is_file()]
    tokenizer_files += sorted(p for p in folder.glob("*vocab*.txt") if p not in tokenizer_files)
    return HFSummary(folder, config["num_hidden_layers"], config["hidden_size"], rows, tokenizer_files, files)


def read_hf_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """The BlinkDL RWKV-7 state dict of an fla folder (one model.safetensors or its shards)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = folder_of(folder)
    config = read_config(folder)
    raw: dict[str, torch.Tensor] = {}
    for file in weight_files(folder):
        try:
            raw.update(load_file(str(file)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{file}: not a readable safetensors file ({_first_line(exc)})") from None
    if "lm_head.weight" not in raw and config.get("tie_word_embeddings") and "model.embeddings.weight" in raw:
        raw["lm_head.weight"] = raw["model.embeddings.weight"]
    return to_blinkdl(raw, folder, config.get("head_dim") or 64)


def to_blinkdl(raw: dict[str, torch.Tensor], where, head_size: int = 64) -> dict[str, torch.Tensor]:
    """fla names -> BlinkDL names (see the table above); ModelFileError naming a tensor that does not fit."""
    weights = {}
    for name, tensor in raw.items():
        try:
            if name in TOP_NAMES:
                weights[TOP_NAMES[name]] = tensor
                continue
            match = LAYER_KEY.fullmatch(name)
            if match and match.group(2) == "attn.x_x":  # the older fused form, (6, C) in LERP_ORDER
                parts = tensor.reshape(len(LERP_ORDER), -1)
                for x, part in zip(LERP_ORDER, parts):
                    weights[f"blocks.{match.group(1)}.att.x_{x}"] = part.reshape(1, 1, -1).clone()
                continue
            if not match or match.group(2) not in LAYER_NAMES:
                raise ModelFileError(f"{where}: tensor {name} is not part of fla's RWKV-7 layout")
            target, change = LAYER_NAMES[match.group(2)]
            if change == "vec":
                tensor = tensor.reshape(1, 1, -1)
            elif change == "t":
                tensor = tensor.t().contiguous()
            elif target == "att.r_k":
                tensor = tensor.reshape(-1, head_size)
            weights[f"blocks.{match.group(1)}.{target}"] = tensor
        except RuntimeError as exc:
            raise ModelFileError(f"{where}: tensor {name} does not fit RWKV-7's shapes ({_first_line(exc)})") from None
    for needed in ("emb.weight", "head.weight", "ln_out.weight", "blocks.0.ln0.weight"):
        if needed not in weights:
            fla = {v: k for k, v in TOP_NAMES.items()}.get(needed, "model.layers.0.pre_norm.weight")
            raise ModelFileError(f"{where}: no tensor {fla} (an RWKV-7 model in fla's layout has one)")
    return weights


def to_fla(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BlinkDL names -> fla's, the inverse of to_blinkdl (layer 0's unused v0/v1/v2 are left out, as fla has none)."""
    top = {v: k for k, v in TOP_NAMES.items()}
    layer = {target: (name, change) for name, (target, change) in LAYER_NAMES.items()}
    out = {}
    for name, tensor in weights.items():
        if name in top:
            out[top[name]] = tensor.contiguous()
            continue
        match = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
        if not match or match.group(2) not in layer:
            raise ValueError(f"{name} is not an RWKV-7 weight")
        index, inner = match.groups()
        if index == "0" and inner in ("att.v0", "att.v1", "att.v2"):
            continue
        fla_name, change = layer[inner]
        if change == "t":
            tensor = tensor.t()
        elif change == "vec" and not fla_name.startswith("attn.x_"):  # fla keeps x_r .. x_g as (1, 1, C)
            tensor = tensor.reshape(-1)
        out[f"model.layers.{index}.{fla_name}"] = tensor.contiguous()
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
