"""State-tuning files (models.state_file) as the start of every text (backends.engines.start_state).

The oracle is the `rwkv` package started as state-tuning runners start it (tests/oracle/rwkv_package_run.py):
each layer's att_kv is its time_state transposed (1, 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ai_writer.backends import LoadError, load
from ai_writer.backends.writing.generation import Finished, GenerationRequest
from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.models.state_file import read_state_file
from tests.helpers import random_rwkv7_weights, write_checkpoint, write_model_with_chars, cjk_chars
from tests.models.rwkv_parity import run_oracle

N_LAYER, N_EMBD, VOCAB = 2, 128, 400


def random_state(n_layer=N_LAYER, n_embd=N_EMBD, seed=0, scale=0.5) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {f"blocks.{i}.att.time_state": torch.randn(n_embd // 64, 64, 64, generator=generator) * scale
            for i in range(n_layer)}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tuned")
    weights = random_rwkv7_weights(N_LAYER, N_EMBD, VOCAB, seed=4)
    path = write_model_with_chars(folder, weights, cjk_chars(VOCAB))
    torch.save(weights, folder / "oracle.pth")
    return path


def test_a_state_file_changes_the_logits_exactly_as_the_package_does(model, tmp_path):
    state_path = tmp_path / "style.pth"
    torch.save(random_state(seed=1), state_path)
    rng = np.random.default_rng(2)
    prompt, steps = rng.integers(0, VOCAB, 64).tolist(), rng.integers(0, VOCAB, 16).tolist()
    oracle = run_oracle(tmp_path, model.parent / "oracle.pth", prompt, steps, "7", state_file=state_path)
    engine = load(model, backend="torch", device="cpu", state=state_path)
    plain = load(model, backend="torch", device="cpu")
    logits, state = engine.forward([prompt], None)
    assert np.abs(logits[0] - oracle["prompt"].numpy()).max() <= 1e-4
    assert np.abs(logits[0] - plain.forward([prompt], None)[0][0]).max() > 1e-2  # the state made a difference
    for token, want in zip(steps, oracle["steps"]):
        logits, state = engine.forward([[token]], state)
        assert np.abs(logits[0] - want.numpy()).max() <= 1e-4


@pytest.mark.parametrize("backend", ["torch+native", "torch+onnx"])
def test_every_cpu_backend_starts_from_the_state(model, tmp_path, backend):
    state_path = tmp_path / "style.safetensors"
    from ai_writer.models.checkpoint import save_safetensors

    save_safetensors(random_state(seed=3), state_path)
    reference = load(model, backend="torch", device="cpu", state=state_path)
    engine = load(model, backend=backend, device="cpu", state=state_path, cache_dir=tmp_path / "cache")
    if hasattr(engine, "wait_for_decode_step"):
        assert engine.wait_for_decode_step(120)
    ids = [[5, 80, 13, 200]]
    want, want_state = reference.forward(ids, None)
    got, got_state = engine.forward(ids, None)
    assert np.abs(want - got).max() <= 1e-4
    step_want = reference.forward([[7]], want_state)[0]
    step_got = engine.forward([[7]], got_state)[0]  # the decode step, from a state read from the tuned start
    assert np.abs(step_want - step_got).max() <= 1e-4
    fresh = engine.forward([[7]], None)[0]  # a one-token text: the step itself starts from the tuned state
    assert np.abs(fresh - reference.forward([[7]], None)[0]).max() <= 1e-4


def test_a_state_for_another_model_says_which_in_one_line(model, tmp_path):
    wrong = tmp_path / "big.pth"
    torch.save(random_state(n_layer=24, n_embd=2048, scale=0.0), wrong)
    with pytest.raises(LoadError) as caught:
        load(model, backend="torch", device="cpu", state=wrong)
    assert str(caught.value) == f"{wrong}: this state is for a 24-layer 2048 model (heads of 64); yours is 2 x 128"
    not_state = write_checkpoint(tmp_path / "model-instead.safetensors", random_rwkv7_weights(1, 64, 50))
    with pytest.raises(LoadError, match="not a state file"):
        load(model, backend="torch", device="cpu", state=not_state)
    gap = random_state()
    gap["blocks.3.att.time_state"] = gap.pop("blocks.1.att.time_state")
    torch.save(gap, tmp_path / "gap.pth")
    with pytest.raises(LoadError, match="without layer 1"):
        load(model, backend="torch", device="cpu", state=tmp_path / "gap.pth")
    with pytest.raises(LoadError, match="no such state file"):
        load(model, backend="torch", device="cpu", state=tmp_path / "missing.pth")


def test_runner_st_files_are_read_as_safetensors(tmp_path):
    from ai_writer.models.checkpoint import save_safetensors

    state = random_state(seed=5)
    save_safetensors(state, tmp_path / "style.st")
    torch.save(state, tmp_path / "style.pth")
    st, pth = read_state_file(tmp_path / "style.st"), read_state_file(tmp_path / "style.pth")
    assert np.array_equal(st.time_state, pth.time_state) and st.sha256 != pth.sha256
    assert np.array_equal(st.att_kv()[1, 0], state["blocks.1.att.time_state"][0].T.numpy())
    half = {k: v.to(torch.bfloat16) for k, v in state.items()}  # a 16-bit file: widened as torch widens it
    save_safetensors(half, tmp_path / "style-bf16.safetensors")
    widened = read_state_file(tmp_path / "style-bf16.safetensors").time_state
    assert np.array_equal(widened[1], half["blocks.1.att.time_state"].float().numpy())


def test_texts_read_from_two_starts_are_never_taken_for_one_another(model, tmp_path, service_for):
    """Prompt-cache and disk-state keys carry the state's hash: the same manuscript under another state is
    read again, under the same state it is found on disk."""
    from ai_writer.backends.writing.state_store import StateStore

    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save(random_state(seed=6), a)
    torch.save(random_state(seed=7), b)
    store = StateStore(tmp_path / "states", model, max_bytes=1 << 30)
    text = "".join(cjk_chars(VOCAB)[3 + i % 390] for i in range(4200))  # past the first state kept on disk
    request = GenerationRequest(text, n=2, length=12, sampling=SamplingSettings(seed=9))

    def finished(service):
        return [e for e in service.generate(request, timeout=120) if isinstance(e, Finished)][0].texts

    service_a = service_for(load(model, backend="torch", device="cpu", state=a), context_chars=0, state_store=store)
    first_a = finished(service_a)
    service_a.close()
    again_a = service_for(load(model, backend="torch", device="cpu", state=a), context_chars=0, state_store=store)
    plan = again_a.plan(request)
    assert plan.from_disk and plan.cached_tokens == plan.total_tokens
    assert finished(again_a) == first_a
    service_b = service_for(load(model, backend="torch", device="cpu", state=b), context_chars=0, state_store=store)
    assert service_b.plan(request).cached_tokens == 0  # (after 4,200 random ids the start has faded away:
    finished(service_b)  # the texts are compared after a short prompt above)
    assert service_b.plan(request).from_disk or service_b.plan(request).cached_tokens == service_b.plan(request).total_tokens
    plain = service_for(load(model, backend="torch", device="cpu"), context_chars=0, state_store=store)
    assert plain.plan(request).cached_tokens == 0


def test_two_states_side_by_side_in_one_batch(model, tmp_path, service_for):
    """compare_state: the first candidates start from the model's own start, the last n // 2 from the
    compared state, each exactly as a model loaded with that start writes them."""
    from ai_writer.backends.writing.generation import Started

    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save(random_state(seed=10, scale=2.0), a)
    torch.save(random_state(seed=11, scale=2.0), b)
    greedy = SamplingSettings(top_k=1, seed=1)
    text = "".join(cjk_chars(VOCAB)[3:40])

    def run(engine, n, compare=None):
        request = GenerationRequest(text, n=n, length=16, sampling=greedy, compare_state=compare)
        events = list(service_for(engine).generate(request, timeout=60))
        started = [e for e in events if isinstance(e, Started)][0]
        return [e for e in events if isinstance(e, Finished)][0].texts, started.sources

    tuned_b = read_state_file(b)
    texts, sources = run(load(model, backend="torch", device="cpu", state=a), 4, tuned_b)
    assert sources == ("", "", "b", "b")
    from_a, _ = run(load(model, backend="torch", device="cpu", state=a), 1)
    from_b, _ = run(load(model, backend="torch", device="cpu", state=b), 1)
    assert texts == (from_a[0], from_a[0], from_b[0], from_b[0]) and from_a != from_b
    plain_texts, plain_sources = run(load(model, backend="torch+native", device="cpu"), 3, tuned_b)
    no_state, _ = run(load(model, backend="torch", device="cpu"), 1)
    assert plain_sources == ("", "", "b") and plain_texts == (no_state[0], no_state[0], from_b[0])


@pytest.mark.parametrize("version", ["6", "5.2"])
def test_rwkv6_and_rwkv5_start_from_a_state_as_the_package_does(tmp_path, version):
    """The package starts RWKV-5/6 from time_state tensors merged into the model file (its own code); this
    program does the same with that merged file, and with the same state as a separate file."""
    from ai_writer.models import rwkv5, rwkv6
    from tests.models.rwkv_parity import random_weights

    module, model_class, config_class = (rwkv6, rwkv6.RWKV6, rwkv6.RWKV6Config) if version == "6" else \
        (rwkv5, rwkv5.RWKV5, rwkv5.RWKV5Config)
    weights = random_weights(model_class, config_class, module.init_weights, 2, 128, VOCAB, seed=3)
    state = random_state(seed=4)
    merged = write_checkpoint(tmp_path / "merged.pth", {**weights, **state})
    (tmp_path / "merged.json").write_text(json.dumps(dict(enumerate(cjk_chars(VOCAB))), ensure_ascii=False))
    rng = np.random.default_rng(5)
    prompt, steps = rng.integers(0, VOCAB, 64).tolist(), rng.integers(0, VOCAB, 16).tolist()
    oracle = run_oracle(tmp_path, merged, prompt, steps, version)
    plain = write_model_with_chars(tmp_path / "plain", weights, cjk_chars(VOCAB))
    torch.save(state, tmp_path / "style.pth")
    for engine in (load(merged, backend="torch", device="cpu"),
                   load(plain, backend="torch", device="cpu", state=tmp_path / "style.pth")):
        logits, kept = engine.forward([prompt], None)
        assert np.abs(logits[0] - oracle["prompt"].numpy()).max() <= 1e-4
        for token, want in zip(steps, oracle["steps"]):
            logits, kept = engine.forward([[token]], kept)
            assert np.abs(logits[0] - want.numpy()).max() <= 1e-4
    unstarted = load(plain, backend="torch", device="cpu").forward([prompt], None)[0][0]
    assert np.abs(unstarted - oracle["prompt"].numpy()).max() > 1e-2  # the state made the difference
