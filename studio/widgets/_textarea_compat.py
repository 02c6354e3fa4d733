"""Textual TextArea private API used by the manuscript editor (checked against Textual 8.2.8).

Calls into TextArea's private methods and attributes live here.  ManuscriptArea
also overrides these private TextArea methods (they cannot move out of the
class): ``_on_key`` (characters ``str.isprintable`` refuses), ``_undo_batch`` /
``_redo_batch`` (size refresh after the selection is restored), ``_refresh_size``,
``_set_document``, ``_watch_scroll_y``, ``_watch_selection``, ``_watch_has_focus``,
``_watch_suggestion``; and it reads ``_theme``, ``_highlights``, ``_has_cursor``,
``_draw_cursor``, ``_matching_bracket_location``, ``_cursor_offset`` and
``_render_line`` when drawing rows.
"""

from __future__ import annotations

from dataclasses import replace

from textual.document._document import Document
from textual.document._document_navigator import DocumentNavigator

TESTED_TEXTUAL = ">=8.2,<9"


def set_plain_document(area, text: str, wrapped_document) -> None:
    """What TextArea._set_document does for plain text, with our wrapped view built once.

    TextArea would first build (and fully index) a plain WrappedDocument that
    the area then replaces: a second pass over every line of the document.
    `wrapped_document` makes the view from the new Document.
    """
    area._highlight_query = None
    document = Document(text)
    area.document = document
    area.wrapped_document = wrapped_document(document)
    area.navigator = DocumentNavigator(area.wrapped_document)
    area._build_highlight_map()
    area.move_cursor((0, 0))
    area._rewrap_and_refresh_virtual_size()


def recompute_cursor_offset(area) -> None:
    """Recompute the cursor's (x, row) in the wrapped view after rows above it moved."""
    area._recompute_cursor_offset()


def set_virtual_size_quietly(widget, size) -> None:
    """Set a scroll view's virtual size without a layout pass (as Textual does for a size-only update)."""
    from textual.widget import Widget

    widget.set_reactive(Widget.virtual_size, size)
    widget._scroll_update(size)


def rewrap(area) -> None:
    """Wrap the document again at the area's width and refresh its virtual size."""
    area._rewrap_and_refresh_virtual_size()


def type_text(area, text: str) -> None:
    """Insert `text` as typing does: over the selection, one undo step with neighbouring keys."""
    area._restart_blink()
    start, end = area.selection
    area._replace_via_keyboard(text, start, end)


def render_textarea_row(area, y: int):
    """TextArea's own drawing of row `y`, without TextArea.render_line's join of the whole text."""
    return area._render_line(y)


def retitle_bindings(node, titles: dict[str, str]) -> None:
    """Give the node's bindings whose ids are in `titles` those descriptions (e.g. translated)."""
    key_to_bindings = node._bindings.key_to_bindings
    for key, bindings in key_to_bindings.items():
        key_to_bindings[key] = [
            replace(binding, description=titles[binding.id]) if binding.id in titles else binding
            for binding in bindings
        ]
