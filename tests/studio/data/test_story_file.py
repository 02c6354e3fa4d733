"""studio.data.story_file: NAME.story.toml read, checked, and saved with comments and layout kept."""

import difflib
import errno
import os
import random
import sys
from dataclasses import replace
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ai_writer.backends.writing.story import AuthorsNote, LoreEntry, Story
from ai_writer.studio.data import atomic_save
from ai_writer.studio.data.story_file import (StoryError, check_generation_overrides, load_story, save_story,
                                              story_path_for)

STORY = """\
# 人物、设定、大纲：写给自己看的。
memory = \"\"\"
林雪：十七岁，青云宗外门弟子……
\"\"\"

[authors_note]
text = "接下来的情节：林雪在山门外遇到了师兄。"
depth = 300          # how far before the cursor
unit = "chars"       # or "paragraphs"

[generation]         # this story's own settings
temperature = 0.9
context_chars = 0

# 女主角
[[lore]]
name = "林雪"                 # never sent to the model
keys = ["林雪", "雪儿", "/林.?雪/"]
secondary_keys = []
exclude_keys = []
text = "林雪，青云宗外门弟子，性格倔强。"
enabled = true
constant = false
priority = 0
scan_chars = 2000

# 师兄：第三章出场
[[lore]]
name = "师兄"
keys = "师兄"   # one key as a plain string
text = "沈墨，内门大师兄。"
priority = 5

[[lore]]
name = "青云宗"
keys = ["青云宗", "/宗门/"]
text = \"\"\"
青云宗，东域第一大宗。
山门在云海之上。\"\"\"
constant = true
"""

