"""The probabilities a server reports (completions `logprobs: K`) as a ChoiceLog, for the studio's probability view.

    log = RemoteChoiceLog(rows=3, max_steps=200, k=10)
    log.add(row, "的", tokens=["的"], token_logprobs=[-0.4], top_logprobs=[{"的": -0.4, "了": -1.9}])

The server's tokens are its own: their texts stand in for ids (a table of the strings seen). A server
reports one probability per token, the model's own (serve-api and vLLM give it before their sampling
settings), so p and p_raw are both that one. What a chunk wrote is split over its tokens as their texts
say; where they do not add up to it (a character split over byte tokens), its last token holds the text.
"""

from __future__ import annotations

import math

import numpy as np

from ai_writer.backends.writing.choices import Alternative, ChoiceLog, TokenChoice


class RemoteChoiceLog(ChoiceLog):
    def __init__(self, rows: int, max_steps: int, k: int):
        self._strings: list[str] = []
        self._string_ids: dict[str, int] = {}
        super().__init__(rows, max_steps, k, self._strings.__getitem__)  # choice() below reads the table itself
        self._counts = np.zeros((rows, self._capacity), dtype=np.uint8)  # alternatives recorded per step

    def _allocate(self, capacity: int) -> None:
        old = getattr(self, "_counts", None)
        super()._allocate(capacity)
        if old is not None:
            counts = np.zeros((self.rows, capacity), dtype=np.uint8)
            counts[:, : old.shape[1]] = old
            self._counts = counts

    def _id(self, text: str) -> int:
        found = self._string_ids.get(text)
        if found is None:
            found = self._string_ids[text] = len(self._strings)
            self._strings.append(text)
        return found

    def add(self, row: int, text: str, tokens, token_logprobs, top_logprobs, cut: int | None = None) -> None:
        """A chunk of candidate `row`: the text it wrote and the server's logprobs for it (lists, one entry per
        token). cut: how much of text the candidate keeps (its length reached); tokens past it are not recorded."""
        tokens = [t if isinstance(t, str) else "" for t in (tokens or [])]
        if not tokens:
            tokens, token_logprobs, top_logprobs = [text], [None], [None]
        pieces = tokens if "".join(tokens) == text else [""] * (len(tokens) - 1) + [text]
        kept = len(text) if cut is None else cut
        at = 0
        for index, piece in enumerate(pieces):
            if index and at >= kept:  # the candidate's length was reached before this token
                break
            piece = piece[: max(0, kept - at)]
            at += len(piece)
            chosen = _p(_item(token_logprobs, index))
            self._record(row, piece, chosen, _alternatives(_item(top_logprobs, index), self.k))

    def _record(self, row: int, piece: str, p: float, alternatives: list[tuple[str, float]]) -> None:
        step = int(self._steps[row])
        if step >= self._capacity:
            self._allocate(2 * self._capacity)
        count = len(alternatives)
        self._ids[row, step, :count] = [self._id(t) for t, _ in alternatives]
        self._p[row, step, :count] = self._p_raw[row, step, :count] = [q for _, q in alternatives]
        self._chosen_p[row, step] = self._chosen_p_raw[row, step] = p
        self._counts[row, step] = count
        self._start[row, step] = len(self._texts[row])
        self._length[row, step] = len(piece)
        self._texts[row] += piece
        self._steps[row] = step + 1  # last: the step is whole before a reader sees it

    def choice(self, row: int, step: int) -> TokenChoice:
        """As ChoiceLog.choice, with only the alternatives the server gave (no padding)."""
        if not 0 <= step < self.steps(row):
            raise IndexError(f"candidate {row} has {self.steps(row)} recorded steps, not step {step}")
        start, length, count = int(self._start[row, step]), int(self._length[row, step]), int(self._counts[row, step])
        alternatives = tuple(Alternative(self._strings[int(token)], float(p), float(p))
                             for token, p in zip(self._ids[row, step, :count], self._p_raw[row, step, :count]))
        p = float(self._chosen_p[row, step])
        return TokenChoice(self._texts[row][start:start + length], start, p, p, alternatives)


def _item(values, index: int):
    return values[index] if isinstance(values, list) and index < len(values) else None


def _p(logprob) -> float:
    if isinstance(logprob, (int, float)) and not isinstance(logprob, bool) and math.isfinite(logprob):
        return math.exp(min(0.0, logprob))
    return 0.0


def _alternatives(top, k: int) -> list[tuple[str, float]]:
    """(text, p) of a token's top alternatives, most likely first, at most k: from {text: logprob} (completions) or
    [{"token", "logprob"}] (chat-style servers)."""
    if isinstance(top, dict):
        pairs = [(t, _p(lp)) for t, lp in top.items() if isinstance(t, str)]
    elif isinstance(top, list):
        pairs = [(d.get("token"), _p(d.get("logprob"))) for d in top if isinstance(d, dict)]
        pairs = [(t, q) for t, q in pairs if isinstance(t, str)]
    else:
        return []
    pairs.sort(key=lambda pair: -pair[1])
    return pairs[:min(k, 255)]
