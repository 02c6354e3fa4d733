"""States on disk: the round trip in the engine's own type, and nothing corrupt, truncated or foreign trusted."""

import os
import zipfile

import numpy as np
import pytest
import torch

from ai_writer.backends.engines.numpy_state import RWKV7NumpyState
from ai_writer.backends.engines.state_rows import state_from_numpy, state_to_numpy
from ai_writer.backends.writing import state_store
from ai_writer.backends.writing.prompt_cache import prefix_hashes
from ai_writer.backends.writing.state_store import StateStore

TEXT = "　　那少年抬头望向远方，只见山峦起伏，云雾缭绕。\n"


def read_state(engine, text=TEXT):
    ids = engine.tokenizer.encode(text)
    logits, state = engine.forward([ids], None)
    return prefix_hashes(np.asarray(ids), [len(ids)])[len(ids)], len(ids), state, logits[0]


def same_state(a, b):
    assert type(a) is type(b) and len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and tuple(x.shape) == tuple(y.shape)
        assert torch.equal(x, y) if isinstance(x, torch.Tensor) else np.array_equal(x, y)


@pytest.fixture
def store(tmp_path, tiny_model):
    return StateStore(tmp_path / "states", tiny_model, max_bytes=64 << 20)


def test_a_state_comes_back_as_it_went_in_as_the_engines_own_type(store, tiny_engine):
    key, n, state, logits = read_state(tiny_engine)
    assert store.get(key, n, tiny_engine.zero_state(1)) is None  # nothing yet
    assert store.put(key, n, state, logits)
    path = store.path_for(key, n)
    assert path.parent.parent == store.folder and path.parent.name == store.model_hash[:16]
    assert not list(path.parent.glob("*.tmp"))  # written through a temporary file, renamed
    got_state, got_logits = store.get(key, n, tiny_engine.zero_state(1))
    same_state(got_state, state)
    assert got_logits.dtype == np.float32 and np.array_equal(got_logits, logits)
    assert store.lengths() == {n}
    # the state read back continues the text as the one never written does
    more = tiny_engine.tokenizer.encode("天")
    assert np.allclose(tiny_engine.forward([more], got_state)[0], tiny_engine.forward([more], state)[0], atol=1e-6)


def test_numpy_and_integer_states_stay_what_they_are(store, fake_engine):
    numpy_state = RWKV7NumpyState(*(np.random.default_rng(1).standard_normal(s).astype(np.float32)
                                    for s in [(2, 1, 8), (2, 1, 2, 4, 4), (2, 1, 8)]))
    store.put("a" * 40, 5, numpy_state, np.ones(7, np.float32))
    got, _ = store.get("a" * 40, 5, RWKV7NumpyState(*(np.zeros_like(a) for a in numpy_state)))
    same_state(got, numpy_state)
    key, n, ids_state, logits = read_state(fake_engine)  # the fake engine's state is int64 token ids
    store.put(key, n, ids_state, logits)
    same_state(store.get(key, n, fake_engine.zero_state(1))[0], ids_state)


def test_state_to_and_from_numpy_keeps_dtype_and_type():
    like = (torch.zeros(2, 1, 4, dtype=torch.bfloat16), torch.zeros(1, 1, 3, dtype=torch.long))
    arrays = state_to_numpy((torch.full((2, 1, 4), 0.5, dtype=torch.bfloat16), torch.tensor([[[1, 2, 3]]])))
    assert [a.dtype for a in arrays] == [np.float32, np.int64]
    back = state_from_numpy(like, arrays)
    assert type(back) is tuple and back[0].dtype == torch.bfloat16 and back[1].dtype == torch.long
    assert float(back[0][0, 0, 0]) == 0.5 and back[1].tolist() == [[[1, 2, 3]]]


def write_one(store, engine):
    key, n, state, logits = read_state(engine)
    store.put(key, n, state, logits)
    return key, n, store.path_for(key, n)


def test_a_flipped_byte_is_found_and_the_file_deleted(store, tiny_engine):
    key, n, path = write_one(store, tiny_engine)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:  # flip a byte inside the first state array's data
        info = z.getinfo("a0.npy")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    assert store.get(key, n, tiny_engine.zero_state(1)) is None
    assert not path.exists()


def test_a_whole_file_with_other_numbers_than_its_header_says_is_a_miss(store, tiny_engine):
    key, n, path = write_one(store, tiny_engine)
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["a1"] = arrays["a1"] + np.float32(1e-3)  # a well-formed archive, its digest no longer agrees
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    assert store.get(key, n, tiny_engine.zero_state(1)) is None and not path.exists()


