"""Resizing, the command palette and the history view, through a real pseudo-terminal."""

from __future__ import annotations

from tests.terminal.harness import ctrl, fkey

ORIGINAL = "　　他走进了房间。\n"
TOO_SMALL = "needs at least 60x16"


def test_a_too_small_window_says_so_and_typing_works_once_it_is_back(start_studio):
    studio = start_studio(ORIGINAL)
    studio.wait_for("他走进了房间")
    studio.resize(59, 15)  # one column and one row short
    studio.wait_for(lambda screen: TOO_SMALL in " ".join(screen.split()), message="waited for the too-small message;")
    assert "The terminal is 59x15" in studio.screen_text()
    studio.resize(100, 30)
    studio.wait_for(lambda screen: "他走进了房间" in screen and "The terminal is" not in screen,
                    message="waited for the manuscript to come back;")
    studio.type_text("灯亮了。")
    studio.wait_for("灯亮了。", timeout=5)
    studio.save_and_expect(ORIGINAL + "灯亮了。")


def test_ctrl_p_opens_the_command_palette_and_escape_closes_it(start_studio):
    studio = start_studio(ORIGINAL)
    studio.wait_for("他走进了房间")
    studio.send(ctrl("p"))
    studio.wait_for("Search for commands", timeout=5)
    studio.press("escape")
    studio.wait_gone("Search for commands", timeout=5)
    studio.type_text("好。")
    studio.wait_for("好。", timeout=5)
    studio.save_and_expect(ORIGINAL + "好。")


def test_f3_opens_the_history_and_escape_closes_it(start_studio):
    studio = start_studio(ORIGINAL)
    studio.wait_for("他走进了房间")
    studio.send(fkey(3))
    studio.wait_for("No history yet.", timeout=5)
    studio.press("escape")
    studio.wait_gone("No history yet.", timeout=5)
    studio.type_text("好。")
    studio.save_and_expect(ORIGINAL + "好。")
