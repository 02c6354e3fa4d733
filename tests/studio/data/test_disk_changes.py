"""Another program changes the manuscript while the studio has it open: noticed, never overwritten."""

import os
import time
from datetime import datetime

import pytest

from ai_writer.studio.data import fingerprint as fingerprint_module
from ai_writer.studio.data.manuscript_file import (
    NO_FILE,
    ManuscriptConflict,
    ManuscriptEncodingError,
    changed_on_disk,
    fingerprint_of,
    load_manuscript,
    save_atomic,
    save_beside,
)

TEXT = "　　第一章　风起\n　　夜色如墨，他推开了门。\n"
MINE = TEXT + "　　作者刚写的一段。\n"


def others(folder, name):
    return sorted(entry for entry in os.listdir(folder) if entry != name)


@pytest.fixture
def novel(tmp_path):
    path = tmp_path / "novel.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def count_hashing(monkeypatch) -> list:
    calls = []
    real = fingerprint_module.content_hash
    monkeypatch.setattr(fingerprint_module, "content_hash", lambda data: calls.append(len(data)) or real(data))
    return calls


def test_load_and_save_return_the_fingerprint_on_disk(novel):
    loaded = load_manuscript(novel)
    st = novel.stat()
    assert (loaded.fingerprint.mtime_ns, loaded.fingerprint.size) == (st.st_mtime_ns, st.st_size)
    assert not changed_on_disk(novel, loaded.fingerprint)
    saved = save_atomic(novel, MINE, expected=loaded.fingerprint)
    assert saved == fingerprint_of(novel) and saved != loaded.fingerprint
    assert not changed_on_disk(novel, saved)
    # Saves chain: each one's fingerprint is the next one's expectation.
    again = save_atomic(novel, MINE + "又一段。\n", expected=saved)
    assert not changed_on_disk(novel, again)


def test_unchanged_file_is_checked_by_stat_alone(novel, monkeypatch):
    fingerprint = load_manuscript(novel).fingerprint
    calls = count_hashing(monkeypatch)
    for _ in range(5):
        assert not changed_on_disk(novel, fingerprint)
    assert calls == []


def test_touched_but_same_text_is_not_a_change(novel, monkeypatch):
    fingerprint = load_manuscript(novel).fingerprint
    os.utime(novel, ns=(fingerprint.mtime_ns + 5_000_000_000, fingerprint.mtime_ns + 5_000_000_000))
    calls = count_hashing(monkeypatch)
    assert not changed_on_disk(novel, fingerprint)
    assert calls == [fingerprint.size]  # the stat differed, so the content was hashed once
    # Another editor saving the same text by rename (a new inode) is no change either.
    replacement = novel.with_name("other-editor.tmp")
    replacement.write_text(TEXT, encoding="utf-8")
    os.replace(replacement, novel)
    assert not changed_on_disk(novel, fingerprint)


def test_rewrite_of_the_same_size_with_the_old_mtime_is_still_a_change(novel):
    fingerprint = load_manuscript(novel).fingerprint
    changed = TEXT.replace("风起", "云涌")
    assert len(changed.encode()) == fingerprint.size
    time.sleep(0.02)  # past the file system's timestamp granularity, as any real edit is
    with open(novel, "r+b") as file:  # in place: same inode, same size
        file.write(changed.encode())
    os.utime(novel, ns=(fingerprint.mtime_ns, fingerprint.mtime_ns))  # and the mtime put back
    assert changed_on_disk(novel, fingerprint)


def test_other_size_is_a_change_without_hashing(novel, monkeypatch):
    fingerprint = load_manuscript(novel).fingerprint
    novel.write_text(TEXT + "别人加的。\n", encoding="utf-8")
    calls = count_hashing(monkeypatch)
    assert changed_on_disk(novel, fingerprint)
    assert calls == []


