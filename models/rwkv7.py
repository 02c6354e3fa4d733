"""RWKV-7 ("x070", "Goose"): the plain reference, written as BlinkDL's RWKV-7 demo.

    model(tokens (B, T), state)   B sequences advance T tokens each; T == 1 is one step

Parameter names and shapes are BlinkDL's, so `load_state_dict` takes a released
checkpoint as it is, and every parameter keeps the file's layout: contiguous,
nn.Linear weights (out, in), the LoRA matrices (w1, w2, a1, ...) (in, out) as in
x @ W. The C step (backends/engines/native_step.py) reads them so. Every equation is here in code, one path for any T: the state
update runs token by token, as its definition. The engines run models.rwkv7_fused,
the same equations rearranged for speed and tested against this one.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ai_writer.models.random_weights import fill_parameters
from ai_writer.models.rwkv7_config import HEAD_SIZE, RWKV7Config  # noqa: F401 - imported from here by callers

# exp(w) = e^-0.5 * sigmoid(w0 + ...) for TimeMix's w: the decay exp(-exp(w)) as the fused forms,
# the C step and the ONNX graph compute it
DECAY_SCALE = math.exp(-0.5)
GROUP_NORM_EPS = 64e-5


class RWKV7State(NamedTuple):
    """Recurrent state; axis 0 is the layer, axis 1 the batch row."""

    att_x_prev: torch.Tensor  # (L, B, C) the previous token's input to time mixing
    att_kv: torch.Tensor  # (L, B, H, N, N) float32, [value, key] order
    ffn_x_prev: torch.Tensor  # (L, B, C) the previous token's input to channel mixing


def _token_shift(x, x_prev):
    """Each position's previous input: x_prev, then x[:, :-1]. (B, T, C)"""
    return torch.cat((x_prev.unsqueeze(1), x[:, :-1]), dim=1)


class TimeMix(nn.Module):
    """BlinkDL's RWKV_Tmix_x070."""

    def __init__(self, config: RWKV7Config, layer_id: int):
        super().__init__()
        C, H, N = config.n_embd, config.n_head, config.head_size
        self.layer_id, self.n_head, self.head_size = layer_id, H, N

        def vec():
            return nn.Parameter(torch.zeros(1, 1, C))

        self.x_r, self.x_w, self.x_k, self.x_v, self.x_a, self.x_g = (vec() for _ in range(6))
        self.w0, self.w1, self.w2 = vec(), nn.Parameter(torch.zeros(C, config.d_decay)), nn.Parameter(torch.zeros(config.d_decay, C))
        self.a0, self.a1, self.a2 = vec(), nn.Parameter(torch.zeros(C, config.d_iclr)), nn.Parameter(torch.zeros(config.d_iclr, C))
        self.v0, self.v1, self.v2 = vec(), nn.Parameter(torch.zeros(C, config.d_value)), nn.Parameter(torch.zeros(config.d_value, C))
        self.g1, self.g2 = nn.Parameter(torch.zeros(C, config.d_gate)), nn.Parameter(torch.zeros(config.d_gate, C))
        self.k_k, self.k_a = vec(), vec()
        self.r_k = nn.Parameter(torch.zeros(H, N))
        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        self.ln_x = nn.GroupNorm(H, C, eps=GROUP_NORM_EPS)

    def forward(self, x, x_prev, state, v_first):
        """x: (B, T, C) after ln1; x_prev: (B, C) the input before x[:, 0]; state: (B, H, N, N) float32,
        [value, key]; v_first: layer 0's v (B, T, C), read by the other layers.

        Returns (out (B, T, C), x[:, -1], new state, v_first).
        """
        B, T, C = x.shape
        H, N = self.n_head, self.head_size
        xx = _token_shift(x, x_prev) - x

        xr = x + xx * self.x_r
        xw = x + xx * self.x_w
        xk = x + xx * self.x_k
        xv = x + xx * self.x_v
        xa = x + xx * self.x_a
        xg = x + xx * self.x_g

        r = self.receptance(xr)
        w = -F.softplus(-(self.w0 + torch.tanh(xw @ self.w1) @ self.w2)) - 0.5  # soft-clamped to (-inf, -0.5)
        k = self.key(xk)
        v = self.value(xv)
        if self.layer_id == 0:
            v_first = v  # the first layer's v, for the value residual of the others
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)  # the in-context learning rate
        g = torch.sigmoid(xg @ self.g1) @ self.g2

        kk = k * self.k_k
        kk = F.normalize(kk.view(B, T, H, N), dim=-1, p=2.0).view(B, T, C)
        k = k * (1 + (a - 1) * self.k_a)

        decay = torch.exp(-torch.exp(w))
        r_, decay_, k_, v_, kk_, a_ = (t.view(B, T, H, N).float() for t in (r, decay, k, v, kk, a))
        S = state
        outputs = []
        for t in range(T):  # per head: S = S diag(w) + S (-kk) (kk a)^T + v k^T, then o = S r
            w_t, r_t, k_t, v_t, kk_t, a_t = (u[:, t] for u in (decay_, r_, k_, v_, kk_, a_))  # (B, H, N)
            S = (S * w_t[..., None, :]
                 + (S @ -kk_t[..., None]) @ (kk_t * a_t)[..., None, :]
                 + v_t[..., None] @ k_t[..., None, :])
            outputs.append((S @ r_t[..., None])[..., 0])
        o = torch.stack(outputs, dim=1).to(x.dtype)  # (B, T, H, N)

        o = self.ln_x(o.reshape(B * T, C)).view(B, T, C)
        o = o + ((r.view(B, T, H, N) * k.view(B, T, H, N) * self.r_k).sum(dim=-1, keepdim=True)
                 * v.view(B, T, H, N)).view(B, T, C)
        return self.output(o * g), x[:, -1], S, v_first


