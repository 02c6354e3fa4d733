"""CJK soft wrap: the pure offsets function and the ManuscriptArea widget."""

from __future__ import annotations

import asyncio
import random

import pytest
from rich.text import Text
from textual._wrap import compute_wrap_offsets
from textual.app import App, ComposeResult
from textual.geometry import Offset
from textual.widgets import TextArea

from ai_writer.studio.text.cjk_wrap import (
    CLOSING_PUNCTUATION,
    OPENING_PUNCTUATION,
    cjk_wrap_offsets,
    piece_width,
)
from ai_writer.studio.widgets.manuscript_area import CJKWrappedDocument, ManuscriptArea

INDENT = "\u3000\u3000"
PARAGRAPH = (
    INDENT
    + "天色渐渐暗了下来，街上的行人越来越少。他独自一人走在回家的路上，心里想着："
    "“明天会更好吗？”风吹过树梢，发出沙沙的声响……远处传来几声狗叫，"
    "他停下脚步，回头望了一眼（那条熟悉的小巷），又继续往前走。"
)


def pieces(text: str, offsets: list[int]) -> list[str]:
    return [section.plain for section in Text(text).divide(offsets)]


def wrap(text: str, width: int, **kwargs) -> list[str]:
    offsets = cjk_wrap_offsets(text, width, **kwargs)
    # the compute_wrap_offsets contract: strictly increasing, inside the line
    assert offsets == sorted(set(offsets))
    assert all(0 < offset < len(text) for offset in offsets)
    result = pieces(text, offsets)
    assert "".join(result) == text
    return result


def violations(rows: list[str]) -> list[str]:
    """Rows that start with closing or end with opening punctuation."""
    bad = [row for row in rows[1:] if row and row[0] in CLOSING_PUNCTUATION]
    bad += [row for row in rows[:-1] if row and row[-1] in OPENING_PUNCTUATION]
    return bad


def textual_pieces(text: str, width: int) -> list[str]:
    return pieces(text, compute_wrap_offsets(text, width, 4))


# --- cjk_wrap_offsets -------------------------------------------------------


def test_long_chinese_line_fits_width_and_rejoins():
    for width in range(2, 41):
        rows = wrap(PARAGRAPH, width)
        assert len(rows) >= 2
        assert all(piece_width(row) <= width for row in rows), width
        if width < 6:  # '吗？”' (5 cells) can't be kept together
            continue
        assert violations(rows) == [], (width, rows)
        # greedy: a row is only cut short by at most a few characters
        assert all(piece_width(row) >= width - 6 for row in rows[:-1]), (width, rows)


def test_no_row_starts_with_closing_punctuation():
    text = "一二三四五，六七八九十"
    # precondition: a plain fold at 10 cells puts the comma first on row 2
    assert textual_pieces(text, 10)[1].startswith("，")
    assert wrap(text, 10) == ["一二三四", "五，六七八", "九十"]

    for closing in "。！？；：、」』”’）》…":
        text = "一二三四五" + closing + "六七八九十"
        rows = wrap(text, 10)
        assert violations(rows) == [], rows
        assert rows[1].startswith("五" + closing)


def test_two_closing_marks_pull_two_characters_down():
    text = "他说好的啊」。然后走了出去"
    assert textual_pieces(text, 10)[1].startswith("」。")
    rows = wrap(text, 10)
    assert rows[0] == "他说好的"
    assert rows[1].startswith("啊」。")


def test_ellipsis_and_dash_pairs_stay_together_and_off_row_start():
    for mark in ("……", "——"):
        text = "一二三四五" + mark + "六七八九"
        for width in range(6, 16):
            rows = wrap(text, width)
            assert violations(rows) == [], (width, rows)
            assert any(mark in row for row in rows), (width, rows)


def test_no_row_ends_with_opening_punctuation():
    for opening in "「『“‘（《〈【":
        text = "一二三四" + opening + "五六七八"
        width = 8 + piece_width(opening)
        # precondition: a plain fold ends row 1 with the opening mark
        assert textual_pieces(text, width)[0].endswith(opening)
        rows = wrap(text, width)
        assert rows[0] == "一二三四", rows
        assert rows[1].startswith(opening + "五")


def test_indent_is_never_left_alone():
    for width in range(6, 30):
        rows = wrap(PARAGRAPH, width)
        assert rows[0].startswith(INDENT) and rows[0] != INDENT
        assert not any(row.strip(" \u3000") == "" for row in rows)
    # plain Textual wraps the indent as a "word" of its own
    assert textual_pieces(PARAGRAPH, 20)[0] == INDENT
    # ASCII spaces as indent: the break after them is not used
    assert wrap("    中文中文中文", 8) == ["    中文", "中文中文"]
    # a first word too long to follow the indent is folded rather than
    # leaving the indent on a row of its own (plain Textual leaves it alone)
    assert textual_pieces("　　Hello world", 8)[0] == INDENT
    assert wrap("　　Hello world", 8) == ["　　Hell", "o world"]
    # only when even indent + one character won't fit does the indent stand alone
    assert wrap("　　天色", 5) == [INDENT, "天色"]


