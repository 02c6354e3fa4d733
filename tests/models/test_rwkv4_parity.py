"""RWKV-4 against the reference: the `rwkv` PyPI package 0.8.32 (v4 class), strategy "cpu fp32".

Random checkpoints are written with BlinkDL's key names and shapes; the package
runs in a subprocess without RWKV_V7_ON (which would rebind its RWKV class to
RWKV-7). Tolerance: max |Δlogit| <= 1e-4 after a 64-token sequence and after each
of 16 following single steps, for both sequence forms (the per-position loop used
on CPUs and the chunked scan used elsewhere). Then the forms against each other.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ai_writer.backends import load
from ai_writer.models.checkpoint import detect_architecture
from ai_writer.models.rwkv4 import RWKV4, RWKV4Config, init_weights, prepare_for_inference, wkv4_chunked, wkv4_loop
from tests.helpers import REPO, write_checkpoint

ORACLE = REPO / "tests" / "oracle" / "rwkv4_package_run.py"
TOLERANCE = 1e-4
SHAPES = [  # (n_layer, n_embd, vocab, seed, spread)
    (2, 128, 500, 1, 1.0),
    (3, 192, 1000, 2, 3.0),  # decays down to w = -e^7.5, mixes over the whole 0..1 range
]


def random_rwkv4_weights(n_layer=2, n_embd=64, vocab_size=300, seed=0, spread=1.0) -> dict:
    """A random state dict with BlinkDL's exact RWKV-4 key names and shapes (never a model to ship)."""
    model = init_weights(RWKV4(RWKV4Config(n_layer, n_embd, vocab_size)), seed=seed, spread=spread)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return weights


def run_oracle(tmp_path, weights, prompt, steps):
    pth = write_checkpoint(tmp_path / "model.pth", weights)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"prompt": prompt, "steps": steps}))
    out = tmp_path / "oracle.pt"
    subprocess.run([sys.executable, str(ORACLE), str(pth), str(request), str(out)], check=True, capture_output=True, timeout=300)
    return torch.load(out, weights_only=True)


