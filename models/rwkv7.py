"""RWKV-7 ("x070", "Goose"): the language model, in two forms that agree.

    step(tokens (B,), state)         B sequences advance one token each (decoding)
    sequence(tokens (B, T), state)   B sequences advance T tokens each, chunked over
                                     time (prompts, evaluation and training)

Parameter names and shapes are BlinkDL's, so `load_state_dict` takes a released
checkpoint as it is. The equations follow BlinkDL's reference implementation.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.random_weights import fill_parameters
from models.wkv7 import wkv7_chunked, wkv7_step

HEAD_SIZE = 64
DECAY_SCALE = math.exp(-0.5)  # w = exp(-e^-0.5 * sigmoid(w0 + lora)), in (0.545, 1)
GROUP_NORM_EPS = 64e-5


def _lora_width(n_embd: int, factor: float, power: float) -> int:
    return max(32, int(round(factor * n_embd**power / 32)) * 32)


@dataclass(frozen=True)
class RWKV7Config:
    n_layer: int
    n_embd: int
    vocab_size: int
    head_size: int = HEAD_SIZE
    d_decay: int = 0  # LoRA widths; 0 = BlinkDL's suggestion for n_embd
    d_iclr: int = 0
    d_value: int = 0
    d_gate: int = 0

    def __post_init__(self):
        if self.n_embd % self.head_size:
            raise ValueError(f"n_embd {self.n_embd} is not a multiple of head size {self.head_size}")
        suggested = {
            "d_decay": _lora_width(self.n_embd, 2.5, 0.5),
            "d_iclr": _lora_width(self.n_embd, 2.5, 0.5),
            "d_value": _lora_width(self.n_embd, 1.7, 0.5),
            "d_gate": _lora_width(self.n_embd, 0.6, 0.8),
        }
        for name, width in suggested.items():
            if getattr(self, name) == 0:
                object.__setattr__(self, name, width)

    @property
    def n_head(self) -> int:
        return self.n_embd // self.head_size

    @classmethod
    def from_state_dict(cls, weights: dict) -> "RWKV7Config":
        n_layer = 1 + max(int(key.split(".")[1]) for key in weights if key.startswith("blocks."))
        vocab_size, n_embd = weights["emb.weight"].shape
        n_head, head_size = weights["blocks.0.att.r_k"].shape
        return cls(
            n_layer=n_layer,
            n_embd=n_embd,
            vocab_size=vocab_size,
            head_size=head_size,
            d_decay=weights["blocks.0.att.w1"].shape[1],
            d_iclr=weights["blocks.0.att.a1"].shape[1],
            d_value=weights["blocks.1.att.v1"].shape[1] if n_layer > 1 else 0,
            d_gate=weights["blocks.0.att.g1"].shape[1],
        )


class RWKV7State(NamedTuple):
    """Recurrent state; axis 0 is the layer, axis 1 the batch row."""

    att_x_prev: torch.Tensor  # (L, B, C) the previous token's input to time mixing
    att_kv: torch.Tensor  # (L, B, H, N, N) float32, [value, key] order
    ffn_x_prev: torch.Tensor  # (L, B, C) the previous token's input to channel mixing


def _shift_delta(x, x_prev):
    """Each position's previous token input minus its own: (x_prev, then x[:, :-1]) - x. (B, T, C)"""
    if x.shape[1] == 1:
        return x_prev.unsqueeze(1) - x
    if torch.is_grad_enabled():  # training: ops autograd follows
        return torch.cat((x_prev.unsqueeze(1), x[:, :-1]), dim=1) - x
    delta = torch.empty_like(x)  # inference: one pass, no concatenated copy
    torch.sub(x_prev, x[:, 0], out=delta[:, 0])
    torch.sub(x[:, :-1], x[:, 1:], out=delta[:, 1:])
    return delta


def _lora(bias, h, w2):
    """bias + h @ w2 as one product for (B, T, d) h: the bias rides in the matrix product."""
    return torch.addmm(bias.view(-1), h.reshape(-1, h.shape[-1]), w2).view(h.shape[:-1] + (w2.shape[1],))


