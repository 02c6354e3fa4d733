"""The torch+onnx engine (backends.engines.hybrid_engine) against the pure torch engine, and `auto` choosing it.

Random RWKV-7 and RWKV-4 models (2 layers x 128, vocabulary 300) run on both
engines through prompt -> decode -> prompt sequences of 3 rows: prompts (T > 1)
go through torch on both, decode steps (T == 1) through the ONNX Runtime CPU step
on the hybrid. Logits and every state array agree to 1e-5 (relative to the
array's largest value where that is above 1; float32 rounding between two
implementations of the same equations). Also: the step really runs on ONNX
Runtime, forking and copying its states, decoding on torch until the step is ready
or when it fails, and what `auto` picks on a CPU machine, with its reason.
"""

from __future__ import annotations


import numpy as np
import onnxruntime
import pytest
import torch

from ai_writer.backends import EngineError, LoadError, load
from ai_writer.backends.engines.hybrid_engine import HybridEngine
from ai_writer.backends.engines.numpy_state import RWKV4NumpyState, RWKV7NumpyState
from ai_writer.backends.selection import Why, select_backend
from ai_writer.models import rwkv4
from ai_writer.models.checkpoint import save_safetensors
from tests.helpers import cjk_chars, greedy_texts, random_rwkv7_weights, write_model_with_chars

TOLERANCE = 1e-5
VOCAB = 300
CHARS = cjk_chars(VOCAB)


def write_model(folder, weights, stem="m"):
    return write_model_with_chars(folder, weights, CHARS, stem)


def rwkv4_weights(seed=0) -> dict:
    model = rwkv4.init_weights(rwkv4.RWKV4(rwkv4.RWKV4Config(2, 128, VOCAB)), seed=seed, spread=1.6)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_error(found, reference) -> float:
    """max |found - reference|, relative to the reference's largest magnitude when that is above 1."""
    found, reference = np.asarray(found, np.float64), np.asarray(reference, np.float64)
    return float(np.abs(found - reference).max() / max(1.0, np.abs(reference).max()))


def state_error(found, reference) -> float:
    assert len(found) == len(reference)
    return max(max_error(f, r) for f, r in zip(found, reference))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("hybrid-cache")


@pytest.fixture(scope="module", params=["rwkv7", "rwkv4"])
def engines(request, tmp_path_factory, cache):
    """(torch engine, hybrid engine with its ONNX step open) of one random model."""
    weights = random_rwkv7_weights(2, 128, VOCAB, seed=1, spread=1.6) if request.param == "rwkv7" else rwkv4_weights(2)
    path = write_model(tmp_path_factory.mktemp(request.param), weights)
    hybrid = load(path, backend="torch+onnx", device="cpu", cache_dir=cache)
    assert isinstance(hybrid, HybridEngine) and hybrid.wait_for_decode_step(120), hybrid.decode_step_error
    return load(path, backend="torch", device="cpu"), hybrid


def test_prompt_decode_prompt_matches_torch_in_logits_and_states(engines):
    torch_engine, hybrid = engines
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, VOCAB, 70).tolist()  # more than one 64-token chunk of the WKV
    ref_logits, ref_state = torch_engine.forward([prompt], None)
    logits, state = hybrid.forward([prompt], None)
    assert max_error(logits, ref_logits) <= TOLERANCE and state_error(state, ref_state) <= TOLERANCE
    ref_state, state = torch_engine.repeat_rows(ref_state, 3), hybrid.repeat_rows(state, 3)
    for round_ in range(3):
        for _ in range(8):  # decode: one token per row
            tokens = [[int(t)] for t in rng.integers(0, VOCAB, 3)]
            ref_logits, ref_state = torch_engine.forward(tokens, ref_state)
            logits, state = hybrid.forward(tokens, state)
            assert logits.shape == (3, VOCAB) and max_error(logits, ref_logits) <= TOLERANCE
            assert state_error(state, ref_state) <= TOLERANCE
        more = rng.integers(0, VOCAB, (3, 5 + 7 * round_)).tolist()  # a prompt again, on the decoded state
        ref_logits, ref_state = torch_engine.forward(more, ref_state, full_output=True)
        logits, state = hybrid.forward(more, state, full_output=True)
        assert logits.shape == ref_logits.shape and max_error(logits, ref_logits) <= TOLERANCE
        assert state_error(state, ref_state) <= TOLERANCE


