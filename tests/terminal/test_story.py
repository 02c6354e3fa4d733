"""The story panel (f4) and the context viewer (f6), through a real pseudo-terminal."""

from __future__ import annotations

import time

from ai_writer.studio.data.story_file import load_story
from tests.terminal.harness import ctrl, fkey

ORIGINAL = "　　他走进了房间。\n"


def test_f4_writes_the_memory_to_the_story_file_and_f6_shows_it_read_first(start_studio, tmp_path):
    studio = start_studio(ORIGINAL)
    studio.wait_ready()
    story = tmp_path / "novel.story.toml"
    studio.send(fkey(4))
    studio.wait_for("Story: novel.story.toml", timeout=5)
    studio.type_text("林远，少年剑客。")  # the memory field has the focus
    studio.wait_for("林远，少年剑客。", timeout=5)
    studio.send(ctrl("s"))
    deadline = time.monotonic() + 10
    while not story.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert story.exists(), studio.dump()
    assert load_story(story).memory == "林远，少年剑客。"
    studio.press("escape")
    studio.wait_gone("Story: novel.story.toml", timeout=5)
    studio.send(fkey(6))
    screen = studio.wait_for("What the model reads next", timeout=10)
    assert "memory" in screen and "林远，少年剑客。⏎" in screen, studio.dump()
    studio.press("escape")
    studio.wait_gone("What the model reads next", timeout=5)
    studio.type_text("好。")  # back in the manuscript
    studio.save_and_expect(ORIGINAL + "好。")
