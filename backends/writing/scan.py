"""The surprise scan of a manuscript: bits per character paragraph by paragraph, the most surprising
spans (typos, odd names) and repeated loops, every position a position in the manuscript as given.

    scan = scan_text(engine, text, prep)                        # here, or on the service's thread:
    job = service.submit_task(scan_task(text, prep), on_event)  # ScanProgress..., ScanFinished(scan)

The bits are evaluation.char_bits of the scored text (the prepared text from a leading '\\n'):
the numbers `ai-writer eval` sums, so the scan's overall bits/char is eval's. A paragraph is a
kept line; the '\\n' after it (the model predicting that it ends there) counts with it.

Surprising spans: a character is surprising when its bits exceed both SURPRISE_FLOOR and the mean
plus SURPRISE_SD standard deviations of all the text's characters. Surprising characters of one
paragraph with at most MERGE_GAP unsurprising ones between them form one span (those between
included); the spans with the most bits in all are kept (top, 20 unless asked). Loops:
backends.writing.loops, on the prepared text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ai_writer.backends.writing.evaluation import char_bits
from ai_writer.backends.writing.loops import find_loops
from ai_writer.backends.writing.text_positions import PreparedText, prepare_with_positions
from ai_writer.models.textprep import TextPrep

SURPRISE_FLOOR = 10.0  # bits: rarer than about 1 in 1000
SURPRISE_SD = 2.0
MERGE_GAP = 1
TOP = 20
AROUND = 8  # characters of the span's line kept on either side of it, to see it in its place


@dataclass(frozen=True)
class Paragraph:
    line: int  # in the manuscript, from 1
    start: int  # its text in the manuscript (indent and line break not included)
    end: int
    chars: int  # characters scored: its text and the line break after it
    bits: float

    @property
    def bits_per_char(self) -> float | None:
        return self.bits / self.chars if self.chars else None


@dataclass(frozen=True)
class Span:
    line: int
    start: int  # in the manuscript
    end: int
    text: str  # the manuscript's text there
    before: str  # up to AROUND characters of its line before it, and after it
    after: str
    chars: int  # characters scored in it
    bits: float  # in all
    peak: float  # its most surprising character's bits


@dataclass(frozen=True)
class Loop:
    kind: str  # "sentence" or "phrase" (backends.writing.loops)
    text: str
    starts: tuple[int, ...]  # each copy in the manuscript
    ends: tuple[int, ...]
    lines: tuple[int, ...]  # the line each copy starts on, from 1

    @property
    def count(self) -> int:
        return len(self.starts)


@dataclass(frozen=True)
class Scan:
    bits: float  # all characters scored
    chars: int
    threshold: float  # bits above which a character was surprising
    paragraphs: tuple[Paragraph, ...]
    spans: tuple[Span, ...]  # most surprising first
    loops: tuple[Loop, ...]  # most repeated characters first
    # per character of the scored text: its bits (NaN: not predicted) and its index in the manuscript (-1: none)
    char_bits: np.ndarray = field(repr=False, compare=False, default=None)
    positions: np.ndarray = field(repr=False, compare=False, default=None)

    @property
    def bits_per_char(self) -> float | None:
        return self.bits / self.chars if self.chars else None

    def to_json(self) -> dict:
        return {
            "bits_per_char": self.bits_per_char, "bits": self.bits, "chars": self.chars,
            "surprise_threshold_bits": self.threshold,
            "paragraphs": [{"line": p.line, "start": p.start, "end": p.end, "chars": p.chars,
                            "bits_per_char": p.bits_per_char} for p in self.paragraphs],
            "spans": [{"line": s.line, "start": s.start, "end": s.end, "text": s.text, "before": s.before,
                       "after": s.after, "chars": s.chars, "bits": s.bits, "peak_bits": s.peak} for s in self.spans],
            "loops": [{"kind": o.kind, "text": o.text, "count": o.count, "starts": list(o.starts),
                       "ends": list(o.ends), "lines": list(o.lines)} for o in self.loops],
        }


@dataclass(frozen=True)
class ScanProgress:
    request_id: int
    done_chars: int  # of the scored text (ids counted as characters in proportion for multi-character ids)
    total_chars: int


@dataclass(frozen=True)
class ScanFinished:
    request_id: int
    scan: Scan | None  # None: cancelled


def scan_text(engine, text: str, prep: TextPrep = TextPrep(), should_stop=lambda: False, on_progress=None, *,
              top: int = TOP, piece: int = 1024) -> Scan | None:
    """The scan of a manuscript `text`; None as soon as should_stop() says so (checked before each piece
    read). on_progress(done_chars, total_chars) after each piece."""
    prepared = prepare_with_positions(text, prep)
    total = len(prepared.text) - 1

    def progress(done_ids: int, total_ids: int) -> None:
        on_progress(min(total, round(done_ids * total / total_ids)), total)

    bits = char_bits(engine, prepared.text, piece, should_stop, progress if on_progress is not None else None)
    if bits is None:
        return None
    scored = bits[~np.isnan(bits)]
    threshold = SURPRISE_FLOOR
    if len(scored):
        threshold = max(SURPRISE_FLOOR, float(scored.mean() + SURPRISE_SD * scored.std()))
    owner = paragraph_of(prepared)
    return Scan(
        bits=float(scored.sum()), chars=int(len(scored)), threshold=threshold,
        paragraphs=_paragraphs(prepared, bits, owner), spans=_spans(text, prepared, bits, owner, threshold, top),
        loops=_loops(prepared), char_bits=bits, positions=prepared.positions,
    )


def scan_task(text: str, prep: TextPrep = TextPrep(), top: int = TOP):
    """The scan as a GenerationService.submit_task task: ScanProgress events, then ScanFinished."""
    def task(engine, job) -> None:
        emit = job.on_event
        scan = scan_text(engine, text, prep, lambda: job.is_cancelled,
                         lambda done, total: emit(ScanProgress(job.id, done, total)), top=top)
        emit(ScanFinished(job.id, scan))

    return task


def paragraph_of(prepared: PreparedText) -> np.ndarray:
    """For each character of the scored text, the index of the paragraph it counts with (-1: before the first)."""
    owner = np.full(len(prepared.text), -1, dtype=np.int64)
    for index, (start, end) in enumerate(prepared.paragraphs):
        if end > start:  # an empty kept line (drop_empty_lines off): its line break goes with the one before
            owner[start] = index
    return np.maximum.accumulate(owner)


def _paragraphs(prepared: PreparedText, bits: np.ndarray, owner: np.ndarray) -> tuple[Paragraph, ...]:
    scored = ~np.isnan(bits)
    sums = np.bincount(owner[scored] + 1, weights=bits[scored], minlength=len(prepared.paragraphs) + 1)[1:]
    counts = np.bincount(owner[scored] + 1, minlength=len(prepared.paragraphs) + 1)[1:]
    found = []
    for index, (start, end) in enumerate(prepared.paragraphs):
        if end > start:
            first, last = prepared.span(start, end)
            found.append(Paragraph(int(prepared.lines[start]) + 1, first, last, int(counts[index]), float(sums[index])))
    return tuple(found)


def _spans(text: str, prepared: PreparedText, bits: np.ndarray, owner: np.ndarray, threshold: float,
           top: int) -> tuple[Span, ...]:
    hot = np.flatnonzero(np.nan_to_num(bits, nan=0.0) > threshold)
    runs: list[list[int]] = []
    for index in hot.tolist():
        if runs and index - runs[-1][1] <= MERGE_GAP + 1 and owner[index] == owner[runs[-1][1]]:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    found = []
    for first, last in runs:
        piece = bits[first : last + 1]
        piece = piece[~np.isnan(piece)]
        start, end = prepared.span(first, last + 1)
        before = re.split(r"[\r\n]", text[max(0, start - AROUND):start])[-1]
        after = re.split(r"[\r\n]", text[end:end + AROUND])[0] if not text[start:end].endswith(("\n", "\r")) else ""
        found.append(Span(int(prepared.lines[first]) + 1, start, end, text[start:end], before, after, int(len(piece)),
                          float(piece.sum()), float(piece.max())))
    found.sort(key=lambda s: (-s.bits, s.start))
    return tuple(found[:top])


def _loops(prepared: PreparedText) -> tuple[Loop, ...]:
    found = []
    for repeat in find_loops(prepared.text):
        spans = [prepared.span(start, end) for start, end in repeat.spans]
        found.append(Loop(repeat.kind, repeat.text, tuple(s for s, _ in spans), tuple(e for _, e in spans),
                          tuple(int(prepared.lines[start]) + 1 for start, _ in repeat.spans)))
    return tuple(found)
