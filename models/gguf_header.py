"""The header of a GGUF file (versions 2 and 3, little-endian): its metadata and where each tensor lies.

    header = read_header(path)              # ValueError naming the byte where the file stops making sense
    header.fields["rwkv7.block_count"]      # int, float, bool, str, bytes (tokens) or a list of them
    with open(path, "rb") as f:
        array = read_tensor_bytes(f, header.tensors[0])   # the tensor's raw bytes, uint8

Parsed here rather than with gguf.GGUFReader, which builds numpy views for every array element: a file
with the 65,536-token RWKV World vocabulary takes it seconds to open, this a few hundredths.
The layout (ggml's docs/gguf.md): magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the
metadata (u64-length key, u32 type, value), the tensor infos (name, u32 dims, u64 each in ggml's order,
u32 type, u64 offset), then the tensor data from the next multiple of general.alignment (default 32).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
STRING, ARRAY = 8, 9
SCALARS = {  # metadata value type -> struct format
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d",
}
NUMPY_SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8", 12: "<f8"}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type_id: int  # ggml type (gguf.GGMLQuantizationType's value)
    shape: tuple[int, ...]  # numpy order (ggml's dimensions reversed)
    offset: int  # from the start of the file
    n_bytes: int


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    fields: dict  # key -> value; string arrays as lists of bytes (token texts need not be UTF-8)
    tensors: list[TensorInfo]
    file_size: int


def read_header(path: str | Path) -> GGUFHeader:
    """The metadata and tensor infos of a GGUF file; ValueError (one line) if it is not one or is cut short."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size < 24:
            raise ValueError(f"{size} bytes, too short for a GGUF header")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _Parser(data, size).header()


def read_tensor_bytes(file, tensor: TensorInfo) -> np.ndarray:
    """The tensor's stored bytes (uint8), read into memory from `file` (the GGUF file, open in binary mode)."""
    buffer = np.empty(tensor.n_bytes, dtype=np.uint8)
    file.seek(tensor.offset)
    if file.readinto(memoryview(buffer)) != tensor.n_bytes:
        raise ValueError(f"tensor {tensor.name} is cut short (the file ends inside it)")
    return buffer


class _Parser:
    def __init__(self, data, size: int):
        self.data, self.size, self.at = data, size, 0

    def take(self, fmt: str):
        width = struct.calcsize(fmt)
        if self.at + width > self.size:
            raise ValueError(f"cut short at byte {self.at} (the file ends inside its header)")
        value = struct.unpack_from(fmt, self.data, self.at)[0]
        self.at += width
        return value

    def string(self) -> bytes:
        length = self.take("<Q")
        if self.at + length > self.size:
            raise ValueError(f"cut short at byte {self.at} (a string of {length} bytes runs past the end)")
        value = self.data[self.at : self.at + length]
        self.at += length
        return value

    def value(self, kind: int):
        if kind in SCALARS:
            return self.take(SCALARS[kind])
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            item, count = self.take("<I"), self.take("<Q")
            if item in NUMPY_SCALARS:
                dtype = np.dtype(NUMPY_SCALARS[item])
                if self.at + count * dtype.itemsize > self.size:
                    raise ValueError(f"cut short at byte {self.at} (an array of {count} runs past the end)")
                values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at).tolist()
                self.at += count * dtype.itemsize
                return values
            if count > self.size:  # every item takes at least a byte
                raise ValueError(f"an array of {count} items at byte {self.at}, more than the file holds")
            return [self.value(item) for _ in range(count)]
        raise ValueError(f"unknown metadata value type {kind} at byte {self.at - 4}")

    def header(self) -> GGUFHeader:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        if self.data[:4] != MAGIC:
            raise ValueError("not a GGUF file (it does not start with 'GGUF')")
        self.at = 4
        version = self.take("<I")
        if version not in VERSIONS:
            raise ValueError(f"GGUF version {version} (versions read: {', '.join(map(str, VERSIONS))}; big-endian files are not)")
        n_tensors, n_fields = self.take("<Q"), self.take("<Q")
        if n_tensors > self.size or n_fields > self.size:
            raise ValueError(f"claims {n_tensors} tensors and {n_fields} metadata entries, more than the file holds")
        fields = {}
        for _ in range(n_fields):
            key = self.string().decode("utf-8", errors="replace")
            fields[key] = self.value(self.take("<I"))
        for key, value in fields.items():  # single strings as text; arrays of them stay bytes
            if isinstance(value, bytes):
                fields[key] = value.decode("utf-8", errors="replace")
        infos = []
        for _ in range(n_tensors):
            name = self.string().decode("utf-8", errors="replace")
            n_dims = self.take("<I")
            if n_dims > 8:
                raise ValueError(f"tensor {name} has {n_dims} dimensions")
            dims = [self.take("<Q") for _ in range(n_dims)]
            infos.append((name, dims, self.take("<I"), self.take("<Q")))
        alignment = fields.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise ValueError(f"general.alignment {alignment!r} is not a power of two")
        start = -(-self.at // alignment) * alignment
        tensors = []
        for name, dims, type_id, offset in infos:
            try:
                block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
            except (ValueError, KeyError):
                raise ValueError(f"tensor {name} has an unknown type id {type_id}") from None
            count = int(np.prod(dims, dtype=np.int64)) if dims else 1
            if count % block:
                raise ValueError(f"tensor {name}: {count} values are not whole blocks of {block}")
            tensors.append(TensorInfo(name, type_id, tuple(reversed(dims)), start + offset, count // block * block_bytes))
        return GGUFHeader(version, fields, tensors, self.size)
