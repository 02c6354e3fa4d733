"""backends.load finds out what a model path is before it looks for a vocabulary (models.model_file.identify),
then picks the tokenizer that fits the model's token rows (backends.files.vocab.choose_tokenizer)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ai_writer.backends import LoadError, load
from ai_writer.models.checkpoint import ModelFileError, load_model
from ai_writer.models.model_file import identify
from ai_writer.models.world_tokenizer import WORLD_VOCAB_FILE, WORLD_VOCAB_SIZE, default_vocab_path
from tests.helpers import random_rwkv7_weights, write_checkpoint

PROMPT = [[17, 900, 4021, 33, 65000, 12, 7]]


@pytest.fixture(scope="module")
def world_weights():
    return random_rwkv7_weights(n_layer=2, n_embd=64, vocab_size=WORLD_VOCAB_SIZE, seed=3)


def write_unrelated_vocab(path, size=6390):
    path.write_text(json.dumps({str(i): chr(0x20000 + i) for i in range(size)}, ensure_ascii=False), encoding="utf-8")
    return path


def load_error(path, **options) -> str:
    with pytest.raises(LoadError) as caught:
        load(path, backend="torch", device="cpu", **options)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_world_model_with_an_unrelated_vocab_json_beside_it_takes_the_world_tokenizer(tmp_path, world_weights):
    path = write_checkpoint(tmp_path / "world.safetensors", world_weights)
    write_unrelated_vocab(tmp_path / "vocab.json")
    engine = load(path, backend="torch", device="cpu")
    assert type(engine.tokenizer).__name__ == "WorldTokenizer"
    assert "vocab.json beside it has 6390 entries" in engine.tokenizer_note
    assert engine.tokenizer.decode(engine.tokenizer.encode("第一章 He said")) == "第一章 He said"


def test_a_configured_vocabulary_that_does_not_fit_says_world_exists(tmp_path, world_weights):
    path = write_checkpoint(tmp_path / "world.safetensors", world_weights)
    vocab = write_unrelated_vocab(tmp_path / "words.json")
    message = load_error(path, vocab=vocab)
    assert "65536 token rows" in message and "6390 entries" in message and 'vocab = "world"' in message


def test_vocab_world_and_the_world_file_beside_the_model(tmp_path, world_weights):
    path = write_checkpoint(tmp_path / "world.pth", world_weights)
    write_unrelated_vocab(tmp_path / "world.json", size=WORLD_VOCAB_SIZE)  # a JSON of the right size loses to "world"
    assert type(load(path, backend="torch", device="cpu", vocab="world").tokenizer).__name__ == "WorldTokenizer"
    (tmp_path / "world.json").unlink()
    (tmp_path / WORLD_VOCAB_FILE).write_bytes(default_vocab_path().read_bytes())
    engine = load(path, backend="torch", device="cpu")
    assert engine.tokenizer_source.endswith(WORLD_VOCAB_FILE) and engine.tokenizer_note == ""


def test_a_state_file_is_named_as_one_not_as_a_model_missing_its_vocabulary(tmp_path):
    state = {f"blocks.{i}.att.time_state": torch.zeros(2, 64, 64) for i in range(3)}
    for name in ("style.pth", "style.safetensors"):
        message = load_error(write_checkpoint(tmp_path / name, state))
        assert "a state file" in message and "[model] state" in message and "vocabulary" not in message


def test_each_format_gets_its_own_message(tmp_path):
    folder = tmp_path / "empty-folder"
    folder.mkdir()
    assert "a folder with no model in it" in load_error(folder)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert "unknown model file type '.txt'" in load_error(other)
    assert "no such model file" in load_error(tmp_path / "missing.safetensors")
    bare = write_checkpoint(tmp_path / "bare.safetensors", random_rwkv7_weights(n_layer=1, n_embd=64, vocab_size=300))
    message = load_error(bare)
    assert "no vocabulary beside it" in message and WORLD_VOCAB_FILE in message and '"world"' in message


def test_identify_reads_headers_only(tmp_path, world_weights):
    path = write_checkpoint(tmp_path / "world.safetensors", world_weights)
    facts = identify(path)
    assert (facts.format, facts.architecture, facts.vocab_rows) == ("safetensors", "rwkv7", WORLD_VOCAB_SIZE)


def test_an_rwkv7_file_without_layer0_value_mix_loads_as_the_reference_does(tmp_path):
    weights = random_rwkv7_weights(n_layer=3, n_embd=64, vocab_size=300, seed=5)
    full = write_checkpoint(tmp_path / "full.safetensors", weights)
    trimmed = {k: v for k, v in weights.items() if k not in ("blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2")}
    short = write_checkpoint(tmp_path / "short.safetensors", trimmed)
    tokens = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    with torch.inference_mode():
        want = load_model(full)(tokens, None, full_output=True)[0]
        got = load_model(short)(tokens, None, full_output=True)[0]
    assert torch.equal(want, got)  # layer 0 never reads them: its values are v_first
    broken = {k: v for k, v in trimmed.items() if k != "blocks.1.att.v1"}
    with pytest.raises(ModelFileError, match="missing or misshapen"):
        load_model(write_checkpoint(tmp_path / "broken.safetensors", broken))


def test_random_world_models_write_no_control_bytes(tmp_path, world_weights, service_for):
    from ai_writer.backends.writing.generation import Finished, GenerationRequest
    from ai_writer.backends.writing.sampling import SamplingSettings

    path = write_checkpoint(tmp_path / "world.safetensors", world_weights)
    engine = load(path, backend="torch", device="cpu")
    service = service_for(engine)
    request = GenerationRequest("第一章\n", n=4, length=60, sampling=SamplingSettings(temperature=2.0, top_p=1.0, seed=11))
    finished = [e for e in service.generate(request, timeout=60) if isinstance(e, Finished)][0]
    written = "".join(finished.texts)
    assert written and not [c for c in written if ord(c) < 0x20 and c not in "\n\t" or c == "\x7f"]
    assert np.isfinite(engine.forward(PROMPT, None)[0]).all()
