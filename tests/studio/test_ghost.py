"""Ghost text wraps like real text: it goes on below the cursor's row, dimmed, and is never in the document."""

from __future__ import annotations

from textual.app import App

from ai_writer.studio.text.cjk_wrap import cjk_wrap_offsets
from ai_writer.studio.widgets.editor import ManuscriptEditor
from ai_writer.studio.widgets.manuscript_area import layout_ghost
from tests.studio.test_app import MANUSCRIPT, generate, make_app, ready, wait_until  # noqa: F401 (fixture)

TEXT = "　　第一章　天才少年\n　　他抬头望向远方，\n　　第三行"
# 40 distinct characters: wider than the editor, so the ghost needs several rows.
GHOST = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥金木水火土日月星山川河海风云雷电霜雪"


class EditorApp(App):
    CSS = "ManuscriptEditor, ManuscriptEditor:focus { border: none; padding: 0; height: 1fr; }"

    def __init__(self, text: str = TEXT):
        super().__init__()
        self.text = text

    def compose(self):
        yield ManuscriptEditor(self.text, id="editor")


def screen_rows(app) -> list[str]:
    """The characters on the screen, row by row (blanks around them dropped, ideographic spaces kept)."""
    return [strip.text.strip(" ") for strip in app.screen._compositor.render_strips()]


def ghost_style_cells(app, character: str):
    """The style of `character` where it is drawn on the screen."""
    for strip in app.screen._compositor.render_strips():
        for segment in strip:
            if character in segment.text:
                return segment.style
    return None


