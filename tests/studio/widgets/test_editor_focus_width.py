"""The editor is as wide focused as unfocused (TextArea's :focus border would take 2 cells)."""

from __future__ import annotations

from textual.app import App
from textual.widgets import Input, TextArea

from ai_writer.studio.widgets.editor import ManuscriptEditor

# Rows that end exactly at the right edge: a hidden last character would show.
TEXT = "　　" + "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏闰余成岁律吕调阳云腾致雨露结为霜" * 3


class TwoWidgets(App):
    """The editor with no CSS of the app's own, and a second widget to take the focus."""

    def __init__(self, widget=ManuscriptEditor):
        super().__init__()
        self.widget = widget

    def compose(self):
        yield self.widget(TEXT, id="editor")
        yield Input(id="other")


def picture(editor) -> tuple:
    rows = [editor.render_line(y).text.rstrip() for y in range(editor.size.height)]
    return editor.wrap_width, editor.content_region, editor.scrollable_content_region, rows


async def test_focus_does_not_change_the_wrap_width_or_the_rows():
    app = TwoWidgets()
    async with app.run_test(size=(50, 14)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.cursor_blink = False
        app.query_one("#other").focus()
        await pilot.pause()
        assert not editor.has_focus
        unfocused = picture(editor)
        editor.focus()
        await pilot.pause()
        assert editor.has_focus
        focused = picture(editor)
        assert focused[:3] == unfocused[:3]
        shown = "".join(row.strip() for row in focused[3])
        assert TEXT.strip("　") in shown.replace("　", "")  # every character is drawn


class BorderlessArea(TextArea):
    DEFAULT_CSS = "BorderlessArea { border: none; }"  # the editor's rule before: loses to TextArea:focus


async def test_a_plain_border_rule_loses_to_textareas_focus_style():
    """Why the editor's rule names :focus too."""
    app = TwoWidgets(BorderlessArea)
    async with app.run_test(size=(50, 14)) as pilot:
        area = app.query_one(BorderlessArea)
        app.query_one("#other").focus()
        await pilot.pause()
        unfocused = area.wrap_width
        area.focus()
        await pilot.pause()
        assert area.wrap_width == unfocused - 2
