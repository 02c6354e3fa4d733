"""RWKV-4 ("Pile", "Raven", "World" v4): the language model, in two forms that agree.

    step(tokens (B,), state)          B sequences advance one token each (decoding)
    forward(tokens (B, T), state)     B sequences advance T tokens each (prompts);
                                      T == 1 is the step

Parameter names and shapes are BlinkDL's, so `load_state_dict` takes a released
checkpoint as it is. The equations follow the `rwkv` package's v4 code (att_one /
att_seq, ffn_one / ffn_seq): decay w = -exp(time_decay), bonus u = time_first,
ln0 applied to the embedding, and the WKV numerator and denominator kept as
(aa, bb, pp) -- the true sums are aa * e^pp and bb * e^pp -- so nothing overflows.

In the sequence form every projection, mix and norm runs batched over all T
positions; only the WKV recurrence needs order, and it has two implementations
that agree to rounding:

  - `wkv4_chunked`, a chunked log-space scan: inside a chunk of CHUNK positions
    each output is a softmax-like weighted mean over the chunk's earlier positions,
    its own bonus term and the incoming state, every position shifted by its own
    maximum exponent, all chunks at once; the hand-over of the state from chunk to
    chunk is the only loop (T / CHUNK iterations of a few (B, A) operations). The
    exponents (t-1-i)*w + k_i cannot be split into a per-t and a per-i factor
    without overflow (|w| reaches thousands in trained models), hence small
    quadratic chunks rather than one cumulative sum. Used on CUDA and other devices,
    where a per-position loop would pay a dozen kernel launches per position (H100,
    one layer, 512 positions x 768 channels: 5.9 ms scanned, 98 ms looped).
  - `wkv4_loop`, the package's att_seq recurrence, one (B, A) step per position,
    compiled with the rest of the time mixing. Used on CPUs, where it measured
    faster: the scan does ~CHUNK times the arithmetic, and on a CPU that costs more
    than the loop's per-operation overhead (2 busy cores, 6 x 768, 256 tokens: whole
    forward 0.43 s with the loop, 0.60 s with the scan; 2 x 2048: 0.72 s vs 1.0 s).
    RWKV4(config, scan_on_cpu=True) picks the scan there too.

Against a float64 run of the recurrence the scan is the more accurate of the two
(300 positions, extreme decays: state error ~5e-6 relative vs ~1e-4 for the loop,
whose rounding accumulates step by step as the package's does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from ai_writer.models.random_weights import fill_parameters
from ai_writer.models.rwkv_blocks import RWKVModel, model_sizes, token_shift
from ai_writer.models.rwkv_blocks import Block, prepare_for_inference  # noqa: F401 (still importable from here)

CHUNK = 16  # positions per chunk of the sequence form
MAX_CHUNK_ELEMENTS = 1 << 22  # B * T * CHUNK * C floats per pass; longer inputs go in segments
NO_PAST = -1e30  # pp of an empty state, as in the package
SCAN_ON_CPU = False  # on CPUs the per-position loop is faster (see the module docstring)
MIN_DECAY = -1e4  # w below this is e^-10000 = 0 in float32 anyway; keeps 0 * w finite


@dataclass(frozen=True)
class RWKV4Config:
    n_layer: int
    n_embd: int
    vocab_size: int
    n_att: int = 0  # width of the time-mixing projections; 0 = n_embd
    n_ffn: int = 0  # width of the channel-mixing hidden layer; 0 = 4 * n_embd

    def __post_init__(self):
        if self.n_att == 0:
            object.__setattr__(self, "n_att", self.n_embd)
        if self.n_ffn == 0:
            object.__setattr__(self, "n_ffn", 4 * self.n_embd)

    @classmethod
    def from_state_dict(cls, weights: dict) -> "RWKV4Config":
        return cls(
            **model_sizes(weights),
            n_att=weights["blocks.0.att.key.weight"].shape[0],
            n_ffn=weights["blocks.0.ffn.key.weight"].shape[0],
        )


class RWKV4State(NamedTuple):
    """Recurrent state; axis 0 is the layer, axis 1 the batch row (the package's 5 tensors per layer)."""

    att_x_prev: torch.Tensor  # (L, B, C) the previous token's input to time mixing (after ln1)
    aa: torch.Tensor  # (L, B, A) float32 WKV numerator / e^pp
    bb: torch.Tensor  # (L, B, A) float32 WKV denominator / e^pp
    pp: torch.Tensor  # (L, B, A) float32 the shared exponent; NO_PAST when empty
    ffn_x_prev: torch.Tensor  # (L, B, C) the previous token's input to channel mixing (after ln2)


def wkv4_step(w, u, k, v, aa, bb, pp):
    """One token for B rows: k, v, aa, bb, pp (B, A) float32; w, u (A,). The package's att_one."""
    ww = u + k
    p = torch.maximum(pp, ww)
    e1 = torch.exp(pp - p)
    e2 = torch.exp(ww - p)
    out = (e1 * aa + e2 * v) / (e1 * bb + e2)
    ww = w + pp
    p = torch.maximum(ww, k)
    e1 = torch.exp(ww - p)
    e2 = torch.exp(k - p)
    return out, e1 * aa + e2 * v, e1 * bb + e2, p


def wkv4_loop(w, u, k, v, aa, bb, pp):
    """T tokens for B rows, one wkv4_step per position (the package's att_seq), k and v batched over T."""
    outs = []
    for t in range(k.shape[1]):
        out, aa, bb, pp = wkv4_step(w, u, k[:, t], v[:, t], aa, bb, pp)
        outs.append(out)
    return torch.stack(outs, dim=1), aa, bb, pp


def _wkv4_chunks(w, u, k, v, aa, bb, pp, L: int):
    """T = N * L positions; k, v (B, T, A). Returns (out (B, T, A), aa, bb, pp).

    Works in (B, N, A, t, i) layout so that the sums over i run along contiguous memory.
    """
    B, T, A = k.shape
    N = T // L
    kt = k.reshape(B, N, L, A).transpose(2, 3)  # (B, N, A, L)
    vt = v.reshape(B, N, L, A).transpose(2, 3)
    pos = torch.arange(L, device=k.device, dtype=k.dtype)
    wa = w.view(A, 1)

    # Inside each chunk, without the incoming state: position t reads i < t with
    # exponent (t-1-i)*w + k_i, and itself with u + k_t.
    dist = pos.view(L, 1) - 1 - pos.view(1, L)  # (t, i)
    later = torch.zeros(L, L, device=k.device, dtype=k.dtype).masked_fill_(dist < 0, float("-inf"))
    e = kt.unsqueeze(3) + (dist.clamp(min=0) * w.view(A, 1, 1) + later)  # (B, N, A, t, i)
    e_self = u.view(A, 1) + kt  # (B, N, A, t)
    m_in = torch.maximum(e.amax(dim=4), e_self)
    p = e.sub_(m_in.unsqueeze(4)).exp_()
    p_self = torch.exp(e_self - m_in)
    num_in = torch.matmul(p, vt.unsqueeze(4)).squeeze(4) + p_self * vt
    den_in = p.sum(dim=4) + p_self

    # Each chunk's contribution to the state after its last position.
    e_end = (L - 1 - pos) * wa + kt  # (B, N, A, i)
    p_c = e_end.amax(dim=3)
    q = torch.exp(e_end - p_c.unsqueeze(3))
    a_c = (q * vt).sum(dim=3)
    b_c = q.sum(dim=3)

    # Hand the state from chunk to chunk: the only loop, N iterations of (B, A) operations.
    decay_chunk = L * w
    states_a, states_b, states_p = [], [], []
    for n in range(N):
        states_a.append(aa)
        states_b.append(bb)
        states_p.append(pp)
        decayed = pp + decay_chunk
        top = torch.maximum(decayed, p_c[:, n])
        e1 = torch.exp(decayed - top)
        e2 = torch.exp(p_c[:, n] - top)
        aa = e1 * aa + e2 * a_c[:, n]
        bb = e1 * bb + e2 * b_c[:, n]
        pp = top
    s_a = torch.stack(states_a, dim=1).unsqueeze(3)  # (B, N, A, 1)
    s_b = torch.stack(states_b, dim=1).unsqueeze(3)
    s_p = torch.stack(states_p, dim=1).unsqueeze(3) + pos * wa  # decayed to each position t

    # Merge the incoming state's share, each position under its own maximum.
    m = torch.maximum(m_in, s_p)
    f_in = torch.exp(m_in - m)
    f_s = torch.exp(s_p - m)
    out = (num_in * f_in + s_a * f_s) / (den_in * f_in + s_b * f_s)
    return out.transpose(2, 3).reshape(B, T, A), aa, bb, pp


def wkv4_chunked(w, u, k, v, aa, bb, pp, chunk: int = 16, max_elements: int = 4194304):
    """T tokens for B rows: k, v (B, T, A) float32; aa, bb, pp (B, A); w, u (A,), w >= MIN_DECAY.

    Returns (out (B, T, A), aa, bb, pp), equal to T calls of wkv4_step up to rounding.
    Segments of at most `max_elements` / (B * chunk * A) positions run one after another.
    """
    B, T, A = k.shape
    segment = max(chunk, (max_elements // max(1, B * chunk * A)) // chunk * chunk)
    outs = []
    start = 0
    while start < T:
        length = min(segment, T - start)
        L = chunk if length >= chunk else length
        length = length // L * L
        out, aa, bb, pp = _wkv4_chunks(w, u, k[:, start : start + length], v[:, start : start + length], aa, bb, pp, L)
        outs.append(out)
        start += length
    return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)), aa, bb, pp


class TimeMix(nn.Module):
    __constants__ = ["chunk", "max_elements", "min_decay", "scan_on_cpu"]

    def __init__(self, config: RWKV4Config, scan_on_cpu: bool = SCAN_ON_CPU):
        super().__init__()
        self.chunk, self.max_elements, self.min_decay = CHUNK, MAX_CHUNK_ELEMENTS, MIN_DECAY
        self.scan_on_cpu = scan_on_cpu
        C, A = config.n_embd, config.n_att
        self.time_mix_k = nn.Parameter(torch.zeros(1, 1, C))
        self.time_mix_v = nn.Parameter(torch.zeros(1, 1, C))
        self.time_mix_r = nn.Parameter(torch.zeros(1, 1, C))
        self.time_decay = nn.Parameter(torch.zeros(A))
        self.time_first = nn.Parameter(torch.zeros(A))
        self.key = nn.Linear(C, A, bias=False)
        self.value = nn.Linear(C, A, bias=False)
        self.receptance = nn.Linear(C, A, bias=False)
        self.output = nn.Linear(A, C, bias=False)

    def forward(self, x, x_prev, aa, bb, pp):
        """x: (B, T, C) after ln1; x_prev: (B, C); aa, bb, pp: (B, A) float32.

        Returns (out (B, T, C), last x (B, C), aa, bb, pp).
        """
        sx = token_shift(x, x_prev)
        kx = x * self.time_mix_k + sx * (1 - self.time_mix_k)
        vx = x * self.time_mix_v + sx * (1 - self.time_mix_v)
        rx = x * self.time_mix_r + sx * (1 - self.time_mix_r)
        r = torch.sigmoid(self.receptance(rx))
        k = self.key(kx).float()
        v = self.value(vx).float()
        w = (-torch.exp(self.time_decay.float())).clamp(min=self.min_decay)
        u = self.time_first.float()
        if x.shape[1] == 1:
            out, aa, bb, pp = wkv4_step(w, u, k[:, 0], v[:, 0], aa, bb, pp)
            out = out.unsqueeze(1)
        elif k.device.type == "cpu" and not self.scan_on_cpu:
            out, aa, bb, pp = wkv4_loop(w, u, k, v, aa, bb, pp)
        else:
            out, aa, bb, pp = wkv4_chunked(w, u, k, v, aa, bb, pp, self.chunk, self.max_elements)
        return self.output(r * out.to(x.dtype)), x[:, -1], aa, bb, pp


class ChannelMix(nn.Module):
    def __init__(self, config: RWKV4Config):
        super().__init__()
        C, F_ = config.n_embd, config.n_ffn
        self.time_mix_k = nn.Parameter(torch.zeros(1, 1, C))
        self.time_mix_r = nn.Parameter(torch.zeros(1, 1, C))
        self.key = nn.Linear(C, F_, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(F_, C, bias=False)

    def forward(self, x, x_prev):
        """x: (B, T, C) after ln2; returns (out, last x)."""
        sx = token_shift(x, x_prev)
        kx = x * self.time_mix_k + sx * (1 - self.time_mix_k)
        rx = x * self.time_mix_r + sx * (1 - self.time_mix_r)
        r = torch.sigmoid(self.receptance(rx))
        k = torch.relu(self.key(kx)) ** 2
        return r * self.value(k), x[:, -1]


class RWKV4(RWKVModel):
    architecture = "rwkv4"
    state_type = RWKV4State

    def __init__(self, config: RWKV4Config, scan_on_cpu: bool = SCAN_ON_CPU):
        """scan_on_cpu: run the chunked scan on CPUs too (it always runs on other devices)."""
        super().__init__(config, partial(TimeMix, scan_on_cpu=scan_on_cpu), ChannelMix)

    def empty_att_state(self, batch: int) -> tuple:
        """aa, bb, pp (L, B, A) float32: no sums yet, pp = NO_PAST as the package's."""
        shape = (self.config.n_layer, batch, self.config.n_att)
        dev = self.emb.weight.device
        return (torch.zeros(shape, dtype=torch.float32, device=dev), torch.zeros(shape, dtype=torch.float32, device=dev),
                torch.full(shape, NO_PAST, dtype=torch.float32, device=dev))


def init_weights(model: RWKV4, seed: int, spread: float = 1.0) -> RWKV4:
    """Fill every parameter with seeded random values in the ranges a trained model has.

    For tests and benchmarks; never a model to write with. `spread` > 1 widens the
    mixing and decay ranges so tests reach every path.
    """

    def own_values(name, leaf, p, rand):
        if leaf.startswith("time_mix"):
            return rand.uniform(p.shape, max(0.0, 1.0 - 0.8 * spread), 1.0)
        if leaf == "time_decay":  # w = -exp(time_decay): from ~-0.0025 to ~-e^(2.5 * spread)
            return rand.uniform(p.shape, -6.0, 2.5 * spread)
        if leaf == "time_first":
            return rand.uniform(p.shape, -1.0 * spread, 1.0 * spread) + math.log(0.3)
        return None

    return fill_parameters(model, seed, own_values)