LIN_XUE = LoreEntry(name="林雪", keys=("林雪", "雪儿", "/林.?雪/"), text="林雪，青云宗外门弟子，性格倔强。")
SHI_XIONG = LoreEntry(name="师兄", keys=("师兄",), text="沈墨，内门大师兄。", priority=5)
SECT = LoreEntry(name="青云宗", keys=("青云宗", "/宗门/"), text="青云宗，东域第一大宗。\n山门在云海之上。", constant=True)
EXPECTED = Story(memory="林雪：十七岁，青云宗外门弟子……\n",
                 authors_note=AuthorsNote("接下来的情节：林雪在山门外遇到了师兄。", 300, "chars"),
                 lore=(LIN_XUE, SHI_XIONG, SECT), generation={"temperature": 0.9, "context_chars": 0})


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def changed_lines(old: str, new: str) -> tuple[list[str], list[str]]:
    """(lines only in old, lines only in new): everything else is byte-identical and in order."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    removed, added = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            removed += a[i1:i2]
            added += b[j1:j2]
    return removed, added


def saved(tmp_path, story: Story, text: str = STORY) -> tuple[str, str]:
    """(the file before, the file after) saving `story` into a file holding `text`; it must read back as `story`."""
    path = write(tmp_path / "book.story.toml", text)
    save_story(path, story)
    after = path.read_bytes().decode("utf-8")
    assert load_story(path) == story
    assert sorted(os.listdir(tmp_path)) == ["book.story.toml"]  # no temporary file left
    return text, after


# --- reading ------------------------------------------------------------------------


def test_story_path_is_beside_the_manuscript(tmp_path):
    assert story_path_for(tmp_path / "第一卷.txt") == tmp_path / "第一卷.story.toml"
    assert story_path_for("books/a.b.txt") == Path("books/a.b.story.toml")


def test_missing_file_is_an_empty_story_and_nothing_is_created(tmp_path):
    assert load_story(tmp_path / "none.story.toml") == Story()
    assert os.listdir(tmp_path) == []


def test_the_documented_format_is_read(tmp_path):
    assert load_story(write(tmp_path / "book.story.toml", STORY)) == EXPECTED


def test_an_empty_file_is_an_empty_story(tmp_path):
    assert load_story(write(tmp_path / "book.story.toml", "# nothing yet\n")) == Story()


def test_generation_overrides_are_checked_and_floats_widened(tmp_path):
    path = write(tmp_path / "b.story.toml", "[generation]\ntemperature = 1\ntop_k = 40\nseed = 7\nlore_budget = 0\n")
    story = load_story(path)
    assert story.generation == {"temperature": 1.0, "top_k": 40, "seed": 7, "lore_budget": 0}
    assert type(story.generation["temperature"]) is float
    check_generation_overrides({"top_p": 0.5, "candidates": 9, "length": 1, "memory_budget": 100})
    with pytest.raises(StoryError, match=r"^\[generation\] top_p: 1\.5 is outside 0\.0\.\.1\.0$"):
        check_generation_overrides({"top_p": 1.5})
    with pytest.raises(StoryError, match=r"^\[generation\] threads: unknown key"):
        check_generation_overrides({"threads": 2})  # a [generation] key, but not one a story may set


# --- errors: one line naming the file, the line and the key -------------------------

ERRORS = [
    ("memory = 1\n", 1, "memory: must be a string, not 1"),
    ("memory = \"a\"\nfoo = 2\n", 2, "foo: unknown key (known: memory, authors_note, generation, lore)"),
    ("memory = \"a\"\n\n[notes]\nx = 1\n", 3, "notes: unknown key"),
    ("authors_note = 3\n", 1, "authors_note: must be a table, not 3"),
    ("[authors_note]\ntext = \"a\"\ndepht = 3\n", 3, "[authors_note] depht: unknown key (known: text, depth, unit)"),
    ("[authors_note]\ndepth = -1\n", 2, "[authors_note] depth: must be 0 or more, not -1"),
    ("[authors_note]\ndepth = \"300\"\n", 2, "[authors_note] depth: must be a whole number, not '300'"),
    ("[authors_note]\ndepth = true\n", 2, "[authors_note] depth: must be a whole number, not True"),
    ("[authors_note]\nunit = \"lines\"\n", 2, "[authors_note] unit: 'lines' is not one of 'chars', 'paragraphs'"),
    ("[generation]\ntemperature = 9.0\n", 2, "[generation] temperature: 9.0 is outside 0.0..5.0"),
    ("[generation]\ncandidates = 0\n", 2, "[generation] candidates: 0 is outside 1..9"),
    ("[generation]\ntop_k = 1.5\n", 2, "[generation] top_k: must be a whole number, not 1.5"),
    ("[generation]\nseed = -2\n", 2, "[generation] seed: -2 is outside -1"),
    ("[generation]\n\nbackend = \"cpu\"\n", 3, "[generation] backend: unknown key"),
    ("lore = 3\n", 1, "lore: must be [[lore]] tables"),
    ("[[lore]]\nname = \"a\"\n\n[[lore]]\nkeys = [\"b\"]\n", 4, "[lore 2] name: missing"),
    ("[[lore]]\nname = \"  \"\n", 2, "[lore 1] name: must not be empty"),
    ("[[lore]]\nname = 3\n", 2, "[lore 1] name: must be a string, not 3"),
    ("[[lore]]\nname = \"a\"\nkeys = 3\n", 3, "[lore 1] keys: must be a string or a list of strings, not 3"),
    ("[[lore]]\nname = \"a\"\nsecondary_keys = [\n  \"x\",\n  2,\n]\n", 3,
     "[lore 1] secondary_keys: must be a string or a list of strings, not ['x', 2]"),
    ("[[lore]]\nname = \"a\"\n\n[[lore]]\nname = \"b\"\nkeys = [\"/林(/\"]\n", 6, "[lore 2] keys: key '/林(/': bad regex: "),
    ("[[lore]]\nname = \"a\"\nexclude_keys = [\"/x/g\"]\n", 3,
     "[lore 1] exclude_keys: key '/x/g': unknown regex flag g (use i, m, s)"),
    ("[[lore]]\nname = \"a\"\nkeys = \"//\"\n", 3, "[lore 1] keys: key '//': the regex is empty"),
    ("[[lore]]\nname = \"a\"\nscan_chars = -5\n", 3, "[lore 1] scan_chars: must be 0 or more, not -5"),
    ("[[lore]]\nname = \"a\"\npriority = 1.5\n", 3, "[lore 1] priority: must be a whole number, not 1.5"),
    ("[[lore]]\nname = \"a\"\nenabled = \"yes\"\n", 3, "[lore 1] enabled: must be true or false, not 'yes'"),
    ("[[lore]]\nname = \"a\"\ncolor = \"red\"\n", 3, "[lore 1] color: unknown key (known: name, keys,"),
    ("lore = [{name = \"a\"}, {name = \"\"}]\n", 1, "[lore 2] name: must not be empty"),
]


@pytest.mark.parametrize("text, line, message", ERRORS, ids=[e[2].split(":")[0] for e in ERRORS])
def test_every_error_names_the_file_the_line_and_the_key(tmp_path, text, line, message):
    path = write(tmp_path / "book.story.toml", text)
    with pytest.raises(StoryError) as caught:
        load_story(path)
    shown = str(caught.value)
    assert shown.startswith(f"{path}: line {line}: {message}"), shown
    assert "\n" not in shown
    assert path.read_text(encoding="utf-8") == text  # reading never writes


def test_toml_syntax_error_names_the_line_and_shows_it(tmp_path):
    path = write(tmp_path / "book.story.toml", "memory = \"a\"\n\n[authors_note]\ndepth = = 3\n")
    with pytest.raises(StoryError) as caught:
        load_story(path)
    shown = str(caught.value)
    assert shown.startswith(f"{path}: line 4: TOML syntax error: ") and shown.endswith(": depth = = 3"), shown
    assert "\n" not in shown


def test_unterminated_string_at_the_end_names_a_line(tmp_path):
    path = write(tmp_path / "book.story.toml", "memory = \"\"\"\n林雪\n")
    with pytest.raises(StoryError, match=rf"^{path}: line \d+: TOML syntax error"):
        load_story(path)


def test_non_utf8_file_names_the_line(tmp_path):
    path = tmp_path / "book.story.toml"
    path.write_bytes("memory = \"a\"\n".encode() + "text = \"林雪\"\n".encode("gbk"))
    with pytest.raises(StoryError, match=rf"^{path}: line 2: not UTF-8 text$"):
        load_story(path)


def test_unreadable_story_file_is_one_line(tmp_path):
    folder = tmp_path / "book.story.toml"
    folder.mkdir()
    with pytest.raises(StoryError, match=rf"^{folder}: cannot read the story file \(.+\)$"):
        load_story(folder)


def test_broken_file_is_never_overwritten(tmp_path):
    text = "# mine\nmemory = \"a\"\n[authors_note]\ndepth = -3\n"
    path = write(tmp_path / "book.story.toml", text)
    with pytest.raises(StoryError):
        load_story(path)
    with pytest.raises(StoryError, match=rf"^{path}: line 4: \[authors_note\] depth: .*; story not saved$"):
        save_story(path, Story(memory="b"))
    write(tmp_path / "syntax.story.toml", "memory = \n")
    with pytest.raises(StoryError, match="TOML syntax error.*; story not saved$"):
        save_story(tmp_path / "syntax.story.toml", Story(memory="b"))
    assert path.read_text(encoding="utf-8") == text
    assert (tmp_path / "syntax.story.toml").read_text() == "memory = \n"
    assert sorted(os.listdir(tmp_path)) == ["book.story.toml", "syntax.story.toml"]


# --- saving: round trips -------------------------------------------------------------

TRICKY = [
    "林雪：十七岁，青云宗外门弟子。",
    "第一行\n第二行\n",
    "\n以换行开头，结尾没有换行",
    "空行\n\n\n之后",
    'ASCII "quotes" and “中文引号”',
    'ends with a quote"',
    '"""three quotes""" and """"four',
    'multi\nline ending in quotes""',
    'multi-line """with""" runs\n"""" of """"" quotes\n"',
    "back\\slash \\n not a newline \\",
    "line ending in a backslash\\\nnext",
    "tab\there\tand\n\tindented",
    "carriage\rreturn, \r\n crlf inside",
    "控制字符\x01\x7f 和零宽\u200b空格",
    "'''single quotes'''",
    "# not a comment\n[[lore]]\nname = \"not a table\"",
]


