"""The forms of RWKV-7 agree with themselves: batched step == each row alone; sequence == stepping.

Each check runs on the plain reference (models.rwkv7.RWKV7) and on the fused form the
engines run (models.rwkv7_fused, scripted as the loader prepares it). The chunked
state update equals the token-by-token loop.
"""

import pytest
import torch

from ai_writer.backends.engines import state_rows as state_ops
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights
from ai_writer.models.rwkv7_fused import prepare_for_inference
from ai_writer.models.wkv7 import wkv7_chunked, wkv7_loop


def _plain():
    return init_weights(RWKV7(RWKV7Config(n_layer=3, n_embd=128, vocab_size=200)), seed=4, spread=1.5).eval()


@pytest.fixture(scope="module", params=["plain", "fused"])
def model(request):
    return _plain() if request.param == "plain" else prepare_for_inference(_plain())


def tokens(rows, length, seed=0):
    return torch.randint(0, 200, (rows, length), generator=torch.Generator().manual_seed(seed))


@torch.inference_mode()
def test_batched_step_equals_each_row_stepped_alone(model):
    prompts = tokens(3, 20, seed=1)
    _, state = model(prompts)
    steps = tokens(3, 8, seed=2)
    batch_state = state
    singles = [state_ops.take_rows(state, [row]) for row in range(3)]
    for t in range(8):
        batch_logits, batch_state = model.step(steps[:, t], batch_state)
        for row in range(3):
            logits, singles[row] = model.step(steps[row, t : t + 1], singles[row])
            assert torch.allclose(batch_logits[row], logits[0], atol=1e-5), (t, row)


@torch.inference_mode()
@pytest.mark.parametrize(  # the fused form's chunks are 64 long; the plain form has one path for any length
    "model, length", [("plain", 2), ("plain", 33)] + [("fused", n) for n in (2, 31, 32, 33, 100)], indirect=["model"])
def test_sequence_form_equals_stepping(model, length):
    seq = tokens(2, length, seed=length)
    _, start = model(tokens(2, 5, seed=99))  # from a non-zero state
    seq_logits, seq_state = model(seq, start, full_output=True)
    last_logits, _ = model(seq, start)
    assert torch.allclose(last_logits, seq_logits[:, -1], atol=1e-5)
    state = start
    for t in range(length):
        logits, state = model.step(seq[:, t], state)
        assert torch.allclose(seq_logits[:, t], logits, atol=1e-4), t
    for a, b in zip(seq_state, state):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


@torch.inference_mode()
def test_forward_leaves_the_given_state_alone(model):
    _, state = model(tokens(1, 10))
    before = state_ops.copy_state(state)
    model(tokens(1, 40, seed=3), state)
    model.step(tokens(1, 1, seed=4)[:, 0], state)
    assert all(torch.equal(a, b) for a, b in zip(state, before))


def test_state_row_helpers_fork_and_select():
    state = (torch.arange(12.0).view(2, 3, 2), torch.arange(6.0).view(1, 3, 2))
    forked = state_ops.repeat_rows(state, 2)
    assert forked[0].shape == (2, 6, 2)
    assert torch.equal(forked[0][:, 0], forked[0][:, 1]) and torch.equal(forked[0][:, 4], state[0][:, 2])
    taken = state_ops.take_rows(state, [2, 0])
    assert torch.equal(taken[1][:, 0], state[1][:, 2])
    taken[0].zero_()
    assert state[0].abs().sum() > 0  # a copy, not a view


def _wkv_inputs(batch, length, heads, size, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    kk = torch.nn.functional.normalize(torch.randn(batch, length, heads, size, generator=g), dim=-1)
    iclr = torch.sigmoid(torch.randn(batch, length, heads, size, generator=g) * 2)
    log_w = -0.606531 * torch.sigmoid(torch.randn(batch, length, heads, size, generator=g) * 3)
    r, k, v = (torch.randn(batch, length, heads, size, generator=g) for _ in range(3))
    state = torch.randn(batch, heads, size, size, generator=g)
    return [t.to(dtype) for t in (state, r, log_w, k, v, -kk, kk * iclr)]


@pytest.mark.parametrize("chunk", [1, 7, 16, 32, 64])
def test_chunked_wkv_equals_the_loop(chunk):
    exact_out, exact_state = wkv7_loop(*_wkv_inputs(2, 70, 2, 64, torch.float64, seed=chunk))
    out, state = wkv7_chunked(*_wkv_inputs(2, 70, 2, 64, torch.float32, seed=chunk), chunk=chunk)
    scale = exact_out.abs().max()
    assert (out.double() - exact_out).abs().max() <= 1e-6 * scale * 70
    assert torch.allclose(state.double(), exact_state, atol=1e-4)


def test_chunked_wkv_stays_finite_and_exact_at_the_strongest_decay():
    """log w at its floor (-e^-0.5) in every step: the chunk's factors reach e^{+-39}."""
    inputs = _wkv_inputs(1, 128, 2, 64, torch.float64, seed=7)
    inputs[2] = torch.full_like(inputs[2], -0.6065306597126334)
    exact_out, exact_state = wkv7_loop(*inputs)
    out, state = wkv7_chunked(*[t.float() for t in inputs], chunk=64)
    assert torch.isfinite(out).all() and torch.isfinite(state).all()
    assert (out.double() - exact_out).abs().max() <= 1e-4 * exact_out.abs().max()
    assert torch.allclose(state.double(), exact_state, atol=1e-4)
