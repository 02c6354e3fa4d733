"""Bits per character of a text under a model, through the engine the studio uses.

The text is prepared as for generation and read as one stream from a leading
'\\n', in pieces of `piece` characters whose state carries on to the next: the
model sees the whole file as its context (no window), as RWKV allows. Each
character after the leading '\\n' is predicted once; characters outside the
vocabulary are scored as UNKNOWN_CHAR.
"""

from __future__ import annotations

import math

import numpy as np

from ai_writer.models.textprep import TextPrep


def log_softmax_at(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """log p(target) for each row of (T, V) logits, in nats (float64)."""
    logits = logits.astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return logits[np.arange(len(targets)), targets] - log_norm


def text_bits(engine, text: str, prep: TextPrep = TextPrep(), piece: int = 1024) -> tuple[float, int]:
    """(total bits, characters predicted) for one text."""
    ids = engine.tokenizer.encode(prep.prepare(text))
    if not prep.leading_newline:
        ids = engine.tokenizer.encode("\n") + ids
    state, total_nats = None, 0.0
    for start in range(0, len(ids) - 1, piece):
        inputs = ids[start : start + piece]
        targets = np.asarray(ids[start + 1 : start + piece + 1])
        logits, state = engine.forward([inputs], state, full_output=True)
        total_nats -= log_softmax_at(logits[0][: len(targets)], targets).sum()
    return total_nats / math.log(2), max(0, len(ids) - 1)
