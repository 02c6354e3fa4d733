"""Backends run a model file behind one API:

    from ai_writer.backends import load
    engine = load("model.safetensors", backend="torch", device="cpu")
    ids = engine.tokenizer.encode("第一章")
    logits, state = engine.forward([[1, 2, 3], [4, 5, 6]], None)   # (B, V) float32
    logits, state = engine.forward([[7], [8]], state)
    forked = engine.repeat_rows(state, 3)                          # one prompt -> N candidates

backend: a backends.engines.names.Backend: "torch", "onnx" (ONNX Runtime: DirectML,
CUDA or CPU; a model file is exported on first use and cached, an exported .onnx
file opens directly, without torch), "directml" (onnx on DirectML, or LoadError),
"torch+native" / "torch+onnx" (CPU: torch reads prompts, a step decodes), "native" (the C step alone,
prompts too, without torch: an RWKV-7 .safetensors file; what auto picks for one in float16, bfloat16
or int8) or "auto" (backends.selection). `engine.selection` says which, and why, for the status line.

Inside: engines/ (the Engine protocol and its torch, ONNX Runtime and C
implementations), writing/ (the generation service, prompt cache, sampling and
evaluation), files/ (vocabularies, conversion, the ONNX export), selection.py and
loading.py. Imports point one way: writing -> engines -> files -> models.
"""

from __future__ import annotations

import sys

from ai_writer.backends.errors import EngineError, LoadError
from ai_writer.backends.loading import load

__all__ = ["load", "LoadError", "EngineError", "set_model_threads"]


def set_model_threads(count: int) -> None:
    """How many threads the model computes on: torch's intra-op threads (if an engine imported torch) and the
    native engine's C step (0: the native step's default, every CPU this process may use; torch's unchanged)."""
    from ai_writer.backends.engines.native_step import set_threads

    set_threads(count)
    torch = sys.modules.get("torch")
    if torch is not None and count > 0:
        torch.set_num_threads(count)