def test_save_refuses_to_overwrite_a_changed_file(novel):
    loaded = load_manuscript(novel)
    theirs = TEXT + "　　另一个程序写的。\n"
    novel.write_text(theirs, encoding="utf-8")
    with pytest.raises(ManuscriptConflict) as caught:
        save_atomic(novel, MINE, expected=loaded.fingerprint)
    error = caught.value
    assert not error.deleted and error.disk == fingerprint_of(novel)
    assert str(error) == (f"{novel}: cannot save: another program changed the file since it was opened; "
                          "nothing was written, your text is still open")
    assert novel.read_text(encoding="utf-8") == theirs
    assert others(novel.parent, "novel.txt") == []
    # Keep both: the author's version beside, theirs untouched.
    beside = save_beside(novel, MINE, now=datetime(2026, 3, 4, 5, 6, 7))
    assert beside == novel.with_name("novel.mine-20260304-050607.txt")
    assert beside.read_text(encoding="utf-8") == MINE
    assert novel.read_text(encoding="utf-8") == theirs
    # Saving without an expectation (the author chose to overwrite) still works.
    save_atomic(novel, MINE)
    assert novel.read_text(encoding="utf-8") == MINE


def test_deleted_file_is_a_conflict_and_is_not_recreated(novel):
    loaded = load_manuscript(novel)
    novel.unlink()
    with pytest.raises(ManuscriptConflict, match="the file was deleted or moved since it was opened") as caught:
        save_atomic(novel, MINE, expected=loaded.fingerprint)
    assert caught.value.deleted and caught.value.disk is None
    assert not novel.exists() and others(novel.parent, "novel.txt") == []


def test_a_file_that_appeared_where_none_was_is_a_conflict(tmp_path):
    path = tmp_path / "new.txt"
    assert changed_on_disk(path, NO_FILE) is False
    path.write_text("别人先建了这个文件", encoding="utf-8")
    assert changed_on_disk(path, NO_FILE)
    with pytest.raises(ManuscriptConflict):
        save_atomic(path, MINE, expected=NO_FILE)
    assert path.read_text(encoding="utf-8") == "别人先建了这个文件"


def test_a_change_while_the_save_is_writing_is_caught_before_the_rename(novel, monkeypatch):
    loaded = load_manuscript(novel)
    real_fsync = os.fsync
    theirs = TEXT + "　　就在保存的同时，另一个程序写了这一段。\n"

    def other_program_writes_meanwhile(fd):
        real_fsync(fd)
        if novel.read_text(encoding="utf-8") != theirs:
            novel.write_text(theirs, encoding="utf-8")

    monkeypatch.setattr(os, "fsync", other_program_writes_meanwhile)
    with pytest.raises(ManuscriptConflict):
        save_atomic(novel, MINE, expected=loaded.fingerprint)
    monkeypatch.undo()
    assert novel.read_text(encoding="utf-8") == theirs
    assert others(novel.parent, "novel.txt") == []


def test_save_beside_never_overwrites_and_keeps_the_encoding(tmp_path):
    path = tmp_path / "novel.txt"
    path.write_bytes(TEXT.encode("gbk"))
    stamp = datetime(2026, 3, 4, 5, 6, 7)
    first = save_beside(path, MINE, encoding="GBK", now=stamp)
    second = save_beside(path, MINE + "再一段。\n", encoding="GBK", now=stamp)
    assert first.name == "novel.mine-20260304-050607.txt"
    assert second.name == "novel.mine-20260304-050607-2.txt"
    assert first.read_bytes() == MINE.encode("gbk")
    assert second.read_bytes() == (MINE + "再一段。\n").encode("gbk")
    assert load_manuscript(first).encoding == "GBK"
    with pytest.raises(ManuscriptEncodingError):
        save_beside(path, "😀", encoding="GBK", now=stamp)
    assert sorted(os.listdir(tmp_path)) == ["novel.mine-20260304-050607-2.txt", "novel.mine-20260304-050607.txt",
                                            "novel.txt"]
