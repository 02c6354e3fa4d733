"""Where candidates end (max_tokens, stop strings) and what may be streamed before they do, on a real ChoiceLog."""

import numpy as np

from ai_writer.backends.writing.choices import ChoiceLog
from ai_writer.studio.api.candidates import Candidates

PIECES = ["ab", "", "cde", "f", "gh"]  # a multi-character tokenizer: tokens write 0..3 characters


def log_of(rows_pieces, steps):
    """A ChoiceLog after `steps` steps of each row's pieces (vocabulary of 8 ids, uniform logits)."""
    log = ChoiceLog(len(rows_pieces), 4, 2, lambda i: f"<{i}>")
    for step in range(steps):
        logits = np.zeros((len(rows_pieces), 8), dtype=np.float32)
        pieces = [row[step] for row in rows_pieces]
        log.record(logits, np.full((len(rows_pieces), 8), 1 / 8), [step % 8] * len(rows_pieces), pieces,
                   range(len(rows_pieces)))
    return log


def test_max_tokens_cuts_at_the_token_not_the_character():
    candidates = Candidates(1, max_tokens=3, stops=())
    candidates.sync(log_of([PIECES], 2))
    assert (candidates.texts, candidates.finish) == (["ab"], [None])
    candidates.sync(log_of([PIECES], 5))  # the worker ran past the limit before the sync
    assert (candidates.texts, candidates.finish) == (["abcde"], ["length"])


def test_a_stop_string_across_tokens_ends_its_row_only():
    rows = [PIECES, ["x", "y", "z", "w", "v"]]
    candidates = Candidates(2, max_tokens=5, stops=("ef", "zz"))
    released = []
    for steps in range(1, 6):
        candidates.sync(log_of(rows, steps))
        released += candidates.release()
    candidates.end()
    released += candidates.release()
    assert candidates.texts == ["abcd", "xyzwv"] and candidates.finish == ["stop", "length"]
    for row in (0, 1):
        assert "".join(piece for r, piece, _ in released if r == row) == candidates.texts[row]
        assert [reason for r, _, reason in released if r == row and reason] == [candidates.finish[row]]


def test_text_that_may_begin_a_stop_string_is_held_back():
    candidates = Candidates(1, max_tokens=10, stops=("END",))
    candidates.update(0, "abcE", False)
    assert candidates.release() == [(0, "abc", None)]  # "E" may become "END"
    candidates.update(0, "abcEN", False)
    assert candidates.release() == []
    candidates.update(0, "abcENx", False)
    assert candidates.release() == [(0, "ENx", None)]
    candidates.update(0, "abcENxEND", False)
    assert candidates.release() == [(0, "", "stop")] and candidates.release() == []
    assert candidates.texts == ["abcENx"]
    assert candidates.all_done
