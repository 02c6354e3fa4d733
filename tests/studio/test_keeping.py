"""The studio never loses or silently overwrites text: locks, changes on disk, recovery copies,
encodings, and quitting when nothing can be saved. Pilot, a tiny model, real files."""

import os
import time

import ai_writer.studio.saver as saver_module
from ai_writer.studio.data.manuscript_file import ManuscriptError, recovery_path_for, save_recovery_copy
from ai_writer.studio.data.manuscript_lock import ManuscriptLock
from ai_writer.studio.dialogs.confirm import ConfirmDialog
from ai_writer.studio.dialogs.open_file import OpenFileDialog
from tests.studio.test_app import MANUSCRIPT, make_app, wait_until  # noqa: F401 (fixture)

async def test_a_manuscript_open_in_another_studio_opens_read_only(make_app, tmp_path):
    app, path = make_app()
    holder = ManuscriptLock.acquire(path)  # as another studio would hold it
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.2)
            assert app.editor.read_only
            assert "read-only" in app.status.message and str(os.getpid()) in app.status.message
            await pilot.press(*"xyz", "ctrl+s")
            await pilot.pause(0.5)
            assert path.read_text(encoding="utf-8") == MANUSCRIPT
            assert app.editor.text == MANUSCRIPT
    finally:
        holder.release()


async def test_the_lock_is_released_on_quit_so_the_next_studio_can_write(make_app, tmp_path):
    app, path = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        assert not app.editor.read_only
        await pilot.press("ctrl+q")
    lock = ManuscriptLock.acquire(path)  # would raise ManuscriptLocked if still held
    assert lock.locked
    lock.release()


async def test_a_change_on_disk_is_never_overwritten_both_versions_are_kept(make_app, tmp_path):
    app, path = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        other = "　　别的程序写的。"
        time.sleep(0.01)
        path.write_text(other, encoding="utf-8")  # another program rewrites the file while it is open
        await pilot.press(*"ab")
        beside = lambda: sorted(tmp_path.glob("novel.mine-*.txt"))  # noqa: E731
        assert await wait_until(pilot, lambda: beside() and not app.status.saving)
        assert path.read_text(encoding="utf-8") == other, "the other program's text was overwritten"
        assert beside()[0].read_text(encoding="utf-8") == MANUSCRIPT + "ab"
        assert beside()[0].name in app.status.message
        await pilot.press(*"c")  # further saves go to the author's file beside, not over the other one
        assert await wait_until(pilot, lambda: beside()[0].read_text(encoding="utf-8") == MANUSCRIPT + "abc")
        assert path.read_text(encoding="utf-8") == other
        await pilot.press("f5")  # reload the file's version
        assert await wait_until(pilot, lambda: app.editor.text == other)


async def test_a_newer_recovery_copy_is_offered_back_at_open(make_app, tmp_path):
    app, path = make_app()
    data = tmp_path / "data"
    copy = save_recovery_copy(path, MANUSCRIPT + "没来得及保存的字", base_dir=data)
    assert copy == recovery_path_for(path, data)
    future = time.time() + 5
    os.utime(copy, (future, future))
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        assert await wait_until(pilot, lambda: app.editor.text == MANUSCRIPT + "没来得及保存的字")
        assert await wait_until(pilot, lambda: path.read_text(encoding="utf-8") == MANUSCRIPT + "没来得及保存的字")
        await pilot.press("ctrl+z")  # the file's own text is one undo step back
        assert app.editor.text == MANUSCRIPT


async def test_declining_the_recovery_copy_keeps_the_file(make_app, tmp_path):
    app, path = make_app()
    copy = save_recovery_copy(path, "别的", base_dir=tmp_path / "data")
    future = time.time() + 5
    os.utime(copy, (future, future))
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await pilot.pause(0.2)
        assert app.editor.text == MANUSCRIPT
        assert copy.exists()


