"""States after manuscript prefixes, so a small edit at the end re-processes only the tail.

RWKV carries everything it has read in a fixed-size state, so the state after a
prefix of the prompt can be kept and continued. The cache keeps checkpoints:
(the token ids read so far, the state after them, the logits after them). A new
prompt starts from the longest checkpoint whose ids are a prefix of its own ids.

Which part of a long manuscript is read is fixed by an *anchor*: the position in
the prepared text where reading starts. While the author keeps writing at the end,
the anchor stays put (up to `max_span` characters read), so each request reads only
what was added; past that, a new anchor is chosen `context_chars` before the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ANCHOR_PROBE = 64  # characters compared to recognise an anchor again


@dataclass
class Checkpoint:
    ids: tuple
    state: object
    logits: np.ndarray  # (V,) after the last id


@dataclass
class Anchor:
    offset: int  # into the prepared text
    probe: str  # the prepared text's first characters from there
    checkpoints: list = field(default_factory=list)


class PromptCache:
    def __init__(self, context_chars: int = 1024, max_checkpoints: int = 32):
        self.context_chars = context_chars
        self.max_checkpoints = max_checkpoints
        self.anchors: list[Anchor] = []  # most recently used first

    @property
    def max_span(self) -> int:
        return 2 * self.context_chars

    def clear(self) -> None:
        self.anchors.clear()

    def anchor_for(self, prepared: str) -> Anchor:
        """Where reading starts in this prepared text: a known anchor if it still fits, else a new one."""
        for anchor in self.anchors:
            if (
                anchor.offset <= len(prepared)
                and len(prepared) - anchor.offset <= self.max_span
                and prepared[anchor.offset : anchor.offset + len(anchor.probe)] == anchor.probe
            ):
                self.anchors.remove(anchor)
                self.anchors.insert(0, anchor)
                return anchor
        offset = self._new_offset(prepared)
        anchor = Anchor(offset, prepared[offset : offset + ANCHOR_PROBE])
        self.anchors.insert(0, anchor)
        return anchor

    def _new_offset(self, prepared: str) -> int:
        if len(prepared) <= self.context_chars:
            return 0
        offset = len(prepared) - self.context_chars
        # Start at a paragraph boundary when one is near, as the model was trained to.
        newline = prepared.find("\n", offset, offset + self.context_chars // 4)
        return newline + 1 if newline >= 0 else offset

    def longest_prefix(self, anchor: Anchor, ids: tuple) -> Checkpoint | None:
        best = None
        for checkpoint in anchor.checkpoints:
            n = len(checkpoint.ids)
            if n <= len(ids) and (best is None or n > len(best.ids)) and ids[:n] == checkpoint.ids:
                best = checkpoint
        return best

    def add(self, anchor: Anchor, checkpoint: Checkpoint) -> None:
        anchor.checkpoints = [c for c in anchor.checkpoints if c.ids != checkpoint.ids] + [checkpoint]
        self._evict()

    def _evict(self) -> None:
        total = sum(len(a.checkpoints) for a in self.anchors)
        for anchor in reversed(list(self.anchors)):
            while total > self.max_checkpoints and anchor.checkpoints:
                anchor.checkpoints.pop(0)  # oldest first
                total -= 1
            if not anchor.checkpoints and anchor is not self.anchors[0]:
                self.anchors.remove(anchor)
