"""Every file layout users keep RWKV-7 models in, opened by backends.load as the studio opens them (backend
"auto": the fast CPU pair), with the tokenizer each one carries or implies, exact against the BlinkDL file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ai_writer.backends import LoadError, load
from ai_writer.backends.files.gguf_write import write_gguf
from ai_writer.backends.files.hf_write import write_hf_folder
from ai_writer.models.world_tokenizer import WORLD_VOCAB_FILE, WORLD_VOCAB_SIZE
from tests.helpers import REAL_VOCAB, random_rwkv7_weights, write_checkpoint

PROMPT = "第一章 风起\n他推开门，"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A random World-vocabulary RWKV-7 in BlinkDL's layout, and the logits it gives after PROMPT."""
    folder = tmp_path_factory.mktemp("world")
    weights = random_rwkv7_weights(n_layer=2, n_embd=64, vocab_size=WORLD_VOCAB_SIZE, seed=8)
    source = write_checkpoint(folder / "source.pth", weights)
    engine = load(source, backend="torch", device="cpu")
    ids = engine.tokenizer.encode(PROMPT)
    return folder, weights, ids, engine.forward([ids], None)[0][0]


def logits_of(path, ids, **options):
    engine = load(path, device="cpu", **options)
    return engine, engine.forward([ids], None)[0][0]


@pytest.mark.parametrize("dtype, tolerance", [("f32", 1e-5), ("q8_0", 0.2)])
def test_a_gguf_file_opens_with_the_world_tokenizer_it_carries(world, dtype, tolerance):
    folder, weights, ids, want = world
    path = write_gguf(weights, folder / f"model-{dtype}.gguf", dtype=dtype)
    engine, got = logits_of(path, ids)
    assert type(engine.tokenizer).__name__ == "WorldTokenizer" and engine.tokenizer.encode(PROMPT) == ids
    assert engine.info.architecture == "rwkv7" and engine.info.backend in ("torch+native", "torch+onnx")
    assert np.abs(got - want).max() <= tolerance


def test_a_hugging_face_folder_opens_by_its_folder_its_config_or_its_weights(world):
    folder, weights, ids, want = world
    hf = write_hf_folder(weights, folder / "rwkv7-hf")  # config.json, model.safetensors, rwkv_vocab_v20230424.txt
    (hf / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "RwkvTokenizer"}), encoding="utf-8")
    (hf / "special_tokens_map.json").write_text("{}", encoding="utf-8")  # JSONs that are no vocabulary
    for path in (hf, hf / "config.json", hf / "model.safetensors"):
        engine, got = logits_of(path, ids)
        assert engine.info.model_path == str(hf)
        assert engine.tokenizer_source.endswith(WORLD_VOCAB_FILE)
        assert np.abs(got - want).max() <= 1e-5
    (hf / WORLD_VOCAB_FILE).unlink()  # no vocabulary file: its 65,536 rows still say World
    engine, got = logits_of(hf, ids)
    assert type(engine.tokenizer).__name__ == "WorldTokenizer" and np.abs(got - want).max() <= 1e-5


def test_a_sharded_hugging_face_folder(world):
    folder, weights, ids, want = world
    hf = write_hf_folder(weights, folder / "rwkv7-shards", shard_bytes=4 << 20)
    assert len(list(hf.glob("model-*.safetensors"))) > 1
    assert np.abs(logits_of(hf, ids)[1] - want).max() <= 1e-5


def test_a_char_model_in_gguf_takes_its_vocabulary_from_beside_it(tmp_path):
    from ai_writer.models.tokenizer import CharTokenizer

    chars = CharTokenizer.from_file(REAL_VOCAB)
    weights = random_rwkv7_weights(n_layer=2, n_embd=64, vocab_size=chars.vocab_size, seed=9)
    source = write_checkpoint(tmp_path / "novel.safetensors", weights)
    shutil.copy(REAL_VOCAB, source.with_suffix(".json"))
    path = write_gguf(weights, tmp_path / "novel.gguf")
    ids = chars.encode(PROMPT)
    want = load(source, backend="torch", device="cpu").forward([ids], None)[0][0]
    engine, got = logits_of(path, ids)
    assert engine.tokenizer_source == str(path.with_suffix(".json")) and np.abs(got - want).max() <= 1e-5


def test_each_format_is_refused_in_its_own_words(tmp_path, world):
    folder, weights, _, _ = world
    other = tmp_path / "gpt2"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    write_checkpoint(other / "model.safetensors", {"wte.weight": weights["emb.weight"][:10]})
    messages = {}
    for name, path in (("hf", other), ("gguf", tmp_path / "cut.gguf")):
        if name == "gguf":
            whole = write_gguf(weights, tmp_path / "whole.gguf").read_bytes()
            path.write_bytes(whole[: len(whole) // 3])
        with pytest.raises(LoadError) as caught:
            load(path, device="cpu")
        messages[name] = str(caught.value)
    from ai_writer.models.hf_layout import to_fla

    lone = write_checkpoint(tmp_path / "lone" / "model.safetensors", to_fla(weights)) if (tmp_path / "lone").mkdir() is None else None
    with pytest.raises(LoadError, match="Hugging Face / fla layout without their config.json"):
        load(lone, device="cpu")
    assert "gpt2" in messages["hf"] and "vocabulary" not in messages["hf"]
    assert str(tmp_path / "cut.gguf") in messages["gguf"] and "vocabulary" not in messages["gguf"]
    assert all("\n" not in m for m in messages.values())


def test_convert_writes_gguf_and_hugging_face_copies_that_open_the_same(tmp_path, capsys, monkeypatch):
    """`ai-writer convert MODEL OUT.gguf` / `OUT_FOLDER`: a character model keeps its vocabulary beside the GGUF
    (and inside it as tokens); both copies give the source's logits."""
    from ai_writer.models.gguf_file import gguf_summary
    from ai_writer.models.tokenizer import CharTokenizer
    from ai_writer.studio.cli import main

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    chars = CharTokenizer.from_file(REAL_VOCAB)
    weights = random_rwkv7_weights(n_layer=2, n_embd=64, vocab_size=chars.vocab_size, seed=12)
    source = write_checkpoint(tmp_path / "novel.pth", weights)
    shutil.copy(REAL_VOCAB, source.with_suffix(".json"))
    ids = chars.encode(PROMPT)
    want = load(source, backend="torch", device="cpu").forward([ids], None)[0][0]
    for out, extra in ((tmp_path / "novel.gguf", ["--type", "f32"]), (tmp_path / "novel-hf", [])):
        assert main(["convert", str(source), str(out), *extra]) == 0, capsys.readouterr().err
        printed = capsys.readouterr().out
        assert str(out) in printed and "RWKV-7 2 x 64" in printed
        assert np.abs(logits_of(out, ids)[1] - want).max() <= 1e-5
    summary = gguf_summary(tmp_path / "novel.gguf")
    as_text = [t.decode() if isinstance(t, bytes) else t for t in summary.tokens]
    assert summary.vocabulary == "own" and as_text[: chars.vocab_size] == chars.chars  # llama.cpp gets the characters
    assert main(["convert", str(source), str(tmp_path / "novel.bin8")]) == 2
    assert "write a .safetensors or .gguf file, or a folder" in capsys.readouterr().err
