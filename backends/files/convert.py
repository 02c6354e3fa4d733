"""`ai-writer convert`: any model file this project reads, rewritten as plain .safetensors.

The original AI-Writer's `.pth` files are pickles (whole model objects); a
browser-demo model is a folder of raw `.bin` tensors. The converted file holds the
same tensors by the same names (the v2 decays in their trained form), opens
without any unpickling, and gets its vocabulary copied beside it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ai_writer.backends.errors import LoadError
from ai_writer.backends.files.vocab import find_vocab


def convert_model(source, out, vocab=None) -> dict:
    """Write `source` as `out` (.safetensors) and its vocabulary as out.json. Returns a summary
    (architecture, n_layer, n_embd, vocab_size, tensors, bytes, vocab). LoadError names what is wrong."""
    from ai_writer.models.checkpoint import NAMES, ModelFileError, build_model, read_weights, save_safetensors

    source, out = Path(source).expanduser(), Path(out).expanduser()
    if out.suffix != ".safetensors":
        raise LoadError(f"{out}: the converted file's name must end in .safetensors")
    if out.resolve() == source.resolve():
        raise LoadError(f"{out}: would overwrite the file being converted")
    try:
        weights = read_weights(source)
        model = build_model(weights, source)  # refuse what would not load, before writing anything
    except ModelFileError as exc:
        raise LoadError(str(exc)) from None
    weights = {k: v for k, v in weights.items() if k != "copy_mask" and not k.endswith(".attn.mask")}
    vocab = Path(vocab).expanduser() if vocab else find_vocab(source)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        save_safetensors(weights, temporary)
        os.replace(temporary, out)
        if vocab is not None and vocab.resolve() != out.with_suffix(".json").resolve():
            shutil.copyfile(vocab, out.with_suffix(".json"))
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise LoadError(f"{out}: cannot write it ({exc.strerror or exc})") from None
    config = model.config
    return {
        "architecture": NAMES[getattr(model, "architecture", "rwkv7")],
        "n_layer": config.n_layer,
        "n_embd": config.n_embd,
        "vocab_size": config.vocab_size,
        "tensors": len(weights),
        "bytes": out.stat().st_size,
        "vocab": str(out.with_suffix(".json")) if vocab is not None else None,
    }
