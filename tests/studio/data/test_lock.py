"""A second studio on the same manuscript is refused; a killed holder never blocks the next open."""

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ai_writer.studio.data.manuscript_errors import ManuscriptLocked
from ai_writer.studio.data.manuscript_lock import ManuscriptLock, lock_path_for
from tests.helpers import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}

# A second process: take the lock, say so, then wait to be told to go (or killed).
HOLDER = """
import sys
from ai_writer.studio.data.manuscript_lock import ManuscriptLock
lock = ManuscriptLock.acquire(sys.argv[1])
print("locked" if lock.locked else "unlocked", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
"""
# A second process that only tries: prints what it was told.
TRY = """
import sys
from ai_writer.studio.data.manuscript_errors import ManuscriptLocked
from ai_writer.studio.data.manuscript_lock import ManuscriptLock
try:
    lock = ManuscriptLock.acquire(sys.argv[1])
except ManuscriptLocked as exc:
    print(f"refused {exc.pid}|{exc}")
else:
    print("locked" if lock.locked else "unlocked")
    lock.release()
"""


@pytest.fixture
def novel(tmp_path):
    path = tmp_path / "novel.txt"
    path.write_text("第一章", encoding="utf-8")
    return path


def start_holder(path: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], env=ENV, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout.readline() == "locked\n"
    return holder


def try_in_another_process(path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", TRY, str(path)], env=ENV, text=True, capture_output=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_lock_holds_the_pid_and_is_removed_on_release(novel):
    lock = ManuscriptLock.acquire(novel)
    assert lock.locked and lock.warning == ""
    assert lock.lock_path == novel.with_name(".novel.txt.lock")
    assert lock.lock_path.read_text() == f"{os.getpid()}\n"
    lock.release()
    assert not lock.locked and not lock.lock_path.exists()
    lock.release()  # twice is fine


def test_a_second_process_is_refused_naming_the_file_and_the_holder(novel):
    with ManuscriptLock.acquire(novel):
        answer = try_in_another_process(novel)
    assert answer == (f"refused {os.getpid()}|{novel}: already open in another studio (process {os.getpid()}); "
                      "close it there first")
    assert try_in_another_process(novel) == "locked"  # released: the next studio gets it


def test_this_process_is_refused_while_another_holds_it(novel):
    holder = start_holder(novel)
    try:
        with pytest.raises(ManuscriptLocked) as caught:
            ManuscriptLock.acquire(novel)
        assert caught.value.pid == holder.pid
        assert str(caught.value) == f"{novel}: already open in another studio (process {holder.pid}); close it there first"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline() == "released\n"
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with ManuscriptLock.acquire(novel) as lock:
        assert lock.locked


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_lock_left_by_a_killed_studio_does_not_block(novel):
    holder = start_holder(novel)
    with pytest.raises(ManuscriptLocked):
        ManuscriptLock.acquire(novel)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    lock_file = lock_path_for(novel)
    assert lock_file.read_text() == f"{holder.pid}\n"  # left behind, naming the dead process
    lock = ManuscriptLock.acquire(novel)
    assert lock.locked and lock_file.read_text() == f"{os.getpid()}\n"
    assert try_in_another_process(novel).startswith(f"refused {os.getpid()}|")
    lock.release()


def test_same_file_through_a_symbolic_link_is_the_same_lock(novel):
    link = novel.with_name("link.txt")
    link.symlink_to(novel)
    with ManuscriptLock.acquire(novel):
        assert try_in_another_process(link).startswith("refused")


def test_in_the_same_process_a_second_acquire_is_refused_too(novel):
    with ManuscriptLock.acquire(novel):
        with pytest.raises(ManuscriptLocked):
            ManuscriptLock.acquire(novel)


def test_read_only_folder_gives_an_unlocked_lock_not_an_error(novel, monkeypatch):
    folder = novel.parent
    if os.geteuid() != 0:  # a real read-only folder (root writes into one anyway)
        folder.chmod(0o555)
        try:
            lock = ManuscriptLock.acquire(novel)
        finally:
            folder.chmod(0o755)
    else:
        real_open = os.open

        def read_only(file, flags, *args, **kwargs):
            if flags & os.O_CREAT:
                raise PermissionError(errno.EROFS, "Read-only file system", str(file))
            return real_open(file, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", read_only)
        lock = ManuscriptLock.acquire(novel)
        monkeypatch.undo()
    assert not lock.locked
    assert lock.warning == f"{novel}: not locked against a second studio (the folder is read-only)"
    assert not lock_path_for(novel).exists()
    lock.release()  # nothing to do, no error


def test_lock_file_someone_else_left_read_only_still_locks(novel, monkeypatch):
    lock_file = lock_path_for(novel)
    lock_file.write_text("")
    real_open = os.open

    def cannot_write(file, flags, *args, **kwargs):
        if flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", cannot_write)
    lock = ManuscriptLock.acquire(novel)
    monkeypatch.undo()
    try:
        assert lock.locked
        assert try_in_another_process(novel).startswith("refused None|")  # locked; no PID could be written
    finally:
        lock.release()


def test_missing_folder_gives_an_unlocked_lock(tmp_path):
    lock = ManuscriptLock.acquire(tmp_path / "gone" / "novel.txt")
    assert not lock.locked and "the folder does not exist" in lock.warning
