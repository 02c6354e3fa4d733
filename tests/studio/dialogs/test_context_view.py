"""The context viewer on its own: every part with its header and exact text, the keys that fired,
what was left out and cut, the re-read numbers; a 200,000-character context opens and scrolls to its end."""

from __future__ import annotations

from textual.widgets import TextArea

from ai_writer.backends.writing.context import AssembledContext, ContextPart, KeyHit, assemble
from ai_writer.backends.writing.story import ContextBudgets, LoreEntry, Story
from ai_writer.studio.dialogs.context_view import ContextView
from ai_writer.studio.i18n import set_language
from tests.studio.dialogs.host import DialogHost

SIZE = (80, 24)


class Host(DialogHost):
    def __init__(self, context, total: int, cached: int):
        super().__init__(ContextView(context, total, cached))


def text_of(view: ContextView, widget_id: str) -> str:
    widget = view.query_one(f"#{widget_id}")
    return widget.text if isinstance(widget, TextArea) else str(widget.content)


CONTEXT = AssembledContext(
    parts=(ContextPart("memory", "\n林远是青云门弟子。\n"), ContextPart("lore", "林远：主角。\n", "林远"),
           ContextPart("story", "　　他抬头望向远方，\n\n"), ContextPart("note", "写得紧凑些。\n"),
           ContextPart("story", "　　风吹过。")),
    hits=(KeyHit("林远", "/林.远/", 1234),),
    left_out=(("青云门", "no key"), ("旧设定", "disabled"), ("怪名", "a reason the viewer has no words for")),
    cut=(("memory", 12), ("lore 林远", 3), ("note", 40)),
)


async def test_every_part_hit_left_out_cut_and_the_reread_numbers_are_shown():
    app = Host(CONTEXT, total=2000, cached=1500)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.view
        assert text_of(view, "context-title") == f"What the model reads next · {len(CONTEXT.text)} characters"
        assert text_of(view, "context-reread") == \
            "500 of 2,000 characters will be re-read (the rest comes from the cache)"
        headers = [text_of(view, f"part-{i}-header") for i in range(len(CONTEXT.parts))]
        assert headers == ["memory · 11 characters", "lore entry 林远 · 7 characters", "story · 12 characters",
                           "author's note · 7 characters", "story · 6 characters"]
        # The text exactly as read, each line break shown as ⏎ at its line's end.
        assert text_of(view, "part-0") == "⏎\n林远是青云门弟子。⏎"
        assert text_of(view, "part-2") == "　　他抬头望向远方，⏎\n⏎"
        assert text_of(view, "part-4") == "　　风吹过。"
        for index, part in enumerate(CONTEXT.parts):
            assert text_of(view, f"part-{index}").replace("⏎\n", "\n").replace("⏎", "\n") == part.text
        assert text_of(view, "context-hits") == "林远: /林.远/ at character 1,234"
        assert text_of(view, "context-left-out").split("\n") == [
            "青云门: none of its keys appeared", "旧设定: disabled", "怪名: a reason the viewer has no words for"]
        assert text_of(view, "context-cut").split("\n") == [
            "memory: 12 characters cut", "lore entry 林远: 3 characters cut", "author's note: 40 characters cut"]
        await pilot.press("escape")
        await pilot.pause()
        assert app.result is None and not isinstance(app.screen, ContextView)


async def test_a_real_assembled_context_with_nothing_fired_left_out_or_cut():
    context = assemble("　　他抬头望向远方，", Story(memory="林远。", lore=(LoreEntry("青云门", keys=("青云",), text="门派"),)))
    app = Host(context, total=len(context.text), cached=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        kinds = [part.kind for part in context.parts]
        assert kinds == ["memory", "story"]
        assert text_of(app.view, "part-0-header") == f"memory · {len(context.parts[0].text)} characters"
        assert text_of(app.view, "context-hits") == "none"
        assert text_of(app.view, "context-left-out") == "青云门: none of its keys appeared"
        assert text_of(app.view, "context-cut") == "none"
        total = len(context.text)
        assert text_of(app.view, "context-reread") == \
            f"{total} of {total} characters will be re-read (the rest comes from the cache)"


async def test_an_empty_part_says_so():
    app = Host(AssembledContext((ContextPart("story", ""),), (), (), ()), total=0, cached=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert text_of(app.view, "part-0") == "(empty)"
        assert text_of(app.view, "part-0-header") == "story · 0 characters"


async def test_a_200000_character_context_opens_and_its_end_is_reachable():
    paragraph = "他抬头望向远方，天边的云彩被夕阳染成了金红色。" * 20 + "\n"
    body = paragraph * (201_000 // len(paragraph)) + "最后一句。"
    context = assemble(body, Story(memory="林远。"), ContextBudgets(context_chars=0))
    story_part = max(context.parts, key=lambda part: len(part.text))
    assert len(context.text) > 200_000 and story_part.kind == "story"
    index = context.parts.index(story_part)
    app = Host(context, total=len(context.text), cached=1000)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        area = app.view.query_one(f"#part-{index}", TextArea)
        assert area.text == story_part.text.replace("\n", "⏎\n").removesuffix("\n")  # whole, not shortened
        scroll = app.view.query_one("#context-parts")
        assert app.view.focused is scroll
        assert "最后一句。" not in app.export_screenshot()
        await pilot.press("end")
        await pilot.pause()
        assert scroll.max_scroll_y > 1000 and scroll.scroll_y == scroll.max_scroll_y
        assert "最后一句。" in app.export_screenshot()  # the end is on the screen
        await pilot.press("escape")
        await pilot.pause()
        assert app.result is None


async def test_the_viewer_speaks_chinese():
    set_language("zh")
    app = Host(CONTEXT, total=2000, cached=1500)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert text_of(app.view, "context-reread") == "2,000 字中将重新读取 500 字（其余来自缓存）"
        assert text_of(app.view, "part-1-header") == "设定条目 林远 · 7 字"
