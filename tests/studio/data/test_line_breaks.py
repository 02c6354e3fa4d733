"""Files the editor could not give back byte for byte are refused at open, by line; read-only use still reads them."""

import pytest
from textual.widgets.text_area import Document

from ai_writer.studio.data.line_breaks import SPLITTING
from ai_writer.studio.data.manuscript_file import ManuscriptNotEditable, load_manuscript, read_manuscript, save_atomic

LINES = "第一行\n第二行\n"

NAMES = {
    "\v": "vertical tab", "\f": "form feed", "\x1c": "file separator", "\x1d": "group separator",
    "\x1e": "record separator", "\x85": "next line", "\u2028": "line separator", "\u2029": "paragraph separator",
    "\r": "a carriage return without a line feed",
}


def test_every_character_the_editor_splits_on_is_covered():
    # The editor's own document turns each of these into a line break of its own style.
    for char in [*SPLITTING, "\r"]:
        text = f"甲{char}乙\n"
        assert Document(text).text != text, repr(char)
    assert set(NAMES) == {*SPLITTING, "\r"}


@pytest.mark.parametrize("char", sorted(NAMES))
def test_stray_line_break_is_refused_by_line_and_still_read(tmp_path, char):
    path = tmp_path / "novel.txt"
    text = LINES + f"第三行有{char}一个怪字符\n第四行\n"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(ManuscriptNotEditable) as caught:
        load_manuscript(path, for_editing=True)
    code = f"U+{ord(char):04X}"
    assert str(caught.value) == (f"{path}: line 3: contains {code} ({NAMES[char]}), which the editor cannot keep "
                                 "(it would become a line break); not opened for editing")
    assert (caught.value.line, caught.value.char) == (3, char)
    assert read_manuscript(path) == text  # ai-writer continue reads it as it is


def test_the_first_stray_character_is_named(tmp_path):
    path = tmp_path / "novel.txt"
    path.write_bytes("一\n二\f\n三\u2028\n".encode())
    with pytest.raises(ManuscriptNotEditable, match=r"line 2: contains U\+000C \(form feed\)"):
        load_manuscript(path, for_editing=True)


def test_lone_cr_in_a_crlf_file_is_refused(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes("一\r\n二\r\n三\r四\r\n".encode("gbk"))
    with pytest.raises(ManuscriptNotEditable, match=r"line 3: contains U\+000D \(a carriage return without a line"):
        load_manuscript(path, for_editing=True)


@pytest.mark.parametrize("data, line, this, other", [
    (b"a\r\nb\r\nc\nd\r\n", 3, "LF", "CRLF"),  # mostly CRLF: the LF line is named
    (b"a\nb\r\nc\nd\n", 2, "CRLF", "LF"),
])
def test_mixed_line_endings_are_refused_for_editing(tmp_path, data, line, this, other):
    path = tmp_path / "mixed.txt"
    path.write_bytes(data)
    with pytest.raises(ManuscriptNotEditable) as caught:
        load_manuscript(path, for_editing=True)
    assert str(caught.value).startswith(f"{path}: line {line} ends with {this} but other lines with {other} (")
    assert caught.value.line == line
    assert read_manuscript(path) == data.decode()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_uniform_line_endings_open_and_round_trip_through_the_editors_document(tmp_path, newline):
    path = tmp_path / "novel.txt"
    original = ("　　第一段。\n\n　　第二段，“对话”。\n" * 50).replace("\n", newline).encode("utf-8")
    path.write_bytes(original)
    manuscript = load_manuscript(path, for_editing=True)
    assert manuscript.newline == newline
    # What the app does: the editor holds "\n" text; it saves with the file's newline style.
    in_editor = Document(manuscript.text.replace("\r\n", "\n")).text
    save_atomic(path, in_editor, manuscript.newline, expected=manuscript.fingerprint)
    assert path.read_bytes() == original


def test_text_without_line_breaks_opens(tmp_path):
    path = tmp_path / "one.txt"
    path.write_bytes("只有一行，没有换行".encode("utf-8"))
    assert load_manuscript(path, for_editing=True).newline == "\n"
    path.write_bytes(b"")
    assert load_manuscript(path, for_editing=True).text == ""
