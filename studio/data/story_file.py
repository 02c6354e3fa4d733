"""The story beside a manuscript, NAME.story.toml: read, checked, and saved with the author's comments kept.

The file (every part optional; a missing file is an empty Story):

    # 人物、设定、大纲 ...
    memory = \"\"\"
    林雪：十七岁，青云宗外门弟子……
    \"\"\"

    [authors_note]
    text = "接下来的情节：林雪在山门外遇到了师兄。"
    depth = 300          # how far before the cursor
    unit = "chars"       # or "paragraphs"

    [generation]         # this story's own settings over config.toml
    temperature = 0.9    # any [sampling] key; [generation] candidates, length, context_chars;
    context_chars = 0    # [story] memory_budget, lore_budget, note_budget

    [[lore]]
    name = "林雪"                 # for the author only, never sent to the model
    keys = ["林雪", "雪儿", "/林.?雪/"]   # plain (case-insensitive) or /regex/ with flags i, m, s
    secondary_keys = []
    exclude_keys = []
    text = "林雪，青云宗外门弟子，性格倔强。"
    enabled = true
    constant = false
    priority = 0
    scan_chars = 2000

Reading (`load_story`) checks everything: unknown keys and tables, types (a single string
is taken as a one-key list), bad regexes, the note's unit, negative depths, the [generation]
keys and ranges (studio/config.py's, and the sampler's); a problem is one StoryError line
naming the file, the line and the key ("PATH: line 12: [lore 2] keys: ..."). It never writes.

Saving (`save_story`) edits only what changed: each changed value's statement is rewritten in
place (its trailing comment kept), missing keys go after the last key of their table, missing
tables before the first [[lore]] (else at the end). Lore entries are matched old to new by
their names in order (difflib): a kept entry is edited in place, a removed one loses its
[[lore]] block (with the comment lines right above it), a new one gets a block where it
stands. Everything else stays byte for byte, CRLF stays CRLF, a BOM stays. Text with line
breaks is written as a multi-line string. The result is re-read and must give exactly the
story being saved, or nothing is written (StoryError); then the file is replaced atomically.
An empty story with no file creates none.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ai_writer.backends.writing.context import compile_key
from ai_writer.backends.writing.sampling import SAMPLING_LIMITS
from ai_writer.backends.writing.story import NOTE_UNITS, AuthorsNote, LoreEntry, Story
from ai_writer.studio.config import STORY_OVERRIDE_KEYS, _check_value, problem_text
from ai_writer.studio.config_sections import SECTIONS
from ai_writer.studio.data.config_writer import (_KEY_TOKEN, HEADER_LINE, KEY_LINE, _key_name, _parses, _rewrite,
                                                 _split_lines, toml_key, toml_string, toml_value)
from ai_writer.studio.data.manuscript_file import ManuscriptError, save_atomic
from ai_writer.studio.i18n import tr

SUFFIX = ".story.toml"
TOP_KEYS = ("memory", "authors_note", "generation", "lore")
NOTE_KEYS = ("text", "depth", "unit")
# The order a new [[lore]] block is written in (every LoreEntry field).
LORE_KEYS = ("name", "keys", "secondary_keys", "exclude_keys", "text", "enabled", "constant", "priority", "scan_chars")
KEY_LISTS = ("keys", "secondary_keys", "exclude_keys")
NOT_NEGATIVE = ("depth", "scan_chars")
assert set(LORE_KEYS) == {f.name for f in fields(LoreEntry)}

ARRAY_HEADER_LINE = re.compile(rf"^[ \t]*\[\[[ \t]*({_KEY_TOKEN})[ \t]*\]\][ \t]*(?:#.*)?$")
# A statement spanning lines can only end on a line that closes a string, an array or a table.
_CLOSERS = ('"""', "'''", "]", "}")
_SURROGATE = re.compile("[\ud800-\udfff]")


class StoryError(Exception):
    """One line: the story file, the line and the key at fault, and why."""


def story_path_for(manuscript_path) -> Path:
    """NAME.story.toml beside NAME.txt."""
    path = Path(manuscript_path)
    return path.with_name(f"{path.stem}{SUFFIX}")


# --- checking values -------------------------------------------------------------


class _Problem(Exception):
    """A value at fault: its block (None: top level, "authors_note", "generation", or a lore index), key, why."""

    def __init__(self, block, key: str | None, text: str):
        super().__init__(text)
        self.block, self.key, self.text = block, key, text

    @property
    def label(self) -> str:
        if self.block is None:
            return self.key or ""
        table = f"[lore {self.block + 1}]" if isinstance(self.block, int) else f"[{self.block}]"
        return f"{table} {self.key}" if self.key else table


