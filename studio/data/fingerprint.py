"""What a manuscript looked like on disk when the studio last read or wrote it.

`changed_on_disk` is cheap: it compares the file's stat (size, mtime, ctime, inode) first
and reads and hashes the file only when the stat differs, so a program that touched the
file or saved the same text (a new inode, a new mtime) does not count as a change, while
an in-place rewrite with the mtime set back still does (its ctime moved; a rewrite within
the file system's timestamp granularity that keeps the size would go unseen).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field


def content_hash(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class DiskFingerprint:
    mtime_ns: int
    size: int
    digest: str  # content_hash of the bytes
    # The rest of the stat, to notice a rewrite that kept size and mtime.
    ctime_ns: int = field(default=0, compare=False)
    inode: int = field(default=0, compare=False)
    device: int = field(default=0, compare=False)

    @classmethod
    def of(cls, st: os.stat_result, data: bytes) -> DiskFingerprint:
        return cls(st.st_mtime_ns, st.st_size, content_hash(data), st.st_ctime_ns, st.st_ino, st.st_dev)

    def same_stat(self, st: os.stat_result) -> bool:
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev) == (
            self.size, self.mtime_ns, self.ctime_ns, self.inode, self.device)


# "There was no file": for a manuscript that did not exist when it was opened.
NO_FILE = DiskFingerprint(-1, -1, "")


def fingerprint_of(path) -> DiskFingerprint | None:
    """The file's fingerprint now (reads it whole); None when there is no file."""
    try:
        return read_with_fingerprint(path)[1]
    except FileNotFoundError:
        return None


def read_with_fingerprint(path) -> tuple[bytes, DiskFingerprint]:
    """The file's bytes and their fingerprint; read again if the file changed while being read."""
    with open(path, "rb") as file:
        for _ in range(3):
            before = os.fstat(file.fileno())
            file.seek(0)
            data = file.read()
            after = os.fstat(file.fileno())
            if (before.st_size, before.st_mtime_ns, before.st_ctime_ns) == (
                    after.st_size, after.st_mtime_ns, after.st_ctime_ns) and len(data) == after.st_size:
                break
    return data, DiskFingerprint.of(after, data)


def changed_on_disk(path, fingerprint: DiskFingerprint | None) -> bool:
    """True when the file at `path` no longer holds what `fingerprint` describes, or is gone.

    With NO_FILE (or None: there was no file when it was opened) it is True only if a file
    appeared. Errors reading the file count as changed: the caller must not overwrite what it
    cannot see.
    """
    expected_file = fingerprint is not None and fingerprint.size >= 0
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return expected_file
    except OSError:
        return True
    if not expected_file:
        return True
    if fingerprint.same_stat(st):
        return False
    if st.st_size != fingerprint.size:
        return True
    try:
        with open(path, "rb") as file:
            return content_hash(file.read()) != fingerprint.digest
    except OSError:
        return True