def test_decode_steps_run_on_onnx_runtime_and_prompts_on_torch(engines):
    _, hybrid = engines
    state_class = RWKV4NumpyState if hybrid.info.architecture == "rwkv4" else RWKV7NumpyState
    on_torch, on_onnx = hybrid.torch_engine.tokens_processed, hybrid.decode_step.tokens_processed
    _, state = hybrid.forward([[5, 6, 7, 8]] * 2, None)
    assert isinstance(state, state_class) and all(isinstance(a, np.ndarray) for a in state)
    assert hybrid.torch_engine.tokens_processed == on_torch + 8
    _, state = hybrid.forward([[9], [10]], state)
    assert isinstance(state, state_class)
    assert hybrid.decode_step.tokens_processed == on_onnx + 2 and hybrid.torch_engine.tokens_processed == on_torch + 8
    assert hybrid.info.backend == "torch+onnx" and hybrid.tokens_processed >= 10


def test_take_repeat_and_copy_work_on_its_states(engines):
    torch_engine, hybrid = engines
    prompts = [[1, 2, 3, 4], [7, 8, 9, 10]]
    _, state = hybrid.forward(prompts, None)
    _, ref_state = torch_engine.forward(prompts, None)
    copied = hybrid.copy_state(state)
    assert all(not np.shares_memory(a, b) for a, b in zip(copied, state))
    forked = hybrid.take_rows(state, [1, 0, 1])
    ref_forked = torch_engine.take_rows(ref_state, [1, 0, 1])
    repeated = hybrid.repeat_rows(copied, 2)
    assert all(a.shape[1] == 4 for a in repeated) and all(np.array_equal(a[:, 2], b[:, 1]) for a, b in zip(repeated, state))
    tokens = [[11], [12], [13]]
    logits, after = hybrid.forward(tokens, forked)
    ref_logits, ref_after = torch_engine.forward(tokens, ref_forked)
    assert max_error(logits, ref_logits) <= TOLERANCE and state_error(after, ref_after) <= TOLERANCE
    assert all(np.array_equal(a, b) for a, b in zip(state, copied))  # forward never changes the state it is given
    # a state of the torch engine is taken as it is
    logits, _ = hybrid.forward(tokens, ref_forked)
    assert max_error(logits, ref_logits) <= TOLERANCE


def test_zero_state_is_the_empty_state(engines):
    torch_engine, hybrid = engines
    assert state_error(hybrid.zero_state(2), torch_engine.zero_state(2)) == 0
    a, _ = hybrid.forward([[3], [4]], hybrid.zero_state(2))
    b, _ = hybrid.forward([[3], [4]], None)
    assert np.array_equal(a, b)


def test_bad_requests_are_one_line_engine_errors(engines):
    _, hybrid = engines
    _, state = hybrid.forward([[1, 2]], None)
    for call in (lambda: hybrid.forward([[1], [2]], state),  # 2 rows, a state of 1
                 lambda: hybrid.forward([[1, 2], [3, 4]], state),
                 lambda: hybrid.forward([[VOCAB]], None),
                 lambda: hybrid.forward([[1], [2, 3]], None),
                 lambda: hybrid.forward([[1]], state[:2])):
        with pytest.raises(EngineError) as caught:
            call()
        assert "\n" not in str(caught.value)


def test_greedy_generation_writes_what_torch_writes(engines):
    first, second = engines
    assert greedy_texts(first, CHARS) == greedy_texts(second, CHARS)


# -- before the step is ready, and when it cannot be made ----------------------------------------------------


def test_decoding_runs_on_torch_until_the_step_is_ready_and_after_it_fails(tmp_path):
    path = write_model(tmp_path, random_rwkv7_weights(2, 64, VOCAB, seed=4))
    torch_engine = load(path, backend="torch", device="cpu")
    hybrid = HybridEngine(torch_engine, torch_engine.tokenizer, torch_engine.info)
    assert hybrid.decode_step is None and not hybrid.wait_for_decode_step(0)
    _, state = hybrid.forward([[1, 2, 3]], None)
    logits, state = hybrid.forward([[4]], state)  # no step yet: torch
    assert torch_engine.tokens_processed == 4 and isinstance(state, RWKV7NumpyState)

    def fails():
        raise LoadError(f"{path}: cannot write its ONNX export to the cache (disk full)")

    hybrid.prepare_decode_step(fails, background=False)
    assert not hybrid.wait_for_decode_step(0) and hybrid.decode_step_error.endswith("(disk full)")
    again, _ = hybrid.forward([[4]], hybrid.forward([[1, 2, 3]], None)[1])
    assert np.array_equal(again, logits) and torch_engine.tokens_processed == 8


