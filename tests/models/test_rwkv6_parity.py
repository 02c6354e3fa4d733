"""RWKV-6 against the reference: the `rwkv` PyPI package 0.8.32 (its v6 path), strategy "cpu fp32".

The shared tests (tests/models/rwkv_parity.py): random checkpoints with BlinkDL's x060 key names
and shapes, the package saying it read them as v6, max |Δlogit| <= 1e-4 after a 64-token sequence
and after each of 16 single steps, for both sequence forms (the per-position loop the engine runs
on a CPU and the chunked form used elsewhere); then the forms against each other. Here too: the
key set told from RWKV-5's, a damaged file refused in one line, the chunked recurrence in float64.
"""

import pytest
import torch

from ai_writer.backends import load
from ai_writer.backends.errors import LoadError
from ai_writer.models import rwkv6
from ai_writer.models.checkpoint import detect_architecture
from ai_writer.models.rwkv6 import RWKV6, RWKV6Config, init_weights, wkv_chunked, wkv_loop, wkv_step
from tests.models.rwkv_parity import HeadStateParity, random_weights, write_model


class TestRWKV6(HeadStateParity):
    module, model_class, config_class = rwkv6, RWKV6, RWKV6Config
    version, architecture, fast_form = "6", "rwkv6", "chunked_on_cpu"


def test_an_rwkv6_key_set_is_told_from_rwkv5_and_its_shape_read_back():
    config = RWKV6Config(2, 128, 10, n_ffn=320, d_mix=16, d_decay=48)
    weights = {k: v.detach() for k, v in init_weights(RWKV6(config), seed=0).state_dict().items()}
    assert detect_architecture(weights) == "rwkv6"
    assert RWKV6Config.from_state_dict(weights) == config
    assert detect_architecture({k: v for k, v in weights.items() if ".time_maa" not in k}) == "rwkv5"


def test_a_damaged_rwkv6_file_is_one_line_naming_the_tensor(tmp_path):
    weights = random_weights(RWKV6, RWKV6Config, init_weights, 1, 64, 10)
    weights["blocks.0.att.time_maa_w2"] = torch.zeros(5, 32, 65)
    path = write_model(tmp_path, weights, 10)
    with pytest.raises(LoadError) as error:
        load(path, backend="torch", device="cpu")
    message = str(error.value)
    assert "RWKV-6 weights" in message and "time_maa_w2" in message and "\n" not in message


@pytest.mark.parametrize("T", [1, 7, 16, 33, 300])
def test_the_chunked_form_matches_the_loop_in_float64_on_extreme_decays(T):
    gen = torch.Generator().manual_seed(T)
    B, H, N = 2, 3, 16
    r, k, v = (torch.randn(B, T, H, N, generator=gen) for _ in range(3))
    # log decays per position from -e^-9 (w ~ 1) to -e^4 (w ~ 0), a few at 0 exactly
    log_w = -torch.exp(torch.empty(B, T, H, N).uniform_(-9.0, 4.0, generator=gen))
    u = torch.randn(H, N, generator=gen)
    S = torch.randn(B, H, N, N, generator=gen)
    truth = wkv_loop(r.double(), k.double(), v.double(), torch.exp(log_w.double()), u.double(), S.double())
    # max_elements small enough to split 300 positions into segments
    out, state = wkv_chunked(r, k, v, log_w, u, S, chunk=16, max_elements=B * 16 * H * N * 64)
    assert torch.isfinite(out).all() and torch.isfinite(state).all()
    scale = truth[0].abs().max().item()
    assert (out.double() - truth[0]).abs().max().item() <= 2e-5 * scale
    assert (state.double() - truth[1]).abs().max().item() <= 2e-5 * truth[1].abs().max().item()
    if T == 1:
        one, after = wkv_step(r[:, 0], k[:, 0], v[:, 0], torch.exp(log_w[:, 0]), u, S)
        assert torch.allclose(one, out[:, 0], atol=1e-5) and torch.allclose(after, state, atol=1e-5)
