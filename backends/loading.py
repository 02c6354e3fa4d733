"""load(): a model file, its tokenizer and the settings' backend and device -> a ready engine."""

from __future__ import annotations

from pathlib import Path

from ai_writer.backends.engines.names import CPU_PAIRS, NAMES, Backend
from ai_writer.backends.errors import LoadError
from ai_writer.backends.files.vocab import choose_tokenizer
from ai_writer.backends.selection import (DTYPES, NARROW_DTYPES, NATIVE_ONLY_DTYPES, SMALL_FLOAT32_BYTES, Selection,
                                          float32_only, native_alone, select_backend, with_dtype, without_native)
from ai_writer.models.tokenizer import DEFAULT_UNKNOWN_CHAR


def load(
    path,
    backend: str = Backend.AUTO,
    device: str = "auto",
    vocab=None,
    dtype: str | None = None,
    unknown_char: str = DEFAULT_UNKNOWN_CHAR,
    cache_dir=None,
    window_refill: int = 0,
    state=None,
):
    """Open a model file with its tokenizer; LoadError with one clear line if anything is wrong.

    The engine's `selection` (backends.selection.Selection) says which backend runs it and why.
    cache_dir: where the onnx backends keep exports (default: the user cache directory).
    window_refill: AI-Writer v1 models only (others ignore it): 0 reads exactly the last ctx_len
    characters for every new one, as the original; N restarts a full window from the last N
    characters and grows it again (models.aiwriter_v1.AIWriterV1.set_refill).
    state: a state-tuning file (models.state_file) every text starts from instead of zeros, or None (a model
    file holding its own blocks.N.att.time_state then starts from that, as the rwkv package does).
    """
    from ai_writer.models.model_errors import ModelFileError
    from ai_writer.models.model_file import identify

    if backend == Backend.OPENAI:
        raise LoadError("backend 'openai' opens no model file: it writes with a model on a server "
                        "(backends.remote.engine.connect, with [model] url and remote_model)")
    path = Path(path).expanduser()
    if backend not in NAMES:
        raise LoadError(f"unknown backend {backend!r} (available: {', '.join(NAMES)})")
    if dtype and dtype not in DTYPES:
        raise LoadError(f"unknown dtype {dtype!r} (available: {', '.join(DTYPES)})")
    try:
        facts = identify(path)  # what the file is, before any vocabulary is looked for
    except ModelFileError as exc:
        raise LoadError(str(exc)) from None
    path = facts.path  # a Hugging Face folder's config.json or weights file names the folder
    tokens = choose_tokenizer(facts, str(vocab) if vocab else None, unknown_char)
    tuned = _read_state(state or (path if facts.has_start_state else None))  # before the weights: said at once
    tokenizer = tokens.tokenizer
    choice = select_backend(backend, device, path)
    if choice.auto and choice.backend == Backend.TORCH_NATIVE and facts.format == "safetensors":
        if dtype in NARROW_DTYPES:
            choice = native_alone(choice, dtype)  # the C step reads its prompts too: torch is not needed
        elif facts.architecture == "rwkv7" and path.is_file() and (size := path.stat().st_size) <= SMALL_FLOAT32_BYTES:
            choice = native_alone(choice, "", max(1, round(size / 2**20)))  # torch's import would dominate
    if dtype in NATIVE_ONLY_DTYPES and choice.backend not in (Backend.TORCH_NATIVE, Backend.NATIVE):
        raise LoadError(f"dtype {dtype!r} runs on the torch+native and native backends only (the C step), not on "
                        f"{choice.backend} ({choice.reason.text()})")
    if choice.backend == Backend.NATIVE:
        engine, choice = _load_native(path, facts.format, tokenizer, choice, dtype, cache_dir)
    elif choice.backend == Backend.ONNX:
        from ai_writer.backends.engines.onnx_engine import load_onnx

        engine = load_onnx(path, tokenizer, choice.device, dtype, cache_dir)
    elif choice.backend in CPU_PAIRS:
        engine, choice = _load_cpu_pair(path, tokenizer, choice, dtype, cache_dir)
    else:
        from ai_writer.backends.engines.torch_engine import load_torch

        engine = load_torch(path, tokenizer, choice.device, dtype)
    engine.selection = choice
    engine.tokenizer_source, engine.tokenizer_note = tokens.source, tokens.note
    model = getattr(engine, "model", None)
    if window_refill and hasattr(model, "set_refill"):
        try:
            model.set_refill(window_refill)
        except ValueError as exc:
            raise LoadError(f"{path}: {exc}") from None
    if tuned is not None:
        from ai_writer.backends.engines.start_state import with_start_state

        engine = with_start_state(engine, tuned)
    return engine


def _read_state(state):
    if not state:
        return None
    from ai_writer.models.model_errors import ModelFileError
    from ai_writer.models.state_file import read_state_file

    try:
        return read_state_file(state)
    except ModelFileError as exc:
        raise LoadError(str(exc)) from None


def _load_native(path: Path, file_format: str, tokenizer, choice: Selection, dtype: str | None, cache_dir):
    """(engine, selection) for the native backend: the C step alone, for a .safetensors file. Under auto, a step
    that does not build falls back as torch+native's does (torch+onnx, or torch)."""
    from ai_writer.backends.engines.native_engine import load_native
    from ai_writer.backends.engines.native_step import NativeBuildError

    if file_format != "safetensors":
        raise LoadError(f"{path}: the native backend reads .safetensors files, not a {file_format} model "
                        "(`ai-writer convert` writes one; torch+native runs this file)")
    try:
        engine = load_native(path, tokenizer, dtype)
        return engine, choice if choice.reason.dtype or dtype in (None, "", "float32") else with_dtype(choice, dtype)
    except NativeBuildError as exc:
        if not choice.auto:
            raise LoadError(f"{path}: {exc}") from None
        return _load_cpu_pair(path, tokenizer, Selection(Backend.TORCH_NATIVE, "cpu", True, choice.reason), dtype,
                              cache_dir)


def _load_cpu_pair(path: Path, tokenizer, choice: Selection, dtype: str | None, cache_dir):
    """(engine, selection) for torch+native or torch+onnx. A C step that does not build is a LoadError when
    torch+native was asked for by name (or int8, which only it runs), and torch+onnx under auto. torch+native runs
    float16, bfloat16 and int8 in its C step (which then reads prompts too, torch's float32 matrices freed); torch+onnx
    gets torch alone for a dtype other than float32."""
    from ai_writer.backends.engines.hybrid_engine import native_pair, onnx_pair
    from ai_writer.backends.engines.native_step import NativeBuildError
    from ai_writer.backends.engines.torch_engine import load_torch

    float32 = dtype in (None, "", "float32")
    native = choice.backend == Backend.TORCH_NATIVE
    # eager layers take the C scan; the C step converts float32 weights to its dtype
    torch_engine = load_torch(path, tokenizer, "cpu", "float32" if native else dtype, script=not native)
    if native:
        try:
            return native_pair(torch_engine, dtype or "float32"), choice if float32 else with_dtype(choice, dtype)
        except NativeBuildError as exc:
            if not choice.auto or dtype in NATIVE_ONLY_DTYPES:
                raise LoadError(f"{path}: {exc}") from None
            choice = without_native(choice, str(exc))
            if not float32:  # torch alone, in the dtype asked for
                torch_engine = load_torch(path, tokenizer, "cpu", dtype)
    if not float32:
        return torch_engine, float32_only(choice, dtype)
    return onnx_pair(torch_engine, cache_dir), choice
