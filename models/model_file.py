"""What a model path holds, found out before anything is loaded: its format, its architecture and
its number of token rows, read from headers and key names only (never from the file name).

    facts = identify(path)   # ModelFacts, or ModelFileError with one line naming the file

The loader (backends/loading.py) picks the tokenizer from these facts, so a file is never paired
with a vocabulary before it is known to be a model, and each format gets its own message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ai_writer.models.model_errors import ModelFileError

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors", ".st")
GGUF_MAGIC = b"GGUF"
STATE_KEY = re.compile(r"blocks\.\d+\.att\.time_state")


@dataclass(frozen=True)
class ModelFacts:
    path: Path
    format: str  # "safetensors", "pth", "gguf", "hf-folder", "bin-folder" (AI-Writer's browser demo), "onnx"
    architecture: str | None  # "rwkv7", "rwkv6", ... or "unknown" (models.checkpoint.detect_architecture); None: unreadable
    vocab_rows: int | None = None  # token rows of the embedding, where the file says without loading it
    tokenizer_files: tuple[Path, ...] = field(default_factory=tuple)  # a folder model's own tokenizer files
    has_start_state: bool = False  # it holds blocks.N.att.time_state beside its weights (a merged state-tuning file)
    tokenizer_model: str | None = None  # a GGUF's vocabulary: "world" (RWKV World), "own" (another) or "none"


def identify(path: str | Path) -> ModelFacts:
    """The facts of the model at `path`; ModelFileError (one line) for what is not a model file.
    (An exported .onnx is told by its name alone, without importing torch: it runs without it.)"""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    folder = _hf_folder_of(path)
    if folder is not None:
        from ai_writer.models.hf_layout import hf_summary

        summary = hf_summary(folder)
        return ModelFacts(folder, "hf-folder", "rwkv7", summary.vocab_rows, tuple(summary.tokenizer_files))
    if path.is_file() and path.suffix.lower() == ".onnx":
        return ModelFacts(path, "onnx", "unknown")
    from ai_writer.models.file_keys import detect_architecture, embedding_rows, is_bin_folder, peek_keys

    if is_bin_folder(path):
        keys = peek_keys(path) or []
        return ModelFacts(path, "bin-folder", detect_architecture(dict.fromkeys(keys)))
    if path.is_dir():
        raise ModelFileError(
            f"{path}: a folder with no model in it (expected a Hugging Face folder with config.json and "
            "model.safetensors, or a model file)"
        )
    if path.suffix.lower() == ".gguf" or _starts_with(path, GGUF_MAGIC):
        from ai_writer.models.gguf_file import gguf_summary

        summary = gguf_summary(path)
        return ModelFacts(path, "gguf", summary.architecture, summary.vocab_rows, tokenizer_model=summary.vocabulary)
    suffix = path.suffix.lower()
    if suffix not in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES:
        raise ModelFileError(
            f"{path}: unknown model file type {path.suffix!r} (expected .safetensors, .pth, .gguf, .onnx "
            "or a Hugging Face folder)"
        )
    keys = peek_keys(path)
    if keys is None:
        return ModelFacts(path, _flat_format(path), None)  # unreadable: reading it says why, in its words
    if keys and all(STATE_KEY.fullmatch(k) for k in keys):
        raise ModelFileError(
            f"{path}: a state file (a style preset of {len(keys)} layers), not a model: open the model it was "
            "tuned for and set [model] state (or --state) to this file"
        )
    architecture = detect_architecture(dict.fromkeys(keys))
    if architecture == "unknown" and any(k.startswith(("model.layers.", "model.embeddings.")) for k in keys):
        raise ModelFileError(
            f"{path}: weights in the Hugging Face / fla layout without their config.json: open the whole folder "
            "(config.json, the .safetensors files and the tokenizer files together)"
        )
    merged_state = any(STATE_KEY.fullmatch(k) for k in keys)
    return ModelFacts(path, _flat_format(path), architecture, embedding_rows(path), has_start_state=merged_state)


def _flat_format(path: Path) -> str:
    return "safetensors" if path.suffix.lower() in SAFETENSORS_SUFFIXES else "pth"


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def _hf_folder_of(path: Path) -> Path | None:
    """The Hugging Face / fla folder that `path` is or lies in (its config.json, a weights file), or None."""
    weights_file = path.name.startswith("model") and path.suffix == ".safetensors"
    folder = path if path.is_dir() else path.parent if path.name == "config.json" or weights_file else None
    if folder is None or not (folder / "config.json").is_file():
        return None
    from ai_writer.models.hf_layout import is_hf_folder

    return folder if is_hf_folder(folder, any_model_type=True) else None  # another model type: read_hf_weights says so


def weight_elements(path: str | Path) -> int | None:
    """How many numbers the model's tensors hold, from headers (a .pth memory-mapped); None if unknown.
    What loading it costs is this times the bytes of the dtype it runs in."""
    import json
    import math

    path = Path(path).expanduser()
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    try:
        total = 0
        for file in files:
            if file.suffix.lower() in SAFETENSORS_SUFFIXES:
                with file.open("rb") as f:
                    size = int.from_bytes(f.read(8), "little")
                    header = json.loads(f.read(size)) if 2 <= size <= 100_000_000 else {}
                total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
            elif file.suffix.lower() in PICKLE_SUFFIXES:
                import torch

                loaded = torch.load(str(file), map_location="cpu", weights_only=True, mmap=True)
                loaded = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else {}
                total += sum(t.numel() for t in loaded.values() if isinstance(t, torch.Tensor))
            else:
                return None
        return total or None
    except Exception:  # noqa: BLE001 - an estimate only: loading the file says what is wrong with it
        return None