@pytest.mark.parametrize("value", TRICKY)
def test_text_round_trips_in_every_field(tmp_path, value):
    story = Story(memory=value, authors_note=AuthorsNote(text=value, depth=2, unit="paragraphs"),
                  lore=(LoreEntry(name=value, keys=(value, "/a\\d+/i"), text=value, exclude_keys=(value,)),))
    path = tmp_path / "new.story.toml"
    save_story(path, story)
    assert load_story(path) == story
    # and once more over an existing file holding other values
    (tmp_path / "over").mkdir()
    _, after = saved(tmp_path / "over", story)
    assert "# 人物、设定、大纲：写给自己看的。\n" in after


def test_random_strings_round_trip(tmp_path):
    rng = random.Random(14)
    alphabet = ['"', "'", "\\", "\n", "\t", "\r", " ", "#", "=", "[", "]", "林", "雪", "a", "\x00", "\u3000", "\U0001f600"]
    path = tmp_path / "fuzz.story.toml"
    for _ in range(150):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        story = Story(memory=value, lore=(LoreEntry(name="n" + value, text=value),))
        save_story(path, story)
        assert load_story(path) == story, repr(value)


def test_multiline_text_is_written_as_a_multiline_string(tmp_path):
    path = tmp_path / "b.story.toml"
    save_story(path, Story(memory="林雪：十七岁。\n师兄：沈墨。\n"))
    assert 'memory = """\n林雪：十七岁。\n师兄：沈墨。\n"""\n' in path.read_text(encoding="utf-8")


