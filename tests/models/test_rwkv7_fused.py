"""The fused form (models.rwkv7_fused, what the engines run) against the plain reference (models.rwkv7).

Random models of several shapes (head size 64, 32 and 24; LoRA widths that are no
multiple of 16) run a prompt, then single steps, for 3 rows at once from a non-zero
state, on both forms holding the same weights. Logits and every state array agree
to 1e-5 relative to the array's largest value above 1 (float32 rounding of
rearranged sums). Also: the fused form eager (which takes an engine's scan) and
scripted (as the loader prepares it), under autograd (training: same gradients),
and the layout and state dict the two forms share.
"""

from __future__ import annotations

import pytest
import torch

from ai_writer.models.checkpoint import load_model
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights
from ai_writer.models.rwkv7_fused import FusedRWKV7, FusedTimeMix, fuse, prepare_for_inference
from ai_writer.models.wkv7 import wkv7_chunked, wkv7_loop
from tests.helpers import REPO, random_rwkv7_weights, write_checkpoint

TOLERANCE = 1e-5
CONFIGS = {
    "2x128 head 64": RWKV7Config(2, 128, 300),
    "3x96 head 32": RWKV7Config(3, 96, 211, head_size=32),
    "2x48 head 24, odd LoRA widths": RWKV7Config(2, 48, 150, head_size=24, d_decay=40, d_iclr=24, d_value=20, d_gate=36),
}


def max_error(found, reference) -> float:
    found, reference = found.double(), reference.double()
    return float((found - reference).abs().max() / max(1.0, float(reference.abs().max())))


def tokens(config, rows, length, seed):
    return torch.randint(0, config.vocab_size, (rows, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=list(CONFIGS))
def pair(request):
    """(plain, eager fused, scripted fused) models holding the same weights."""
    config = CONFIGS[request.param]
    plain = init_weights(RWKV7(config), seed=len(request.param), spread=1.6).eval()
    return plain, prepare_for_inference(plain, script=False), prepare_for_inference(plain)


@torch.inference_mode()
@pytest.mark.parametrize("form", ["eager", "scripted"])
@pytest.mark.parametrize("length", [1, 2, 3, 70])  # 70: two chunks of the fused state update
def test_a_prompt_then_steps_match_the_plain_form(pair, form, length):
    plain, eager, scripted = pair
    fused = eager if form == "eager" else scripted
    config = plain.config
    _, start = plain(tokens(config, 3, 4, seed=1))  # a non-zero state
    prompt = tokens(config, 3, length, seed=length)
    ref_all, ref_state = plain(prompt, start, full_output=True)
    got_all, state = fused(prompt, start, full_output=True)
    got_last, last_state = fused(prompt, start)  # the last position only: the trimmed final layer
    assert max_error(got_all, ref_all) <= TOLERANCE
    assert max_error(got_last, ref_all[:, -1]) <= TOLERANCE
    for found, trimmed, reference in zip(state, last_state, ref_state):
        assert max(max_error(found, reference), max_error(trimmed, reference)) <= TOLERANCE
    for t in range(6):
        step = tokens(config, 3, 1, seed=100 + t)[:, 0]
        ref_logits, ref_state = plain.step(step, ref_state)
        logits, state = fused.step(step, state)
        assert max_error(logits, ref_logits) <= TOLERANCE, t
        assert max(max_error(f, r) for f, r in zip(state, ref_state)) <= TOLERANCE, t


@torch.inference_mode()
def test_an_engine_scan_is_what_eager_layers_run_and_scripted_ones_refuse(pair):
    plain, eager, scripted = pair
    calls = []

    def scan(state, r, log_w, *rest):  # the definition, stepped: as a C scan computes it
        calls.append(r.shape)
        return wkv7_loop(state, r, log_w, *rest)

    fused = prepare_for_inference(plain, script=False)
    assert fused.use_sequence_wkv(scan) and not scripted.use_sequence_wkv(scan)
    prompt = tokens(plain.config, 2, 9, seed=5)
    logits, state = fused(prompt)
    ref_logits, ref_state = plain(prompt)
    assert len(calls) == plain.config.n_layer and calls[0][:2] == (2, 9)
    assert max_error(logits, ref_logits) <= TOLERANCE
    assert max(max_error(f, r) for f, r in zip(state, ref_state)) <= TOLERANCE
    assert FusedTimeMix.sequence_wkv is wkv7_chunked  # the class and the other models keep the chunked form
    assert all(type(b.att).sequence_wkv is wkv7_chunked for b in eager.blocks)


def test_under_autograd_the_fused_form_has_the_plain_forms_gradients():
    config = RWKV7Config(2, 64, 90, head_size=32)
    plain = init_weights(RWKV7(config), seed=3, spread=1.6)
    fused = fuse(init_weights(RWKV7(config), seed=3, spread=1.6))
    assert isinstance(fused, FusedRWKV7) and fused.training
    prompt = tokens(config, 2, 70, seed=6)
    targets = tokens(config, 2, 70, seed=7)
    for model in (plain, fused):
        logits, _ = model(prompt, full_output=True)
        torch.nn.functional.cross_entropy(logits.reshape(-1, config.vocab_size), targets.reshape(-1)).backward()
    grads = dict(fused.named_parameters())
    for name, p in plain.named_parameters():
        if name in ("blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"):  # layer 0 has no value residual
            assert p.grad is None and grads[name].grad is None
            continue
        assert max_error(grads[name].grad, p.grad) <= 1e-4, name


def test_fusing_shares_the_weights_and_keeps_names_shapes_and_layout():
    plain = init_weights(RWKV7(CONFIGS["3x96 head 32"]), seed=1)
    fused = prepare_for_inference(plain)
    ours, theirs = plain.state_dict(), fused.state_dict()
    assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in theirs.items()]
    assert all(ours[k].data_ptr() == theirs[k].data_ptr() for k in ours)  # no copy
    assert all(v.is_contiguous() for v in theirs.values())
    assert theirs["blocks.0.att.key.weight"].shape == (96, 96) and theirs["blocks.1.att.w1"].shape == (96, 32)
    assert not any(p.requires_grad for p in fused.parameters())


def test_a_pth_of_transposed_views_loads_contiguous(tmp_path):
    """The one layout holds whatever strides a file's tensors come with."""
    weights = random_rwkv7_weights(1, 64, 80, seed=2)
    weights = {k: v.t().contiguous().t() if v.dim() == 2 else v for k, v in weights.items()}
    assert not weights["head.weight"].is_contiguous()
    model = load_model(write_checkpoint(tmp_path / "t.pth", weights))
    assert all(p.is_contiguous() for p in model.parameters())
    assert torch.equal(model.head.weight, weights["head.weight"])


@torch.inference_mode()
def test_the_bundled_model_reads_text_as_the_plain_form_does():
    path = REPO / "models" / "bundled" / "zh-novel-rwkv7.safetensors"
    fused = load_model(path)  # as the engines load it
    plain = RWKV7(fused.config)
    plain.load_state_dict(fused.state_dict(), strict=True)
    prompt = tokens(fused.config, 1, 40, seed=8)
    logits, state = fused(prompt)
    ref_logits, ref_state = plain.eval()(prompt)
    assert max_error(logits, ref_logits) <= TOLERANCE
    assert max(max_error(f, r) for f, r in zip(state, ref_state)) <= TOLERANCE
