"""Recovery copies: one per manuscript, offered back at open when newer and different, discarded after a save."""

import os

from ai_writer.studio.data.manuscript_file import (
    discard_recovery_copy,
    load_manuscript,
    newer_recovery_copy,
    recovery_path_for,
    save_atomic,
    save_recovery_copy,
)

TEXT = "　　第一章　风起\n"
UNSAVED = TEXT + "　　没能保存的一段。\n"


def test_name_is_stable_per_manuscript_and_differs_per_folder(tmp_path):
    a = recovery_path_for(tmp_path / "one" / "chapter1.txt", tmp_path / "data")
    assert a == recovery_path_for(tmp_path / "one" / "." / "chapter1.txt", tmp_path / "data")
    b = recovery_path_for(tmp_path / "two" / "chapter1.txt", tmp_path / "data")
    assert a != b and a.parent == b.parent == tmp_path / "data" / "recovery"
    assert a.name.startswith("chapter1-") and a.suffix == ".txt"


def test_newer_different_copy_is_offered_until_discarded(tmp_path):
    novel = tmp_path / "novel.txt"
    novel.write_bytes(TEXT.encode("gbk"))
    loaded = load_manuscript(novel)
    data = tmp_path / "data"
    assert newer_recovery_copy(novel, loaded.fingerprint, base_dir=data) is None
    copy = save_recovery_copy(novel, UNSAVED, base_dir=data)
    assert copy.read_text(encoding="utf-8") == UNSAVED  # always UTF-8, whatever the manuscript's encoding
    os.utime(copy, ns=(loaded.fingerprint.mtime_ns + 10**9,) * 2)
    assert newer_recovery_copy(novel, loaded.fingerprint, base_dir=data) == copy
    assert newer_recovery_copy(novel, loaded.fingerprint.mtime_ns, base_dir=data) == copy  # an int: ns
    assert newer_recovery_copy(novel, novel.stat().st_mtime, base_dir=data) == copy  # a float: seconds
    assert newer_recovery_copy(novel, base_dir=data) == copy  # None: the file's mtime now
    assert discard_recovery_copy(novel, base_dir=data)
    assert not copy.exists() and newer_recovery_copy(novel, base_dir=data) is None
    assert not discard_recovery_copy(novel, base_dir=data)


def test_copy_older_than_the_file_is_not_offered(tmp_path):
    novel = tmp_path / "novel.txt"
    novel.write_text(TEXT, encoding="utf-8")
    copy = save_recovery_copy(novel, UNSAVED, base_dir=tmp_path)
    os.utime(copy, ns=(novel.stat().st_mtime_ns - 10**9,) * 2)  # the file was saved after the copy
    assert newer_recovery_copy(novel, load_manuscript(novel).fingerprint, base_dir=tmp_path) is None


def test_copy_with_the_same_text_is_not_offered(tmp_path):
    novel = tmp_path / "novel.txt"
    novel.write_bytes(UNSAVED.replace("\n", "\r\n").encode("utf-8"))
    copy = save_recovery_copy(novel, UNSAVED, base_dir=tmp_path)  # the editor's text: "\n" line ends
    os.utime(copy, ns=(novel.stat().st_mtime_ns + 10**9,) * 2)
    assert newer_recovery_copy(novel, base_dir=tmp_path) is None


def test_copy_of_a_deleted_manuscript_is_offered(tmp_path):
    novel = tmp_path / "novel.txt"
    novel.write_text(TEXT, encoding="utf-8")
    fingerprint = load_manuscript(novel).fingerprint
    copy = save_recovery_copy(novel, UNSAVED, base_dir=tmp_path)
    novel.unlink()
    assert newer_recovery_copy(novel, fingerprint, base_dir=tmp_path) == copy


def test_text_with_a_lone_surrogate_still_gets_a_recovery_copy(tmp_path):
    novel = tmp_path / "novel.txt"
    copy = save_recovery_copy(novel, "半个字\udc80还在", base_dir=tmp_path)
    assert copy.read_bytes() == "半个字\udc80还在".encode("utf-8", "surrogatepass")
    assert os.listdir(copy.parent) == [copy.name]


def test_saving_the_manuscript_leaves_its_copy_for_the_app_to_discard(tmp_path):
    novel = tmp_path / "novel.txt"
    copy = save_recovery_copy(novel, UNSAVED, base_dir=tmp_path)
    save_atomic(novel, UNSAVED)
    assert copy.exists()  # the layer never deletes what the author may still want
    assert newer_recovery_copy(novel, base_dir=tmp_path) is None  # but it is no longer newer
