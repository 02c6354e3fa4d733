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
* ``WrappedDocument`` treats width ``0`` as "no wrapping" and keeps its state in
  ``_width``, ``_tab_width``, ``_wrap_offsets`` (line -> break offsets),
  ``_line_index_to_offsets`` (line -> rows) and ``_offset_to_line_info``
  (row -> (line, section)).  The subclass lets the base class do its
  bookkeeping at width 0 (cheap: no wrap computed), then fills in its own
  offsets and rebuilds the two row maps from the first changed line down.
"""

from __future__ import annotations

from textual.document._document import DocumentBase, Location
from textual.document._wrapped_document import WrappedDocument
from textual.geometry import clamp
from textual.reactive import reactive
from textual.widgets import TextArea

from studio.widgets.cjk_wrap import cjk_wrap_offsets

__all__ = ["CJKWrappedDocument", "ManuscriptArea"]


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
