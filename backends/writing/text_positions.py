"""The prepared text (models.textprep.TextPrep) with, for each of its characters, where it lies in the manuscript.

TextPrep strips indents, drops empty lines and '\\r' and puts a '\\n' in front; reports about the
text (the scan's paragraphs, spans and loops) must name positions in the manuscript as given, so
the preparation is redone here line by line, keeping an index map. The result's text is exactly
replace(prep, leading_newline=True).prepare(manuscript) (tests/backends/test_scan.py checks it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ai_writer.models.textprep import INDENT_CHARS, TextPrep

LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class PreparedText:
    text: str  # '\n' + the prepared body
    positions: np.ndarray  # int64, one per character of text: its index in the manuscript (-1: the leading '\n')
    lines: np.ndarray  # int64, one per character: its line in the manuscript, from 0 (a '\n': the line it ends)
    paragraphs: tuple  # (start, end) in text of each kept line's characters, without its '\n'

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Manuscript (start, end) of text[start:end] (end > start): from its first character to just past its last."""
        return int(self.positions[start]), int(self.positions[end - 1]) + 1


def _lines(source: str):
    """(content start, content end, line break start or None) of each line of the manuscript."""
    start = 0
    for match in LINE_BREAK.finditer(source):
        yield start, match.start(), match.start()
        start = match.end()
    yield start, len(source), None


def prepare_with_positions(source: str, prep: TextPrep = TextPrep()) -> PreparedText:
    chars, positions, lines, paragraphs = ["\n"], [np.array([-1])], [np.array([0])], []
    length, kept_break = 1, None  # kept_break: where the last kept line's break is (the '\n' joined after it)
    last_line = 0
    for number, (start, end, line_break) in enumerate(_lines(source)):
        if prep.strip_indents:
            content = source[start:end]
            stripped = content.lstrip(INDENT_CHARS)
            start += len(content) - len(stripped)
            end = start + len(stripped.rstrip(INDENT_CHARS))
        if prep.drop_empty_lines and start == end:
            continue
        if paragraphs:  # the '\n' that joins it to the kept line before
            chars.append("\n")
            positions.append(np.array([kept_break]))
            lines.append(np.array([last_line]))
            length += 1
        chars.append(source[start:end])
        positions.append(np.arange(start, end))
        lines.append(np.full(end - start, number))
        paragraphs.append((length, length + end - start))
        length += end - start
        kept_break = line_break if line_break is not None else len(source)
        last_line = number
    # As TextPrep: a manuscript whose last text is followed by a line break keeps one.
    if prep.drop_empty_lines and paragraphs and source.rstrip(INDENT_CHARS)[-1:] in ("\n", "\r"):
        chars.append("\n")
        positions.append(np.array([kept_break]))
        lines.append(np.array([last_line]))
    return PreparedText("".join(chars), np.concatenate(positions).astype(np.int64),
                        np.concatenate(lines).astype(np.int64), tuple(paragraphs))
