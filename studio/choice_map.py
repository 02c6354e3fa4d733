"""Which token choice each character of a text came from, across the pieces it was built of.

A candidate is one row of its job's ChoiceLog (backends.writing.choices) from character 0. After
an alternative is chosen it becomes three pieces: the kept prefix (still the old log's row), the
chosen alternative (a piece of its own), and what the new job streams after it (row 0 of the new
job's log, from its character 0). Accepted text keeps its candidate's map.

The logs are read through their jobs: a job's `choices` is set on the service's thread before its
first Chunk, after the panel has started to follow it.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True)
class Chosen:
    """An alternative the author chose, as a TokenChoice: its text, its probabilities, its rivals."""

    text: str
    p: float
    p_raw: float
    alternatives: tuple = ()
    char_start: int = 0


@dataclass(frozen=True)
class LogPiece:
    start: int  # where in the text the piece starts
    job: object  # the service's Job; its .choices (ChoiceLog or None) holds the piece's characters from 0
    row: int

    @property
    def log(self):
        return getattr(self.job, "choices", None)


@dataclass(frozen=True)
class ChosenPiece:
    start: int
    choice: Chosen


class ChoiceMap:
    """Pieces in text order; piece k covers the text from its start up to the next piece's start."""

    def __init__(self, pieces: tuple = ()):
        self.pieces = tuple(pieces)
        self._starts = [piece.start for piece in self.pieces]

    @classmethod
    def of_job(cls, job, row: int) -> "ChoiceMap":
        return cls((LogPiece(0, job, row),))

    def __bool__(self) -> bool:
        return bool(self.pieces)

    def cut(self, at: int) -> "ChoiceMap":
        """The map of the text's first `at` characters."""
        return ChoiceMap(piece for piece in self.pieces if piece.start < at)

    def then_chosen(self, at: int, choice: Chosen, job) -> "ChoiceMap":
        """The text cut at `at`, then `choice`, then row 0 of `job` (its continuation)."""
        return ChoiceMap((*self.cut(at).pieces, ChosenPiece(at, choice), LogPiece(at + len(choice.text), job, 0)))

    def _bounds(self, k: int, length: int) -> tuple[int, int]:
        end = self.pieces[k + 1].start if k + 1 < len(self.pieces) else length
        return self.pieces[k].start, min(end, length)

    def probabilities(self, length: int) -> list[float | None]:
        """p of each of the text's first `length` characters (None where no log has it yet)."""
        out: list[float | None] = []
        for k, piece in enumerate(self.pieces):
            start, end = self._bounds(k, length)
            if end <= start:
                continue
            if isinstance(piece, ChosenPiece):
                values = [piece.choice.p] * (end - start)
            else:
                log = piece.log
                values = list(log.probabilities(piece.row)[: end - start]) if log is not None else []
            out.extend(values)
            out.extend([None] * (end - start - len(values)))
        return out + [None] * (length - len(out))

    def choice_at(self, index: int) -> tuple[int, object] | None:
        """(where the token that holds character `index` starts in the text, its TokenChoice), or None."""
        k = bisect_right(self._starts, index) - 1
        if k < 0:
            return None
        piece = self.pieces[k]
        if isinstance(piece, ChosenPiece):
            return (piece.start, piece.choice) if index < piece.start + len(piece.choice.text) else None
        log = piece.log
        if log is None or k + 1 < len(self.pieces) and index >= self.pieces[k + 1].start:
            return None
        step = log.step_at_char(piece.row, index - piece.start)
        if step is None:
            return None
        choice = log.choice(piece.row, step)
        return piece.start + choice.char_start, choice
