"""A TextArea for Chinese prose: CJK soft wrap, wrapped ghost text, and big manuscripts.

Textual's ``TextArea`` soft-wraps through ``WrappedDocument``, a word wrapper
that treats a paragraph of Chinese as one long word and wraps the whole
document up front.  ``ManuscriptArea`` uses
:class:`studio.widgets.cjk_document.CJKWrappedDocument` instead (CJK line
breaking; big documents wrapped lazily: the rows on screen at once, the rest
a slice at a time while the editor is idle, the view kept still meanwhile).
Nothing in Textual is patched.

Besides that the area:

* inserts every character an input method types, also those ``str.isprintable``
  refuses (U+3000 ideographic space and the other Unicode spaces, joiners);
* never crashes on undo/redo (TextArea refreshes its size while the selection
  still points into the text just removed; here that waits until it is restored);
* counts edits (:attr:`ManuscriptArea.edit_version`) so that "is this the saved
  text?" needs no join of the whole document;
* binds ctrl+home / ctrl+end (with shift: select) to the document's start / end,
  with binding ids ``editor.document_start`` etc. for keymaps;
* styles the characters of one span one by one (:meth:`ManuscriptArea.set_span_styles`:
  the probability view); without a span, drawing costs nothing more.

How Textual's internals are used (checked against Textual 8.2.8; private calls
are in :mod:`studio.textual_compat`):

* ``TextArea.__init__`` and ``_set_document`` assign ``self.wrapped_document``;
  it is a property here whose setter turns a plain ``WrappedDocument`` into a
  ``CJKWrappedDocument``; ``_set_document`` for plain text builds ours directly.
* Resizes, ``soft_wrap`` changes and edits call ``wrapped_document.wrap`` /
  ``wrap_range``; a change of ``ambiguous_width`` rewraps as a resize does.
* ``TextArea.render_line(y)`` draws row ``scroll_y + y`` of the wrapped
  document, ``_refresh_size`` sets the virtual size, ``_render_line``'s styling
  (theme base / cursor line / cursor styles, ``text-area--suggestion``) is what
  the ghost rows and the fast row path copy, and ``get_target_document_location``
  maps mouse hits.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from contextlib import contextmanager
from itertools import islice
from time import monotonic
from typing import NamedTuple

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from ai_writer.studio.textual_compat import Location
from ai_writer.studio.textual_compat import WrappedDocument
from textual.events import MouseEvent
from textual.geometry import Offset, Size
from textual.reactive import reactive
from textual.strip import Strip
from textual.widgets import TextArea

from ai_writer.studio.i18n import tr
from ai_writer.studio import textual_compat as compat
from ai_writer.studio.widgets.cjk_document import CJKWrappedDocument
from ai_writer.studio.text.cjk_wrap import cjk_wrap_offsets

__all__ = ["CJKWrappedDocument", "GhostLayout", "ManuscriptArea", "is_typed_text", "layout_ghost"]

# Characters str.isprintable() refuses that are still text a person types: spaces other
# than U+0020 (Zs: U+3000 ideographic space, no-break spaces), format characters (Cf:
# zero-width joiners), private use (Co) and characters newer than Python's Unicode
# tables (Cn). Not controls (Cc) nor line/paragraph separators (Zl, Zp: the document
# would split the line there), nor U+E000-U+F8FF, where the kitty keyboard protocol
# puts keys such as media keys that Textual has no name for.
_TYPED_CATEGORIES = frozenset({"Zs", "Cf", "Co", "Cn"})
_KITTY_KEYS = range(0xE000, 0xF900)
_OPENING = {"{": "}", "[": "]", "(": ")"}  # TextArea's bracket pairs
_CLOSING = {closing: opening for opening, closing in _OPENING.items()}


def is_typed_text(character: str | None) -> bool:
    """True when a key's `character` is text to insert that TextArea would drop (not str.isprintable)."""
    if not character or character.isprintable():
        return False
    return all(
        c.isprintable() or (unicodedata.category(c) in _TYPED_CATEGORIES and ord(c) not in _KITTY_KEYS)
        for c in character
    )


