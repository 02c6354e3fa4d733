"""The original AI-Writer model (RWKV "v1", GPT mode), with a cache of the window it reads.

Key names and shapes are the released checkpoints' (`wangwen-2022-02-15.pth` and
friends; see ../shared/docs/aiwriter-formats.md). The model reads the last ctx_len
(T) characters from position 0, and its parameters depend on the position:

    x = tok_emb[idx]
    per block:   x = x + TimeMix(LN1(x));   x = x + ChannelMix(LN2(x))
    half_shift(z): the first C/2 channels come from the previous position (zeros at 0)
    TimeMix(z):  z' = half_shift(z)
                 k = exp(clamp(Wk z' + bk, -60, 30));  v = Wv z' + bv;  r = Wr z' + br
                 num[t] = sum_{u<=t} ww[h,t,u] * k[u] v[u]    (channel c in head c // (C/H))
                 den[t] = sum_{u<=t} k[u]
                 ww[h,t,u] = time_w[h, T-1-(t-u)] * time_alpha[h,u] * time_beta[h,t]
                 out = (Wo (sigmoid(r) * num / den) + bo) * time_gamma[t]
    ChannelMix(z): z' = half_shift(z)
                 out = sigmoid(Wr z' + br) * (Wweight (mish(Wk z' + bk) * (Wv z' + bv)) + bweight)
    head:        x = LN_f(x);  c[t,u] = head_q(x[t]) . head_k(x[u]) / Q   for u <= t
                 logits[t] = head(x[t] * time_out[t]) + sum_{u<=t} c[t,u] one_hot(idx[u])

Nothing at position t depends on later positions, so while the text is shorter than
T the earlier positions are stable: the state keeps, per layer, k*v of every position
read, the running sum of k and the last LayerNorm outputs (for the shift), and the
copy head's keys and the ids. A new character then costs one position (its
attention row over the cached ones), not the whole window. Once the window is full
every new character re-indexes the window from position 0, as the original did, and
costs a full pass over the last T characters (or, with `set_refill(N)`, the window
restarts from the last N characters and grows again, one cached position per character).

The state's buffers are written in place at positions past those any state has
read (`frontier`), so a decoding step does not copy the cache; continuing an older
state a second time (a branch) copies its part of the buffers first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

K_MIN, K_MAX = -60.0, 30.0  # clamp of the key before exp
LN_EPS = 1e-5


@dataclass(frozen=True)
class AIWriterV1Config:
    n_layer: int
    n_embd: int
    n_head: int
    ctx_len: int
    vocab_size: int
    n_ffn: int
    head_qk: int  # 0 = the older layout without the copy head

    @classmethod
    def from_state_dict(cls, weights: dict) -> "AIWriterV1Config":
        n_layer = 1 + max(int(key.split(".")[1]) for key in weights if key.startswith("blocks."))
        vocab_size, n_embd = weights["tok_emb.weight"].shape
        n_head, ctx_len = weights["blocks.0.attn.time_w"].shape
        head_q = weights.get("head_q.weight")
        return cls(
            n_layer=n_layer,
            n_embd=n_embd,
            n_head=n_head,
            ctx_len=ctx_len,
            vocab_size=vocab_size,
            n_ffn=weights["blocks.0.mlp.key.weight"].shape[0],
            head_qk=0 if head_q is None else head_q.shape[0],
        )


class AIWriterV1State(NamedTuple):
    """The cached window; axis 0 is the layer (or 1), axis 1 the batch row."""

    ids: torch.Tensor  # (1, B, T) int64, the characters read, valid up to `length`
    length: torch.Tensor  # (1, B) int64, positions read (the same in every row)
    frontier: torch.Tensor  # (1, B) int64, shared by states that share buffers: positions written
    ln1_last: torch.Tensor  # (L, B, C/2) LN1 output of the last position, first half (for the shift)
    ln2_last: torch.Tensor  # (L, B, C/2)
    kv: torch.Tensor  # (L, B, T, C) k*v of every position read
    k_sum: torch.Tensor  # (L, B, C) sum of k over the positions read
    head_k: torch.Tensor  # (1, B, T, Q) the copy head's keys (Q = 1 unused without a copy head)


def half_shift(z: torch.Tensor, previous_half: torch.Tensor) -> torch.Tensor:
    """z (B, m, C) with its first C/2 channels taken from one position earlier; previous_half (B, C/2)
    is that half at the position before z[:, 0]."""
    half = z.shape[-1] // 2
    shifted = torch.cat([previous_half.unsqueeze(1).to(z.dtype), z[:, :-1, :half]], dim=1)
    return torch.cat([shifted, z[:, :, half:]], dim=-1)


class TimeMix(nn.Module):
    def __init__(self, config: AIWriterV1Config):
        super().__init__()
        C, H, T = config.n_embd, config.n_head, config.ctx_len
        self.n_head = H
        self.time_w = nn.Parameter(torch.empty(H, T))
        self.time_alpha = nn.Parameter(torch.empty(H, 1, T))
        self.time_beta = nn.Parameter(torch.empty(H, T, 1))
        self.time_gamma = nn.Parameter(torch.empty(T, 1))
        self.key = nn.Linear(C, C)
        self.value = nn.Linear(C, C)
        self.receptance = nn.Linear(C, C)
        self.output = nn.Linear(C, C)

    def mixing_rows(self, start: int, end: int) -> torch.Tensor:
        """ww[h, t, u] for target positions start <= t < end and sources u < end (zero for u > t)."""
        T = self.time_w.shape[1]
        t = torch.arange(start, end, device=self.time_w.device).unsqueeze(1)
        u = torch.arange(end, device=self.time_w.device).unsqueeze(0)
        causal = u <= t
        lag_index = torch.where(causal, T - 1 - (t - u), T - 1)  # (m, end)
        ww = self.time_w[:, lag_index] * self.time_alpha[:, 0, :end].unsqueeze(1) * self.time_beta[:, start:end]
        return ww * causal

    def forward(self, z, previous_half, kv_buffer, k_sum, start: int):
        """z (B, m, C): LN1 output at positions start..start+m-1. Writes k*v into kv_buffer (B, T, C);
        returns (output (B, m, C), new k_sum (B, C))."""
        B, m, C = z.shape
        end = start + m
        zs = half_shift(z, previous_half)
        k = torch.exp(torch.clamp(self.key(zs).float(), K_MIN, K_MAX))
        v = self.value(zs).float()
        r = self.receptance(zs)
        kv_buffer[:, start:end] = k * v
        running_k = k_sum.unsqueeze(1) + torch.cumsum(k, dim=1)  # den for each new position
        ww = self.mixing_rows(start, end).float()  # (H, m, end)
        kv = kv_buffer[:, :end].view(B, end, self.n_head, C // self.n_head)
        num = torch.einsum("htu,buhc->bthc", ww, kv).reshape(B, m, C)
        mixed = (torch.sigmoid(r.float()) * num / running_k).to(z.dtype)
        return self.output(mixed) * self.time_gamma[start:end], running_k[:, -1]


class ChannelMix(nn.Module):
    def __init__(self, config: AIWriterV1Config):
        super().__init__()
        C, F_ = config.n_embd, config.n_ffn
        self.key = nn.Linear(C, F_)
        self.value = nn.Linear(C, F_)
        self.weight = nn.Linear(F_, C)  # the original's name for the output layer
        self.receptance = nn.Linear(C, C)

    def forward(self, z, previous_half):
        zs = half_shift(z, previous_half)
        return torch.sigmoid(self.receptance(zs)) * self.weight(F.mish(self.key(zs)) * self.value(zs))


class Block(nn.Module):
    def __init__(self, config: AIWriterV1Config):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, eps=LN_EPS)
        self.ln2 = nn.LayerNorm(config.n_embd, eps=LN_EPS)
        self.attn = TimeMix(config)
        self.mlp = ChannelMix(config)


class AIWriterV1(nn.Module):
    architecture = "aiwriter-v1"

    def __init__(self, config: AIWriterV1Config):
        super().__init__()
        self.config = config
        self.refill = 0  # exact (see set_refill)
        C, T, V = config.n_embd, config.ctx_len, config.vocab_size
        self.tok_emb = nn.Embedding(V, C)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(C, eps=LN_EPS)
        self.time_out = nn.Parameter(torch.empty(1, T, 1))
        self.head = nn.Linear(C, V, bias=False)
        if config.head_qk:
            self.head_q = nn.Linear(C, config.head_qk)
            self.head_k = nn.Linear(C, config.head_qk)

    def set_refill(self, refill: int) -> None:
        """0 (the default): exact, as the original: once the window is full, every new character
        re-reads the last ctx_len characters from position 0 (a full pass each). N > 0: once it is
        full, start again from the last N characters and grow one cached position per character
        until it is full again (one pass of N characters per ctx_len - N new ones; the model then
        sees between N and ctx_len characters instead of always ctx_len)."""
        if not 0 <= refill < self.config.ctx_len:
            raise ValueError(f"window_refill must be 0 (exact) or 1..{self.config.ctx_len - 1}, not {refill}")
        self.refill = refill

    @property
    def window(self) -> int:
        """The model reads at most the last `window` characters: with refill 0 (exact) its state after any
        text is its state after those, so a prompt reader may skip what lies before them."""
        return self.config.ctx_len

    # -- state ---------------------------------------------------------------------------
    def zero_state(self, batch: int = 1) -> AIWriterV1State:
        c = self.config
        device = self.tok_emb.weight.device
        zeros = lambda *shape, dtype=torch.float32: torch.zeros(*shape, dtype=dtype, device=device)  # noqa: E731
        return AIWriterV1State(
            ids=zeros(1, batch, c.ctx_len, dtype=torch.long),
            length=zeros(1, batch, dtype=torch.long),
            frontier=zeros(1, batch, dtype=torch.long),
            ln1_last=zeros(c.n_layer, batch, c.n_embd // 2),
            ln2_last=zeros(c.n_layer, batch, c.n_embd // 2),
            kv=zeros(c.n_layer, batch, c.ctx_len, c.n_embd),
            k_sum=zeros(c.n_layer, batch, c.n_embd),
            head_k=zeros(1, batch, c.ctx_len, max(1, c.head_qk)),
        )

    @staticmethod
    def _writable(state: AIWriterV1State, length: int) -> AIWriterV1State:
        """The state's buffers if nothing was written past `length`, else a private copy of them."""
        if int(state.frontier[0, 0]) == length:
            return state
        frontier = torch.full_like(state.frontier, length)
        return AIWriterV1State(
            state.ids.clone(), state.length, frontier, state.ln1_last, state.ln2_last,
            state.kv.clone(), state.k_sum, state.head_k.clone(),
        )

    # -- the model -----------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, state: AIWriterV1State | None = None, full_output: bool = False):
        """tokens (B, m) continue the text held in `state` (None: empty). Returns (logits (B, V) for the
        last position, or (B, m, V) with full_output; the new state). `state` itself stays valid."""
        B, m = tokens.shape
        T = self.config.ctx_len
        state = self.zero_state(B) if state is None else state
        length = int(state.length[0, 0])
        if not full_output:
            if length + m > T:  # the window moves: the last T characters (or `refill`), from position 0
                keep = min(T, max(self.refill, m)) if self.refill else T
                window = torch.cat([state.ids[0, :, :length], tokens], dim=1)[:, -keep:]
                return self._extend(window, self.zero_state(B), 0)
            return self._extend(tokens, state, length)
        outputs = []  # every position's logits: fill the window, then one full pass per position
        while tokens.shape[1]:
            if length < T:
                piece = tokens[:, : T - length]
                logits, state = self._extend(piece, state, length, full_output=True)
            else:
                piece = tokens[:, :1]
                logits, state = self.forward(piece, state)
                logits = logits.unsqueeze(1)
            outputs.append(logits)
            tokens = tokens[:, piece.shape[1]:]
            length = int(state.length[0, 0])
        return torch.cat(outputs, dim=1), state

    def _extend(self, tokens, state: AIWriterV1State, start: int, full_output: bool = False):
        """Read tokens (B, m) at positions start.. (start + m <= T) on top of `state`."""
        B, m = tokens.shape
        end = start + m
        state = self._writable(state, start)
        ids = state.ids
        ids[0, :, start:end] = tokens
        ln1_last, ln2_last, k_sum = state.ln1_last.clone(), state.ln2_last.clone(), state.k_sum.clone()
        half = self.config.n_embd // 2
        x = self.tok_emb(tokens)
        for i, block in enumerate(self.blocks):
            z = block.ln1(x)
            att, k_sum[i] = block.attn(z, ln1_last[i], state.kv[i], k_sum[i], start)
            ln1_last[i] = z[:, -1, :half]
            x = x + att
            z = block.ln2(x)
            x = x + block.mlp(z, ln2_last[i])
            ln2_last[i] = z[:, -1, :half]
        x = self.ln_f(x)
        rows = x if full_output else x[:, -1:]  # the positions whose logits are wanted
        first = end - rows.shape[1]
        logits = self.head(rows * self.time_out[:, first:end]).float()
        if self.config.head_qk:
            keys = state.head_k[0]
            keys[:, start:end] = self.head_k(x).float()
            copy = self.head_q(rows).float() @ keys[:, :end].transpose(1, 2) / self.config.head_qk
            t = torch.arange(first, end, device=x.device).unsqueeze(1)
            copy = copy * (torch.arange(end, device=x.device).unsqueeze(0) <= t)  # (B, rows, end), u <= t
            logits.scatter_add_(2, ids[0, :, :end].unsqueeze(1).expand(B, rows.shape[1], end), copy)
        state.frontier.fill_(end)
        new_state = AIWriterV1State(ids, torch.full_like(state.length, end), state.frontier,
                                    ln1_last, ln2_last, state.kv, k_sum, state.head_k)
        return (logits if full_output else logits[:, 0]), new_state
