"""Tiny random AI-Writer v1 and v2 models in the original files' exact layouts (never models to ship):
a v1 `.pth` pickled as a whole module from stand-in classes named like the originals (src.model.GPT,
...), and a v2 folder of raw float32 `.bin` tensors."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn


def _uniform(seed: int):
    """rand(*shape, low, high): seeded uniform values."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, low=-1.0, high=1.0):
        return low + (high - low) * torch.rand(*shape, generator=g)

    return rand


def _layer_norm(w: dict, name: str, size: int, rand) -> None:
    w[name + ".weight"] = 1 + 0.2 * rand(size)
    w[name + ".bias"] = 0.1 * rand(size)


def random_v1_weights(n_layer=2, n_embd=16, n_head=2, ctx_len=12, vocab_size=40, n_ffn=24, head_qk=8,
                      older=False, seed=0) -> dict[str, torch.Tensor]:
    """The v1 state dict: key names and shapes as in aiwriter-formats.md; `older` = with attn.mask and
    without the copy head."""
    rand = _uniform(seed)
    C, T, H, F = n_embd, ctx_len, n_head, n_ffn

    def linear(prefix, rows, cols, bias=True):
        w[prefix + ".weight"] = rand(rows, cols) / math.sqrt(cols)
        if bias:
            w[prefix + ".bias"] = rand(rows) * 0.1

    w = {"tok_emb.weight": rand(vocab_size, C)}
    for i in range(n_layer):
        p = f"blocks.{i}."
        _layer_norm(w, p + "ln1", C, rand)
        _layer_norm(w, p + "ln2", C, rand)
        lag = torch.arange(T - 1, -1, -1, dtype=torch.float32)  # time_w[h, T-1-d] for lag d
        w[p + "attn.time_w"] = torch.exp(-lag.unsqueeze(0) * rand(H, 1, low=0.05, high=0.5)) * rand(H, T, low=0.7, high=1.3)
        w[p + "attn.time_alpha"] = rand(H, 1, T, low=0.5, high=1.5)
        w[p + "attn.time_beta"] = rand(H, T, 1, low=0.5, high=1.5)
        w[p + "attn.time_gamma"] = rand(T, 1, low=0.5, high=1.5)
        if older:
            w[p + "attn.mask"] = torch.tril(torch.ones(T, T))
        for name in ("key", "value", "receptance", "output"):
            linear(p + "attn." + name, C, C)
        linear(p + "mlp.key", F, C)
        linear(p + "mlp.value", F, C)
        linear(p + "mlp.weight", C, F)
        linear(p + "mlp.receptance", C, C)
    _layer_norm(w, "ln_f", C, rand)
    w["time_out"] = rand(1, T, 1, low=0.5, high=1.5)
    linear("head", vocab_size, C, bias=False)
    if not older:
        linear("head_q", head_qk, C)
        linear("head_k", head_qk, C)
        w["copy_mask"] = torch.tril(torch.ones(T, T))
    return w


def _stand_in_module():
    """A module named src.model holding classes named like AI-Writer's, so pickle records those names."""

    class GPTConfig:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    class GPT(nn.Module):
        pass

    class Block(nn.Module):
        pass

    class RWKV_TimeMix(nn.Module):
        pass

    class RWKV_ChannelMix(nn.Module):
        pass

    module = types.ModuleType("src.model")
    for cls in (GPTConfig, GPT, Block, RWKV_TimeMix, RWKV_ChannelMix):
        cls.__module__ = "src.model"
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    return module


