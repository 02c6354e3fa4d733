"""Bits per character of a text under a model, through the engine the studio uses.

The text is prepared as for generation and read as one stream from a leading
'\\n', in pieces of `piece` ids whose state carries on to the next: the model
sees the whole file as its context (no window), as RWKV allows. Each character
after the leading '\\n' is predicted once; characters outside the vocabulary are
scored as UNKNOWN_CHAR. `char_bits` gives each character's bits (what
`ai-writer scan` reports); `text_bits` sums them (what `ai-writer eval` reports).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ai_writer.models.textprep import TextPrep
from ai_writer.models.tokenizer import CharTokenizer

LN2 = math.log(2)


def log_softmax_at(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """log p(target) for each row of (T, V) logits, in nats (float64)."""
    logits = logits.astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return logits[np.arange(len(targets)), targets] - log_norm


def char_bits(engine, text: str, piece: int = 1024, should_stop=None, on_progress=None) -> np.ndarray | None:
    """-log2 p of each character of `text` given all before it (float64, one per character), read as one
    stream through engine.forward(full_output=True). NaN where nothing is predicted: the characters of the
    first id (read as context) and any the tokenizer drops. None as soon as should_stop() says so (checked
    before each piece); on_progress(done_ids, total_ids) after each piece."""
    ids = engine.tokenizer.encode(text)
    predicted = max(0, len(ids) - 1)
    id_bits = np.empty(predicted)
    state = None
    for start in range(0, predicted, piece):
        if should_stop is not None and should_stop():
            return None
        inputs = ids[start : start + piece]
        targets = np.asarray(ids[start + 1 : start + piece + 1])
        logits, state = engine.forward([inputs], state, full_output=True)
        id_bits[start : start + len(targets)] = -log_softmax_at(logits[0][: len(targets)], targets) / LN2
        if on_progress is not None:
            on_progress(start + len(targets), predicted)
    return _per_char(engine.tokenizer, text, ids, id_bits)


def _per_char(tokenizer, text: str, ids: list, id_bits: np.ndarray) -> np.ndarray:
    """Each id's bits on the characters it writes: one character per id for a CharTokenizer (those it drops get
    none); otherwise (World: an id may write part of a character or several) the bits of the ids since the last
    finished character are shared evenly by the characters the next id finishes."""
    bits = np.full(len(text), np.nan)
    if isinstance(tokenizer, CharTokenizer):
        if tokenizer.unknown_id is not None:
            kept = np.arange(len(ids))
        else:
            known = tokenizer.char_to_id
            kept = np.fromiter((i for i, c in enumerate(text) if c in known), dtype=np.int64)
        bits[kept[1:]] = id_bits
        return bits
    decoder = tokenizer.stream_decoder()
    done, pending = 0, 0.0
    for index, token_id in enumerate(ids):
        finished = min(len(decoder.feed(token_id)), len(text) - done)
        if index > 0:
            pending += id_bits[index - 1]
        if finished and index > 0:
            bits[done : done + finished] = pending / finished
            pending = 0.0
        done += finished
    if pending and done:  # ids after the last finished character (a character cut off): on the last one
        bits[done - 1] = (0.0 if np.isnan(bits[done - 1]) else bits[done - 1]) + pending
    return bits


def scored_text(text: str, prep: TextPrep = TextPrep()) -> str:
    """What is scored: the prepared text, always from a leading '\\n'."""
    return replace(prep, leading_newline=True).prepare(text)


def text_bits(engine, text: str, prep: TextPrep = TextPrep(), piece: int = 1024) -> tuple[float, int]:
    """(total bits, characters predicted) for one text: the sum of its char_bits."""
    bits = char_bits(engine, scored_text(text, prep), piece)
    scored = bits[~np.isnan(bits)]
    return float(scored.sum()), int(len(scored))