def test_a_new_file_holds_every_part_and_reads_back(tmp_path):
    path = tmp_path / "第一卷.story.toml"
    save_story(path, EXPECTED)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ") and "第一卷" in text.splitlines()[0]
    assert load_story(path) == EXPECTED
    assert tomllib.loads(text)["lore"][1]["keys"] == ["师兄"]


# --- saving: only what changed ----------------------------------------------------------


def test_editing_the_memory_changes_only_its_lines(tmp_path):
    before, after = saved(tmp_path, replace(EXPECTED, memory="林雪：十八岁。\n"))
    assert changed_lines(before, after) == (["林雪：十七岁，青云宗外门弟子……\n"], ["林雪：十八岁。\n"])


def test_single_line_value_becoming_multiline_keeps_its_comment(tmp_path):
    text = "memory = \"短\"   # 记忆\n"
    _, after = saved(tmp_path, Story(memory="两\n行"), text)
    assert after == "memory = \"\"\"\n两\n行\"\"\"   # 记忆\n"


def test_editing_a_lore_entry_changes_only_that_line_and_keeps_its_comment(tmp_path):
    entries = (replace(LIN_XUE, keys=("林雪", "小雪"), priority=3), SHI_XIONG, SECT)
    before, after = saved(tmp_path, replace(EXPECTED, lore=entries))
    assert changed_lines(before, after) == (
        ['keys = ["林雪", "雪儿", "/林.?雪/"]\n', "priority = 0\n"],
        ['keys = ["林雪", "小雪"]\n', "priority = 3\n"])
    assert 'name = "林雪"                 # never sent to the model\n' in after


def test_a_key_the_entry_lacks_goes_after_its_last_key(tmp_path):
    entries = (LIN_XUE, replace(SHI_XIONG, scan_chars=500, enabled=False), SECT)
    before, after = saved(tmp_path, replace(EXPECTED, lore=entries))
    assert changed_lines(before, after) == ([], ["enabled = false\n", "scan_chars = 500\n"])
    assert 'priority = 5\nenabled = false\nscan_chars = 500\n\n[[lore]]\nname = "青云宗"' in after


def test_changing_a_single_string_key_writes_a_list(tmp_path):
    entries = (LIN_XUE, replace(SHI_XIONG, keys=("师兄", "沈墨")), SECT)
    before, after = saved(tmp_path, replace(EXPECTED, lore=entries))
    assert changed_lines(before, after) == (['keys = "师兄"   # one key as a plain string\n'],
                                            ['keys = ["师兄", "沈墨"]   # one key as a plain string\n'])


def test_adding_an_entry_appends_a_block_and_keeps_the_rest(tmp_path):
    new = LoreEntry(name="白猫", keys=("白猫",), text="林雪养的猫。")
    before, after = saved(tmp_path, replace(EXPECTED, lore=EXPECTED.lore + (new,)))
    assert after.startswith(before)
    assert after[len(before):] == ('\n[[lore]]\nname = "白猫"\nkeys = ["白猫"]\nsecondary_keys = []\nexclude_keys = []\n'
                                   'text = "林雪养的猫。"\nenabled = true\nconstant = false\npriority = 0\n'
                                   'scan_chars = 2000\n')


def test_adding_an_entry_in_the_middle_puts_its_block_there(tmp_path):
    new = LoreEntry(name="白猫", keys=("白猫",))
    before, after = saved(tmp_path, replace(EXPECTED, lore=(LIN_XUE, new, SHI_XIONG, SECT)))
    removed, added = changed_lines(before, after)
    assert removed == []
    assert after.index('name = "林雪"') < after.index('name = "白猫"') < after.index("# 师兄：第三章出场")


