"""A model file's vocabulary and the tokenizer that reads it: a JSON one (CharTokenizer) or the World one."""

from __future__ import annotations

from pathlib import Path

from ai_writer.backends.errors import LoadError
from ai_writer.models.tokenizer import CharTokenizer, VocabError

PILE_VOCAB_SIZE = 50277  # RWKV-4 Pile / Raven models: the GPT-NeoX 20B tokenizer


def find_vocab(model_path: Path) -> Path | None:
    """The vocabulary beside a model: MODEL_STEM.json, else vocab.json in the same folder."""
    if model_path.is_dir():  # a folder of .bin tensors (AI-Writer's browser demo): the JSON inside it
        inside = sorted(model_path.glob("*.json"), key=lambda p: p.name != "vocab.json")
        return inside[0] if inside else None
    for candidate in (model_path.with_suffix(".json"), model_path.parent / "vocab.json"):
        if candidate.is_file():
            return candidate
    return None


def open_tokenizer(path: Path, vocab_path: Path | None, unknown_char: str):
    """The vocabulary's tokenizer: a JSON one (CharTokenizer) or the World one (a .txt vocab, or
    vocab "world"). Without a vocabulary file, a model of 65,536 token rows gets the World tokenizer.
    LoadError (one line) when there is none that fits."""
    from ai_writer.models.world_tokenizer import WORLD_VOCAB_SIZE, WorldTokenizer, is_world_vocab

    rows = None
    try:
        if vocab_path is not None and vocab_path.name.lower() == "world" and not vocab_path.exists():
            return WorldTokenizer.default()
        if vocab_path is not None and is_world_vocab(vocab_path):
            return WorldTokenizer.from_file(vocab_path)
        if vocab_path is not None:
            return CharTokenizer.from_file(vocab_path, unknown_char=unknown_char)
        if path.suffix in (".safetensors", ".pth", ".pt", ".bin", ".ckpt"):
            from ai_writer.models.checkpoint import embedding_rows

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
