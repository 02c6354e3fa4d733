"""The RWKV World tokenizer against the reference, the `rwkv` package's TRIE_TOKENIZER,
and its choice in backends.load."""

import time
from pathlib import Path

import pytest
import torch

from ai_writer.backends import LoadError, load
from ai_writer.models.rwkv4 import RWKV4, RWKV4Config, init_weights
from ai_writer.models.tokenizer import VocabError
from ai_writer.models.world_tokenizer import (
    BUNDLED_VOCAB,
    WORLD_ENTRIES,
    WORLD_VOCAB_SIZE,
    WorldTokenizer,
    default_vocab_path,
    read_world_vocab,
)
from tests.helpers import write_checkpoint

TEXTS = [
    "第一章 风起\n\n　　夜色如墨，长街尽头传来一声马嘶。“谁？”他低声问道——无人应答。",
    "Hello, world! It's 3:45 p.m.; the café's crème brûlée costs €4.50 (naïve, isn't it?)\n\tdef f(x): return x**2",
    "Emoji: 😀👍🏽 👩‍👩‍👧‍👦 🇨🇳🇺🇸 ❤️‍🔥 🧑🏿‍🚀 and keycaps 1️⃣#️⃣",
    "Rare CJK: 𠀀𠀁𪚥𰻞𱁬 龘靐齉 㐀䶵 丂丄丅 鿿 ㊙️ 々〆〤 ｶﾀｶﾅ ＡＢＣ１２３",
    "Mixed 中英 text with numbers 12345 and 全角，半角, punctuation…… 《书名》【注】『引号』 ~!@#$%^&*()_+",
    "     many    spaces\n\n\n\nand\r\nwindows lines\u200b\u00a0\ufeff zero-width",
    "Русский текст, ελληνικά, العربية, עברית, हिन्दी, ไทย, 한국어, 日本語のかな",
    "",
]


@pytest.fixture(scope="module")
def tokenizer():
    return WorldTokenizer.default()


@pytest.fixture(scope="module")
def reference():
    from rwkv.rwkv_tokenizer import TRIE_TOKENIZER

    path = Path(__import__("rwkv").__file__).parent / "rwkv_vocab_v20230424.txt"
    return TRIE_TOKENIZER(str(path))


def test_the_shipped_vocabulary_is_the_packages(tokenizer):
    import rwkv

    package_copy = Path(rwkv.__file__).parent / "rwkv_vocab_v20230424.txt"
    assert BUNDLED_VOCAB.read_bytes() == package_copy.read_bytes()
    assert default_vocab_path() == BUNDLED_VOCAB
    tokens = read_world_vocab(BUNDLED_VOCAB)
    assert len(tokens) == WORLD_ENTRIES and min(tokens) == 1 and max(tokens) == WORLD_ENTRIES
    assert tokenizer.vocab_size == WORLD_VOCAB_SIZE


def test_the_vocabulary_reads_like_the_packages(tokenizer, reference):
    assert set(reference.idx2token) == set(range(1, WORLD_ENTRIES + 1))
    assert all(tokenizer.id_to_bytes[i] == value for i, value in reference.idx2token.items())


@pytest.mark.parametrize("index", range(len(TEXTS)))
def test_same_ids_as_the_package(tokenizer, reference, index):
    text = TEXTS[index]
    ids = tokenizer.encode(text)
    assert ids == reference.encode(text)
    assert tokenizer.decode(ids) == text


def test_same_ids_on_a_long_mixed_text(tokenizer, reference):
    text = "".join(TEXTS) * 40
    assert tokenizer.encode(text) == reference.encode(text)


def test_encoding_100k_characters_is_fast(tokenizer):
    text = ("".join(TEXTS[:5]) * 400)[:100_000]
    started = time.perf_counter()
    ids = tokenizer.encode(text)
    seconds = time.perf_counter() - started
    assert tokenizer.decode(ids) == text
    assert seconds < 2.0, f"{seconds:.2f} s for 100k characters"


def test_stream_decoder_never_splits_a_character(tokenizer):
    text = TEXTS[2] + TEXTS[3]
    ids = tokenizer.encode(text)
    pieces = [tokenizer.id_to_bytes[i] for i in ids]
    assert any(len(p) and not _is_utf8(p) for p in pieces), "the text should have characters spanning tokens"
    decoder = tokenizer.stream_decoder()
    out = []
    for token_id in ids:
        piece = decoder.feed(token_id)
        assert "\ufffd" not in piece
        out.append(piece)
    assert "".join(out) == text
    assert decoder.flush() == ""


def test_stream_decoder_holds_a_partial_character_and_flush_reports_it(tokenizer):
    emoji = "😀".encode()  # 4 bytes
    byte_ids = [tokenizer.encode_bytes(bytes([b]))[0] for b in emoji]
    decoder = tokenizer.stream_decoder()
    assert [decoder.feed(i) for i in byte_ids[:3]] == ["", "", ""]
    assert decoder.feed(byte_ids[3]) == "😀"
    decoder.feed(byte_ids[0])
    assert decoder.flush() == "\ufffd"


