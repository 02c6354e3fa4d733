"""The manuscript editor: CJK-aware wrapping, and ghost text for the highlighted candidate.

The ghost text is TextArea's `suggestion`: drawn dimmed at the cursor and wrapped
onto the rows below as the text would wrap once accepted (ManuscriptArea draws
those rows), never part of the document, so it is never saved or undone. Pressing right at the ghost asks the app
to accept it (through the same path as any accept: one undo step, history, save).
"""

from __future__ import annotations

from textual.message import Message

from ai_writer.studio.widgets.manuscript_area import ManuscriptArea


class ManuscriptEditor(ManuscriptArea):
    # TextArea's `&:focus { border: tall $border; }` is more specific than a plain
    # `ManuscriptEditor { border: none; }`: focus would add a border, 2 cells narrower
    # rows, and the last character of a row hidden until the next rewrap. Same rule both ways.
    DEFAULT_CSS = """
    ManuscriptEditor, ManuscriptEditor:focus { height: 1fr; border: none; padding: 0 1; }
    ManuscriptEditor .text-area--suggestion { color: $text-muted; text-style: italic; }
    """

    class AcceptGhost(Message):
        """The author took the ghost text with the right arrow."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("soft_wrap", True)
        kwargs.setdefault("show_line_numbers", False)
        super().__init__(*args, **kwargs)
        self.hide_suggestion_on_blur = False

    def action_cursor_right(self, select: bool = False) -> None:
        if self.suggestion and not select:
            self.post_message(self.AcceptGhost())
            return
        super().action_cursor_right(select)
