"""Ask the author a yes/no question (y / n, enter / escape)."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ai_writer.studio.i18n import tr


class ConfirmDialog(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmDialog { align: center middle; }
    ConfirmDialog > Vertical { width: 76; height: auto; border: round $accent; padding: 1 2; background: $surface; }
    ConfirmDialog Static { height: auto; }
    ConfirmDialog Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", show=False, id="confirm.yes"),
        Binding("n,escape", "answer(False)", show=False, id="confirm.no"),
    ]

    def __init__(self, question: str, yes: str | None = None, no: str | None = None):
        super().__init__()
        self.question, self.yes, self.no = question, yes or tr("yes"), no or tr("no")

    def compose(self):
        with Vertical():
            yield Static(self.question)
            with Horizontal():
                yield Button(f"{self.yes} (y)", variant="primary", id="yes")
                yield Button(f"{self.no} (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