# A run of one row: its text and the document location of its first character
# (None: ghost text, not in the document).
Run = tuple[str, "Location | None"]


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

    BINDINGS = [
        Binding("ctrl+home", "cursor_document_start", "Document start", show=False, id="editor.document_start"),
        Binding("ctrl+end", "cursor_document_end", "Document end", show=False, id="editor.document_end"),
        Binding("ctrl+shift+home", "cursor_document_start(True)", "Select to document start", show=False,
                id="editor.select_to_document_start"),
        Binding("ctrl+shift+end", "cursor_document_end(True)", "Select to document end", show=False,
                id="editor.select_to_document_end"),
    ]
    # binding id -> i18n key of its description
    BINDING_TITLES = {
        "editor.document_start": "cmd_document_start",
        "editor.document_end": "cmd_document_end",
        "editor.select_to_document_start": "cmd_select_to_start",
        "editor.select_to_document_end": "cmd_select_to_end",
    }

    REFINE_SLICE = 0.008
    """Seconds of wrapping per idle step while a big document is not wrapped in full yet."""
    REFINE_PAUSE = 0.02
    """Seconds between those steps (keys and frames go first)."""
    REFINE_QUIET = 0.3
    """No wrapping step until this many seconds after the last key."""
    BRACKET_SEARCH_LIMIT = 20_000
    """Characters searched for the bracket matching the one at the cursor (Textual searches the whole document)."""

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
        self._versions = 0  # the last edit_version handed out
        self._edit_version = 0
        self._defer_size = False  # inside an undo/redo batch: refresh the size after it
        self._size_deferred = False
        self._refine_timer = None
        self._ensuring = False
        self._last_key = float("-inf")
        super().__init__(text, soft_wrap=soft_wrap, **kwargs)
        self.set_reactive(ManuscriptArea.ambiguous_width, self._ambiguous_cells)
        compat.retitle_bindings(self, {binding_id: tr(key) for binding_id, key in self.BINDING_TITLES.items()})

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

    def _set_document(self, text: str, language: str | None) -> None:
        if language:
            super()._set_document(text, language)
        else:
            compat.set_plain_document(
                self, text,
                lambda document: CJKWrappedDocument(
                    document, tab_width=self.indent_width, ambiguous_width=self._ambiguous_cells
                ),
            )
        self._edit_version = self._new_version()

    def validate_ambiguous_width(self, value: int) -> int:
        if value not in (1, 2):
            raise ValueError(f"ambiguous_width must be 1 or 2, not {value!r}")
        return value

    def _watch_ambiguous_width(self, value: int) -> None:
        self._ambiguous_cells = value
        self._cjk_wrapped_document.ambiguous_width = value
        compat.rewrap(self)
        self.refresh()
        if self.is_mounted:
            self.call_after_refresh(self.scroll_cursor_visible)

    # -- typing: every character an input method sends ---------------------------

    async def _on_key(self, event: events.Key) -> None:
        self._last_key = monotonic()
        # TextArea inserts only str.isprintable() characters: U+3000 and the other
        # Unicode spaces would be dropped. Those go in here; the rest to TextArea.
        if not self.read_only and is_typed_text(event.character):
            event.stop()
            event.prevent_default()  # TextArea._on_key (next in the MRO) is not called
            compat.type_text(self, event.character)

    def check_consume_key(self, key: str, character: str | None = None) -> bool:
        return super().check_consume_key(key, character) or (not self.read_only and is_typed_text(character))

    # -- edits, undo and redo ------------------------------------------------------

    @property
    def edit_version(self) -> int:
        """A number for the document's content as edited here.

        Every edit gives a new number; undo and redo give back the number the
        text had at that point, and load_text / ``text = ...`` a new one.  So
        ``edit_version == version_when_saved`` means the text is the saved one
        (after typing and undoing back to it too), without comparing the text.
        """
        return self._edit_version

    def text_before(self, location: Location | None = None, max_chars: int | None = None) -> str:
        """The text before `location` (default: the cursor), only its last `max_chars` characters if given.

        Gathered line by line backwards from `location`: in a big manuscript this
        costs what it returns, where ``text`` or ``get_text_range((0, 0), ...)``
        join the whole document first.
        """
        document = self.document
        row, column = self.cursor_location if location is None else location
        row = max(0, min(row, document.line_count - 1))
        pieces = [document[row][:column]]
        length = len(pieces[0])
        while row > 0 and (max_chars is None or length < max_chars):
            row -= 1
            pieces.append(document[row])
            length += len(pieces[-1]) + len(document.newline)
        text = document.newline.join(reversed(pieces))
        return text if max_chars is None or len(text) <= max_chars else text[len(text) - max_chars:]

    def _new_version(self) -> int:
        self._versions += 1
        return self._versions

    def edit(self, edit):
        before = self._edit_version
        result = super().edit(edit)
        self._edit_version = self._new_version()
        edit.studio_versions = (before, self._edit_version)  # restored by undo / redo
        return result

    def _undo_batch(self, edits) -> None:
        with self._history_step():
            super()._undo_batch(edits)
        if edits:
            versions = getattr(edits[0], "studio_versions", None)
            self._edit_version = versions[0] if versions else self._new_version()

    def _redo_batch(self, edits) -> None:
        with self._history_step():
            super()._redo_batch(edits)
        if edits:
            versions = getattr(edits[-1], "studio_versions", None)
            self._edit_version = versions[1] if versions else self._new_version()

    @contextmanager
    def _history_step(self):
        """Hold back size refreshes while TextArea undoes or redoes a batch.

        TextArea reverts the text, refreshes the virtual size and only then puts
        the selection back.  When the refresh hides or shows the scrollbar,
        Textual rewraps and scrolls to the cursor at once, with the selection
        still pointing into text that was just removed (an accept of several
        lines at the end: "line index 9 is out of bounds").  Here the refresh
        waits until the selection is back.
        """
        self._defer_size = True
        try:
            yield
        finally:
            self._defer_size = False
            if self._size_deferred:
                self._size_deferred = False
                self._refresh_size()
            if self.is_mounted:
                self.scroll_cursor_visible()

    # -- moving to the start / end of the document --------------------------------

    def action_cursor_document_start(self, select: bool = False) -> None:
        """Move the cursor to the start of the document (select: extend the selection)."""
        if not self._has_cursor:
            self.scroll_home(animate=False)
            return
        self.move_cursor(self.document.start, select=select)

    def action_cursor_document_end(self, select: bool = False) -> None:
        """Move the cursor to the end of the document (select: extend the selection)."""
        if not self._has_cursor:
            self.scroll_end(animate=False)
            return
        self.move_cursor(self.document.end, select=select)

    def find_matching_bracket(self, bracket: str, search_from: Location) -> Location | None:
        """TextArea's bracket matching, within BRACKET_SEARCH_LIMIT characters of the cursor.

        TextArea walks the rest of the document in Python whenever the cursor
        lands on a bracket without a partner: seconds in a big manuscript.
        """
        if bracket in _OPENING:
            forward, push, partner = True, _OPENING, _CLOSING
        elif bracket in _CLOSING:
            forward, push, partner = False, _CLOSING, _OPENING
        else:
            return None
        stack: list[str] = []
        characters = islice(self._characters_from(search_from, forward), self.BRACKET_SEARCH_LIMIT)
        for candidate, location in characters:
            if candidate in push:
                stack.append(candidate)
            elif candidate in partner and stack and stack[-1] == partner[candidate]:
                stack.pop()
                if not stack:
                    return location
        return None

    def _characters_from(self, start: Location, forward: bool):
        """(character, location) from `start` on, forwards or backwards, newlines left out."""
        document = self.document
        row, column = start
        while 0 <= row < document.line_count:
            line = document[row]
            if forward:
                for index in range(max(0, column), len(line)):
                    yield line[index], (row, index)
                row, column = row + 1, 0
            else:
                for index in range(len(line) - 1 if column < 0 else min(column, len(line) - 1), -1, -1):
                    yield line[index], (row, index)
                row, column = row - 1, -1

    # -- big documents: rows wrapped when seen, the rest when idle -----------------

    def scroll_cursor_visible(self, center: bool = False, animate: bool = False) -> Offset:
        wrapped = self._cjk_wrapped_document
        if wrapped.pending_lines and self._has_cursor:
            # Wrap a screenful either way first, so that the scroll lands where it will stay.
            rows = wrapped.height
            wrapped.ensure_lines_around(self.cursor_location[0], max(1, self.scrollable_content_region.height) + 1)
            if wrapped.height != rows:
                self._refresh_size(layout=False)
        return super().scroll_cursor_visible(center=center, animate=animate)

    def render_lines(self, crop):
        self._ensure_view()
        return super().render_lines(crop)

    def _watch_scroll_y(self) -> None:
        self._ensure_view()
        super()._watch_scroll_y()

    def _ensure_view(self) -> None:
        """Wrap the lines on screen that are not wrapped yet, keeping what was on screen where it was."""
        wrapped = self._cjk_wrapped_document
        if self._ensuring or not wrapped.pending_lines or wrapped._width <= 0:
            return
        self._ensuring = True
        try:
            before = (wrapped.pending_lines, wrapped.height)
            rows = self.scrollable_content_region.height
            for _ in range(8):
                top = self.scroll_offset.y
                shift = wrapped.ensure_rows(top, top + rows + 1)
                if not shift:
                    break
                self._refresh_size(layout=False)
                self.scroll_to(y=top + shift, animate=False, immediate=True, force=True)
            if (wrapped.pending_lines, wrapped.height) != before:
                self._rows_moved()
        finally:
            self._ensuring = False

    def _rows_moved(self) -> None:
        """Rows were wrapped without an edit: fix the virtual size and the cursor's place."""
        self._refresh_size(layout=False)
        compat.recompute_cursor_offset(self)
        if self.has_focus:
            self.app.cursor_position = self.cursor_screen_offset

    def _schedule_refine(self) -> None:
        if self._refine_timer is None and self.is_mounted and self._cjk_wrapped_document.pending_lines:
            self._refine_timer = self.set_timer(self.REFINE_PAUSE, self._refine_step)

    def _refine_step(self) -> None:
        """Wrap more of a big document (REFINE_SLICE s), the view kept on the same text."""
        self._refine_timer = None
        wrapped = self._cjk_wrapped_document
        if not wrapped.pending_lines or wrapped._width <= 0:
            return
        if monotonic() - self._last_key < self.REFINE_QUIET:
            self._schedule_refine()  # the author is typing: keys first
            return
        self._ensure_view()
        top = self.scroll_offset.y
        try:
            anchor_line, _ = wrapped.line_at_row(top)
        except IndexError:
            anchor_line = None
        height = wrapped.height
        shift = wrapped.refine(self.REFINE_SLICE, anchor_line)
        if shift or wrapped.height != height:
            self._ensuring = True  # the rows on screen are wrapped already
            try:
                self._refresh_size(layout=False)
                if shift:
                    self.scroll_to(y=top + shift, animate=False, immediate=True, force=True)
            finally:
                self._ensuring = False
            self._rows_moved()
        self._schedule_refine()

    def _on_mount(self) -> None:
        self._schedule_refine()

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

    def _refresh_size(self, layout: bool = True) -> None:
        """Set the virtual size (the wrapped rows plus the ghost's).

        ``layout=False`` (rows wrapped in a big document, no edit): without
        Textual's layout pass over the whole screen, which the area's own size
        does not need unless its height follows its content.
        """
        if self._defer_size:
            self._size_deferred = True
            return
        self._schedule_refine()
        ghost = self.ghost_layout()
        if not self.soft_wrap:
            super()._refresh_size()
            return
        size = Size(0, self.wrapped_document.height + (ghost.extra if ghost is not None else 0))
        if layout or self.styles.height is None or self.styles.height.is_auto:
            self.virtual_size = size
            self._refresh_scrollbars()
        elif size != self.virtual_size:
            compat.set_virtual_size_quietly(self, size)

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

    # -- per-character styles of one span ----------------------------------------

    _span_lines: dict[int, tuple[int, tuple]] | None = None  # line -> (first column, a style per column on)

    def set_span_styles(self, start: Location | None, styles=()) -> None:
        """Draw the characters from `start` on in `styles`, one per character in document order (a line break
        counts as one character and is not drawn; None: unstyled). start None: no span (the default).

        Drawn on the rows the fast path draws and on the ghost block's rows; rows Textual draws (a
        selection, a matched bracket, tabs) stay plain."""
        lines: dict[int, tuple[int, tuple]] | None = None
        if start is not None:
            lines = {}
            document = self.document
            row, column = start
            styles = list(styles)
            position = 0
            while position < len(styles) and row < document.line_count:
                room = len(document[row]) - column
                lines[row] = (column, tuple(styles[position:position + max(0, room)]))
                position += max(0, room) + 1  # the line break
                row, column = row + 1, 0
        if lines != self._span_lines:
            self._span_lines = lines
            self.refresh()

    def _span_slice(self, line_index: int, row_start: int, row_end: int) -> tuple[int, tuple] | None:
        """(offset in the row, the styles from there) of the span's characters in columns row_start..row_end."""
        entry = self._span_lines.get(line_index)
        if entry is None:
            return None
        first, styles = entry
        low, high = max(row_start, first), min(row_end, first + len(styles))
        if low >= high:
            return None
        return low - row_start, styles[low - first:high - first]

    @staticmethod
    def _stylize_span(text: Text, span: tuple[int, tuple], offset: int = 0) -> None:
        at, styles = span
        for i, style in enumerate(styles):
            if style is not None:
                text.stylize(style, offset + at + i, offset + at + i + 1)

    # -- drawing rows of the document -------------------------------------------

    _row_cache: LRUCache | None = None

    def notify_style_update(self) -> None:
        if self._row_cache is not None:
            self._row_cache.clear()
        super().notify_style_update()

    def _render_document_row(self, y: int) -> Strip:
        """Row `scroll_y + y` of the wrapped document: the fast path where it applies, else Textual's."""
        strip = self._fast_row(y)
        if strip is not None:
            return strip
        if self.placeholder and self.document.line_count == 1 and not self.document[0]:
            return super().render_line(y)  # the placeholder
        # TextArea.render_line would first join the whole text (to test for the placeholder).
        return compat.render_textarea_row(self, y)

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
        spans = self._span_lines
        if is_cursor_line and self.suggestion and (self.has_focus or not self.hide_suggestion_on_blur):
            # The ghost block draws the cursor's row on; the line's rows above it are plain text
            # (drawn here only for a styled span: otherwise Textual draws them, as it always has).
            ghost = self._ghost if spans else None
            if ghost is None or ghost.line_index != line_index or row >= ghost.first_row:
                return None
        offsets = wrapped.get_offsets(line_index)
        row_start = offsets[section - 1] if section else 0
        last = section == len(offsets)
        row_end = len(line) if last else offsets[section]
        span = self._span_slice(line_index, row_start, row_end) if spans else None
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
            self.highlight_cursor_line, has_cursor, theme.base_style if theme else None, self._ambiguous_cells, span,
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
        if span is not None:
            self._stylize_span(rich_text, span)
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
        spans = self._span_lines
        for piece, location in ghost.rows[index]:
            offset = len(text)
            text.append(piece, ghost_style if location is None else cursor_line_style)
            if spans and location is not None:
                span = self._span_slice(location[0], location[1], location[1] + len(piece))
                if span is not None:
                    self._stylize_span(text, span, offset)
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
