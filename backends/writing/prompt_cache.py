"""States after prompt prefixes, so that a small edit re-reads only what changed.

RWKV carries everything it has read in a fixed-size state, so the state after a
prefix of the prompt can be kept and continued. A prompt is made of parts (memory,
lore, story, note: backends.writing.context); its token ids are the parts' ids one
after the other. A checkpoint (the state and logits after the first n ids) is made at
every part boundary, every CHECKPOINT_EVERY ids inside a part (counted from the
part's start) and at the end, and is found again by the hash of those n ids: a new
prompt starts from the longest checkpoint whose hash is one of its own prefixes'.

The cache is bounded in count. A long read keeps its boundaries, its end and only
its last few interval checkpoints (the ones an edit near the cursor needs); an end
that a longer prompt of the same text has superseded is dropped after a couple more
(kept for an undo); what is left goes least recently used first, boundaries last.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

CHECKPOINT_EVERY = 256  # ids between checkpoints inside a part
END, INTERVAL, BOUNDARY = 0, 1, 2  # a checkpoint's role: what it is kept for, weakest first


def start_digest(start_key: str = ""):
    """The sha1 that prefix hashes continue: empty for texts read from the empty state, else seeded with the
    start state's key (backends.engines.start_state), so that texts read from two starts never meet."""
    digest = hashlib.sha1()
    if start_key:
        digest.update(f"start:{start_key}:".encode())
    return digest


def prefix_hashes(ids: np.ndarray, lengths, start_key: str = "") -> dict[int, str]:
    """{n: sha1 of the first n ids as little-endian int32 (after start_digest)} for each n in lengths
    (0 < n <= len(ids)), in one pass."""
    data = np.ascontiguousarray(ids, dtype="<i4")
    digest, done, hashes = start_digest(start_key), 0, {}
    for n in sorted({n for n in lengths if 0 < n <= len(data)}):
        digest.update(data[done:n].tobytes())
        done = n
        hashes[n] = digest.copy().hexdigest()
    return hashes


@dataclass(frozen=True)
class PromptLayout:
    """A prompt's ids and where checkpoints go: part starts, intervals inside each part, the end."""

    ids: tuple  # all parts' ids, in order
    part_starts: tuple  # where each part's ids begin (ascending)

    @classmethod
    def of_parts(cls, part_ids) -> PromptLayout:
        ids, starts = [], []
        for piece in part_ids:
            starts.append(len(ids))
            ids.extend(int(i) for i in piece)
        return cls(tuple(ids), tuple(sorted(set(starts))))

    def __len__(self) -> int:
        return len(self.ids)

    def role_at(self, n: int) -> int | None:
        """BOUNDARY, INTERVAL or END where a checkpoint goes after n ids; None between them."""
        if n in self.part_starts:
            return BOUNDARY
        if n == len(self.ids):
            return END
        start = max((s for s in self.part_starts if s < n), default=0)
        return INTERVAL if (n - start) % CHECKPOINT_EVERY == 0 else None

    def stops(self) -> list[int]:
        """Every n > 0 a checkpoint goes after, ascending (the end included)."""
        total, stops = len(self.ids), set()
        bounds = [*self.part_starts, total]
        for start, stop in zip(bounds, bounds[1:]):
            stops.update(range(start, stop, CHECKPOINT_EVERY))
            stops.add(stop)
        return sorted(n for n in stops if 0 < n <= total)

    def array(self) -> np.ndarray:
        return np.asarray(self.ids, dtype="<i4")


@dataclass
class Checkpoint:
    n_tokens: int  # ids read
    key: str  # prefix_hashes of those ids
    state: object  # one row
    logits: np.ndarray  # (V,) after the last id
    role: int = END


class PromptCache:
    """Checkpoints by prefix hash, least recently used first. Not thread-safe: the service holds a lock."""

    def __init__(self, max_checkpoints: int = 32, keep_intervals: int = 4, keep_ends: int = 2):
        self.max_checkpoints = max_checkpoints
        self.keep_intervals = keep_intervals  # interval checkpoints one read keeps (its last ones)
        self.keep_ends = keep_ends  # superseded ends kept on one prompt's path
        self.entries: OrderedDict[str, Checkpoint] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        self.entries.clear()

    def lengths(self) -> set[int]:
        return {c.n_tokens for c in self.entries.values()}

    def hits(self, hashes: dict[int, str]) -> list[Checkpoint]:
        """The checkpoints that are prefixes of a prompt with these prefix hashes, shortest first."""
        found = [self.entries.get(key) for _, key in sorted(hashes.items())]
        return [c for c in found if c is not None and hashes.get(c.n_tokens) == c.key]

    def longest(self, hashes: dict[int, str]) -> Checkpoint | None:
        """The longest prefix held, without touching anything (for a plan)."""
        hits = self.hits(hashes)
        return hits[-1] if hits else None

    def use(self, layout: PromptLayout, hashes: dict[int, str]) -> Checkpoint | None:
        """The longest prefix held, for reading this prompt: its path's checkpoints are touched, take the
        role they have in it, and superseded ends beyond keep_ends are dropped."""
        hits = self.hits(hashes)
        for checkpoint in hits:
            checkpoint.role = max(checkpoint.role, layout.role_at(checkpoint.n_tokens) or END)
            self.entries.move_to_end(checkpoint.key)
        ends = [c for c in hits if c.role == END]
        for checkpoint in ends[: max(0, len(ends) - self.keep_ends)]:
            del self.entries[checkpoint.key]
        return hits[-1] if hits else None

    def add(self, checkpoint: Checkpoint) -> None:
        held = self.entries.get(checkpoint.key)
        if held is not None:
            checkpoint.role = max(checkpoint.role, held.role)
        self.entries[checkpoint.key] = checkpoint
        self.entries.move_to_end(checkpoint.key)
        self._evict()

    def discard(self, key: str) -> None:
        self.entries.pop(key, None)

    def _evict(self) -> None:
        while len(self.entries) > self.max_checkpoints:
            boundaries = [k for k, c in self.entries.items() if c.role == BOUNDARY]
            others = [k for k, c in self.entries.items() if c.role != BOUNDARY]
            # the rest goes before boundaries while these take at most half the cache
            keep_boundaries = len(boundaries) <= self.max_checkpoints // 2
            victim = others[0] if others and (keep_boundaries or not boundaries) else boundaries[0]
            del self.entries[victim]
