"""The torch+native engine: RWKV-7's decode step in C (backends.engines.native_step) against the torch engine.

Random RWKV-7 models run prompt -> decode -> prompt sequences on both engines, with
1 to 6 rows (the C step reads the weights once for up to 4 rows, so 5 and 6 take a
second pass); one model has LoRA widths and a vocabulary that are no multiple of
the C step's vector width, so every remainder loop runs. Logits and every state
array agree to 1e-5 (relative to the array's largest value above 1). Also: auto
picks it where a C compiler is found and says why; without a compiler, with a
compiler that fails, or when turned off, auto decodes with ONNX Runtime instead and
the reason says why; asked for by name, the same problems are one clear LoadError;
the compiled library is cached by the hash of source, compiler and flags.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from ai_writer.backends import LoadError, load
from ai_writer.backends.engines import native_step
from ai_writer.backends.engines.base import Engine, EngineInfo
from ai_writer.backends.engines.hybrid_engine import HybridEngine
from ai_writer.backends.engines.native_step import NativeBuildError, NativeStep, native_possible
from ai_writer.backends.engines.numpy_state import RWKV7NumpyState
from ai_writer.backends.selection import Why, select_backend
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights
from tests.helpers import cjk_chars, greedy_texts, random_rwkv7_weights, write_checkpoint, write_model_with_chars

pytestmark = pytest.mark.skipif(not native_possible(), reason="needs a C compiler (CI has gcc)")

TOLERANCE = 1e-5
VOCAB = 301  # not a multiple of 4: the head's last column runs alone
CHARS = cjk_chars(VOCAB)


def write_model(folder, weights, stem="m"):
    return write_model_with_chars(folder, weights, CHARS, stem)


def odd_weights() -> dict:
    """LoRA widths 40 / 24 / 20 / 36: the C step's 16-wide loops leave remainders."""
    config = RWKV7Config(3, 128, VOCAB, d_decay=40, d_iclr=24, d_value=20, d_gate=36)
    model = init_weights(RWKV7(config), seed=4, spread=1.6)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def odd_head_weights() -> dict:
    """Head size 24 (no whole 16-wide vectors): the state update's row-by-row paths."""
    model = init_weights(RWKV7(RWKV7Config(2, 48, VOCAB, head_size=24)), seed=5, spread=1.6)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


MODELS = {"plain": lambda: random_rwkv7_weights(2, 128, VOCAB, seed=1, spread=1.6), "odd widths": odd_weights,
          "head size 24": odd_head_weights}


def max_error(found, reference) -> float:
    found, reference = np.asarray(found, np.float64), np.asarray(reference, np.float64)
    return float(np.abs(found - reference).max() / max(1.0, np.abs(reference).max()))


@pytest.fixture(scope="module", params=list(MODELS))
def engines(request, tmp_path_factory):
    """(torch engine, torch+native engine) of one random model."""
    path = write_model(tmp_path_factory.mktemp("native"), MODELS[request.param]())
    native = load(path, backend="torch+native", device="cpu")
    assert native.info.backend == "torch+native", native.selection
    assert isinstance(native.decode_step, NativeStep)
    return load(path, backend="torch", device="cpu"), native


def test_the_pair_and_its_step_are_engines(engines):
    reference, native = engines
    assert all(isinstance(e, Engine) for e in (reference, native, native.decode_step))
    assert not isinstance(native.model, Engine)  # the check can fail: a torch module has no forward(token_lists)


def test_prompts_read_through_the_c_scan(engines, monkeypatch):
    _, native = engines
    calls = []
    scan = native.decode_step._scan
    monkeypatch.setattr(native.decode_step, "_scan", lambda *args: calls.append(args[:4]) or scan(*args))
    native.forward([[1, 2, 3, 4, 5, 6]])
    assert len(calls) == native.info.n_layer and all(c[:2] == (1, 6) for c in calls)  # B = 1, T = 6 per layer


@pytest.mark.parametrize("rows", [1, 2, 4, 5, 6])
def test_prompt_decode_prompt_agrees_with_torch(engines, rows):
    reference, native = engines
    rng = np.random.default_rng(rows)
    prompt = rng.integers(0, VOCAB, size=(rows, 9)).tolist()
    ref_logits, ref_state = reference.forward(prompt)
    logits, state = native.forward(prompt)
    assert isinstance(state, RWKV7NumpyState)
    for _ in range(16):  # decode steps: the C step on the native engine
        tokens = rng.integers(0, VOCAB, size=(rows, 1)).tolist()
        ref_logits, ref_state = reference.forward(tokens, ref_state)
        logits, state = native.forward(tokens, state)
        assert max_error(logits, ref_logits.astype(np.float64)) <= TOLERANCE
        assert max(max_error(f, r.numpy()) for f, r in zip(state, ref_state)) <= TOLERANCE
    more = rng.integers(0, VOCAB, size=(rows, 5)).tolist()  # a prompt again, from the C step's state
    ref_logits, _ = reference.forward(more, ref_state)
    logits, _ = native.forward(more, state)
    assert max_error(logits, ref_logits) <= TOLERANCE


def test_the_step_runs_several_tokens_and_leaves_its_input_state_alone(engines):
    reference, native = engines
    _, state = native.forward([[3, 4, 5], [6, 7, 8]])
    kept = native.copy_state(state)
    logits, after = native.decode_step.forward([[9, 10, 11], [12, 13, 14]], state, full_output=True)
    assert logits.shape == (2, 3, VOCAB)
    assert all(np.array_equal(a, b) for a, b in zip(state, kept))
    ref_logits, ref_state = reference.forward([[3, 4, 5, 9, 10, 11], [6, 7, 8, 12, 13, 14]], full_output=True)
    assert max_error(logits, ref_logits[:, 3:]) <= TOLERANCE
    assert max(max_error(f, r.numpy()) for f, r in zip(after, ref_state)) <= TOLERANCE


