"""Saving manuscripts off the UI thread, one save at a time, in order.

An older text can never land on disk after a newer one: every save goes through
one thread. The UI thread only hands the text over; encoding, hashing and writing
(25 MB included) happen on the saver thread. Each result comes back to the app as a
SaveFinished message (posting never blocks, so the UI may wait for the saver, e.g.
on quit, without deadlock), with a typed `outcome` to branch on and, whenever the
manuscript could not be written, the text kept in a recovery copy.
"""

from __future__ import annotations

import enum
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from textual.message import Message

from ai_writer.studio.data.manuscript_file import (
    DiskFingerprint,
    ManuscriptConflict,
    ManuscriptEncodingError,
    ManuscriptError,
    convert_to_utf8_keeping_backup,
    discard_recovery_copy,
    save_atomic,
    save_recovery_copy,
)
from ai_writer.studio.i18n import tr


class SaveOutcome(enum.Enum):
    SAVED = "saved"
    CONFLICT = "conflict"  # the file changed on disk or was deleted since it was read: nothing written
    ENCODING = "encoding"  # a character the file's encoding cannot hold: nothing written
    RECOVERY = "recovery"  # could not save (full disk, read-only, ...): the text is in the recovery copy
    FAILED = "failed"  # could not save, and the recovery copy could not be written either


class SaveFinished(Message):
    """Posted by the saver thread: `text` is on disk at `path`, or `error` says why not.

    outcome: a SaveOutcome. fingerprint: the file as now on disk (SAVED), for the next save's
    `expected`. recovery: where the text was kept when it was not saved (also for CONFLICT and
    ENCODING, when that copy could be written). exception: the ManuscriptError with its details
    (ManuscriptConflict.deleted, ManuscriptEncodingError.char/.line). encoding: what the file
    is now in ("UTF-8" after a conversion); backup: the original bytes' copy after a conversion.
    """

    def __init__(self, path: Path, text: str, error: str, *, outcome: SaveOutcome = SaveOutcome.SAVED,
                 fingerprint: DiskFingerprint | None = None, recovery: Path | None = None,
                 exception: ManuscriptError | None = None, encoding: str = "UTF-8", backup: Path | None = None):
        super().__init__()
        self.path, self.text, self.error = path, text, error
        self.outcome = outcome
        self.fingerprint = fingerprint
        self.recovery = recovery
        self.exception = exception
        self.encoding = encoding
        self.backup = backup

    @property
    def saved(self) -> bool:
        return self.outcome is SaveOutcome.SAVED


def _failure_outcome(exc: ManuscriptError) -> SaveOutcome:
    if isinstance(exc, ManuscriptConflict):
        return SaveOutcome.CONFLICT
    if isinstance(exc, ManuscriptEncodingError):
        return SaveOutcome.ENCODING
    return SaveOutcome.RECOVERY


def perform_save(path: Path, text: str, newline: str = "\n", bom: bool = False, data_dir=None, *,
                 encoding: str = "UTF-8", expected: DiskFingerprint | None = None,
                 convert_to_utf8: bool = False) -> SaveFinished:
    """Save (or convert to UTF-8, keeping the original bytes beside); on failure keep a recovery copy."""
    try:
        if convert_to_utf8:
            conversion = convert_to_utf8_keeping_backup(path, text, newline=newline, expected=expected)
            return SaveFinished(path, text, "", fingerprint=conversion.fingerprint, backup=conversion.backup)
        extra = {}  # only what differs from the defaults: callers and tests may wrap save_atomic
        if encoding != "UTF-8":
            extra["encoding"] = encoding
        if expected is not None:
            extra["expected"] = expected
        fingerprint = save_atomic(path, text, newline, bom=bom, **extra)
        return SaveFinished(path, text, "", fingerprint=fingerprint, encoding=encoding)
    except ManuscriptError as exc:
        outcome = _failure_outcome(exc)
        try:
            recovery = save_recovery_copy(path, text, base_dir=data_dir)
        except ManuscriptError as exc2:
            error = tr("save_failed", error=f"{exc}; {exc2}")
            return SaveFinished(path, text, error, outcome=SaveOutcome.FAILED if outcome is SaveOutcome.RECOVERY
                                else outcome, exception=exc, encoding=encoding)
        return SaveFinished(path, text, tr("recovery_written", error=exc, path=recovery), outcome=outcome,
                            recovery=recovery, exception=exc, encoding=encoding)


