"""A TextArea whose soft wrap follows Chinese line-breaking rules.

Textual's ``TextArea`` soft-wraps through ``WrappedDocument``, whose ``wrap``
and ``wrap_range`` call ``textual._wrap.compute_wrap_offsets`` -- a word
wrapper that treats a paragraph of Chinese as one long word.
``ManuscriptArea`` swaps in :class:`CJKWrappedDocument`, which computes the
offsets with :func:`studio.widgets.cjk_wrap.cjk_wrap_offsets` instead.  Nothing
in Textual is patched; both classes are plain subclasses.

Textual internals this relies on (checked against Textual 8.2):

* ``TextArea.__init__`` and ``TextArea._set_document`` (used by ``load_text``
  and the ``text`` setter) install the wrapped view with
  ``self.wrapped_document = WrappedDocument(...)`` and then build
  ``DocumentNavigator(self.wrapped_document)``.  ``ManuscriptArea`` makes
  ``wrapped_document`` a property whose setter converts such a document into a
  ``CJKWrappedDocument``, so every path (construction, ``load_text``, ``text =
  ...``) ends up with the CJK one, and the navigator is built on it.
* Resizes, ``soft_wrap`` changes and edits call ``wrapped_document.wrap`` /
  ``wrap_range``, which the subclass overrides.  A change of
  ``ambiguous_width`` rewraps through the private
  ``TextArea._rewrap_and_refresh_virtual_size`` (what resizes use).
* ``TextArea.render_line(y)`` draws row ``scroll_y + y`` of the wrapped
  document, ``_refresh_size`` sets the virtual size, ``_render_line``'s styling
  (theme base / cursor line / cursor styles, ``text-area--suggestion``) is what
  the ghost rows copy, and ``get_target_document_location`` maps mouse hits.
* ``WrappedDocument`` treats width ``0`` as "no wrapping" and keeps its state in
  ``_width``, ``_tab_width``, ``_wrap_offsets`` (line -> break offsets),
  ``_line_index_to_offsets`` (line -> rows) and ``_offset_to_line_info``
  (row -> (line, section)).  The subclass lets the base class do its
  bookkeeping at width 0 (cheap: no wrap computed), then fills in its own
  offsets and rebuilds the two row maps from the first changed line down.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import NamedTuple

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.document._document import DocumentBase, Location
from textual.document._wrapped_document import WrappedDocument
from textual.events import MouseEvent
from textual.geometry import Offset, Size, clamp
from textual.reactive import reactive
from textual.strip import Strip
from textual.widgets import TextArea

from studio.widgets.cjk_wrap import cjk_wrap_offsets

__all__ = ["CJKWrappedDocument", "GhostLayout", "ManuscriptArea", "layout_ghost"]

# A run of one row: its text and the document location of its first character
# (None: ghost text, not in the document).
Run = tuple[str, "Location | None"]


class CJKWrappedDocument(WrappedDocument):
    """A ``WrappedDocument`` that breaks lines with :func:`cjk_wrap_offsets`."""

    def __init__(
        self,
        document: DocumentBase,
        width: int = 0,
        tab_width: int = 4,
        *,
        ambiguous_width: int = 1,
    ) -> None:
        self.ambiguous_width = ambiguous_width
        """Cells counted for East Asian ambiguous characters (“ ” … —): 1 or 2."""
        super().__init__(document, width, tab_width)  # calls self.wrap

    def wrap(self, width: int, tab_width: int | None = None) -> None:
        """Wrap every line of the document at `width` (0: no wrapping)."""
        super().wrap(0, tab_width)  # tab cache and row maps, no Textual wrapping
        self._width = width
        if width:
            self._rewrap_lines(0, len(self._wrap_offsets))

    def wrap_range(
        self, start: Location, old_end: Location, new_end: Location
    ) -> None:
        """Rewrap the lines touched by an edit (called after the edit is applied)."""
        width = self._width
        self._width = 0  # base class updates its bookkeeping without wrapping
        try:
            super().wrap_range(start, old_end, new_end)
        finally:
            self._width = width
        if width:
            last_line = len(self._wrap_offsets) - 1
            top = clamp(min(start[0], old_end[0]), 0, last_line)
            bottom = clamp(max(start[0], new_end[0]), top, last_line)
            self._rewrap_lines(top, bottom + 1)

    def _rewrap_lines(self, first: int, stop: int) -> None:
        """Recompute break offsets for lines first..stop-1 and fix the row maps."""
        document = self.document
        width = self._width
        tab_width = self._tab_width
        ambiguous_width = self.ambiguous_width
        wrap_offsets = self._wrap_offsets
        changed_from: int | None = None
        for line_index in range(first, stop):
            offsets = cjk_wrap_offsets(
                document[line_index],
                width,
                tab_width,
                ambiguous_width=ambiguous_width,
            )
            if offsets != wrap_offsets[line_index]:
                wrap_offsets[line_index] = offsets
                if changed_from is None:
                    changed_from = line_index
        if changed_from is not None:
            self._rebuild_row_maps(changed_from)

    def _rebuild_row_maps(self, first: int) -> None:
        """Rebuild row <-> (line, section) maps for line `first` and below."""
        line_rows = self._line_index_to_offsets
        row_info = self._offset_to_line_info
        row = line_rows[first][0]
        del line_rows[first:]
        del row_info[row:]
        for line_index in range(first, len(self._wrap_offsets)):
            sections = len(self._wrap_offsets[line_index]) + 1
            line_rows.append(list(range(row, row + sections)))
            row_info.extend((line_index, section) for section in range(sections))
            row += sections


class GhostLayout(NamedTuple):
    """Rows of the ghost block: the cursor's line from the cursor's row on, with the ghost wrapped in."""

    key: tuple
    """What the layout was computed from (a different key: compute it again)."""
    line_index: int
    """The cursor's line."""
    first_row: int
    """Row of the wrapped document where the block starts (the cursor's row)."""
    replaced: int
    """Rows of the wrapped document the block stands in for (the line's rows from the cursor's on)."""
    rows: list[list[Run]]
    """Each row of the block as runs of real and ghost text."""
    cursor: int
    """Character index of the cursor in the first row."""
    starts_line: bool
    """The block starts at the line's first row."""

    @property
    def extra(self) -> int:
        """How many rows the ghost adds to the wrapped document."""
        return len(self.rows) - self.replaced


