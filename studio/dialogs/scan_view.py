"""The surprise scan view (f7): the scan's progress (escape stops it), then the most surprising spans, the
repeated loops and every paragraph's bits/char (the worst highlighted) in one list; enter on a row closes
the view with that row's position in the manuscript, for the editor's cursor.

The scan runs on the generation service's thread (`submit(on_event) -> Job`, e.g. through
GenerationService.submit_task): its events land in a StreamBuffer that a timer here drains, so the
UI thread never runs model code and the worker never waits for the UI.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, ProgressBar, Static

from ai_writer.backends.writing.generation import Failed, Finished
from ai_writer.backends.writing.scan import ScanFinished, ScanProgress
from ai_writer.studio import textual_compat as compat
from ai_writer.studio.i18n import tr
from ai_writer.studio.scan_report import (
    loop_label, paragraph_label, span_label, title, top_bits_per_char, worst_paragraphs,
)
from ai_writer.studio.stream_buffer import StreamBuffer
from ai_writer.studio.widgets.scan_list import Row, ScanList

DRAIN_SECONDS = 0.1


def scan_rows(scan) -> list[Row]:
    """Spans, loops, paragraphs: a heading each, then one row per item that leads to where it is."""
    rows = [Row(tr("sc_spans", threshold=scan.threshold), kind="heading")]
    rows += [Row(f"  {span_label(span)}", span.start) for span in scan.spans] or [Row(f"  {tr('sc_none')}")]
    rows.append(Row(tr("sc_loops"), kind="heading"))
    rows += [Row(f"  {loop_label(loop)}", loop.starts[0]) for loop in scan.loops] or [Row(f"  {tr('sc_none')}")]
    rows.append(Row(tr("sc_paragraphs"), kind="heading"))
    top, worst = top_bits_per_char(scan), worst_paragraphs(scan)
    rows += [Row(paragraph_label(p, top), p.start, "worst" if i in worst else "") for i, p in enumerate(scan.paragraphs)]
    return rows


def location_of(text: str, position: int) -> tuple[int, int]:
    """(row, column) in the editor of a character position in its text (line breaks '\\n' or '\\r\\n')."""
    position = max(0, min(position, len(text)))
    row = text.count("\n", 0, position)
    start = text.rfind("\n", 0, position) + 1
    return row, position - start


class ScanView(ModalScreen[int | None]):
    DEFAULT_CSS = """
    ScanView { align: center middle; }
    ScanView > Vertical { width: 100%; max-width: 120; height: 100%; background: $surface; border: round $accent; }
    ScanView #scan-title { text-style: bold; color: $accent; padding: 0 1; }
    ScanView #scan-status { padding: 0 1; height: auto; }
    ScanView ProgressBar { padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "close", "Close", id="scan.close")]

    def __init__(self, submit):
        super().__init__()
        compat.retitle_bindings(self, {"scan.close": tr("sc_key_close")})
        self.submit = submit
        self.buffer = StreamBuffer()
        self.job = None
        self.scan = None
        self._timer = None

    def compose(self):
        with Vertical():
            yield Static(tr("sc_title_scanning"), id="scan-title", markup=False)
            yield Static("", id="scan-status", markup=False)
            yield ProgressBar(id="scan-progress", show_eta=False)
            yield Footer()

    def on_mount(self) -> None:
        self.job = self.submit(self.buffer.push)
        self._timer = self.set_interval(DRAIN_SECONDS, self.drain)

    @property
    def status(self) -> Static:
        return self.query_one("#scan-status", Static)

    def drain(self) -> None:
        for event in self.buffer.drain():
            if getattr(event, "request_id", None) != self.job.id:
                continue
            if isinstance(event, ScanProgress):
                self.query_one(ProgressBar).update(total=max(1, event.total_chars), progress=event.done_chars)
                self.status.update(tr("sc_scanning", done=event.done_chars, total=event.total_chars))
            elif isinstance(event, ScanFinished):
                self.finish(event.scan)
            elif isinstance(event, Failed):
                self.finish(None, tr("sc_failed", error=event.message))
            elif isinstance(event, Finished):  # cancelled before it started (another request came first)
                self.finish(None)

    def finish(self, scan, message: str | None = None) -> None:
        self._timer.stop()
        self.query_one(ProgressBar).display = False
        if scan is None:
            self.status.update(message or tr("sc_stopped"))
            return
        self.scan = scan
        self.query_one("#scan-title", Static).update(title(scan))
        self.status.display = False
        found = ScanList(scan_rows(scan), id="scan-list")
        compat.retitle_bindings(found, {"scan.go": tr("sc_key_go")})
        self.query_one(Vertical).mount(found, before=self.query_one(Footer))
        found.focus()

    def on_scan_list_chosen(self, message: ScanList.Chosen) -> None:
        self.dismiss(message.position)

    def action_close(self) -> None:
        if self.job is not None and not self.job.done:
            self.job.cancel()
        self.dismiss(None)
