"""What a model file holds, from its names alone: the tensor names (a safetensors header, a .bin folder's file
names, a .pth's pickle), the token rows, the architecture they spell. Without torch for every format but .pth
(models.checkpoint reads those), so that a safetensors model is told apart before torch is imported, and the C
step (backends/engines/native_step.py) can run it without torch at all."""

from __future__ import annotations

import json
import re
from pathlib import Path

MAX_HEADER = 100 * 2**20  # the safetensors package's own limit of a header's length


def is_bin_folder(path: Path) -> bool:
    """A folder of raw float32 tensors named KEY.bin (or one file of it), as the browser demo shipped."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    return (folder / "emb.weight.bin").is_file() and (folder / "head.weight.bin").is_file()


def safetensors_header(path: Path) -> dict | None:
    """A .safetensors file's header (name -> dtype, shape, data_offsets; and "__metadata__"), or None if unreadable."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= MAX_HEADER:
                return None
            header = json.loads(f.read(size))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def peek_keys(path: str | Path) -> list[str] | None:
    """The tensor names of a model file without reading its tensors (a safetensors header, a .bin
    folder's file names, a .pth memory-mapped where its format allows); None if unreadable."""
    path = Path(path)
    if path.exists() and is_bin_folder(path):
        folder = path if path.is_dir() else path.parent
        return [f.name[: -len(".bin")] for f in folder.glob("*.bin")]
    if path.suffix.lower() == ".safetensors":
        header = safetensors_header(path)
        return None if header is None else [k for k in header if k != "__metadata__"]
    from ai_writer.models.checkpoint import peek_pickled_keys

    return peek_pickled_keys(path)


def embedding_rows(path: str | Path) -> int | None:
    """The number of token rows of the model at `path` (emb.weight), read without loading it; None if unknown."""
    path = Path(path)
    if path.suffix == ".safetensors":
        entry = (safetensors_header(path) or {}).get("emb.weight")
        try:
            return int(entry["shape"][0])
        except (TypeError, KeyError, IndexError, ValueError):
            return None
    from ai_writer.models.checkpoint import pickled_embedding_rows

    return pickled_embedding_rows(path)


def detect_architecture(weights) -> str:
    """'rwkv7', 'rwkv4', 'rwkv5', 'rwkv6', 'aiwriter-v1', 'aiwriter-v2', 'aiwriter-2023' or 'unknown',
    from the key names (never from the file name)."""
    keys = weights.keys()
    if "blocks.0.att.r_k" in keys and "blocks.0.att.w0" in keys and "blocks.0.att.k_k" in keys:
        return "rwkv7"
    if "blocks.0.att.time_decay" in keys and "blocks.0.ln0.weight" in keys:
        if "blocks.0.att.time_maa_x" in keys:  # as the rwkv package tells the versions apart
            return "rwkv6"
        if "blocks.0.att.ln_x.weight" in keys:
            return "rwkv5"
        return "rwkv4"
    if "tok_emb.weight" in keys and "blocks.0.attn.time_w" in keys:
        return "aiwriter-v1"
    if "emb.weight" in keys and "blocks.0.ln0.weight" not in keys:  # v2 (its layer 0 may have only ffnPre)
        if any(re.fullmatch(r"blocks\.\d+\.att\.time_mix", key) for key in keys):
            return "aiwriter-v2"
        if any(re.fullmatch(r"blocks\.\d+\.att\.time_mix_k", key) for key in keys):
            return "aiwriter-2023"  # the unreleased successor of v2
    return "unknown"
