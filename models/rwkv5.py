"""RWKV-5.2 ("Eagle", x052): the language model, written plainly as the `rwkv` package's v5.2 code.

    model(tokens (B, T), state)   B sequences advance T tokens each; T == 1 is one step
    model.step(tokens (B,), state)

Parameter names and shapes are BlinkDL's, so `load_state_dict` takes a released
checkpoint as it is: time_mix_k/v/r/g (1, 1, C), time_decay and time_faaaa (H, N),
the projections (out, in) as nn.Linear, gate (A, C), ln_x a GroupNorm over the H
heads, the channel mixing's time_mix_k/r (1, 1, C) as RWKV-4's, ln0 only in block 0.

The recurrence is RWKV-6's (models.rwkv6: wkv_step, the per-position loop, the
chunked form) with a decay that is the same at every position, w = exp(-exp(time_decay)),
and u = time_faaaa used as it is (the package's "REAL_TIME_FIRST"). ln_x has eps
64e-5 and no division: BlinkDL's GroupNorm(x / head_size_divisor 8, eps 1e-5) is the
same function. Only RWKV-5.2 is here: 5.0 and 5.1 files (a per-head time_decay, a
time_first) are told apart in RWKV5Config.from_state_dict and refused with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ai_writer.models.random_weights import fill_parameters
from ai_writer.models.rwkv4 import ChannelMix
from ai_writer.models.rwkv6 import CHUNK, CHUNKED_ON_CPU, GROUP_NORM_EPS, HEAD_SIZE, MAX_CHUNK_ELEMENTS, head_norm, wkv
from ai_writer.models.rwkv_blocks import RWKVModel, model_sizes, token_shift
from ai_writer.models.rwkv_blocks import Block, prepare_for_inference  # noqa: F401 (still importable from here)


@dataclass(frozen=True)
class RWKV5Config:
    n_layer: int
    n_embd: int
    vocab_size: int
    n_att: int = 0  # width of the time-mixing projections; 0 = n_embd
    n_ffn: int = 0  # width of the channel-mixing hidden layer; 0 = BlinkDL's 3.5 * n_embd
    head_size: int = HEAD_SIZE

    def __post_init__(self):
        if self.n_att == 0:
            object.__setattr__(self, "n_att", self.n_embd)
        if self.n_ffn == 0:
            object.__setattr__(self, "n_ffn", int(self.n_embd * 3.5) // 32 * 32)
        if self.n_att % self.head_size:
            raise ValueError(f"n_att {self.n_att} is not a multiple of head size {self.head_size}")

    @property
    def n_head(self) -> int:
        return self.n_att // self.head_size

    @classmethod
    def from_state_dict(cls, weights: dict) -> "RWKV5Config":
        decay = weights["blocks.0.att.time_decay"]
        if decay.dim() != 2 or decay.shape[1] == 1 or "blocks.0.att.time_faaaa" not in weights:
            version = "5.1" if "blocks.0.att.gate.weight" in weights else "5.0"
            raise ValueError(f"an RWKV-{version} checkpoint (time_decay {tuple(decay.shape)}, no time_faaaa (H, N)); "
                             "only RWKV-5.2 (x052) is supported")
        n_head, head_size = decay.shape
        return cls(
            **model_sizes(weights),
            n_att=weights["blocks.0.att.key.weight"].shape[0],
            n_ffn=weights["blocks.0.ffn.key.weight"].shape[0],
            head_size=head_size,
        )


class RWKV5State(NamedTuple):
    """Recurrent state; axis 0 is the layer, axis 1 the batch row (the package's 3 tensors per layer)."""

    att_x_prev: torch.Tensor  # (L, B, C) the previous token's input to time mixing (after ln1)
    att_kv: torch.Tensor  # (L, B, H, N, N) float32, [key, value] order as the package's
    ffn_x_prev: torch.Tensor  # (L, B, C) the previous token's input to channel mixing (after ln2)


class TimeMix(nn.Module):
    """BlinkDL's RWKV_Tmix_x052."""

    __constants__ = ["n_head", "head_size", "eps", "chunk", "max_elements", "chunked_on_cpu"]

    def __init__(self, config: RWKV5Config, chunked_on_cpu: bool = CHUNKED_ON_CPU):
        super().__init__()
        C, A, H, N = config.n_embd, config.n_att, config.n_head, config.head_size
        self.n_head, self.head_size, self.eps = H, N, GROUP_NORM_EPS
        self.chunk, self.max_elements, self.chunked_on_cpu = CHUNK, MAX_CHUNK_ELEMENTS, chunked_on_cpu
        self.time_mix_k = nn.Parameter(torch.zeros(1, 1, C))
        self.time_mix_v = nn.Parameter(torch.zeros(1, 1, C))
        self.time_mix_r = nn.Parameter(torch.zeros(1, 1, C))
        self.time_mix_g = nn.Parameter(torch.zeros(1, 1, C))
        self.time_decay = nn.Parameter(torch.zeros(H, N))
        self.time_faaaa = nn.Parameter(torch.zeros(H, N))
        self.receptance = nn.Linear(C, A, bias=False)
        self.key = nn.Linear(C, A, bias=False)
        self.value = nn.Linear(C, A, bias=False)
        self.output = nn.Linear(A, C, bias=False)
        self.gate = nn.Linear(C, A, bias=False)
        self.ln_x = nn.GroupNorm(H, A, eps=GROUP_NORM_EPS)

    def forward(self, x, x_prev, S):
        """x: (B, T, C) after ln1; x_prev: (B, C); S: (B, H, N, N) float32. Returns (out, x[:, -1], S)."""
        B, T, C = x.shape
        H, N = self.n_head, self.head_size
        sx = token_shift(x, x_prev)
        kx = x * self.time_mix_k + sx * (1 - self.time_mix_k)
        vx = x * self.time_mix_v + sx * (1 - self.time_mix_v)
        rx = x * self.time_mix_r + sx * (1 - self.time_mix_r)
        gx = x * self.time_mix_g + sx * (1 - self.time_mix_g)

        r = self.receptance(rx).float().view(B, T, H, N)
        k = self.key(kx).float().view(B, T, H, N)
        v = self.value(vx).float().view(B, T, H, N)
        g = F.silu(self.gate(gx))
        log_w = (-torch.exp(self.time_decay.float())).expand(B, T, H, N)  # the same decay at every position

        out, S = wkv(r, k, v, log_w, self.time_faaaa.float(), S, self.chunked_on_cpu, self.chunk, self.max_elements)
        out = head_norm(out.reshape(B, T, H * N), self.ln_x.weight, self.ln_x.bias, H, self.eps).to(x.dtype)
        return self.output(out * g), x[:, -1], S


class RWKV5(RWKVModel):
    architecture = "rwkv5"
    state_type = RWKV5State

    def __init__(self, config: RWKV5Config, chunked_on_cpu: bool = CHUNKED_ON_CPU):
        """chunked_on_cpu: run the chunked form on CPUs too (it always runs on other devices)."""
        super().__init__(config, partial(TimeMix, chunked_on_cpu=chunked_on_cpu), ChannelMix)  # RWKV-4's ChannelMix


def init_weights(model: RWKV5, seed: int, spread: float = 1.0) -> RWKV5:
    """Fill every parameter with seeded random values in the ranges a trained model has.

    For tests and benchmarks; never a model to write with. `spread` > 1 widens the
    mixing and decay ranges so tests reach every path.
    """

    def own_values(name, leaf, p, rand):
        if leaf.startswith("time_mix"):
            return rand.uniform(p.shape, max(0.0, 1.0 - 0.8 * spread), 1.0)
        if leaf == "time_decay":  # log w = -exp(time_decay): from ~-0.0025 to ~-e^(1.5 * spread)
            return rand.uniform(p.shape, -6.0, 1.5 * spread)
        if leaf == "time_faaaa":
            return rand.uniform(p.shape, -1.0 * spread, 1.0 * spread)
        return None

    return fill_parameters(model, seed, own_values)
