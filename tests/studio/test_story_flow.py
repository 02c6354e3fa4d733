"""The story layer in the studio (Pilot, fake engine): the story file read at open and honoured by requests,
f4's panel saving it, f6's viewer showing what the next request reads, a broken file turning the layer off."""

from __future__ import annotations

import os
import time

from ai_writer.backends.writing.story import Story
from ai_writer.studio.data.story_file import load_story
from ai_writer.studio.dialogs.context_view import ContextView
from ai_writer.studio.dialogs.story_panel import StoryPanel
from ai_writer.studio.open_story import OpenStory
from tests.studio.test_app import generate, make_app, ready, wait_until  # noqa: F401  (make_app: a fixture)

STORY = '''# 人物、设定
memory = "林雪：青云宗外门弟子。"

[authors_note]
text = "下一段：师兄出场。"
depth = 4

[generation]
length = 5

[[lore]]
name = "远方"
keys = ["远方"]
text = "远方是青云山。"
'''


def story_file(tmp_path, text=STORY):
    path = tmp_path / "novel.story.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_the_story_beside_the_manuscript_shapes_every_request(make_app, tmp_path):
    story_file(tmp_path)
    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        request = app.screen.generation.request
        assert request.story.memory == "林雪：青云宗外门弟子。"
        assert all(len(t) == 5 for t in texts)  # the story's [generation] length over the config's 12
        plan = app.service.plan(request)
        kinds = [(p.kind, p.name) for p in plan.context.parts]
        assert kinds[:2] == [("memory", ""), ("lore", "远方")]  # "远方" is in the manuscript near the cursor
        assert ("note", "") in kinds
        assert plan.tokens_to_read == 0  # the request just read it all


async def test_editing_the_story_file_elsewhere_is_read_before_the_next_request(make_app, tmp_path):
    path = story_file(tmp_path)
    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        path.write_text(STORY.replace("林雪：青云宗外门弟子。", "林雪：内门弟子。"), encoding="utf-8")
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a distinct mtime even on coarse clocks
        await generate(pilot, app)
        assert app.screen.generation.request.story.memory == "林雪：内门弟子。"
        assert "changed on disk" in app.status.message


async def test_a_broken_story_file_is_named_the_manuscript_opens_and_nothing_is_written(make_app, tmp_path):
    broken = STORY.replace('depth = 4', 'depth = "four"')
    path = story_file(tmp_path, broken)
    app, manuscript = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        assert "novel.story.toml" in app.status.message and "depth" in app.status.message
        assert app.editor.text == manuscript.read_text(encoding="utf-8")
        await generate(pilot, app)
        assert app.screen.generation.request.story == Story()  # the layer is off until the file is fixed
    assert path.read_text(encoding="utf-8") == broken


async def test_f4_edits_and_saves_the_story_and_f6_shows_it_in_the_context(make_app, tmp_path):
    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        path = tmp_path / "novel.story.toml"
        assert not path.exists()  # created only when the author adds something
        await pilot.press("f4")
        assert await wait_until(pilot, lambda: isinstance(app.screen, StoryPanel))
        memory = app.screen.query_one("#memory")
        memory.focus()
        memory.insert("主角：林远。")
        await pilot.press("ctrl+s")
        assert await wait_until(pilot, path.exists)
        assert load_story(path).memory == "主角：林远。"
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, StoryPanel))
        assert "story saved" in app.status.message
        await pilot.press("f6")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ContextView))
        shown = [area.text for area in app.screen.query("TextArea")]
        assert any("主角：林远。" in text for text in shown), shown
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, ContextView))


def test_a_story_file_changed_on_disk_since_it_was_read_is_not_written_over(tmp_path):
    path = story_file(tmp_path)
    opened = OpenStory.for_manuscript(tmp_path / "novel.txt")
    assert opened.story.memory == "林雪：青云宗外门弟子。"
    edited_elsewhere = STORY.replace("林雪", "林霜")
    path.write_text(edited_elsewhere, encoding="utf-8")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    problem = opened.save(Story(memory="mine"))
    assert problem and "changed on disk" in problem
    assert path.read_text(encoding="utf-8") == edited_elsewhere
    assert opened.refresh() and opened.story.memory == "林霜：青云宗外门弟子。"
    assert opened.save(Story(memory="mine")) is None and load_story(path).memory == "mine"


async def test_a_whole_book_read_shows_its_progress_then_its_states_spare_the_next_open(make_app, tmp_path):
    story_file(tmp_path, "[generation]\ncontext_chars = 0\n")
    book = "　　他抬头望向远方，山峦起伏。\n" * 400  # 6,400 characters: 25 chunks of 256
    app, _ = make_app(text=book, delay=0.02)
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_until(pilot, lambda: "reading" in app.status.activity and "/ " in app.status.activity)
        assert await wait_until(pilot, lambda: app.screen.warm_job is not None and app.screen.warm_job.done, 60)
        assert await wait_until(pilot, lambda: app.status.activity == "")
    again, _ = make_app(text=None)  # the same file, a new studio: its states are on disk
    async with again.run_test(size=(100, 30)) as pilot:
        await ready(pilot, again)
        assert await wait_until(pilot, lambda: again.screen.warm_job is not None and again.screen.warm_job.done)
        assert again.screen.engine.tokens_processed == 0  # the book's end came from the disk: nothing read
        plan = again.service.plan(again.screen.next_request())
        assert plan.tokens_to_read == 0 and plan.total_tokens > 5000
