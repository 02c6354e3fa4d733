"""Seeded random weights in the ranges a trained RWKV model has.

For tests, benchmarks and the start of training; never a model to write with.
Each architecture names the values of its own parameters; the rest follow one
rule: LayerNorm weights 1 +- 0.1 and biases +- 0.1, the embedding N(0, 1), every
other matrix N(0, 1/fan_in).
"""

from __future__ import annotations

import math

import torch


class RandomValues:
    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)

    def uniform(self, shape, low, high):
        return torch.rand(shape, generator=self.generator) * (high - low) + low

    def normal(self, shape, std):
        return torch.randn(shape, generator=self.generator) * std


def fill_parameters(model, seed: int, own_values):
    """Fill every parameter; own_values(name, leaf, p, rand) returns a tensor for the
    architecture's own parameters and None for the rest."""
    rand = RandomValues(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            parent = name.rsplit(".", 2)[-2] if name.count(".") >= 1 else ""
            if parent.startswith("ln") and leaf == "weight":
                value = 1.0 + rand.normal(p.shape, 0.1)
            elif parent.startswith("ln") and leaf == "bias":
                value = rand.normal(p.shape, 0.1)
            else:
                value = own_values(name, leaf, p, rand)
                if value is None and name == "emb.weight":
                    value = rand.normal(p.shape, 1.0)
                elif value is None:  # Linear layers, (out, in)
                    value = rand.normal(p.shape, 1.0 / math.sqrt(p.shape[1]))
            p.copy_(value.to(p.dtype))
    return model
