"""The line at the bottom: save state, the latest message, activity, the model, the manuscript.

Ordered by importance, and the least important part is cut first: the save state
and the latest message (errors such as "NOT SAVED … your text is in …") are always
shown whole; when they do not fit on one row the line grows to as many rows as
they need. Then, as space allows: a hint (the alternatives of the character at the
cursor, in the probability view), activity, a short model name, the manuscript's
encoding and short path. Long descriptions (why this backend was chosen) belong
in `details`, shown elsewhere (and as the line's tooltip), never on the line.
"""

from __future__ import annotations

import time

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from ai_writer.studio.i18n import tr
from ai_writer.studio.text.cjk_wrap import cjk_wrap_offsets

SEPARATOR = " │ "
MIN_PIECE = 6  # cells: a cut part shorter than this is left out instead
SAVE_STYLE = Style(bold=True)
EXTRA_STYLE = Style(dim=True)  # activity, file, model: what may be cut


def cut_end(text: str, cells: int) -> str:
    """`text` in at most `cells` cells, its end replaced by … when it is cut."""
    if cell_len(text) <= cells:
        return text
    while text and cell_len(text) > cells - 1:
        text = text[:-1]
    return text + "…"


def cut_start(text: str, cells: int) -> str:
    """`text` in at most `cells` cells, its start replaced by … when it is cut (paths: the name stays)."""
    if cell_len(text) <= cells:
        return text
    while text and cell_len(text) > cells - 1:
        text = text[1:]
    return "…" + text


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: 1; background: $panel; color: $text; padding: 0 1; }
    StatusLine.-error { background: $error; color: $text; }
    """

    model: reactive[str] = reactive("")  # short: "zh-novel-rwkv7 · torch+native/cpu"
    activity: reactive[str] = reactive("")  # "generating · 38 chars/s", "stopped", ...
    message: reactive[str] = reactive("")  # the latest message or error
    save_error: reactive[str] = reactive("")  # "NOT SAVED: …; your text is in …" ('' once a save succeeds)
    saving: reactive[bool] = reactive(False)
    saved_at: reactive[float | None] = reactive(None)  # time.monotonic() of the last save
    dirty: reactive[bool] = reactive(False)  # the editor holds changes not yet on disk
    encoding: reactive[str] = reactive("")  # the manuscript's encoding, e.g. "GB18030"
    manuscript: reactive[str] = reactive("")  # the manuscript's path, short ("~/novels/book.txt")
    hint: reactive[str] = reactive("")  # about the cursor's place: "“的” 62% · 了 18%" ('' for none)
    details: reactive[str] = reactive("")  # long description (model, backend and why): tooltip, details view

    WATCHED = ("model", "hint", "activity", "message", "save_error", "saving", "saved_at", "dirty", "encoding", "manuscript")

    def on_mount(self) -> None:
        self.set_interval(1.0, self.refresh_text)  # "saved N s ago" moves on
        for name in self.WATCHED:
            self.watch(self, name, self.refresh_text, init=False)
        self.refresh_text()

    def watch_details(self, details: str) -> None:
        self.tooltip = details or None

    def on_resize(self) -> None:
        self.refresh_text()

    def save_state(self) -> str:
        if self.save_error:
            return self.save_error
        if self.saving:
            return tr("saving")
        if self.dirty:
            return tr("unsaved_changes")
        if self.saved_at is None:
            return tr("unsaved")
        seconds = int(time.monotonic() - self.saved_at)
        return tr("saved_now") if seconds < 1 else tr("saved_ago", seconds=seconds)

    def file_part(self, cells: int) -> str:
        """Encoding and path in at most `cells` cells: the path is cut from its start, then left out."""
        encoding, path = self.encoding, self.manuscript
        whole = " · ".join(p for p in (encoding, path) if p)
        if cell_len(whole) <= cells or not path:
            return whole if cell_len(whole) <= cells else ""
        head = f"{encoding} · " if encoding else ""
        room = cells - cell_len(head)
        if room >= MIN_PIECE:
            return head + cut_start(path, room)
        return encoding if encoding and cell_len(encoding) <= cells else ""

    def compose_line(self, width: int) -> list[Text]:
        """The rows to show at `width` cells: the save state and message whole, then what fits."""
        essential = [(self.save_state(), SAVE_STYLE), (self.message, Style())]
        line = Text(no_wrap=True, overflow="crop")
        for text, style in essential:
            if text:
                if line.plain:
                    line.append(SEPARATOR)
                line.append(text.replace("\n", " "), style)
        if cell_len(line.plain) > width > 0:  # too long for one row: wrapped, as the manuscript is
            offsets = cjk_wrap_offsets(line.plain, width)
            return list(line.divide(offsets))
        for kind in ("hint", "activity", "model", "file"):
            room = width - cell_len(line.plain) - (cell_len(SEPARATOR) if line.plain else 0)
            if room < MIN_PIECE:
                break
            if kind == "file":
                part = self.file_part(room)
            else:
                value = {"hint": self.hint, "activity": self.activity, "model": self.model}[kind].replace("\n", " ")
                part = cut_end(value, room)
            if not part:
                continue
            if line.plain:
                line.append(SEPARATOR)
            line.append(part, Style() if kind == "hint" else EXTRA_STYLE)
        return [line]

    def refresh_text(self) -> None:
        rows = self.compose_line(self.size.width)
        if len(rows) != self.styles.height.value:
            self.styles.height = len(rows)  # grows only while the save state and message need it
        self.update(Text("\n", no_wrap=True).join(rows), layout=False)  # fixed height: no relayout
        self.set_class(bool(self.save_error), "-error")
