"""Typing into the manuscript editor: every character an input method sends goes in; ctrl+home / ctrl+end.

Keys reach the app as Textual's Linux driver delivers them: the bytes a terminal
sends, decoded by Textual's XTermParser, posted through the driver.
"""

from __future__ import annotations

import sys
import unicodedata

import pytest
from textual._xterm_parser import XTermParser
from textual.app import App
from textual.widgets import TextArea

from ai_writer.studio.widgets.editor import ManuscriptEditor
from ai_writer.studio.widgets.manuscript_area import is_typed_text

TEXT = "　　第一段。\n　　第二段。\n　　第三段"
UNICODE_SPACES = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Zs" and c != 0x20]


class EditorApp(App):
    def __init__(self, text: str = TEXT, widget=ManuscriptEditor):
        super().__init__()
        self.text, self.widget = text, widget

    def compose(self):
        yield self.widget(self.text, id="editor")


async def send(app, pilot, data: str) -> None:
    """`data` as a terminal sends it, through Textual's input parser and the app's driver."""
    for event in XTermParser().feed(data):
        event.set_sender(app)
        app._driver.send_message(event)
    await pilot.pause()


def test_characters_isprintable_refuses_but_people_type_are_text():
    assert UNICODE_SPACES and "\u3000" in UNICODE_SPACES and not "\u3000".isprintable()
    for space in UNICODE_SPACES:
        assert is_typed_text(space), hex(ord(space))
    assert is_typed_text("\u200d")  # zero-width joiner (emoji sequences)
    assert is_typed_text("\U000f0000")  # supplementary private use
    for refused in ("\x01", "\x1b", "\u2028", "\u2029", "\ue000", "\uf8ff", "", None):
        assert not is_typed_text(refused), repr(refused)  # controls, line breaks, kitty's key codes, nothing
    assert not is_typed_text("a")  # printable: TextArea inserts it itself


async def test_a_chinese_indent_and_every_unicode_space_are_inserted():
    app = EditorApp()
    async with app.run_test(size=(40, 10)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.focus()
        editor.move_cursor(editor.document.end)
        await send(app, pilot, "\r　　第一章　重逢")  # enter, then an input method commits the phrase
        assert editor.document[3] == "　　第一章　重逢"
        await send(app, pilot, "".join(UNICODE_SPACES))
        assert editor.document[3] == "　　第一章　重逢" + "".join(UNICODE_SPACES)
        editor.select_line(0)
        await send(app, pilot, "\u3000")  # replaces the selection, as any typed character does
        assert editor.document[0] == "\u3000"
        assert editor.text.count("\n") == 3


async def test_plain_textarea_drops_the_ideographic_space():
    """Why the editor handles these keys itself: Textual's TextArea inserts only str.isprintable()."""
    app = EditorApp("", widget=TextArea)
    async with app.run_test(size=(40, 10)) as pilot:
        app.query_one(TextArea).focus()
        await send(app, pilot, "第一章　重逢")
        assert app.query_one(TextArea).text == "第一章重逢"


async def test_a_bracketed_paste_keeps_ideographic_spaces():
    pasted = "　　第二章　离别\n　　他说：“再见。”"
    app = EditorApp()
    async with app.run_test(size=(40, 10)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.focus()
        editor.move_cursor(editor.document.end)
        await send(app, pilot, "\x1b[200~\n" + pasted + "\x1b[201~")
        assert editor.text == TEXT + "\n" + pasted


async def test_ctrl_home_and_ctrl_end_move_to_the_ends_and_select_with_shift():
    text = "\n".join(f"　　第{n}段，天色渐渐暗了下来，街上的行人越来越少。" for n in range(60))
    app = EditorApp(text)
    async with app.run_test(size=(40, 12)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        editor.focus()
        editor.move_cursor((30, 4))
        await send(app, pilot, "\x1b[1;5F")  # ctrl+end, as xterm sends it
        assert editor.cursor_location == editor.document.end and editor.selection.is_empty
        assert editor.scroll_offset.y == editor.max_scroll_y > 0
        await send(app, pilot, "\x1b[1;5H")  # ctrl+home
        assert editor.cursor_location == (0, 0) and editor.scroll_offset.y == 0
        editor.move_cursor((30, 4))
        await send(app, pilot, "\x1b[1;6H")  # ctrl+shift+home: select to the start
        assert tuple(editor.selection) == ((30, 4), (0, 0))
        editor.move_cursor((30, 4))
        await send(app, pilot, "\x1b[1;6F")  # ctrl+shift+end: select to the end
        assert tuple(editor.selection) == ((30, 4), editor.document.end)
        assert editor.selected_text == editor.document.get_text_range((30, 4), editor.document.end)


async def test_the_document_bindings_have_ids_that_a_keymap_can_rebind():
    app = EditorApp()
    async with app.run_test(size=(40, 10)) as pilot:
        editor = app.query_one(ManuscriptEditor)
        ids = {binding.id: key for key, binding in editor._bindings}
        assert ids["editor.document_start"] == "ctrl+home"
        assert ids["editor.document_end"] == "ctrl+end"
        assert ids["editor.select_to_document_start"] == "ctrl+shift+home"
        assert ids["editor.select_to_document_end"] == "ctrl+shift+end"
        app.set_keymap({"editor.document_start": "f6"})
        editor.focus()
        editor.move_cursor((2, 3))
        await pilot.press("f6")
        assert editor.cursor_location == (0, 0)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_in_a_real_terminal_the_ideographic_space_is_saved(tmp_path):
    """The real ai-writer under a pty: an IME's commit with U+3000, and a paste, reach the file."""
    from tests.helpers import cjk_chars, random_rwkv7_weights, write_model_with_chars
    from tests.terminal.harness import Studio, ctrl, wait_file, write_config

    vocab = cjk_chars(32)
    (tmp_path / "model").mkdir()
    model = write_model_with_chars(tmp_path / "model", random_rwkv7_weights(2, 64, len(vocab), seed=0), vocab,
                                   stem="tiny7")
    manuscript = tmp_path / "novel.txt"
    manuscript.write_bytes("　　他走进了房间。\n".encode("utf-8"))
    with Studio(tmp_path, write_config(tmp_path / "config.toml", model), manuscript, cols=80, rows=24) as studio:
        studio.wait_for("他走进了房间")
        studio.send("　　第一章　重逢".encode("utf-8"))  # an input method commits the phrase in one write
        studio.paste("\n　　第二章　离别")
        studio.wait_for("第二章　离别")
        studio.send(ctrl("s"))
        wait_file(manuscript, "　　他走进了房间。\n　　第一章　重逢\n　　第二章　离别", screen=studio)