def _typed(block, key: str, value, default):
    checked, problem = _check_value("", key, value, default)
    if problem:
        raise _Problem(block, key, problem_text(problem))
    if isinstance(checked, str):
        _writable(block, key, checked)
    return checked


def _writable(block, key: str, text: str) -> None:
    """A lone surrogate (from a broken paste) cannot be stored in TOML."""
    if _SURROGATE.search(text):
        raise _Problem(block, key, tr("sf_surrogate"))


def _no_unknown(block, table: dict, known) -> None:
    for key in table:
        if key not in known:
            raise _Problem(block, key, tr("sf_unknown_key", known=", ".join(known)))


def _table(key: str, value) -> dict:
    if not isinstance(value, dict):
        raise _Problem(None, key, tr("sf_must_be_table", value=repr(value)))
    return value


def _keys(block: int, name: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise _Problem(block, name, tr("sf_keys_type", value=repr(value)))
    for key in value:
        _writable(block, name, key)
        try:
            compile_key(key)
        except ValueError as exc:  # "key '/林(/': bad regex: ..." 
            raise _Problem(block, name, str(exc)) from None
    return tuple(value)


def _not_negative(block, key: str, value: int) -> int:
    if value < 0:
        raise _Problem(block, key, tr("sf_negative", value=value))
    return value


def _note(table: dict) -> AuthorsNote:
    block = "authors_note"
    _no_unknown(block, table, NOTE_KEYS)
    default = AuthorsNote()
    values = {key: _typed(block, key, table[key], getattr(default, key)) for key in NOTE_KEYS if key in table}
    if "depth" in values:
        _not_negative(block, "depth", values["depth"])
    if values.get("unit", default.unit) not in NOTE_UNITS:
        choices = ", ".join(repr(unit) for unit in NOTE_UNITS)
        raise _Problem(block, "unit", problem_text(("problem_not_choice", {"value": repr(values["unit"]), "choices": choices})))
    return AuthorsNote(**values)


def _entry(index: int, table: dict) -> LoreEntry:
    _no_unknown(index, table, LORE_KEYS)
    if "name" not in table:
        raise _Problem(index, "name", tr("sf_name_missing"))
    default = LoreEntry(name="")
    values = {}
    for key in LORE_KEYS:
        if key not in table:
            continue
        if key in KEY_LISTS:
            values[key] = _keys(index, key, table[key])
        else:
            values[key] = _typed(index, key, table[key], getattr(default, key))
    if not values["name"].strip():
        raise _Problem(index, "name", tr("sf_name_empty"))
    for key in NOT_NEGATIVE:
        if key in values:
            _not_negative(index, key, values[key])
    return LoreEntry(**values)


_OVERRIDE_TYPES = {key: get_type_hints(SECTIONS[section])[key] for key, section in STORY_OVERRIDE_KEYS.items()}


def _generation(table: dict) -> dict:
    block = "generation"
    _no_unknown(block, table, tuple(STORY_OVERRIDE_KEYS))
    checked = {}
    for key, value in table.items():
        value, problem = _check_value(STORY_OVERRIDE_KEYS[key], key, value, _OVERRIDE_TYPES[key]())
        if problem is None and key in SAMPLING_LIMITS:
            low, high = SAMPLING_LIMITS[key]
            if not low <= value <= high:
                problem = ("problem_outside", {"value": value, "low": low, "high": high})
        if problem:
            raise _Problem(block, key, problem_text(problem))
        checked[key] = value
    return checked


def check_generation_overrides(table: dict) -> None:
    """StoryError ("[generation] KEY: why") unless `table` is a valid [generation] table of a story file."""
    try:
        _generation(_table("generation", table))
    except _Problem as problem:
        raise StoryError(f"{problem.label}: {problem.text}") from None


def _story_of(table: dict) -> Story:
    """The Story a parsed story file holds; _Problem for the first thing wrong in it."""
    _no_unknown(None, table, TOP_KEYS)
    memory = _typed(None, "memory", table["memory"], "") if "memory" in table else ""
    note = _note(_table("authors_note", table.get("authors_note", {})))
    generation = _generation(_table("generation", table.get("generation", {})))
    lore = table.get("lore", [])
    if not isinstance(lore, list) or not all(isinstance(entry, dict) for entry in lore):
        raise _Problem(None, "lore", tr("sf_must_be_lore"))
    entries = tuple(_entry(index, entry) for index, entry in enumerate(lore))
    return Story(memory=memory, authors_note=note, lore=entries, generation=generation)


def _table_of(story: Story) -> dict:
    """The TOML table a story is written as (before it is checked like a file's)."""
    table = {"memory": story.memory, "authors_note": {k: getattr(story.authors_note, k) for k in NOTE_KEYS},
             "generation": dict(story.generation)}
    table["lore"] = [{k: list(v) if isinstance(v := getattr(entry, k), tuple) else v for k in LORE_KEYS}
                     for entry in story.lore]
    return table


# --- the file's layout -------------------------------------------------------------


@dataclass
class _Block:
    """The top level, a [table] or a [[table]] of the file: where its header and its statements are."""

    kind: str  # "top" | "table" | "array" | "other" (a header this module does not edit, e.g. [a.b])
    name: str
    header: int  # line index of the header (-1 for the top level)
    keys: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (first, last) line
    last: int = -1  # last line of its last statement, else its header


def _statement_end(lines: list[str], start: int) -> int:
    for end in range(start, len(lines)):
        if (end == start or any(c in lines[end] for c in _CLOSERS)) and _parses("".join(lines[start:end + 1])):
            return end
    return start  # cannot happen in a file tomllib read; re-reading what is written catches it anyway


class _Layout:
    def __init__(self, lines: list[str]):
        self.lines = lines
        self.blocks = [_Block("top", "", -1)]
        i = 0
        while i < len(lines):
            stripped = lines[i].strip()
            if not stripped or stripped.startswith("#"):
                i += 1
                continue
            if stripped.startswith("["):
                line = lines[i].rstrip("\r\n")
                array, table = ARRAY_HEADER_LINE.match(line), HEADER_LINE.match(line)
                if array:
                    block = _Block("array", _key_name(array.group(1)), i, last=i)
                elif table and not stripped.startswith("[["):
                    block = _Block("table", _key_name(table.group(1)), i, last=i)
                else:
                    block = _Block("other", stripped, i, last=i)
                self.blocks.append(block)
                i += 1
                continue
            end = _statement_end(lines, i)
            key = KEY_LINE.match(lines[i])
            if key:
                self.blocks[-1].keys[_key_name(key.group(1))] = (i, end)
            self.blocks[-1].last = end
            i = end + 1

    @property
    def top(self) -> _Block:
        return self.blocks[0]

    def table(self, name: str) -> _Block | None:
        return next((b for b in self.blocks if b.kind == "table" and b.name == name), None)

    @property
    def lore(self) -> list[_Block]:
        return [b for b in self.blocks if b.kind == "array" and b.name == "lore"]

    def line_of(self, problem: _Problem) -> int | None:
        """The 1-based line a problem is on: its key's, else its table's header, else None."""
        block = problem.block
        if block is None:
            found = self.top.keys.get(problem.key) or next(
                (b for b in self.blocks if b.kind in ("table", "array") and b.name == problem.key), None)
        elif isinstance(block, int):
            found = self.lore[block] if block < len(self.lore) else self.top.keys.get("lore")
        else:
            found = self.table(block) or self.top.keys.get(block)
        if isinstance(found, _Block):
            found = found.keys.get(problem.key) or (found.header, found.header)
        return found[0] + 1 if found else None

    def owned_start(self, block: _Block) -> int:
        """The first line of the comment lines right above a header (the header itself when none)."""
        previous = self.blocks[self.blocks.index(block) - 1].last
        start = block.header
        while start - 1 > previous and self.lines[start - 1].lstrip().startswith("#"):
            start -= 1
        return start


# --- writing ----------------------------------------------------------------------


def _multiline(value: str, newline: str) -> str:
    """A multi-line basic string: the text's lines as they are; backslashes, controls and each quote
    followed by another are escaped."""
    out = []
    for index, char in enumerate(value):
        if char == "\n":
            out.append(newline)
        elif char == "\t":
            out.append(char)
        elif char == '"':  # no run of three; one or two just before the closing quotes are fine in TOML
            out.append('\\"' if value[index + 1:index + 2] == '"' else '"')
        else:
            out.append(toml_string(char)[1:-1])
    return '"""' + newline + "".join(out) + '"""'


def _value_text(value, newline: str) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_string(item) for item in value) + "]"
    if isinstance(value, str) and "\n" in value:
        return _multiline(value, newline)
    return toml_value(value)