def _split_runs(runs: list[Run], offsets: list[int]) -> list[list[Run]]:
    """Cut one logical line, given as runs, into rows at character `offsets` (increasing)."""
    rows: list[list[Run]] = [[]]
    k = 0
    position = 0  # where the current run starts in the logical line
    for text, location in runs:
        start = 0
        while k < len(offsets) and offsets[k] < position + len(text):
            end = offsets[k] - position
            if end > start:
                rows[-1].append((text[start:end], _shift(location, start)))
                start = end
            rows.append([])
            k += 1
        if start < len(text):
            rows[-1].append((text[start:], _shift(location, start)))
        position += len(text)
    return rows


def _shift(location: Location | None, columns: int) -> Location | None:
    return None if location is None else (location[0], location[1] + columns)


def layout_ghost(
    line: str,
    line_index: int,
    column: int,
    row_start: int,
    ghost: str,
    width: int,
    tab_width: int = 4,
    *,
    ambiguous_width: int = 1,
) -> tuple[list[list[Run]], int]:
    """Rows showing `ghost` inserted at `column` of `line`, wrapped as real text would be.

    `row_start` is where the cursor's row starts in `line` (rows above it are
    left alone, so the cursor stays on its row).  The ghost may hold newlines:
    its first line continues the cursor's row, the others are rows of their
    own, and the rest of `line` follows its last line.  Tabs count as one
    space.  Returns the rows (runs of text) and the cursor's index in the first.
    """

    def wrap(runs: list[Run], first_break_at_least: int = 0) -> list[list[Run]]:
        text = "".join(piece for piece, _ in runs)
        offsets = cjk_wrap_offsets(text, width, tab_width, ambiguous_width=ambiguous_width)
        if offsets and offsets[0] < first_break_at_least:
            # Kinsoku would pull text before the cursor down a row; the cursor
            # stays put and the ghost starts the next row instead.
            head = first_break_at_least
            rest = cjk_wrap_offsets(text[head:], width, tab_width, ambiguous_width=ambiguous_width)
            offsets = [head] + [head + offset for offset in rest]
        return _split_runs(runs, offsets)

    line = line.replace("\t", " ")
    pieces = ghost.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").split("\n")
    before: Run = (line[row_start:column], (line_index, row_start))
    after: Run = (line[column:], (line_index, column))
    cursor = column - row_start
    if len(pieces) == 1:
        return wrap([before, (pieces[0], None), after], cursor), cursor
    rows = wrap([before, (pieces[0], None)], cursor)
    for piece in pieces[1:-1]:
        rows += wrap([(piece, None)])
    rows += wrap([(pieces[-1], None), after])
    return rows, cursor


