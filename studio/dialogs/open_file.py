"""Ask for a file path: a manuscript to open, or where to save one."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from ai_writer.studio.i18n import tr


class OpenFileDialog(ModalScreen[str | None]):
    DEFAULT_CSS = """
    OpenFileDialog { align: center middle; }
    OpenFileDialog > Vertical { width: 70; height: auto; border: round $accent; padding: 1 2; background: $surface; }
    OpenFileDialog Horizontal { height: auto; align-horizontal: right; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="file_dialog.cancel")]

    def __init__(self, start: str = "", prompt: str | None = None, button: str | None = None):
        super().__init__()
        self.start = start
        self.prompt, self.button = prompt or tr("open_prompt"), button or tr("open")

    def compose(self):
        with Vertical():
            yield Label(self.prompt)
            yield Input(self.start, id="path")
            with Horizontal():
                yield Button(self.button, variant="primary", id="open")
                yield Button(tr("cancel"), id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.query_one("#path", Input).value.strip() or None if event.button.id == "open" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
