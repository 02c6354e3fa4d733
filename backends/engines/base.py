"""What every backend offers: a tokenizer and a batched `forward` over a state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class EngineError(ValueError):
    """A request the engine cannot run (bad token ids, mismatched batch)."""


@dataclass(frozen=True)
class EngineInfo:
    architecture: str  # "rwkv7", ...
    backend: str  # "torch", "onnx"
    device: str  # "cpu", "cuda", ...
    model_path: str
    n_layer: int
    n_embd: int
    vocab_size: int


def check_batch(token_lists, vocab_size: int) -> np.ndarray:
    """B equal-length lists of ids as an int64 (B, T) array, or EngineError."""
    try:
        batch = np.asarray(token_lists, dtype=np.int64)
    except (ValueError, TypeError):
        raise EngineError("forward() takes B lists of token ids of equal length") from None
    if batch.ndim != 2 or batch.shape[0] == 0 or batch.shape[1] == 0:
        raise EngineError(f"forward() takes B >= 1 non-empty lists of token ids (got shape {batch.shape})")
    if batch.min() < 0 or batch.max() >= vocab_size:
        raise EngineError(f"token id out of range 0..{vocab_size - 1}")
    return batch
