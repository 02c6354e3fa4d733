"""studio.data.manuscript_file: reading, atomic saving, recovery copies, new-file names."""

import errno
import os
import random
import signal
import stat
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from ai_writer.studio.data import manuscript_file as mf
from ai_writer.studio.data.manuscript_file import (
    DATA_DIR_ENV,
    ManuscriptError,
    load_manuscript,
    new_manuscript_path,
    read_manuscript,
    save_atomic,
    save_recovery_copy,
)
from tests.helpers import REPO

TEXT = "第一章　风起\n\n　　夜色如墨，他推开了门。\n“你来了。”\n"


def leftovers(folder: Path, name: str) -> list[str]:
    return sorted(entry for entry in os.listdir(folder) if entry != name)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    return folder


# --- reading -----------------------------------------------------------------


def test_round_trip_keeps_text_exactly(tmp_path):
    path = tmp_path / "chapter1.txt"
    save_atomic(path, TEXT)
    assert path.read_bytes() == TEXT.encode("utf-8")
    assert read_manuscript(path) == TEXT
    manuscript = load_manuscript(str(path))
    assert (manuscript.text, manuscript.newline, manuscript.bom) == (TEXT, "\n", False)


def test_crlf_is_reported_and_kept_on_save(tmp_path):
    path = tmp_path / "crlf.txt"
    original = TEXT.replace("\n", "\r\n").encode("utf-8")
    path.write_bytes(original)
    manuscript = load_manuscript(path)
    assert manuscript.newline == "\r\n"
    assert manuscript.text == TEXT.replace("\n", "\r\n")  # as in the file
    # Saving text edited with plain \n, or still holding \r\n, gives CRLF throughout, never \r\r\n.
    save_atomic(path, manuscript.text.replace("\r\n", "\n") + "新的一行\n", newline=manuscript.newline)
    assert path.read_bytes() == original + "新的一行\r\n".encode("utf-8")
    save_atomic(path, manuscript.text, newline="\r\n")
    assert path.read_bytes() == original
    assert b"\r\r\n" not in path.read_bytes()


def test_mostly_lf_file_is_lf(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"a\nb\nc\r\nd\n")
    assert load_manuscript(path).newline == "\n"


def test_bom_is_tolerated_and_can_be_kept(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + TEXT.encode("utf-8"))
    manuscript = load_manuscript(path)
    assert manuscript.text == TEXT and manuscript.bom
    save_atomic(path, manuscript.text, bom=manuscript.bom)
    assert path.read_bytes() == b"\xef\xbb\xbf" + TEXT.encode("utf-8")


def test_binary_file_is_refused_by_name(tmp_path):
    path = tmp_path / "cover.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ManuscriptError, match=r"cover\.png: looks like a binary file"):
        read_manuscript(path)


