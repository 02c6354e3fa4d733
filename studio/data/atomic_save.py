"""Replacing a file all at once, so a crash or a full disk never leaves half a manuscript.

`write_bytes_atomic` writes a temporary file beside the target (.NAME.tmp-PID-XXXX), fsyncs
it, renames it over the target and fsyncs the folder: after a crash or power cut the file
holds the old or the new bytes in full. With `expected` it first checks that the file still
is what the caller read (ManuscriptConflict otherwise). `save_atomic` encodes text first
(ManuscriptEncodingError before anything is touched). Failures are one line (ManuscriptError).
"""

from __future__ import annotations

import errno
import glob
import os
import secrets
import stat
from pathlib import Path

from ai_writer.studio.data.encodings import encode_manuscript
from ai_writer.studio.data.fingerprint import DiskFingerprint, changed_on_disk, read_with_fingerprint
from ai_writer.studio.data.manuscript_errors import ManuscriptConflict, ManuscriptError
from ai_writer.studio.i18n import tr


_REASONS = {
    errno.ENOSPC: "mf_reason_no_space",
    errno.EACCES: "mf_reason_permission",
    errno.EPERM: "mf_reason_permission",
    errno.EROFS: "mf_reason_read_only_disk",
    errno.EISDIR: "mf_reason_is_folder",
    errno.ENAMETOOLONG: "mf_reason_name_too_long",
}
if hasattr(errno, "EDQUOT"):
    _REASONS[errno.EDQUOT] = "mf_reason_quota"


def reason_of(exc: OSError, target: Path) -> str:
    if exc.errno == errno.ENOENT or isinstance(exc, FileNotFoundError):
        return tr("mf_reason_no_folder", folder=target.parent)
    if exc.errno in _REASONS:
        return tr(_REASONS[exc.errno])
    return (exc.strerror or str(exc) or type(exc).__name__).rstrip(".").lower()


def save_failed(name: str, reason: str) -> ManuscriptError:
    return ManuscriptError(tr("mf_cannot_save", name=name, reason=reason), reason)


def conflict_error(name: str, target: Path) -> ManuscriptConflict:
    try:
        _, disk = read_with_fingerprint(target)
    except FileNotFoundError:
        reason = tr("mf_reason_deleted")
        return ManuscriptConflict(tr("mf_conflict", name=name, reason=reason), reason, deleted=True)
    except OSError:
        disk = None
    reason = tr("mf_reason_changed")
    return ManuscriptConflict(tr("mf_conflict", name=name, reason=reason), reason, deleted=False, disk=disk)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists (POSIX)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. owned by someone else: it exists
        return True
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete the temporary files (.NAME.tmp-PID-XXXX) that a save killed mid-write left beside
    `target`: those whose process is gone. Returns what was removed. POSIX only (elsewhere a
    process cannot be asked about safely, so nothing is removed)."""
    if os.name != "posix":
        return []
    removed = []
    for temp in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        pid = temp.name.rsplit(".tmp-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            try:
                temp.unlink()
                removed.append(temp)
            except OSError:
                pass
    return removed


def write_bytes_atomic(path, data: bytes, *, expected: DiskFingerprint | None = None,
                       name: str | None = None) -> DiskFingerprint:
    """Replace the file at `path` with `data`, all at once; returns the new file's fingerprint.

    expected: when given, ManuscriptConflict if the file no longer matches it (changed, or
    deleted: the author decides whether to write it again), checked before writing and once
    more just before the rename. The file's permission bits and owner are kept; a symbolic
    link is followed (the file it points to is replaced, the link stays). On failure the old
    file is left as it was, no temporary file remains, and ManuscriptError says why.
    """
    name = name or str(path)
    target = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
    folder = target.parent
    if expected is not None and changed_on_disk(target, expected):
        raise conflict_error(name, target)
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise save_failed(name, reason_of(exc, target)) from None
    if old is not None:
        if stat.S_ISDIR(old.st_mode):
            raise save_failed(name, tr("mf_reason_target_folder"))
        # Refuse a read-only file as editors do (root could write it anyway).
        if not old.st_mode & 0o222 or not os.access(target, os.W_OK):
            raise save_failed(name, tr("mf_reason_read_only_file"))
    mode = stat.S_IMODE(old.st_mode) if old is not None else 0o666
    remove_stale_temporaries(target)
    temp = folder / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    fd = None
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode & 0o777 or 0o600)
        _write_all(fd, data)
        os.fsync(fd)
        if old is not None:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, mode)
            if hasattr(os, "fchown") and (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
                try:  # only root can give the file back to its owner; others keep theirs
                    os.fchown(fd, old.st_uid, old.st_gid)
                except OSError:
                    pass
        written = os.fstat(fd)
        os.close(fd)
        fd = None
        if old is not None and not hasattr(os, "fchmod"):
            os.chmod(temp, mode)
        # Writing a large file takes a while: look again, as late as possible.
        if expected is not None and changed_on_disk(target, expected):
            raise conflict_error(name, target)
        os.replace(temp, target)
    except BaseException as exc:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise save_failed(name, reason_of(exc, target)) from None
        raise
    _fsync_folder(folder)
    try:
        written = os.stat(target)  # the rename moved ctime on most systems
    except OSError:
        pass
    return DiskFingerprint.of(written, data)


def save_atomic(path, text: str, newline: str = "\n", *, bom: bool = False, encoding: str = "UTF-8",
                expected: DiskFingerprint | None = None) -> DiskFingerprint:
    """Replace the file at `path` with `text` in `encoding`, all at once; returns the new fingerprint.

    newline "\r\n" writes every line ending as CRLF; "\n" writes the text as it is. bom
    writes the encoding's byte order mark first (UTF-8, UTF-16). A character the encoding
    cannot hold raises ManuscriptEncodingError (naming it and its line) and nothing is
    written. expected: see write_bytes_atomic (ManuscriptConflict, nothing written).
    """
    name = str(path)
    data = encode_manuscript(text, encoding, bom=bom, newline=newline, name=name)
    return write_bytes_atomic(path, data, expected=expected, name=name)


