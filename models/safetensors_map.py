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

import mmap
from pathlib import Path

import torch

from ai_writer.models.safetensors_numpy import Place, map_file

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def map_safetensors(path: str | Path) -> dict[str, torch.Tensor] | None:
    """The tensors of the file at `path`, by name, as views of its mapping; None when it cannot be taken as is."""
    found = map_file(path)
    if found is None:
        return None
    mapped, places = found
    return {name: _view(mapped, place) for name, place in places.items()}


def _view(mapped: mmap.mmap, place: Place) -> torch.Tensor:
    dtype = DTYPES[place.dtype]
    if place.count == 0:
        return torch.empty(place.shape, dtype=dtype)
    return torch.frombuffer(mapped, dtype=dtype, count=place.count, offset=place.offset).view(place.shape)
