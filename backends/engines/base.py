"""What every engine offers (the Engine protocol), what it says about itself (EngineInfo), and the
check of a batch of token ids that each forward() starts with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ai_writer.backends.errors import EngineError


@dataclass(frozen=True)
class EngineInfo:
    architecture: str  # "rwkv7", "rwkv4", "aiwriter-v1", ...
    backend: str  # a backends.engines.names.Backend: "torch", "onnx", "torch+native", "torch+onnx"
    device: str  # "cpu", "cuda", "directml", ...
    model_path: str
    n_layer: int
    n_embd: int
    vocab_size: int


@runtime_checkable
class Engine(Protocol):
    """One model behind a batched, stateless forward(): a state goes in and a new one comes out.

    A state is a tuple of arrays (torch tensors or numpy arrays) with the layer on axis 0 and the
    batch row on axis 1; the row operations fork one prompt's state into N candidates.
    """

    tokenizer: object  # models.tokenizer.CharTokenizer or models.world_tokenizer.WorldTokenizer
    info: EngineInfo
    tokens_processed: int  # positions run through the model, all rows counted once per row

    def forward(self, token_lists, state=None, full_output: bool = False) -> tuple[np.ndarray, object]:
        """B equal-length id lists (and a state of B rows, or None) -> (float32 logits, new state).

        logits: (B, V) for each last position, or (B, T, V) with full_output. The given state is
        not modified."""

    def zero_state(self, batch: int = 1): ...

    def copy_state(self, state): ...

    def take_rows(self, state, rows): ...

    def repeat_rows(self, state, times: int): ...


def check_vocab_rows(path, rows: int, tokenizer) -> None:
    """LoadError (one line) when a model's token rows and its vocabulary's entries differ."""
    if rows != tokenizer.vocab_size:
        from ai_writer.backends.errors import LoadError

        raise LoadError(f"{path}: the model has {rows} token rows but its vocabulary has {tokenizer.vocab_size} entries")


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
