"""The editor's hook for per-character styles of one span (the probability view): on the rows the fast path
draws, across wrapped rows and line breaks, on the ghost block's rows, and gone when cleared."""

from __future__ import annotations

from rich.style import Style
from textual.app import App

from ai_writer.studio.widgets.editor import ManuscriptEditor

RED = Style(color="red", underline=True)
BLUE = Style(color="blue", bold=True)
FIRST = "　　天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往"  # 22 characters: two rows at 20 columns
TEXT = FIRST + "\n　　秋收冬藏"


class Host(App):
    def compose(self):
        yield ManuscriptEditor(TEXT, id="editor")


def row_chars(editor, y: int) -> list[tuple[str, Style]]:
    strip = editor.render_line(y)
    return [(char, segment.style) for segment in strip for char in segment.text]


def marked(editor, y: int) -> str:
    """The row's characters, each written as R (red underline), B (blue bold) or . (neither)."""
    out = []
    for char, style in row_chars(editor, y):
        if style is not None and style.underline and style.color and style.color.name == "red":
            out.append("R")
        elif style is not None and style.bold and style.color and style.color.name == "blue":
            out.append("B")
        elif char.strip() or char == "　":
            out.append(".")
    return "".join(out)


async def test_a_span_over_wrapped_rows_and_a_line_break_is_styled_character_by_character():
    app = Host()
    async with app.run_test(size=(24, 8)) as pilot:  # 20 cells of text (padding 1 each side, no scrollbar)
        editor = app.query_one(ManuscriptEditor)
        editor.cursor_blink = False
        editor.move_cursor((0, 0))
        await pilot.pause()
        rows = [editor.render_line(y).text.strip(" ") for y in range(4)]
        assert rows == ["　　天地玄黄宇宙洪荒", "日月盈昃辰宿列张寒来", "暑往", "　　秋收冬藏"]  # 10 a row
        plain = [marked(editor, y) for y in range(4)]
        assert set("".join(plain)) == {"."}
        # from column 8 of line 0 on: its 14 characters, its line break, then 　　秋 of line 1
        editor.set_span_styles((0, 8), [RED, BLUE] * 7 + [None] + [None, None, RED])
        await pilot.pause()
        assert [marked(editor, y) for y in range(4)] == ["........RB", "RB" * 5, "RB", "..R..."]
        editor.set_span_styles(None)
        await pilot.pause()
        assert [marked(editor, y) for y in range(4)] == plain


async def test_the_ghost_block_and_the_rows_above_it_keep_the_span_styles():
    app = Host()
    async with app.run_test(size=(24, 8)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.cursor_blink = False
        editor.move_cursor((0, len(FIRST)))  # the end of the two-row line
        editor.suggestion = "春夏"
        editor.set_span_styles((0, 0), [RED] * len(FIRST))
        await pilot.pause()
        assert editor.ghost_layout() is not None and editor.ghost_layout().first_row == 2
        above = marked(editor, 0) + marked(editor, 1)  # the cursor's line, above the ghost block
        assert above == "R" * 20, above
        ghost_row = row_chars(editor, 2)
        real = [s for c, s in ghost_row if c in "暑往"]
        assert len(real) == 2 and all(s.underline and s.color.name == "red" for s in real)
        ghost = [s for c, s in ghost_row if c in "春夏"]
        assert len(ghost) == 2 and not any(s.underline for s in ghost)  # the ghost is not the span's
        editor.set_span_styles(None)
        await pilot.pause()
        assert "R" not in marked(editor, 0) + marked(editor, 1)