def test_latin_words_are_not_split_when_they_fit():
    text = "我最近在学习Python编程，还有JavaScript和Rust语言。"
    for width in range(12, 30):
        rows = wrap(text, width)
        joined_rows = "|".join(rows)
        for word in ("Python", "JavaScript", "Rust"):
            assert word in joined_rows, (width, rows)
        assert all(piece_width(row) <= width for row in rows)
    # spaces: break after them, as in plain word wrap
    assert wrap("hello world again", 12) == ["hello world ", "again"]
    # a word longer than the line is folded, rows still fit
    rows = wrap("中文supercalifragilistic中文", 8)
    assert all(piece_width(row) <= 8 for row in rows)
    assert rows[0] == "中文"


def test_ambiguous_width_two_gives_narrower_rows():
    text = "他说：“我不知道……”她笑了笑，说：“没关系——真的。”他点了点头，“那就好。”"
    width = 14
    narrow = wrap(text, width)
    wide = wrap(text, width, ambiguous_width=2)
    assert narrow != wide
    assert all(piece_width(row, ambiguous_width=2) <= width for row in wide)
    # with width-1 counting some row would overflow a CJK-configured terminal
    assert any(piece_width(row, ambiguous_width=2) > width for row in narrow)
    assert violations(wide) == []
    # also on the grapheme/tab path (combining mark, tab)
    assert piece_width("“e\u0301”", ambiguous_width=2) == 5
    assert wrap("“”“”\t中", 8) == ["“”“”\t", "中"]
    assert wrap("“”“”\t中", 8, ambiguous_width=2) == ["“”", "“”\t", "中"]


def test_width_smaller_than_a_character():
    assert wrap("中文，好", 1) == ["中", "文", "，", "好"]
    assert wrap("。。。", 1) == ["。", "。", "。"]
    # a grapheme cluster is never split, whatever the width
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert wrap(family + family, 1) == [family, family]
    assert wrap("e\u0301e\u0301", 1) == ["e\u0301", "e\u0301"]
    assert cjk_wrap_offsets("中文", 0) == []
    assert cjk_wrap_offsets("中文", -3) == []


def test_empty_and_short_lines():
    assert cjk_wrap_offsets("", 10) == []
    assert cjk_wrap_offsets("中文", 10) == []
    assert cjk_wrap_offsets("中文", 4) == []


def test_only_punctuation_falls_back_to_a_plain_fold():
    rows = wrap("。" * 10, 6)
    assert rows == ["。。。", "。。。", "。。。", "。"]


def test_tabs_expand_to_stops():
    assert wrap("ab\tcd", 4) == ["ab\t", "cd"]
    rows = wrap("a\tb\t中文中文中文", 6)
    assert rows[0] == "a\t"
    assert "".join(rows) == "a\tb\t中文中文中文"


def test_random_text_keeps_the_contract():
    rng = random.Random(1234)
    alphabet = "天地人你我他的了是在abcXYZ0123 　，。！？；：、「」“”（）…—\t"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        width = rng.randint(1, 30)
        ambiguous = rng.choice((1, 2))
        rows = wrap(text, width, ambiguous_width=ambiguous)
        if "\t" not in text:  # tab widths depend on the position in the line
            for row in rows:
                assert (
                    piece_width(row, ambiguous_width=ambiguous) <= width
                    or len(row) == 1
                ), (text, width, rows)


# --- ManuscriptArea in a running app ---------------------------------------


def trap_paragraph(wrap_width: int) -> str:
    """An indented paragraph where Textual's plain wrap (the indent on a row of
    its own, then a fold of the rest, every char 2 cells) would start rows with
    '，' and '。' and end a row with '「'."""
    per_row = wrap_width // 2
    filler = iter("他推开院门走进屋里放下手中的包坐在窗前看着外面的雨" * 20)
    chars: list[str] = []
    for position, mark in ((per_row, "，"), (2 * per_row, "。"), (3 * per_row - 1, "「")):
        while len(chars) < position:
            chars.append(next(filler))
        chars.append(mark)
    chars += list("你好」他轻声说道，雨还在下。") + [next(filler) for _ in range(per_row)]
    return INDENT + "".join(chars)


class AreaApp(App):
    def __init__(self, widget: TextArea) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


def rows_of(area: TextArea) -> list[list[str]]:
    wrapped = area.wrapped_document
    return [wrapped.get_sections(i) for i in range(area.document.line_count)]


