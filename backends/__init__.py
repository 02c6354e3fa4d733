"""Backends run a model file behind one API:

    from backends import load
    engine = load("model.safetensors", backend="torch", device="cpu")
    ids = engine.tokenizer.encode("第一章")
    logits, state = engine.forward([[1, 2, 3], [4, 5, 6]], None)   # (B, V) float32
    logits, state = engine.forward([[7], [8]], state)
    forked = engine.repeat_rows(state, 3)                          # one prompt -> N candidates
"""

from __future__ import annotations

from pathlib import Path

from backends.engine import EngineError, EngineInfo
from models.tokenizer import DEFAULT_UNKNOWN_CHAR, CharTokenizer, VocabError

__all__ = ["load", "LoadError", "EngineError", "EngineInfo", "find_vocab"]

BACKENDS = ("auto", "torch")


class LoadError(ValueError):
    """The model, its vocabulary or the backend choice cannot be used; one line naming which."""


def find_vocab(model_path: Path) -> Path | None:
    """The vocabulary beside a model: MODEL_STEM.json, else vocab.json in the same folder."""
    for candidate in (model_path.with_suffix(".json"), model_path.parent / "vocab.json"):
        if candidate.is_file():
            return candidate
    return None


def load(
    path,
    backend: str = "auto",
    device: str = "auto",
    vocab=None,
    dtype: str | None = None,
    unknown_char: str = DEFAULT_UNKNOWN_CHAR,
):
    """Open a model file with its tokenizer; LoadError with one clear line if anything is wrong."""
    path = Path(path).expanduser()
    if backend not in BACKENDS:
        raise LoadError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
    if not path.is_file():
        raise LoadError(f"{path}: no such model file")
    vocab_path = Path(vocab).expanduser() if vocab else find_vocab(path)
    if vocab_path is None:
        raise LoadError(f"{path}: no vocabulary beside it ({path.with_suffix('.json').name} or vocab.json)")
    try:
        tokenizer = CharTokenizer.from_file(vocab_path, unknown_char=unknown_char)
    except VocabError as exc:
        raise LoadError(str(exc)) from None
    return _load_torch(path, tokenizer, device, dtype)


def _load_torch(path: Path, tokenizer, device: str, dtype: str | None):
    import torch

    from backends.torch_engine import TorchEngine, pick_torch_device
    from models.checkpoint import ModelFileError, load_model

    try:
        device = pick_torch_device(device)
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    dtype = dtype or ("float32" if device == "cpu" else "float16")
    if dtype not in dtypes:
        raise LoadError(f"unknown dtype {dtype!r} (available: {', '.join(dtypes)})")
    try:
        model = load_model(path, dtype=dtypes[dtype], device=device)
    except ModelFileError as exc:
        raise LoadError(str(exc)) from None
    config = model.config
    if config.vocab_size != tokenizer.vocab_size:
        raise LoadError(
            f"{path}: the model has {config.vocab_size} token rows but its vocabulary has {tokenizer.vocab_size} entries"
        )
    info = EngineInfo("rwkv7", "torch", device, str(path), config.n_layer, config.n_embd, config.vocab_size)
    return TorchEngine(model, tokenizer, info)