class ChannelMix(nn.Module):
    """BlinkDL's RWKV_CMix_x070."""

    def __init__(self, config: RWKV7Config):
        super().__init__()
        C = config.n_embd
        self.x_k = nn.Parameter(torch.zeros(1, 1, C))
        self.key = nn.Linear(C, 4 * C, bias=False)
        self.value = nn.Linear(4 * C, C, bias=False)

    def forward(self, x, x_prev):
        """x: (B, T, C) after ln2; x_prev: (B, C). Returns (out, x[:, -1])."""
        xx = _token_shift(x, x_prev) - x
        k = x + xx * self.x_k
        k = torch.relu(self.key(k)) ** 2
        return self.value(k), x[:, -1]


class Block(nn.Module):
    def __init__(self, config: RWKV7Config, layer_id: int, time_mix=TimeMix, channel_mix=ChannelMix):
        super().__init__()
        C = config.n_embd
        self.layer_id = layer_id
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(C)
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.att = time_mix(config, layer_id)
        self.ffn = channel_mix(config)

    def forward(self, x, att_x_prev, att_kv, ffn_x_prev, v_first):
        """One layer over x (B, T, C). Returns (x, v_first, this layer's new (att_x_prev, att_kv, ffn_x_prev))."""
        if self.layer_id == 0:
            x = self.ln0(x)
        out, att_x, kv, v_first = self.att(self.ln1(x), att_x_prev, att_kv, v_first)
        x = x + out
        out, ffn_x = self.ffn(self.ln2(x), ffn_x_prev)
        x = x + out
        return x, v_first, (att_x, kv, ffn_x)


class RWKV7(nn.Module):
    mixers = (TimeMix, ChannelMix)  # each block's classes; models.rwkv7_fused.FusedRWKV7 has its own

    def __init__(self, config: RWKV7Config):
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config, i, *self.mixers) for i in range(config.n_layer))
        self.ln_out = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def zero_state(self, batch: int) -> RWKV7State:
        c = self.config
        param = self.emb.weight
        return RWKV7State(
            att_x_prev=torch.zeros(c.n_layer, batch, c.n_embd, dtype=param.dtype, device=param.device),
            att_kv=torch.zeros(c.n_layer, batch, c.n_head, c.head_size, c.head_size, device=param.device),
            ffn_x_prev=torch.zeros(c.n_layer, batch, c.n_embd, dtype=param.dtype, device=param.device),
        )

    def forward(self, tokens: torch.Tensor, state: RWKV7State | None = None, full_output: bool = False):
        """tokens (B, T) -> (logits (B, V), or (B, T, V) with full_output; new state).

        The given state is not modified.
        """
        if state is None:
            state = self.zero_state(tokens.shape[0])
        x = self.emb(tokens)
        v_first = x  # replaced by layer 0's v
        layers = []
        for i, block in enumerate(self.blocks):
            x, v_first, layer_state = block(x, state.att_x_prev[i], state.att_kv[i], state.ffn_x_prev[i], v_first)
            layers.append(layer_state)
        logits = self.head(self.ln_out(x if full_output else x[:, -1]))
        return logits, RWKV7State(*(torch.stack(parts) for parts in zip(*layers)))

    def step(self, tokens: torch.Tensor, state: RWKV7State | None = None):
        """tokens (B,) -> (logits (B, V), new state): one recurrent step."""
        return self.forward(tokens.view(-1, 1), state)


def init_weights(model: RWKV7, seed: int, spread: float = 1.0) -> RWKV7:
    """Fill every parameter with seeded random values in the ranges a trained model has.

    For tests, benchmarks and the start of training; never a model to write with.
    `spread` > 1 widens the mixing and decay ranges so tests reach every path.
    """
    C = model.config.n_embd

    def own_values(name, leaf, p, rand):
        if leaf.startswith("x_"):
            return rand.uniform(p.shape, 0.0, min(1.0, 0.6 * spread))
        if leaf == "w0":
            return rand.uniform(p.shape, -6.0 * spread, 1.0)
        if leaf in ("a0", "v0"):
            return rand.normal(p.shape, 0.5 * spread)
        if leaf == "k_k":
            return rand.uniform(p.shape, 0.5, 1.0)
        if leaf in ("k_a", "r_k"):
            return rand.normal(p.shape, 0.3)
        if leaf in ("w1", "a1", "v1", "g1"):
            return rand.normal(p.shape, 0.5 / math.sqrt(C))
        if leaf in ("w2", "a2", "v2", "g2"):
            return rand.normal(p.shape, 0.5 / math.sqrt(p.shape[0]))
        return None

    return fill_parameters(model, seed, own_values)