class _Edit:
    """Replacements and insertions on a file's lines, applied in one pass."""

    def __init__(self, lines: list[str], newline: str):
        self.lines, self.newline = lines, newline
        self.ops: list[tuple[int, int, int, int, str, bool]] = []  # start, insertion first, order, end, text, blank before

    def replace(self, first: int, last: int, text: str) -> None:
        self.ops.append((first, 1, len(self.ops), last + 1, text, False))

    def insert(self, at: int, text: str, *, blank_before: bool = False) -> None:
        self.ops.append((at, 0, len(self.ops), at, text, blank_before))

    def statement(self, key: str, value) -> str:
        return f"{toml_key(key)} = {_value_text(value, self.newline)}{self.newline}"

    def result(self) -> str:
        out: list[str] = []
        cursor = 0
        for start, _, _, end, text, blank_before in sorted(self.ops):
            if start < cursor:
                raise ValueError("overlapping edits")
            out.extend(self.lines[cursor:start])
            cursor = max(cursor, end)
            if not text:
                continue
            if start == end and out:  # an insertion starts on a line of its own
                if not out[-1].endswith("\n"):
                    out[-1] += self.newline
                if blank_before and out[-1].splitlines()[-1].strip():
                    out.append(self.newline)
            out.append(text)
        out.extend(self.lines[cursor:])
        return "".join(out)


