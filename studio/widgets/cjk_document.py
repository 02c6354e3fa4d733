"""The wrapped view of a manuscript: CJK line breaking, computed lazily for big documents.

Textual's ``WrappedDocument`` wraps every line up front and keeps one Python
tuple per row; its ``height`` sums every line on each call.  For a manuscript
of millions of characters that is seconds before the first frame and
milliseconds per keystroke.  :class:`CJKWrappedDocument` keeps, per line, its
break offsets (from :func:`studio.text.cjk_wrap.cjk_wrap_offsets`) or
``None`` while they are not known yet, its row count (exact, or an estimate
from its length while unknown), and the first row of every line as prefix sums
rebuilt from the first changed line on demand.

A document of up to ``EAGER_CHARS`` characters is wrapped in full at once,
exactly as before.  A bigger one gets estimates; a line is wrapped the moment
anything asks about it (its offsets, its rows, a row inside it), and
:meth:`refine` wraps the rest a slice at a time (the editor calls it when idle).
Lines that are not wrapped yet can only be off screen: whoever draws rows
wraps them first (:meth:`ensure_rows`), so what is seen is always exact.

The attributes Textual reads directly keep their meaning: ``_offset_to_line_info[row]``
is ``(line, section)``, ``_line_index_to_offsets[line]`` the line's rows,
``_wrap_offsets[line]`` its offsets, each computed when asked.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate, islice
from time import perf_counter

from rich.cells import cell_len
from ai_writer.studio.textual_compat import DocumentBase, Location
from ai_writer.studio.textual_compat import WrappedDocument
from textual.expand_tabs import expand_tabs_inline, get_tab_widths
from textual.geometry import Offset, clamp

from ai_writer.studio.text.cjk_wrap import cjk_wrap_offsets

__all__ = ["CJKWrappedDocument"]

_NO_BREAKS: list[int] = []  # shared by every line that fits its row (never mutated)


class _RowInfo:
    """``_offset_to_line_info``: row -> (line index, section), wrapping the line if needed."""

    __slots__ = ("_wrapped",)

    def __init__(self, wrapped: CJKWrappedDocument) -> None:
        self._wrapped = wrapped

    def __len__(self) -> int:
        return self._wrapped.height

    def __getitem__(self, row: int) -> tuple[int, int]:
        return self._wrapped.line_at_row(row)


class _LineRows:
    """``_line_index_to_offsets``: line index -> its rows (a range), wrapping the line if needed."""

    __slots__ = ("_wrapped",)

    def __init__(self, wrapped: CJKWrappedDocument) -> None:
        self._wrapped = wrapped

    def __len__(self) -> int:
        return len(self._wrapped._rows)

    def __getitem__(self, line_index: int) -> range:
        return self._wrapped.rows_of_line(line_index)


class _Breaks:
    """``_wrap_offsets``: line index -> break offsets, wrapping the line if needed."""

    __slots__ = ("_wrapped",)

    def __init__(self, wrapped: CJKWrappedDocument) -> None:
        self._wrapped = wrapped

    def __len__(self) -> int:
        return len(self._wrapped._rows)

    def __getitem__(self, line_index: int) -> list[int]:
        wrapped = self._wrapped
        if line_index < 0:
            line_index += len(wrapped._rows)
        if not 0 <= line_index < len(wrapped._rows):
            raise IndexError(line_index)
        return wrapped._exact(line_index)


class CJKWrappedDocument(WrappedDocument):
    """A ``WrappedDocument`` that breaks lines with :func:`cjk_wrap_offsets`, lazily when the document is big."""

    EAGER_CHARS = 300_000
    """Documents of up to this many characters are wrapped in full whenever the width changes."""

    EAGER_EDIT_CHARS = 20_000
    """An edit's new lines are wrapped at once up to this many characters (a bigger paste: lazily)."""

    def __init__(
        self,
        document: DocumentBase,
        width: int = 0,
        tab_width: int = 4,
        *,
        ambiguous_width: int = 1,
    ) -> None:
        # WrappedDocument.__init__ is not called: it would wrap every line its own way.
        self.document = document
        self.ambiguous_width = ambiguous_width
        """Cells counted for East Asian ambiguous characters (“ ” … —): 1 or 2."""
        self._width = width
        self._tab_width = tab_width
        self._breaks: list[list[int] | None] = []  # per line: offsets, or None while not known
        self._rows: list[int] = []  # per line: rows (an estimate while its offsets are None)
        self._first_rows: list[int] = [0]  # per line its first row, then the height; right up to _valid
        self._valid = 0
        self._unknown = 0  # lines whose offsets are None
        self._refine_from = 0  # every line above this one is known
        self._wrapped_as: tuple | None = None  # (width, tab width, ambiguous width) of the last wrap
        self._offset_to_line_info = _RowInfo(self)
        self._line_index_to_offsets = _LineRows(self)
        self._wrap_offsets = _Breaks(self)
        self.wrap(width, tab_width)

    # -- wrapping ------------------------------------------------------------

    @property
    def pending_lines(self) -> int:
        """How many lines are not wrapped yet (their row counts are estimates)."""
        return self._unknown

    def wrap(self, width: int, tab_width: int | None = None) -> None:
        """Wrap the document at `width` (0: no wrapping): in full if it is small, else lazily.

        Asked again with the same width, tab width and ambiguous width (a resize
        that changed only the height), the rows stay as they are: edits keep them
        up to date through wrap_range.
        """
        self._width = width
        if tab_width:
            self._tab_width = tab_width
        lines = self.document.lines
        wrapped_as = (width, self._tab_width, self.ambiguous_width)
        if wrapped_as == self._wrapped_as and len(lines) == len(self._rows):
            return
        self._wrapped_as = wrapped_as
        if not width:
            breaks: list = [_NO_BREAKS] * len(lines)
            rows = [1] * len(lines)
        elif sum(map(len, lines)) <= self.EAGER_CHARS:
            breaks = [self._compute(line) for line in lines]
            rows = [len(offsets) + 1 for offsets in breaks]
        else:
            breaks, rows = self._guess(lines)
        self._breaks, self._rows = breaks, rows
        self._unknown = breaks.count(None)
        self._refine_from = 0
        self._first_rows = list(accumulate(rows, initial=0))
        self._valid = len(rows)

    def wrap_range(self, start: Location, old_end: Location, new_end: Location) -> None:
        """Rewrap the lines touched by an edit (called after the edit is applied)."""
        line_count = self.document.line_count
        old_last = len(self._rows) - 1
        new_last = line_count - 1
        start_line = clamp(start[0], 0, min(old_last, new_last))
        old_end_line = clamp(old_end[0], 0, old_last)
        new_end_line = clamp(new_end[0], 0, new_last)
        top, old_bottom = sorted((start_line, old_end_line))
        new_bottom = max(start_line, new_end_line)
        if len(self._rows) - (old_bottom - top) + (new_bottom - top) != line_count:
            self.wrap(self._width)  # a range that does not match the edit: start again
            return
        lines = self.document.lines[top : new_bottom + 1]
        if not self._width:
            breaks: list = [_NO_BREAKS] * len(lines)
            rows = [1] * len(lines)
        elif sum(map(len, lines)) <= self.EAGER_EDIT_CHARS:
            breaks = [self._compute(line) for line in lines]
            rows = [len(offsets) + 1 for offsets in breaks]
        else:
            breaks, rows = self._guess(lines)
        replaced = self._breaks[top : old_bottom + 1]
        self._unknown += breaks.count(None) - replaced.count(None)
        self._breaks[top : old_bottom + 1] = breaks
        self._rows[top : old_bottom + 1] = rows
        if None in breaks:
            self._refine_from = min(self._refine_from, top)
        elif self._refine_from > old_bottom:
            self._refine_from += new_bottom - old_bottom
        self._invalidate(top)

    def refine(self, seconds: float, anchor_line: int | None = None) -> int:
        """Wrap lines that are not wrapped yet, from the top, for about `seconds`.

        Returns how many rows the lines above `anchor_line` gained (negative:
        lost), so that a view showing `anchor_line` can scroll by as much and
        keep its picture.
        """
        breaks = self._breaks
        rows = self._rows
        line_count = len(rows)
        deadline = perf_counter() + seconds
        line = self._refine_from
        shift = 0
        changed = None
        while self._unknown and line < line_count:
            if breaks[line] is None:
                offsets = breaks[line] = self._compute(self.document[line])
                self._unknown -= 1
                grown = len(offsets) + 1 - rows[line]
                if grown:
                    rows[line] += grown
                    if changed is None:
                        changed = line
                    if anchor_line is not None and line < anchor_line:
                        shift += grown
                if not line & 15 and perf_counter() > deadline:
                    line += 1
                    break
            line += 1
        if self._unknown and line >= line_count:  # lost count (never expected): count again
            self._unknown = breaks.count(None)
            line = breaks.index(None) if self._unknown else line_count
        self._refine_from = line if self._unknown else line_count
        if changed is not None:
            self._invalidate(changed)
        return shift

    def ensure_rows(self, top: int, bottom: int) -> int:
        """Wrap every line with a row in top..bottom-1 (as they are once wrapped).

        Returns how many rows the lines gained that lie above the first line
        that was already wrapped (a view anchored on that line scrolls by as
        much; 0 when none was).
        """
        shift = 0
        anchored = False
        line, _ = self._locate(max(0, top))
        row = self._first_rows[line]
        changed = None
        breaks = self._breaks
        rows = self._rows
        while line < len(rows) and row < bottom:
            if breaks[line] is None:
                old = rows[line]
                self._exact(line, invalidate=False)
                if rows[line] != old:
                    changed = line if changed is None else changed
                    if not anchored:
                        shift += rows[line] - old
                        bottom += rows[line] - old  # the same picture is further down
            else:
                anchored = True
            row += rows[line]
            line += 1
        if not anchored:
            shift = 0
        if changed is not None:
            self._invalidate(changed)
        return shift

    def ensure_lines_around(self, line_index: int, rows_each_way: int) -> None:
        """Wrap the line `line_index` and lines above and below it until `rows_each_way` rows either way."""
        rows = self._rows
        last = len(rows) - 1
        line_index = clamp(line_index, 0, last)
        changed = None
        for step in (-1, 1):
            line, seen = line_index, 0
            while 0 <= line <= last and seen <= rows_each_way:
                if self._breaks[line] is None:
                    old = rows[line]
                    self._exact(line, invalidate=False)
                    if rows[line] != old:
                        changed = line if changed is None else min(changed, line)
                seen += rows[line]
                line += step
        if changed is not None:
            self._invalidate(changed)

    def _compute(self, line: str) -> list[int]:
        offsets = cjk_wrap_offsets(line, self._width, self._tab_width, ambiguous_width=self.ambiguous_width)
        return offsets or _NO_BREAKS

    def _guess(self, lines: list[str]) -> tuple[list, list[int]]:
        """Offsets where they are known without wrapping (the line fits), else None; row counts or estimates."""
        width = self._width
        breaks: list = []
        rows: list[int] = []
        add_breaks, add_rows = breaks.append, rows.append
        for line in lines:
            length = len(line)
            if length * 2 <= width and "\t" not in line:
                add_breaks(_NO_BREAKS)
                add_rows(1)
                continue
            # CJK is 3 bytes in UTF-8 and 2 cells, ASCII 1 and 1: (chars + bytes) / 2 cells.
            cells = length if line.isascii() else (length + len(line.encode("utf-8", "surrogatepass"))) >> 1
            if cells <= width and "\t" not in line:
                add_breaks(None)  # probably fits; not sure (ambiguous characters, wide emoji)
                add_rows(1)
            else:
                add_breaks(None)
                add_rows(max(1, -(-cells // width)))
        return breaks, rows

    def _exact(self, line_index: int, invalidate: bool = True) -> list[int]:
        """The line's offsets, wrapping it now if they are not known."""
        offsets = self._breaks[line_index]
        if offsets is None:
            offsets = self._breaks[line_index] = self._compute(self.document[line_index])
            self._unknown -= 1
            rows = len(offsets) + 1
            if rows != self._rows[line_index]:
                self._rows[line_index] = rows
                if invalidate:
                    self._invalidate(line_index)
        return offsets

    # -- rows <-> lines ----------------------------------------------------------

    def _invalidate(self, line_index: int) -> None:
        """Row numbers of lines below `line_index` changed."""
        if line_index < self._valid:
            self._valid = line_index

    def _first_row_table(self) -> list[int]:
        """First row of every line (then the height), rebuilt from the first stale line."""
        valid = self._valid
        first_rows = self._first_rows
        if valid < len(self._rows) or len(first_rows) != len(self._rows) + 1:
            first_rows[valid:] = accumulate(islice(self._rows, valid, None), initial=first_rows[valid])
            self._valid = len(self._rows)
        return first_rows

    def _locate(self, row: int) -> tuple[int, int]:
        """(line, section) of `row` by the current counts (estimates included), clamped to the document."""
        first_rows = self._first_row_table()
        line = bisect_right(first_rows, row, 0, len(self._rows)) - 1
        line = max(0, line)
        return line, row - first_rows[line]

    def line_at_row(self, row: int) -> tuple[int, int]:
        """(line index, section) shown on `row`, wrapping lines as needed; IndexError past the end."""
        height = self.height
        if row < 0:
            row += height
        if not 0 <= row < height:
            raise IndexError(row)
        while True:
            line, section = self._locate(row)
            if self._breaks[line] is not None:
                return line, section
            self._exact(line)  # rows below it may move: look again
            if row >= self.height:
                raise IndexError(row)

    def rows_of_line(self, line_index: int) -> range:
        """The rows of line `line_index` (wrapping it if needed)."""
        if line_index < 0:
            line_index += len(self._rows)
        if not 0 <= line_index < len(self._rows):
            raise IndexError(line_index)
        offsets = self._exact(line_index)
        first = self._first_row_table()[line_index]
        return range(first, first + len(offsets) + 1)

    # -- the WrappedDocument interface -------------------------------------------

    @property
    def wrapped(self) -> bool:
        # WrappedDocument's meaning (despite its docstring): True when no line takes more than one row.
        return self.height == len(self._rows)

    @property
    def height(self) -> int:
        """Rows of the wrapped document (lines not wrapped yet counted by their estimates)."""
        return self._first_row_table()[-1]

    @property
    def lines(self) -> list[list[str]]:
        """Every line as its rows' text (wraps the whole document)."""
        return [self.get_sections(line_index) for line_index in range(len(self._rows))]

    def get_offsets(self, line_index: int) -> list[int]:
        """Offsets within line `line_index` where it breaks; ValueError when out of bounds."""
        if line_index < 0 or line_index >= len(self._rows):
            raise ValueError(
                f"The document line index {line_index!r} is out of bounds. "
                f"The document contains {len(self._rows)!r} lines."
            )
        return self._exact(line_index)

    def get_sections(self, line_index: int) -> list[str]:
        """The text of each row of line `line_index`."""
        offsets = self._exact(line_index)
        line = self.document[line_index]
        if not offsets:
            return [line]
        bounds = [0, *offsets, len(line)]
        return [line[a:b] for a, b in zip(bounds, bounds[1:])]

    def get_tab_widths(self, line_index: int) -> list[int]:
        """Widths of the tabs of line `line_index` (tab stops from the start of the line)."""
        return [width for _, width in get_tab_widths(self.document[line_index], self._tab_width)]

    def offset_to_location(self, offset: Offset) -> Location:
        """The document location shown at `offset` (x, row) of the wrapped view."""
        x, y = offset
        x = max(0, x)
        y = max(0, y)
        if not self._width:
            line_index = min(y, len(self._rows) - 1)
            return line_index, self.get_target_document_column(line_index, x, 0)
        try:
            line_index, section = self.line_at_row(y)
        except IndexError:
            line_index, section = self.line_at_row(-1)
        return line_index, self.get_target_document_column(line_index, x, section)

    def location_to_offset(self, location: Location) -> Offset:
        """The offset (x, row) in the wrapped view of a document location."""
        line_index, column_index = location
        line_index = clamp(line_index, 0, len(self._rows) - 1)
        offsets = self.get_offsets(line_index)
        section = bisect_right(offsets, column_index)
        start = offsets[section - 1] if section else 0
        rows = self.rows_of_line(line_index)
        line = self.document[line_index]
        end = offsets[section] if section < len(offsets) else len(line)
        text = line[start:end][: column_index - start]
        return Offset(cell_len(expand_tabs_inline(text, self._tab_width)), rows[section])
