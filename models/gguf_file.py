"""RWKV-7 and RWKV-6 GGUF files (llama.cpp's architectures "rwkv7", "rwkv6") read into BlinkDL's state dict.

    weights = read_gguf_weights(path)   # BlinkDL names and shapes, as models/rwkv7.py (rwkv6.py) loads them
    summary = gguf_summary(path)        # architecture, sizes, tensor types, vocabulary; no tensor read

llama.cpp's RWKV-7 layout (its converter, conversion/rwkv.py, and the loader, src/models/rwkv7.cpp), in
numpy shapes (GGUF lists dimensions the other way round; RWKV-6's is in models/gguf_rwkv6.py):

    token_embd (V, C), token_embd_norm, output_norm, output   emb, blocks.0.ln0, ln_out, head
    blk.i.attn_norm, attn_norm_2                               blocks.i.ln1, ln2
    blk.i.time_mix_lerp_fused (6, 1, 1, C)                     att.x_r, x_w, x_k, x_v, x_a, x_g, in that order
    blk.i.time_mix_{w,a,v}0 (C,)                               att.{w,a,v}0 (1, 1, C)
    blk.i.time_mix_{w,a,v,g}1 (D, C), *2 (C, D)                att.{w,a,v,g}1 (C, D), *2 (D, C): transposed
    blk.i.time_mix_k_k, k_a (C,), r_k (C,)                     att.k_k, k_a (1, 1, C), r_k (H, head size)
    blk.i.time_mix_{receptance,key,value,output}               att.{...}.weight as they are
    blk.i.time_mix_ln                                          att.ln_x (GroupNorm; llama.cpp fixes eps 64e-5)
    blk.i.channel_mix_lerp_k (C,), channel_mix_key, _value     ffn.x_k (1, 1, C), ffn.key, ffn.value

Layer 0 has no value-residual mix; llama.cpp's converter fills its time_mix_v0/v1/v2 with copies of
a0/a1/a2 (the loader wants them and never reads them). They are dropped here, so the state dict has no
blocks.0.att.v0/v1/v2: models/checkpoint.py puts zeros there (unused by the model, as in BlinkDL's).

Tensor types: F32 and F16 and BF16 come back in their own dtype (float32, float16, bfloat16: exact, and
half the memory of converting); Q8_0 is dequantised (gguf.quants) to float32. Any other type is one
ModelFileError naming the file, the tensor and the type.

The vocabulary: tokenizer.ggml.model "rwkv" is llama.cpp's RWKV tokenizer (greedy longest byte match),
whose tokens are stored as Python bytes reprs without the b'' ("\\xe4\\xb8" for two bytes). A file holds
the RWKV World vocabulary when its tokens 1..65529 are those of rwkv_vocab_v20230424.txt (id 0 is '<s>',
the rest [PADi]): GGUFSummary.vocabulary == "world".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ai_writer.models.checkpoint import ModelFileError

ARCH = "rwkv7"
ARCHITECTURES = {"rwkv7": "RWKV-7", "rwkv6": "RWKV-6"}  # general.architecture -> the name said in messages
LERP_ORDER = ("r", "w", "k", "v", "a", "g")  # the six views of time_mix_lerp_fused, in llama.cpp's order
READABLE_TYPES = ("F32", "F16", "BF16", "Q8_0")
HEX_DIGITS = b"0123456789abcdefABCDEF"
PADDING_TOKEN = re.compile(rb"\[PAD\d+\]")  # what llama.cpp's converter puts in rows the vocabulary lacks


@dataclass(frozen=True)
class GGUFSummary:
    path: Path
    architecture: str  # general.architecture: "rwkv7", "rwkv6", or whatever other model the file holds
    n_layer: int | None  # {arch}.block_count
    n_embd: int | None  # {arch}.embedding_length
    vocab_rows: int | None  # rows of token_embd.weight
    tensor_types: dict[str, str]  # GGUF tensor name -> type name ("F32", "Q8_0", ...)
    tokenizer_model: str | None  # tokenizer.ggml.model ("rwkv" for llama.cpp's RWKV tokenizer)
    tokens: list[str | bytes] | None  # by id; bytes (unescaped) for "rwkv", the stored text otherwise
    vocabulary: str  # "world": the RWKV World vocabulary; "own": another token list; "none": none, or only [PADi]


def gguf_summary(path: str | Path) -> GGUFSummary:
    """What a GGUF file holds, from its header (the tensors stay on disk); ModelFileError if unreadable."""
    path = Path(path)
    header = _header(path)
    fields = header.fields
    architecture = fields.get("general.architecture")
    architecture = architecture if isinstance(architecture, str) else "unknown"
    n_layer, n_embd = fields.get(f"{architecture}.block_count"), fields.get(f"{architecture}.embedding_length")
    embedding = next((t for t in header.tensors if t.name == "token_embd.weight"), None)
    tokenizer_model = fields.get("tokenizer.ggml.model")
    tokenizer_model = tokenizer_model if isinstance(tokenizer_model, str) else None
    tokens = _tokens(fields.get("tokenizer.ggml.tokens"), tokenizer_model)
    return GGUFSummary(
        path=path,
        architecture=architecture,
        n_layer=n_layer if isinstance(n_layer, int) else None,
        n_embd=n_embd if isinstance(n_embd, int) else None,
        vocab_rows=embedding.shape[0] if embedding is not None and len(embedding.shape) == 2 else None,
        tensor_types={t.name: _type_name(t.type_id) for t in header.tensors},
        tokenizer_model=tokenizer_model,
        tokens=tokens,
        vocabulary=_vocabulary(tokenizer_model, tokens),
    )


def read_gguf_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The RWKV-7 or RWKV-6 state dict (BlinkDL's names and shapes) stored in a llama.cpp GGUF file."""
    path = Path(path)
    header = _header(path)
    architecture = header.fields.get("general.architecture")
    if architecture not in ARCHITECTURES:
        raise ModelFileError(
            f"{path}: a GGUF file of architecture {architecture!r}, not RWKV-7 ({ARCH!r}) or RWKV-6 ('rwkv6'); "
            "only RWKV-7 and RWKV-6 GGUF files can be opened"
        )
    tensors = {t.name: t for t in header.tensors}
    try:
        with open(path, "rb") as file:
            return _from_llamacpp_layout(architecture, header.fields, tensors, file, path)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _header(path: Path):
    from ai_writer.models.gguf_header import read_header

    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        return read_header(path)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ModelFileError(f"{path}: not a readable GGUF file ({_first_line(exc)})") from None


