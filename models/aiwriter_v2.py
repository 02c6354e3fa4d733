"""AI-Writer's RNN model (RWKV "v2", the browser demo's weights), batched.

Key names are RWKV-v2-RNN's; the weights are kept in its training layout
(time_decay and time_first as trained; the browser demo's .bin files store
w = exp(-exp(time_decay)) and u = exp(time_first), and `read_bin_folder` turns
them back). Per character, for each block (layer 0 may use `ffnPre` instead of
the time mixing):

    x = LN1(x);  x = x + (ffnPre(x) if layer 0 has one else SA(x))
    x = LN2(x);  x = x + FFN(x)            (the LayerNorm output replaces the residual)
    mix(x) = x * time_mix + x_prev * (1 - time_mix)      (x_prev: this sub-layer's input one step back)
    SA:   k = exp(min(Wk xm, 60));  v = Wv xm;  r = sigmoid(Wr xm)
          a = aa + u k v;  b = bb + u k;  out = Wo (r * a / (b + 1e-16))
          aa = w aa + k v;  bb = w bb + k
    FFN:  sigmoid(Wr xm) * Wv (relu(Wk xm)^2)
    head: x = LN_out(x);  logits = head x + sum over the last ctx_len positions u (this one
          included) of (head_q x) . (head_k x_u) / Q added to the logit of the character read at u

The sequence form runs every projection over all positions at once; only the
(aa, bb) recurrence goes position by position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

K_MAX = 60.0
EPS = 1e-16
COPY_WINDOW = 768  # ctx_len of the browser demo's model; the files do not record it


@dataclass(frozen=True)
class AIWriterV2Config:
    n_layer: int
    n_embd: int
    vocab_size: int
    n_ffn: int
    head_qk: int
    ffn_pre: bool  # layer 0 has ffnPre instead of time mixing
    ctx_len: int = COPY_WINDOW

    @classmethod
    def from_state_dict(cls, weights: dict) -> "AIWriterV2Config":
        vocab_size, n_embd = weights["emb.weight"].shape
        return cls(
            n_layer=1 + max(int(key.split(".")[1]) for key in weights if key.startswith("blocks.")),
            n_embd=n_embd,
            vocab_size=vocab_size,
            n_ffn=weights["blocks.0.ffn.key.weight"].shape[0],
            head_qk=weights["head_q.weight"].shape[0],
            ffn_pre="blocks.0.ffnPre.key.weight" in weights,
        )


class AIWriterV2State(NamedTuple):
    """Axis 0 is the layer (or 1), axis 1 the batch row."""

    att_x: torch.Tensor  # (L, B, C) the time mixing's input one step back (ffnPre's in layer 0)
    aa: torch.Tensor  # (L, B, C)
    bb: torch.Tensor  # (L, B, C)
    ffn_x: torch.Tensor  # (L, B, C)
    head_k: torch.Tensor  # (1, B, W, Q) the copy head's keys of the last W positions, newest last
    ids: torch.Tensor  # (1, B, W) the characters read there; -1 where nothing was read yet


def shifted(x: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """x (B, T, C) one position back; previous (B, C) is the position before x[:, 0]."""
    return torch.cat([previous.unsqueeze(1), x[:, :-1]], dim=1)


class FeedForward(nn.Module):
    def __init__(self, config: AIWriterV2Config):
        super().__init__()
        self.time_mix = nn.Parameter(torch.empty(config.n_embd))
        self.key = nn.Linear(config.n_embd, config.n_ffn, bias=False)
        self.value = nn.Linear(config.n_ffn, config.n_embd, bias=False)
        self.receptance = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x, previous):
        xm = x * self.time_mix + shifted(x, previous) * (1 - self.time_mix)
        return torch.sigmoid(self.receptance(xm)) * self.value(torch.relu(self.key(xm)) ** 2)


class SelfAttention(nn.Module):
    def __init__(self, config: AIWriterV2Config):
        super().__init__()
        C = config.n_embd
        self.time_mix = nn.Parameter(torch.empty(C))
        self.time_decay = nn.Parameter(torch.empty(C))
        self.time_first = nn.Parameter(torch.empty(C))
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)

    def forward(self, x, previous, aa, bb):
        xm = x * self.time_mix + shifted(x, previous) * (1 - self.time_mix)
        r = torch.sigmoid(self.receptance(xm)).float()
        k = torch.exp(torch.clamp(self.key(xm).float(), max=K_MAX))
        kv = k * self.value(xm).float()
        w = torch.exp(-torch.exp(self.time_decay.float()))
        u = torch.exp(self.time_first.float())
        out = torch.empty_like(kv)
        for t in range(x.shape[1]):
            out[:, t] = (aa + u * kv[:, t]) / (bb + u * k[:, t] + EPS)
            aa = w * aa + kv[:, t]
            bb = w * bb + k[:, t]
        return self.output((r * out).to(x.dtype)), aa, bb


class Block(nn.Module):
    def __init__(self, config: AIWriterV2Config, layer: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        if layer == 0 and config.ffn_pre:
            self.ffnPre = FeedForward(config)
        else:
            self.att = SelfAttention(config)
        self.ffn = FeedForward(config)


class AIWriterV2(nn.Module):
    architecture = "aiwriter-v2"

    def __init__(self, config: AIWriterV2Config):
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_out = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head_q = nn.Linear(config.n_embd, config.head_qk, bias=False)
        self.head_k = nn.Linear(config.n_embd, config.head_qk, bias=False)

    def zero_state(self, batch: int = 1) -> AIWriterV2State:
        c = self.config
        device = self.emb.weight.device
        layers = lambda: torch.zeros(c.n_layer, batch, c.n_embd, device=device)  # noqa: E731
        return AIWriterV2State(
            layers(), layers(), layers(), layers(),
            torch.zeros(1, batch, c.ctx_len, c.head_qk, device=device),
            torch.full((1, batch, c.ctx_len), -1, dtype=torch.long, device=device),
        )

    def forward(self, tokens: torch.Tensor, state: AIWriterV2State | None = None, full_output: bool = False):
        """tokens (B, T) -> (logits (B, V) after the last one, or (B, T, V) with full_output; new state)."""
        B, T = tokens.shape
        state = self.zero_state(B) if state is None else state
        att_x, aa, bb, ffn_x = (s.clone() for s in state[:4])
        x = self.emb(tokens)
        for i, block in enumerate(self.blocks):
            x = block.ln1(x)
            if hasattr(block, "ffnPre"):
                x, att_x[i] = x + block.ffnPre(x, att_x[i].to(x.dtype)), x[:, -1]
            else:
                out, aa[i], bb[i] = block.att(x, att_x[i].to(x.dtype), aa[i], bb[i])
                x, att_x[i] = x + out, x[:, -1]
            x = block.ln2(x)
            x, ffn_x[i] = x + block.ffn(x, ffn_x[i].to(x.dtype)), x[:, -1]
        x = self.ln_out(x)
        window = self.config.ctx_len
        keys = torch.cat([state.head_k[0], self.head_k(x).float()], dim=1)  # (B, W + T, Q)
        ids = torch.cat([state.ids[0], tokens], dim=1)
        rows = x if full_output else x[:, -1:]
        first = T - rows.shape[1]  # position of the first wanted row among the T new ones
        logits = self.head(rows).float()
        copy = self.head_q(rows).float() @ keys.transpose(1, 2) / self.config.head_qk  # (B, rows, W + T)
        t = torch.arange(first, T, device=x.device).unsqueeze(1) + window  # index of row t in keys
        j = torch.arange(window + T, device=x.device).unsqueeze(0)
        in_window = (j <= t) & (j > t - window) & (ids.unsqueeze(1) >= 0)
        copy = copy * in_window
        logits.scatter_add_(2, ids.clamp(min=0).unsqueeze(1).expand_as(copy), copy)
        new_state = AIWriterV2State(att_x, aa, bb, ffn_x, keys[:, -window:].unsqueeze(0), ids[:, -window:].unsqueeze(0))
        return (logits if full_output else logits[:, 0]), new_state


def read_bin_folder(path: Path) -> dict[str, torch.Tensor]:
    """The v2 weights of a .bin folder, in the training layout. Shapes are not stored: they follow from
    the sizes (C from ln_out.weight, V from emb.weight, F from ffn.key.weight, Q from head_q.weight).
    Raises ValueError naming the file that does not fit."""
    folder = path if path.is_dir() else path.parent
    raw = {}
    for file in sorted(folder.glob("*.bin")):
        data = np.fromfile(file, dtype="<f4")
        raw[file.name[: -len(".bin")]] = torch.from_numpy(data.astype(np.float32))
    if "ln_out.weight" not in raw:
        raise ValueError(f"{folder}: no ln_out.weight.bin")
    C = raw["ln_out.weight"].numel()
    weights = {}
    for key, flat in raw.items():
        if flat.numel() % C:
            raise ValueError(f"{folder / (key + '.bin')}: {flat.numel()} values, not a multiple of n_embd {C}")
        if key.endswith(".time_decay"):  # stored as w = exp(-exp(decay))
            flat = torch.log(-torch.log(flat.double())).float()
        elif key.endswith(".time_first"):  # stored as u = exp(first)
            flat = torch.log(flat.double()).float()
        if flat.numel() == C:
            weights[key] = flat
        elif key.endswith((".value.weight",)) and ".ffn" in key:  # (C, F)
            weights[key] = flat.reshape(C, -1)
        else:  # (rows, C)
            weights[key] = flat.reshape(-1, C)
    return weights
