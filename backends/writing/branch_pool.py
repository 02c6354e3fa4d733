"""States along the candidates, so that choosing another token anywhere in one continues from near there.

While candidates decode, each row's state is kept every few tokens, keyed exactly as a prompt
checkpoint is (backends.writing.prompt_cache.prefix_hashes over the prompt's ids and the row's
ids so far): a later prompt that begins with that text finds it as its longest prefix, with
no special request. The pool is bounded in bytes, least recently used first, and apart from
the prompt cache, so candidates never push out the manuscript's checkpoints and their states
last across requests (an author may choose again in text accepted earlier).
"""

from __future__ import annotations

from collections import OrderedDict

from ai_writer.backends.writing.prompt_cache import Checkpoint

MIN_BRANCH_EVERY = 16  # tokens between kept states at the most (a re-read of this many is quick)


def state_nbytes(state) -> int:
    """Bytes a state's arrays hold (torch tensors or numpy arrays)."""
    total = 0
    for array in state:
        total += array.element_size() * array.nelement() if hasattr(array, "element_size") else array.nbytes
    return total


def branch_every(budget_bytes: int, rows: int, length: int, entry_bytes: int) -> int:
    """Tokens between kept states so that `rows` candidates of `length` tokens (and the prompt's end) fit in
    the budget, at least MIN_BRANCH_EVERY; 0 when not even one state per row fits."""
    if budget_bytes <= 0 or entry_bytes <= 0 or rows <= 0 or length <= 0:
        return 0
    per_row = (budget_bytes - entry_bytes) // (rows * entry_bytes)
    if per_row < 1:
        return 0
    return max(MIN_BRANCH_EVERY, -(-length // per_row))


class BranchPool:
    """Checkpoints by prefix hash within max_bytes, least recently used first. Not thread-safe: the service
    holds its cache lock around every call."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.entries: OrderedDict[str, tuple[Checkpoint, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        self.entries.clear()
        self.nbytes = 0

    def lengths(self) -> set[int]:
        return {checkpoint.n_tokens for checkpoint, _ in self.entries.values()}

    def longest(self, hashes: dict[int, str]) -> Checkpoint | None:
        """The longest held prefix of a prompt with these prefix hashes, without touching anything."""
        for n in sorted(hashes, reverse=True):
            found = self.entries.get(hashes[n])
            if found is not None and found[0].n_tokens == n:
                return found[0]
        return None

    def use(self, hashes: dict[int, str]) -> Checkpoint | None:
        """The longest held prefix, marked as just used."""
        found = self.longest(hashes)
        if found is not None:
            self.entries.move_to_end(found.key)
        return found

    def add(self, checkpoint: Checkpoint, nbytes: int) -> None:
        """Keep it (one larger than the whole pool is not kept); the least recently used go past max_bytes."""
        if nbytes > self.max_bytes:
            return
        held = self.entries.pop(checkpoint.key, None)
        if held is not None:
            self.nbytes -= held[1]
        self.entries[checkpoint.key] = (checkpoint, nbytes)
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes:
            _, (_, gone) = self.entries.popitem(last=False)
            self.nbytes -= gone
