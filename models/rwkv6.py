"""RWKV-6 ("Finch", x060): the language model, written plainly as the `rwkv` package's v6 code.

    model(tokens (B, T), state)   B sequences advance T tokens each; T == 1 is one step
    model.step(tokens (B,), state)

Parameter names and shapes are BlinkDL's, so `load_state_dict` takes a released
checkpoint as it is: time_maa_x/w/k/v/r/g (1, 1, C), time_maa_w1 (C, 5 D),
time_maa_w2 (5, D, C), time_decay (1, 1, A), time_decay_w1 (C, D'), time_decay_w2
(D', A), time_faaaa (H, N), the projections (out, in) as nn.Linear, ln_x a GroupNorm
over the H heads, the channel mixing's time_maa_k/r (1, 1, C), ln0 only in block 0.

Each head keeps an N x N state S, [key, value], in float32 (the package's att_kv):

    out_t = r_t (u k_t v_t^T + S_t)        S_t+1 = k_t v_t^T + diag(w_t) S_t

with u = time_faaaa and the decay w_t = exp(-exp(time_decay + tanh(xw W1) W2)),
different at every position. ln_x has eps 64e-5 and no division: BlinkDL's
GroupNorm(x / 8, eps 1e-5) of RWKV-5.2 training is the same function.

The recurrence has two sequence forms that agree to rounding: `wkv_loop`, one
`wkv_step` per position as the package's att_seq_v6_0 (used on CPUs, where it
measured faster), and `wkv_chunked`, chunks of CHUNK positions computed at once from
cumulative log decays with every exponent <= 0 (used on other devices, where a loop
pays kernel launches per position). models.rwkv5 runs the same functions with a
constant decay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import List, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ai_writer.models.random_weights import fill_parameters
from ai_writer.models.rwkv_blocks import RWKVModel, model_sizes, token_shift
from ai_writer.models.rwkv_blocks import Block, prepare_for_inference  # noqa: F401 (still importable from here)

HEAD_SIZE = 64
GROUP_NORM_EPS = 64e-5
CHUNK = 16  # positions per chunk of the chunked form
MAX_CHUNK_ELEMENTS = 1 << 23  # B * chunk * H * CHUNK * N floats per pass; longer inputs go in segments
MIN_LOG_DECAY = -30.0  # the chunked form's floor for log w: e^-30 is below float32's resolution
CHUNKED_ON_CPU = False  # on CPUs the per-position loop is faster


@dataclass(frozen=True)
class RWKV6Config:
    n_layer: int
    n_embd: int
    vocab_size: int
    n_att: int = 0  # width of the time-mixing projections; 0 = n_embd
    n_ffn: int = 0  # width of the channel-mixing hidden layer; 0 = BlinkDL's 3.5 * n_embd
    head_size: int = HEAD_SIZE
    d_mix: int = 0  # LoRA width of each of the five token-shift mixes; 0 = BlinkDL's 32 (64 from 4096 up)
    d_decay: int = 0  # LoRA width of the decay; 0 = BlinkDL's 64 (128 from 4096 up)

    def __post_init__(self):
        defaults = {
            "n_att": self.n_embd,
            "n_ffn": int(self.n_embd * 3.5) // 32 * 32,
            "d_mix": 32 if self.n_embd < 4096 else 64,
            "d_decay": 64 if self.n_embd < 4096 else 128,
        }
        for name, value in defaults.items():
            if getattr(self, name) == 0:
                object.__setattr__(self, name, value)
        if self.n_att % self.head_size:
            raise ValueError(f"n_att {self.n_att} is not a multiple of head size {self.head_size}")

    @property
    def n_head(self) -> int:
        return self.n_att // self.head_size

    @classmethod
    def from_state_dict(cls, weights: dict) -> "RWKV6Config":
        n_head, head_size = weights["blocks.0.att.time_faaaa"].shape
        return cls(
            **model_sizes(weights),
            n_att=weights["blocks.0.att.key.weight"].shape[0],
            n_ffn=weights["blocks.0.ffn.key.weight"].shape[0],
            head_size=head_size,
            d_mix=weights["blocks.0.att.time_maa_w2"].shape[1],
            d_decay=weights["blocks.0.att.time_decay_w1"].shape[1],
        )


class RWKV6State(NamedTuple):
    """Recurrent state; axis 0 is the layer, axis 1 the batch row (the package's 3 tensors per layer)."""

    att_x_prev: torch.Tensor  # (L, B, C) the previous token's input to time mixing (after ln1)
    att_kv: torch.Tensor  # (L, B, H, N, N) float32, [key, value] order as the package's
    ffn_x_prev: torch.Tensor  # (L, B, C) the previous token's input to channel mixing (after ln2)


# -- the recurrence, shared with models.rwkv5 ----------------------------------------------------


def wkv_step(r, k, v, w, u, S):
    """One token for B rows, all heads: r, k, v, w (B, H, N) float32 (w the decay, in [0, 1]);
    u (H, N); S (B, H, N, N) [key, value]. Returns (out (B, H, N), new S). The package's att_one."""
    a = k.unsqueeze(-1) * v.unsqueeze(-2)  # k v^T
    out = (r.unsqueeze(-2) @ (u.unsqueeze(-1) * a + S)).squeeze(-2)
    return out, a + w.unsqueeze(-1) * S


def wkv_loop(r, k, v, w, u, S):
    """T tokens for B rows, one wkv_step per position: r, k, v, w (B, T, H, N). Returns (out (B, T, H, N), S)."""
    outs: List[torch.Tensor] = []
    for t in range(r.shape[1]):
        out, S = wkv_step(r[:, t], k[:, t], v[:, t], w[:, t], u, S)
        outs.append(out)
    return torch.stack(outs, dim=1), S


def _wkv_chunks(r, k, v, log_w, u, S, L: int):
    """T = n * L positions, every chunk at once; (B, T, H, N) inputs. Returns (out (B, T, H, N), S).

    Inside a chunk, with c_t the sum of log w over the chunk's positions before t, position t
    reads k_i v_i^T (i < t) decayed by exp(c_t - c_(i+1)) per key channel, and the incoming
    state decayed by exp(c_t); every exponent is <= 0, so nothing overflows.
    """
    B, T, H, N = r.shape
    n = T // L
    r_ = r.reshape(B, n, L, H, N).transpose(2, 3)  # (B, n, H, L, N)
    k_ = k.reshape(B, n, L, H, N).transpose(2, 3)
    v_ = v.reshape(B, n, L, H, N).transpose(2, 3)
    lw = log_w.reshape(B, n, L, H, N).transpose(2, 3)
    through = lw.cumsum(dim=3)  # log decay from the chunk's start through position t
    before = through - lw  # ... up to, not including, t

    pos = torch.arange(L, device=r.device)
    earlier = (pos.view(L, 1) > pos.view(1, L)).view(L, L, 1)  # (t, i): i < t
    e = (before.unsqueeze(4) - through.unsqueeze(3)).masked_fill(~earlier, float("-inf"))  # (B, n, H, t, i, N)
    scores = (r_.unsqueeze(4) * k_.unsqueeze(3) * torch.exp(e)).sum(dim=-1)  # (B, n, H, t, i)
    bonus = (r_ * u.view(1, 1, H, 1, N) * k_).sum(dim=-1, keepdim=True)  # (B, n, H, t, 1)
    out = scores @ v_ + bonus * v_

    # each chunk's own share of the state at its end, and its whole decay
    total = through[:, :, :, L - 1]  # (B, n, H, N)
    own = (k_ * torch.exp(total.unsqueeze(3) - through)).transpose(-1, -2) @ v_  # (B, n, H, N, N)
    decay = torch.exp(total).unsqueeze(-1)
    starts: List[torch.Tensor] = []
    for j in range(n):  # the hand-over from chunk to chunk: the only loop
        starts.append(S)
        S = decay[:, j] * S + own[:, j]
    out = out + (r_ * torch.exp(before)) @ torch.stack(starts, dim=1)
    return out.transpose(2, 3).reshape(B, T, H, N), S


def wkv_chunked(r, k, v, log_w, u, S, chunk: int = CHUNK, max_elements: int = MAX_CHUNK_ELEMENTS):
    """T tokens for B rows: r, k, v (B, T, H, N) float32; log_w (B, T, H, N) the log of the decay;
    u (H, N); S (B, H, N, N). Returns (out, S), equal to T calls of wkv_step up to rounding.
    Segments of at most max_elements / (B * chunk * H * N) positions run one after another."""
    B, T, H, N = r.shape
    log_w = log_w.clamp(min=MIN_LOG_DECAY)
    segment = max(chunk, (max_elements // max(1, B * chunk * H * N)) // chunk * chunk)
    outs: List[torch.Tensor] = []
    start = 0
    while start < T:
        length = min(segment, T - start)
        L = chunk if length >= chunk else length
        length = length // L * L
        end = start + length
        out, S = _wkv_chunks(r[:, start:end], k[:, start:end], v[:, start:end], log_w[:, start:end], u, S, L)
        outs.append(out)
        start = end
    return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)), S


def wkv(r, k, v, log_w, u, S, chunked: bool, chunk: int = CHUNK, max_elements: int = MAX_CHUNK_ELEMENTS):
    """The recurrence over (B, T, H, N) inputs in the form the device suits: the step for T == 1,
    the per-position loop on a CPU unless chunked, else the chunked form."""
    if r.shape[1] == 1:
        out, S = wkv_step(r[:, 0], k[:, 0], v[:, 0], torch.exp(log_w[:, 0]), u, S)
        return out.unsqueeze(1), S
    if r.device.type == "cpu" and not chunked:
        return wkv_loop(r, k, v, torch.exp(log_w), u, S)
    return wkv_chunked(r, k, v, log_w, u, S, chunk, max_elements)


def head_norm(out, weight, bias, n_head: int, eps: float):
    """ln_x over (B, T, A) float32 with float32 weights, as the package runs it."""
    B, T, A = out.shape
    return F.group_norm(out.reshape(B * T, A), n_head, weight.float(), bias.float(), eps).view(B, T, A)


# -- the layers ----------------------------------------------------------------------------------


class TimeMix(nn.Module):
    """BlinkDL's RWKV_Tmix_x060."""

    __constants__ = ["n_head", "head_size", "eps", "chunk", "max_elements", "chunked_on_cpu"]

    def __init__(self, config: RWKV6Config, chunked_on_cpu: bool = CHUNKED_ON_CPU):
        super().__init__()
        C, A, H, N = config.n_embd, config.n_att, config.n_head, config.head_size
        self.n_head, self.head_size, self.eps = H, N, GROUP_NORM_EPS
        self.chunk, self.max_elements, self.chunked_on_cpu = CHUNK, MAX_CHUNK_ELEMENTS, chunked_on_cpu

        def vec(width=C):
            return nn.Parameter(torch.zeros(1, 1, width))

        self.time_maa_x, self.time_maa_w, self.time_maa_k = vec(), vec(), vec()
        self.time_maa_v, self.time_maa_r, self.time_maa_g = vec(), vec(), vec()
        self.time_maa_w1 = nn.Parameter(torch.zeros(C, 5 * config.d_mix))
        self.time_maa_w2 = nn.Parameter(torch.zeros(5, config.d_mix, C))
        self.time_decay = vec(A)
        self.time_decay_w1 = nn.Parameter(torch.zeros(C, config.d_decay))
        self.time_decay_w2 = nn.Parameter(torch.zeros(config.d_decay, A))
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
        xx = token_shift(x, x_prev) - x
        xxx = x + xx * self.time_maa_x
        xxx = torch.tanh(xxx @ self.time_maa_w1).view(B * T, 5, -1).transpose(0, 1)
        xxx = torch.bmm(xxx, self.time_maa_w2).view(5, B, T, -1)
        mw, mk, mv, mr, mg = xxx.unbind(dim=0)
        xw = x + xx * (self.time_maa_w + mw)
        xk = x + xx * (self.time_maa_k + mk)
        xv = x + xx * (self.time_maa_v + mv)
        xr = x + xx * (self.time_maa_r + mr)
        xg = x + xx * (self.time_maa_g + mg)

        r = self.receptance(xr).float().view(B, T, H, N)
        k = self.key(xk).float().view(B, T, H, N)
        v = self.value(xv).float().view(B, T, H, N)
        g = F.silu(self.gate(xg))
        w = self.time_decay.float() + (torch.tanh(xw @ self.time_decay_w1) @ self.time_decay_w2).float()
        log_w = -torch.exp(w.view(B, T, H, N))  # the decay is exp(log_w)

        out, S = wkv(r, k, v, log_w, self.time_faaaa.float(), S, self.chunked_on_cpu, self.chunk, self.max_elements)
        out = head_norm(out.reshape(B, T, H * N), self.ln_x.weight, self.ln_x.bias, H, self.eps).to(x.dtype)
        return self.output(out * g), x[:, -1], S


class ChannelMix(nn.Module):
    """BlinkDL's RWKV_CMix_x060."""

    def __init__(self, config: RWKV6Config):
        super().__init__()
        C, F_ = config.n_embd, config.n_ffn
        self.time_maa_k = nn.Parameter(torch.zeros(1, 1, C))
        self.time_maa_r = nn.Parameter(torch.zeros(1, 1, C))
        self.key = nn.Linear(C, F_, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(F_, C, bias=False)

    def forward(self, x, x_prev):
        """x: (B, T, C) after ln2; x_prev: (B, C). Returns (out, x[:, -1])."""
        xx = token_shift(x, x_prev) - x
        kx = x + xx * self.time_maa_k
        rx = x + xx * self.time_maa_r
        k = torch.relu(self.key(kx)) ** 2
        return torch.sigmoid(self.receptance(rx)) * self.value(k), x[:, -1]


class RWKV6(RWKVModel):
    architecture = "rwkv6"
    state_type = RWKV6State

    def __init__(self, config: RWKV6Config, chunked_on_cpu: bool = CHUNKED_ON_CPU):
        """chunked_on_cpu: run the chunked form on CPUs too (it always runs on other devices)."""
        super().__init__(config, partial(TimeMix, chunked_on_cpu=chunked_on_cpu), ChannelMix)


def init_weights(model: RWKV6, seed: int, spread: float = 1.0) -> RWKV6:
    """Fill every parameter with seeded random values in the ranges a trained model has.

    For tests and benchmarks; never a model to write with. `spread` > 1 widens the
    mixing and decay ranges so tests reach every path.
    """
    c = model.config

    def own_values(name, leaf, p, rand):
        if leaf in ("time_maa_w1", "time_decay_w1"):  # (C, D): tanh of about +-0.5
            return rand.normal(p.shape, 0.5 / math.sqrt(c.n_embd))
        if leaf in ("time_maa_w2", "time_decay_w2"):  # (.., D, C): corrections of about +-0.15 * spread
            return rand.normal(p.shape, 0.3 * spread / math.sqrt(p.shape[-2]))
        if leaf.startswith("time_maa"):
            return rand.uniform(p.shape, 0.0, min(1.0, 0.8 * spread))
        if leaf == "time_decay":  # log w = -exp(time_decay): from ~-0.0025 to ~-e^(1.5 * spread)
            return rand.uniform(p.shape, -6.0, 1.5 * spread)
        if leaf == "time_faaaa":
            return rand.uniform(p.shape, -1.0 * spread, 1.0 * spread)
        return None

    return fill_parameters(model, seed, own_values)