def test_removing_an_entry_removes_its_block_and_its_comment(tmp_path):
    before, after = saved(tmp_path, replace(EXPECTED, lore=(LIN_XUE, SECT)))
    block = ('\n# 师兄：第三章出场\n[[lore]]\nname = "师兄"\nkeys = "师兄"   # one key as a plain string\n'
             'text = "沈墨，内门大师兄。"\npriority = 5\n')
    assert block in before
    assert after == before.replace(block, "")


def test_removing_the_last_entries_and_adding_none(tmp_path):
    before, after = saved(tmp_path, replace(EXPECTED, lore=()))
    assert after == before[: before.index("\n# 女主角")]  # the blank line before it goes too


def test_renaming_an_entry_edits_it_in_place(tmp_path):
    before, after = saved(tmp_path, replace(EXPECTED, lore=(LIN_XUE, replace(SHI_XIONG, name="沈墨"), SECT)))
    assert changed_lines(before, after) == (['name = "师兄"\n'], ['name = "沈墨"\n'])


def test_generation_keys_changed_added_and_removed(tmp_path):
    before, after = saved(tmp_path, replace(EXPECTED, generation={"temperature": 0.7, "top_k": 20}))
    assert changed_lines(before, after) == (["temperature = 0.9\n", "context_chars = 0\n"],
                                            ["temperature = 0.7\n", "top_k = 20\n"])
    assert "[generation]         # this story's own settings\ntemperature = 0.7\ntop_k = 20\n" in after


def test_an_int_for_a_float_setting_is_not_a_change(tmp_path):
    text = "[generation]\ntemperature = 1   # as I wrote it\n"
    path = write(tmp_path / "b.story.toml", text)
    story = load_story(path)
    save_story(path, replace(story, generation={"temperature": 1}))
    assert path.read_text() == text


def test_missing_tables_go_before_the_lore(tmp_path):
    text = STORY[: STORY.index("[authors_note]")] + STORY[STORY.index("# 女主角"):]
    story = replace(EXPECTED, authors_note=AuthorsNote("师兄出场。", 2, "paragraphs"), generation={"top_p": 0.5})
    before, after = saved(tmp_path, story, text)
    assert changed_lines(before, after)[0] == []
    assert ('\n[authors_note]\ntext = "师兄出场。"\ndepth = 2\nunit = "paragraphs"\n\n'
            '[generation]\ntop_p = 0.5\n\n# 女主角\n[[lore]]') in after


def test_memory_added_to_a_file_without_one(tmp_path):
    text = "# 我的故事\n\n[authors_note]\ntext = \"a\"\n"
    _, after = saved(tmp_path, Story(memory="记忆", authors_note=AuthorsNote("a")), text)
    assert after == "# 我的故事\nmemory = \"记忆\"\n\n[authors_note]\ntext = \"a\"\n"
    _, after = saved(tmp_path, Story(memory="记忆", authors_note=AuthorsNote("a")), "[authors_note]\ntext = \"a\"\n")
    assert after == "memory = \"记忆\"\n\n[authors_note]\ntext = \"a\"\n"


def test_file_without_final_newline(tmp_path):
    text = "[[lore]]\nname = \"a\""
    _, after = saved(tmp_path, Story(lore=(LoreEntry(name="a", priority=1), LoreEntry(name="b"))), text)
    assert after.startswith("[[lore]]\nname = \"a\"\npriority = 1\n\n[[lore]]\nname = \"b\"\n")


def test_crlf_file_stays_crlf(tmp_path):
    text = STORY.replace("\n", "\r\n")
    story = replace(EXPECTED, memory="一\n二\n", lore=(replace(LIN_XUE, text="新\n设定"), SECT,
                                                      LoreEntry(name="新", text="多\n行")))
    _, after = saved(tmp_path, story, text)
    assert "\n" not in after.replace("\r\n", "")
    assert after.startswith("# 人物、设定、大纲：写给自己看的。\r\nmemory = \"\"\"\r\n一\r\n二\r\n\"\"\"\r\n")


def test_bom_is_kept(tmp_path):
    path = tmp_path / "b.story.toml"
    path.write_bytes(b"\xef\xbb\xbfmemory = \"a\"\n")
    assert load_story(path) == Story(memory="a")
    save_story(path, Story(memory="b"))
    assert path.read_bytes() == b"\xef\xbb\xbfmemory = \"b\"\n"


