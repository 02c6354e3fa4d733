"""The native backend (backends/engines/native_engine.py): an RWKV-7 .safetensors file run by the C step alone,
prompts and decoding, without torch. It computes what torch+native's C step computes from the same file (the same
conversion, the same kernels: equal bits for the narrow types), auto takes it for a narrow dtype of a
.safetensors file, and a process that runs it never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ai_writer.backends import LoadError, load, set_model_threads
from ai_writer.backends.engines import native_step
from ai_writer.backends.engines.native_engine import load_native
from ai_writer.backends.selection import Why
from ai_writer.models.checkpoint import save_safetensors
from ai_writer.models.rwkv7_config import RWKV7Config, misfit, parameter_shapes
from ai_writer.models.safetensors_numpy import Float32Arrays
from tests.helpers import cjk_chars, greedy_texts, random_rwkv7_weights, write_checkpoint, write_model_with_chars

VOCAB = 300
CHARS = cjk_chars(VOCAB)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def weights():
    return random_rwkv7_weights(2, 128, VOCAB, seed=3, spread=1.6)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, weights):
    return write_model_with_chars(tmp_path_factory.mktemp("native-engine"), weights, CHARS)


def run(engine, prompt_rows=2):
    """(logits, state) of a prompt, then 3 steps of 2 rows forked from it, then a second prompt from that state."""
    prompt = [list(range(5 + r, 17 + r)) for r in range(prompt_rows)]
    trace = []
    logits, state = engine.forward(prompt)
    trace.append(logits)
    state = engine.repeat_rows(engine.take_rows(state, [0]), 2)
    for token in (20, 30, 40):
        logits, state = engine.forward([[token], [token + 7]], state)
        trace.append(logits)
    logits, state = engine.forward([[50, 51, 52], [53, 54, 55]], state)  # a prompt read on from a state
    trace.append(logits)
    return trace, state


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int8"])
def test_the_native_engine_is_torch_native_s_c_step_bit_for_bit(model_file, dtype):
    native = load(model_file, backend="native", dtype=dtype)
    paired = load(model_file, backend="torch+native", dtype=dtype)
    assert native.info.backend == "native" and native.dtype == dtype and native.reads_prompts
    assert native.converted_bytes == paired.decode_step.converted_bytes
    (found, found_state), (expected, expected_state) = run(native), run(paired)
    for a, b in zip(found, expected):
        assert a.shape == b.shape and np.array_equal(a, b)
    for a, b in zip(found_state, expected_state):
        assert np.array_equal(a, b)


def test_a_float32_native_engine_reads_its_prompts_in_c_and_agrees_with_torch(model_file):
    native = load(model_file, backend="native", dtype="float32")
    paired = load(model_file, backend="torch+native")  # torch reads the prompts there
    assert native.reads_prompts and not paired.decode_step.reads_prompts
    (found, found_state), (expected, expected_state) = run(native), run(paired)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(found, expected))
    assert 0 <= worst < 1e-4 and max(float(np.abs(a - b).max()) for a, b in zip(found_state, expected_state)) < 1e-4
    # torch+native: the head in blocks, the rest the model's; native: every matrix in blocks but the embedding
    matrices = {k: v.numel() * 4 for k, v in paired.model.named_parameters() if v.dim() == 2 and not k.endswith("r_k")}
    vectors = sum(v.numel() * 4 for k, v in paired.model.named_parameters() if k not in matrices)
    embedding = matrices.pop("emb.weight")
    assert paired.decode_step.converted_bytes == 128 * VOCAB * 4 and native.converted_bytes >= sum(matrices.values())
    assert native.in_place_bytes == embedding + vectors


def test_auto_runs_a_narrow_dtype_or_a_small_float32_file_on_native_and_a_bigger_float32_one_on_torch_native(
        model_file, monkeypatch):
    import ai_writer.backends.loading as loading

    engine = load(model_file, backend="auto", device="cpu", dtype="int8")
    assert engine.info.backend == "native" and engine.selection.reason.why == Why.CPU_NATIVE_ALONE
    assert engine.selection.reason.text() == (
        "auto, device cpu asked for: prompts and decoding on a step compiled for this CPU, without torch (dtype "
        "int8, a .safetensors file); it decodes 4 candidates in little more time than one")
    small = load(model_file, backend="auto", device="cpu")  # a float32 file of a few MB: torch's import would dominate
    assert small.info.backend == "native" and small.selection.reason.why == Why.CPU_NATIVE_ALONE
    megabytes = round(model_file.stat().st_size / 2**20)
    assert 1 <= megabytes <= 8 and small.selection.reason.text() == (
        "auto, device cpu asked for: prompts and decoding on a step compiled for this CPU, without torch (a float32 "
        f".safetensors file of {megabytes} MB: torch's import would cost more than it saves); it decodes 4 candidates in "
        "little more time than one")
    monkeypatch.setattr(loading, "SMALL_FLOAT32_BYTES", model_file.stat().st_size - 1)
    assert load(model_file, backend="auto", device="cpu").info.backend == "torch+native"
    asked = load(model_file, backend="native", dtype="bfloat16")
    assert asked.selection.reason.text() == "native backend asked for; the decode step's weights in bfloat16"


def test_a_pth_file_runs_on_torch_native_under_auto_and_is_one_line_on_native(tmp_path, weights):
    pth = tmp_path / "m.pth"
    torch.save(weights, pth)
    (tmp_path / "m.json").write_text(json.dumps(dict(enumerate(CHARS)), ensure_ascii=False), encoding="utf-8")
    assert load(pth, backend="auto", device="cpu", dtype="int8").info.backend == "torch+native"
    with pytest.raises(LoadError) as caught:
        load(pth, backend="native", dtype="int8")
    assert str(caught.value) == (f"{pth}: the native backend reads .safetensors files, not a pth model (`ai-writer "
                                 "convert` writes one; torch+native runs this file)")


@pytest.mark.parametrize("stored", [torch.float16, torch.bfloat16])
def test_half_precision_files_are_widened_as_torch_widens_them(tmp_path, weights, stored):
    path = write_model_with_chars(tmp_path, {k: v.to(stored) for k, v in weights.items()}, CHARS)
    assert {p.dtype for p in Float32Arrays(path).places.values()} == {"F16" if stored == torch.float16 else "BF16"}
    native = load(path, backend="native", dtype="float16")
    paired = load(path, backend="torch+native", dtype="float16")  # torch's .to(float32), then the same conversion
    for a, b in zip(run(native)[0], run(paired)[0]):
        assert np.array_equal(a, b)
    arrays = Float32Arrays(path)
    for name in ("blocks.0.att.w0", "emb.weight"):
        assert np.array_equal(arrays[name], weights[name].to(stored).float().numpy())


def test_misshapen_or_missing_tensors_are_one_line_naming_the_file_and_the_tensor(tmp_path, weights):
    chars = tmp_path / "m.json"
    chars.write_text(json.dumps(dict(enumerate(CHARS)), ensure_ascii=False), encoding="utf-8")
    path = tmp_path / "m.safetensors"
    write_checkpoint(path, {**weights, "blocks.1.att.key.weight": torch.zeros(128, 64)})
    with pytest.raises(LoadError) as caught:
        load(path, backend="native", dtype="int8")
    assert str(caught.value) == (f"{path}: RWKV-7 weights with missing or misshapen tensors (blocks.1.att.key.weight "
                                 "is (128, 64), not (128, 128))")
    write_checkpoint(path, {k: v for k, v in weights.items() if k != "blocks.1.ffn.x_k"})
    with pytest.raises(LoadError, match=r"m\.safetensors: RWKV-7 weights with missing or misshapen tensors "
                                        r"\(no blocks\.1\.ffn\.x_k\)$"):
        load(path, backend="native", dtype="int8")
    write_checkpoint(path, {**weights, "blocks.0.att.w0": weights["blocks.0.att.w0"].to(torch.int32)})
    with pytest.raises(LoadError, match=r"m\.safetensors: tensor blocks\.0\.att\.w0 is I32, not a float type$"):
        load(path, backend="native", dtype="int8")
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(LoadError) as caught:
        load(path, backend="native", dtype="int8")
    assert str(caught.value) == (f"{path}: the native backend runs rwkv7 only, not a model of unrecognised "
                                 "architecture (its header or key names could not be read)")


def test_layer_0_may_leave_out_its_value_mix(tmp_path, weights):
    trimmed = {k: v for k, v in weights.items() if k not in ("blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2")}
    path = write_model_with_chars(tmp_path, trimmed, CHARS)
    native, paired = load(path, backend="native", dtype="int8"), load(path, backend="torch+native", dtype="int8")
    assert np.array_equal(run(native)[0][-1], run(paired)[0][-1])


def test_the_shapes_are_the_torch_model_s_and_misfit_names_the_first_problem():
    from ai_writer.models.rwkv7 import RWKV7

    for config in (RWKV7Config(2, 128, 50), RWKV7Config(3, 96, 20, head_size=32)):
        expected = {name: tuple(p.shape) for name, p in RWKV7(config).named_parameters()}
        assert parameter_shapes(config) == expected
        assert misfit(config, expected) is None
        assert misfit(config, {**expected, "head.weight": (20, 96)}) == (
            None if config.vocab_size == 20 else "head.weight is (20, 96), not (50, 128)")


def test_set_model_threads_sets_the_native_step_s_threads(model_file):
    engine, before = load(model_file, backend="native", dtype="int8"), torch.get_num_threads()
    try:
        set_model_threads(1)
        assert native_step.thread_count() == 1 and engine._threads() == 1 and torch.get_num_threads() == 1
        one = engine.forward([[1, 2, 3]])[0]
        set_model_threads(2)
        assert engine._threads() == 2
        assert np.allclose(engine.forward([[1, 2, 3]])[0], one, atol=1e-5)  # the same sums, split otherwise
    finally:
        set_model_threads(0)
        torch.set_num_threads(before)


def test_a_process_that_writes_with_the_native_engine_never_imports_torch(model_file):
    """The whole path: identify, tokenizer, selection, load, the generation service's candidates."""
    script = (
        "import json, sys\n"
        "from ai_writer.backends import load\n"
        "from tests.greedy import greedy_texts\n"
        f"chars = json.loads(sys.argv[2])\n"
        "engine = load(sys.argv[1], backend='auto', dtype='int8')\n"
        "texts = greedy_texts(engine, chars, n=2, length=24)\n"
        "print(json.dumps({'backend': str(engine.info.backend), 'texts': list(texts),\n"
        "                  'torch': 'torch' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(model_file), json.dumps(CHARS)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["backend"] == "native" and found["torch"] is False
    paired = load(model_file, backend="torch+native", dtype="int8")
    assert tuple(found["texts"]) == greedy_texts(paired, CHARS, n=2, length=24)


def test_a_state_file_on_the_native_engine_is_read_without_torch_and_starts_every_text(model_file, weights, tmp_path):
    from ai_writer.models.checkpoint import save_safetensors

    n_layer = 1 + max(int(k.split(".")[1]) for k in weights if k.startswith("blocks."))
    heads = weights["blocks.0.att.r_k"].shape[0]
    generator = torch.Generator().manual_seed(7)
    state_path = tmp_path / "style.safetensors"
    save_safetensors({f"blocks.{i}.att.time_state": torch.randn(heads, 64, 64, generator=generator) * 0.5
                      for i in range(n_layer)}, state_path)
    script = (
        "import json, sys\n"
        "from ai_writer.backends import load\n"
        "from tests.greedy import greedy_texts\n"
        "engine = load(sys.argv[1], backend='auto', dtype='int8', state=sys.argv[2])\n"
        "texts = greedy_texts(engine, json.loads(sys.argv[3]), n=2, length=24)\n"
        "logits = engine.forward([[5, 6, 7]])[0][0].tolist()\n"
        "print(json.dumps({'texts': list(texts), 'logits': logits, 'torch': 'torch' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(model_file), str(state_path), json.dumps(CHARS)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["torch"] is False
    paired = load(model_file, backend="torch+native", dtype="int8", state=state_path)
    assert tuple(found["texts"]) == greedy_texts(paired, CHARS, n=2, length=24)
    started = paired.forward([[5, 6, 7]])[0][0]
    assert np.array_equal(np.float32(found["logits"]), started)
    plain = load(model_file, backend="torch+native", dtype="int8").forward([[5, 6, 7]])[0][0]
    assert np.abs(started - plain).max() > 1e-2  # the state made a difference


def test_a_step_that_does_not_build_falls_back_under_auto_and_is_one_line_when_asked(model_file, monkeypatch):
    monkeypatch.setattr(native_step, "find_compiler", lambda: None)
    monkeypatch.setattr(native_step, "native_possible", lambda: True)  # as if a compiler were there, then gone
    engine = load(model_file, backend="auto", device="cpu", dtype="bfloat16")
    assert engine.info.backend == "torch"  # torch+native's own fallback for a dtype torch+onnx cannot run
    with pytest.raises(LoadError) as caught:
        load(model_file, backend="native", dtype="bfloat16")
    assert str(caught.value) == f"{model_file}: no C compiler (cc, gcc or clang) to build the native step"
    with pytest.raises(LoadError):
        load_native(Path(model_file).with_name("missing.safetensors"), None)


def test_a_cpu_only_torch_is_told_by_its_files_without_importing_it(tmp_path, monkeypatch):
    import importlib.machinery
    import importlib.util

    from ai_writer.backends import selection

    (tmp_path / "torch" / "lib").mkdir(parents=True)
    (tmp_path / "torch" / "lib" / "libtorch_cpu.so").write_bytes(b"")
    spec = importlib.machinery.ModuleSpec("torch", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path / "torch")]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec if name == "torch" else None)
    assert selection.torch_has_gpu_build() is False
    for gpu_library in ("libtorch_cuda.so", "torch_cuda.dll", "libc10_hip.so"):
        (tmp_path / "torch" / "lib" / gpu_library).write_bytes(b"")
        assert selection.torch_has_gpu_build() is True
        (tmp_path / "torch" / "lib" / gpu_library).unlink()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # no torch at all
    assert selection.torch_has_gpu_build() is False and selection.torch_cuda_available() is False