def _set_keys(edit: _Edit, layout: _Layout, block: _Block, changes: dict, *, at: int | None = None) -> None:
    """Rewrite the changed keys of a block in place; the ones it lacks go after its last statement."""
    missing = []
    for key, value in changes.items():
        if key in block.keys:
            first, last = block.keys[key]
            edit.replace(first, last, _rewrite(layout.lines, first, last, _value_text(value, edit.newline)))
        else:
            missing.append(edit.statement(key, value))
    if missing:
        edit.insert(block.last + 1 if at is None else at, "".join(missing))


def _table_text(edit: _Edit, header: str, values: dict) -> str:
    return header + edit.newline + "".join(edit.statement(k, v) for k, v in values.items())


def _changed(old, new, keys) -> dict:
    return {key: getattr(new, key) for key in keys if getattr(old, key) != getattr(new, key)}


def _entry_values(entry: LoreEntry) -> dict:
    return {key: getattr(entry, key) for key in LORE_KEYS}


def _top_insert_at(layout: _Layout) -> int:
    """Where a new top-level key goes: after the top level's last statement, else after its leading comments."""
    if layout.top.keys or layout.top.last >= 0:
        return layout.top.last + 1
    end = layout.blocks[1].header if len(layout.blocks) > 1 else len(layout.lines)
    while end > 0 and not layout.lines[end - 1].strip():
        end -= 1
    return end


