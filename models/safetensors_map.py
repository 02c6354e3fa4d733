"""A .safetensors file's tensors as views of the file mapped into memory: nothing is copied at load.

The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
data_offsets into the data that follows) and the raw little-endian data. The file is mapped
copy-on-write (mmap.ACCESS_COPY): a tensor written to gets private pages, the file never
changes. Its pages are read from the page cache when first touched, so opening costs what
parsing the header costs, and a tensor that is converted and then dropped (the C step's
narrow-typed copies, backends/engines/native_step.py) never needs its float32 bytes held
beside the copy: the step drops those pages again (release_file_pages).

map_safetensors returns None for what it does not take as is (a tensor whose offset is no
multiple of its element size, a dtype it does not know, a big-endian host): the caller then
reads the file with the safetensors package, which also words every error.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
import sys
from pathlib import Path

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
MAX_HEADER = 100 * 2**20  # the safetensors package's own limit


def map_safetensors(path: str | Path) -> dict[str, torch.Tensor] | None:
    """The tensors of the file at `path`, by name, as views of its mapping; None when it cannot be taken as is."""
    if sys.byteorder != "little":
        return None
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        if size < 8:
            return None
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY)
    (length,) = struct.unpack("<Q", mapped[:8])
    if length > min(MAX_HEADER, size - 8):
        return None
    try:
        header = json.loads(bytes(mapped[8:8 + length]))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    start = 8 + length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        tensor = _view(mapped, start, size, entry)
        if tensor is None:
            return None
        tensors[name] = tensor
    return tensors


def _view(mapped: mmap.mmap, start: int, size: int, entry) -> torch.Tensor | None:
    try:
        dtype = DTYPES[entry["dtype"]]
        shape = [int(n) for n in entry["shape"]]
        begin, end = (int(n) for n in entry["data_offsets"])
    except (KeyError, TypeError, ValueError):
        return None
    count = math.prod(shape)
    width = torch.empty((), dtype=dtype).element_size()
    if min(shape, default=0) < 0 or end - begin != count * width or begin < 0 or start + end > size:
        return None
    if count == 0:
        return torch.empty(shape, dtype=dtype)
    if (start + begin) % width:
        return None  # misaligned for its type: read by the safetensors package instead
    return torch.frombuffer(mapped, dtype=dtype, count=count, offset=start + begin).view(shape)
