"""The C step (backends.engines.native_step) and the ONNX step graph (backends.files.onnx_export) against the plain
reference (models.rwkv7.RWKV7), not only against the torch engine.

Random models of several shapes (head size 64, 32 and 24; LoRA widths and a
vocabulary that are no multiple of 16) run a prompt on the plain form, then single
steps from its state on each step, for 1 to 5 rows (the C step reads the weights
once for up to 4 rows, so 5 take a second pass). Logits and every state array agree
to 1e-5 relative to the array's largest value above 1. The C step also runs a
whole prompt token by token, and its prompt scan (the state update over T tokens)
equals the token-by-token definition, models.wkv7.wkv7_loop.
"""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch

from ai_writer.backends.engines import native_step
from ai_writer.backends.engines.base import EngineInfo
from ai_writer.backends.engines.native_step import NativeStep, native_possible
from ai_writer.backends.engines.onnx_engine import OnnxEngine
from ai_writer.backends.files import onnx_export
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights
from ai_writer.models.rwkv7_fused import prepare_for_inference
from ai_writer.models.wkv7 import wkv7_loop

TOLERANCE = 1e-5
CONFIGS = {
    "2x128 head 64": RWKV7Config(2, 128, 301),
    "3x96 head 32": RWKV7Config(3, 96, 211, head_size=32),
    "2x48 head 24, odd LoRA widths": RWKV7Config(2, 48, 150, head_size=24, d_decay=40, d_iclr=24, d_value=20, d_gate=36),
}
needs_compiler = pytest.mark.skipif(not native_possible(), reason="needs a C compiler (CI has gcc)")


def max_error(found, reference) -> float:
    found, reference = np.asarray(found, np.float64), np.asarray(reference, np.float64)
    return float(np.abs(found - reference).max() / max(1.0, np.abs(reference).max()))


def info(config, backend) -> EngineInfo:
    return EngineInfo("rwkv7", backend, "cpu", "random", config.n_layer, config.n_embd, config.vocab_size)


@pytest.fixture(scope="module", params=list(CONFIGS))
def plain(request):
    return init_weights(RWKV7(CONFIGS[request.param]), seed=len(request.param), spread=1.6).eval()


@pytest.fixture(scope="module")
def c_step(plain):
    """The C step over the loader's form of the same weights (eager: it takes the C scan)."""
    model = prepare_for_inference(plain, script=False)
    return NativeStep.of_torch_model(native_step.build_library(), model, None, info(plain.config, "torch+native")), model


@pytest.fixture(scope="module")
def onnx_step(plain):
    weights = {k: v.detach().float().contiguous().numpy() for k, v in plain.state_dict().items()}
    graph = onnx_export.step_graph(weights, architecture="rwkv7")
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    return OnnxEngine(session, None, info(plain.config, "onnx"), head_size=plain.config.head_size)


def run_steps_against_plain(plain, step, rows):
    """A prompt on the plain form, then 6 steps on `step` and on the plain form from the same state."""
    config = plain.config
    rng = np.random.default_rng(rows)
    prompt = torch.from_numpy(rng.integers(0, config.vocab_size, size=(rows, 7)))
    with torch.inference_mode():
        _, ref_state = plain(prompt)
    state = tuple(t.numpy().copy() for t in ref_state)
    for t in range(6):
        tokens = rng.integers(0, config.vocab_size, size=(rows, 1))
        with torch.inference_mode():
            ref_logits, ref_state = plain(torch.from_numpy(tokens), ref_state)
        logits, state = step.forward(tokens.tolist(), state)
        assert max_error(logits, ref_logits) <= TOLERANCE, t
        assert max(max_error(f, r) for f, r in zip(state, ref_state)) <= TOLERANCE, t


@needs_compiler
@pytest.mark.parametrize("rows", [1, 3, 5])
def test_the_c_step_matches_the_plain_form(plain, c_step, rows):
    run_steps_against_plain(plain, c_step[0], rows)


@pytest.mark.parametrize("rows", [1, 3, 5])
def test_the_onnx_step_matches_the_plain_form(plain, onnx_step, rows):
    run_steps_against_plain(plain, onnx_step, rows)


@needs_compiler
def test_a_prompt_through_the_c_step_and_through_its_scan_matches_the_plain_form(plain, c_step):
    step, model = c_step
    config = plain.config
    prompt = torch.randint(0, config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ref_logits, ref_state = plain(prompt, full_output=True)
        scanned, scanned_state = model(prompt, full_output=True)  # torch's products, the C scan
    stepped, stepped_state = step.forward(prompt.tolist(), full_output=True)  # 12 C steps
    assert max_error(stepped, ref_logits) <= TOLERANCE and max_error(scanned, ref_logits) <= TOLERANCE
    for a, b, reference in zip(stepped_state, scanned_state, ref_state):
        assert max(max_error(a, reference), max_error(b, reference)) <= TOLERANCE


@pytest.fixture(scope="module")
def scan():
    model = prepare_for_inference(init_weights(RWKV7(RWKV7Config(1, 64, 50)), seed=1), script=False)
    return NativeStep.of_torch_model(native_step.build_library(), model, None, info(model.config, "torch+native")).sequence_wkv


@needs_compiler
@pytest.mark.parametrize("shape", [(1, 40, 2, 64), (3, 17, 2, 24), (2, 9, 3, 32)])
def test_the_c_scan_is_the_state_update_stepped_token_by_token(shape, scan):
    B, T, H, N = shape
    g = torch.Generator().manual_seed(N)
    kk = torch.nn.functional.normalize(torch.randn(B, T, H, N, generator=g), dim=-1)
    iclr = torch.sigmoid(torch.randn(B, T, H, N, generator=g) * 2)
    log_w = -0.606531 * torch.sigmoid(torch.randn(B, T, H, N, generator=g) * 3)
    r, k, v = (torch.randn(B, T, H, N, generator=g) for _ in range(3))
    state = torch.randn(B, H, N, N, generator=g)
    inputs = (state, r, log_w, k, v, -kk, kk * iclr)
    with torch.inference_mode():
        out, new_state = scan(*inputs)
    exact_out, exact_state = wkv7_loop(*(t.double() for t in inputs))
    assert max_error(out, exact_out) <= TOLERANCE and max_error(new_state, exact_state) <= TOLERANCE
