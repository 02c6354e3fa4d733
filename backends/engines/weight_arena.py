"""One anonymous memory mapping that a step's converted weight matrices are carved from, in the order they are
converted, on 2 MB pages where the kernel allows them (Linux's transparent huge pages, madvise).

Allocated one by one, a matrix smaller than 2 MB (every 768 x 768 one, the LoRA matrices) sits on 4 KB pages:
the hardware prefetchers stop at each page's end and every 4 KB costs a TLB miss, so those products stream at
about two thirds of a large matrix's rate (bench/bench_sizes.py measures the step with and without the arena).
Pages are touched only as matrices are written, so the RSS is what the matrices hold.
"""

from __future__ import annotations

import mmap

import numpy as np

ALIGN = 64  # bytes: each array starts on a cache line
HUGE_PAGE = 2 << 20


def arena_bytes(shape, dtype) -> int:
    """What an array takes in an arena, its alignment included."""
    return int(np.prod(shape)) * np.dtype(dtype).itemsize + ALIGN


class WeightArena:
    """Arrays carved one after another from one mapping of `size` bytes (arena_bytes of each); an array beyond it gets
    memory of its own."""

    def __init__(self, size: int):
        # anonymous and private (a shared one is shared memory, which takes no huge pages); freed with the last view
        private = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}
        self._map = mmap.mmap(-1, size + HUGE_PAGE, **private)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            try:
                self._map.madvise(mmap.MADV_HUGEPAGE)
            except OSError:  # a kernel without transparent huge pages: 4 KB pages, as np.empty's
                pass
        self._bytes = np.frombuffer(self._map, dtype=np.uint8)
        self._at = -self._bytes.ctypes.data % HUGE_PAGE  # the first 2 MB boundary
        self._end = self._at + size

    def empty(self, shape, dtype) -> np.ndarray:
        """An uninitialised C-contiguous array, as np.empty."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape)) * dtype.itemsize
        start = -(-self._at // ALIGN) * ALIGN
        if start + count > self._end:
            return np.empty(shape, dtype)
        self._at = start + count
        return self._bytes[start:start + count].view(dtype).reshape(shape)

    @property
    def used(self) -> int:
        """Bytes handed out (from the first 2 MB boundary), alignment included."""
        return self._at - (-self._bytes.ctypes.data % HUGE_PAGE)