class ManuscriptArea(TextArea):
    """A soft-wrapping ``TextArea`` for Chinese prose (CJK line breaking, kinsoku).

    Set :attr:`ambiguous_width` to 2 when the terminal draws ambiguous-width
    characters (“ ” ‘ ’ … —) two cells wide.
    """

    ambiguous_width: reactive[int] = reactive(1, init=False)
    """Cells counted for East Asian ambiguous-width characters: 1 (as Rich) or 2.
    Changing it rewraps the document."""

    def __init__(
        self,
        text: str = "",
        *,
        ambiguous_width: int = 1,
        soft_wrap: bool = True,
        **kwargs,
    ) -> None:
        # Plain attribute: TextArea.__init__ assigns wrapped_document (and so
        # reads this) before a reactive could be set.
        self._ambiguous_cells = self.validate_ambiguous_width(ambiguous_width)
        super().__init__(text, soft_wrap=soft_wrap, **kwargs)
        self.set_reactive(ManuscriptArea.ambiguous_width, self._ambiguous_cells)

    @property  # type: ignore[override]
    def wrapped_document(self) -> CJKWrappedDocument:
        """The wrapped view of the document (always a ``CJKWrappedDocument``)."""
        return self._cjk_wrapped_document

    @wrapped_document.setter
    def wrapped_document(self, value: WrappedDocument) -> None:
        # TextArea assigns a plain WrappedDocument in __init__ and _set_document;
        # replace it with a CJK one over the same document.
        if not isinstance(value, CJKWrappedDocument):
            value = CJKWrappedDocument(
                value.document,
                value._width,
                value._tab_width,
                ambiguous_width=self._ambiguous_cells,
            )
        self._cjk_wrapped_document = value

    def validate_ambiguous_width(self, value: int) -> int:
        if value not in (1, 2):
            raise ValueError(f"ambiguous_width must be 1 or 2, not {value!r}")
        return value

    def _watch_ambiguous_width(self, value: int) -> None:
        self._ambiguous_cells = value
        self._cjk_wrapped_document.ambiguous_width = value
        self._rewrap_and_refresh_virtual_size()
        self.refresh()
        if self.is_mounted:
            self.call_after_refresh(self.scroll_cursor_visible)

    # -- ghost text (TextArea's `suggestion`), wrapped --------------------------

    _ghost: GhostLayout | None = None

    def _ghost_shown(self) -> bool:
        return bool(self.suggestion) and (self.has_focus or not self.hide_suggestion_on_blur)

    def ghost_layout(self) -> GhostLayout | None:
        """The rows of the wrapped ghost text, or None when none is drawn (or Textual draws it).

        Computed again only when the ghost, the cursor, its line, its rows or the
        width changed.  With a selection, or without soft wrap, Textual's own
        drawing is left as it is.
        """
        if not self._ghost_shown() or not self.soft_wrap:
            return None
        selection = self.selection
        if selection.start != selection.end:
            return None
        wrapped = self._cjk_wrapped_document
        width = wrapped._width
        if width <= 0:
            return None
        line_index, column = selection.end
        try:
            line = self.document[line_index]
            line_rows = wrapped._line_index_to_offsets[line_index]
        except IndexError:
            return None
        offsets = wrapped.get_offsets(line_index)
        section = bisect_right(offsets, column)
        key = (
            self.suggestion, line_index, column, line, width, self.indent_width,
            self._ambiguous_cells, line_rows[0], len(line_rows),
        )
        ghost = self._ghost
        if ghost is not None and ghost.key == key:
            return ghost
        row_start = offsets[section - 1] if section else 0
        rows, cursor = layout_ghost(
            line, line_index, column, row_start, self.suggestion, width, self.indent_width,
            ambiguous_width=self._ambiguous_cells,
        )
        self._ghost = GhostLayout(
            key, line_index, line_rows[section], len(line_rows) - section, rows, cursor, section == 0
        )
        return self._ghost

    def _refresh_size(self) -> None:
        ghost = self.ghost_layout()
        if ghost is None:
            super()._refresh_size()
            return
        self.virtual_size = Size(0, self.wrapped_document.height + ghost.extra)
        self._refresh_scrollbars()

    def _watch_suggestion(self) -> None:
        self._refresh_size()
        if self.is_mounted and self.suggestion:
            self.call_after_refresh(self.scroll_ghost_visible)

    def _watch_has_focus(self, focus: bool) -> None:
        super()._watch_has_focus(focus)
        if self.suggestion and self.hide_suggestion_on_blur:
            self._refresh_size()

    def _watch_selection(self, previous_selection, selection) -> None:
        if self.suggestion:
            self._refresh_size()  # the ghost moved with the cursor
        super()._watch_selection(previous_selection, selection)

    def scroll_ghost_visible(self) -> None:
        """Scroll down so the ghost text shows, as far as that keeps the cursor's row on screen."""
        ghost = self.ghost_layout()
        if ghost is None:
            return
        top = self.scroll_offset.y
        height = self.scrollable_content_region.height
        overflow = ghost.first_row + len(ghost.rows) - (top + height)
        if overflow > 0 and top < ghost.first_row:
            self.scroll_to(y=min(top + overflow, ghost.first_row), animate=False)

    def render_line(self, y: int) -> Strip:
        ghost = self.ghost_layout()
        if ghost is None:
            return self._render_document_row(y)
        row = self.scroll_offset.y + y
        index = row - ghost.first_row
        if index < 0:
            return self._render_document_row(y)
        if index < len(ghost.rows):
            return self._render_ghost_row(ghost, index)
        if row - ghost.extra >= self.wrapped_document.height:
            return Strip.blank(self.size.width, self._base_style())
        return self._render_document_row(y - ghost.extra)  # a row below the block, shifted down

    # -- drawing rows of the document -------------------------------------------

    _row_cache: LRUCache | None = None

    def notify_style_update(self) -> None:
        if self._row_cache is not None:
            self._row_cache.clear()
        super().notify_style_update()

    def _render_document_row(self, y: int) -> Strip:
        """Row `scroll_y + y` of the wrapped document: the fast path where it applies, else Textual's."""
        strip = self._fast_row(y)
        return super().render_line(y) if strip is None else strip

    def _fast_row(self, y: int) -> Strip | None:
        """The row as TextArea._render_line draws it, from the row's own text and cached by it.

        TextArea clears its line cache on every edit and, soft-wrapped, keys
        every row by the selection, so each keystroke redraws every visible row,
        and each row divides its whole paragraph into rows first.  Here a row
        is drawn from its piece of the line alone and cached by that piece and
        the cursor's place in it, so a keystroke redraws only the rows that
        changed.  Rows this does not cover (a selection, bracket matching,
        syntax highlights, line numbers, tabs, the placeholder, Textual's own
        suggestion drawing) return None and go to Textual.
        """
        if not self.soft_wrap or self.show_line_numbers or self._highlights:
            return None
        if self.placeholder and self.document.line_count == 1 and not self.document[0]:
            return None
        wrapped = self._cjk_wrapped_document
        row = self.scroll_offset.y + y
        try:
            line_index, section = wrapped._offset_to_line_info[row]
        except IndexError:
            return None
        line = self.document[line_index]
        if "\t" in line:
            return None
        start, end = self.selection
        if start != end and min(start[0], end[0]) <= line_index <= max(start[0], end[0]):
            return None
        cursor_row, cursor_column = end
        bracket = self._matching_bracket_location
        if bracket is not None and self.match_cursor_bracket and line_index in (cursor_row, bracket[0]):
            return None
        is_cursor_line = cursor_row == line_index
        if is_cursor_line and self.suggestion and (self.has_focus or not self.hide_suggestion_on_blur):
            return None
        offsets = wrapped.get_offsets(line_index)
        row_start = offsets[section - 1] if section else 0
        last = section == len(offsets)
        row_end = len(line) if last else offsets[section]
        text = line[row_start:row_end] + (" " if last else "")  # TextArea pads the line for the cursor
        cursor = None
        if is_cursor_line and row_start <= cursor_column < row_start + len(text) and self._draw_cursor:
            cursor = cursor_column - row_start
        theme = self._theme
        base_style = self._base_style()
        has_cursor = self._has_cursor
        cursor_line_style = (
            theme.cursor_line_style if theme and self.highlight_cursor_line and has_cursor else None
        )
        cursor_style = theme.cursor_style if theme else None
        target_width = self.scrollable_content_region.size.width - self.gutter_width
        key = (
            text, is_cursor_line, cursor, target_width, base_style, cursor_line_style, cursor_style,
            self.highlight_cursor_line, has_cursor, theme.base_style if theme else None, self._ambiguous_cells,
        )
        cache = self._row_cache
        if cache is None:
            cache = self._row_cache = LRUCache(1024)
        strip = cache.get(key)
        if strip is not None:
            return strip
        rich_text = Text(text, end="", no_wrap=True)
        if has_cursor and cursor_line_style and is_cursor_line:
            rich_text.stylize(cursor_line_style)
        if cursor is not None and cursor_style:
            rich_text.stylize(cursor_style, cursor, cursor + 1)
        if is_cursor_line and self.highlight_cursor_line:
            line_style = cursor_line_style
        else:
            line_style = theme.base_style if theme else None
        strip = Strip(rich_text.render(self.app.console), cell_length=rich_text.cell_len)
        strip = strip.extend_cell_length(target_width, line_style).apply_style(base_style)
        cache[key] = strip
        return strip

    def _base_style(self):
        theme = self._theme
        return theme.base_style if theme and theme.base_style is not None else self.rich_style

    def _render_ghost_row(self, ghost: GhostLayout, index: int) -> Strip:
        """One row of the ghost block, styled as TextArea styles the cursor's line and its suggestion."""
        theme = self._theme
        cursor_line_style = (
            theme.cursor_line_style if theme and self.highlight_cursor_line and self._has_cursor else None
        )
        ghost_style = self.get_component_rich_style("text-area--suggestion")
        if cursor_line_style is not None:  # the ghost sits on the cursor line's background
            ghost_style = cursor_line_style + Style(
                color=ghost_style.color, bold=ghost_style.bold, dim=ghost_style.dim,
                italic=ghost_style.italic, underline=ghost_style.underline,
            )
        text = Text(end="", no_wrap=True)
        for piece, location in ghost.rows[index]:
            text.append(piece, ghost_style if location is None else cursor_line_style)
        if index == 0 and self._draw_cursor and theme and theme.cursor_style:
            if ghost.cursor >= len(text):
                text.append(" ", cursor_line_style)
            text.stylize(theme.cursor_style, ghost.cursor, ghost.cursor + 1)
        target_width = self.scrollable_content_region.size.width - self.gutter_width
        strip = Strip(text.render(self.app.console), cell_length=text.cell_len)
        strip = strip.extend_cell_length(target_width, cursor_line_style)
        if self.show_line_numbers:
            gutter_style = theme.cursor_line_gutter_style if theme and self.highlight_cursor_line else None
            if gutter_style is None and theme:
                gutter_style = theme.gutter_style
            number = str(ghost.line_index + self.line_number_start) if index == 0 and ghost.starts_line else ""
            gutter_width = self.gutter_width
            gutter = Strip([Segment(f"{number:>{gutter_width - 2}}  ", gutter_style)], cell_length=gutter_width)
            strip = Strip.join([gutter, strip])
        return strip.apply_style(self._base_style())

    def get_target_document_location(self, event: MouseEvent) -> Location:
        """Where a click lands in the document, with the ghost block's rows accounted for."""
        ghost = self.ghost_layout()
        if ghost is None:
            return super().get_target_document_location(event)
        scroll_x, scroll_y = self.scroll_offset
        target_x = event.x - self.gutter_width + scroll_x - self.gutter.left
        target_y = event.y + scroll_y - self.gutter.top
        index = target_y - ghost.first_row
        if index < 0:
            return super().get_target_document_location(event)
        if index >= len(ghost.rows):
            return self.wrapped_document.offset_to_location(Offset(target_x, target_y - ghost.extra))
        cells = 0
        last: Location | None = None
        for piece, location in ghost.rows[index]:
            for offset, character in enumerate(piece):
                if location is not None:
                    last = (location[0], location[1] + offset)
                width = cell_len(character)
                if target_x < cells + width:
                    return self.selection.end if location is None else last
                cells += width
            if location is not None:
                last = (location[0], location[1] + len(piece))
        return last if last is not None else self.selection.end
