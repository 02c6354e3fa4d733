"""studio.saver: every outcome comes back as data (SaveFinished.outcome), the text is never lost, big saves stay off the UI thread."""

import os
import threading
import time

import pytest

from ai_writer.studio.data import atomic_save
from ai_writer.studio.data.manuscript_file import (
    ManuscriptConflict,
    ManuscriptEncodingError,
    fingerprint_of,
    load_manuscript,
    recovery_path_for,
)
from ai_writer.studio.saver import ManuscriptSaver, SaveFinished, SaveOutcome

TEXT = "　　第一章　风起\n"
TRADITIONAL = "　　第一章　風起\n"
MINE = TEXT + "　　作者刚写的一段。\n"


class Collector:
    def __init__(self):
        self.messages: list[SaveFinished] = []

    def __call__(self, message):
        self.messages.append(message)


@pytest.fixture
def saver(tmp_path):
    posted = Collector()
    saver = ManuscriptSaver(posted, data_dir=tmp_path / "data")
    saver.posted = posted
    yield saver
    saver.close()


def save(saver, *args, **kwargs) -> SaveFinished:
    assert saver.save(*args, **kwargs).result(timeout=60) == saver.posted.messages[-1].error
    return saver.posted.messages[-1]


def test_saved_carries_the_new_fingerprint(saver, tmp_path):
    path = tmp_path / "novel.txt"
    path.write_bytes(TEXT.encode("gbk"))
    loaded = load_manuscript(path, for_editing=True)
    finished = save(saver, path, MINE, loaded.newline, loaded.bom, encoding=loaded.encoding,
                    expected=loaded.fingerprint)
    assert finished.outcome is SaveOutcome.SAVED and finished.saved
    assert (finished.path, finished.text, finished.error, finished.encoding) == (path, MINE, "", "GBK")
    assert finished.fingerprint == fingerprint_of(path) and finished.recovery is None
    assert path.read_bytes() == MINE.encode("gbk")
    again = save(saver, path, MINE + "又一段。\n", encoding="GBK", expected=finished.fingerprint)
    assert again.saved


def test_conflict_keeps_the_file_and_the_text(saver, tmp_path):
    path = tmp_path / "novel.txt"
    path.write_text(TEXT, encoding="utf-8")
    loaded = load_manuscript(path)
    path.write_text("别人的版本\n", encoding="utf-8")
    finished = save(saver, path, MINE, expected=loaded.fingerprint)
    assert finished.outcome is SaveOutcome.CONFLICT and not finished.saved
    assert isinstance(finished.exception, ManuscriptConflict) and not finished.exception.deleted
    assert path.read_text(encoding="utf-8") == "别人的版本\n"
    assert finished.recovery.read_text(encoding="utf-8") == MINE
    assert finished.error.startswith("NOT SAVED: ") and str(finished.recovery) in finished.error
    assert finished.fingerprint is None


def test_encoding_problem_names_the_character(saver, tmp_path):
    path = tmp_path / "novel.txt"
    path.write_bytes(TRADITIONAL.encode("big5"))
    loaded = load_manuscript(path)
    assert loaded.encoding == "Big5"
    finished = save(saver, path, TRADITIONAL + "简体的这个字\n", encoding=loaded.encoding, expected=loaded.fingerprint)
    assert finished.outcome is SaveOutcome.ENCODING
    assert isinstance(finished.exception, ManuscriptEncodingError)
    assert (finished.exception.char, finished.exception.line) == ("简", 2)
    assert path.read_bytes() == TRADITIONAL.encode("big5")
    assert finished.recovery.read_text(encoding="utf-8") == TRADITIONAL + "简体的这个字\n"
    # The author chooses UTF-8: the original bytes are kept beside, the file becomes UTF-8.
    converted = save(saver, path, TRADITIONAL + "简体的这个字\n", convert_to_utf8=True, expected=loaded.fingerprint)
    assert converted.saved and converted.encoding == "UTF-8"
    assert converted.backup == tmp_path / "novel.orig-Big5.txt"
    assert converted.backup.read_bytes() == TRADITIONAL.encode("big5")
    assert path.read_text(encoding="utf-8") == TRADITIONAL + "简体的这个字\n"
    assert converted.fingerprint == fingerprint_of(path)
    # The recovery copy this saver kept is older than the file now: gone.
    assert not finished.recovery.exists()


def test_failed_save_goes_to_the_recovery_copy(saver, tmp_path):
    path = tmp_path / "novel.txt"
    path.write_text(TEXT, encoding="utf-8")
    path.chmod(0o444)  # refused even as root
    finished = save(saver, path, MINE)
    assert finished.outcome is SaveOutcome.RECOVERY
    assert finished.recovery == recovery_path_for(path, tmp_path / "data")
    assert finished.recovery.read_text(encoding="utf-8") == MINE
    assert path.read_text(encoding="utf-8") == TEXT


def test_failed_everywhere(tmp_path):
    path = tmp_path / "novel.txt"
    path.write_text(TEXT, encoding="utf-8")
    path.chmod(0o444)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    posted = Collector()
    saver = ManuscriptSaver(posted, data_dir=blocker)
    try:
        assert saver.save(path, MINE).result(timeout=60).startswith("NOT SAVED: ")
    finally:
        saver.close()
    finished = posted.messages[-1]
    assert finished.outcome is SaveOutcome.FAILED and finished.recovery is None
    assert "cannot write a recovery copy either" in finished.error


def test_25_mb_save_happens_on_the_saver_thread(saver, tmp_path, monkeypatch):
    path = tmp_path / "long.txt"
    text = MINE * (25_000_000 // len(MINE.replace("\n", "\r\n").encode("gbk")) + 1)
    threads = []
    real_encode = atomic_save.encode_manuscript

    def recording_encode(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(atomic_save, "encode_manuscript", recording_encode)
    waits = []
    for _ in range(2):  # the machine is shared: the better of two
        started = time.perf_counter()
        future = saver.save(path, text, "\r\n", encoding="GBK")
        handed_over = time.perf_counter() - started
        longest_wait, last = 0.0, time.perf_counter()
        while not future.done():  # the UI thread, meanwhile: how long is it ever kept waiting?
            time.sleep(0.001)
            now = time.perf_counter()
            longest_wait, last = max(longest_wait, now - last), now
        total = time.perf_counter() - started
        assert future.result() == ""
        assert handed_over < 0.01 < total
        waits.append(longest_wait)
        print(f"25 MB: handed over in {handed_over * 1000:.1f} ms, saved in {total * 1000:.0f} ms, "
              f"UI thread kept waiting at most {longest_wait * 1000:.1f} ms")
    assert threads and all(name.startswith("save") for name in threads)
    # Encoded in chunks, the GIL is let go between them; encoded at once, it is held for the whole text.
    assert min(waits) < 0.04
    finished = saver.posted.messages[-1]
    assert finished.saved and finished.fingerprint.size == os.path.getsize(path) >= 25_000_000