def test_interface_of_the_char_tokenizer(tokenizer):
    assert tokenizer.banned_ids[0] == 0  # end of text is never generated
    control = {i for i, value in enumerate(tokenizer.id_to_bytes) if any(b < 0x20 and b not in b"\n\t" or b == 0x7F for b in value)}
    assert set(tokenizer.banned_ids[1:]) == set(range(WORLD_ENTRIES + 1, WORLD_VOCAB_SIZE)) | control
    assert {tokenizer.encode_bytes(bytes([b]))[0] for b in (0x00, 0x02, 0x1B, 0x0D, 0x7F)} <= control  # raw bytes
    assert not {tokenizer.encode(c)[0] for c in "\n\t 。a"} & set(tokenizer.banned_ids)  # newline and tab are written
    assert tokenizer.char_to_id["\n"] == tokenizer.encode("\n")[0]
    assert tokenizer.char_to_id["，"] == tokenizer.encode("，")[0]
    assert all(tokenizer.encode(c) == [i] for c, i in list(tokenizer.char_to_id.items())[::97])
    assert tokenizer.decode([0]) == ""  # end of text decodes to nothing


def test_a_malformed_vocabulary_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 'a' 1\n2 'bc' 3\n", encoding="utf-8")
    with pytest.raises(VocabError, match=r"bad.txt: line 2"):
        read_world_vocab(path)


# -- backends.load picks the tokenizer ------------------------------------------------------------


def _rwkv4_file(folder: Path, rows: int, name: str) -> Path:
    model = init_weights(RWKV4(RWKV4Config(1, 16, rows)), seed=0)
    return write_checkpoint(folder / name, {k: v.detach().clone() for k, v in model.state_dict().items()})


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_65536_row_model_without_vocab_json_gets_the_world_tokenizer(tmp_path, suffix):
    path = _rwkv4_file(tmp_path, WORLD_VOCAB_SIZE, f"world{suffix}")
    engine = load(path, backend="torch", device="cpu")
    assert isinstance(engine.tokenizer, WorldTokenizer)
    assert engine.info.architecture == "rwkv4"
    ids = engine.tokenizer.encode("你好, world 😀")
    logits, _ = engine.forward([ids], None)
    assert logits.shape == (1, WORLD_VOCAB_SIZE)


def test_a_world_vocab_named_explicitly(tmp_path):
    path = _rwkv4_file(tmp_path, WORLD_VOCAB_SIZE, "m.safetensors")
    engine = load(path, backend="torch", device="cpu", vocab=BUNDLED_VOCAB)
    assert isinstance(engine.tokenizer, WorldTokenizer)
    engine = load(path, backend="torch", device="cpu", vocab="world")
    assert isinstance(engine.tokenizer, WorldTokenizer)


def test_a_vocab_json_beside_a_65536_row_model_wins(tmp_path):
    import json

    path = _rwkv4_file(tmp_path, WORLD_VOCAB_SIZE, "m.safetensors")
    table = {str(i): chr(0x10000 + i) for i in range(WORLD_VOCAB_SIZE)}
    path.with_suffix(".json").write_text(json.dumps(table), encoding="utf-8")
    assert not isinstance(load(path, backend="torch", device="cpu").tokenizer, WorldTokenizer)


def test_a_20b_tokenizer_model_is_one_clear_load_error(tmp_path):
    path = _rwkv4_file(tmp_path, 50277, "pile.safetensors")
    with pytest.raises(LoadError) as caught:
        load(path, backend="torch", device="cpu")
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message and "20B" in message


def test_other_models_without_vocab_still_say_so(tmp_path):
    path = write_checkpoint(tmp_path / "m.safetensors", {"emb.weight": torch.zeros(300, 8)})
    with pytest.raises(LoadError, match="no vocabulary beside it"):
        load(path, backend="torch", device="cpu")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_generation_runs_on_a_world_rwkv4(tmp_path):
    from ai_writer.backends.writing.generation import Chunk, Failed, Finished, GenerationRequest, GenerationService

    engine = load(_rwkv4_file(tmp_path, WORLD_VOCAB_SIZE, "world.safetensors"), backend="torch", device="cpu")
    service = GenerationService(engine)
    try:
        events = list(service.generate(GenerationRequest("第一章 😀\n", n=2, length=12, banned_chars="，"), timeout=120))
    finally:
        service.close()
    assert not [e for e in events if isinstance(e, Failed)]
    finished = events[-1]
    assert isinstance(finished, Finished) and len(finished.texts) == 2
    for index, text in enumerate(finished.texts):
        assert 0 < len(text) <= 12
        assert "".join(e.text for e in events if isinstance(e, Chunk) and e.index == index) == text


def test_a_banned_character_bans_every_token_that_writes_it():
    tokenizer = WorldTokenizer.default()
    banned = set(tokenizer.ids_writing("，"))
    comma = "，".encode("utf-8")
    writers = {i for i, value in enumerate(tokenizer.id_to_bytes) if comma in value}
    assert banned == writers and len(writers) > 1  # the comma alone and longer tokens holding it
    assert tokenizer.char_to_id["，"] in banned
