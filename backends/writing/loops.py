"""Repeated loops in a text, found from the text alone (no model): what a writer or a model stuck in a loop leaves.

Two rules:
- a sentence (split after 。！？!?… with any closing quotes, and at line ends) holding at least
  SENTENCE_MIN word characters (letters, digits, hanzi: punctuation and spaces do not count) that
  occurs SENTENCE_TIMES or more times anywhere, compared with its spaces removed;
- a phrase of PHRASE_MIN or more characters repeated back to back (the second copy starts where
  the first ends) or occurring NEAR_TIMES or more times, each copy within NEAR characters of the
  one before. Found through every PHRASE_MIN-character window (a rolling hash, then the windows'
  text compared), grown to the longest stretch the copies share (copies never overlap); a window
  starting inside a copy of a phrase already found is part of it. A phrase whose copies all lie
  inside copies of repeated sentences is left to the sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

SENTENCE_MIN, SENTENCE_TIMES = 6, 3
PHRASE_MIN, NEAR, NEAR_TIMES = 12, 2000, 3
SENTENCE = re.compile(r"[^。！？!?…\n]+(?:[。！？!?…]+[”’」』）)\"']*)?")
_HASH_BASE = np.uint64(1_000_003)


@dataclass(frozen=True)
class Repeat:
    kind: str  # "sentence" or "phrase"
    text: str  # one copy (a sentence: without its spaces)
    spans: tuple[tuple[int, int], ...]  # (start, end) in the text searched of each copy, in order

    @property
    def count(self) -> int:
        return len(self.spans)


def find_loops(text: str) -> list[Repeat]:
    """Every repeated sentence and phrase of `text`, the most repeated characters (length x copies) first."""
    sentences = repeated_sentences(text)
    in_sentence = np.zeros(len(text), dtype=bool)
    for repeat in sentences:
        for start, end in repeat.spans:
            in_sentence[start:end] = True
    phrases = [r for r in repeated_phrases(text) if not all(in_sentence[s:e].all() for s, e in r.spans)]
    return sorted(sentences + phrases, key=lambda r: (-len(r.text) * r.count, r.spans[0]))


def repeated_sentences(text: str) -> list[Repeat]:
    seen: dict[str, list[tuple[int, int]]] = {}
    for match in SENTENCE.finditer(text):
        raw = match.group()
        body = raw.strip()
        if sum(c.isalnum() for c in body) < SENTENCE_MIN:
            continue
        start = match.start() + len(raw) - len(raw.lstrip())
        seen.setdefault("".join(body.split()), []).append((start, start + len(body)))
    return [Repeat("sentence", key, tuple(spans)) for key, spans in seen.items() if len(spans) >= SENTENCE_TIMES]


def _window_hashes(text: str) -> np.ndarray:
    """A hash of every PHRASE_MIN-character window (uint64 arithmetic, wrapping around)."""
    codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32).astype(np.uint64)
    count = len(codes) - PHRASE_MIN + 1
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(PHRASE_MIN):
            hashes = hashes * _HASH_BASE + codes[offset : offset + count]
    return hashes


def _window_groups(text: str) -> list[list[int]]:
    """The starts of the windows with one text, for each window text that recurs within NEAR characters."""
    if len(text) < 2 * PHRASE_MIN:
        return []
    hashes = _window_hashes(text)
    order = np.argsort(hashes, kind="stable")  # equal hashes: their starts in order
    ordered = hashes[order]
    same = ordered[1:] == ordered[:-1]
    close = same & (order[1:] - order[:-1] <= NEAR)
    group_of = np.concatenate(([0], np.cumsum(~same)))  # group number of each sorted window
    bounds = np.concatenate((np.flatnonzero(np.concatenate(([True], ~same))), [len(ordered)]))
    found = []
    for group in np.unique(group_of[1:][close]).tolist():
        by_text: dict[str, list[int]] = {}
        for start in sorted(order[bounds[group] : bounds[group + 1]].tolist()):
            by_text.setdefault(text[start : start + PHRASE_MIN], []).append(start)  # a hash collision splits here
        found.extend(starts for starts in by_text.values() if len(starts) > 1)
    return found


def _chains(starts: list[int], text: str) -> list[list[int]]:
    """The copies (not overlapping) in chains, each within NEAR of the one before; the chains that count."""
    copies = []
    for start in starts:
        if not copies or start >= copies[-1] + PHRASE_MIN:
            copies.append(start)
    chains, chain = [], [copies[0]]
    for start in copies[1:]:
        if start - chain[-1] <= NEAR:
            chain.append(start)
        else:
            chains.append(chain)
            chain = [start]
    chains.append(chain)
    return [chain for chain in chains if len(chain) >= NEAR_TIMES or
            len(chain) == 2 and text[chain[0] : chain[1]] == text[chain[1] : 2 * chain[1] - chain[0]]]


def _grow(text: str, chain: list[int]) -> tuple[int, int]:
    """(start of the first copy, length): the longest stretch every copy shares, the copies not overlapping."""
    room = min(b - a for a, b in zip(chain, chain[1:]))
    length = PHRASE_MIN
    while length < room and chain[-1] + length < len(text) and len({text[s + length] for s in chain}) == 1:
        length += 1
    left = 0
    while length < room and chain[0] - left > 0 and len({text[s - left - 1] for s in chain}) == 1:
        left += 1
        length += 1
    return chain[0] - left, length


def repeated_phrases(text: str) -> list[Repeat]:
    found = []
    covered = np.zeros(len(text), dtype=bool)  # the copies of the phrases found so far
    chains = sorted((chain for starts in _window_groups(text) for chain in _chains(starts, text)), key=lambda c: c[0])
    for chain in chains:
        if covered[chain[0]]:
            continue  # a window inside a phrase already found (or a turn of its loop)
        first, length = _grow(text, chain)
        starts = [s - (chain[0] - first) for s in chain]
        for start in starts:
            covered[start : start + length] = True
        copy = text[first : first + length]
        lead, body = len(copy) - len(copy.lstrip()), copy.strip()  # line breaks at either end are not in it
        if len(body) >= PHRASE_MIN:
            found.append(Repeat("phrase", body, tuple((s + lead, s + lead + len(body)) for s in starts)))
    return found