def assert_cjk_wrapped(area: ManuscriptArea) -> None:
    """Every line is wrapped by cjk_wrap_offsets at the area's width, obeys the
    rules, and the row maps agree with the offsets."""
    wrapped = area.wrapped_document
    assert isinstance(wrapped, CJKWrappedDocument)
    width = area.wrap_width
    assert width > 0
    expected_rows = []
    for line_index in range(area.document.line_count):
        line = area.document[line_index]
        offsets = cjk_wrap_offsets(
            line, width, area.indent_width, ambiguous_width=area.ambiguous_width
        )
        assert wrapped.get_offsets(line_index) == offsets
        rows = pieces(line, offsets)
        assert violations(rows) == [], rows
        assert all(
            piece_width(row, ambiguous_width=area.ambiguous_width) <= width
            for row in rows
        )
        if line.startswith(INDENT) and len(line) > 2:
            assert rows[0] != INDENT
        expected_rows += [(line_index, sum(map(len, rows[:s]))) for s in range(len(rows))]
    # row <-> location maps (what the cursor and the renderer use)
    assert wrapped.height == len(expected_rows)
    for y, (line_index, column) in enumerate(expected_rows):
        assert wrapped.offset_to_location(Offset(0, y)) == (line_index, column)
        assert wrapped.location_to_offset((line_index, column)) == Offset(0, y)


def run(coro_fn):
    return asyncio.run(coro_fn())


def test_plain_textarea_breaks_the_rules():
    """The same setup with Textual's TextArea: shows the subclass matters."""

    async def scenario():
        area = TextArea()
        async with AreaApp(area).run_test(size=(40, 12)) as pilot:
            await pilot.pause()
            area.load_text(trap_paragraph(area.wrap_width))
            await pilot.pause()
            rows = rows_of(area)[0]
            assert rows[0] == INDENT  # the indent alone on a row
            assert any(row.startswith("，") for row in rows)
            assert any(row.startswith("。") for row in rows)
            assert any(row.endswith("「") for row in rows)

    run(scenario)


def test_manuscript_area_wraps_typing_load_text_and_resize():
    async def scenario():
        # Tall documents throughout, so the vertical scrollbar stays whatever we
        # type (its coming or going would resize the area and rewrap everything,
        # hiding whether edits are rewrapped incrementally).
        filler = [PARAGRAPH[:40]] * 8
        area = ManuscriptArea("\n".join([PARAGRAPH] + filler))
        assert area.soft_wrap
        async with AreaApp(area).run_test(size=(40, 12)) as pilot:
            await pilot.pause()
            width = area.wrap_width
            trap = trap_paragraph(width)
            area.load_text("\n".join([trap, PARAGRAPH] + filler))
            await pilot.pause()
            assert_cjk_wrapped(area)
            # the same text a plain fold would get wrong
            assert violations(textual_pieces(trap, width))

            # what's on screen is the wrapped rows
            sections = rows_of(area)[0]
            for y, section in enumerate(sections[:4]):
                assert area.render_line(y).text.rstrip() == section.rstrip()

            # typing near the start shifts every break of the paragraph
            area.focus()
            area.move_cursor((0, 2))
            await pilot.press("中", "a", "文")
            await pilot.pause()
            line = area.document[0]
            assert line.startswith(INDENT + "中a文")
            assert_cjk_wrapped(area)
            assert compute_wrap_offsets(line, width, 4) != cjk_wrap_offsets(line, width)

            # splitting and joining lines (row maps below the edit move)
            lines = area.document.line_count
            await pilot.press("enter")
            assert area.document.line_count == lines + 1
            assert_cjk_wrapped(area)
            await pilot.press("backspace")
            assert area.document.line_count == lines
            assert_cjk_wrapped(area)
            assert area.wrap_width == width  # no resize happened behind our back

            # load_text and the text setter keep the CJK document
            area.load_text("\n".join([PARAGRAPH * 2] + filler))
            await pilot.pause()
            assert_cjk_wrapped(area)
            area.text = "\n".join([trap, "", PARAGRAPH] + filler)
            await pilot.pause()
            assert_cjk_wrapped(area)

            # a resize rewraps at the new width
            before = rows_of(area)
            await pilot.resize_terminal(30, 12)
            await pilot.pause()
            assert area.wrap_width < width
            assert rows_of(area) != before
            assert_cjk_wrapped(area)

    run(scenario)


def test_manuscript_area_ambiguous_width_rewraps():
    text = "他说：“我不知道……”她笑了笑，说：“没关系——真的。”他点了点头，“那就好。”" * 3

    async def scenario():
        area = ManuscriptArea(text)
        async with AreaApp(area).run_test(size=(40, 12)) as pilot:
            await pilot.pause()
            assert area.ambiguous_width == 1
            assert_cjk_wrapped(area)
            narrow = rows_of(area)
            area.ambiguous_width = 2
            await pilot.pause()
            assert area.wrapped_document.ambiguous_width == 2
            assert rows_of(area) != narrow
            assert_cjk_wrapped(area)
            # survives a reload
            area.load_text(text)
            await pilot.pause()
            assert area.wrapped_document.ambiguous_width == 2
            assert_cjk_wrapped(area)
            with pytest.raises(ValueError):
                area.ambiguous_width = 3

    run(scenario)


def test_manuscript_area_constructor_ambiguous_width():
    area = ManuscriptArea(PARAGRAPH, ambiguous_width=2)
    assert area.ambiguous_width == 2
    assert isinstance(area.wrapped_document, CJKWrappedDocument)
    assert area.wrapped_document.ambiguous_width == 2
    with pytest.raises(ValueError):
        ManuscriptArea(ambiguous_width=0)
