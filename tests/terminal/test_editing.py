"""Typing, pasting, moving, saving, quitting and reopening, through a real pseudo-terminal."""

from __future__ import annotations

from tests.terminal.harness import ctrl

ORIGINAL = "　　他走进了房间。\n"


def test_start_shows_the_manuscript_and_loads_the_model(start_studio):
    studio = start_studio("　　雨下了一整夜。\n　　天亮时，她已经走了。\n", cold=True)  # the console script, afresh
    studio.wait_for("雨下了一整夜。")
    screen = studio.wait_ready()
    assert "天亮时，她已经走了。" in screen
    assert studio.manuscript.name in screen.splitlines()[-2]  # the status line names the file


def test_chinese_typed_key_by_key_reaches_the_screen_and_the_file(start_studio):
    studio = start_studio(ORIGINAL)
    studio.wait_for("他走进了房间")
    typed = "她抬起头，笑了。\n“你回来了？”"
    studio.type_text(typed)
    studio.wait_for("“你回来了？”")
    assert "她抬起头，笑了。" in studio.screen_text()
    studio.save_and_expect(ORIGINAL + typed)


def test_ideographic_space_typed_as_a_key_is_kept(start_studio):
    studio = start_studio(ORIGINAL)
    studio.wait_for("他走进了房间")
    typed = "第一章　重逢\n　　雨停了。"
    studio.type_text(typed)
    studio.wait_for("雨停了。")
    studio.wait_for("第一章　重逢", timeout=2)
    studio.save_and_expect(ORIGINAL + typed)


def test_bracketed_paste_inserts_the_text_once(start_studio):
    studio = start_studio(ORIGINAL)
    studio.wait_for("他走进了房间")
    pasted = "窗外，第一章　重逢的钟声响了。"
    studio.paste(pasted)
    studio.wait_for("的钟声响了。")
    studio.save_and_expect(ORIGINAL + pasted)


def test_ctrl_home_and_ctrl_end_move_to_the_ends_of_the_manuscript(start_studio):
    text = "甲乙丙。\n丁戊己。\n庚辛壬。"
    studio = start_studio(text)
    studio.wait_for("庚辛壬。")
    # Settled: while the model loads, a ctrl+home in the first second can be lost (the next key lands at the end).
    studio.wait_ready()
    studio.press("ctrl+home")
    studio.type_text("始")
    studio.wait_for("始甲乙丙。", timeout=5)
    studio.press("ctrl+end")
    studio.type_text("末")
    studio.wait_for("庚辛壬。末")
    studio.save_and_expect("始" + text + "末")


def test_quit_saves_exits_0_prints_the_path_and_restores_the_terminal(start_studio):
    studio = start_studio(ORIGINAL)
    studio.wait_for("他走进了房间")
    studio.type_text("门开了。")
    studio.wait_for("门开了。")
    studio.send(ctrl("q"))
    assert studio.exit_status() == 0, studio.dump()
    assert studio.file_text() == ORIGINAL + "门开了。"
    assert studio.restore_problems() == [], studio.dump()
    printed = studio.after_screen()
    named = [word for word in printed.split() if (studio.root / word).resolve() == studio.manuscript.resolve()]
    assert named, f"no word of what was printed after the screen names {studio.manuscript}: {printed!r}"
    assert "Traceback" not in studio.output_text()


def test_reopening_shows_what_was_typed(start_studio):
    first = start_studio(ORIGINAL)
    first.wait_for("他走进了房间")
    first.type_text("她没有回头。")
    first.wait_for("她没有回头。")
    first.send(ctrl("q"))
    assert first.exit_status() == 0, first.dump()
    second = start_studio(None)  # the same file, as the first left it
    screen = second.wait_for("她没有回头。")
    assert "他走进了房间。" in screen
    assert second.file_text() == ORIGINAL + "她没有回头。"