async def test_a_gbk_manuscript_is_saved_back_in_gbk(make_app, tmp_path):
    app, path = make_app(text=None)
    path.write_bytes(MANUSCRIPT.encode("gbk"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        assert app.editor.text == MANUSCRIPT
        assert app.status.encoding in ("GBK", "GB18030")
        await pilot.press(*"好", "ctrl+s")
        assert await wait_until(pilot, lambda: path.read_bytes() == (MANUSCRIPT + "好").encode("gbk"))


async def test_a_character_big5_cannot_hold_offers_utf8_and_keeps_the_original(make_app, tmp_path):
    traditional = "　　第一章　重逢\n　　他抬頭望向遠方，"
    app, path = make_app(text=None)
    path.write_bytes(traditional.encode("big5"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        assert app.status.encoding == "Big5"
        await pilot.press(*"们", "ctrl+s")  # simplified: not in Big5
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert path.read_bytes() == traditional.encode("big5"), "nothing may be written in a lossy encoding"
        await pilot.press("y")
        assert await wait_until(pilot, lambda: path.read_bytes() == (traditional + "们").encode("utf-8"))
        backups = list(tmp_path.glob("novel.orig-*.txt"))
        assert len(backups) == 1 and backups[0].read_bytes() == traditional.encode("big5")
        assert await wait_until(pilot, lambda: app.status.encoding == "UTF-8")


async def test_quit_never_discards_text_that_could_not_be_saved_anywhere(make_app, tmp_path, monkeypatch):
    def no_disk(*args, **kwargs):
        raise ManuscriptError("novel.txt: cannot save: no space left on device", "no space left on device")

    def no_recovery(*args, **kwargs):
        raise ManuscriptError("recovery: cannot write a recovery copy either: no space left on device")

    app, path = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        monkeypatch.setattr(saver_module, "save_atomic", no_disk)
        monkeypatch.setattr(saver_module, "save_recovery_copy", no_recovery)
        await pilot.press(*"要紧的字", "ctrl+q")
        assert await wait_until(pilot, lambda: isinstance(app.screen, OpenFileDialog))
        assert app.is_running, "quit discarded text that was saved nowhere"
        assert "not quitting" in app.status.message
        elsewhere = tmp_path / "elsewhere.txt"
        dialog_input = app.screen.query_one("#path")
        dialog_input.value = str(elsewhere)
        await pilot.press("enter")
        assert await wait_until(pilot, lambda: not app.is_running)
    assert elsewhere.read_text(encoding="utf-8") == MANUSCRIPT + "要紧的字"
    assert any(str(elsewhere) in line for line in app.exit_lines)


async def test_a_failed_save_quits_with_the_recovery_copy_named(make_app, tmp_path, monkeypatch):
    def no_disk(*args, **kwargs):
        raise ManuscriptError("novel.txt: cannot save: no space left on device", "no space left on device")

    app, path = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        monkeypatch.setattr(saver_module, "save_atomic", no_disk)
        await pilot.press(*"字", "ctrl+q")
        assert await wait_until(pilot, lambda: not app.is_running)
    copy = recovery_path_for(path, tmp_path / "data")
    assert copy.read_text(encoding="utf-8") == MANUSCRIPT + "字"
    assert any(str(copy) in line for line in app.exit_lines)


async def test_continuous_typing_is_saved_within_the_autosave_delay(make_app):
    """A key every 0.1 s never leaves the 0.3 s autosave delay quiet: the text must reach the disk
    while the author is still typing (a timer restarted by every key would never fire)."""
    app, path = make_app()  # autosave_seconds = 0.3
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        typed = 0
        while typed < 100:
            await pilot.press("字")
            typed += 1
            await pilot.pause(0.1)
            on_disk = path.read_text(encoding="utf-8")
            if len(on_disk) >= len(MANUSCRIPT) + 5:
                break
        assert typed < 100, "nothing typed reached the disk while typing went on"
        assert on_disk == MANUSCRIPT + "字" * len(on_disk[len(MANUSCRIPT):]), on_disk


async def test_the_lock_is_released_however_the_app_ends(make_app):
    """Not only on quit: an app that is simply shut down (as at the end of run_test) lets the file go."""
    app, path = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        assert not app.editor.read_only
    second, _ = make_app()
    async with second.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        assert not second.editor.read_only, second.status.message