@pytest.mark.parametrize("rows", [1, 3])
def test_the_step_reads_a_prompt_longer_than_its_chunk_as_torch_does(engines, rows):
    """A prompt of more tokens than SEQUENCE_CHUNK, from a state, through the C step's sequence form (every
    product over all of a chunk's tokens, the transposed state update): every position's logits and the state."""
    reference, native = engines
    rng = np.random.default_rng(10 + rows)
    start = rng.integers(0, VOCAB, size=(rows, 4)).tolist()
    _, ref_state = reference.forward(start)
    _, state = native.decode_step.forward(start)
    prompt = rng.integers(0, VOCAB, size=(rows, native_step.SEQUENCE_CHUNK + 37)).tolist()
    ref_logits, ref_after = reference.forward(prompt, ref_state, full_output=True)
    logits, after = native.decode_step.forward(prompt, state, full_output=True)
    assert logits.shape == (rows, len(prompt[0]), VOCAB)
    assert max_error(logits, ref_logits) <= TOLERANCE
    assert max(max_error(f, r.numpy()) for f, r in zip(after, ref_after)) <= TOLERANCE
    last, last_state = native.decode_step.forward(prompt, state)
    assert np.array_equal(last, logits[:, -1]) and all(np.array_equal(a, b) for a, b in zip(last_state, after))


def test_greedy_candidates_are_the_same_text_as_torch(engines):
    reference, native = engines
    assert greedy_texts(native, CHARS) == greedy_texts(reference, CHARS)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_auto_takes_the_native_step_on_a_cpu_and_says_why(tmp_path):
    model = write_model(tmp_path, random_rwkv7_weights(1, 64, VOCAB, seed=3))
    choice = select_backend("auto", "auto", model)
    assert (choice.backend, choice.device, choice.auto, choice.reason.why) == ("torch+native", "cpu", True, Why.CPU_NATIVE)
    assert choice.reason.text().startswith("auto") and "compiled for this CPU" in choice.reason.text()
    named = select_backend("torch+native", "cpu", model)
    assert (named.backend, named.device, named.auto) == ("torch+native", "cpu", False)
    assert named.reason.text() == "torch+native backend asked for"


def test_without_a_compiler_auto_decodes_with_onnx_and_by_name_it_is_one_error(tmp_path, monkeypatch):
    model = write_model(tmp_path, random_rwkv7_weights(1, 64, VOCAB, seed=3))
    monkeypatch.setattr(native_step, "find_compiler", lambda: None)
    assert select_backend("auto", "cpu", model).backend == "torch+onnx"
    with pytest.raises(LoadError) as caught:
        load(model, backend="torch+native", device="cpu")
    message = str(caught.value)
    assert "\n" not in message and str(model) in message and "no C compiler" in message


def test_a_compiler_that_fails_falls_back_to_onnx_and_says_why(tmp_path, monkeypatch):
    model = write_model(tmp_path, random_rwkv7_weights(1, 64, VOCAB, seed=3))
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    monkeypatch.setenv(native_step.CACHE_ENV, str(tmp_path / "native"))
    engine = load(model, backend="auto", device="cpu", cache_dir=tmp_path / "onnx")
    assert engine.info.backend == "torch+onnx" and isinstance(engine, HybridEngine)
    reason = engine.selection.reason
    assert reason.why == Why.NATIVE_FAILED and "does not compile" in reason.error and engine.selection.auto
    assert reason.text().startswith("auto, device cpu asked for: ") and reason.text().endswith("; so ONNX Runtime decodes")
    with pytest.raises(LoadError, match="does not compile"):
        load(model, backend="torch+native", device="cpu")


def test_turned_off_auto_decodes_with_onnx(tmp_path, monkeypatch):
    model = write_model(tmp_path, random_rwkv7_weights(1, 64, VOCAB, seed=3))
    monkeypatch.setenv(native_step.SWITCH_ENV, "0")
    assert select_backend("auto", "cpu", model).backend == "torch+onnx"


def test_by_name_it_takes_rwkv7_on_the_cpu_only(tmp_path):
    from tests.backends.test_hybrid_engine import rwkv4_weights

    four = write_checkpoint(tmp_path / "four.safetensors", rwkv4_weights())
    with pytest.raises(LoadError, match="rwkv7 only, not this rwkv4 model"):
        select_backend("torch+native", "cpu", four)
    seven = write_model(tmp_path, random_rwkv7_weights(1, 64, VOCAB, seed=3))
    with pytest.raises(LoadError, match="runs on the CPU"):
        select_backend("torch+native", "cuda", seven)
    with pytest.raises(NativeBuildError, match="float32"):
        bf16 = init_weights(RWKV7(RWKV7Config(1, 64, VOCAB)), seed=1).to(torch.bfloat16)
        NativeStep.of_torch_model(native_step.build_library(), bf16, None, EngineInfo("rwkv7", "torch+native", "cpu", "m", 1, 64, VOCAB))


def test_the_library_is_compiled_once_and_then_found_in_the_cache(tmp_path, monkeypatch):
    first = native_step.build_library(tmp_path)
    assert first.is_file() and first.parent == tmp_path
    monkeypatch.setattr(native_step, "_compile", lambda *args: pytest.fail("compiled again"))
    assert native_step.build_library(tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left
