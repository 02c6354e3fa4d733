"""Reading model files safely (models.checkpoint) and opening them with a vocabulary (backends.load)."""

from __future__ import annotations

import builtins
import json
import os
import pickle
import shutil

import pytest
import torch

from ai_writer.backends import LoadError, load
from ai_writer.backends.files.vocab import find_vocab
from ai_writer.models.checkpoint import ModelFileError, detect_architecture, embedding_rows, load_model, peek_keys, read_weights
from tests.helpers import REAL_VOCAB, random_rwkv7_weights, write_checkpoint

VOCAB = 50
TOKENS = torch.tensor([[1, 5, 9, 2, 7, 3]])


@pytest.fixture(scope="module")
def weights():
    return random_rwkv7_weights(n_layer=2, n_embd=64, vocab_size=VOCAB, seed=1)


def logits_of(model):
    with torch.inference_mode():
        return model(TOKENS, None, full_output=True)[0]


def write_small_vocab(path, size=VOCAB):
    path.write_text(json.dumps({str(i): chr(0x4E00 + i) for i in range(size)}, ensure_ascii=False), encoding="utf-8")
    return path


def refused(path):
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message
    return message


# -- both formats --------------------------------------------------------------------


def test_safetensors_and_pth_give_identical_logits(tmp_path, weights):
    st = load_model(write_checkpoint(tmp_path / "m.safetensors", weights))
    pth = load_model(write_checkpoint(tmp_path / "m.pth", weights))
    assert st.config == pth.config
    assert (st.config.n_layer, st.config.n_embd, st.config.vocab_size) == (2, 64, VOCAB)
    a, b = logits_of(st), logits_of(pth)
    assert a.shape == (1, TOKENS.shape[1], VOCAB)
    assert torch.equal(a, b)
    # and a model with other weights really does give other logits
    other = load_model(write_checkpoint(tmp_path / "o.safetensors", random_rwkv7_weights(2, 64, VOCAB, seed=2)))
    assert not torch.allclose(a, logits_of(other))


def test_pth_with_state_dict_wrapper(tmp_path, weights):
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": weights, "epoch": 3}, path)
    assert torch.equal(logits_of(load_model(path)), logits_of(load_model(write_checkpoint(tmp_path / "m.pth", weights))))


def test_legacy_pth_format_loads(tmp_path, weights):
    path = tmp_path / "legacy.pth"
    torch.save(weights, path, _use_new_zipfile_serialization=False)
    assert set(read_weights(path)) == set(weights)


def test_loaded_model_is_in_eval_mode(tmp_path, weights):
    model = load_model(write_checkpoint(tmp_path / "m.safetensors", weights))
    assert not model.training


# -- pickles that would run code -----------------------------------------------------


class WritesMarker:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",))


class RunsShell:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("payload", [WritesMarker, RunsShell], ids=["exec", "os.system"])
def test_pickle_that_would_run_code_is_refused_before_it_runs(tmp_path, weights, payload):
    # first prove the payload is live: an unguarded load runs it
    control = tmp_path / "control"
    control.mkdir()
    control_marker = control / "MARKER"
    live = control / "live.pth"
    torch.save({"x": payload(control_marker)}, live)
    torch.load(live, weights_only=False)
    assert control_marker.exists()

    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pth"
    torch.save({**weights, "extra": payload(marker)}, path)
    message = refused(path)
    assert "refused" in message
    assert ("exec" if payload is WritesMarker else "system") in message
    assert not marker.exists()


def test_plain_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "plain.pth"
    path.write_bytes(pickle.dumps({"x": WritesMarker(marker)}, protocol=2))
    assert "exec" in refused(path)
    assert not marker.exists()


