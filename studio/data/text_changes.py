"""The one span where two versions of a text differ: a common prefix and suffix scan.

    changed_span("他走了。", "他跑了。") -> TextChange(position=1, removed="走", inserted="跑")

The scan compares slices block by block (a memcmp each, in C), then narrows the first
differing block by halving, so a 1,000,000-character manuscript costs a few milliseconds
and no copy of it is kept. One typing session between two requests gives one span; several
edits far apart give the one span that covers them all.
"""

from __future__ import annotations

from typing import NamedTuple

BLOCK = 4096


class TextChange(NamedTuple):
    position: int  # where the change starts, in characters, in both versions
    removed: str  # the old text's characters there
    inserted: str  # the new text's characters there


def common_prefix(a: str, b: str, limit: int | None = None) -> int:
    """How many characters a and b share from the start (at most `limit`)."""
    n = min(len(a), len(b)) if limit is None else min(len(a), len(b), limit)
    i = 0
    while i < n and a[i : min(i + BLOCK, n)] == b[i : min(i + BLOCK, n)]:
        i += BLOCK
    if i >= n:
        return n
    low, high = i, min(i + BLOCK, n)  # a[:low] == b[:low]; the first difference is below high
    while low < high:
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def common_suffix(a: str, b: str, limit: int | None = None) -> int:
    """How many characters a and b share at the end (at most `limit`)."""
    n = min(len(a), len(b)) if limit is None else min(len(a), len(b), limit)
    la, lb = len(a), len(b)
    i = 0
    while i < n and a[la - min(i + BLOCK, n) : la - i] == b[lb - min(i + BLOCK, n) : lb - i]:
        i += BLOCK
    if i >= n:
        return n
    low, high = i, min(i + BLOCK, n)
    while low < high:
        middle = (low + high + 1) // 2
        if a[la - middle : la - low] == b[lb - middle : lb - low]:
            low = middle
        else:
            high = middle - 1
    return low


def changed_span(old: str, new: str) -> TextChange | None:
    """The span of `old` that `new` replaced (None when they are equal)."""
    if old == new:
        return None
    start = common_prefix(old, new)
    end = common_suffix(old, new, limit=min(len(old), len(new)) - start)
    return TextChange(start, old[start : len(old) - end], new[start : len(new) - end])
