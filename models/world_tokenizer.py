"""The RWKV "World" tokenizer (rwkv_vocab_v20230424), for RWKV World models.

The vocabulary lists 65,529 byte strings with ids 1..65529, one a line:

    <id> <Python repr of a str or bytes> <length in UTF-8 bytes>

A str stands for its UTF-8 bytes; bytes entries are the 256 single bytes and
pieces of characters. Every single byte is a token, so any text encodes. Id 0 is
end-of-text and has no entry. Encoding is greedy: at each position the longest
listed byte string that matches, as `rwkv.rwkv_tokenizer.TRIE_TOKENIZER` does
(identical ids). World models have 65,536 embedding rows; ids 65530..65535 are
unused.

Generation never samples id 0, the unused ids or a token holding a control byte
(`banned_ids`): end-of-text would end the story in the middle and what follows it
is unrelated text, so the writer goes on instead; control bytes (below 0x20 other
than newline and tab, and DEL) are no part of a manuscript.

The vocabulary ships beside this module as world_vocab_v20230424.txt, a byte-for-byte
copy of rwkv/rwkv_vocab_v20230424.txt from the `rwkv` package 0.8.32 (Bo PENG,
https://github.com/BlinkDL/ChatRWKV), licensed under the Apache License 2.0, the
licence of this project too. Without that file the installed `rwkv` package's copy
is used; `rwkv` is not a dependency of the product.
"""

from __future__ import annotations

import ast
import codecs
from pathlib import Path

from ai_writer.models.tokenizer import VocabError

WORLD_VOCAB_FILE = "rwkv_vocab_v20230424.txt"  # its name in the rwkv package
BUNDLED_VOCAB = Path(__file__).with_name("world_vocab_v20230424.txt")
WORLD_VOCAB_SIZE = 65536  # embedding rows of RWKV World models
WORLD_ENTRIES = 65529
END_OF_TEXT = 0
CONTROL_BYTES = frozenset(set(range(0x20)) - {0x09, 0x0A} | {0x7F})  # never written into a manuscript
_PREFIX = 0  # in the prefix table: a byte string only some longer token starts with (id 0 is no token's)


def default_vocab_path() -> Path | None:
    """The shipped vocabulary, else the installed rwkv package's; None if neither is here."""
    if BUNDLED_VOCAB.is_file():
        return BUNDLED_VOCAB
    try:
        import importlib.util

        spec = importlib.util.find_spec("rwkv")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / WORLD_VOCAB_FILE
        if candidate.is_file():
            return candidate
    return None


def is_world_vocab(path: str | Path) -> bool:
    """Whether `path` names a World vocabulary file (a .txt in the format above) rather than a JSON one."""
    path = Path(path)
    return path.suffix.lower() == ".txt" or path.name in (WORLD_VOCAB_FILE, BUNDLED_VOCAB.name)


def _parse_literal(text: str, path: Path, number: int) -> bytes:
    # Fast path for the plain reprs of nearly every line: quotes with no escape inside.
    if len(text) >= 2 and "\\" not in text:
        if text[0] == text[-1] and text[0] in "'\"":
            return text[1:-1].encode("utf-8")
        if text[:2] in ("b'", 'b"') and text[-1] == text[1] and text.isascii():
            return text[2:-1].encode("ascii")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise VocabError(f"{path}: line {number}: not a Python str or bytes literal ({exc})") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise VocabError(f"{path}: line {number}: {type(value).__name__}, not a str or bytes literal")


