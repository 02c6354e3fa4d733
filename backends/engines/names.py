"""The backend names, defined once: the `backend` setting's values and what EngineInfo.backend says."""

from __future__ import annotations

from enum import Enum


class Backend(str, Enum):
    """A backend name; compares equal to its text ("torch" == Backend.TORCH) and prints as it."""

    AUTO = "auto"  # backends.selection chooses
    TORCH = "torch"
    ONNX = "onnx"  # ONNX Runtime: DirectML, CUDA or CPU
    DIRECTML = "directml"  # onnx on DirectML only (a setting; the engine then says onnx)
    TORCH_NATIVE = "torch+native"  # torch reads prompts, the C step decodes (hybrid_engine, native_step)
    TORCH_ONNX = "torch+onnx"  # torch reads prompts, ONNX Runtime's step decodes (hybrid_engine)
    NATIVE = "native"  # the C step alone reads prompts and decodes, without torch (native_engine)
    OPENAI = "openai"  # a model another machine serves over the OpenAI API (backends.remote; no file opened here)

    def __str__(self) -> str:
        return self.value


CPU_PAIRS = (Backend.TORCH_NATIVE, Backend.TORCH_ONNX)  # read prompts with torch, decode with a step of their own
NAMES = tuple(b.value for b in Backend)  # the setting's choices, as plain text