async def test_a_long_ghost_goes_on_below_the_cursor_row_and_the_document_is_untouched():
    app = EditorApp()
    async with app.run_test(size=(30, 12)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.focus()
        editor.move_cursor((1, 9))  # before the final "，"
        await pilot.pause()
        undo_before = len(editor.history.undo_stack)
        height_before = editor.virtual_size.height
        editor.suggestion = GHOST
        await pilot.pause()
        rows = screen_rows(app)
        assert rows[1] == "　　他抬头望向远方甲乙丙丁戊"  # the cursor's row, then the ghost up to the edge (14 wide)
        assert rows[2].startswith("己庚辛")  # ... and on, on the next row
        shown = "".join(row.replace("\u3000", "") for row in rows[1:6])
        assert "他抬头望向远方" + GHOST + "，" + "第三行" in shown  # all of it, then the rest of the line, then the next line
        assert editor.text == TEXT
        assert editor.cursor_location == (1, 9)
        assert len(editor.history.undo_stack) == undo_before
        assert editor.virtual_size.height > height_before  # the extra rows can be scrolled to
        dimmed = ghost_style_cells(app, "己")
        assert dimmed is not None and dimmed.italic  # the ghost's style, on its later rows too
        assert ghost_style_cells(app, "他").italic is not True

        editor.suggestion = ""  # rejected: the rows are as before
        await pilot.pause()
        assert screen_rows(app)[1:4] == ["　　他抬头望向远方，", "　　第三行", ""]
        assert editor.virtual_size.height == height_before


async def test_the_ghost_rows_are_the_rows_the_text_will_have_once_accepted():
    app = EditorApp()
    async with app.run_test(size=(34, 12)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.focus()
        editor.cursor_blink = False
        editor.move_cursor((1, 5))
        editor.suggestion = GHOST + "。"
        await pilot.pause()
        with_ghost = screen_rows(app)
        editor.suggestion = ""
        editor.insert(GHOST + "。")
        await pilot.pause()
        assert screen_rows(app) == with_ghost
        assert editor.text != TEXT


async def test_a_ghost_with_paragraphs_wraps_each_and_the_line_goes_on_after_it():
    app = EditorApp()
    async with app.run_test(size=(30, 12)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.focus()
        editor.move_cursor((1, 9))
        editor.suggestion = "了。\n　　" + GHOST[:20]
        await pilot.pause()
        rows = screen_rows(app)
        assert rows[1] == "　　他抬头望向远方了。"
        assert rows[2] == "　　" + GHOST[:12]
        assert rows[3] == GHOST[12:20] + "，"
        assert rows[4] == "　　第三行"
        assert editor.text == TEXT


async def test_the_ghost_is_scrolled_into_view_with_the_cursor_row_kept_on_screen():
    text = "\n".join(f"　　第{n}行" for n in range(20))
    app = EditorApp(text)
    async with app.run_test(size=(30, 10)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.focus()
        editor.move_cursor((9, 5))  # the last row on screen
        await pilot.pause()
        assert editor.scroll_offset.y == 0 and screen_rows(app)[9] == "　　第9行"
        editor.suggestion = GHOST * 2  # 7 rows
        await pilot.pause()
        await pilot.pause()
        rows = screen_rows(app)
        assert editor.scroll_offset.y > 0
        assert any(row.startswith("　　第9行") for row in rows)  # the cursor's row still shows
        assert GHOST[-4:] in "".join(rows)  # and the ghost's end
        assert editor.text == text


async def test_a_click_below_the_ghost_lands_on_the_text_drawn_there():
    app = EditorApp()
    async with app.run_test(size=(30, 12)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.focus()
        editor.move_cursor((1, 9))
        editor.suggestion = GHOST
        await pilot.pause()
        rows = screen_rows(app)
        y = rows.index("　　第三行")
        assert y > 2  # pushed down by the ghost
        await pilot.click(editor, offset=(5, y))
        assert editor.cursor_location[0] == 2  # the line drawn there, not the one the row had without the ghost


def test_layout_keeps_the_cursor_on_its_row_when_kinsoku_would_pull_text_down():
    line = "一二三四五六七八九十"  # 20 cells
    width = 20
    assert cjk_wrap_offsets(line + "。", width) == [9]  # real text: "十" goes down with the "。"
    rows, cursor = layout_ghost(line, 0, len(line), 0, "。后面", width)
    texts = ["".join(piece for piece, _ in row) for row in rows]
    assert texts == [line, "。后面"] and cursor == len(line)  # the cursor stays after "十"
    assert rows[1][0][1] is None  # ghost text, not a document location


def test_layout_marks_document_locations_of_the_real_text_around_the_ghost():
    rows, cursor = layout_ghost("ab，cd", 3, 2, 0, "XYZ", 6)
    assert cursor == 2
    assert [[(piece, location) for piece, location in row] for row in rows] == [
        [("ab", (3, 0)), ("XY", None)],
        [("Z", None), ("，cd", (3, 2))],
    ]


async def test_in_the_studio_the_highlighted_candidate_wraps_and_accepting_keeps_the_picture(make_app):
    app, path = make_app()
    app.config = app.config.with_value("generation", "length", 60)
    async with app.run_test(size=(80, 30)) as pilot:
        await ready(pilot, app)
        app.editor.cursor_blink = False
        texts = await generate(pilot, app)
        await pilot.pause()
        ghost = app.editor.suggestion
        assert ghost == texts[0] and len(ghost) == 60
        rows = screen_rows(app)
        screen = "\n".join(rows)
        assert ghost[-5:] in screen  # the end of a 60-character candidate is on the screen
        cursor_row = next(y for y, row in enumerate(rows) if "他抬头望向远方，" in row)
        assert ghost[-5:] not in rows[cursor_row]  # not on the cursor's row: it wrapped
        assert app.editor.text == MANUSCRIPT
        assert path.read_text(encoding="utf-8") == MANUSCRIPT
        before_region = app.editor.region
        await pilot.press("right")  # accept the ghost
        assert app.editor.text == MANUSCRIPT + ghost
        assert app.editor.suggestion == ""
        await pilot.pause()
        after = screen_rows(app)
        # The candidates panel may shrink once emptied, so compare the rows that were the editor's both times.
        editor_region = app.editor.region
        top, bottom = max(editor_region.y, before_region.y), min(editor_region.bottom, before_region.bottom)
        assert bottom - top >= 5
        assert after[top:bottom] == rows[top:bottom]  # the same rows, now real text


# -- the editor's own row drawing (fast path) matches TextArea's --------------

import rich.text  # noqa: E402
from textual.widgets import TextArea  # noqa: E402

ROWS_TEXT = (
    "　　第一章　天才少年\n"
    "　　他抬头望向远方，“你还在写？”母亲推门进来，手里端着一杯热茶，“都快十二点了。”\n"
    "\n"
    "abc def ghi jkl mno pqr stu vwx yz 0123456789\n"
    "　　最后一行"
)


def compare_rows(editor) -> int:
    """Every row the fast path draws equals TextArea's own drawing; returns how many it drew."""
    drawn = 0
    for y in range(editor.size.height):
        fast = editor._fast_row(y)
        if fast is not None:
            assert list(fast) == list(TextArea._render_line(editor, y)), (y, fast.text)  # uncached: Textual's drawing
            drawn += 1
    return drawn


async def test_rows_are_drawn_exactly_as_textarea_draws_them():
    app = EditorApp(ROWS_TEXT)
    async with app.run_test(size=(24, 16)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.focus()
        editor.cursor_blink = False
        offsets = editor.wrapped_document.get_offsets(1)
        places = [(0, 0), (1, 3), (1, offsets[0]), (1, offsets[0] - 1), (1, len(editor.document[1])), (2, 0),
                  (3, 5), (3, len(editor.document[3])), (4, 2)]
        for place in places:
            editor.move_cursor(place)
            await pilot.pause()
            drawn = compare_rows(editor)
            assert drawn == editor.wrapped_document.height  # every row, the cursor's included
        editor.highlight_cursor_line = False
        await pilot.pause()
        assert compare_rows(editor) > 0
        editor.blur()  # no cursor drawn
        await pilot.pause()
        assert compare_rows(editor) > 0
        editor.focus()
        editor.move_cursor((1, 2), select=False)
        editor.select_line(1)  # a selection: those rows are left to TextArea
        await pilot.pause()
        assert 0 < compare_rows(editor) < editor.wrapped_document.height


async def test_typing_redraws_only_the_rows_that_changed():
    app = EditorApp(ROWS_TEXT)
    async with app.run_test(size=(24, 16)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.focus()
        editor.cursor_blink = False
        editor.move_cursor((4, 6))
        await pilot.pause()
        drawn = []
        original = rich.text.Text.render

        def counting_render(self, *args, **kwargs):
            drawn.append(self.plain)
            return original(self, *args, **kwargs)

        rich.text.Text.render = counting_render
        try:
            await pilot.press("x")
            await pilot.pause()
        finally:
            rich.text.Text.render = original
        assert editor.document[4].endswith("x")
        assert any("x" in text for text in drawn)  # the cursor's row was drawn afresh
        assert not any("天才少年" in text for text in drawn)  # other rows came from the cache
