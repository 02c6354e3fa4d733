"""The onnx backend against the torch backend, on real ONNX Runtime CPU sessions.

A random RWKV-7 (2 layers x 128, vocabulary 300) runs on both. Tolerance: max
|Δlogit| <= 1e-4 (float32) after a 64-token prompt (the ONNX side steps through it
token by token, torch reads it in one chunked forward) and after each of 16
batched steps of 3 rows. Also: the exported graph (opset 17, no GroupNormalization,
float32), the export cache, the provider choice (faked only at
onnxruntime.get_available_providers) and that an .onnx file runs without torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from ai_writer.backends import EngineError, LoadError, load
from ai_writer.backends.engines.base import Engine
from ai_writer.backends.engines.onnx_engine import session_options
from ai_writer.backends.files import onnx_export
from ai_writer.backends.selection import Why, select_backend
from tests.helpers import REPO, cpu_auto_backend, greedy_texts, random_rwkv7_weights, write_checkpoint

TOLERANCE = 1e-4
VOCAB = 300
CHARS = ["\n", "。", "，"] + [chr(0x4E00 + i) for i in range(VOCAB - 3)]
REAL_PROVIDERS = onnxruntime.get_available_providers()


def write_model(folder, seed=1, stem="m", spread=1.6):
    folder.mkdir(parents=True, exist_ok=True)
    path = write_checkpoint(folder / f"{stem}.safetensors", random_rwkv7_weights(2, 128, VOCAB, seed, spread))
    path.with_suffix(".json").write_text(json.dumps(dict(enumerate(CHARS)), ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("onnx-model"))


@pytest.fixture(scope="module")
def engines(model, tmp_path_factory):
    cache = tmp_path_factory.mktemp("onnx-cache")
    return load(model, backend="torch", device="cpu"), load(model, backend="onnx", device="cpu", cache_dir=cache)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """An exported .onnx file with its vocabulary beside it."""
    out = tmp_path_factory.mktemp("onnx-file") / "x.onnx"
    onnx_export.export_onnx(model, out)
    shutil.copy(model.with_suffix(".json"), out.with_suffix(".json"))
    return out


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


# -- parity with torch -------------------------------------------------------------------


def test_a_prompt_then_batched_steps_match_torch(engines):
    torch_engine, onnx_engine = engines
    rng = np.random.default_rng(7)
    prompts = rng.integers(0, VOCAB, size=(3, 64)).tolist()
    logits_t, state_t = torch_engine.forward(prompts[:1], None)
    logits_o, state_o = onnx_engine.forward(prompts[:1], None)
    assert logits_o.dtype == np.float32 and logits_o.shape == (1, VOCAB)
    assert max_diff(logits_o, logits_t) <= TOLERANCE
    for ours, theirs in zip(state_o, state_t):
        assert ours.dtype == np.float32 and ours.shape == tuple(theirs.shape)
        assert max_diff(ours, theirs.numpy()) <= TOLERANCE

    _, state_t = torch_engine.forward(prompts, None)  # 3 rows, torch's chunked form
    _, state_o = onnx_engine.forward(prompts, None)
    worst = 0.0
    for step in range(16):
        tokens = [[int(t)] for t in rng.integers(0, VOCAB, 3)]
        logits_t, state_t = torch_engine.forward(tokens, state_t)
        logits_o, state_o = onnx_engine.forward(tokens, state_o)
        diff = max_diff(logits_o, logits_t)
        assert diff <= TOLERANCE, f"step {step}: max |Δlogit| {diff}"
        worst = max(worst, diff)
    print(f"max |Δlogit| over 16 steps of 3 rows: {worst:.2e}")


def test_full_output_and_forked_rows_match_torch(engines):
    torch_engine, onnx_engine = engines
    tokens = [[5, 17, 42, 99, 250, 3]]
    full_t, state_t = torch_engine.forward(tokens, None, full_output=True)
    full_o, state_o = onnx_engine.forward(tokens, None, full_output=True)
    assert full_o.shape == (1, 6, VOCAB)
    assert max_diff(full_o, full_t) <= TOLERANCE
    forked_t, forked_o = torch_engine.repeat_rows(state_t, 2), onnx_engine.repeat_rows(state_o, 2)
    logits_t, _ = torch_engine.forward([[1], [2]], forked_t)
    logits_o, after = onnx_engine.forward([[1], [2]], forked_o)
    assert max_diff(logits_o, logits_t) <= TOLERANCE
    assert max_diff(forked_o[1], np.repeat(state_o[1], 2, axis=1)) == 0  # the given state is not modified
    assert after[1] is not forked_o[1]


def test_greedy_generation_writes_the_same_text_on_both_backends(engines):
    first, second = engines
    assert greedy_texts(first, CHARS) == greedy_texts(second, CHARS)


def test_bad_requests_are_engine_errors(engines):
    _, onnx_engine = engines
    with pytest.raises(EngineError, match="out of range"):
        onnx_engine.forward([[VOCAB]], None)
    with pytest.raises(EngineError, match="rows"):
        onnx_engine.forward([[1], [2]], onnx_engine.zero_state(3))


# -- the exported graph ---------------------------------------------------------------------


def test_the_graph_uses_opset_17_and_no_group_normalization(exported):
    model = onnx.load(str(exported))
    assert {o.domain: o.version for o in model.opset_import} == {"": 17}
    assert model.ir_version <= 8
    ops = {node.op_type for node in model.graph.node}
    assert "GroupNormalization" not in ops
    for op in ops:  # each op has a definition at opset 17 or older (raises otherwise)
        assert onnx.defs.get_schema(op, 17, "").since_version <= 17
    assert {"LayerNormalization", "ReduceMean", "MatMul"} <= ops
    assert all(t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64) for t in model.graph.initializer)
    assert [i.name for i in model.graph.input] == list(onnx_export.INPUTS)
    assert [o.name for o in model.graph.output] == list(onnx_export.OUTPUTS)
    batch_dims = [v.type.tensor_type.shape.dim[0 if v.name in ("tokens", "logits") else 1]
                  for v in (*model.graph.input, *model.graph.output)]
    assert all(d.dim_param == "batch" for d in batch_dims)  # dynamic batch everywhere
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["architecture"] == "rwkv7" and meta["format"] == onnx_export.FORMAT
    assert (meta["n_layer"], meta["n_embd"], meta["head_size"], meta["vocab_size"]) == ("2", "128", "64", str(VOCAB))


def test_an_onnx_file_runs_without_torch(exported):
    code = ("import sys; from ai_writer.backends import load; e = load('x.onnx', backend='onnx'); "
            "logits, state = e.forward([[1]], None); assert logits.shape == (1, 300), logits.shape; "
            "assert 'torch' not in sys.modules, 'torch was imported'; "
            "e = load('x.onnx'); assert e.info.backend == 'onnx' and 'torch' not in sys.modules")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code], cwd=exported.parent, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_an_onnx_file_matches_the_model_it_came_from(exported, engines):
    torch_engine, _ = engines
    engine = load(exported, backend="onnx")
    assert engine.info.backend == "onnx" and engine.info.model_path == str(exported)
    logits, _ = engine.forward([[3, 1, 4, 1, 5]], None)
    assert max_diff(logits, torch_engine.forward([[3, 1, 4, 1, 5]], None)[0]) <= TOLERANCE
    with pytest.raises(LoadError, match="onnx or directml"):
        load(exported, backend="torch")


# -- the cache --------------------------------------------------------------------------------


def test_the_cache_exports_once_rebuilds_corrupt_or_stale_files_and_follows_the_model(tmp_path, monkeypatch):
    model = write_model(tmp_path / "model", seed=2)
    cache = tmp_path / "cache"
    monkeypatch.setenv(onnx_export.CACHE_ENV, str(cache))  # the env var points the cache elsewhere
    before = onnx_export.exports

    first = load(model, backend="onnx")
    [entry] = cache.glob("*.onnx")
    assert onnx_export.exports == before + 1
    stamp = entry.stat().st_mtime_ns
    reference = first.forward([[1, 2, 3]], None)[0]

    load(model, backend="onnx")  # reused: no export, file untouched
    assert onnx_export.exports == before + 1 and entry.stat().st_mtime_ns == stamp

    entry.write_bytes(b"\x00garbage\xff" * 100)  # corrupt: rebuilt, not trusted
    again = load(model, backend="onnx")
    assert onnx_export.exports == before + 2
    assert max_diff(again.forward([[1, 2, 3]], None)[0], reference) == 0

    other = write_model(tmp_path / "other", seed=3)  # stale: another model's export under this key
    onnx_export.export_onnx(other, entry)
    assert max_diff(load(model, backend="onnx").forward([[1, 2, 3]], None)[0], reference) == 0
    assert onnx_export.exports == before + 4

    write_model(tmp_path / "model", seed=4)  # the model file changed: a new entry beside the old
    changed = load(model, backend="onnx")
    assert len(list(cache.glob("*.onnx"))) == 2 and onnx_export.exports == before + 5
    assert max_diff(changed.forward([[1, 2, 3]], None)[0], reference) > 1e-3
    assert not list(cache.glob(".*partial"))


# -- choosing the backend ------------------------------------------------------------------------


def fake_providers(monkeypatch, providers):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(providers))


def chosen(*args, **kwargs) -> tuple[str, str]:
    """(backend, device) that select_backend chooses."""
    choice = select_backend(*args, **kwargs)
    return choice.backend, choice.device


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_auto_picks_directml_when_there_is_no_cuda(monkeypatch, model):
    fake_providers(monkeypatch, ["DmlExecutionProvider", "CPUExecutionProvider"])
    choice = select_backend("auto", "auto", model)
    assert (choice.backend, choice.device, choice.reason.why) == ("onnx", "directml", Why.AUTO_DIRECTML)
    assert "DirectML" in choice.reason.text()
    assert chosen("onnx", "auto", model) == ("onnx", "directml")
    assert chosen("directml", "auto", model) == ("onnx", "directml")
    assert select_backend("directml", "auto", model).reason.text() == "directml backend, device directml asked for"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_auto_on_a_cpu_machine_is_torch_and_onnx_and_says_why(model):
    choice = select_backend("auto", "auto", model)
    reason = choice.reason.text()
    assert (choice.backend, choice.device) == (cpu_auto_backend(), "cpu")  # backends.engines.hybrid_engine; tests/test_hybrid_engine.py
    assert "CUDA" in reason and "prompts" in reason
    exported = select_backend("auto", "auto", model.with_suffix(".onnx"))
    assert (exported.backend, exported.device, exported.auto) == ("onnx", "cpu", True)
    assert exported.reason.text().startswith("auto (an .onnx file) backend: the first of")


def test_onnx_takes_providers_in_order(monkeypatch, model):
    fake_providers(monkeypatch, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert chosen("onnx", "auto", model) == ("onnx", "cuda")
    assert chosen("onnx", "cpu", model) == ("onnx", "cpu")
    fake_providers(monkeypatch, ["CPUExecutionProvider"])
    assert chosen("onnx", "auto", model) == ("onnx", "cpu")
    with pytest.raises(LoadError, match="CUDAExecutionProvider"):
        select_backend("onnx", "cuda", model)


@pytest.mark.skipif("DmlExecutionProvider" in REAL_PROVIDERS, reason="needs a machine without DirectML")
def test_directml_without_directml_is_one_line_listing_the_providers(model):
    with pytest.raises(LoadError) as caught:
        load(model, backend="directml")
    message = str(caught.value)
    assert "\n" not in message and "DmlExecutionProvider" in message
    assert all(provider in message for provider in REAL_PROVIDERS)


@pytest.mark.skipif("DmlExecutionProvider" in REAL_PROVIDERS, reason="needs a machine without DirectML")
def test_a_provider_that_fails_to_start_is_an_error_not_a_silent_cpu_run(monkeypatch, exported):
    fake_providers(monkeypatch, ["DmlExecutionProvider", "CPUExecutionProvider"])  # ORT itself has no DirectML
    with pytest.raises(LoadError, match="fell back to the CPU"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ONNX Runtime's own warning about the missing provider
        load(exported, backend="directml")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_lists_what_is_available(model):
    with pytest.raises(LoadError) as caught:
        load(model, backend="auto", device="cuda")
    assert "available: cpu" in str(caught.value) and "CPUExecutionProvider" in str(caught.value)


def test_directml_session_options():
    options = session_options(["DmlExecutionProvider", "CPUExecutionProvider"])
    assert options.enable_mem_pattern is False
    assert options.execution_mode == onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    assert session_options(["CPUExecutionProvider"]).enable_mem_pattern is True


def test_the_engine_says_which_backend_and_why(engines):
    torch_engine, onnx_engine = engines
    assert isinstance(torch_engine, Engine) and isinstance(onnx_engine, Engine)
    assert onnx_engine.selection.backend == "onnx" and onnx_engine.info.device == "cpu"
    assert torch_engine.selection.backend == "torch" and torch_engine.selection.reason.text()


# -- the command ---------------------------------------------------------------------------------


def test_export_onnx_command_writes_the_file_and_its_vocabulary(tmp_path, capsys, model):
    from ai_writer.studio.cli import main

    out = tmp_path / "out" / "novel.onnx"
    assert main(["export-onnx", str(model), str(out)]) == 0
    assert out.is_file() and out.with_suffix(".json").read_bytes() == model.with_suffix(".json").read_bytes()
    assert "2 x 128" in capsys.readouterr().out
    assert load(out).info.backend == "onnx"

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    assert main(["export-onnx", str(broken), str(tmp_path / "b.onnx")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "broken.safetensors" in err and not (tmp_path / "b.onnx").exists()
