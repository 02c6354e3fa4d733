"""One studio per manuscript: an advisory lock on a lock file beside it, holding the owner's PID.

The lock file is .NAME.lock in the manuscript's folder (beside the real file when the path
is a symbolic link). On POSIX it is held with fcntl.flock, which the kernel lets go when the
holder exits in any way, SIGKILL included, so a lock left behind never blocks the next
studio; on Windows msvcrt.locking does the same. Elsewhere a PID file is used, taken over
when its process is gone. When no lock can be taken (a read-only folder, a file system
without locks) acquire does not refuse: the lock says so (locked=False, `warning`), and the
studio opens the file unlocked. The lock is advisory: other programs can still write the
file (the DiskFingerprint check catches that).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from ai_writer.studio.data.manuscript_errors import ManuscriptLocked
from ai_writer.studio.i18n import tr

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # POSIX
    msvcrt = None

_WINDOWS_LOCK_OFFSET = 1 << 20  # msvcrt locks a byte range; far past the PID, so the PID stays readable


def lock_path_for(path) -> Path:
    real = Path(os.path.realpath(os.path.expanduser(str(path))))
    return real.parent / f".{real.name}.lock"


def _read_pid(lock_path: Path, wait: float = 0.25) -> int | None:
    """The PID written in the lock file; the holder may not have written it yet, so wait a little."""
    deadline = time.monotonic() + wait
    while True:
        try:
            text = lock_path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            text = ""
        if text.isdigit():
            return int(text)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class ManuscriptLock:
    """A held (or, where impossible, merely attempted) lock on one manuscript."""

    def __init__(self, path: Path, lock_path: Path, fd: int | None, warning: str = "", pid_file: bool = False):
        self.path = path  # the manuscript
        self.lock_path = lock_path
        self._fd = fd
        self._pid_file = pid_file
        self.warning = warning  # when not locked: one line saying why (for the status line)

    @property
    def locked(self) -> bool:
        """True while this process holds the lock; False when none could be taken, or after release."""
        return self._fd is not None or self._pid_file

    @classmethod
    def acquire(cls, path) -> ManuscriptLock:
        """Lock `path` for this process; ManuscriptLocked (one line, the other PID) if another holds it.

        A folder where no lock can be made gives an unlocked ManuscriptLock (locked=False,
        warning says why) instead of an error.
        """
        path = Path(path)
        lock_path = lock_path_for(path)
        name = str(path)
        try:
            if fcntl is not None:
                return cls(path, lock_path, _flock(lock_path, name))
            if msvcrt is not None:
                return cls(path, lock_path, _msvcrt_lock(lock_path, name))
            _pid_file_lock(lock_path, name)
            return cls(path, lock_path, None, pid_file=True)
        except _NoLock as exc:
            return cls(path, lock_path, None, tr("mf_not_locked", name=name, reason=exc.reason))

    def release(self) -> None:
        """Let go of the lock and remove the lock file; safe to call twice, or when never locked."""
        if self._pid_file:
            self._pid_file = False
            _unlink(self.lock_path)
            return
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if fcntl is not None:
            _unlink(self.lock_path)  # while still held: see _flock on why the inode is checked
            os.close(fd)
        else:
            try:
                os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            except OSError:
                pass
            os.close(fd)
            _unlink(self.lock_path)  # Windows cannot remove an open file

    def __enter__(self) -> ManuscriptLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):
        try:
            if self._fd is not None:
                os.close(self._fd)  # no unlink here: at interpreter exit that could race a new holder
        except (OSError, AttributeError, TypeError):
            pass


class _NoLock(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _no_lock_reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return tr("mf_lock_read_only")
    if exc.errno == errno.ENOENT:
        return tr("mf_lock_no_folder")
    return (exc.strerror or str(exc)).rstrip(".").lower()


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _locked_error(lock_path: Path, name: str) -> ManuscriptLocked:
    pid = _read_pid(lock_path)
    if pid is None:
        return ManuscriptLocked(tr("mf_locked_unknown", name=name), pid=None)
    return ManuscriptLocked(tr("mf_locked", name=name, pid=pid), pid=pid)


def _open_lock_file(lock_path: Path) -> tuple[int, bool]:
    """(fd, writable); _NoLock when the lock file can be neither created nor opened."""
    flags = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        return os.open(lock_path, os.O_RDWR | os.O_CREAT | flags, 0o644), True
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and lock_path.exists():
            try:  # someone else's lock file in a folder we cannot write: locking needs no write access
                return os.open(lock_path, os.O_RDONLY | flags), False
            except OSError:
                pass
        raise _NoLock(_no_lock_reason(exc)) from None


def _write_pid(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    except OSError:
        pass  # the lock holds all the same; only the PID in messages is lost


def _flock(lock_path: Path, name: str) -> int:
    for _ in range(10):
        fd, writable = _open_lock_file(lock_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _locked_error(lock_path, name) from None
        except OSError as exc:  # e.g. ENOLCK: this file system has no locks
            os.close(fd)
            raise _NoLock(_no_lock_reason(exc)) from None
        # A studio releasing the lock removes the file while still holding it: if we locked a
        # file that is no longer at lock_path, someone may already hold the new one. Try again.
        try:
            here = os.stat(lock_path)
            mine = os.fstat(fd)
            same = (here.st_ino, here.st_dev) == (mine.st_ino, mine.st_dev)
        except OSError:
            same = False
        if same:
            if writable:
                _write_pid(fd)
            return fd
        os.close(fd)
    raise _NoLock(tr("mf_lock_unstable"))


def _msvcrt_lock(lock_path: Path, name: str) -> int:
    fd, writable = _open_lock_file(lock_path)
    try:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        os.close(fd)
        raise _locked_error(lock_path, name) from None
    if writable:
        _write_pid(fd)
    return fd


def _pid_file_lock(lock_path: Path, name: str) -> None:
    for _ in range(3):
        try:
            fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pid = _read_pid(lock_path)
            if pid is not None and pid != os.getpid() and _pid_alive(pid):
                raise ManuscriptLocked(tr("mf_locked", name=name, pid=pid), pid=pid) from None
            _unlink(lock_path)  # left by a process that is gone
            continue
        except OSError as exc:
            raise _NoLock(_no_lock_reason(exc)) from None
        _write_pid(fd)
        os.close(fd)
        return
    raise _NoLock(tr("mf_lock_unstable"))
