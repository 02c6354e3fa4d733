"""What the model thought at each token it wrote: the chosen token's probability and the top-K it weighed.

    log = job.choices                      # a ChoiceLog, set before the first Chunk
    log.steps(row)                         # tokens recorded so far for candidate `row`
    log.choice(row, step)                  # TokenChoice: its text, p, p_raw, alternatives
    log.step_at_char(row, char_index)      # which step wrote that character of the candidate
    log.probabilities(row)                 # p of every character written so far

p is the weight the token had when it was drawn (after penalties, bans, the top_p/top_k/min_p
cut and the temperature: backends.writing.sampling); p_raw is the softmax of the model's
logits before any of that. Everything sits in arrays preallocated per candidate row (ids
int32, probabilities float16), so a long request holds a few MB; the worker records while
the caller reads (a step becomes visible only once it is whole).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Alternative:
    text: str  # the token's text ("\n" stays "\n")
    p: float  # probability after the sampling settings; 0.0 if cut
    p_raw: float  # softmax of the model's logits, before any setting


@dataclass(frozen=True)
class TokenChoice:
    text: str  # what this step wrote (may be "" or several characters with a multi-char tokenizer)
    char_start: int  # where that text starts in the candidate's text
    p: float
    p_raw: float
    alternatives: tuple[Alternative, ...]  # the top-K tokens by p_raw, descending


BLOCK = 64  # logits per block in top_ids' first pass


def top_ids(logits: np.ndarray, k: int) -> np.ndarray:
    """(R, k) ids of each row's k largest logits, largest first (ties: the lower id first).

    A partition of the whole vocabulary each step costs more than the sampling; instead, the k-th largest of
    the blocks' maxima bounds the k-th largest logit from below (k blocks reach it), so only the few logits
    at or above it are sorted."""
    rows, vocab = logits.shape
    full = vocab // BLOCK * BLOCK
    if k >= vocab or full // BLOCK < 2 * k:  # a small vocabulary: sort it all
        return np.argsort(-logits, axis=1, kind="stable")[:, :k]
    blocks = logits[:, :full].reshape(rows, -1, BLOCK).max(axis=2)
    if full < vocab:
        blocks = np.concatenate([blocks, logits[:, full:].max(axis=1, keepdims=True)], axis=1)
    bound = np.partition(blocks, blocks.shape[1] - k, axis=1)[:, blocks.shape[1] - k]
    top = np.empty((rows, k), dtype=np.int64)
    for row in range(rows):
        near = np.flatnonzero(logits[row] >= bound[row])
        top[row] = near[np.argsort(-logits[row, near], kind="stable")[:k]]
    return top


class ChoiceLog:
    """Per candidate row, per generated token, stored compactly in preallocated numpy arrays."""

    def __init__(self, rows: int, max_steps: int, k: int, decode: Callable[[int], str]):
        self.rows, self.k, self._decode = rows, k, decode
        self._steps = np.zeros(rows, dtype=np.int64)
        self._texts = [""] * rows  # each row's text as recorded (what its Chunks said)
        self._allocate(max(1, max_steps))

    def _allocate(self, capacity: int) -> None:
        """Arrays for `capacity` steps per row, the recorded ones copied over (a row may outgrow max_steps when
        tokens write nothing, e.g. half a character)."""
        rows, k = self.rows, self.k
        arrays = {
            "_ids": np.zeros((rows, capacity, k), dtype=np.int32),
            "_p": np.zeros((rows, capacity, k), dtype=np.float16),
            "_p_raw": np.zeros((rows, capacity, k), dtype=np.float16),
            "_chosen_p": np.zeros((rows, capacity), dtype=np.float16),
            "_chosen_p_raw": np.zeros((rows, capacity), dtype=np.float16),
            "_start": np.zeros((rows, capacity), dtype=np.int32),
            "_length": np.zeros((rows, capacity), dtype=np.uint16),
        }
        old = getattr(self, "_capacity", 0)
        for name, array in arrays.items():
            if old:
                array[:, :old] = getattr(self, name)
            setattr(self, name, array)  # a reader on another thread sees the old or the new, both whole
        self._capacity = capacity

    @property
    def nbytes(self) -> int:
        arrays = (self._ids, self._p, self._p_raw, self._chosen_p, self._chosen_p_raw, self._start, self._length)
        return sum(a.nbytes for a in arrays) + self._steps.nbytes + 4 * sum(len(t) for t in self._texts)

    def steps(self, row: int) -> int:
        return int(self._steps[row])

    def text(self, row: int) -> str:
        return self._texts[row]

    # -- recording (the worker) ---------------------------------------------

    def record(self, logits: np.ndarray, weights: np.ndarray, chosen, pieces, rows) -> None:
        """One step for the listed rows: logits (B, V) the model gave, weights (B, V) the sampler drew from,
        chosen (B,) the ids drawn, pieces[row] the text each row wrote with it."""
        rows = np.asarray(list(rows), dtype=np.int64)
        if not len(rows):
            return
        raw = np.asarray(logits, dtype=np.float32)
        if len(rows) < len(raw):
            raw = raw[rows]
        picked, each = np.asarray(chosen, dtype=np.int64)[rows], np.arange(len(rows))
        top = top_ids(raw, self.k)
        peak = raw.max(axis=1, keepdims=True)
        total = np.exp(raw - peak).sum(axis=1, keepdims=True, dtype=np.float64)
        steps = self._steps[rows]
        if steps.max() >= self._capacity:
            self._allocate(2 * self._capacity)
        self._ids[rows, steps] = top
        self._p[rows, steps] = weights[rows[:, None], top]
        self._p_raw[rows, steps] = np.exp(np.take_along_axis(raw, top, axis=1) - peak) / total
        self._chosen_p[rows, steps] = weights[rows, picked]
        self._chosen_p_raw[rows, steps] = np.exp(raw[each, picked] - peak[:, 0]) / total[:, 0]
        for row, step in zip(rows.tolist(), steps.tolist()):
            piece = pieces[row]
            self._start[row, step] = len(self._texts[row])
            self._length[row, step] = len(piece)
            self._texts[row] += piece
        self._steps[rows] = steps + 1  # last: the step is whole before a reader sees it

    # -- reading (any thread) -----------------------------------------------

    def choice(self, row: int, step: int) -> TokenChoice:
        if not 0 <= step < self.steps(row):
            raise IndexError(f"candidate {row} has {self.steps(row)} recorded steps, not step {step}")
        start, length = int(self._start[row, step]), int(self._length[row, step])
        alternatives = tuple(
            Alternative(self._decode(int(token)), float(p), float(p_raw))
            for token, p, p_raw in zip(self._ids[row, step], self._p[row, step], self._p_raw[row, step])
        )
        return TokenChoice(self._texts[row][start:start + length], start, float(self._chosen_p[row, step]),
                           float(self._chosen_p_raw[row, step]), alternatives)

    def step_at_char(self, row: int, char_index: int) -> int | None:
        """The step that wrote that character of the row's text, or None past what is recorded."""
        steps = self.steps(row)
        if char_index < 0 or not steps:
            return None
        ends = self._start[row, :steps].astype(np.int64) + self._length[row, :steps]
        step = int(np.searchsorted(ends, char_index, side="right"))  # the first step ending after it
        return step if step < steps else None

    def probabilities(self, row: int) -> list[float]:
        """p of each character of the row's text so far (a multi-character token's p repeated)."""
        steps = self.steps(row)
        return np.repeat(self._chosen_p[row, :steps].astype(np.float64), self._length[row, :steps]).tolist()
