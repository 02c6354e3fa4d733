"""The onnx backend: the exported step of RWKV-7 or RWKV-4 on ONNX Runtime (DirectML, CUDA or CPU).

The Engine protocol (backends.engines.base) on the numpy state of
backends.engines.numpy_state. The graph is the single-token step: a prompt of T
tokens runs T steps.

This module imports ONNX Runtime and numpy only; an .onnx file runs without torch.
A model file (.safetensors / .pth) is exported on first use into the cache (see
backends.files.onnx_export), which needs torch and onnx then.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ai_writer.backends.engines.base import EngineInfo, check_batch
from ai_writer.backends.engines.names import Backend
from ai_writer.backends.engines.numpy_state import NumpyStateOps, state_layout
from ai_writer.backends.engines.providers import DML, PROVIDER_DEVICES, providers_for, split_device
from ai_writer.backends.errors import LoadError
from ai_writer.backends.files import onnx_export
from ai_writer.backends.files.onnx_export import ARCHITECTURES, FORMAT, READABLE_FORMATS, STEP_IO

REQUIRED_METADATA = ("format", "architecture", "n_layer", "n_embd", "vocab_size")
SIZE_METADATA = {"rwkv7": "head_size", "rwkv4": "n_att"}  # the one more size each architecture's state needs


class OnnxEngine(NumpyStateOps):
    def __init__(self, session, tokenizer, info: EngineInfo, head_size: int = 0, n_att: int = 0):
        """head_size for an RWKV-7 step, n_att for an RWKV-4 step (info.architecture says which)."""
        self.session = session
        self.tokenizer = tokenizer
        self.info = info
        arch = info.architecture
        if arch not in ARCHITECTURES:
            raise ValueError(f"no onnx step for architecture {arch!r}")
        size = (n_att or info.n_embd) if arch == "rwkv4" else head_size
        if size <= 0:
            raise ValueError("an RWKV-7 engine needs head_size")
        if arch == "rwkv7":
            self.head_size, self.n_head = head_size, info.n_embd // head_size
        else:
            self.n_att = size
        self.state_class, self._shapes, self._fills = state_layout(arch, info.n_embd, size)
        self.input_names, self.output_names = STEP_IO[arch]
        self.tokens_processed = 0  # positions run through the model, all rows counted once per row

    def forward(self, token_lists, state=None, full_output: bool = False):
        """B equal-length id lists (and a state of B rows, or None) -> (logits, new state).

        logits: float32 numpy (B, V) for each last position, or (B, T, V) for every
        position with full_output. T tokens run T steps of the graph. The given state
        is not modified.
        """
        batch = check_batch(token_lists, self.info.vocab_size)
        B, T = batch.shape
        state = self.zero_state(B) if state is None else self._checked(state, B)
        run, every = self.session.run, []
        names, outputs, make = self.input_names[1:], self.output_names, self.state_class
        for t in range(T):
            feed = dict(zip(names, state))
            feed["tokens"] = np.ascontiguousarray(batch[:, t])
            logits, *arrays = run(outputs, feed)
            state = make(*arrays)
            if full_output:
                every.append(logits)
        self.tokens_processed += batch.size
        return (np.stack(every, axis=1) if full_output else logits), state


def session_options(providers):
    """ONNX Runtime session options; DirectML needs memory patterns off and sequential execution."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no warnings on the terminal under the studio
    if DML in providers:
        options.enable_mem_pattern = False
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def open_session(path: Path, device: str):
    """(InferenceSession, its metadata) for an exported file, or ValueError naming what is wrong."""
    import onnxruntime as ort

    providers, provider_options = providers_for(device)
    try:
        session = ort.InferenceSession(str(path), session_options(providers), providers=providers,
                                       provider_options=provider_options)
    except Exception as exc:  # onnxruntime raises its own exception types for every problem
        raise ValueError(f"{path}: ONNX Runtime cannot open it ({_first_line(exc)})") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    missing = [key for key in REQUIRED_METADATA if key not in meta]
    if missing:
        raise ValueError(f"{path}: not an AI-Writer export (metadata lacks {', '.join(missing)})")
    if meta["format"] not in READABLE_FORMATS:
        raise ValueError(f"{path}: exported in format {meta['format']!r}; this version reads {FORMAT!r} (export it again)")
    arch = meta["architecture"]
    if arch not in READABLE_FORMATS[meta["format"]]:
        runs = " and ".join(READABLE_FORMATS[FORMAT])
        raise ValueError(f"{path}: a {arch} export; only {runs} run on the onnx backend")
    size_key = SIZE_METADATA[arch]
    if size_key not in meta:
        raise ValueError(f"{path}: not an AI-Writer export (metadata lacks {size_key})")
    try:
        L, C, size, V = (int(meta[k]) for k in ("n_layer", "n_embd", size_key, "vocab_size"))
        if min(L, C, size, V) <= 0 or (arch == "rwkv7" and C % size):
            raise ValueError
    except ValueError:
        raise ValueError(f"{path}: unreadable sizes in its metadata") from None
    names_in, names_out = STEP_IO[arch]
    state_shapes = [[L, "b", *shape] for shape in state_layout(arch, C, size)[1]]
    wanted_inputs = {"tokens": ["tokens_batch"], **dict(zip(names_in[1:], state_shapes))}
    wanted_outputs = {"logits": ["b", V], **dict(zip(names_out[1:], state_shapes))}
    for kind, found, wanted in (("inputs", session.get_inputs(), wanted_inputs),
                                ("outputs", session.get_outputs(), wanted_outputs)):
        shapes = {arg.name: arg.shape for arg in found}
        if list(shapes) != list(wanted) or any(not _same_shape(shapes[n], wanted[n]) for n in wanted):
            raise ValueError(f"{path}: its {kind} {shapes} are not the {arch} step's")
    return session, meta


