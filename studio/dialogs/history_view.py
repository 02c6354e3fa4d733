"""Look back at earlier candidates (accepted or not) and take one."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ai_writer.studio.i18n import tr


class HistoryView(ModalScreen[str | None]):
    """Lists every candidate of every recorded request, newest first; enter returns its text."""

    DEFAULT_CSS = """
    HistoryView { align: center middle; }
    HistoryView > Vertical { width: 90%; height: 80%; border: round $accent; background: $surface; padding: 0 1; }
    HistoryView OptionList { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "close", "Close", id="history.close")]

    def __init__(self, entries: list[dict]):
        super().__init__()
        self.texts: list[str] = []
        self.options: list[Option] = []
        for entry in reversed(entries):
            outcomes = {o.get("candidate"): o.get("action") for o in entry.get("outcomes", [])}
            for index, text in enumerate(entry.get("candidates", [])):
                mark = outcomes.get(index, "")
                when = str(entry.get("time", ""))[:19].replace("T", " ")
                label = f"{when}  #{index + 1} {mark:<16} {text[:80]!s}".replace("\n", "⏎")
                self.options.append(Option(label, id=str(len(self.texts))))
                self.texts.append(text)

    def compose(self):
        with Vertical():
            yield Label(tr("history_title") if self.options else tr("history_empty"))
            yield OptionList(*self.options)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.texts[int(event.option.id)])

    def action_close(self) -> None:
        self.dismiss(None)
