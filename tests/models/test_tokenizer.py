"""The character tokenizer and AI-Writer's vocabulary files (real files on disk)."""

from __future__ import annotations

import codecs
import json

import pytest

from ai_writer.models.tokenizer import DEFAULT_UNKNOWN_CHAR, CharTokenizer, VocabError
from tests.helpers import REAL_VOCAB

PASSAGE = (
    "第一章 山雨欲来\n"
    "“你说什么？”他愣了一下，随即冷笑道：“就凭你……也配？”\n"
    "风声呼啸——远处的山门，轰然倒塌。"
)
SMALL_CHARS = ["\n", "a", "b", "。", "😀", "𠀀", DEFAULT_UNKNOWN_CHAR]


def write_vocab(path, chars, encoding="utf-8", bom=b""):
    table = {str(i): c for i, c in enumerate(chars)}
    path.write_bytes(bom + json.dumps(table, ensure_ascii=False).encode(encoding))
    return path


@pytest.fixture(scope="module")
def real():
    return CharTokenizer.from_file(REAL_VOCAB)


# -- the real AI-Writer vocabulary ---------------------------------------------------


def test_real_vocab_facts(real):
    assert real.vocab_size == 8849
    assert real.unknown_id == 8778
    assert real.chars[8778] == DEFAULT_UNKNOWN_CHAR
    assert real.encode("\n") == [2]
    assert real.chars[0] == "\x07"


def test_real_vocab_round_trips_a_passage(real):
    ids = real.encode(PASSAGE)
    assert len(ids) == len(PASSAGE)
    assert real.unknown_id not in ids  # every character of the passage is in the vocabulary
    assert real.decode(ids) == PASSAGE


def test_unknown_characters_map_to_the_unknown_id(real):
    # '\u3000' (the paragraph indent) and '\t' are not in the 2022-02-15 vocabulary
    ids = real.encode("甲\u3000\t乙")
    assert ids[1] == ids[2] == real.unknown_id
    assert real.decode(ids) == f"甲{DEFAULT_UNKNOWN_CHAR}{DEFAULT_UNKNOWN_CHAR}乙"
    assert real.banned_ids == [real.unknown_id]


def test_non_bmp_characters_are_unknown_in_the_real_vocab(real):
    assert real.encode("😀𠀀") == [real.unknown_id, real.unknown_id]


def test_non_bmp_characters_round_trip_as_single_ids(tmp_path):
    tok = CharTokenizer.from_file(write_vocab(tmp_path / "v.json", SMALL_CHARS))
    ids = tok.encode("a😀b𠀀")
    assert ids == [1, 4, 2, 5]
    assert tok.decode(ids) == "a😀b𠀀"


def test_non_bmp_characters_written_as_surrogate_escapes_load_as_one_char(tmp_path):
    path = tmp_path / "v.json"
    path.write_text(json.dumps({str(i): c for i, c in enumerate(SMALL_CHARS)}, ensure_ascii=True), encoding="utf-8")
    assert "\\ud83d" in path.read_text(encoding="utf-8")
    tok = CharTokenizer.from_file(path)
    assert tok.chars == SMALL_CHARS


# -- encodings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding, bom",
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom"],
)
def test_every_supported_encoding_loads_the_same(tmp_path, encoding, bom):
    tok = CharTokenizer.from_file(write_vocab(tmp_path / "v.json", SMALL_CHARS, encoding, bom))
    assert tok.chars == SMALL_CHARS
    assert tok.unknown_id == SMALL_CHARS.index(DEFAULT_UNKNOWN_CHAR)


def test_real_vocab_reencoded_as_utf8_matches(tmp_path, real):
    text = REAL_VOCAB.read_bytes().decode("utf-16")
    path = tmp_path / "v8.json"
    path.write_text(text, encoding="utf-8")
    assert CharTokenizer.from_file(path).chars == real.chars