def _same_shape(found, wanted) -> bool:
    """Fixed sizes must match; the batch axis (a string in `wanted`) must be dynamic."""
    if len(found) != len(wanted):
        return False
    return all(not isinstance(f, int) if isinstance(w, str) else f == w for f, w in zip(found, wanted))


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def load_onnx(path: Path, tokenizer, device: str, dtype: str | None = None, cache_dir=None) -> OnnxEngine:
    """An OnnxEngine on this onnx device ("directml", "cuda:1", "cpu", ...) for an exported .onnx file, or
    for a model file through its cached export."""
    if dtype not in (None, "", "float32"):
        raise LoadError(f"the onnx backend runs float32 only (dtype {dtype!r} asked for)")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise LoadError("the onnx backend needs ONNX Runtime: pip install onnxruntime "
                        "(onnxruntime-directml on Windows)") from None
    if path.suffix.lower() == ".onnx":
        try:
            session, meta = open_session(path, device)
        except ValueError as exc:
            raise LoadError(str(exc)) from None
    else:
        session, meta = _open_cached(path, device, cache_dir)
    vocab_size = int(meta["vocab_size"])
    if vocab_size != tokenizer.vocab_size:
        raise LoadError(f"{path}: the model has {vocab_size} token rows but its vocabulary has "
                        f"{tokenizer.vocab_size} entries")
    running = PROVIDER_DEVICES.get(session.get_providers()[0], "cpu")
    if split_device(device)[0] != "cpu" and running == "cpu":
        raise LoadError(f"{path}: ONNX Runtime could not start {device} and fell back to the CPU "
                        f"(providers in the session: {', '.join(session.get_providers())})")
    arch = meta["architecture"]
    info = EngineInfo(arch, Backend.ONNX, device if running != "cpu" else "cpu", str(path),
                      int(meta["n_layer"]), int(meta["n_embd"]), vocab_size)
    if arch == "rwkv4":
        return OnnxEngine(session, tokenizer, info, n_att=int(meta["n_att"]))
    return OnnxEngine(session, tokenizer, info, head_size=int(meta["head_size"]))


def _open_cached(path: Path, device: str, cache_dir=None):
    """The session of this model file's cached export: made on first use; a stale or corrupt file is rebuilt."""
    try:
        cached, sha256 = onnx_export.cached_export(path, cache_dir)
    except onnx_export.ExportError as exc:
        raise LoadError(str(exc)) from None
    except OSError as exc:
        raise LoadError(f"{path}: cannot write its ONNX export to the cache ({exc})") from None
    try:
        session, meta = open_session(cached, device)
        if meta.get("source_sha256") != sha256:
            raise ValueError(f"{cached}: exported from other weights")
        return session, meta
    except ValueError:
        pass  # stale or corrupt: rebuilt once, and trusted only if it then opens
    cached.unlink(missing_ok=True)
    try:
        onnx_export.export_onnx(path, cached, sha256=sha256)
        return open_session(cached, device)
    except onnx_export.ExportError as exc:
        raise LoadError(str(exc)) from None
    except (ValueError, OSError) as exc:
        raise LoadError(f"{path}: its ONNX export does not open ({exc})") from None
