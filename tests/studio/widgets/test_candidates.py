"""The candidates panel on its own: wrapping, scrolling while and after streaming, digit keys."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.widgets import Footer

from ai_writer.studio.i18n import set_language
from ai_writer.studio.widgets.candidates import CandidateRows, CandidatesPanel, CandidateView
from ai_writer.studio.text.cjk_wrap import CLOSING_PUNCTUATION, cjk_wrap_offsets

# Sentences of varied length, so stops and commas land at every column.
SENTENCES = ["他抬头望向远方，", "天边的云彩被夕阳染成了金红色。", "风吹过，", "她笑了。", "“走吧！”她轻声说道，",
             "声音里带着几分疲惫，却又透着一丝欣慰。", "林远点了点头，没有说话。"]
LONG = "".join(SENTENCES * 4) + "\n　　" + "".join(SENTENCES * 2)


class Host(App):
    CSS = "CandidatesPanel { height: 1fr; }"

    def __init__(self):
        super().__init__()
        self.accepted: list[tuple] = []

    def compose(self):
        yield CandidatesPanel(id="candidates")
        yield Footer()

    def on_candidates_panel_accept(self, event: CandidatesPanel.Accept) -> None:
        self.accepted.append((event.index, event.length))


@pytest.fixture(autouse=True)
def english():
    set_language("en")
    yield
    set_language("en")


def visible_rows(app, view: CandidateView) -> list[str]:
    """The rows of `view`'s text the terminal shows now (inside its border and padding)."""
    strips = app.screen._compositor.render_strips()
    region = view.scrollable_content_region
    return [strips[y].crop(region.x, region.right).text.rstrip() for y in range(region.y, region.bottom)]


async def stream(pilot, panel: CandidatesPanel, texts: list[str], piece: int = 25) -> None:
    """Append the texts a few characters at a time, drawing after each piece, as the app does."""
    longest = max(len(t) for t in texts)
    for start in range(0, longest, piece):
        for index, text in enumerate(texts):
            panel.append(index, text[start:start + piece])
        panel.refresh_views()
        await pilot.pause()


def naive_rows(text: str, chars: int) -> list[str]:
    return [line[i:i + chars] for line in text.split("\n") for i in range(0, max(1, len(line)), chars)]


def test_rows_grown_piece_by_piece_are_the_rows_of_the_whole_text():
    text = LONG + "\n\n" + LONG[:50]
    whole = CandidateRows().update(text, 30)
    expected, position = [], 0
    for line in text.split("\n"):  # each line wrapped on its own, as the editor does
        offsets = cjk_wrap_offsets(line, 30, 1)
        expected += [(position + a, position + b) for a, b in zip([0, *offsets], [*offsets, len(line)])]
        position += len(line) + 1
    assert whole == expected
    for piece in (1, 7, 64):
        rows = CandidateRows()
        for end in range(piece, len(text) + piece, piece):
            grown = rows.update(text[:end], 30)
        assert grown == whole
    assert rows.update(text, 24) == CandidateRows().update(text, 24)  # a new width: all again
    assert rows.update("新的候选", 24) == [(0, 4)]  # a new text
    quoted = "“好”" * 10  # 30 characters; the quotes are ambiguous-width
    assert len(CandidateRows().update(quoted, 40, 1)) == 1 and len(CandidateRows().update(quoted, 40, 2)) == 2


@pytest.mark.parametrize("width", [80, 120, 150])
async def test_every_candidate_wraps_like_the_manuscript_and_loses_nothing(width):
    app = Host()
    async with app.run_test(size=(width, 30)) as pilot:
        panel = app.query_one(CandidatesPanel)
        texts = [LONG, LONG[5:], LONG[11:]]
        panel.reset(3)
        await pilot.pause()
        await stream(pilot, panel, texts)
        panel.finish()
        await pilot.pause()
        for index, text in enumerate(texts):
            view = panel.view(index)
            rows = view.displayed_rows()
            assert "".join(rows) == text.replace("\n", "")
            assert not any(row[:1] in CLOSING_PUNCTUATION for row in rows if row), rows
            chars = view.scrollable_content_region.width // 2
            assert any(row[:1] in CLOSING_PUNCTUATION for row in naive_rows(text, chars))  # the rule was needed