def test_undecodable_file_names_file_and_line(tmp_path):
    # 0xFF starts no character in UTF-8, GB18030 or Big5.
    path = tmp_path / "latin.txt"
    path.write_bytes(b"chapter one\nsecond line\nthird \xff line\n")
    with pytest.raises(ManuscriptError) as caught:
        read_manuscript(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line 3: not text in UTF-8, UTF-16, GBK/GB18030 or Big5 (byte 30)")
    assert "\n" not in message


def test_missing_file_and_folder_are_named(tmp_path):
    with pytest.raises(ManuscriptError, match=r"nothere\.txt: no such file$"):
        read_manuscript(tmp_path / "nothere.txt")
    with pytest.raises(ManuscriptError, match=r": is a folder, not a manuscript$") as caught:
        read_manuscript(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_permission_denied_is_one_clear_line(tmp_path, monkeypatch):
    path = tmp_path / "locked.txt"
    path.write_text("x", encoding="utf-8")

    def denied(file, *args, **kwargs):  # as root a chmod would not stop the read
        raise PermissionError(errno.EACCES, "Permission denied", str(file))

    monkeypatch.setattr("ai_writer.studio.data.fingerprint.open", denied, raising=False)
    with pytest.raises(ManuscriptError, match=r"locked\.txt: cannot read it \(permission denied\)$"):
        read_manuscript(path)


# --- atomic saving --------------------------------------------------------------


def test_save_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "chapter1.txt"
    for n in range(5):
        save_atomic(path, TEXT * (n + 1))
    assert read_manuscript(path) == TEXT * 5
    assert leftovers(tmp_path, "chapter1.txt") == []


def test_disk_full_at_fsync_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "chapter1.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mf.os, "fsync", full)
    with pytest.raises(ManuscriptError) as caught:
        save_atomic(path, "全新的文本" * 1000)
    monkeypatch.undo()
    message = str(caught.value)
    assert message == f"{path}: cannot save: no space left on device; your text is still open"
    assert caught.value.reason == "no space left on device"
    assert path.read_bytes() == before
    assert leftovers(tmp_path, "chapter1.txt") == []


def test_disk_full_mid_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "chapter1.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    before = path.read_bytes()
    real_write = os.write
    calls = []

    def partial_then_full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mf.os, "write", partial_then_full)
    with pytest.raises(ManuscriptError, match="no space left on device"):
        save_atomic(path, "新" * 100000)
    monkeypatch.undo()
    assert len(calls) == 2  # the short write was continued, then failed
    assert path.read_bytes() == before
    assert leftovers(tmp_path, "chapter1.txt") == []


def test_failed_rename_removes_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "chapter1.txt"
    path.write_bytes(b"old")

    def no_rename(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(mf.os, "replace", no_rename)
    with pytest.raises(ManuscriptError, match=r"chapter1\.txt: cannot save: permission denied"):
        save_atomic(path, "new")
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path, "chapter1.txt") == []


def test_interrupt_during_write_removes_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "chapter1.txt"
    path.write_bytes(b"old")

    def interrupted(fd, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(mf.os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_atomic(path, "new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path, "chapter1.txt") == []


def test_read_only_file_refused_and_recovery_copy_written(tmp_path, data_dir):
    # Tests may run as root, where chmod does not stop writes: the save must refuse anyway.
    path = tmp_path / "chapter1.txt"
    path.write_bytes(b"old text")
    path.chmod(0o444)
    text = TEXT + "作者刚写的一段。\n"
    with pytest.raises(ManuscriptError, match=r"chapter1\.txt: cannot save: the file is read-only; your text is still open"):
        save_atomic(path, text)
    assert path.read_bytes() == b"old text"
    assert leftovers(tmp_path, "chapter1.txt") == []
    copy = save_recovery_copy(path, text)
    assert copy.parent == data_dir / "recovery"
    assert copy.name.startswith("chapter1-") and copy.suffix == ".txt"
    assert read_manuscript(copy) == text
    assert leftovers(copy.parent, copy.name) == []


def test_read_only_folder_gives_clear_error(tmp_path, monkeypatch):
    """A read-only folder (simulated: as root a chmod'ed folder is still writable)."""
    path = tmp_path / "chapter1.txt"
    path.write_bytes(b"old")
    real_open = os.open

    def read_only_folder(file, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(mf.os, "open", read_only_folder)
    with pytest.raises(ManuscriptError, match=r"chapter1\.txt: cannot save: the disk is read-only; your text is still open$"):
        save_atomic(path, "new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path, "chapter1.txt") == []


def test_missing_folder_error_and_recovery(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    path = tmp_path / "gone" / "chapter1.txt"
    with pytest.raises(ManuscriptError, match=r"cannot save: the folder .*gone does not exist"):
        save_atomic(path, TEXT)
    assert not (tmp_path / "gone").exists()
    copy = save_recovery_copy(path, TEXT, base_dir=tmp_path / "elsewhere")
    assert copy.parent == tmp_path / "elsewhere" / "recovery"
    assert copy.read_text(encoding="utf-8") == TEXT


def test_one_recovery_copy_per_manuscript_replaced_each_time(tmp_path):
    copies = [save_recovery_copy("story.txt", f"version {n}", base_dir=tmp_path) for n in range(3)]
    assert len(set(copies)) == 1
    assert copies[0].read_text(encoding="utf-8") == "version 2"
    assert leftovers(copies[0].parent, copies[0].name) == []
    # Another folder's story.txt keeps its own copy.
    other = save_recovery_copy(tmp_path / "elsewhere" / "story.txt", "other", base_dir=tmp_path)
    assert other != copies[0] and other.name.startswith("story-")
    assert copies[0].read_text(encoding="utf-8") == "version 2"


def test_recovery_copy_failure_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ManuscriptError, match="cannot write a recovery copy either"):
        save_recovery_copy("story.txt", "text", base_dir=blocker)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_permission_bits_are_kept(tmp_path):
    path = tmp_path / "private.txt"
    path.write_bytes(b"old")
    path.chmod(0o640)
    save_atomic(path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    path.chmod(0o604)
    save_atomic(path, "newer")
    assert stat.S_IMODE(path.stat().st_mode) == 0o604
    assert path.read_text() == "newer"


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_new_file_gets_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        save_atomic(tmp_path / "new.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644


@pytest.mark.skipif(os.name == "nt", reason="symbolic links")
def test_symlink_is_followed_not_replaced(tmp_path):
    real = tmp_path / "real.txt"
    real.write_bytes(b"old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    save_atomic(link, "new")
    assert link.is_symlink()
    assert real.read_text() == "new"


def test_saving_over_a_folder_is_refused(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(ManuscriptError, match=r"sub: cannot save: it is a folder"):
        save_atomic(tmp_path / "sub", "x")


def test_unencodable_text_is_refused_before_touching_the_file(tmp_path):
    path = tmp_path / "chapter1.txt"
    path.write_bytes(b"old")
    with pytest.raises(ManuscriptError, match="cannot be stored as UTF-8"):
        save_atomic(path, "ok\udc80")
    assert path.read_bytes() == b"old"


# --- new manuscripts --------------------------------------------------------------


def test_new_manuscript_path_numbers_by_date(tmp_path):
    day = date(2026, 11, 26)
    first = new_manuscript_path(tmp_path, today=day)
    assert first == tmp_path / "manuscripts" / "2026-11-26-1.txt"
    assert first.parent.is_dir() and not first.exists()
    assert new_manuscript_path(tmp_path, today=day) == first  # nothing reserved yet
    reserved = new_manuscript_path(tmp_path, today=day, create=True)
    assert reserved == first and first.read_bytes() == b""
    assert new_manuscript_path(tmp_path, today=day).name == "2026-11-26-2.txt"
    # A leftover history of a deleted file still counts: never reuse its number.
    (first.parent / "2026-11-26-7.history.jsonl").write_text("")
    assert new_manuscript_path(tmp_path, today=day).name == "2026-11-26-8.txt"
    assert new_manuscript_path(tmp_path, today=date(2026, 11, 27)).name == "2026-11-27-1.txt"
    (first.parent / "2026-11-26-10.txt").write_text("")
    assert new_manuscript_path(tmp_path, today=day).name == "2026-11-26-11.txt"


def test_data_folder_override_by_environment(data_dir):
    path = new_manuscript_path(today=date(2030, 1, 2))
    assert path == data_dir / "manuscripts" / "2030-01-02-1.txt"


# --- crash safety ---------------------------------------------------------------------

CHILD = """
import sys
from ai_writer.studio.data.manuscript_file import save_atomic
target, start, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def text(k):
    return f"{k}\\n" + chr(0x4E00 + k % 2000) * size + f"\\nend {k}\\n"
print("ready", flush=True)
k = start
while True:
    save_atomic(target, text(k))
    k += 1
"""


def crash_text(k: int, size: int) -> str:
    return f"{k}\n" + chr(0x4E00 + k % 2000) * size + f"\nend {k}\n"


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_during_saves_never_leaves_a_partial_file(tmp_path):
    size = 400_000  # 1.2 MB of UTF-8 per save
    target = tmp_path / "novel.txt"
    target.write_text(crash_text(0, size), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rng = random.Random(1234)
    seen = {0}
    deadline = time.monotonic() + 20
    for round_number in range(20):
        if time.monotonic() > deadline:
            break
        start = (round_number + 1) * 1_000_000
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(target), str(start), str(size)],
            env=env,
            stdout=subprocess.PIPE,
        )
        try:
            assert child.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.0, 0.15))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            child.stdout.close()
        text = read_manuscript(target)  # never raises: complete UTF-8 text
        k = int(text.split("\n", 1)[0])
        assert text == crash_text(k, size), f"round {round_number}: partial file"
        assert k == 0 or start <= k < start + 1_000_000 or k in seen
        seen.add(k)
    assert len(seen) > 1, "no save completed before any kill: the test proved nothing"
    # Only temp files of killed children may remain, never anything else.
    assert all(name.startswith(".novel.txt.tmp-") for name in leftovers(tmp_path, "novel.txt"))


@pytest.mark.skipif(os.name != "posix", reason="dead processes are recognised on POSIX only")
def test_temporaries_left_by_a_killed_save_are_removed_on_the_next_save(tmp_path):
    target = tmp_path / "novel.txt"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that has ended
    stale = tmp_path / f".novel.txt.tmp-{gone.pid}-abcd1234"
    stale.write_text("half a save", encoding="utf-8")
    mine = tmp_path / f".novel.txt.tmp-{os.getpid()}-ffff0000"  # this process: maybe still writing
    mine.write_text("in flight", encoding="utf-8")
    other = tmp_path / f".other.txt.tmp-{gone.pid}-abcd1234"  # another manuscript's: not ours to judge
    other.write_text("x", encoding="utf-8")
    mf.save_atomic(target, "第一章")
    assert target.read_text(encoding="utf-8") == "第一章"
    assert not stale.exists() and mine.exists() and other.exists()
