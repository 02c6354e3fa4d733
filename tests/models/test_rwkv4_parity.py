"""RWKV-4 against the reference: the `rwkv` PyPI package 0.8.32 (v4 class), strategy "cpu fp32".

The shared tests (tests/models/rwkv_parity.py): random checkpoints with BlinkDL's key names and
shapes, the package in a subprocess without RWKV_V7_ON (which would rebind its RWKV class to
RWKV-7) saying it read them as v4, max |Δlogit| <= 1e-4 after a 64-token sequence and after each
of 16 following single steps, for both sequence forms (the per-position loop used on CPUs and the
chunked scan used elsewhere); then the forms against each other. Here too: the key set told from
RWKV-5's and RWKV-6's, and both WKV forms against float64 on extreme decays.
"""

import pytest
import torch

from ai_writer.models import rwkv4
from ai_writer.models.checkpoint import detect_architecture
from ai_writer.models.rwkv4 import RWKV4, RWKV4Config, init_weights, wkv4_chunked, wkv4_loop
from tests.models.rwkv_parity import PackageParity, random_weights


class TestRWKV4(PackageParity):
    module, model_class, config_class = rwkv4, RWKV4, RWKV4Config
    version, architecture, fast_form = "4", "rwkv4", "scan_on_cpu"
    small_shape = (2, 64, 300)

    def check_state_layout(self, state, oracle_state):
        """The package's 5 tensors per layer: att_xx, aa, bb, pp, ffn_xx."""
        assert len(oracle_state) == 5 * state.pp.shape[0]
        for layer in range(state.pp.shape[0]):
            att_x, aa, bb, pp, ffn_x = oracle_state[5 * layer : 5 * layer + 5]
            assert torch.allclose(state.att_x_prev[layer, 0], att_x, atol=1e-5)
            assert torch.allclose(state.ffn_x_prev[layer, 0], ffn_x, atol=1e-5)
            # aa, bb hold the sums divided by e^pp: compare the sums on the package's scale.
            scale = torch.exp(state.pp[layer, 0] - pp)
            assert torch.allclose(state.aa[layer, 0] * scale, aa, rtol=1e-4, atol=1e-4 * bb.abs().max().item())
            assert torch.allclose(state.bb[layer, 0] * scale, bb, rtol=1e-4, atol=1e-6)
            assert torch.all(state.pp[layer, 0] >= pp - 30)  # same representation, not a drifting one

    def check_states_agree(self, sequence_state, stepped_state):
        state, s = sequence_state, stepped_state
        scale = torch.exp(state.pp - s.pp)  # the scan may keep the sums under another exponent
        assert torch.allclose(state.aa * scale, s.aa, atol=1e-4, rtol=1e-4)
        assert torch.allclose(state.bb * scale, s.bb, atol=1e-6, rtol=1e-4)


def test_an_rwkv4_key_set_is_told_from_rwkv5_and_rwkv6():
    weights = random_weights(RWKV4, RWKV4Config, init_weights, 1, 16, 10)
    assert detect_architecture(weights) == "rwkv4"
    assert detect_architecture({**weights, "blocks.0.att.ln_x.weight": torch.zeros(16)}) == "rwkv5"
    v6 = {**weights, "blocks.0.att.ln_x.weight": torch.zeros(16), "blocks.0.att.time_maa_x": torch.zeros(1, 1, 16)}
    assert detect_architecture(v6) == "rwkv6"


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
