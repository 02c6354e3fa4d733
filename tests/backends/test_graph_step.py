"""The torch backend's recorded decode step (backends/engines/graph_step.py).

On a CPU the step's buffers and copies run the model eagerly (record=False), and a recording asked for where
CUDA is missing fails into that path: those tests run everywhere. The tests that record and replay CUDA graphs
run where torch sees a GPU and are skipped elsewhere (with the reason); nothing of the recording itself is
checked on a machine without one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ai_writer.backends import load
from ai_writer.backends.engines import graph_step
from ai_writer.backends.engines.graph_step import GraphedStep
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights
from ai_writer.models.rwkv7_fused import prepare_for_inference
from tests.helpers import cjk_chars, random_rwkv7_weights, write_model_with_chars

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="records CUDA graphs: torch sees no CUDA device here")


def make_model(device="cpu", dtype=torch.float32, vocab=97):
    model = init_weights(RWKV7(RWKV7Config(2, 64, vocab)), seed=3, spread=1.5)
    return prepare_for_inference(model).to(device=device, dtype=dtype)


def eager_steps(model, tokens, state, steps):
    out = []
    with torch.inference_mode():
        for t in steps:
            logits, state = model(tokens + t, state)
            out.append(logits)
    return out, state


def test_the_buffered_step_is_the_model_s_step_on_a_cpu():
    model = make_model()
    graphed = GraphedStep(model, record=False)
    with torch.inference_mode():
        _, primed = model(torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]]), None)
    tokens = torch.tensor([[10], [20], [30]])
    expected, expected_state = eager_steps(model, tokens, primed, range(4))
    state, given = primed, [t.clone() for t in primed]
    with torch.inference_mode():
        for t, want in zip(range(4), expected):
            logits, state = graphed.step(tokens + t, state)
            assert torch.equal(logits, want)
    assert all(torch.equal(a, b) for a, b in zip(state, expected_state))
    assert all(torch.equal(a, b) for a, b in zip(primed, given))  # the caller's state is not modified
    assert graphed.replays == 0 and graphed.why_eager == "no CUDA device"


def test_what_a_step_returns_is_its_own():
    model = make_model()
    graphed = GraphedStep(model, record=False)
    with torch.inference_mode():
        state = model.zero_state(2)
        first_logits, first_state = graphed.step(torch.tensor([[1], [2]]), state)
        kept = first_logits.clone(), [t.clone() for t in first_state]
        graphed.step(torch.tensor([[3], [4]]), first_state)  # the buffers are written again
    assert torch.equal(first_logits, kept[0]) and all(torch.equal(a, b) for a, b in zip(first_state, kept[1]))
    buffers = graphed._recordings[2]
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(first_state, buffers.state))


def test_each_batch_size_has_its_buffers_and_the_least_used_go(monkeypatch):
    monkeypatch.setattr(graph_step, "MAX_GRAPHS", 2)
    model = make_model()
    graphed = GraphedStep(model, record=False)
    with torch.inference_mode():
        for batch in (1, 2, 1, 3):
            logits, _ = graphed.step(torch.ones(batch, 1, dtype=torch.long), model.zero_state(batch))
            assert logits.shape == (batch, 97)
    assert list(graphed._recordings) == [1, 3]  # 2 was the least recently used


def test_a_recording_that_cannot_be_made_runs_eagerly():
    if CUDA:
        pytest.skip("this machine records graphs: the failure path is the CPU's")
    model = make_model()
    graphed = GraphedStep(model, record=True)  # as on a GPU, but torch has no CUDA here: the capture fails
    with torch.inference_mode():
        logits, state = graphed.step(torch.tensor([[5]]), model.zero_state(1))
        want, want_state = model(torch.tensor([[5]]), model.zero_state(1))
    assert torch.equal(logits, want) and all(torch.equal(a, b) for a, b in zip(state, want_state))
    assert not graphed.record and graphed.why_eager.startswith("recording failed: ")
    assert "\n" not in graphed.why_eager


def test_which_models_record(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert graph_step.wanted(cuda, "rwkv7") and not graph_step.wanted(cpu, "rwkv7")
    assert not graph_step.wanted(cuda, "aiwriter-v1")  # its windows branch on values
    monkeypatch.setenv(graph_step.SWITCH_ENV, "0")
    assert not graph_step.wanted(cuda, "rwkv7")


def test_a_torch_engine_on_the_cpu_steps_eagerly(tmp_path):
    path = write_model_with_chars(tmp_path, random_rwkv7_weights(2, 64, 50, seed=2), cjk_chars(50))
    engine = load(path, backend="torch", device="cpu")
    assert engine.graphed is None
    engine.graphed = GraphedStep(engine.model, record=False)  # the GPU's path through the engine, eagerly
    plain = load(path, backend="torch", device="cpu")
    a, sa = engine.forward([[3], [4]])  # no state: the step starts from zeros
    b, sb = plain.forward([[3], [4]])
    assert np.array_equal(a, b) and all(torch.equal(x, y) for x, y in zip(sa, sb))
    a, _ = engine.forward([[5], [6]], sa)
    b, _ = plain.forward([[5], [6]], sb)
    assert np.array_equal(a, b) and len(engine.graphed._recordings) == 1
    prompt, _ = engine.forward([[1, 2, 3]])  # prompts run the model as before
    assert np.array_equal(prompt, plain.forward([[1, 2, 3]])[0]) and len(engine.graphed._recordings) == 1


# -- on a GPU -------------------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_the_replayed_step_is_the_eager_step_on_a_gpu(dtype):
    model = make_model("cuda", dtype)
    graphed = GraphedStep(model)
    with torch.inference_mode():
        _, primed = model(torch.tensor([[1, 2, 3]] * 4, device="cuda"), None)
        tokens = torch.tensor([[10], [20], [30], [40]], device="cuda")
        expected, _ = eager_steps(model, tokens, primed, range(6))
        state = primed
        for t, want in zip(range(6), expected):
            logits, state = graphed.step(tokens + t, state)
            scale = max(1.0, float(want.abs().max()))
            assert float((logits.float() - want.float()).abs().max()) / scale <= (2e-3 if dtype == torch.float16 else 1e-5)
    assert graphed.record and graphed.why_eager is None and graphed.replays == 6


@needs_cuda
def test_a_gpu_engine_decodes_through_the_graph_and_agrees_with_the_package(tmp_path):
    pytest.importorskip("rwkv", reason="the rwkv package (the test oracle) is not installed")
    from tests.models.rwkv_parity import run_oracle

    weights = random_rwkv7_weights(2, 128, 300, seed=4)
    path = write_model_with_chars(tmp_path, weights, cjk_chars(300))
    checkpoint = tmp_path / "oracle.pth"
    torch.save(weights, checkpoint)
    prompt, steps = list(range(3, 40)), [7, 8, 9, 10, 11, 12]
    oracle = run_oracle(tmp_path, checkpoint, prompt, steps, "7", strategy="cuda fp16")
    engine = load(path, backend="torch", device="cuda", dtype="float16")
    logits, state = engine.forward([prompt])
    differences = [float(np.abs(logits[0] - oracle["prompt"].numpy()).max())]
    for i, token in enumerate(steps):
        logits, state = engine.forward([[token]], state)
        differences.append(float(np.abs(logits[0] - oracle["steps"][i].numpy()).max()))
    assert engine.graphed.replays == len(steps)
    assert max(differences) <= 0.05, differences  # two float16 computations of the same model