def test_save_then_load_round_trips(tmp_path):
    tok = CharTokenizer(SMALL_CHARS)
    path = tmp_path / "saved.json"
    tok.save(path)
    assert path.read_bytes()[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    again = CharTokenizer.from_file(path)
    assert again.chars == SMALL_CHARS
    assert again.encode("a😀\n") == tok.encode("a😀\n")


def test_save_round_trips_the_real_vocab(tmp_path, real):
    path = tmp_path / "real-copy.json"
    real.save(path)
    assert CharTokenizer.from_file(path).chars == real.chars


# -- bad files ----------------------------------------------------------------------


def _bad(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(VocabError) as caught:
        CharTokenizer.from_file(path)
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def test_invalid_json_names_file_and_line(tmp_path):
    message = _bad(tmp_path, "broken.json", '{\n"0": "a",\n"1": "b"\n"2": "c"\n}'.encode())
    assert "line 4" in message


def test_gap_in_ids(tmp_path):
    _bad(tmp_path, "gap.json", json.dumps({"0": "a", "2": "b"}).encode())


def test_non_numeric_id(tmp_path):
    _bad(tmp_path, "word.json", json.dumps({"0": "a", "one": "b"}).encode())


def test_id_written_twice_in_two_spellings(tmp_path):
    # "01" and "1" are both id 1, leaving id 0 unset
    _bad(tmp_path, "spellings.json", json.dumps({"01": "a", "1": "b"}).encode())


def test_non_ascii_digit_id(tmp_path):
    _bad(tmp_path, "superscript.json", json.dumps({"0": "a", "²": "b"}).encode())


def test_repeated_id(tmp_path):
    message = _bad(tmp_path, "repeat.json", b'{"0": "a", "1": "b", "1": "c"}')
    assert "'1'" in message


def test_value_of_two_characters(tmp_path):
    message = _bad(tmp_path, "two.json", json.dumps({"0": "a", "1": "bc"}).encode())
    assert "'bc'" in message


def test_value_that_is_not_a_string(tmp_path):
    _bad(tmp_path, "number.json", json.dumps({"0": "a", "1": 7}).encode())


def test_duplicated_character(tmp_path):
    _bad(tmp_path, "dup.json", json.dumps({"0": "a", "1": "b", "2": "a"}).encode())


def test_not_an_object(tmp_path):
    _bad(tmp_path, "list.json", json.dumps(["a", "b"]).encode())


def test_empty_object(tmp_path):
    _bad(tmp_path, "empty.json", b"{}")


def test_non_utf_text(tmp_path):
    # GBK bytes without a byte-order mark are neither UTF-8 nor marked UTF-16
    _bad(tmp_path, "gbk.json", '{"0": "中", "1": "文"}'.encode("gbk"))


def test_utf16_without_bom_is_refused(tmp_path):
    _bad(tmp_path, "nobom.json", json.dumps({"0": "中"}, ensure_ascii=False).encode("utf-16-le"))


def test_missing_file(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(VocabError, match="absent.json"):
        CharTokenizer.from_file(path)


# -- behaviour ----------------------------------------------------------------------


def test_vocab_without_unknown_char_drops_unknown_characters(tmp_path):
    tok = CharTokenizer.from_file(write_vocab(tmp_path / "v.json", ["\n", "a", "b"]))
    assert tok.unknown_id is None
    assert tok.banned_ids == []
    assert tok.encode("a?b😀\n") == [1, 2, 0]
    assert tok.decode(tok.encode("xyz")) == ""


def test_custom_unknown_char(tmp_path):
    tok = CharTokenizer.from_file(write_vocab(tmp_path / "v.json", ["\n", "a", "?"]), unknown_char="?")
    assert tok.unknown_id == 2
    assert tok.encode("aZ") == [1, 2]


def test_stream_decoder_matches_decode(real, tmp_path):
    for tok in (real, CharTokenizer.from_file(write_vocab(tmp_path / "v.json", SMALL_CHARS))):
        ids = tok.encode(PASSAGE + "a😀𠀀\u3000")
        decoder = tok.stream_decoder()
        assert "".join(decoder.feed(i) for i in ids) == tok.decode(ids)