@pytest.fixture(scope="module", params=SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def case(request, tmp_path_factory):
    n_layer, n_embd, vocab, seed, spread = request.param
    tmp = tmp_path_factory.mktemp("parity4")
    weights = random_rwkv4_weights(n_layer, n_embd, vocab, seed, spread)
    rng = np.random.default_rng(seed)
    prompt = rng.integers(0, vocab, 64).tolist()
    steps = rng.integers(0, vocab, 16).tolist()
    oracle = run_oracle(tmp, weights, prompt, steps)
    model_path = write_checkpoint(tmp / "model.safetensors", weights)
    (tmp / "model.json").write_text(json.dumps({str(i): chr(0x4E00 + i) for i in range(vocab)}, ensure_ascii=False))
    engine = load(model_path, backend="torch", device="cpu")
    scan = RWKV4(RWKV4Config.from_state_dict(weights), scan_on_cpu=True)
    scan.load_state_dict(weights)
    return engine, prepare_for_inference(scan), prompt, steps, oracle


def test_the_engine_loads_an_rwkv4_checkpoint(case):
    engine = case[0]
    assert engine.info.architecture == "rwkv4"
    assert engine.info.backend == "torch"
    assert type(engine.model).__name__ == "RWKV4"


def _run(model_or_engine, tokens, state):
    if hasattr(model_or_engine, "info"):
        logits, state = model_or_engine.forward([tokens], state)
        return torch.from_numpy(logits[0]), state
    with torch.inference_mode():
        logits, state = model_or_engine(torch.tensor([tokens]), state)
    return logits[0], state


@pytest.mark.parametrize("form", ["loop", "scan"])
def test_sequence_then_steps_match_the_package(case, form):
    engine, scan, prompt, steps, oracle = case
    runner = engine if form == "loop" else scan
    logits, state = _run(runner, prompt, None)
    diffs = [(logits - oracle["prompt"]).abs().max().item()]
    for i, token in enumerate(steps):
        logits, state = _run(runner, [token], state)
        diffs.append((logits - oracle["steps"][i]).abs().max().item())
    assert max(diffs) <= TOLERANCE, f"max |Δlogit| per position: {diffs}"


@pytest.mark.parametrize("form", ["loop", "scan"])
def test_final_state_matches_the_package_layout(case, form):
    engine, scan, prompt, steps, oracle = case
    runner = engine if form == "loop" else scan
    _, state = _run(runner, prompt, None)
    for token in steps:
        _, state = _run(runner, [token], state)
    for layer in range(len(oracle["state"]) // 5):
        att_x, aa, bb, pp, ffn_x = oracle["state"][5 * layer : 5 * layer + 5]
        assert torch.allclose(state.att_x_prev[layer, 0], att_x, atol=1e-5)
        assert torch.allclose(state.ffn_x_prev[layer, 0], ffn_x, atol=1e-5)
        # aa, bb hold the sums divided by e^pp: compare the sums on the package's scale.
        scale = torch.exp(state.pp[layer, 0] - pp)
        assert torch.allclose(state.aa[layer, 0] * scale, aa, rtol=1e-4, atol=1e-4 * bb.abs().max().item())
        assert torch.allclose(state.bb[layer, 0] * scale, bb, rtol=1e-4, atol=1e-6)
        assert torch.all(state.pp[layer, 0] >= pp - 30)  # same representation, not a drifting one


def test_a_batch_of_prompts_matches_the_package_row_by_row(case):
    engine, _, prompt, steps, oracle = case
    other = list(reversed(prompt))
    logits, _ = engine.forward([prompt, other], None)
    assert np.abs(logits[0] - oracle["prompt"].numpy()).max() <= TOLERANCE
    alone, _ = engine.forward([other], None)
    assert np.abs(logits[1] - alone[0]).max() <= TOLERANCE


def test_an_rwkv4_key_set_is_told_from_rwkv5_and_rwkv6():
    weights = random_rwkv4_weights(1, 16, 10)
    assert detect_architecture(weights) == "rwkv4"
    assert detect_architecture({**weights, "blocks.0.att.ln_x.weight": torch.zeros(16)}) == "rwkv5"
    v6 = {**weights, "blocks.0.att.ln_x.weight": torch.zeros(16), "blocks.0.att.time_maa_x": torch.zeros(1, 1, 16)}
    assert detect_architecture(v6) == "rwkv6"


# -- the forms against each other (no package) ---------------------------------------------------


@pytest.fixture(scope="module")
def small():
    config = RWKV4Config(2, 64, 300)
    models = {}
    for form in ("loop", "scan"):
        model = init_weights(RWKV4(config, scan_on_cpu=form == "scan"), seed=5, spread=2.0)
        models[form] = prepare_for_inference(model)
    return models


@pytest.mark.parametrize("form", ["loop", "scan"])
def test_sequence_equals_stepping(small, form):
    model = small[form]
    tokens = torch.randint(0, 300, (3, 37), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        _, warm = model(tokens[:, :5])  # a non-empty incoming state
        full, state = model(tokens[:, 5:], warm, full_output=True)
        stepped = []
        s = warm
        for t in range(5, 37):
            logits, s = model.step(tokens[:, t], s)
            stepped.append(logits)
    assert (full - torch.stack(stepped, dim=1)).abs().max().item() <= 1e-4
    assert torch.allclose(state.att_x_prev, s.att_x_prev, atol=1e-5)
    assert torch.allclose(state.ffn_x_prev, s.ffn_x_prev, atol=1e-5)
    scale = torch.exp(state.pp - s.pp)  # the scan may keep the sums under another exponent
    assert torch.allclose(state.aa * scale, s.aa, atol=1e-4, rtol=1e-4)
    assert torch.allclose(state.bb * scale, s.bb, atol=1e-6, rtol=1e-4)


def test_a_batched_step_equals_single_rows(small):
    model = small["loop"]
    gen = torch.Generator().manual_seed(1)
    prompts = torch.randint(0, 300, (4, 9), generator=gen)
    nxt = torch.randint(0, 300, (4,), generator=gen)
    with torch.inference_mode():
        _, state = model(prompts)
        batched, _ = model.step(nxt, state)
        for row in range(4):
            _, alone_state = model(prompts[row : row + 1])
            alone, _ = model.step(nxt[row : row + 1], alone_state)
            assert (batched[row] - alone[0]).abs().max().item() <= 1e-5


def test_the_given_state_is_not_modified(small):
    model = small["loop"]
    with torch.inference_mode():
        _, state = model(torch.tensor([[1, 2, 3]]))
        before = [t.clone() for t in state]
        model.step(torch.tensor([4]), state)
        model(torch.tensor([[4, 5, 6]]), state)
    assert all(torch.equal(a, b) for a, b in zip(before, state))


@pytest.mark.parametrize("T", [1, 7, 16, 33, 300])
def test_both_wkv_forms_match_float64_on_extreme_decays(T):
    gen = torch.Generator().manual_seed(T)
    B, A = 2, 24
    k = torch.randn(B, T, A, generator=gen) * 8  # wide keys: e^k spans ~e^±30
    v = torch.randn(B, T, A, generator=gen)
    w = -torch.exp(torch.linspace(-9.0, 9.0, A)).clamp(max=1e4)  # from ~1e-4 to 1e4 per step
    u = torch.randn(A, generator=gen)
    aa, bb = torch.randn(B, A, generator=gen), torch.rand(B, A, generator=gen) + 0.1
    pp = torch.randn(B, A, generator=gen) * 5
    truth = wkv4_loop(*(t.double() for t in (w, u, k, v, aa, bb, pp)))
    loop = wkv4_loop(w, u, k, v, aa, bb, pp)
    # max_elements small enough to split 300 positions into segments
    scan = wkv4_chunked(w, u, k, v, aa, bb, pp, chunk=16, max_elements=B * 16 * A * 64)
    for form, (out, oa, ob, op), state_rtol in (("loop", loop, 1e-3), ("scan", scan, 2e-5)):
        assert torch.isfinite(out).all(), form
        assert (out.double() - truth[0]).abs().max().item() <= 1e-4, form
        scale = torch.exp(op.double() - truth[3])  # the sums on the reference's scale
        for ours, ref in ((oa, truth[1]), (ob, truth[2])):
            error = (ours.double() * scale - ref).abs().max().item() / ref.abs().max().item()
            assert error <= state_rtol, f"{form}: relative state error {error}"
