"""Where each candidate of a request ends: max_tokens, or the first stop string, read from the job's ChoiceLog.

    candidates = Candidates(n=4, max_tokens=64, stops=("\\n\\n",))
    candidates.sync(job.choices)     # on the service's thread, at each Chunk: what each row has written so far
    candidates.release()             # [(row, new text, finish_reason or None)] safe to send now
    candidates.all_done              # then the job can be cancelled: no row needs more steps

A row that stops keeps its text before the stop string; the others go on. Text at a row's end
that begins a stop string is held back until it is known not to be one.
"""

from __future__ import annotations


class Candidates:
    def __init__(self, n: int, max_tokens: int, stops: tuple[str, ...] = ()):
        self.max_tokens, self.stops = max_tokens, stops
        self.hold = max((len(s) for s in stops), default=1) - 1  # how far back a stop string may start in old text
        self.texts = [""] * n  # each row's text so far (final once finish[row] is set)
        self.finish: list[str | None] = [None] * n
        self.sent = [0] * n  # characters of texts[row] released

    @property
    def all_done(self) -> bool:
        return all(reason is not None for reason in self.finish)

    def sync(self, log) -> None:
        """Take each unfinished row's text from the log, cut at max_tokens tokens and at the first stop string."""
        for row in range(len(self.texts)):
            if self.finish[row] is not None:
                continue
            steps = log.steps(row)
            text = log.text(row)
            if steps > self.max_tokens:
                last = log.choice(row, self.max_tokens - 1)
                text = text[: last.char_start + len(last.text)]
            self.update(row, text, steps >= self.max_tokens)

    def update(self, row: int, text: str, at_limit: bool) -> None:
        """The row's whole text so far; at_limit: it has written max_tokens tokens."""
        if self.finish[row] is not None:
            return
        start = max(0, len(self.texts[row]) - self.hold)  # a stop string ending in the new text starts here or later
        found = [at for at in (text.find(stop, start) for stop in self.stops) if at >= 0]
        if found:
            self.texts[row], self.finish[row] = text[: min(found)], "stop"
        else:
            self.texts[row] = text
            if at_limit:
                self.finish[row] = "length"

    def end(self) -> None:
        """The job is over: rows still open ended at their length (or were cancelled)."""
        self.finish = [reason or "length" for reason in self.finish]

    def _held(self, text: str) -> int:
        """How many characters at the end of text begin a stop string (they wait for the next ones)."""
        return max((k for stop in self.stops for k in range(min(len(stop) - 1, len(text)), 0, -1)
                    if text.endswith(stop[:k])), default=0)

    def release(self) -> list[tuple[int, str, str | None]]:
        """(row, text not sent before, finish_reason once the row is done) for every row with news."""
        news = []
        for row, text in enumerate(self.texts):
            reason = self.finish[row]
            if self.sent[row] < 0:  # its end was already sent
                continue
            upto = len(text) if reason is not None else max(self.sent[row], len(text) - self._held(text))
            piece = text[self.sent[row]:upto]
            if piece or reason is not None:
                news.append((row, piece, reason))
            self.sent[row] = -1 if reason is not None else upto
        return news