# -- damaged or foreign files --------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file(tmp_path, weights, suffix):
    good = write_checkpoint(tmp_path / f"good{suffix}", weights)
    path = tmp_path / f"cut{suffix}"
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    refused(path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_garbage_bytes(tmp_path, suffix):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(bytes(range(256)) * 16 + os.urandom(4096))
    refused(path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    refused(path)


def zip_bomb(path, weights, unpacked: int, claimed: int | None = None):
    """A real .pth of `weights` whose first tensor record is replaced by `unpacked` zero bytes, deflated
    (a few KB per MiB). With `claimed`, the zip's headers then say that record holds `claimed` bytes."""
    import struct
    import zipfile

    source = write_checkpoint(path.with_name("source.pth"), weights)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w") as new:
        for info in old.infolist():
            if info.filename.endswith("/data/0"):
                big = zipfile.ZipInfo(info.filename)
                big.compress_type = zipfile.ZIP_DEFLATED
                with new.open(big, "w") as f:
                    for _ in range(unpacked >> 20):
                        f.write(bytes(2**20))
            else:
                new.writestr(info, old.read(info))
    if claimed is not None:  # the uncompressed size in the local header (offset 22) and central directory (24)
        data = bytearray(path.read_bytes())
        # (signature, where the size is, where the name's length is, where the name starts)
        for signature, size_at, length_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
            start = 0
            while (start := data.find(signature, start)) >= 0:
                (length,) = struct.unpack_from("<H", data, start + length_at)
                if data[start + name_at : start + name_at + length].endswith(b"/data/0"):
                    struct.pack_into("<I", data, start + size_at, claimed)
                start += 4
        path.write_bytes(bytes(data))
    return path


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path, weights, monkeypatch):
    path = zip_bomb(tmp_path / "bomb.pth", weights, unpacked=64 * 2**20)
    assert path.stat().st_size < 2**20  # 64 MiB of zeros in well under 1 MiB
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran on a zip bomb"))
    message = refused(path)
    assert "zip bomb" in message and "64.0 MiB" in message and "nothing was unpacked" in message


def test_a_zip_claiming_4_gib_is_refused_from_its_directory(tmp_path, weights, monkeypatch):
    import zipfile

    path = zip_bomb(tmp_path / "claims.pth", weights, unpacked=2**20, claimed=2**32 - 2**16)
    assert max(m.file_size for m in zipfile.ZipFile(path).infolist()) == 2**32 - 2**16
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran on a zip bomb"))
    assert "4.0 GiB" in refused(path)
    assert peek_keys(path) is None and embedding_rows(path) is None  # the peeks before loading refuse it too


def test_an_ordinary_pth_passes_the_size_check_and_the_cap_applies(tmp_path, weights, monkeypatch):
    import ai_writer.models.checkpoint as checkpoint

    path = write_checkpoint(tmp_path / "plain.pth", weights)
    assert read_weights(path).keys() == weights.keys()
    monkeypatch.setattr(checkpoint, "MAX_MODEL_BYTES", path.stat().st_size // 2)
    assert "zip bomb" in refused(path)


def test_wrong_suffix(tmp_path, weights):
    good = write_checkpoint(tmp_path / "m.safetensors", weights)
    path = tmp_path / "m.txt"
    shutil.copy(good, path)
    assert ".txt" in refused(path)


def test_missing_file(tmp_path):
    assert "no such" in refused(tmp_path / "absent.safetensors")


def test_folder_instead_of_file(tmp_path):
    path = tmp_path / "folder.pth"
    path.mkdir()
    refused(path)


def test_unknown_architecture(tmp_path):
    path = write_checkpoint(tmp_path / "other.safetensors", {"encoder.layer.0.weight": torch.zeros(4, 4)})
    assert "unknown model architecture" in refused(path)


def test_unsupported_known_architecture(tmp_path):
    path = write_checkpoint(
        tmp_path / "aiwriter-2023.pth", {"emb.weight": torch.zeros(8, 4), "blocks.0.att.time_mix_k": torch.zeros(4)}
    )
    assert "aiwriter-2023 models are not supported" in refused(path)


def test_incomplete_v1_names_the_architecture_and_the_missing_tensor(tmp_path):
    path = write_checkpoint(
        tmp_path / "v1.pth", {"tok_emb.weight": torch.zeros(8, 4), "blocks.0.attn.time_w": torch.zeros(1, 8)}
    )
    message = refused(path)
    assert "AI-Writer v1" in message and "blocks.0.mlp.key.weight" in message


def test_pth_holding_a_tensor_not_a_dict(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    refused(path)


def test_pth_holding_no_tensors(tmp_path):
    path = tmp_path / "numbers.pth"
    torch.save({"a": 1, "b": [2, 3]}, path)
    refused(path)


@pytest.mark.parametrize(
    "key, shape",
    [
        ("blocks.0.att.r_k", (3, 3)),
        ("blocks.0.att.key.weight", (64, 32)),
        ("blocks.1.att.r_k", (4, 16)),
        ("head.weight", (VOCAB - 1, 64)),
        ("emb.weight", (VOCAB,)),
    ],
)
def test_misshapen_tensor(tmp_path, weights, key, shape):
    bad = dict(weights)
    bad[key] = torch.zeros(shape)
    message = refused(write_checkpoint(tmp_path / "bad.safetensors", bad))
    assert "misshapen" in message


@pytest.mark.parametrize("key", ["blocks.1.ffn.key.weight", "emb.weight", "blocks.0.att.w1", "head.weight"])
def test_missing_tensor(tmp_path, weights, key):
    bad = {k: v for k, v in weights.items() if k != key}
    refused(write_checkpoint(tmp_path / "bad.pth", bad))


def test_misshapen_message_names_the_tensor(tmp_path, weights):
    bad = dict(weights)
    bad["blocks.0.att.key.weight"] = torch.zeros(64, 32)
    assert "blocks.0.att.key.weight" in refused(write_checkpoint(tmp_path / "bad.pth", bad))


def test_extra_tensor(tmp_path, weights):
    refused(write_checkpoint(tmp_path / "extra.safetensors", {**weights, "blocks.0.att.surplus": torch.zeros(2)}))


# -- detect_architecture -------------------------------------------------------------


def _keys(*names):
    return {name: torch.zeros(1) for name in names}


@pytest.mark.parametrize(
    "keys, expected",
    [
        (_keys("emb.weight", "blocks.0.att.r_k", "blocks.0.att.w0", "blocks.0.att.k_k"), "rwkv7"),
        (_keys("emb.weight", "blocks.0.ln0.weight", "blocks.0.att.time_decay", "blocks.0.att.time_first"), "rwkv4"),
        (_keys("tok_emb.weight", "blocks.0.attn.time_w", "head_q.weight"), "aiwriter-v1"),
        (_keys("emb.weight", "blocks.0.att.time_mix", "blocks.0.ffnPre.key.weight"), "aiwriter-v2"),
        (_keys("emb.weight", "blocks.0.att.r_k"), "unknown"),
        (_keys("model.layers.0.self_attn.q_proj.weight"), "unknown"),
        ({}, "unknown"),
    ],
    ids=["rwkv7", "rwkv4", "v1", "v2", "partial-rwkv7", "llama", "empty"],
)
def test_detect_architecture(keys, expected):
    assert detect_architecture(keys) == expected


def test_detect_architecture_of_a_real_key_set(weights):
    assert detect_architecture(weights) == "rwkv7"


# -- backends.load -------------------------------------------------------------------


def test_load_model_with_vocab_beside_it(tiny_model):
    engine = load(tiny_model, backend="torch", device="cpu")
    assert engine.tokenizer.vocab_size == 8849
    assert engine.info.vocab_size == 8849
    assert engine.info.device == "cpu"
    logits, state = engine.forward([engine.tokenizer.encode("\n第一章")], None)
    assert logits.shape == (1, 8849)


def test_load_finds_vocab_json_in_the_folder(tmp_path, weights):
    path = write_checkpoint(tmp_path / "m.safetensors", weights)
    vocab = write_small_vocab(tmp_path / "vocab.json")
    assert find_vocab(path) == vocab
    engine = load(path, device="cpu")
    assert engine.tokenizer.vocab_size == VOCAB


def test_load_prefers_the_model_stem_vocab(tmp_path, weights):
    path = write_checkpoint(tmp_path / "m.safetensors", weights)
    write_small_vocab(tmp_path / "vocab.json", size=VOCAB + 1)
    stem_vocab = write_small_vocab(tmp_path / "m.json")
    assert find_vocab(path) == stem_vocab
    assert load(path, device="cpu").tokenizer.vocab_size == VOCAB


def test_load_with_an_explicit_vocab(tmp_path, weights):
    path = write_checkpoint(tmp_path / "m.pth", weights)
    vocab = write_small_vocab(tmp_path / "words.json")
    assert find_vocab(path) is None
    assert load(path, device="cpu", vocab=vocab).tokenizer.vocab_size == VOCAB


def test_vocab_size_mismatch(tmp_path, weights):
    path = write_checkpoint(tmp_path / "m.safetensors", weights)
    shutil.copy(REAL_VOCAB, path.with_suffix(".json"))
    with pytest.raises(LoadError) as caught:
        load(path, device="cpu")
    message = str(caught.value)
    assert str(path) in message
    assert str(VOCAB) in message and "8849" in message


def test_missing_vocab(tmp_path, weights):
    path = write_checkpoint(tmp_path / "m.safetensors", weights)
    with pytest.raises(LoadError) as caught:
        load(path, device="cpu")
    assert str(path) in str(caught.value)
    assert "vocab" in str(caught.value)


def test_bad_vocab_file(tmp_path, weights):
    path = write_checkpoint(tmp_path / "m.safetensors", weights)
    vocab = path.with_suffix(".json")
    vocab.write_text("{not json", encoding="utf-8")
    with pytest.raises(LoadError, match="m.json"):
        load(path, device="cpu")


def test_missing_model_file(tmp_path):
    path = tmp_path / "absent.safetensors"
    write_small_vocab(tmp_path / "absent.json")
    with pytest.raises(LoadError) as caught:
        load(path, device="cpu")
    assert str(path) in str(caught.value)


def test_broken_model_file_is_a_load_error(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00" * 100)
    write_small_vocab(tmp_path / "broken.json")
    with pytest.raises(LoadError, match="broken.safetensors"):
        load(path, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_lists_available(tmp_path, weights):
    path = write_checkpoint(tmp_path / "m.safetensors", weights)
    write_small_vocab(tmp_path / "m.json")
    with pytest.raises(LoadError) as caught:
        load(path, device="cuda")
    assert "available: cpu" in str(caught.value)


def test_unknown_device(tmp_path, weights):
    path = write_checkpoint(tmp_path / "m.safetensors", weights)
    write_small_vocab(tmp_path / "m.json")
    with pytest.raises(LoadError) as caught:
        load(path, device="tpu")
    assert "'tpu'" in str(caught.value)
    assert "available:" in str(caught.value)


def test_unknown_backend_and_dtype(tmp_path, weights):
    path = write_checkpoint(tmp_path / "m.safetensors", weights)
    write_small_vocab(tmp_path / "m.json")
    with pytest.raises(LoadError, match="backend"):
        load(path, backend="tensorrt", device="cpu")
    with pytest.raises(LoadError, match="dtype"):
        load(path, device="cpu", dtype="int4")
