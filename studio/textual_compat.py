"""The only place that touches Textual's private API (tested with the range in pyproject.toml).

- Alt+digit: xterm, tmux and most SSH clients send ESC followed by the digit; Textual maps
  that to '¡™£¢∞§¶•ªº' (a workaround for one macOS terminal). xterm's modifyOtherKeys form
  (CSI 27;mod;code ~) is read as a kitty sequence that drops the Alt. Both become alt+N here.
- Binding descriptions in the author's language: bindings are class attributes, read before
  the language is chosen, so a node's binding map is rebuilt once it is.
- Scroll views: a virtual size set without a layout pass, a border title without repainting the whole widget.
- TextArea: the manuscript editor's calls into its private methods, and the document classes
  Textual keeps in private modules (re-exported here).

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

import re

from dataclasses import replace

from textual import events
from textual.binding import Binding, BindingsMap
from textual.document._document import Document, DocumentBase, Location  # noqa: F401 (re-exported)
from textual.document._document_navigator import DocumentNavigator
from textual.document._wrapped_document import WrappedDocument  # noqa: F401 (re-exported)

TESTED_TEXTUAL = ">=8.2,<9"  # pyproject.toml pins the same range

_MODIFY_OTHER_KEYS = re.compile(r"\x1b\[27;(\d+);(\d+)~")
_ESC_DIGIT = re.compile(r"\x1b([0-9])")


def _modifier_names(modifiers: int) -> list[str]:
    bits = modifiers - 1  # xterm: 1 + shift(1) + alt(2) + ctrl(4) + meta(8)
    return [name for bit, name in ((4, "ctrl"), (2, "alt"), (8, "meta"), (1, "shift")) if bits & bit]


def keys_for_sequence(sequence: str) -> list[events.Key] | None:
    """Key events for the sequences Textual misreads, or None to let Textual read it."""
    if match := _ESC_DIGIT.fullmatch(sequence):
        return [events.Key(f"alt+{match.group(1)}", None)]
    if match := _MODIFY_OTHER_KEYS.fullmatch(sequence):
        modifiers, code = int(match.group(1)), int(match.group(2))
        char = chr(code)
        names = _modifier_names(modifiers)
        if char.isalpha() and "shift" in names and len(names) > 1:
            names.remove("shift")  # shift+alt+a arrives as alt+A
        if not names or names == ["shift"]:
            return [events.Key(char if char.isalnum() else _key_name(char), char)]
        return [events.Key("+".join(sorted(names) + [_key_name(char.lower())]), None)]
    return None


def _key_name(char: str) -> str:
    from textual.keys import _character_to_key

    return _character_to_key(char)


_installed = False


def install_key_fixes() -> None:
    """Teach Textual's input parser the alt+digit encodings above (idempotent)."""
    global _installed
    if _installed:
        return
    from textual._xterm_parser import XTermParser

    original = XTermParser._sequence_to_key_events

    def sequence_to_key_events(self, sequence: str, alt: bool = False):
        fixed = keys_for_sequence(sequence)
        if fixed is not None:
            return iter(fixed)
        return original(self, sequence, alt)

    XTermParser._sequence_to_key_events = sequence_to_key_events
    _installed = True


def set_bindings(node, bindings: list[Binding]) -> None:
    """Give a node `bindings` (e.g. with translated descriptions) on top of its classes' own
    (a Screen's tab / shift+tab among them)."""
    inherited = [binding for _, binding in node._merge_bindings()]
    node._bindings = BindingsMap([*inherited, *bindings])


# -- TextArea ---------------------------------------------------------------------------------


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


def set_border_title_quietly(widget, title: str) -> None:
    """Set a widget's border title (as the border_title descriptor stores it) and repaint only its top border row,
    not the whole widget as the descriptor does."""
    from textual.geometry import Region

    widget._border_title = widget.render_str(title).expand_tabs(4).split()[0]
    offset = widget.content_offset  # refresh() regions are relative to the content: the border row is above it
    widget.refresh(Region(-offset.x, -offset.y, widget.outer_size.width, 1))


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