def write_manuscript(path: Path, text: str, newline: str, bom: bool, data_dir) -> str:
    """Save atomically; on failure keep the text in a recovery copy. Returns '' or the error line."""
    return perform_save(path, text, newline, bom, data_dir).error


LINES_PER_JOIN = 4096


def join_lines(lines: list[str]) -> str:
    """The editor's lines as one text, joined a block at a time: the UI thread gets the GIL between blocks."""
    if len(lines) <= LINES_PER_JOIN:
        return "\n".join(lines)
    blocks = ["\n".join(lines[i:i + LINES_PER_JOIN]) for i in range(0, len(lines), LINES_PER_JOIN)]
    return "\n".join(blocks)


class ManuscriptSaver:
    def __init__(self, post_message, data_dir=None):
        self.post_message = post_message
        self.data_dir = data_dir
        self.pending = 0  # saves queued or running (read on the UI thread)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="save")
        self._recovered: set[Path] = set()  # paths whose recovery copy this saver wrote (saver thread only)
        self._thread.submit(int)  # start the thread now, not while the first save is being handed over
        self.last_finished: SaveFinished | None = None  # the latest save's outcome (set on the saver thread)
        # What this saver's own saves turned each expected fingerprint into (saver thread only): a save
        # queued before the previous one finished expects the file as the UI last knew it.
        self._successor: dict[tuple[Path, DiskFingerprint], DiskFingerprint] = {}

    def save(self, path: Path, text: str | list[str], newline: str = "\n", bom: bool = False, *, encoding: str = "UTF-8",
             expected: DiskFingerprint | None = None, convert_to_utf8: bool = False) -> Future:
        """Queue a save; the Future's result is '' or the error line (the SaveFinished posted has all).

        text: the text, or the editor's lines (joined with "\n" on the saver thread).

        encoding/bom/newline: as loaded (Manuscript.encoding, .bom, .newline). expected: the
        fingerprint of the last load or save (ManuscriptConflict if the file changed since).
        convert_to_utf8: keep the file's bytes as NAME.orig-ENC.txt, then save as UTF-8.
        """
        self.pending += 1
        return self._thread.submit(self._save_and_report, path, text, newline, bom, encoding, expected,
                                   convert_to_utf8)

    def _save_and_report(self, path, text, newline, bom, encoding, expected, convert_to_utf8) -> str:
        if not isinstance(text, str):
            text = join_lines(text)
        start, seen = expected, set()
        while (Path(path), expected) in self._successor and expected not in seen:
            seen.add(expected)
            expected = self._successor[(Path(path), expected)]
        try:
            finished = perform_save(path, text, newline, bom, self.data_dir, encoding=encoding, expected=expected,
                                    convert_to_utf8=convert_to_utf8)
        except Exception as exc:  # a bug must still be reported, or the status line says "saving…" for good
            finished = SaveFinished(path, text, tr("save_failed", error=f"{type(exc).__name__}: {exc}"),
                                    outcome=SaveOutcome.FAILED, encoding=encoding)
        if finished.recovery is not None:
            self._recovered.add(Path(path))
        elif finished.saved and Path(path) in self._recovered:
            # The copy this saver kept holds an older text than the file now does.
            self._recovered.discard(Path(path))
            discard_recovery_copy(path, base_dir=self.data_dir)
        if finished.saved and start is not None and finished.fingerprint is not None:
            self._successor[(Path(path), start)] = self._successor[(Path(path), expected)] = finished.fingerprint
        self.last_finished = finished
        self.post_message(finished)
        return finished.error

    def wait(self) -> None:
        """Block until every save queued so far has finished."""
        self._thread.submit(lambda: None).result()

    def finished_one(self) -> None:
        self.pending -= 1

    def close(self) -> None:
        """Wait for every queued save."""
        self._thread.shutdown(wait=True)