def test_a_truncated_file_is_a_miss(store, tiny_engine):
    key, n, path = write_one(store, tiny_engine)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert store.get(key, n, tiny_engine.zero_state(1)) is None and not path.exists()
    path.write_bytes(b"")
    assert store.get(key, n, tiny_engine.zero_state(1)) is None and not path.exists()


def test_a_file_of_another_model_prefix_or_shape_is_not_trusted(store, tiny_engine, tmp_path, tiny_model):
    key, n, path = write_one(store, tiny_engine)
    other_model = tmp_path / "other.safetensors"
    other_model.write_bytes(tiny_model.read_bytes() + b"\0")  # other bytes: another sha256
    other = StateStore(store.folder, other_model, store.max_bytes)
    assert other.model_hash != store.model_hash
    other_path = other.path_for(key, n)
    other_path.parent.mkdir(parents=True)
    os.replace(path, other_path)  # this model's state where the other model's would be
    assert other.get(key, n, tiny_engine.zero_state(1)) is None and not other_path.exists()

    key, n, path = write_one(store, tiny_engine)
    os.replace(path, store.path_for("b" * 40, n))  # named for another prefix
    assert store.get("b" * 40, n, tiny_engine.zero_state(1)) is None
    key, n, path = write_one(store, tiny_engine)
    os.replace(path, store.path_for(key, n + 1))  # for another length
    assert store.get(key, n + 1, tiny_engine.zero_state(1)) is None

    key, n, path = write_one(store, tiny_engine)
    wider = tuple(torch.zeros(a.shape[0], 1, *a.shape[2:-1], a.shape[-1] * 2) for a in tiny_engine.zero_state(1))
    assert store.get(key, n, wider) is None and not path.exists()  # other shapes: another model's
    key, n, path = write_one(store, tiny_engine)
    assert store.get(key, n, tiny_engine.zero_state(1)[:2]) is None  # other array count


def test_files_past_the_bound_go_least_recently_used_first(tmp_path, tiny_model, tiny_engine):
    key, n, state, logits = read_state(tiny_engine)
    probe = StateStore(tmp_path / "probe", tiny_model, 1 << 30)
    probe.put(key, n, state, logits)
    one = probe.size()
    store = StateStore(tmp_path / "states", tiny_model, max_bytes=3 * one + one // 2)
    keys = [f"{i:040x}" for i in range(6)]
    for age, prefix in enumerate(keys[:3]):
        assert store.put(prefix, n, state, logits)
        os.utime(store.path_for(prefix, n), ns=(10**18 + age * 10**9,) * 2)  # oldest first
    assert store.get(keys[0], n, tiny_engine.zero_state(1)) is not None  # used now: the newest
    for prefix in keys[3:5]:
        store.put(prefix, n, state, logits)
        assert store.size() <= store.max_bytes
    held = {p for p in keys if store.has(p, n)}
    assert held == {keys[0], keys[3], keys[4]}  # 1 and 2 were the least recently used
    assert not store.put(keys[5], n, state, logits) or store.size() <= store.max_bytes
    tiny = StateStore(tmp_path / "tiny", tiny_model, max_bytes=one // 2)
    assert not tiny.put(keys[0], n, state, logits) and tiny.size() == 0  # one state bigger than the bound


def test_the_model_is_hashed_once_and_again_when_its_file_changes(tmp_path, tiny_model, monkeypatch):
    model = tmp_path / "model.safetensors"
    model.write_bytes(tiny_model.read_bytes())
    first = StateStore(tmp_path / "states", model, 1 << 20).model_hash
    calls = []
    real = state_store.file_sha256
    monkeypatch.setattr(state_store, "file_sha256", lambda path: calls.append(path) or real(path))
    again = StateStore(tmp_path / "states", model, 1 << 20)
    assert again.known_model_hash() == first and again.model_hash == first and calls == []
    model.write_bytes(model.read_bytes() + b"\0")  # another size (and mtime): hashed again
    changed = StateStore(tmp_path / "states", model, 1 << 20)
    assert changed.known_model_hash() is None
    assert changed.model_hash != first and len(calls) == 1


def test_a_folder_that_cannot_be_written_is_noted_once_and_never_raises(tmp_path, tiny_model, tiny_engine):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    store = StateStore(blocked, tiny_model, 1 << 20)
    key, n, state, logits = read_state(tiny_engine)
    assert not store.put(key, n, state, logits)
    assert "states are not kept on disk" in store.problem and str(blocked) in store.problem
    assert "\n" not in store.problem
    assert store.get(key, n, tiny_engine.zero_state(1)) is None and store.lengths() == set()


def test_the_default_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(state_store.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert StateStore(None, "m.safetensors", 1).folder == tmp_path / "elsewhere"
    monkeypatch.delenv(state_store.CACHE_ENV)
    assert state_store.default_state_dir().parts[-2:] == ("ai-writer-studio", "states")
