"""Big manuscripts: wrapped lazily, yet every row seen is the row a full wrap gives.

CJKWrappedDocument.EAGER_CHARS is lowered here so that a document of a few
thousand characters takes the lazy path (the real threshold is for documents
of hundreds of thousands of characters).
"""

from __future__ import annotations

import random

import pytest
from textual.app import App
from textual.document._document import Document
from textual.geometry import Offset

from ai_writer.studio.widgets.cjk_document import CJKWrappedDocument
from ai_writer.studio.text.cjk_wrap import cjk_wrap_offsets
from ai_writer.studio.widgets.editor import ManuscriptEditor
from tests.studio.widgets.test_cjk_wrap import assert_cjk_wrapped

PIECES = ["天色渐渐暗了下来，", "街上的行人越来越少。", "他说：“明天会更好吗？”", "……", "风吹过树梢，",
          "（那条熟悉的小巷）", "Python 3.11", "——真的。", "「你好」", "沙沙的声响"]


def manuscript(paragraphs: int, seed: int = 0) -> str:
    """Indented paragraphs of very different lengths, a few empty lines and one with a tab."""
    rng = random.Random(seed)
    lines = []
    for n in range(paragraphs):
        if n % 17 == 5:
            lines.append("")
        elif n % 29 == 3:
            lines.append("\t第" + str(n) + "节")
        else:
            lines.append("　　" + "".join(rng.choice(PIECES) for _ in range(rng.choice((1, 2, 6, 14, 30)))))
    return "\n".join(lines)


def full_rows(document: Document, width: int, tab_width: int = 4, ambiguous_width: int = 1) -> list[tuple[int, int]]:
    """(line, section) of every row when each line is wrapped by cjk_wrap_offsets: the reference."""
    rows = []
    for line_index in range(document.line_count):
        breaks = cjk_wrap_offsets(document[line_index], width, tab_width, ambiguous_width=ambiguous_width)
        rows += [(line_index, section) for section in range(len(breaks) + 1)]
    return rows


def assert_same_as_full_wrap(wrapped: CJKWrappedDocument) -> None:
    document, width = wrapped.document, wrapped._width
    reference = full_rows(document, width, wrapped._tab_width, wrapped.ambiguous_width)
    assert wrapped.pending_lines == 0
    assert wrapped.height == len(reference)
    assert [wrapped._offset_to_line_info[row] for row in range(len(reference))] == reference
    for line_index in range(document.line_count):
        rows = wrapped._line_index_to_offsets[line_index]
        assert [reference[row] for row in rows] == [(line_index, s) for s in range(len(rows))]
        assert wrapped.get_offsets(line_index) == cjk_wrap_offsets(document[line_index], width, wrapped._tab_width,
                                                                   ambiguous_width=wrapped.ambiguous_width)


@pytest.fixture
def lazy(monkeypatch):
    monkeypatch.setattr(CJKWrappedDocument, "EAGER_CHARS", 500)
    monkeypatch.setattr(CJKWrappedDocument, "EAGER_EDIT_CHARS", 200)


def test_lazily_wrapped_rows_become_the_full_wrap(lazy):
    document = Document(manuscript(300))
    wrapped = CJKWrappedDocument(document, width=28)
    assert wrapped.pending_lines > 100  # estimates, not wrapped
    # Whatever is asked about is exact at once.
    line = next(i for i in range(document.line_count) if len(document[i]) > 60)
    assert wrapped.get_offsets(line) == cjk_wrap_offsets(document[line], 28)
    rows = wrapped._line_index_to_offsets[line]
    for section, row in enumerate(rows):
        assert wrapped._offset_to_line_info[row] == (line, section)
        assert wrapped.location_to_offset((line, wrapped.get_offsets(line)[section - 1] if section else 0)) == Offset(0, row)
    while wrapped.pending_lines:
        wrapped.refine(0.001)  # in small slices, as the editor does when idle
    assert_same_as_full_wrap(wrapped)


