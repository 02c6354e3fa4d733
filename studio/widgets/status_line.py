"""One line at the bottom: model, backend/device, generation speed, save state, last message."""

from __future__ import annotations

import time

from textual.reactive import reactive
from textual.widgets import Static

from studio.i18n import tr


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine { height: 1; background: $panel; color: $text; padding: 0 1; }
    StatusLine.-error { background: $error; color: $text; }
    """

    model: reactive[str] = reactive("")
    activity: reactive[str] = reactive("")  # "generating · 38 chars/s", "stopped", ...
    message: reactive[str] = reactive("")
    save_error: reactive[str] = reactive("")
    saving: reactive[bool] = reactive(False)
    saved_at: reactive[float | None] = reactive(None)
    dirty: reactive[bool] = reactive(False)

    def on_mount(self) -> None:
        self.set_interval(1.0, self.refresh_text)  # "saved N s ago" moves on
        for name in ("model", "activity", "message", "save_error", "saving", "saved_at"):
            self.watch(self, name, self.refresh_text, init=False)

    def save_state(self) -> str:
        if self.save_error:
            return self.save_error
        if self.saving:
            return tr("saving")
        if self.saved_at is None:
            return tr("unsaved")
        seconds = int(time.monotonic() - self.saved_at)
        return tr("saved_now") if seconds < 1 else tr("saved_ago", seconds=seconds)

    def refresh_text(self) -> None:
        parts = [p for p in (self.model, self.activity, self.save_state(), self.message) if p]
        self.update(" │ ".join(parts), layout=False)  # one line, fixed height: no relayout
        self.set_class(bool(self.save_error), "-error")
