"""Backends run a model file behind one API:

    from backends import load
    engine = load("model.safetensors", backend="torch", device="cpu")
    ids = engine.tokenizer.encode("第一章")
    logits, state = engine.forward([[1, 2, 3], [4, 5, 6]], None)   # (B, V) float32
    logits, state = engine.forward([[7], [8]], state)
    forked = engine.repeat_rows(state, 3)                          # one prompt -> N candidates

backend: "torch", "onnx" (ONNX Runtime: DirectML, CUDA or CPU; a model file is
exported on first use and cached, an exported .onnx file opens directly, without
torch), "directml" (onnx on DirectML, or LoadError) or "auto" (backends.selection).
`engine.selection` holds (backend, device, reason) for the status line.
"""

from __future__ import annotations

from pathlib import Path

from backends.engine import EngineError, EngineInfo
from models.tokenizer import DEFAULT_UNKNOWN_CHAR, CharTokenizer, VocabError

__all__ = ["load", "LoadError", "EngineError", "EngineInfo", "find_vocab"]

BACKENDS = ("auto", "torch", "onnx", "directml", "torch+onnx", "torch+native")


class LoadError(ValueError):
    """The model, its vocabulary or the backend choice cannot be used; one line naming which."""


def find_vocab(model_path: Path) -> Path | None:
    """The vocabulary beside a model: MODEL_STEM.json, else vocab.json in the same folder."""
    if model_path.is_dir():  # a folder of .bin tensors (AI-Writer's browser demo): the JSON inside it
        inside = sorted(model_path.glob("*.json"), key=lambda p: p.name != "vocab.json")
        return inside[0] if inside else None
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
    cache_dir=None,
    window_refill: int = 0,
):
    """Open a model file with its tokenizer; LoadError with one clear line if anything is wrong.

    cache_dir: where the onnx backend keeps exports (default: the user cache directory).
    window_refill: AI-Writer v1 models only (others ignore it): 0 reads exactly the last ctx_len
    characters for every new one, as the original; N restarts a full window from the last N
    characters and grows it again (models.aiwriter_v1.AIWriterV1.set_refill).
    """
    path = Path(path).expanduser()
    if backend not in BACKENDS:
        raise LoadError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
    if not path.is_file() and not path.is_dir():
        raise LoadError(f"{path}: no such model file")
    vocab_path = Path(vocab).expanduser() if vocab else find_vocab(path)
    tokenizer = _open_tokenizer(path, vocab_path, unknown_char)
    from backends.selection import select_backend

    choice = select_backend(backend, device, path)
    if choice.backend == "onnx":
        from backends.onnx_engine import load_onnx

        engine = load_onnx(path, tokenizer, choice, dtype, cache_dir)
    elif choice.backend in ("torch+onnx", "torch+native"):  # CPU: torch reads prompts, a step decodes (backends.hybrid_engine)
        from backends.hybrid_engine import load_hybrid

        engine, choice = load_hybrid(path, tokenizer, choice, dtype, cache_dir)
    else:
        engine = _load_torch(path, tokenizer, choice.device, dtype)
    engine.selection = choice
    model = getattr(engine, "model", None)
    if window_refill and hasattr(model, "set_refill"):
        try:
            model.set_refill(window_refill)
        except ValueError as exc:
            raise LoadError(f"{path}: {exc}") from None
    return engine


PILE_VOCAB_SIZE = 50277  # RWKV-4 Pile / Raven models: the GPT-NeoX 20B tokenizer


def _open_tokenizer(path: Path, vocab_path: Path | None, unknown_char: str):
    """The vocabulary's tokenizer: a JSON one (CharTokenizer) or the World one (a .txt vocab, or
    vocab "world"). Without a vocabulary file, a model of 65,536 token rows gets the World tokenizer."""
    from models.world_tokenizer import WORLD_VOCAB_SIZE, WorldTokenizer, is_world_vocab

    rows = None
    try:
        if vocab_path is not None and vocab_path.name.lower() == "world" and not vocab_path.exists():
            return WorldTokenizer.default()
        if vocab_path is not None and is_world_vocab(vocab_path):
            return WorldTokenizer.from_file(vocab_path)
        if vocab_path is not None:
            return CharTokenizer.from_file(vocab_path, unknown_char=unknown_char)
        if path.suffix in (".safetensors", ".pth", ".pt", ".bin", ".ckpt"):
            from models.checkpoint import embedding_rows

            rows = embedding_rows(path)
        if rows == WORLD_VOCAB_SIZE:
            return WorldTokenizer.default()
    except VocabError as exc:
        raise LoadError(str(exc)) from None
    if rows == PILE_VOCAB_SIZE:
        raise LoadError(
            f"{path}: {rows} token rows: this model needs the GPT-NeoX 20B (Pile) tokenizer, which is not "
            "supported (RWKV World models and models with a vocabulary JSON are)"
        )
    raise LoadError(f"{path}: no vocabulary beside it ({path.with_suffix('.json').name} or vocab.json)")


def _load_torch(path: Path, tokenizer, device: str, dtype: str | None, script: bool = True):
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
        model = load_model(path, dtype=dtypes[dtype], device=device, script=script)
    except ModelFileError as exc:
        raise LoadError(str(exc)) from None
    config = model.config
    if config.vocab_size != tokenizer.vocab_size:
        raise LoadError(
            f"{path}: the model has {config.vocab_size} token rows but its vocabulary has {tokenizer.vocab_size} entries"
        )
    architecture = getattr(model, "architecture", "rwkv7")  # models.rwkv4.RWKV4 says "rwkv4"
    info = EngineInfo(architecture, "torch", device, str(path), config.n_layer, config.n_embd, config.vocab_size)
    return TorchEngine(model, tokenizer, info)