def test_refine_and_ensure_rows_say_how_far_an_anchored_line_moved(lazy):
    rng = random.Random(1)
    # Every line too long to be known without wrapping it: the anchor is the only one wrapped.
    document = Document("\n".join("　　" + "".join(rng.choice(PIECES) for _ in range(rng.randint(8, 30)))
                                  for _ in range(400)))
    wrapped = CJKWrappedDocument(document, width=24)
    anchor = 250
    first_row = wrapped._line_index_to_offsets[anchor][0]  # wraps the anchor line only
    shift = wrapped.refine(60.0, anchor_line=anchor)
    assert wrapped.pending_lines == 0
    assert wrapped._line_index_to_offsets[anchor][0] == first_row + shift
    assert shift != 0  # the estimates above were not all right (else this proves nothing)

    wrapped = CJKWrappedDocument(document, width=24)
    first_row = wrapped._line_index_to_offsets[anchor][0]  # the line already on screen
    top = first_row - 40  # rows above it, of lines not wrapped yet
    shift = wrapped.ensure_rows(top, first_row + 10)
    assert wrapped._line_index_to_offsets[anchor][0] == first_row + shift
    for row in range(top + shift, first_row + shift + 10):
        line, _ = wrapped._offset_to_line_info[row]
        assert wrapped._breaks[line] is not None  # every row of the range is wrapped


def test_edits_keep_the_lazy_document_consistent(lazy):
    rng = random.Random(7)
    document = Document(manuscript(200, seed=2))
    wrapped = CJKWrappedDocument(document, width=30)
    inserts = ["字", "，", "\n", "　　新的一段。\n", "长" * 300, "“”", "\n\n", manuscript(12, seed=3)]
    for step in range(120):
        last = document.line_count - 1
        start_row = rng.randint(0, last)
        start = (start_row, rng.randint(0, len(document[start_row])))
        if rng.random() < 0.4:  # a deletion or replacement across lines
            end_row = min(last, start_row + rng.randint(0, 3))
            end = (end_row, rng.randint(0, len(document[end_row])))
            start, end = sorted((start, end))
        else:
            end = start
        text = rng.choice(inserts) if rng.random() < 0.8 else ""
        result = document.replace_range(start, end, text)
        wrapped.wrap_range(start, end, result.end_location)  # as TextArea.edit calls it
        if step % 10 == 0:
            wrapped.refine(0.0005)
        if step % 15 == 0:  # a line in the middle, asked about between edits
            line = rng.randint(0, document.line_count - 1)
            assert wrapped.get_offsets(line) == cjk_wrap_offsets(document[line], 30)
        assert len(wrapped._line_index_to_offsets) == document.line_count
    while wrapped.pending_lines:
        wrapped.refine(1.0)
    assert_same_as_full_wrap(wrapped)


def test_a_rewrap_at_the_same_width_keeps_what_was_wrapped(lazy):
    document = Document(manuscript(300, seed=4))
    wrapped = CJKWrappedDocument(document, width=26)
    wrapped.refine(60.0)
    assert wrapped.pending_lines == 0
    wrapped.wrap(26)  # a resize that changed only the height
    assert wrapped.pending_lines == 0
    wrapped.wrap(20)
    assert wrapped.pending_lines > 0
    wrapped.refine(60.0)
    assert_same_as_full_wrap(wrapped)
    wrapped.ambiguous_width = 2  # what the editor does before rewrapping for ambiguous_width
    wrapped.wrap(20)
    wrapped.refine(60.0)
    assert_same_as_full_wrap(wrapped)


# -- the editor ------------------------------------------------------------------------------


class EditorApp(App):
    CSS = "ManuscriptEditor { padding: 0; }"

    def __init__(self, text: str, at_end: bool = True):
        super().__init__()
        self.text, self.at_end = text, at_end

    def compose(self):
        yield ManuscriptEditor(id="editor")

    def on_mount(self) -> None:
        editor = self.query_one(ManuscriptEditor)
        editor.load_text(self.text)  # as the studio opens a manuscript
        if self.at_end:
            editor.move_cursor(editor.document.end)
        editor.focus()
        editor.cursor_blink = False