def write_v1_whole_module(path: Path, weights: dict[str, torch.Tensor]) -> Path:
    """torch.save of a whole src.model.GPT object holding `weights`, as the original trainer saved it."""
    module = _stand_in_module()
    package = types.ModuleType("src")
    package.model = module
    saved = {name: sys.modules.get(name) for name in ("src", "src.model")}
    sys.modules["src"], sys.modules["src.model"] = package, module
    try:
        def parameter(key):
            return nn.Parameter(weights[key].clone())

        def linear(prefix, bias=True):
            weight = weights[prefix + ".weight"]
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
            layer.weight = parameter(prefix + ".weight")
            if bias:
                layer.bias = parameter(prefix + ".bias")
            return layer

        def layer_norm(prefix):
            layer = nn.LayerNorm(weights[prefix + ".weight"].shape[0])
            layer.weight, layer.bias = parameter(prefix + ".weight"), parameter(prefix + ".bias")
            return layer

        n_layer = 1 + max(int(k.split(".")[1]) for k in weights if k.startswith("blocks."))
        gpt = module.GPT()
        vocab_size, n_embd = weights["tok_emb.weight"].shape
        gpt.config = module.GPTConfig(vocab_size=vocab_size, ctx_len=weights["time_out"].shape[1],
                                      model_type="RWKV", n_layer=n_layer, n_embd=n_embd)
        gpt.tok_emb = nn.Embedding(vocab_size, n_embd)
        gpt.tok_emb.weight = parameter("tok_emb.weight")
        blocks = []
        for i in range(n_layer):
            p = f"blocks.{i}."
            block = module.Block()
            block.ln1, block.ln2 = layer_norm(p + "ln1"), layer_norm(p + "ln2")
            attn = module.RWKV_TimeMix()
            for name in ("time_w", "time_alpha", "time_beta", "time_gamma"):
                setattr(attn, name, parameter(p + "attn." + name))
            attn.time_shift = nn.ZeroPad2d((0, 0, 1, -1))
            for name in ("key", "value", "receptance", "output"):
                setattr(attn, name, linear(p + "attn." + name))
            if p + "attn.mask" in weights:
                attn.register_buffer("mask", weights[p + "attn.mask"].clone())
            mlp = module.RWKV_ChannelMix()
            mlp.time_shift = nn.ZeroPad2d((0, 0, 1, -1))
            for name in ("key", "value", "weight", "receptance"):
                setattr(mlp, name, linear(p + "mlp." + name))
            block.attn, block.mlp = attn, mlp
            blocks.append(block)
        gpt.blocks = nn.Sequential(*blocks)
        gpt.ln_f = layer_norm("ln_f")
        gpt.time_out = parameter("time_out")
        gpt.head = linear("head", bias=False)
        if "head_q.weight" in weights:
            gpt.head_q, gpt.head_k = linear("head_q"), linear("head_k")
            gpt.register_buffer("copy_mask", weights["copy_mask"].clone())
        assert set(gpt.state_dict()) == set(weights), "the stand-in tree must hold exactly the documented keys"
        torch.save(gpt, path)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return Path(path)


def random_v2_weights(n_layer=3, n_embd=16, vocab_size=40, n_ffn=32, head_qk=8, ffn_pre=True, seed=0) -> dict:
    """A v2 state dict in the training layout (time_decay and time_first as trained), flat time_* vectors."""
    rand = _uniform(seed)
    C = n_embd

    def ffn(prefix):
        w[prefix + ".time_mix"] = rand(C, low=0.0, high=1.0)
        w[prefix + ".key.weight"] = rand(n_ffn, C) / math.sqrt(C)
        w[prefix + ".value.weight"] = rand(C, n_ffn) / math.sqrt(n_ffn)
        w[prefix + ".receptance.weight"] = rand(C, C) / math.sqrt(C)

    w = {"emb.weight": rand(vocab_size, C)}
    for i in range(n_layer):
        p = f"blocks.{i}."
        _layer_norm(w, p + "ln1", C, rand)
        _layer_norm(w, p + "ln2", C, rand)
        if i == 0 and ffn_pre:
            ffn(p + "ffnPre")
        else:
            w[p + "att.time_mix"] = rand(C, low=0.0, high=1.0)
            w[p + "att.time_decay"] = rand(C, low=-5.0, high=2.0)
            w[p + "att.time_first"] = rand(C, low=-1.0, high=1.0) + math.log(0.3)
            for name in ("key", "value", "receptance", "output"):
                w[p + f"att.{name}.weight"] = rand(C, C) / math.sqrt(C)
        ffn(p + "ffn")
    _layer_norm(w, "ln_out", C, rand)
    w["head.weight"] = rand(vocab_size, C) / math.sqrt(C)
    w["head_q.weight"] = rand(head_qk, C) / math.sqrt(C)
    w["head_k.weight"] = rand(head_qk, C) / math.sqrt(C)
    return w


def stored_v2_form(weights: dict) -> dict:
    """The browser demo's form: w = exp(-exp(time_decay)), u = exp(time_first)."""
    out = dict(weights)
    for key, value in weights.items():
        if key.endswith(".time_decay"):
            out[key] = torch.exp(-torch.exp(value.double())).float()
        elif key.endswith(".time_first"):
            out[key] = torch.exp(value.double()).float()
    return out


def write_bin_folder(folder: Path, weights: dict) -> Path:
    """One raw little-endian float32 KEY.bin per tensor, decay and first in the stored form."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in stored_v2_form(weights).items():
        value.detach().numpy().astype("<f4").tofile(folder / f"{key}.bin")
    return folder