async def test_side_by_side_the_tail_is_followed_while_streaming_and_the_start_shown_after():
    app = Host()
    async with app.run_test(size=(120, 16)) as pilot:
        panel = app.query_one(CandidatesPanel)
        texts = [LONG, LONG[3:], LONG[7:]]
        panel.reset(3)
        await pilot.pause()
        assert panel.wide
        await stream(pilot, panel, [t[:-20] for t in texts])
        view = panel.view(0)
        assert view.max_scroll_y > 0  # longer than its column
        shown = "".join(visible_rows(app, view))
        assert shown.endswith(texts[0][:-20][-8:]) and not shown.startswith(texts[0][:8])  # the newest text
        for index, text in enumerate(texts):
            panel.append(index, text[-20:])
        panel.finish()
        await pilot.pause()
        for index, text in enumerate(texts):
            assert visible_rows(app, panel.view(index))[0] == text[: len(visible_rows(app, panel.view(index))[0])]
            assert visible_rows(app, panel.view(index))[0].startswith(text[:8])


async def grown_to(pilot, panel: CandidatesPanel, texts: list[str], end: int) -> None:
    """Every candidate's text up to `end` characters, drawn (one frame of streaming)."""
    for index, text in enumerate(texts):
        panel.candidates[index].text = text[:end]
    panel.refresh_views()
    await pilot.pause()


async def test_side_by_side_new_characters_repaint_their_rows_and_the_title_alone_and_the_screen_is_right():
    app, texts = Host(), [LONG[:300], LONG[40:340]]
    async with app.run_test(size=(120, 16)) as pilot:
        panel, view = app.query_one(CandidatesPanel), app.query_one("#candidate-0", CandidateView)
        panel.reset(2)
        await pilot.pause()
        assert panel.wide
        drawn = []
        original = view.render_line
        view.render_line = lambda y: (drawn.append(y), original(y))[1]
        height = view.scrollable_content_region.height
        layouts = []
        refresh_layout = app.screen._refresh_layout
        app.screen._refresh_layout = lambda *args, **kwargs: (layouts.append(1), refresh_layout(*args, **kwargs))[1]
        partial = 0
        for end in range(1, len(texts[0]) + 1, 3):  # a few characters a frame, as they stream
            drawn.clear()
            before = view.scroll_offset.y
            await grown_to(pilot, panel, texts, end)
            rows = [texts[0][a:b].rstrip() for a, b in view._rows.rows]  # as visible_rows reads them
            top = int(view.scroll_offset.y)
            assert visible_rows(app, view) == (rows[top:top + height] + [""] * height)[:height]
            title_row = app.screen._compositor.render_strips()[view.region.y].text
            assert f"1 · {end} chars" in title_row
            if view.scroll_offset.y == before and 0 < len(drawn):
                partial += len(drawn) <= 2  # the row the text ended in (and a new one), not all `height`
        assert partial > 10
        assert len(layouts) <= 4  # a fixed height: no layout of the screen for each new row (it was one a row)


async def test_stacked_views_grow_with_their_text_and_the_screen_is_right_after_every_frame():
    app, texts, heights = Host(), [LONG[:200], LONG[40:240]], set()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(CandidatesPanel)
        panel.reset(2)
        await pilot.pause()
        view = panel.view(0)
        assert not panel.wide
        for end in range(1, len(texts[0]) + 1, 3):
            await grown_to(pilot, panel, texts, end)
            strips = app.screen._compositor.render_strips()
            region, shown = view.scrollable_content_region, panel.region
            rows = [texts[0][a:b].rstrip() for a, b in view._rows.rows]
            top = int(view.scroll_offset.y)
            for y in range(max(region.y, shown.y), min(region.bottom, shown.bottom)):  # its rows in the panel
                index = top + y - region.y
                assert strips[y].crop(region.x, region.right).text.rstrip() == (rows[index] if index < len(rows) else "")
            heights.add(view.size.height)
            if shown.y <= view.region.y < shown.bottom:
                assert f"1 · {end} chars" in strips[view.region.y].text
        assert len(heights) > 3  # the view grew with its text


