"""Character tokenizer in AI-Writer's vocabulary format.

The vocabulary is a JSON object {"0": "<char>", "1": "<char>", ...}: ids contiguous
from 0, each value exactly one character. AI-Writer's own files are UTF-16 with a
byte-order mark; copies made for the browser are UTF-8. Characters outside the
vocabulary become UNKNOWN_CHAR, which the sampler never writes.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

DEFAULT_UNKNOWN_CHAR = "\ue083"


class VocabError(ValueError):
    """A vocabulary file that cannot be used; the message names the file and the problem."""


def _decode_vocab_bytes(raw: bytes, path: Path) -> str:
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise VocabError(f"{path}: not valid {encoding.upper()} text ({exc.reason} at byte {exc.start})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VocabError(f"{path}: neither UTF-16 with a byte-order mark nor UTF-8 (bad byte at {exc.start})") from None


class _RepeatedKey(Exception):
    pass


def _no_repeated_keys(pairs):
    table = {}
    for key, value in pairs:
        if key in table:
            raise _RepeatedKey(key)
        table[key] = value
    return table


class CharTokenizer:
    """One id per character."""

    def __init__(self, chars: list[str], unknown_char: str = DEFAULT_UNKNOWN_CHAR):
        self.chars = list(chars)
        self.char_to_id = {c: i for i, c in enumerate(self.chars)}
        if len(self.char_to_id) != len(self.chars):
            raise VocabError("the vocabulary lists a character twice")
        self.unknown_char = unknown_char
        # Without UNKNOWN_CHAR in the vocabulary, unknown characters are dropped.
        self.unknown_id = self.char_to_id.get(unknown_char)

    @classmethod
    def from_file(cls, path: str | Path, unknown_char: str = DEFAULT_UNKNOWN_CHAR) -> "CharTokenizer":
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise VocabError(f"{path}: cannot read the vocabulary ({exc.strerror or exc})") from None
        text = _decode_vocab_bytes(raw, path)
        try:
            table = json.loads(text, object_pairs_hook=_no_repeated_keys)
        except _RepeatedKey as exc:
            raise VocabError(f"{path}: id {exc.args[0]!r} is listed twice") from None
        except json.JSONDecodeError as exc:
            raise VocabError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(table, dict) or not table:
            raise VocabError(f"{path}: expected a JSON object {{\"0\": \"<char>\", ...}}")
        chars: list[str | None] = [None] * len(table)
        for key, value in table.items():
            if not (key.isascii() and key.isdigit() and key == str(int(key)) and int(key) < len(table)):
                raise VocabError(f"{path}: key {key!r}: ids must run 0..{len(table) - 1} without gaps")
            if not (isinstance(value, str) and len(value) == 1):
                raise VocabError(f"{path}: id {key}: {value!r} is not exactly one character")
            chars[int(key)] = value
        try:
            return cls(chars, unknown_char)  # type: ignore[arg-type]
        except VocabError as exc:
            raise VocabError(f"{path}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as UTF-16 with a byte-order mark, like AI-Writer."""
        table = {str(i): c for i, c in enumerate(self.chars)}
        Path(path).write_text(json.dumps(table, ensure_ascii=False, indent=0), encoding="utf-16")

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @property
    def banned_ids(self) -> list[int]:
        """Ids that are never generated."""
        return [] if self.unknown_id is None else [self.unknown_id]

    def ids_writing(self, chars: str) -> list[int]:
        """The ids whose text contains any of `chars` (to ban them): here, each character's own id."""
        return [self.char_to_id[c] for c in dict.fromkeys(chars) if c in self.char_to_id]

    def encode(self, text: str) -> list[int]:
        lookup, unknown = self.char_to_id, self.unknown_id
        ids = [lookup.get(c, unknown) for c in text]
        return ids if unknown is not None or None not in ids else [i for i in ids if i is not None]

    def decode(self, ids) -> str:
        chars = self.chars
        return "".join(chars[i] for i in ids)

    def stream_decoder(self) -> "CharStreamDecoder":
        """A decoder fed one id at a time that returns the text each id completes."""
        return CharStreamDecoder(self)


class CharStreamDecoder:
    def __init__(self, tokenizer: CharTokenizer):
        self.chars = tokenizer.chars

    def feed(self, token_id: int) -> str:
        return self.chars[token_id]
