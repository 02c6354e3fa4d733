"""RWKV-7 against the reference: the `rwkv` PyPI package 0.8.32, strategy "cpu fp32".

Random checkpoints are written with BlinkDL's key names and shapes; the package
runs in a subprocess (its flags are read at import). Tolerance: max |Δlogit| <= 1e-4
after a 64-token sequence and after each of 16 following single steps, for the
torch engine (the fused form, models.rwkv7_fused) and for the plain reference
(models.rwkv7.RWKV7) that the other forms and steps are tested against.
"""

import numpy as np
import pytest
import torch

from ai_writer.backends import load
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config
from tests.helpers import random_rwkv7_weights, write_checkpoint
from tests.models.rwkv_parity import TOLERANCE, check_batch_rows, run_oracle, write_model

SHAPES = [  # (n_layer, n_embd, vocab, seed, spread)
    (2, 128, 500, 1, 1.0),
    (3, 256, 1000, 2, 1.6),  # wider decay / mixing ranges
]


@pytest.fixture(scope="module", params=SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def case(request, tmp_path_factory):
    n_layer, n_embd, vocab, seed, spread = request.param
    tmp = tmp_path_factory.mktemp("parity")
    weights = random_rwkv7_weights(n_layer, n_embd, vocab, seed, spread)
    rng = np.random.default_rng(seed)
    prompt = rng.integers(0, vocab, 64).tolist()
    steps = rng.integers(0, vocab, 16).tolist()
    oracle = run_oracle(tmp, write_checkpoint(tmp / "model.pth", weights), prompt, steps, "7")
    engine = load(write_model(tmp, weights, vocab), backend="torch", device="cpu")
    return engine, prompt, steps, oracle, weights


def test_sequence_then_steps_match_the_package(case):
    engine, prompt, steps, oracle, _ = case
    logits, state = engine.forward([prompt], None)
    assert np.abs(logits[0] - oracle["prompt"].numpy()).max() <= TOLERANCE
    for i, token in enumerate(steps):
        logits, state = engine.forward([[token]], state)
        diff = np.abs(logits[0] - oracle["steps"][i].numpy()).max()
        assert diff <= TOLERANCE, f"step {i}: max |Δlogit| {diff}"


def test_final_state_matches_the_package_layout(case):
    engine, prompt, steps, oracle, _ = case
    _, state = engine.forward([prompt], None)
    for token in steps:
        _, state = engine.forward([[token]], state)
    n_layer = engine.info.n_layer
    for layer in range(n_layer):
        att_x, kv, ffn_x = oracle["state"][3 * layer : 3 * layer + 3]
        assert torch.allclose(state.att_x_prev[layer, 0], att_x, atol=1e-5)
        assert torch.allclose(state.att_kv[layer, 0], kv, atol=1e-4, rtol=1e-4)
        assert torch.allclose(state.ffn_x_prev[layer, 0], ffn_x, atol=1e-5)


def test_a_batch_of_prompts_matches_the_package_row_by_row(case):
    engine, prompt, _, oracle, _ = case
    check_batch_rows(engine, prompt, oracle)


@torch.inference_mode()
def test_the_plain_reference_matches_the_package(case):
    _, prompt, steps, oracle, weights = case
    plain = RWKV7(RWKV7Config.from_state_dict(weights))
    plain.load_state_dict(weights, strict=True)
    logits, state = plain.eval()(torch.tensor([prompt]))
    assert (logits[0] - oracle["prompt"]).abs().max() <= TOLERANCE
    for i, token in enumerate(steps):
        logits, state = plain.step(torch.tensor([token]), state)
        diff = (logits[0] - oracle["steps"][i]).abs().max()
        assert diff <= TOLERANCE, f"step {i}: max |Δlogit| {diff}"
    for layer in range(plain.config.n_layer):
        att_x, kv, ffn_x = oracle["state"][3 * layer : 3 * layer + 3]
        assert torch.allclose(state.att_kv[layer, 0], kv, atol=1e-4, rtol=1e-4)
        assert torch.allclose(state.att_x_prev[layer, 0], att_x, atol=1e-5)
        assert torch.allclose(state.ffn_x_prev[layer, 0], ffn_x, atol=1e-5)
