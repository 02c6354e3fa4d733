"""`ai-writer convert`: any model file this project reads, rewritten as plain .safetensors, or (RWKV-7, RWKV-6)
as a GGUF file for llama.cpp / Ollama, or (RWKV-7) a Hugging Face folder in fla's layout.

The original AI-Writer's `.pth` files are pickles (whole model objects); a
browser-demo model is a folder of raw `.bin` tensors. The converted file holds the
same tensors by the same names (the v2 decays in their trained form), opens
without any unpickling, and gets its vocabulary copied beside it. A .gguf carries the
World vocabulary (65,536 rows) or the model's own characters as its tokens.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ai_writer.backends.errors import LoadError
from ai_writer.backends.files.vocab import find_vocab


def convert_model(source, out, vocab=None, gguf_type: str = "f32") -> dict:
    """Write `source` as `out` -- a .safetensors file (its vocabulary as out.json), a .gguf file (gguf_type:
    f32, f16, bf16 or q8_0) or, for a name without a suffix, a Hugging Face folder. Returns a summary
    (architecture, n_layer, n_embd, vocab_size, tensors, bytes, vocab). LoadError names what is wrong."""
    from ai_writer.models.checkpoint import NAMES, ModelFileError, build_model, read_weights, save_safetensors

    source, out = Path(source).expanduser(), Path(out).expanduser()
    if out.suffix not in (".safetensors", ".gguf", ""):
        raise LoadError(f"{out}: write a .safetensors or .gguf file, or a folder (a name without a suffix)")
    if out.resolve() == source.resolve():
        raise LoadError(f"{out}: would overwrite the file being converted")
    try:
        weights = read_weights(source)
        model = build_model(weights, source)  # refuse what would not load, before writing anything
    except ModelFileError as exc:
        raise LoadError(str(exc)) from None
    weights = {k: v for k, v in weights.items() if k != "copy_mask" and not k.endswith(".attn.mask")}
    vocab = Path(vocab).expanduser() if vocab else find_vocab(source)
    config = model.config
    if out.suffix != ".safetensors":
        return _convert_for_others(weights, out, vocab, gguf_type, {
            "architecture": NAMES[getattr(model, "architecture", "rwkv7")], "n_layer": config.n_layer,
            "n_embd": config.n_embd, "vocab_size": config.vocab_size, "tensors": len(weights)})
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        save_safetensors(weights, temporary)
        os.replace(temporary, out)
        if vocab is not None and vocab.resolve() != out.with_suffix(".json").resolve():
            shutil.copyfile(vocab, out.with_suffix(".json"))
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise LoadError(f"{out}: cannot write it ({exc.strerror or exc})") from None
    return {
        "architecture": NAMES[getattr(model, "architecture", "rwkv7")],
        "n_layer": config.n_layer,
        "n_embd": config.n_embd,
        "vocab_size": config.vocab_size,
        "tensors": len(weights),
        "bytes": out.stat().st_size,
        "vocab": str(out.with_suffix(".json")) if vocab is not None else None,
    }


def _convert_for_others(weights: dict, out: Path, vocab: Path | None, gguf_type: str, summary: dict) -> dict:
    """The GGUF file or the Hugging Face folder of an RWKV-7 (what llama.cpp / Ollama and fla read)."""
    from ai_writer.models.tokenizer import CharTokenizer
    from ai_writer.models.world_tokenizer import is_world_vocab

    chars = vocab is not None and not is_world_vocab(vocab)
    if out.suffix == ".gguf":
        from ai_writer.backends.files.gguf_write import write_gguf

        tokens = CharTokenizer.from_file(vocab).chars if chars else None  # a character model's own tokens
        write_gguf(weights, out, dtype=gguf_type, tokens=tokens)
        if chars and vocab.resolve() != out.with_suffix(".json").resolve():  # read from beside it, as for .safetensors
            shutil.copyfile(vocab, out.with_suffix(".json"))
        size, kept = out.stat().st_size, out.with_suffix(".json") if chars else None
    else:
        from ai_writer.backends.files.hf_write import write_hf_folder

        write_hf_folder(weights, out, vocab=vocab if not chars else None)
        kept = next((f for f in out.iterdir() if f.suffix == ".txt"), None)
        if chars:  # a character vocabulary goes in as vocab.json, the one JSON a folder's vocabulary may be
            kept = out / "vocab.json"
            shutil.copyfile(vocab, kept)
        size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return {**summary, "bytes": size, "vocab": str(kept) if kept else None}
