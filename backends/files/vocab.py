"""A model's vocabulary and the tokenizer that reads it: a JSON one (CharTokenizer) or the World one.

The model is identified first (models.model_file.ModelFacts), then its vocabulary is looked for where
that kind of model keeps it, and checked against the model's token rows before the weights are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ai_writer.backends.errors import LoadError
from ai_writer.models.tokenizer import CharTokenizer, VocabError
from ai_writer.models.world_tokenizer import WORLD_VOCAB_FILE, WORLD_VOCAB_SIZE, WorldTokenizer, is_world_vocab

PILE_VOCAB_SIZE = 50277  # RWKV-4 Pile / Raven models: the GPT-NeoX 20B tokenizer
WORLD_SETTING = "world"  # [model] vocab = "world": the RWKV World tokenizer, whatever lies beside the model


@dataclass(frozen=True)
class TokenizerChoice:
    tokenizer: object  # CharTokenizer or WorldTokenizer
    source: str  # where it came from, for the model details: a path, or "World (built in)"
    note: str = ""  # why another vocabulary than the one found was taken, or ""


def find_vocab(model_path: Path, facts=None) -> Path | None:
    """The vocabulary file of a model: a folder model's own (never an unrelated JSON in it), else
    MODEL_STEM.json, vocab.json or rwkv_vocab_v20230424.txt beside the file."""
    model_path = Path(model_path)
    kind = getattr(facts, "format", None)
    if kind == "hf-folder":  # a World vocabulary .txt among its tokenizer files, else a character vocab.json
        texts = [p for p in facts.tokenizer_files if p.suffix.lower() == ".txt"]
        if texts:
            return sorted(texts, key=lambda p: p.name != WORLD_VOCAB_FILE)[0]
        chars = facts.path / "vocab.json"  # never tokenizer.json, tokenizer_config.json or another JSON
        return chars if chars.is_file() else None
    if model_path.is_dir():  # a folder of .bin tensors (AI-Writer's browser demo): the JSON inside it
        inside = sorted(model_path.glob("*.json"), key=lambda p: p.name != "vocab.json")
        return inside[0] if inside else None
    for candidate in (model_path.with_suffix(".json"), model_path.parent / "vocab.json",
                      model_path.parent / WORLD_VOCAB_FILE):
        if candidate.is_file():
            return candidate
    return None


def choose_tokenizer(facts, vocab_setting: str | None, unknown_char: str) -> TokenizerChoice:
    """The tokenizer for the identified model `facts`: the configured vocabulary (a path, or "world"),
    else the one it keeps or finds beside it, else the World one for 65,536 token rows. A vocabulary that
    does not fit the model's rows is a LoadError saying what would fit; one that was only found beside it
    gives way to the World tokenizer when the model has World rows."""
    rows, path = facts.vocab_rows, facts.path
    named_world = vocab_setting and Path(vocab_setting.strip()).name.lower() == WORLD_SETTING
    if named_world and not Path(vocab_setting).expanduser().exists():
        return _checked(TokenizerChoice(_world(), "World (built in)"), rows, path, explicit=True)
    if vocab_setting:
        vocab_path = Path(vocab_setting).expanduser()
        return _checked(TokenizerChoice(_open(vocab_path, unknown_char), str(vocab_path)), rows, path, explicit=True)
    found = find_vocab(path, facts)
    if found is not None:
        choice = TokenizerChoice(_open(found, unknown_char), str(found))
        if rows is None or choice.tokenizer.vocab_size == rows or rows != WORLD_VOCAB_SIZE:
            return _checked(choice, rows, path, explicit=False)
        return TokenizerChoice(_world(), "World (built in)",
                               f"{found.name} beside it has {choice.tokenizer.vocab_size} entries, not the model's "
                               f"{rows}: the World tokenizer instead")
    if rows == WORLD_VOCAB_SIZE or getattr(facts, "tokenizer_model", None) == "world":
        return _checked(TokenizerChoice(_world(), "World (built in)"), rows, path, explicit=False)
    if rows == PILE_VOCAB_SIZE:
        raise LoadError(
            f"{path}: {rows} token rows: this model needs the GPT-NeoX 20B (Pile) tokenizer, which is not "
            "supported (RWKV World models and models with a vocabulary JSON are)"
        )
    beside = "its folder has no rwkv_vocab_v20230424.txt (or character vocab.json)" if facts.format == "hf-folder" else (
        f"no vocabulary beside it ({path.with_suffix('.json').name}, vocab.json or {WORLD_VOCAB_FILE})")
    raise LoadError(f"{path}: {beside}; set [model] vocab to its vocabulary file, or \"world\" for an RWKV World model")


def _checked(choice: TokenizerChoice, rows: int | None, path: Path, explicit: bool) -> TokenizerChoice:
    size = choice.tokenizer.vocab_size
    if rows is None or size == rows:
        return choice
    hint = ' (RWKV World models take vocab = "world")' if rows == WORLD_VOCAB_SIZE else ""
    where = "the configured vocabulary" if explicit else "its vocabulary"
    raise LoadError(f"{path}: the model has {rows} token rows but {where} {choice.source} has {size} entries{hint}")


def _world() -> WorldTokenizer:
    try:
        return WorldTokenizer.default()
    except VocabError as exc:
        raise LoadError(str(exc)) from None


def _open(vocab_path: Path, unknown_char: str):
    try:
        if is_world_vocab(vocab_path):
            return WorldTokenizer.from_file(vocab_path)
        return CharTokenizer.from_file(vocab_path, unknown_char=unknown_char)
    except VocabError as exc:
        raise LoadError(str(exc)) from None
