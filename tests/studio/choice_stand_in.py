"""A hand-made stand-in for backends.writing.choices.ChoiceLog (the same reading API), for tests that
need exact, chosen probabilities: tokens of several characters, newlines, cut alternatives."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alt:
    text: str
    p: float
    p_raw: float


@dataclass(frozen=True)
class Choice:
    text: str
    char_start: int
    p: float
    p_raw: float
    alternatives: tuple


class StandInLog:
    """rows: per candidate, its tokens as (text, p, p_raw, ((alt text, p, p_raw), ...))."""

    def __init__(self, rows):
        self.k = max((len(t[3]) for row in rows for t in row), default=0)
        self.rows = len(rows)
        self._rows = []
        for row in rows:
            choices, at = [], 0
            for text, p, p_raw, alternatives in row:
                choices.append(Choice(text, at, p, p_raw, tuple(Alt(*a) for a in alternatives)))
                at += len(text)
            self._rows.append(choices)

    def steps(self, row):
        return len(self._rows[row])

    def choice(self, row, step):
        return self._rows[row][step]

    def step_at_char(self, row, char_index):
        for step, choice in enumerate(self._rows[row]):
            if choice.char_start <= char_index < choice.char_start + len(choice.text):
                return step
        return None

    def probabilities(self, row):
        return [c.p for c in self._rows[row] for _ in c.text]

    def text(self, row):
        return "".join(c.text for c in self._rows[row])


class StandInJob:
    """What the studio reads of a service Job here: its log, set later as the service does."""

    def __init__(self, choices=None):
        self.choices = choices
