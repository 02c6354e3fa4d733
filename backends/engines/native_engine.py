"""The native backend: an RWKV-7 .safetensors file run by the C step alone (backends/engines/native_step.py),
prompts and decoding, without torch.

    engine = load_native(path, tokenizer, "int8")   # a NativeStep; LoadError / NativeBuildError (one line)

The file is mapped with numpy (models.safetensors_numpy): float32 tensors are read from the mapping (the
vectors in place; the matrices converted to the step's type, each one's file pages dropped once it is), float16
and bfloat16 ones widened one at a time. Nothing of torch is imported: what a process holds is Python, numpy,
the compiled step and the weights (torch alone is ~190 MB of it at import). float32 matrices are copied into the
step's blocks too (the file's pages dropped as each is copied: the same memory), read as one stream, faster than
torch+native's step reads them in the model's layout; its prompts run in the step's own products, slower than
torch's (which torch+native keeps for float32); the narrow types read prompts in C on either backend.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from ai_writer.backends.engines.base import EngineInfo, check_vocab_rows
from ai_writer.backends.engines.names import Backend
from ai_writer.backends.engines.native_step import NativeStep, build_library, thread_count
from ai_writer.backends.errors import LoadError


def load_native(path: Path, tokenizer, dtype: str | None = None) -> NativeStep:
    """A native engine of this RWKV-7 .safetensors file, its matrices in dtype (native_step.PRECISIONS; default
    float32). LoadError (one line) for a file it cannot run; NativeBuildError when the step does not build."""
    from ai_writer.models.model_errors import ModelFileError
    from ai_writer.models.rwkv7_config import RWKV7Config, misfit
    from ai_writer.models.safetensors_numpy import Float32Arrays

    try:
        arrays = Float32Arrays(path)
    except ModelFileError as exc:
        raise LoadError(str(exc)) from None
    except OSError as exc:
        raise LoadError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    shapes = {name: place.shape for name, place in arrays.places.items()}
    try:
        config = RWKV7Config.from_state_dict({name: SimpleNamespace(shape=shape) for name, shape in shapes.items()})
        problem = misfit(config, shapes)
    except (KeyError, ValueError, IndexError) as exc:
        problem = f"{exc}"
    if problem:
        raise LoadError(f"{path}: RWKV-7 weights with missing or misshapen tensors ({problem})")
    check_vocab_rows(path, config.vocab_size, tokenizer)
    info = EngineInfo("rwkv7", Backend.NATIVE, "cpu", str(path), config.n_layer, config.n_embd, config.vocab_size)
    return NativeStep(build_library(), config, arrays, tokenizer, info, dtype or "float32", thread_count,
                      reads_prompts=True)