def _type_name(type_id: int) -> str:
    from gguf import GGMLQuantizationType

    return GGMLQuantizationType(type_id).name  # read_header refuses ids it does not know


def _tokens(raw, tokenizer_model) -> list[str | bytes] | None:
    if not isinstance(raw, list) or not all(isinstance(t, bytes) for t in raw):
        return None
    if tokenizer_model == "rwkv":
        return [unescape_rwkv_token(token) for token in raw]
    return [token.decode("utf-8", errors="replace") for token in raw]


def unescape_rwkv_token(text: bytes) -> bytes:
    """A token as llama.cpp's RWKV tokenizer reads it: \\t \\n \\r \\xHH and \\<char> unescaped."""
    if b"\\" not in text:
        return text
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != 0x5C or i + 1 == len(text):  # not a backslash (or a lone one at the end)
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        digits = text[i + 2 : i + 4]
        if nxt == 0x78 and len(digits) == 2 and all(d in HEX_DIGITS for d in digits):  # \xHH
            out.append(int(digits, 16))
            i += 4
            continue
        out.append({0x74: 0x09, 0x6E: 0x0A, 0x72: 0x0D}.get(nxt, nxt))  # \t \n \r, else the char itself
        i += 2
    return bytes(out)


def _vocabulary(tokenizer_model, tokens) -> str:
    if not tokens:
        return "none"
    if tokenizer_model != "rwkv":
        return "own"
    if all(PADDING_TOKEN.fullmatch(t) for t in tokens):  # write_gguf's rows for a model with no vocabulary
        return "none"
    return "world" if _is_world(tokens) else "own"


def _is_world(tokens: list) -> bool:
    from ai_writer.models.world_tokenizer import WORLD_ENTRIES, default_vocab_path, read_world_vocab

    if len(tokens) <= WORLD_ENTRIES:
        return False
    vocab_path = default_vocab_path()
    if vocab_path is None:
        return False
    world = read_world_vocab(vocab_path)
    return all(tokens[i] == world.get(i) for i in range(1, WORLD_ENTRIES + 1))