async def test_the_author_scrolls_the_highlighted_candidate_with_keys():
    app = Host()
    async with app.run_test(size=(120, 16)) as pilot:
        panel = app.query_one(CandidatesPanel)
        panel.focus()
        texts = [LONG, LONG[3:], LONG[7:]]
        panel.reset(3)
        await pilot.pause()
        await stream(pilot, panel, [t[:320] for t in texts])
        first, second = panel.view(0), panel.view(1)
        await pilot.press("pageup")  # while streaming: back towards the start; it stops following
        await pilot.pause()
        held = first.scroll_y
        assert held < first.max_scroll_y and not first.following
        await stream(pilot, panel, [t[320:] for t in texts])
        assert first.scroll_y == held and second.scroll_y == second.max_scroll_y  # only the one scrolled stays
        panel.finish()
        await pilot.pause()
        assert first.scroll_y == held  # where the author put it
        await pilot.press("home")
        await pilot.pause()
        assert visible_rows(app, first)[0].startswith(texts[0][:8])
        await pilot.press("end")
        await pilot.pause()
        assert first.scroll_y == first.max_scroll_y > 0
        assert "".join(visible_rows(app, first)).endswith(texts[0][-8:])
        await pilot.press("down", "pagedown")  # the highlighted one: candidate 2
        await pilot.pause()
        assert panel.selected == 1 and second.scroll_y > 0 and first.scroll_y == first.max_scroll_y


async def test_stacked_the_highlighted_candidate_starts_in_sight():
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(CandidatesPanel)
        panel.focus()
        texts = [LONG, LONG[3:], LONG[7:]]
        panel.reset(3)
        await pilot.pause()
        await stream(pilot, panel, texts, piece=40)
        panel.finish()
        await pilot.pause()
        assert not panel.wide
        await pilot.press("down", "down")
        await pilot.pause()
        third = panel.view(2)
        assert visible_rows(app, third)[0].startswith(texts[2][:8])
        await pilot.press("end")
        await pilot.pause()
        assert "".join(visible_rows(app, third)).endswith(texts[2][-8:])
        await pilot.press("home")
        await pilot.pause()
        assert visible_rows(app, third)[0].startswith(texts[2][:8])


async def test_digits_accept_candidate_n_whole_and_the_footer_says_so():
    app = Host()
    async with app.run_test(size=(100, 20)) as pilot:
        panel = app.query_one(CandidatesPanel)
        panel.focus()
        panel.reset(3)
        await stream(pilot, panel, ["甲乙丙。", "丁戊己。", "庚辛壬。"])
        panel.finish()
        await pilot.press("shift+left")  # a cut on the highlighted one does not matter to digits
        await pilot.press("2", "1", "9")
        await pilot.pause()
        assert app.accepted == [(1, None), (0, None), (8, None)]  # the app says there is no candidate 9
        footer = app.screen._compositor.render_strips()[-1].text
        assert "1-9 accept" in footer
        ids = {binding.id for binding in panel._bindings.key_to_bindings.get("5", [])}
        assert ids == {"candidates.accept_5"}


async def test_panel_keys_are_described_in_chinese():
    set_language("zh")
    app = Host()
    async with app.run_test(size=(100, 20)) as pilot:
        app.query_one(CandidatesPanel).focus()
        await pilot.pause()
        footer = app.screen._compositor.render_strips()[-1].text
        assert "1-9 采用" in footer and "舍弃" in footer
