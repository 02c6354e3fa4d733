"""Saving settings into the user's TOML file without disturbing the rest of it.

`update_config_file(path, {"sampling": {"top_p": 0.8}})` rewrites only the
lines that set the changed keys (a trailing `# comment` on such a line stays);
keys the file lacks go after the last key of their section, sections it lacks
go at the end. Comments, blank lines, key order and the formatting of every
other line are kept byte for byte, CRLF files stay CRLF.

The result is re-parsed before it is written: it must hold exactly the old
settings plus the changes, or nothing is written (ConfigWriteError). The file
is replaced atomically (studio.data.manuscript_file.save_atomic).
"""

from __future__ import annotations

import copy
import math
import re
import sys
import unicodedata
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ai_writer.studio.data.manuscript_file import ManuscriptError, save_atomic

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KEY_TOKEN = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
KEY_LINE = re.compile(rf"^[ \t]*({_KEY_TOKEN})[ \t]*=[ \t]*")
HEADER_LINE = re.compile(rf"^[ \t]*\[[ \t]*({_KEY_TOKEN})[ \t]*\][ \t]*(?:#.*)?$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


class ConfigWriteError(Exception):
    """One line: the settings file, and why it could not be saved."""


# --- formatting values ----------------------------------------------------------


def toml_string(value: str) -> str:
    """A TOML basic string; non-ASCII text stays as it is, invisible characters are escaped."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0xD800 <= ord(char) <= 0xDFFF:
            raise ValueError(f"{value!r} contains a lone surrogate, which TOML cannot hold")
        elif char == " ":
            out.append(char)
        elif unicodedata.category(char) in ("Cc", "Cf", "Co", "Cn", "Zl", "Zp"):
            # control, format, private-use, unassigned, line/paragraph separators:
            # legal or not in TOML, they are invisible in an editor, so write them escaped
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # '0.75', '1e-05', '1e+20': all valid TOML floats
    if isinstance(value, str):
        return toml_string(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to the settings file (only str, bool, int, float)")


def toml_key(key: str) -> str:
    return key if BARE_KEY.fullmatch(key) else toml_string(key)


# --- reading the file's layout -------------------------------------------------


def _split_lines(text: str) -> list[str]:
    """Lines with their endings; only "\\n" ends a line (as in TOML)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _parses(text: str) -> bool:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return True


def _key_name(token: str) -> str:
    if token[0] in "\"'":
        return next(iter(tomllib.loads(f"{token} = 0")))
    return token


class _Layout:
    """Where each [section] starts and where each simple `key = value` of it lies."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        self.sections: dict[str, int] = {}  # name -> header line index ("" = before any header)
        self.keys: dict[tuple[str, str], tuple[int, int]] = {}  # (section, key) -> (first, last) line
        self.last_key_line: dict[str, int] = {}
        self.first_header: int = len(lines)
        current: str | None = ""
        i = 0
        while i < len(lines):
            stripped = lines[i].strip()
            if not stripped or stripped.startswith("#"):
                i += 1
                continue
            if stripped.startswith("["):
                self.first_header = min(self.first_header, i)
                match = HEADER_LINE.match(lines[i].rstrip("\r\n"))
                current = _key_name(match.group(1)) if match and not stripped.startswith("[[") else None
                if current is not None:
                    self.sections.setdefault(current, i)
                i += 1
                continue
            end = self._statement_end(i)
            match = KEY_LINE.match(lines[i])
            if current is not None and match:
                self.keys[(current, _key_name(match.group(1)))] = (i, end)
            if current is not None:
                self.last_key_line[current] = end
            i = end + 1

    def _statement_end(self, start: int) -> int:
        """The last line of the key/value statement starting at `start` (values may span lines)."""
        for end in range(start, len(self.lines)):
            if _parses("".join(self.lines[start : end + 1])):
                return end
        raise ValueError(f"line {start + 1}: cannot find the end of this setting")


def _rewrite(lines: list[str], first: int, last: int, new_value: str) -> str:
    """The statement on lines first..last with its value replaced, key and comment kept."""
    statement = "".join(lines[first : last + 1])
    ending = statement[len(statement.rstrip("\r\n")) :]
    statement = statement[: len(statement) - len(ending)]
    prefix = KEY_LINE.match(statement).group(0)
    rest = statement[len(prefix) :]
    comment = ""
    for found in re.finditer("#", rest):
        value = rest[: found.start()]
        if _parses(f"x = {value}\n"):
            comment = rest[len(value.rstrip()) :]
            break
    return f"{prefix}{new_value}{comment}{ending}"


# --- updating -------------------------------------------------------------------


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def apply_changes(text: str, changes: dict[str, dict[str, object]]) -> str:
    """The TOML `text` with `changes` ({section: {key: value}}) made; untouched lines kept as they are."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = _split_lines(text)
    layout = _Layout(lines)
    replaced: dict[int, tuple[int, str]] = {}  # first line -> (last line, new text)
    inserted: dict[int, list[str]] = {}  # after line index -> new lines
    appended: list[str] = []
    for section, values in changes.items():
        if not section:
            raise ValueError("settings must name a section")
        missing = []
        for key, value in values.items():
            formatted = toml_value(value)
            if (section, key) in layout.keys:
                first, last = layout.keys[(section, key)]
                replaced[first] = (last, _rewrite(lines, first, last, formatted))
            else:
                missing.append(f"{toml_key(key)} = {formatted}{newline}")
        if not missing:
            continue
        if section in layout.sections:
            after = layout.last_key_line.get(section, layout.sections[section])
            inserted.setdefault(after, []).extend(missing)
        else:
            if appended:
                appended.append(newline)
            appended.append(f"[{toml_key(section)}]{newline}")
            appended.extend(missing)
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i in replaced:
            last, new = replaced[i]
            out.append(new)
            end = last
        else:
            out.append(lines[i])
            end = i
        if end in inserted:
            if not out[-1].endswith("\n"):
                out[-1] += newline
            out.extend(inserted[end])
        i = end + 1
    if appended:
        if out and not out[-1].endswith("\n"):
            out[-1] += newline
        if out and out[-1].strip():
            out.append(newline)
        out.extend(appended)
    return "".join(out)


def update_config_file(path, changes: dict[str, dict[str, object]]) -> None:
    """Save `changes` ({section: {key: value}}) into the TOML file at `path`, creating it if need be.

    Raises ConfigWriteError (one line) when the file cannot be read, is not valid
    TOML, or cannot be written; the file is then left as it was.
    """
    path = Path(path)
    name = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    except OSError as exc:
        raise ConfigWriteError(f"{name}: cannot read the settings file ({exc.strerror or exc})") from None
    bom = data.startswith(b"\xef\xbb\xbf")
    try:
        text = data[3:].decode("utf-8") if bom else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigWriteError(f"{name}: line {line}: not UTF-8 text; settings not saved") from None
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigWriteError(f"{name}: TOML syntax error ({exc}); fix it before saving settings") from None
    try:
        new_text = apply_changes(text, changes)
    except ValueError as exc:
        raise ConfigWriteError(f"{name}: settings not saved: {exc}") from None
    expected = copy.deepcopy(before)
    for section, values in changes.items():
        if not isinstance(expected.setdefault(section, {}), dict):
            raise ConfigWriteError(f"{name}: settings not saved: {section} is not a [section] in this file")
        expected[section].update(values)
    try:
        after = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError:
        after = None
    if not _same(after, expected):
        raise ConfigWriteError(f"{name}: settings not saved: this file's layout is too unusual to update safely")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomic(path, new_text, bom=bom)
    except ManuscriptError as exc:
        raise ConfigWriteError(str(exc).replace("; your text is still open", "; settings not saved")) from None
    except OSError as exc:
        raise ConfigWriteError(f"{name}: cannot save settings ({exc.strerror or exc})") from None