def _edit_text(text: str, old: Story, new: Story) -> str:
    """`text` (a story file holding `old`) changed to hold `new`, everything unchanged kept as it is."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = _split_lines(text)
    layout = _Layout(lines)
    edit = _Edit(lines, newline)
    lore_blocks = layout.lore
    # new tables go before the first [[lore]] block, else at the end
    tables_at = layout.owned_start(lore_blocks[0]) if lore_blocks else None
    new_tables: list[str] = []

    if old.memory != new.memory:
        at = _top_insert_at(layout)
        _set_keys(edit, layout, layout.top, {"memory": new.memory}, at=at)
        if "memory" not in layout.top.keys and at < len(lines) and lines[at].lstrip().startswith("["):
            edit.insert(at, newline)

    note = _changed(old.authors_note, new.authors_note, NOTE_KEYS)
    if note:
        block = layout.table("authors_note")
        if block:
            _set_keys(edit, layout, block, note)
        else:
            new_tables.append(_table_text(edit, "[authors_note]", {k: getattr(new.authors_note, k) for k in NOTE_KEYS}))

    if old.generation != new.generation:
        block = layout.table("generation")
        if block:
            for key in old.generation.keys() - new.generation.keys():
                if key not in block.keys:
                    raise ValueError(key)
                first, last = block.keys[key]
                edit.replace(first, last, "")
            changes = {k: v for k, v in new.generation.items() if k not in old.generation or old.generation[k] != v}
            _set_keys(edit, layout, block, changes)
        elif new.generation:
            new_tables.append(_table_text(edit, "[generation]", new.generation))

    for table in new_tables:
        if tables_at is None:
            edit.insert(len(lines), table, blank_before=True)
        else:
            edit.insert(tables_at, table + newline, blank_before=True)

    if old.lore != new.lore:
        if len(lore_blocks) != len(old.lore):
            raise ValueError("lore")
        _edit_lore(edit, layout, lore_blocks, old.lore, new.lore)
    return edit.result()


def _edit_lore(edit: _Edit, layout: _Layout, blocks: list[_Block], old: tuple, new: tuple) -> None:
    def add(at_old: int, entry: LoreEntry) -> None:
        text = _table_text(edit, "[[lore]]", _entry_values(entry))
        if at_old < len(blocks):
            edit.insert(layout.owned_start(blocks[at_old]), text + edit.newline, blank_before=True)
        else:
            edit.insert(blocks[-1].last + 1 if blocks else len(layout.lines), text, blank_before=True)

    def remove(index: int) -> None:
        block = blocks[index]
        start = layout.owned_start(block)
        previous = layout.blocks[layout.blocks.index(block) - 1].last
        while start - 1 > previous and not layout.lines[start - 1].strip():
            start -= 1
        edit.replace(start, block.last, "")

    def update(index: int, entry: LoreEntry) -> None:
        changes = _changed(old[index], entry, LORE_KEYS)
        if changes:
            _set_keys(edit, layout, blocks[index], changes)

    matcher = difflib.SequenceMatcher(None, [e.name for e in old], [e.name for e in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        paired = min(i2 - i1, j2 - j1)
        for k in range(paired):
            update(i1 + k, new[j1 + k])
        for i in range(i1 + paired, i2):
            remove(i)
        for j in range(j1 + paired, j2):
            add(i2, new[j])


# --- reading and saving files -------------------------------------------------------


def _read(path: Path) -> tuple[str, bool] | None:
    """The file's text and whether it had a UTF-8 BOM; None when there is no file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoryError(f"{path}: {tr('sf_cannot_read', reason=exc.strerror or exc)}") from None
    bom = data.startswith(b"\xef\xbb\xbf")
    try:
        return (data[3:] if bom else data).decode("utf-8"), bom
    except UnicodeDecodeError as exc:
        line = data[:exc.start + (3 if bom else 0)].count(b"\n") + 1
        raise StoryError(f"{path}: line {line}: {tr('sf_not_utf8')}") from None


def _parse(path: Path, text: str) -> tuple[Story, _Layout]:
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        lines = text.splitlines()
        line = int(found.group(1)) if found else max(len(lines), 1)
        shown = lines[line - 1].strip()[:80] if 0 < line <= len(lines) else ""
        raise StoryError(f"{path}: line {line}: {tr('sf_syntax', error=exc, text=shown)}") from None
    layout = _Layout(_split_lines(text))
    try:
        return _story_of(table), layout
    except _Problem as problem:
        line = layout.line_of(problem)
        where = f"{path}: line {line}" if line else f"{path}"
        raise StoryError(f"{where}: {problem.label}: {problem.text}") from None


def load_story(path) -> Story:
    """The story in the file at `path`; Story() when there is none. StoryError (one line) for a bad file."""
    path = Path(path)
    found = _read(path)
    return Story() if found is None else _parse(path, found[0])[0]


def _header_comment(path: Path) -> str:
    name = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem
    return tr("sf_header", name=name) + "\n"


def save_story(path, story: Story) -> None:
    """Save `story` into the file at `path`, editing only what changed (see the module's notes).

    StoryError (one line) when the story holds a bad value, the file cannot be read or is not a
    valid story file, or it cannot be written; the file is then left as it was.
    """
    path = Path(path)
    try:
        wanted = _story_of(_table_of(story))
    except _Problem as problem:
        raise StoryError(tr("sf_not_saved", error=f"{path}: {problem.label}: {problem.text}")) from None
    try:
        found = _read(path)
        if found is None:
            if story.is_empty:
                return
            text, bom, old = _header_comment(path), False, Story()
        else:
            text, bom = found
            old = _parse(path, text)[0]
    except StoryError as exc:
        raise StoryError(tr("sf_not_saved", error=exc)) from None
    if found is not None and old == wanted:
        return
    try:
        new_text = _edit_text(text, old, wanted)
        written = _story_of(tomllib.loads(new_text))
    except (ValueError, _Problem, tomllib.TOMLDecodeError):
        written = None
    if written != wanted:
        raise StoryError(tr("sf_not_saved", error=f"{path}: {tr('sf_layout')}"))
    try:
        save_atomic(path, new_text, bom=bom)
    except ManuscriptError as exc:
        reason = exc.reason or str(exc)
        raise StoryError(tr("sf_not_saved", error=f"{path}: {tr('sf_cannot_save', reason=reason)}")) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StoryError(tr("sf_not_saved", error=f"{path}: {tr('sf_cannot_save', reason=reason)}")) from None
