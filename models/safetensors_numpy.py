"""A .safetensors file mapped into memory, read with numpy alone: its header, each tensor's place, and its
tensors as float32 arrays (models.safetensors_map gives torch views of the same places).

The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, data_offsets into
the data that follows) and the raw little-endian data. The file is mapped copy-on-write (mmap.ACCESS_COPY): a
tensor written to gets private pages, the file never changes, and nothing is read before it is touched.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ai_writer.models.file_keys import MAX_HEADER
from ai_writer.models.model_errors import ModelFileError

WIDTHS = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class Place:
    """Where one tensor lies in the mapping: its type (a WIDTHS key), shape, byte offset and element count."""

    dtype: str
    shape: tuple[int, ...]
    offset: int
    count: int


def map_file(path: str | Path) -> tuple[mmap.mmap, dict[str, Place]] | None:
    """(the file mapped copy-on-write, each tensor's Place by name), or None when the file cannot be taken as is
    (a big-endian host, a malformed header, a tensor outside the file, misaligned for its type or of a type
    not in WIDTHS)."""
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
    start, places = 8 + length, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        place = _place(entry, start, size)
        if place is None:
            return None
        places[name] = place
    return mapped, places


def _place(entry, start: int, size: int) -> Place | None:
    try:
        dtype = entry["dtype"]
        width = WIDTHS[dtype]
        shape = tuple(int(n) for n in entry["shape"])
        begin, end = (int(n) for n in entry["data_offsets"])
    except (KeyError, TypeError, ValueError):
        return None
    count = math.prod(shape)
    if min(shape, default=0) < 0 or end - begin != count * width or begin < 0 or start + end > size:
        return None
    if count and (start + begin) % width:
        return None  # misaligned for its type
    return Place(dtype, shape, start + begin, count)


class Float32Arrays(Mapping):
    """A .safetensors file's floating-point tensors as float32 numpy arrays, by name: float32 ones are views of
    the mapping (no copy; their pages come from the page cache when touched), float16 and bfloat16 ones are
    converted at each access (a new array: take each once). ModelFileError (one line) for a file it cannot read."""

    CONVERTED = ("F16", "BF16")

    def __init__(self, path: str | Path):
        self.path = Path(path)
        found = map_file(self.path)
        if found is None:
            raise ModelFileError(f"{self.path}: not a safetensors file that can be read as it is (its header, or a "
                                 "tensor's type, size or alignment)")
        self._mapped, places = found
        others = sorted(name for name, place in places.items() if place.dtype not in ("F32", *self.CONVERTED))
        if others:
            raise ModelFileError(f"{self.path}: tensor {others[0]} is {places[others[0]].dtype}, not a float type")
        self.places = places

    def __getitem__(self, name: str) -> np.ndarray:
        place = self.places[name]
        if place.dtype == "F32":
            return np.frombuffer(self._mapped, np.float32, place.count, place.offset).reshape(place.shape)
        raw = np.frombuffer(self._mapped, np.uint16, place.count, place.offset).reshape(place.shape)
        if place.dtype == "F16":
            return raw.view(np.float16).astype(np.float32)
        return (raw.astype(np.uint32) << 16).view(np.float32)  # bfloat16: float32's upper half

    def __iter__(self):
        return iter(self.places)

    def __len__(self) -> int:
        return len(self.places)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.places[name].shape
