"""The weight arena the C step's converted matrices are carved from (backends/engines/weight_arena.py)."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from ai_writer.backends.engines.weight_arena import ALIGN, HUGE_PAGE, WeightArena, arena_bytes

SHAPES = [((768, 768), np.uint16), ((37,), np.float32), ((5, 3), np.int8), ((37,), np.int32), ((64, 100), np.float32)]


def test_arrays_follow_one_another_aligned_without_overlap():
    arena = WeightArena(sum(arena_bytes(shape, dtype) for shape, dtype in SHAPES))
    arrays = [arena.empty(shape, dtype) for shape, dtype in SHAPES]
    starts = [a.ctypes.data for a in arrays]
    assert starts[0] % HUGE_PAGE == 0  # the first on a 2 MB boundary, so that the pages after it can be huge
    for (shape, dtype), array, start in zip(SHAPES, arrays, starts):
        assert array.shape == shape and array.dtype == dtype and array.flags.c_contiguous and array.flags.writeable
        assert start % ALIGN == 0
    for before, after, array in zip(starts, starts[1:], arrays):
        assert before + array.nbytes <= after < before + array.nbytes + ALIGN  # in order, no gaps beyond alignment
    for i, array in enumerate(arrays):
        array.view(np.uint8)[...] = i  # writing one leaves the others as they are
    assert all((a.view(np.uint8) == i).all() for i, a in enumerate(arrays))
    assert arena.used == starts[-1] + arrays[-1].nbytes - starts[0]


def test_an_array_beyond_the_size_gets_memory_of_its_own():
    arena = WeightArena(arena_bytes((10,), np.float32))
    inside, beyond = arena.empty((10,), np.float32), arena.empty((1000,), np.float32)
    assert inside.base is not None and beyond.base is None  # a view of the mapping; np.empty's own
    beyond[...] = 1.0
    assert beyond.sum() == 1000.0


def test_the_arrays_outlive_the_arena_object():
    arena = WeightArena(arena_bytes((256,), np.float32))
    array = arena.empty((256,), np.float32)
    array[...] = np.arange(256)
    del arena  # the mapping stays while a view of it does
    assert array.sum() == 255 * 256 / 2


def smaps_entry(address: int) -> str:
    """The /proc/self/smaps lines of the mapping that holds address."""
    entry, inside = [], False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            begin, end = (int(x, 16) for x in fields[0].split("-"))
            inside = begin <= address < end
        if inside:
            entry.append(line)
    return "\n".join(entry)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="transparent huge pages are Linux's")
def test_the_mapping_may_take_huge_pages_where_the_kernel_has_them():
    setting = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not setting.exists() or "[never]" in setting.read_text():
        pytest.skip("this kernel has no transparent huge pages")
    arena = WeightArena(4 * HUGE_PAGE)
    array = arena.empty((4 * HUGE_PAGE,), np.uint8)
    array[...] = 1
    entry = smaps_entry(array.ctypes.data)
    assert re.search(r"^THPeligible:\s+1$", entry, re.M), entry  # madvise(MADV_HUGEPAGE), private and anonymous