def editor_rows(editor) -> list[str]:
    return [editor.render_line(y).text for y in range(editor.size.height)]


def assert_rows_are_consecutive(editor) -> None:
    """The rows on screen are consecutive rows of the wrapped document, each drawn from its own text."""
    wrapped = editor.wrapped_document
    top = editor.scroll_offset.y
    shown = []
    for y in range(editor.size.height):
        if top + y >= wrapped.height:
            break
        line, section = wrapped._offset_to_line_info[top + y]
        assert wrapped._breaks[line] is not None
        text = wrapped.get_sections(line)[section].replace("\t", "")
        assert editor.render_line(y).text.replace(" ", "").startswith(text.replace(" ", "")), (y, text)
        shown.append((line, section))
    for (line, section), (next_line, next_section) in zip(shown, shown[1:]):
        assert (next_line, next_section) in ((line, section + 1), (line + 1, 0))


async def refine_all(editor, pilot) -> None:
    """The idle wrapping steps, one after another (REFINE_PAUSE is set too long for its timer to fire)."""
    for _ in range(10_000):
        if not editor.wrapped_document.pending_lines:
            break
        editor._refine_step()
        await pilot.pause()
    assert editor.wrapped_document.pending_lines == 0


async def screen_of(text: str, size, at_end: bool = True) -> list[str]:
    app = EditorApp(text, at_end)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        return editor_rows(app.query_one(ManuscriptEditor))


async def test_a_big_manuscript_opens_at_its_end_as_a_full_wrap_shows_it(monkeypatch):
    text = manuscript(500, seed=5)
    size = (44, 16)
    full = await screen_of(text, size)  # under EAGER_CHARS: wrapped in full at once
    monkeypatch.setattr(CJKWrappedDocument, "EAGER_CHARS", 2_000)
    monkeypatch.setattr(ManuscriptEditor, "REFINE_PAUSE", 30.0)  # the steps are taken by refine_all
    monkeypatch.setattr(ManuscriptEditor, "REFINE_SLICE", 0.0005)
    app = EditorApp(text)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        editor = app.query_one(ManuscriptEditor)
        assert editor.wrapped_document.pending_lines > 100  # the first frame came before the full wrap
        assert editor_rows(editor) == full
        await refine_all(editor, pilot)
        assert editor_rows(editor) == full  # the view stayed on the same text meanwhile
        assert editor.scroll_offset.y == editor.max_scroll_y
        assert_cjk_wrapped(editor)
        await pilot.press("a")
        assert editor.document[editor.document.line_count - 1].endswith("a")
        assert editor_rows(editor)[editor.cursor_screen_offset.y - editor.content_region.y].rstrip().endswith("a")


async def test_scrolling_up_and_jumping_home_in_a_lazily_wrapped_manuscript(monkeypatch):
    monkeypatch.setattr(CJKWrappedDocument, "EAGER_CHARS", 2_000)
    monkeypatch.setattr(ManuscriptEditor, "REFINE_PAUSE", 30.0)  # no idle wrapping: only what is seen
    text = manuscript(500, seed=6)
    size = (40, 14)
    app = EditorApp(text)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        editor = app.query_one(ManuscriptEditor)
        pending = editor.wrapped_document.pending_lines
        for _ in range(6):
            await pilot.press("pageup")
            await pilot.pause()
            assert_rows_are_consecutive(editor)
        assert editor.wrapped_document.pending_lines < pending  # more of it was wrapped on the way up
        assert editor.wrapped_document.pending_lines > 0  # and only that
        cursor_line = editor.cursor_location[0]
        assert editor.wrapped_document._breaks[cursor_line] is not None
        await pilot.press("ctrl+home")
        await pilot.pause()
        assert editor.scroll_offset.y == 0 and editor.cursor_location == (0, 0)
        assert_rows_are_consecutive(editor)
        top = await screen_of("\n".join(text.split("\n")[:40]), size, at_end=False)  # the first lines, wrapped in full
        assert editor_rows(editor)[:6] == top[:6]
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert_rows_are_consecutive(editor)
        assert editor.cursor_location == editor.document.end
