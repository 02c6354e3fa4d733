"""The manuscript the studio has open: where it lives, how it is written, who holds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ai_writer.studio.data.manuscript_file import DiskFingerprint, ManuscriptError, ManuscriptLocked, load_manuscript, newer_recovery_copy
from ai_writer.studio.data.manuscript_lock import ManuscriptLock
from ai_writer.studio.i18n import tr


@dataclass
class OpenManuscript:
    path: Path
    text: str = ""  # as loaded (CRLF turned into LF for the editor)
    newline: str = "\n"
    bom: bool = False
    encoding: str = "UTF-8"
    fingerprint: DiskFingerprint | None = None  # the file as last loaded or saved; None: not on disk yet
    lock: ManuscriptLock | None = None
    read_only: bool = False  # another studio has it open
    save_to: Path | None = None  # after a conflict: the author's version goes beside the file
    recovery: Path | None = None  # the recovery copy holding text not yet in the file
    notes: list[str] = field(default_factory=list)  # what to tell the author on opening

    @classmethod
    def open(cls, path: Path, data_dir=None) -> "OpenManuscript":
        """Read (or start) the manuscript at `path` and lock it; ManuscriptError if it cannot be edited."""
        opened = cls(path)
        if path.exists():
            loaded = load_manuscript(path, for_editing=True)
            opened.text = loaded.text.replace("\r\n", "\n")
            opened.newline, opened.bom, opened.encoding = loaded.newline, loaded.bom, loaded.encoding
            opened.fingerprint = loaded.fingerprint
        try:
            opened.lock = ManuscriptLock.acquire(path)
            if opened.lock.warning:
                opened.notes.append(opened.lock.warning)
        except ManuscriptLocked as exc:
            opened.read_only = True
            opened.notes.append(tr("opened_read_only", error=exc))
        except ManuscriptError as exc:
            opened.notes.append(str(exc))
        return opened

    def newer_recovery(self, data_dir=None) -> Path | None:
        """A recovery copy of this manuscript newer than the file (and different), if one is left."""
        if self.read_only:
            return None
        return newer_recovery_copy(self.path, self.fingerprint, base_dir=data_dir)

    @property
    def target(self) -> Path:
        return self.save_to or self.path

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
