"""Soft-wrap offsets for Chinese (and other CJK) prose in a terminal.

Textual's own ``textual._wrap.compute_wrap_offsets`` splits a line into "words"
at whitespace, so a paragraph of Chinese (which has no spaces) is one giant
word that gets folded wherever the width runs out, with no regard for
punctuation.  :func:`cjk_wrap_offsets` has the same contract (codepoint indices
at which to break one logical line so every piece fits in ``width`` cells) but
follows the usual CJK line-breaking rules:

* a line may break between any two CJK characters (ideographs, kana, hangul,
  fullwidth forms, CJK punctuation) and after whitespace; a run of Latin
  letters/digits stays together unless it is wider than the whole line;
* kinsoku: a piece does not start with closing punctuation (，。」… etc.) and
  does not end with opening punctuation (「“（ etc.).  Where a break would
  violate this, the break is moved earlier (the preceding character is pulled
  down with the punctuation); pieces never exceed ``width``;
* a paragraph indent (leading ``　　`` or spaces) stays with the first
  characters of its paragraph (a first word too wide to follow it is folded
  rather than leaving the indent alone on a row);
* only when none of that is possible (a piece of nothing but punctuation, a
  word wider than the line, a width smaller than one character) does it fall
  back to a plain fold.

Breaks are only ever placed between grapheme clusters as Rich measures them
(so combining marks, emoji ZWJ sequences and variation selectors are never
split from their base character).
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate
from typing import NamedTuple, Sequence

from rich.cells import get_character_cell_size
from textual.expand_tabs import get_tab_widths

__all__ = [
    "CLOSING_PUNCTUATION",
    "OPENING_PUNCTUATION",
    "cjk_wrap_offsets",
    "piece_width",
]

#: Characters that must not start a line (closing brackets/quotes, stops,
#: commas, ellipsis, dashes, iteration marks, small kana, ...).
CLOSING_PUNCTUATION = frozenset(
    # Chinese / Japanese full-width punctuation and closing brackets
    "，。！？；：、」』”’）》〉】〕〗〙〛｝］｠…‥—―⸺⸻～〜·・ー々〻〃"
    # half-width forms
    "｡､｣"
    # ASCII cousins
    ",.!?;:)]}%"
    # full-width ASCII cousins
    "．％"
    # units that belong to the number before them
    "‰℃°′″"
    # small kana (Japanese kinsoku)
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶ"
)

#: Characters that must not end a line (opening brackets/quotes).
OPENING_PUNCTUATION = frozenset("「『“‘（《〈【〔〖〘〚｛［｟｢([{")

# Ambiguous-width punctuation that behaves like CJK punctuation in Chinese
# prose (a break next to it is allowed even though it is not "wide").
_CJK_AMBIGUOUS_PUNCTUATION = frozenset("“”‘’…‥—―⸺⸻·※§")

# Fold levels, most to least preferred.  A break is tried at the latest
# boundary allowed at level 0; if none fits, at level 1, and so on.
_LEGAL = 0  # all rules: word boundaries, kinsoku, indent
_KINSOKU = 1  # may split a Latin word / whitespace run; kinsoku + indent hold
_INDENT = 2  # may also break inside or right after the indent; kinsoku holds
_ANY = 3  # any grapheme boundary
_LEVELS = 4

_ZWJ = "\u200d"
_VS16 = "\ufe0f"

# Line-breaking roles of a character.  A character's "before" role applies
# when it ends the text before a boundary, its "after" role when it starts the
# text after one.  (A '，' is CJK before a boundary and closing after one.)
_B_OPEN, _B_ZWJ, _B_SPACE, _B_CJK, _B_OTHER = range(5)
_A_CLOSE, _A_ZWJ, _A_SPACE, _A_CJK, _A_OTHER = range(5)


def _level(before: int, after: int) -> int:
    """The most preferred fold level at which a break between roles is allowed."""
    if before == _B_OPEN or after == _A_CLOSE:  # kinsoku
        return _ANY
    if before == _B_ZWJ or after == _A_ZWJ:
        return _ANY
    if after == _A_SPACE:  # whitespace stays at the end of the line it follows
        return _KINSOKU
    if before in (_B_SPACE, _B_CJK) or after == _A_CJK:
        return _LEGAL
    return _KINSOKU  # inside a Latin word


_LEVEL_TABLE = [[_level(before, after) for after in range(5)] for before in range(5)]


@lru_cache(maxsize=8192)
def _is_cjk(character: str) -> bool:
    """True for characters a line may break before or after (CJK classes)."""
    if character in _CJK_AMBIGUOUS_PUNCTUATION:
        return True
    return unicodedata.east_asian_width(character) in ("W", "F", "H")


@lru_cache(maxsize=8192)
def _roles(character: str) -> tuple[int, int]:
    """(before role, after role) of a character."""
    space = character.isspace()
    cjk = _is_cjk(character)
    if character in OPENING_PUNCTUATION:
        before = _B_OPEN
    elif character == _ZWJ:
        before = _B_ZWJ
    else:
        before = _B_SPACE if space else _B_CJK if cjk else _B_OTHER
    if character in CLOSING_PUNCTUATION:
        after = _A_CLOSE
    elif character == _ZWJ:
        after = _A_ZWJ
    else:
        after = _A_SPACE if space else _A_CJK if cjk else _A_OTHER
    return before, after


@lru_cache(maxsize=8192)
def _char_width(character: str, ambiguous_width: int) -> int:
    width = get_character_cell_size(character)
    if (
        width == 1
        and ambiguous_width != 1
        and unicodedata.east_asian_width(character) == "A"
    ):
        return ambiguous_width
    return width


try:  # Rich >= 14: grapheme clusters measured the way Rich renders them
    from rich.cells import split_graphemes as _rich_split_graphemes
except ImportError:  # pragma: no cover - older Rich
    _rich_split_graphemes = None


def _split_graphemes(text: str) -> list[tuple[int, int, int]]:
    """(start, end, cells) for each grapheme cluster of `text` (no tabs in it)."""
    if _rich_split_graphemes is not None:
        return _rich_split_graphemes(text)[0]
    # Older Rich: codepoints, with zero-width ones and ZWJ sequences glued on.
    spans: list[tuple[int, int, int]] = []
    for index, character in enumerate(text):
        width = get_character_cell_size(character)
        if spans and (width == 0 or text[index - 1] == _ZWJ):
            start, _, cells = spans[-1]
            spans[-1] = (start, index + 1, max(cells, width))
        else:
            spans.append((index, index + 1, width))
    return spans


class _Units(NamedTuple):
    """The unbreakable units of a line (grapheme clusters and tabs)."""

    starts: Sequence[int]  # codepoint index where each unit starts
    widths: list[int]  # cells
    firsts: Sequence[str]  # first codepoint of each unit
    lasts: Sequence[str]  # last codepoint of each unit


class _Table(dict):
    """Character -> value, computed on first use (a dict lookup per character after that)."""

    def __init__(self, compute):
        super().__init__()
        self._compute = compute

    def __missing__(self, character: str):
        value = self[character] = self._compute(character)
        return value


# Cells per character, for ambiguous width 1 and 2; line-breaking roles before / after a boundary.
_WIDTHS = {cells: _Table(lambda character, cells=cells: _char_width(character, cells)) for cells in (1, 2)}
_BEFORE = _Table(lambda character: _roles(character)[0])
_AFTER = _Table(lambda character: _roles(character)[1])


def _units(text: str, tab_size: int, ambiguous_width: int) -> _Units:
    """Split a line into grapheme clusters and tabs with their cell widths.

    Tabs are expanded to tab stops measured from the start of the *logical*
    line, exactly as ``WrappedDocument`` caches them for rendering.
    """
    if "\t" not in text and _ZWJ not in text and _VS16 not in text:
        # Fast path: one unit per codepoint unless something has zero width.
        widths = list(map(_WIDTHS[ambiguous_width].__getitem__, text))
        if 0 not in widths:
            return _Units(range(len(text)), widths, text, text)
    starts: list[int] = []
    widths = []
    firsts: list[str] = []
    lasts: list[str] = []
    position = 0
    for section, tab_width in get_tab_widths(text, tab_size):
        for start, end, cells in _split_graphemes(section):
            first = section[start]
            if ambiguous_width != 1 and end - start == 1:
                cells = _char_width(first, ambiguous_width)
            starts.append(position + start)
            widths.append(cells)
            firsts.append(first)
            lasts.append(section[end - 1])
        position += len(section)
        if tab_width:  # the section was followed by a tab
            starts.append(position)
            widths.append(tab_width)
            firsts.append("\t")
            lasts.append("\t")
            position += 1
    return _Units(starts, widths, firsts, lasts)


def cjk_wrap_offsets(
    text: str,
    width: int,
    tab_size: int = 4,
    *,
    ambiguous_width: int = 1,
) -> list[int]:
    """Codepoint indices at which to break `text` so each piece fits in `width` cells.

    Same contract as ``textual._wrap.compute_wrap_offsets`` (one logical line
    in, strictly increasing offsets in ``1..len(text)-1`` out), with CJK
    line-breaking rules; see the module docstring.

    Args:
        text: One logical line (no newlines).
        width: Available cells.  ``0`` or less means "don't wrap" (``[]``),
            matching ``WrappedDocument``'s convention.
        tab_size: Tab stop width; tabs expand to the next stop, measured from
            the start of the logical line.
        ambiguous_width: Cells for East Asian *ambiguous* characters (“ ” ‘ ’
            … — · and the like): 1 as Rich counts them, 2 for terminals that
            render them wide (typical CJK terminal setups).

    Returns:
        The break offsets.  Each piece is at most `width` cells unless a single
        character (or tab) is wider than `width`, in which case it stands alone.
    """
    if width <= 0 or not text:
        return []
    if len(text) * 2 <= width and "\t" not in text:
        return []  # no character is wider than 2 cells: it fits
    starts, widths, firsts, lasts = _units(text, max(1, tab_size), ambiguous_width)
    count = len(widths)
    cumulative = list(accumulate(widths, initial=0))  # cells before unit k
    if cumulative[-1] <= width:
        return []

    # The fold level of boundary k (a break before unit k) is looked up only for
    # the boundaries a row's end is searched among: _LEVEL_TABLE[role of the
    # unit before it][role of the unit after it], raised to _INDENT inside the
    # paragraph indent (leading whitespace plus the first unit after it stay
    # together unless nothing else fits).
    before_role = _BEFORE.__getitem__
    after_role = _AFTER.__getitem__
    table = _LEVEL_TABLE
    indent_units = 0
    while indent_units < count and after_role(firsts[indent_units]) == _A_SPACE:
        indent_units += 1
    indent_end = min(indent_units, count - 1)  # boundaries 1..indent_end are in the indent

    offsets: list[int] = []
    start = 0
    total = cumulative[count]
    while total - cumulative[start] > width:
        # Units start..end-1 fit; at least one unit per piece.
        end = bisect_right(cumulative, cumulative[start] + width) - 1
        if end <= start:  # unit `start` alone is wider than the line
            end = start + 1
            if end == count:
                break
        # The latest boundary of the most preferred level that has one
        # (boundary `end` is always allowed at _ANY, so this finds one).
        best_level = _LEVELS
        brk = end
        for boundary in range(end, start, -1):
            level = table[before_role(lasts[boundary - 1])][after_role(firsts[boundary])]
            if boundary <= indent_end and level < _INDENT:
                level = _INDENT
            if level < best_level:
                best_level = level
                brk = boundary
                if level == _LEGAL:
                    break
        offsets.append(starts[brk])
        start = brk
    return offsets


def piece_width(piece: str, tab_size: int = 4, *, ambiguous_width: int = 1) -> int:
    """Cells a piece of a line occupies (tabs expanded from the piece's start).

    Handy for checking wrap results; the wrap itself measures tabs from the
    start of the logical line.
    """
    return sum(_units(piece, max(1, tab_size), ambiguous_width).widths)