def _tensor(tensors: dict, name: str, file, path: Path, model: str) -> torch.Tensor:
    """One GGUF tensor as torch, in its numpy shape; removed from `tensors` (what is left is unexpected)."""
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import dequantize, quant_shape_to_byte_shape

    from ai_writer.models.gguf_header import read_tensor_bytes

    entry = tensors.pop(name, None)
    if entry is None:
        raise ModelFileError(f"{path}: no tensor {name} (an {model} GGUF file has one; the file is incomplete)")
    kind = Q(entry.type_id)
    if kind.name not in READABLE_TYPES:
        raise ModelFileError(
            f"{path}: tensor {name} is of type {kind.name}, which cannot be read here "
            f"(types read: {', '.join(READABLE_TYPES)}); use an F16 or Q8_0 file of this model"
        )
    try:
        raw = read_tensor_bytes(file, entry)
    except ValueError as exc:
        raise ModelFileError(f"{path}: {_first_line(exc)}") from None
    if kind == Q.F32:
        return torch.from_numpy(raw.view("<f4").reshape(entry.shape))
    if kind == Q.F16:
        return torch.from_numpy(raw.view("<f2").reshape(entry.shape))
    if kind == Q.BF16:
        return torch.from_numpy(raw.view("<i2").reshape(entry.shape)).view(torch.bfloat16)
    blocks = raw.reshape(quant_shape_to_byte_shape(entry.shape, kind))
    return torch.from_numpy(dequantize(blocks, kind).astype(np.float32, copy=False).reshape(entry.shape))


def _from_llamacpp_layout(architecture: str, fields: dict, tensors: dict, file, path: Path) -> dict[str, torch.Tensor]:
    model = ARCHITECTURES[architecture]
    blocks = {int(m.group(1)) for name in tensors if (m := re.match(r"blk\.(\d+)\.", name))}
    if not blocks:
        raise ModelFileError(f"{path}: an {model} GGUF file with no layers (no blk.N tensors)")
    n_layer = max(blocks) + 1
    current = ""

    def take(name):
        nonlocal current
        current = name
        return _tensor(tensors, name, file, path, model)

    try:
        if architecture == "rwkv6":
            from ai_writer.models.gguf_rwkv6 import read_rwkv6_layout

            rescale = fields.get("rwkv6.rescale_every_n_layers", 0)
            w = read_rwkv6_layout(take, tensors, n_layer, rescale if isinstance(rescale, int) else 0)
        else:
            head_size = fields.get(f"{ARCH}.wkv.head_size")
            w = _rwkv7_layout(take, tensors, n_layer, head_size if isinstance(head_size, int) and head_size > 0 else 64)
    except (RuntimeError, IndexError) as exc:  # a reshape or transpose that does not fit
        raise ModelFileError(f"{path}: tensor {current} does not fit {model}'s shapes ({_first_line(exc)})") from None
    if tensors:
        extra = sorted(tensors)
        raise ModelFileError(
            f"{path}: tensor {extra[0]} is not part of llama.cpp's {model} layout"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )
    return w


def _rwkv7_layout(take, tensors: dict, n_layer: int, head_size: int) -> dict[str, torch.Tensor]:
    from ai_writer.models.gguf_rwkv6 import block_norms, outer_weights, shapers

    vec, transposed = shapers(take)
    w = outer_weights(take)
    for i in range(n_layer):
        g, b = f"blk.{i}.", f"blocks.{i}."
        a = b + "att."
        w.update(block_norms(take, i))
        lerp = take(g + "time_mix_lerp_fused.weight")
        lerp = lerp.reshape(len(LERP_ORDER), -1)
        for j, x in enumerate(LERP_ORDER):
            w[f"{a}x_{x}"] = lerp[j].reshape(1, 1, -1).clone()
        for p in ("w", "a", "v", "g"):
            if p == "v" and i == 0:  # llama.cpp's dummies (copies of a0/a1/a2): dropped
                for n in ("0", "1", "2"):
                    tensors.pop(f"{g}time_mix_v{n}.weight", None)
                continue
            if p != "g":
                w[f"{a}{p}0"] = vec(f"{g}time_mix_{p}0.weight")
            w[f"{a}{p}1"] = transposed(f"{g}time_mix_{p}1.weight")
            w[f"{a}{p}2"] = transposed(f"{g}time_mix_{p}2.weight")
        w[a + "k_k"] = vec(g + "time_mix_k_k.weight")
        w[a + "k_a"] = vec(g + "time_mix_k_a.weight")
        w[a + "r_k"] = take(g + "time_mix_r_k.weight").reshape(-1, head_size).contiguous()
        for m in ("receptance", "key", "value", "output"):
            w[f"{a}{m}.weight"] = take(f"{g}time_mix_{m}.weight")
        w[a + "ln_x.weight"] = take(g + "time_mix_ln.weight")
        w[a + "ln_x.bias"] = take(g + "time_mix_ln.bias")
        w[b + "ffn.x_k"] = vec(g + "channel_mix_lerp_k.weight")
        w[b + "ffn.key.weight"] = take(g + "channel_mix_key.weight")
        w[b + "ffn.value.weight"] = take(g + "channel_mix_value.weight")
    return w


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
