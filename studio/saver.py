"""Saving manuscripts off the UI thread, one save at a time, in order.

An older text can never land on disk after a newer one: every save goes through
one thread. Each result comes back to the app as a SaveFinished message (posting
never blocks, so the UI may wait for the saver, e.g. on quit, without deadlock).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from textual.message import Message

from studio.data.manuscript_file import ManuscriptError, save_atomic, save_recovery_copy
from studio.i18n import tr


class SaveFinished(Message):
    """Posted by the saver thread: `text` is on disk at `path`, or `error` says why not."""

    def __init__(self, path: Path, text: str, error: str):
        super().__init__()
        self.path, self.text, self.error = path, text, error


def write_manuscript(path: Path, text: str, newline: str, bom: bool, data_dir) -> str:
    """Save atomically; on failure keep the text in a recovery copy. Returns '' or the error line."""
    try:
        save_atomic(path, text, newline, bom=bom)
        return ""
    except ManuscriptError as exc:
        try:
            return tr("recovery_written", error=exc, path=save_recovery_copy(path, text, base_dir=data_dir))
        except ManuscriptError as exc2:
            return tr("save_failed", error=f"{exc}; {exc2}")


class ManuscriptSaver:
    def __init__(self, post_message, data_dir=None):
        self.post_message = post_message
        self.data_dir = data_dir
        self.pending = 0  # saves queued or running (read on the UI thread)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="save")

    def save(self, path: Path, text: str, newline: str = "\n", bom: bool = False) -> Future:
        """Queue a save; the Future's result is '' or the error line."""
        self.pending += 1
        return self._thread.submit(self._save_and_report, path, text, newline, bom)

    def _save_and_report(self, path: Path, text: str, newline: str, bom: bool) -> str:
        error = write_manuscript(path, text, newline, bom, self.data_dir)
        self.post_message(SaveFinished(path, text, error))
        return error

    def finished_one(self) -> None:
        self.pending -= 1

    def close(self) -> None:
        """Wait for every queued save."""
        self._thread.shutdown(wait=True)
