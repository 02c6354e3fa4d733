"""RWKV-4 on the onnx backend against the torch backend, on real ONNX Runtime CPU sessions.

Random RWKV-4s from ai_writer.models.rwkv4's seeded init (2 layers x 128, vocabulary 300,
BlinkDL key names) run on both backends. Tolerance: max |Δlogit| <= 1e-4 (float32)
after a 64-token prompt (the ONNX side steps through it token by token, torch reads
it in one sequence forward) and after each of 16 batched steps of 3 rows. Two
models: an ordinary one, and a "strong" one whose decays are extreme (time_decay up
to 12, so w = -exp(time_decay) reaches the MIN_DECAY floor) and whose keys are
scaled so that the WKV exponents pass 88, where e^x overflows float32: only the
max-tracking (aa, bb, pp) form keeps it finite. Also: the graph (opset 17, float32,
dynamic batch, rwkv4 metadata), an .onnx file without torch, greedy generation,
`auto` on a DirectML machine, and `ai-writer export-onnx`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from ai_writer.backends import EngineError, LoadError, load
from ai_writer.backends.engines.numpy_state import NO_PAST, RWKV4NumpyState
from ai_writer.backends.files import onnx_export
from ai_writer.backends.selection import Why, model_architecture, select_backend
from ai_writer.models import rwkv4
from ai_writer.models.checkpoint import save_safetensors
from tests.helpers import greedy_texts, REPO, random_rwkv7_weights, write_checkpoint

TOLERANCE = 1e-4
VOCAB = 300
CHARS = ["\n", "。", "，"] + [chr(0x4E00 + i) for i in range(VOCAB - 3)]
OVERFLOW = 88.7  # e^x is inf in float32 above this


def random_rwkv4_weights(n_layer=2, n_embd=128, vocab_size=VOCAB, seed=0, spread=1.0) -> dict:
    model = rwkv4.init_weights(rwkv4.RWKV4(rwkv4.RWKV4Config(n_layer, n_embd, vocab_size)), seed=seed, spread=spread)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def strong_weights(seed=5) -> dict:
    """Extreme decays (many at the MIN_DECAY floor, some near 0) and keys large enough to pass e^88."""
    weights = random_rwkv4_weights(seed=seed, spread=2.0)
    gen = torch.Generator().manual_seed(seed)
    for name in list(weights):
        if name.endswith("att.time_decay"):
            weights[name] = torch.rand(weights[name].shape, generator=gen) * 18.0 - 6.0  # w from -0.0025 to -1e4
        elif name.endswith("att.key.weight"):
            weights[name] = weights[name] * 60.0
    return weights


def write_model(folder, weights, stem="m", suffix=".safetensors"):
    folder.mkdir(parents=True, exist_ok=True)
    path = write_checkpoint(folder / f"{stem}{suffix}", weights)
    path.with_suffix(".json").write_text(json.dumps(dict(enumerate(CHARS)), ensure_ascii=False), encoding="utf-8")
    return path


def max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx4-cache")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("onnx4-model"), random_rwkv4_weights(seed=1, spread=1.6))


@pytest.fixture(scope="module")
def engines(model, cache):
    return load(model, backend="torch", device="cpu"), load(model, backend="onnx", device="cpu", cache_dir=cache)


@pytest.fixture(scope="module")
def strong_engines(tmp_path_factory, cache):
    path = write_model(tmp_path_factory.mktemp("onnx4-strong"), strong_weights())
    return load(path, backend="torch", device="cpu"), load(path, backend="onnx", device="cpu", cache_dir=cache)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx4-file") / "x.onnx"
    onnx_export.export_onnx(model, out)
    out.with_suffix(".json").write_bytes(model.with_suffix(".json").read_bytes())
    return out


# -- parity with torch ----------------------------------------------------------------------


@pytest.mark.parametrize("which", ["ordinary", "strong"])
def test_a_prompt_then_batched_steps_match_torch(which, engines, strong_engines):
    torch_engine, onnx_engine = engines if which == "ordinary" else strong_engines
    assert (torch_engine.info.architecture, onnx_engine.info.architecture) == ("rwkv4", "rwkv4")
    rng = np.random.default_rng(7)
    prompts = rng.integers(0, VOCAB, size=(3, 64)).tolist()
    logits_t, state_t = torch_engine.forward(prompts[:1], None)
    logits_o, state_o = onnx_engine.forward(prompts[:1], None)
    assert isinstance(state_o, RWKV4NumpyState) and state_o._fields == rwkv4.RWKV4State._fields
    assert logits_o.dtype == np.float32 and logits_o.shape == (1, VOCAB)
    prompt_diff = max_diff(logits_o, logits_t)
    assert prompt_diff <= TOLERANCE
    for name, ours, theirs in zip(state_o._fields, state_o, state_t):
        assert ours.dtype == np.float32 and ours.shape == tuple(theirs.shape)
        theirs = theirs.numpy()
        scale = max(1.0, float(np.abs(theirs).max()))  # pp is an exponent: compared relative to its size
        assert max_diff(ours, theirs) <= TOLERANCE * scale, name
    if which == "strong":  # the case only the max-tracking form survives: e^pp is inf in float32
        assert float(state_o.pp.max()) > OVERFLOW and float(state_t.pp.max()) > OVERFLOW
        assert all(np.isfinite(a).all() for a in state_o)

    _, state_t = torch_engine.forward(prompts, None)  # 3 rows at once
    _, state_o = onnx_engine.forward(prompts, None)
    worst = 0.0
    for step in range(16):
        tokens = [[int(t)] for t in rng.integers(0, VOCAB, 3)]
        logits_t, state_t = torch_engine.forward(tokens, state_t)
        logits_o, state_o = onnx_engine.forward(tokens, state_o)
        diff = max_diff(logits_o, logits_t)
        assert diff <= TOLERANCE, f"step {step}: max |Δlogit| {diff}"
        worst = max(worst, diff)
    print(f"{which}: max |Δlogit| after the 64-token prompt {prompt_diff:.2e}, over 16 steps of 3 rows {worst:.2e}")


def test_zero_state_full_output_and_forked_rows(engines):
    torch_engine, onnx_engine = engines
    zero = onnx_engine.zero_state(2)
    assert isinstance(zero, RWKV4NumpyState) and [a.shape for a in zero] == [tuple(t.shape) for t in torch_engine.zero_state(2)]
    assert NO_PAST == rwkv4.NO_PAST and onnx_export.MIN_DECAY == rwkv4.MIN_DECAY
    assert (zero.pp == np.float32(rwkv4.NO_PAST)).all() and not any(a.any() for a in (zero.aa, zero.bb, zero.att_x_prev))

    tokens = [[5, 17, 42, 99, 250, 3]]
    full_t, state_t = torch_engine.forward(tokens, None, full_output=True)
    full_o, state_o = onnx_engine.forward(tokens, None, full_output=True)
    assert full_o.shape == (1, 6, VOCAB) and max_diff(full_o, full_t) <= TOLERANCE
    forked_t, forked_o = torch_engine.repeat_rows(state_t, 2), onnx_engine.repeat_rows(state_o, 2)
    assert isinstance(forked_o, RWKV4NumpyState)
    logits_t, after_t = torch_engine.forward([[1], [2]], forked_t)
    logits_o, after_o = onnx_engine.forward([[1], [2]], forked_o)
    assert max_diff(logits_o, logits_t) <= TOLERANCE
    assert max_diff(forked_o.pp, np.repeat(state_o.pp, 2, axis=1)) == 0  # the given state is not modified
    kept_t, kept_o = torch_engine.take_rows(after_t, [1]), onnx_engine.take_rows(after_o, [1])
    assert max_diff(onnx_engine.forward([[7]], kept_o)[0], torch_engine.forward([[7]], kept_t)[0]) <= TOLERANCE
    with pytest.raises(EngineError, match="rows"):
        onnx_engine.forward([[1], [2]], onnx_engine.zero_state(3))
    with pytest.raises(EngineError, match="shapes"):
        onnx_engine.forward([[1]], tuple(zero)[:3])


def test_greedy_generation_writes_the_same_text_on_both_backends(engines):
    first, second = engines
    assert greedy_texts(first, CHARS) == greedy_texts(second, CHARS)


# -- the exported graph -----------------------------------------------------------------------


def test_the_graph_is_opset_17_float32_with_a_dynamic_batch_and_rwkv4_metadata(exported):
    model = onnx.load(str(exported))
    assert {o.domain: o.version for o in model.opset_import} == {"": 17}
    assert model.ir_version <= 8
    ops = {node.op_type for node in model.graph.node}
    for op in ops:  # each op has a definition at opset 17 or older (raises otherwise)
        assert onnx.defs.get_schema(op, 17, "").since_version <= 17
    assert {"LayerNormalization", "MatMul", "Max", "Exp", "Div", "Sigmoid", "Relu"} <= ops
    assert all(t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64) for t in model.graph.initializer)
    assert [i.name for i in model.graph.input] == list(onnx_export.INPUTS4)
    assert [o.name for o in model.graph.output] == list(onnx_export.OUTPUTS4)
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        assert dims[0 if value.name in ("tokens", "logits") else 1].dim_param == "batch"
        if value.name not in ("tokens", "logits"):
            assert [d.dim_value for d in dims if not d.dim_param] == [2, 128]  # (L, batch, C or A)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["architecture"] == "rwkv4" and meta["format"] == onnx_export.FORMAT
    assert (meta["n_layer"], meta["n_embd"], meta["n_att"], meta["n_ffn"], meta["vocab_size"]) == (
        "2", "128", "128", "512", str(VOCAB))


def test_an_rwkv4_onnx_file_runs_without_torch_and_matches_its_model(exported, engines):
    code = ("import sys; from ai_writer.backends import load; e = load('x.onnx'); "
            "logits, state = e.forward([[3, 1, 4, 1, 5]], None); "
            "assert e.info.architecture == 'rwkv4' and e.info.backend == 'onnx', e.info; "
            "assert 'torch' not in sys.modules, 'torch was imported'; "
            "import numpy; numpy.save(sys.argv[1], logits)")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = exported.parent / "logits.npy"
    result = subprocess.run([sys.executable, "-c", code, str(out)], cwd=exported.parent, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert max_diff(np.load(out), engines[0].forward([[3, 1, 4, 1, 5]], None)[0]) <= TOLERANCE


def test_formats_an_older_version_wrote_still_open_for_their_architecture(tmp_path):
    rwkv7 = write_model(tmp_path / "7", random_rwkv7_weights(2, 64, VOCAB, seed=3))
    out = tmp_path / "old7.onnx"
    onnx_export.export_onnx(rwkv7, out)
    out.with_suffix(".json").write_bytes(rwkv7.with_suffix(".json").read_bytes())
    graph = onnx.load(str(out))
    onnx.helper.set_model_props(graph, {**{p.key: p.value for p in graph.metadata_props}, "format": "rwkv7-step-1"})
    onnx.save(graph, str(out))
    assert load(out, backend="onnx").info.architecture == "rwkv7"  # as the first version exported it

    model4 = write_model(tmp_path / "4", random_rwkv4_weights(1, 32, seed=2))
    out4 = tmp_path / "bad4.onnx"
    onnx_export.export_onnx(model4, out4)
    out4.with_suffix(".json").write_bytes(model4.with_suffix(".json").read_bytes())
    graph = onnx.load(str(out4))
    onnx.helper.set_model_props(graph, {**{p.key: p.value for p in graph.metadata_props}, "format": "rwkv7-step-1"})
    onnx.save(graph, str(out4))
    with pytest.raises(LoadError, match="rwkv4 export"):  # that format never held an RWKV-4
        load(out4, backend="onnx")


def test_other_architectures_do_not_export(tmp_path):
    weights = random_rwkv4_weights(1, 32, seed=2)
    weights["blocks.0.att.ln_x.weight"] = torch.ones(32)  # RWKV-5's key set
    path = write_model(tmp_path, weights, stem="five")
    with pytest.raises(onnx_export.ExportError, match="only RWKV-7 and RWKV-4.*rwkv5"):
        onnx_export.export_onnx(path, tmp_path / "five.onnx")
    assert not (tmp_path / "five.onnx").exists()


# -- choosing the backend ---------------------------------------------------------------------


def fake_providers(monkeypatch, providers):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(providers))


def chosen(*args, **kwargs) -> tuple[str, str]:
    """(backend, device) that select_backend chooses."""
    choice = select_backend(*args, **kwargs)
    return choice.backend, choice.device


def test_auto_on_directml_takes_onnx_only_for_architectures_it_runs(tmp_path, monkeypatch, model):
    fake_providers(monkeypatch, ["DmlExecutionProvider", "CPUExecutionProvider"])
    pth4 = write_model(tmp_path / "pth", random_rwkv4_weights(1, 32, seed=2), suffix=".pth")
    rwkv7 = write_model(tmp_path / "7", random_rwkv7_weights(1, 64, VOCAB, seed=3))
    six = tmp_path / "six.safetensors"  # RWKV-6's key set
    save_safetensors({"emb.weight": torch.zeros(4, 8), "blocks.0.ln0.weight": torch.ones(8),
                      "blocks.0.att.time_decay": torch.zeros(8), "blocks.0.att.time_maa_x": torch.zeros(1, 1, 8)}, six)
    assert [model_architecture(p) for p in (model, pth4, rwkv7, six)] == ["rwkv4", "rwkv4", "rwkv7", "rwkv6"]
    for path in (model, pth4, rwkv7):
        assert chosen("auto", "auto", path, cuda_available=False) == ("onnx", "directml"), path
    choice = select_backend("auto", "auto", six, cuda_available=False)
    assert (choice.backend, choice.device, choice.reason.why) == ("torch", "cpu", Why.DIRECTML_CANNOT_RUN)
    assert "rwkv6" in choice.reason.text() and "DirectML" in choice.reason.text()
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    assert model_architecture(garbage) is None
    assert chosen("auto", "auto", garbage, cuda_available=False) == ("torch", "cpu")
    assert chosen("auto", "auto", None, cuda_available=False) == ("onnx", "directml")
    assert chosen("auto", "auto", six, cuda_available=True) == ("torch", "cuda")


def test_export_onnx_command_exports_an_rwkv4(tmp_path, capsys, model):
    from ai_writer.studio.cli import main

    out = tmp_path / "out" / "four.onnx"
    assert main(["export-onnx", str(model), str(out)]) == 0
    assert out.is_file() and out.with_suffix(".json").read_bytes() == model.with_suffix(".json").read_bytes()
    assert "2 x 128" in capsys.readouterr().out
    engine = load(out)
    assert (engine.info.backend, engine.info.architecture) == ("onnx", "rwkv4")
