"""Reading and saving manuscripts without ever losing the author's text.

Reading: UTF-8 (a BOM is tolerated); binary or non-UTF-8 files are refused with
one line naming the file (and, for bad UTF-8, the line).

Saving: `save_atomic` writes a temporary file beside the target, fsyncs it,
renames it over the target and fsyncs the folder, so after a crash or power
cut the file holds either the old or the new text in full, never a mix. When
saving fails (full disk, read-only file or folder, missing folder) the old file
is untouched and `ManuscriptError` says why in one line; the UI can then keep
the text open and offer `save_recovery_copy`, which writes it to the user's
data folder.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import secrets
import stat
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

APP_NAME = "ai-writer-studio"
# Overrides the per-user data folder (recovery copies, new manuscripts); used by tests.
DATA_DIR_ENV = "AI_WRITER_STUDIO_DATA_DIR"
BINARY_PROBE = 8192


class ManuscriptError(Exception):
    """One line for the user: the file, and what went wrong."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason  # for a failed save: why, without the file name


@dataclass(frozen=True)
class Manuscript:
    """A manuscript as read: the text exactly as in the file (CRLF kept), and its style."""

    text: str
    newline: str = "\n"  # "\r\n" when the file mostly used CRLF line endings
    bom: bool = False  # the file started with a UTF-8 byte order mark


def _display(path) -> str:
    return str(path)


def _read_bytes(path) -> tuple[bytes, str]:
    if str(path) == "-":
        return sys.stdin.buffer.read(), "standard input"
    name = _display(path)
    try:
        return Path(path).read_bytes(), name
    except FileNotFoundError:
        raise ManuscriptError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ManuscriptError(f"{name}: is a folder, not a manuscript") from None
    except PermissionError:
        if Path(path).is_dir():  # Windows says "permission denied" for folders
            raise ManuscriptError(f"{name}: is a folder, not a manuscript") from None
        raise ManuscriptError(f"{name}: cannot read it (permission denied)") from None
    except OSError as exc:
        raise ManuscriptError(f"{name}: cannot read it ({exc.strerror or exc})") from None


def _decode(data: bytes, name: str) -> str:
    if b"\x00" in data[:BINARY_PROBE]:
        raise ManuscriptError(f"{name}: looks like a binary file, not a UTF-8 manuscript")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ManuscriptError(f"{name}: line {line}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def _newline_of(data: bytes) -> str:
    crlf = data.count(b"\r\n")
    bare = data.count(b"\n") - crlf
    return "\r\n" if crlf and crlf >= bare else "\n"


def load_manuscript(path) -> Manuscript:
    """Read a manuscript ("-" reads standard input); ManuscriptError says what is wrong."""
    data, name = _read_bytes(path)
    text = _decode(data, name)
    return Manuscript(text, _newline_of(data), data.startswith(b"\xef\xbb\xbf"))


def read_manuscript(path) -> str:
    """The manuscript's text, exactly as in the file (line endings kept)."""
    return load_manuscript(path).text


# --- saving -----------------------------------------------------------------

_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the disk is read-only",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "the file name is too long",
}
if hasattr(errno, "EDQUOT"):
    _REASONS[errno.EDQUOT] = "disk quota exceeded"


def _reason(exc: OSError, target: Path) -> str:
    if exc.errno == errno.ENOENT or isinstance(exc, FileNotFoundError):
        return f"the folder {target.parent} does not exist"
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return (exc.strerror or str(exc) or type(exc).__name__).rstrip(".").lower()


def _fail(name: str, reason: str) -> ManuscriptError:
    return ManuscriptError(f"{name}: cannot save: {reason}; your text is still open", reason)


def _encode(text: str, newline: str, bom: bool, name: str) -> bytes:
    if newline not in ("\n", "\r\n"):
        raise ValueError(f"newline must be '\\n' or '\\r\\n', not {newline!r}")
    if newline == "\r\n":
        text = re.sub(r"\r?\n", "\r\n", text)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _fail(name, f"character {exc.start} cannot be stored as UTF-8") from None
    return (b"\xef\xbb\xbf" + data) if bom and not data.startswith(b"\xef\xbb\xbf") else data


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


def save_atomic(path, text: str, newline: str = "\n", *, bom: bool = False) -> None:
    """Replace the file at `path` with `text` (UTF-8), all at once.

    newline "\\r\\n" writes every line ending as CRLF; "\\n" writes the text as it is.
    The file's permission bits are kept; a symbolic link is followed (the file it
    points to is replaced, the link stays). On failure the old file is left as it
    was, no temporary file remains, and ManuscriptError says why in one line.
    """
    name = _display(path)
    data = _encode(text, newline, bom, name)
    target = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
    folder = target.parent
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise _fail(name, _reason(exc, target)) from None
    if old is not None:
        if stat.S_ISDIR(old.st_mode):
            raise _fail(name, "it is a folder, not a file")
        # Refuse a read-only file as editors do (root could write it anyway).
        if not old.st_mode & 0o222 or not os.access(target, os.W_OK):
            raise _fail(name, "the file is read-only")
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
        os.close(fd)
        fd = None
        if old is not None and not hasattr(os, "fchmod"):
            os.chmod(temp, mode)
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
            raise _fail(name, _reason(exc, target)) from None
        raise
    _fsync_folder(folder)


# --- the user's data folder ---------------------------------------------------


def user_data_path(base_dir=None) -> Path:
    """The studio's per-user data folder: base_dir, else $AI_WRITER_STUDIO_DATA_DIR, else platformdirs'."""
    if base_dir is not None:
        return Path(base_dir).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME))


def save_recovery_copy(path, text: str, base_dir=None) -> Path:
    """Save `text` as DATA/recovery/NAME-YYYYmmdd-HHMMSS.txt and return that path.

    For when the manuscript itself cannot be saved; raises ManuscriptError only
    if the recovery copy cannot be written either.
    """
    folder = user_data_path(base_dir) / "recovery"
    stem = Path(path).stem if path is not None and str(path) not in ("", "-") else "untitled"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = _reason(exc, folder / "x")
        raise ManuscriptError(f"{folder}: cannot write a recovery copy either: {reason}", reason) from None
    candidate = folder / f"{stem}-{stamp}.txt"
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{stamp}-{number}.txt"
        number += 1
    try:
        save_atomic(candidate, text)
    except ManuscriptError as exc:
        raise ManuscriptError(f"{candidate}: cannot write a recovery copy either: {exc.reason}", exc.reason) from None
    return candidate


def new_manuscript_path(base_dir=None, *, today: date | None = None, create: bool = False) -> Path:
    """A new manuscript file in DATA/manuscripts/, named by date: 2026-11-26-1.txt, -2, ...

    The number is one more than the highest already used that day (by any file,
    history files included). The folder is created; with create=True the file is
    too (empty, exclusively), so two studios started at once never share it.
    """
    folder = user_data_path(base_dir) / "manuscripts"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ManuscriptError(f"{folder}: cannot create the manuscripts folder: {_reason(exc, folder)}") from None
    day = (today or date.today()).isoformat()
    pattern = re.compile(rf"^{re.escape(day)}-(\d+)(\.|$)")
    used = [int(m.group(1)) for entry in os.listdir(folder) if (m := pattern.match(entry))]
    number = max(used, default=0) + 1
    while True:
        candidate = folder / f"{day}-{number}.txt"
        if not create:
            return candidate
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            number += 1
        except OSError as exc:
            raise ManuscriptError(f"{candidate}: cannot create it: {_reason(exc, candidate)}") from None