class TimeMix(nn.Module):
    __constants__ = ["decay_scale", "eps", "layer_id", "n_head", "head_size"]
    __jit_ignored_attributes__ = ["sequence_wkv"]
    # The state update over T > 1 tokens, (state, r, log_w, k, v, a, b) -> (o, state) as models.wkv7's
    # wkv7_chunked. An engine may give an eager (unscripted) instance its own implementation of the
    # same equations (backends.native_step's C scan); scripted modules always take wkv7_chunked.
    sequence_wkv = staticmethod(wkv7_chunked)

    def __init__(self, config: RWKV7Config, layer_id: int):
        super().__init__()
        self.decay_scale, self.eps = DECAY_SCALE, GROUP_NORM_EPS
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

    def forward(self, x, x_prev, kv, v_first, keep: int = 0):
        """x: (B, T, C) after ln1; x_prev: (B, C); kv: (B, H, N, N); v_first: layer 0's v (B, T, C), ignored by layer 0.

        T == 1 takes the single-step update, T > 1 the chunked one. keep > 0: the output of
        only the last `keep` positions (the state still reads all of them).
        Returns (out (B, T or keep, C), last x (B, C), kv, v_first).
        """
        B, T, C = x.shape
        H, N = self.n_head, self.head_size
        xx = _shift_delta(x, x_prev)
        mixes = torch.stack((self.x_r, self.x_w, self.x_k, self.x_v, self.x_a, self.x_g))  # (6, 1, 1, C)
        xr, xw, xk, xv, xa, xg = torch.addcmul(x, xx, mixes).unbind(0)  # x + xx * x_?

        r = self.receptance(xr)
        log_w = -self.decay_scale * torch.sigmoid(_lora(self.w0, torch.tanh(xw @ self.w1), self.w2))
        k = self.key(xk)
        v = self.value(xv)
        iclr = torch.sigmoid(_lora(self.a0, xa @ self.a1, self.a2))  # in-context learning rate

        kk = F.normalize((k * self.k_k).view(B, T, H, N), dim=-1, p=2.0).view(B, T, C)
        k = k * torch.addcmul(1 - self.k_a, iclr, self.k_a)  # k * (1 + (iclr - 1) * k_a)
        if self.layer_id == 0:
            v_first = v
        else:
            v = torch.lerp(v, v_first, torch.sigmoid(_lora(self.v0, xv @ self.v1, self.v2)))  # v + (v_first - v) * mix

        r_, log_w_, k_, v_, a_, b_ = (t.view(B, T, H, N).float() for t in (r, log_w, k, v, -kk, kk * iclr))
        if T == 1:
            o, kv = wkv7_step(kv, r_[:, 0], torch.exp(log_w_[:, 0]), k_[:, 0], v_[:, 0], a_[:, 0], b_[:, 0])
            o = o.unsqueeze(1)
        elif torch.jit.is_scripting():
            o, kv = wkv7_chunked(kv, r_, log_w_, k_, v_, a_, b_)
        else:
            o, kv = self._sequence_wkv(kv, r_, log_w_, k_, v_, a_, b_)
        if 0 < keep < T:
            o, r, k, v, xg = o[:, -keep:], r[:, -keep:], k[:, -keep:], v[:, -keep:], xg[:, -keep:]
        T = o.shape[1]
        o = o.to(x.dtype).reshape(B * T, C)

        o = F.group_norm(o, H, self.ln_x.weight, self.ln_x.bias, eps=self.eps).view(B, T, C)
        bonus = (r * k * self.r_k.view(C)).view(B, T, H, N).sum(dim=-1, keepdim=True) * v.view(B, T, H, N)
        o = o + bonus.view(B, T, C)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        return self.output(o * g), x[:, -1], kv, v_first


    @torch.jit.unused
    def _sequence_wkv(self, kv, r, log_w, k, v, a, b) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(r.device.type, enabled=False):  # fp32 even under mixed-precision training
            return self.sequence_wkv(kv, r, log_w, k, v, a, b)


class ChannelMix(nn.Module):
    def __init__(self, config: RWKV7Config):
        super().__init__()
        C = config.n_embd
        self.x_k = nn.Parameter(torch.zeros(1, 1, C))
        self.key = nn.Linear(C, 4 * C, bias=False)
        self.value = nn.Linear(4 * C, C, bias=False)

    def forward(self, x, x_prev):
        """x: (B, T, C) after ln2; returns (out, last x)."""
        xx = _shift_delta(x, x_prev)
        k = torch.relu_(self.key(torch.addcmul(x, xx, self.x_k)))  # in place: a product's own output
        k = k ** 2 if torch.is_grad_enabled() else k.square_()
        return self.value(k), x[:, -1]


class Block(nn.Module):
    def __init__(self, config: RWKV7Config, layer_id: int):
        super().__init__()
        C = config.n_embd
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(C)
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.att = TimeMix(config, layer_id)
        self.ffn = ChannelMix(config)


class RWKV7(nn.Module):
    def __init__(self, config: RWKV7Config):
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
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

        T == 1 is the recurrent step; T > 1 the chunked sequence form. The given
        state is not modified.
        """
        B, T = tokens.shape
        if state is None:
            state = self.zero_state(B)
        att_x, att_kv, ffn_x = [], [], []
        x = self.blocks[0].ln0(self.emb(tokens))
        v_first = x  # replaced by layer 0's v
        final = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            # Without full_output only the last position's logits are wanted: past the final layer's
            # state update, its last two positions suffice (the last one and the one its shift reads).
            keep = 2 if i == final and not full_output and T > 2 else 0
            out, last, kv, v_first = block.att(block.ln1(x), state.att_x_prev[i], state.att_kv[i], v_first, keep)
            if keep:
                x = x[:, -keep:]
            x = x + out
            att_x.append(last)
            att_kv.append(kv)
            out, last = block.ffn(block.ln2(x), state.ffn_x_prev[i])
            x = x + out
            ffn_x.append(last)
        if not full_output:
            x = x[:, -1]
        logits = self.head(self.ln_out(x))
        return logits, RWKV7State(torch.stack(att_x), torch.stack(att_kv), torch.stack(ffn_x))

    def step(self, tokens: torch.Tensor, state: RWKV7State | None = None):
        """tokens (B,) -> (logits (B, V), new state): one recurrent step."""
        return self.forward(tokens.view(-1, 1), state)


def prepare_for_inference(model: RWKV7, script: bool = True) -> RWKV7:
    """Freeze the weights, store each projection transposed, and compile the mixing layers.

    F.linear(x, W) reads W as (in, out) rows that way, which is faster on CPUs for
    the few rows of a decode step. TorchScript runs each block's time and channel
    mixing without Python between the ~80 small operations of a step. Values,
    names and results are unchanged.
    """
    model.eval().requires_grad_(False)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.weight = nn.Parameter(module.weight.t().contiguous().t(), requires_grad=False)
    if script:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # still supported in torch 2.x
            try:
                scripted = [(torch.jit.script(b.att), torch.jit.script(b.ffn)) for b in model.blocks]
            except Exception:  # a torch without TorchScript: run eagerly, same results
                scripted = [(b.att, b.ffn) for b in model.blocks]
        for block, (att, ffn) in zip(model.blocks, scripted):
            block.att, block.ffn = att, ffn
    return model


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