def test_an_unchanged_story_does_not_touch_the_file(tmp_path):
    path = write(tmp_path / "b.story.toml", STORY)
    os.utime(path, (1_000_000, 1_000_000))
    save_story(path, load_story(path))
    assert path.stat().st_mtime == 1_000_000
    assert path.read_text(encoding="utf-8") == STORY


def test_an_empty_story_creates_no_file(tmp_path):
    save_story(tmp_path / "b.story.toml", Story())
    assert os.listdir(tmp_path) == []


def test_emptying_an_existing_story_keeps_the_file_and_its_comments(tmp_path):
    _, after = saved(tmp_path, Story())
    assert after.startswith("# 人物、设定、大纲：写给自己看的。\nmemory = \"\"\n")
    assert "[[lore]]" not in after and "depth = 300          # how far before the cursor" in after


# --- saving: refusals, nothing lost --------------------------------------------------------


@pytest.mark.parametrize("story, message", [
    (Story(lore=(LoreEntry(name=""),)), r"\[lore 1\] name: must not be empty"),
    (Story(lore=(LoreEntry(name="a"), LoreEntry(name="b", keys=("/(/",)))), r"\[lore 2\] keys: key '/\(/': bad regex"),
    (Story(authors_note=AuthorsNote(unit="lines")), r"\[authors_note\] unit: 'lines' is not one of"),
    (Story(generation={"top_p": 2.0}), r"\[generation\] top_p: 2\.0 is outside"),
    (Story(memory="broken \ud800 paste"), r"memory: holds a broken character"),
])
def test_a_bad_story_is_refused_and_nothing_written(tmp_path, story, message):
    path = write(tmp_path / "b.story.toml", STORY)
    with pytest.raises(StoryError, match=rf"^{path}: {message}.*; story not saved$"):
        save_story(path, story)
    with pytest.raises(StoryError):
        save_story(tmp_path / "new.story.toml", story)
    assert path.read_text(encoding="utf-8") == STORY
    assert os.listdir(tmp_path) == ["b.story.toml"]


@pytest.mark.parametrize("text", [
    "authors_note = { text = \"a\" }\n",  # an inline table: a new [authors_note] would define it twice
    "authors_note.text = \"a\"\n",  # a dotted key
    "lore = [{ name = \"a\" }]\n",  # lore as an inline array
])
def test_a_layout_too_unusual_is_refused_not_corrupted(tmp_path, text):
    path = write(tmp_path / "b.story.toml", text)
    story = load_story(path)
    changed = replace(story, authors_note=AuthorsNote("b"), lore=story.lore + (LoreEntry(name="c"),))
    with pytest.raises(StoryError, match=rf"^{path}: this file's layout is too unusual to edit safely; story not saved$"):
        save_story(path, changed)
    assert path.read_text() == text


def test_write_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = write(tmp_path / "b.story.toml", STORY)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_save.os, "fsync", full)
    with pytest.raises(StoryError, match=rf"^{path}: cannot save: no space left on device; story not saved$"):
        save_story(path, replace(EXPECTED, memory="新的"))
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == STORY
    assert os.listdir(tmp_path) == ["b.story.toml"]


def test_save_replaces_the_file_atomically(tmp_path, monkeypatch):
    path = write(tmp_path / "b.story.toml", STORY)
    seen = []
    real_replace = atomic_save.os.replace

    def watch(source, target):
        seen.append((Path(source).name, Path(target).read_text(encoding="utf-8")))  # old text until the rename
        real_replace(source, target)

    monkeypatch.setattr(atomic_save.os, "replace", watch)
    save_story(path, replace(EXPECTED, memory="新的"))
    assert len(seen) == 1 and seen[0][0].startswith(".b.story.toml.tmp-") and seen[0][1] == STORY
    assert load_story(path).memory == "新的"
    assert os.listdir(tmp_path) == ["b.story.toml"]


def test_a_long_story_saves_quickly_enough_to_use(tmp_path):
    memory = "".join(f"第{i}行：林雪练剑。\n" for i in range(3000))
    lore = tuple(LoreEntry(name=f"人物{i}", keys=(f"人物{i}",), text="设定\n" * 20) for i in range(200))
    story = Story(memory=memory, lore=lore)
    path = tmp_path / "long.story.toml"
    save_story(path, story)
    changed = replace(story, memory=memory + "新行\n", lore=lore[:100] + lore[101:])
    save_story(path, changed)
    assert load_story(path) == changed