def read_world_vocab(path: str | Path) -> dict[int, bytes]:
    """id -> bytes from a vocabulary file; VocabError naming the file and line if it is malformed."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise VocabError(f"{path}: cannot read the vocabulary ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VocabError(f"{path}: not UTF-8 text (bad byte at {exc.start})") from None
    tokens: dict[int, bytes] = {}
    seen: set[bytes] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        first, last = line.find(" "), line.rfind(" ")
        if first <= 0 or last <= first:
            raise VocabError(f"{path}: line {number}: expected '<id> <repr> <byte length>'")
        id_text, length_text = line[:first], line[last + 1 :]
        if not (id_text.isdigit() and length_text.isdigit()):
            raise VocabError(f"{path}: line {number}: expected '<id> <repr> <byte length>'")
        token_id = int(id_text)
        value = _parse_literal(line[first + 1 : last], path, number)
        if len(value) != int(length_text):
            raise VocabError(f"{path}: line {number}: {len(value)} bytes, but the line says {length_text}")
        if token_id == END_OF_TEXT or token_id in tokens:
            raise VocabError(f"{path}: line {number}: id {token_id} is reserved or listed twice")
        if not value or value in seen:
            raise VocabError(f"{path}: line {number}: an empty or repeated token")
        tokens[token_id] = value
        seen.add(value)
    if not tokens:
        raise VocabError(f"{path}: no tokens")
    missing = [b for b in range(256) if bytes([b]) not in seen]
    if missing:
        raise VocabError(f"{path}: byte {missing[0]:#04x} is not a token, so some text could not be encoded")
    return tokens


class WorldTokenizer:
    """Byte-level greedy longest-match tokenizer with CharTokenizer's interface."""

    def __init__(self, tokens: dict[int, bytes], vocab_size: int = WORLD_VOCAB_SIZE):
        top = max(tokens)
        if vocab_size <= top:
            raise VocabError(f"vocab_size {vocab_size} is too small for token id {top}")
        self._vocab_size = vocab_size
        self.id_to_bytes: list[bytes] = [b""] * vocab_size  # id 0 (end of text) and unused ids decode to nothing
        # Every prefix of every token -> the token it is, or _PREFIX: the greedy match walks it a byte at a time,
        # as a trie (116,078 prefixes; a trie of dicts took 3.5 times the memory and twice the time to build)
        prefixes: dict[bytes, int] = {}
        for token_id, value in tokens.items():
            self.id_to_bytes[token_id] = value
            for length in range(1, len(value)):
                prefixes.setdefault(value[:length], _PREFIX)
        for token_id, value in tokens.items():
            prefixes[value] = token_id
        self._prefixes = prefixes
        self._unused = [i for i in range(1, vocab_size) if i not in tokens]
        self._control = [i for i, value in tokens.items() if any(b in CONTROL_BYTES for b in value)]
        # Single characters that are one token each: for banned and penalty-exempt characters.
        self.char_to_id: dict[str, int] = {}
        for token_id, value in tokens.items():
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(text) == 1:
                self.char_to_id[text] = token_id

    @classmethod
    def from_file(cls, path: str | Path, vocab_size: int = WORLD_VOCAB_SIZE) -> "WorldTokenizer":
        tokens = read_world_vocab(path)
        try:
            return cls(tokens, vocab_size)
        except VocabError as exc:
            raise VocabError(f"{path}: {exc}") from None

    @classmethod
    def default(cls, vocab_size: int = WORLD_VOCAB_SIZE) -> "WorldTokenizer":
        """The World vocabulary shipped with this module (or the rwkv package's); VocabError if missing."""
        path = default_vocab_path()
        if path is None:
            raise VocabError(f"the World vocabulary is missing ({BUNDLED_VOCAB} or the rwkv package's {WORLD_VOCAB_FILE})")
        return cls.from_file(path, vocab_size)

    @property
    def vocab_size(self) -> int:
        """Rows of the models it serves: 65,536 (ids 65530.. are unused)."""
        return self._vocab_size

    @property
    def banned_ids(self) -> list[int]:
        """Ids that are never generated: end of text (0), the unused ids and those writing a control byte."""
        return [END_OF_TEXT, *self._unused, *self._control]

    def ids_writing(self, chars: str) -> list[int]:
        """The ids whose bytes hold the whole UTF-8 encoding of any of `chars` (to ban them): the
        character alone and every longer token that writes it."""
        wanted = [c.encode("utf-8") for c in dict.fromkeys(chars)]
        return [i for i, value in enumerate(self.id_to_bytes) if value and any(w in value for w in wanted)]

    def encode_bytes(self, data: bytes) -> list[int]:
        find = self._prefixes.get
        ids: list[int] = []
        append = ids.append
        i, n = 0, len(data)
        while i < n:
            best, end = 0, i + 1  # every single byte is a token: the first step always finds one
            j = i + 1
            while j <= n:
                token_id = find(data[i:j])
                if token_id is None:
                    break
                if token_id != _PREFIX:
                    best, end = token_id, j
                j += 1
            append(best)
            i = end
        return ids

    def encode(self, text: str) -> list[int]:
        return self.encode_bytes(text.encode("utf-8", errors="surrogatepass"))

    def decode_bytes(self, ids) -> bytes:
        table = self.id_to_bytes
        return b"".join(table[i] for i in ids)

    def decode(self, ids) -> str:
        """The text of `ids`; invalid UTF-8 (a character cut off by the ids' ends) becomes U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def stream_decoder(self) -> "WorldStreamDecoder":
        """A decoder fed one id at a time that returns the complete characters each id finishes."""
        return WorldStreamDecoder(self)


class WorldStreamDecoder:
    """feed(id) -> the characters completed so far; the bytes of a character split across ids wait."""

    def __init__(self, tokenizer: WorldTokenizer):
        self._table = tokenizer.id_to_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        return self._decoder.decode(self._table[token_id])

    def flush(self) -> str:
        """What is left at the end: an unfinished character as U+FFFD, else ''."""
        return self._decoder.decode(b"", final=True)