# -- what auto picks ---------------------------------------------------------------------------------------------


def fake_providers(monkeypatch, providers):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(providers))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_auto_on_a_cpu_machine_takes_torch_and_onnx_and_says_why(tmp_path, monkeypatch):
    """Where the native step cannot be built (here: turned off), auto decodes with ONNX Runtime."""
    model = write_model(tmp_path, random_rwkv7_weights(1, 64, VOCAB, seed=3))
    fake_providers(monkeypatch, ["CPUExecutionProvider"])
    monkeypatch.setenv("AI_WRITER_NATIVE", "0")
    for device in ("auto", "cpu"):
        choice = select_backend("auto", device, model)
        assert (choice.backend, choice.device, choice.auto, choice.reason.why) == ("torch+onnx", "cpu", True, Why.CPU_ONNX_STEP)
        assert choice.reason.cpu_asked == (device == "cpu") and choice.reason.text().startswith("auto")
        assert "prompts on torch" in choice.reason.text() and "ONNX Runtime" in choice.reason.text()
    alone = select_backend("torch", "auto", model)  # torch means torch alone
    assert (alone.backend, alone.device, alone.auto, alone.reason.text()) == ("torch", "cpu", False,
                                                                              "torch backend; no CUDA GPU, so the CPU")
    alone = select_backend("torch", "cpu", model)
    assert (alone.backend, alone.device, alone.reason.text()) == ("torch", "cpu", "torch backend, device cpu asked for")
    fake_providers(monkeypatch, [])  # no onnxruntime
    choice = select_backend("auto", "auto", model)
    assert choice.backend == "torch" and choice.reason.why == Why.CPU_NO_ONNXRUNTIME and "onnxruntime" in choice.reason.text()


def test_auto_keeps_torch_for_models_the_onnx_step_cannot_run(tmp_path, monkeypatch):
    fake_providers(monkeypatch, ["CPUExecutionProvider"])
    six = tmp_path / "six.safetensors"  # RWKV-6's key set
    save_safetensors({"emb.weight": torch.zeros(4, 8), "blocks.0.ln0.weight": torch.ones(8),
                      "blocks.0.att.time_decay": torch.zeros(8), "blocks.0.att.time_maa_x": torch.zeros(1, 1, 8)}, six)
    choice = select_backend("auto", "auto", six, cuda_available=False)
    assert (choice.backend, choice.device, choice.reason.architecture) == ("torch", "cpu", "rwkv6")
    assert "not this rwkv6 model" in choice.reason.text()


def test_load_auto_gives_a_torch_engine_for_torch_or_another_dtype(tmp_path, monkeypatch):
    from ai_writer.backends.engines import native_step

    model = write_model(tmp_path, random_rwkv7_weights(1, 64, VOCAB, seed=3))
    torch_engine = load(model, backend="torch", device="cpu")
    assert torch_engine.info.backend == "torch" and torch_engine.selection.backend == "torch"
    monkeypatch.setattr(native_step, "find_compiler", lambda: None)  # auto's CPU pair is torch+onnx: float32 only
    bf16 = load(model, backend="auto", device="cpu", dtype="bfloat16", cache_dir=tmp_path / "cache")
    assert bf16.info.backend == "torch" and bf16.selection.reason.why == Why.FLOAT32_ONLY
    assert "bfloat16" in bf16.selection.reason.text()


def test_the_export_runs_in_a_child_process_and_fills_the_cache(tmp_path):
    from ai_writer.backends.files import onnx_export

    model = write_model(tmp_path, random_rwkv7_weights(1, 64, VOCAB, seed=6))
    cache = tmp_path / "cache"
    exported_here = onnx_export.exports
    hybrid = load(model, backend="torch+onnx", device="cpu", cache_dir=cache)
    assert hybrid.wait_for_decode_step(120), hybrid.decode_step_error
    assert onnx_export.cache_path(model, cache).is_file()
    assert onnx_export.exports == exported_here  # made by the child, not by this process
