"""The skeleton RWKV-4, RWKV-5.2 and RWKV-6 share; their equations (TimeMix, ChannelMix) stay in
models.rwkv4, models.rwkv5 and models.rwkv6. The block is models.rwkv7's, without RWKV-7's v_first.

    x = ln0(emb(tokens))                                   ln0 only in block 0
    per block:  x = x + att(ln1(x));  x = x + ffn(ln2(x))
    logits = head(ln_out(x))

The state is a NamedTuple (att_x_prev, the time mixing's own tensors..., ffn_x_prev), each
(L, B, ...): axis 0 the layer, axis 1 the batch row. A time mixing takes (x, x_prev, *its state)
and returns (out, x[:, -1], *its new state); a channel mixing (x, x_prev) -> (out, x[:, -1]).
"""

from __future__ import annotations

import torch
from torch import nn

from ai_writer.models import rwkv7


def token_shift(x, x_prev):
    """Each position's previous token input: x_prev, then x[:, :-1]. (B, T, C)"""
    if x.shape[1] == 1:
        return x_prev.unsqueeze(1)
    return torch.cat((x_prev.unsqueeze(1), x[:, :-1]), dim=1)


def model_sizes(weights: dict) -> dict:
    """n_layer, n_embd and vocab_size of a checkpoint with BlinkDL's names (blocks.N..., emb.weight (V, C))."""
    n_layer = 1 + max(int(key.split(".")[1]) for key in weights if key.startswith("blocks."))
    vocab_size, n_embd = weights["emb.weight"].shape
    return {"n_layer": n_layer, "n_embd": n_embd, "vocab_size": vocab_size}


class Block(rwkv7.Block):
    """models.rwkv7's block and parameter names: ln0 (block 0 only), ln1 before the time mixing `att`,
    ln2 before the channel mixing `ffn`, each with a residual; run here without RWKV-7's v_first."""

    def __init__(self, config, layer_id: int, time_mix, channel_mix):
        """time_mix(config), channel_mix(config): this layer's mixing layers (the classes, or partials of them)."""
        super().__init__(config, layer_id, lambda config, layer_id: time_mix(config), channel_mix)

    def forward(self, x, att_x_prev, att_state, ffn_x_prev):
        """x (B, T, C); att_state: this layer's time-mixing state tensors (a sequence).
        Returns (x, this layer's new (att_x_prev, *att_state, ffn_x_prev))."""
        if self.layer_id == 0:
            x = self.ln0(x)
        out, att_x, *att_state = self.att(self.ln1(x), att_x_prev, *att_state)
        x = x + out
        out, ffn_x = self.ffn(self.ln2(x), ffn_x_prev)
        return x + out, (att_x, *att_state, ffn_x)


class RWKVModel(nn.Module):
    """emb, the blocks, ln_out and head. Each model sets `state_type` (its state NamedTuple) and,
    unless its time mixing keeps one (L, B, H, N, N) float32 matrix per head, `empty_att_state`."""

    state_type: type  # the model's state NamedTuple

    def __init__(self, config, time_mix, channel_mix):
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config, i, time_mix, channel_mix) for i in range(config.n_layer))
        self.ln_out = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def empty_att_state(self, batch: int) -> tuple:
        """The time mixing's state of no past: here RWKV-5/6's att_kv, zeros (L, B, H, N, N) float32."""
        c = self.config
        shape = (c.n_layer, batch, c.n_head, c.head_size, c.head_size)
        return (torch.zeros(shape, dtype=torch.float32, device=self.emb.weight.device),)

    def zero_state(self, batch: int):
        """The state of no past for `batch` rows; the token shifts in the weights' dtype."""
        c, param = self.config, self.emb.weight
        x = torch.zeros(c.n_layer, batch, c.n_embd, dtype=param.dtype, device=param.device)
        return self.state_type(x, *self.empty_att_state(batch), x.clone())

    def forward(self, tokens: torch.Tensor, state=None, full_output: bool = False):
        """tokens (B, T) -> (logits (B, V), or (B, T, V) with full_output; new state).

        T == 1 is the recurrent step. The given state is not modified.
        """
        if state is None:
            state = self.zero_state(tokens.shape[0])
        x = self.emb(tokens)
        layers = []
        for i, block in enumerate(self.blocks):
            layer = [part[i] for part in state]  # att_x_prev, the time mixing's state..., ffn_x_prev
            x, layer = block(x, layer[0], layer[1:-1], layer[-1])
            layers.append(layer)
        logits = self.head(self.ln_out(x if full_output else x[:, -1]))
        return logits, self.state_type(*(torch.stack(parts) for parts in zip(*layers)))

    def step(self, tokens: torch.Tensor, state=None):
        """tokens (B,) -> (logits (B, V), new state): one recurrent step."""
        return self.forward(tokens.view(-1, 1), state)


def prepare_for_inference(model: RWKVModel, script: bool = True) -> RWKVModel:
    """Freeze the weights and compile the mixing layers (models.rwkv7_fused.freeze_and_script);
    values, names and results are unchanged."""
    from ai_writer.models.rwkv7_fused import freeze_and_script

    return freeze_and_script(model, script=script)
