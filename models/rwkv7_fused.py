"""RWKV-7's fast forms: the equations of models.rwkv7 rearranged for speed; what the engines run.

    model = prepare_for_inference(RWKV7 or FusedRWKV7)   # fused, frozen, mixing layers in TorchScript
    logits, state = model(tokens (B, T), state)          # T == 1: the single-step update,
                                                         # T > 1: the chunked one (models.wkv7)

Same parameters, names and layout as models.rwkv7 (a subclass of each of its
modules, so a state dict moves between them as it is), same results to float32
rounding (tests/test_rwkv7_fused.py). What differs:

- the six token-shift mixes in one addcmul; the decay as log w = -e^-0.5 sigmoid(.)
  (the plain exp(w) = e^-0.5 sigmoid(.), so no exp of an exp); LoRA biases inside addmm;
- T > 1: the state update solved chunk by chunk (models.wkv7.wkv7_chunked), or by
  a scan an engine hands over (FusedRWKV7.use_sequence_wkv: backends.engines.native_step's C scan);
- without full_output the last layer computes only the two positions the last
  logits read (its state update still reads them all).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ai_writer.models.rwkv7 import DECAY_SCALE, GROUP_NORM_EPS, RWKV7, ChannelMix, RWKV7Config, RWKV7State, TimeMix
from ai_writer.models.wkv7 import wkv7_chunked, wkv7_step


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


class FusedTimeMix(TimeMix):
    __constants__ = ["decay_scale", "eps", "layer_id", "n_head", "head_size"]
    __jit_ignored_attributes__ = ["sequence_wkv"]
    # The state update over T > 1 tokens, (state, r, log_w, k, v, a, b) -> (o, state) as
    # models.wkv7.wkv7_chunked; FusedRWKV7.use_sequence_wkv replaces it on eager modules.
    sequence_wkv = staticmethod(wkv7_chunked)

    def __init__(self, config: RWKV7Config, layer_id: int):
        super().__init__(config, layer_id)
        self.decay_scale, self.eps = DECAY_SCALE, GROUP_NORM_EPS

    def forward(self, x, x_prev, kv, v_first, keep: int = 0):
        """TimeMix.forward; keep > 0: the output of only the last `keep` positions (the state
        still reads all of them). Returns (out (B, T or keep, C), last x (B, C), kv, v_first)."""
        B, T, C = x.shape
        H, N = self.n_head, self.head_size
        xx = _shift_delta(x, x_prev)
        mixes = torch.stack((self.x_r, self.x_w, self.x_k, self.x_v, self.x_a, self.x_g))  # (6, 1, 1, C)
        xr, xw, xk, xv, xa, xg = torch.addcmul(x, xx, mixes).unbind(0)  # x + xx * x_?

        r = self.receptance(xr)
        log_w = -self.decay_scale * torch.sigmoid(_lora(self.w0, torch.tanh(xw @ self.w1), self.w2))
        k = self.key(xk)
        v = self.value(xv)
        iclr = torch.sigmoid(_lora(self.a0, xa @ self.a1, self.a2))  # the plain form's a

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


class FusedChannelMix(ChannelMix):
    def forward(self, x, x_prev):
        """ChannelMix.forward, squaring in place outside autograd."""
        xx = _shift_delta(x, x_prev)
        k = torch.relu_(self.key(torch.addcmul(x, xx, self.x_k)))  # in place: a product's own output
        k = k ** 2 if torch.is_grad_enabled() else k.square_()
        return self.value(k), x[:, -1]


class FusedRWKV7(RWKV7):
    mixers = (FusedTimeMix, FusedChannelMix)

    def forward(self, tokens: torch.Tensor, state: RWKV7State | None = None, full_output: bool = False):
        """RWKV7.forward: tokens (B, T) -> (logits (B, V), or (B, T, V) with full_output; new state)."""
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

    def use_sequence_wkv(self, scan) -> bool:
        """Run each layer's state update over T > 1 tokens with `scan` (wkv7_chunked's signature and
        results). False, and nothing changed, where the layers are scripted (they keep wkv7_chunked)."""
        layers = [block.att for block in self.blocks]
        if not all(type(att) is FusedTimeMix for att in layers):
            return False
        for att in layers:
            att.sequence_wkv = scan
        return True


def fuse(model: RWKV7) -> FusedRWKV7:
    """The fused form of a model, holding the same parameter tensors (no copy)."""
    if isinstance(model, FusedRWKV7):
        return model
    with torch.device("meta"):
        fused = FusedRWKV7(model.config)
    fused.load_state_dict(model.state_dict(), strict=True, assign=True)
    return fused.train(model.training)


def freeze_and_script(model, script: bool = True):
    """Freeze the weights (each parameter contiguous: the layout models.rwkv7 documents) and
    compile each block's mixing layers with TorchScript, which runs the many small operations
    of a step without Python between them. Also used by models.rwkv4."""
    model.eval().requires_grad_(False)
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.is_contiguous():  # e.g. a .pth saved from transposed views
                setattr(module, name, nn.Parameter(p.contiguous(), requires_grad=False))
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


def prepare_for_inference(model: RWKV7, script: bool = True) -> FusedRWKV7:
    """What the engines run: the fused form, frozen, its mixing layers compiled unless script=False
    (eager layers take an engine's scan, FusedRWKV7.use_sequence_wkv). Values, names, results unchanged."""
    return freeze_and_script(fuse(model), script)
