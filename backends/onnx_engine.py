"""The onnx backend: RWKV-7's exported step on ONNX Runtime (DirectML, CUDA or CPU).

Same API as the torch backend: forward(token_lists, state=None, full_output=False)
-> (float32 numpy logits, state); the state is a tuple of numpy arrays
(att_x_prev, att_kv, ffn_x_prev) with the batch on axis 1, so backends.state's
copy / take / repeat work on it. The graph is the single-token step: a prompt of
T tokens runs T steps.

This module imports ONNX Runtime and numpy only; an .onnx file runs without torch.
A model file (.safetensors / .pth) is exported on first use into the cache (see
backends.onnx_export), which needs torch and onnx then.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from backends import LoadError
from backends import state as state_ops
from backends.engine import EngineError, EngineInfo, check_batch
from backends.onnx_export import FORMAT, OUTPUTS
from backends.selection import DML, Selection, providers_for

REQUIRED_METADATA = ("format", "architecture", "n_layer", "n_embd", "head_size", "vocab_size")


class OnnxState(NamedTuple):
    """Recurrent state as numpy arrays; axis 0 is the layer, axis 1 the batch row."""

    att_x_prev: np.ndarray  # (L, B, C) float32
    att_kv: np.ndarray  # (L, B, H, N, N) float32, [value, key] order
    ffn_x_prev: np.ndarray  # (L, B, C) float32


class OnnxEngine:
    def __init__(self, session, tokenizer, info: EngineInfo, head_size: int):
        self.session = session
        self.tokenizer = tokenizer
        self.info = info
        self.head_size = head_size
        self.n_head = info.n_embd // head_size
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
        for t in range(T):
            feed = {
                "tokens": np.ascontiguousarray(batch[:, t]),
                "att_x_prev": state[0],
                "att_kv": state[1],
                "ffn_x_prev": state[2],
            }
            logits, *arrays = run(OUTPUTS, feed)
            state = OnnxState(*arrays)
            if full_output:
                every.append(logits)
        self.tokens_processed += batch.size
        return (np.stack(every, axis=1) if full_output else logits), state

    def _checked(self, state, batch: int) -> OnnxState:
        info, H, N = self.info, self.n_head, self.head_size
        try:
            arrays = [np.ascontiguousarray(np.asarray(a), dtype=np.float32) for a in state]
        except (TypeError, ValueError):
            raise EngineError("the state is not a tuple of arrays") from None
        wanted = [(info.n_layer, batch, info.n_embd), (info.n_layer, batch, H, N, N), (info.n_layer, batch, info.n_embd)]
        if len(arrays) != 3 or [a.shape for a in arrays] != wanted:
            raise EngineError(f"the state's shapes {[a.shape for a in arrays]} do not fit {batch} rows of this model ({wanted})")
        return OnnxState(*arrays)

    def zero_state(self, batch: int = 1) -> OnnxState:
        L, C, H, N = self.info.n_layer, self.info.n_embd, self.n_head, self.head_size
        return OnnxState(
            np.zeros((L, batch, C), np.float32),
            np.zeros((L, batch, H, N, N), np.float32),
            np.zeros((L, batch, C), np.float32),
        )

    copy_state = staticmethod(state_ops.copy_state)
    take_rows = staticmethod(state_ops.take_rows)
    repeat_rows = staticmethod(state_ops.repeat_rows)


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
    if meta["format"] != FORMAT:
        raise ValueError(f"{path}: exported in format {meta['format']!r}; this version reads {FORMAT!r} (export it again)")
    if meta["architecture"] != "rwkv7":
        raise ValueError(f"{path}: a {meta['architecture']} export; only rwkv7 runs on the onnx backend")
    try:
        L, C, N, V = (int(meta[k]) for k in ("n_layer", "n_embd", "head_size", "vocab_size"))
    except ValueError:
        raise ValueError(f"{path}: unreadable sizes in its metadata") from None
    wanted_inputs = {"tokens": ["tokens_batch"], "att_x_prev": [L, "b", C], "att_kv": [L, "b", C // N, N, N],
                     "ffn_x_prev": [L, "b", C]}
    wanted_outputs = {"logits": ["b", V], "new_att_x_prev": [L, "b", C], "new_att_kv": [L, "b", C // N, N, N],
                      "new_ffn_x_prev": [L, "b", C]}
    for kind, found, wanted in (("inputs", session.get_inputs(), wanted_inputs),
                                ("outputs", session.get_outputs(), wanted_outputs)):
        shapes = {arg.name: arg.shape for arg in found}
        if list(shapes) != list(wanted) or any(not _same_shape(shapes[n], wanted[n]) for n in wanted):
            raise ValueError(f"{path}: its {kind} {shapes} are not the RWKV-7 step's")
    return session, meta


def _same_shape(found, wanted) -> bool:
    """Fixed sizes must match; the batch axis (a string in `wanted`) must be dynamic."""
    if len(found) != len(wanted):
        return False
    return all(not isinstance(f, int) if isinstance(w, str) else f == w for f, w in zip(found, wanted))


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def load_onnx(path: Path, tokenizer, choice: Selection, dtype: str | None = None, cache_dir=None) -> OnnxEngine:
    """An OnnxEngine for an exported .onnx file, or for a model file through its cached export."""
    if dtype not in (None, "", "float32"):
        raise LoadError(f"the onnx backend runs float32 only (dtype {dtype!r} asked for)")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise LoadError("the onnx backend needs ONNX Runtime: pip install onnxruntime "
                        "(onnxruntime-directml on Windows)") from None
    if path.suffix.lower() == ".onnx":
        try:
            session, meta = open_session(path, choice.device)
        except ValueError as exc:
            raise LoadError(str(exc)) from None
    else:
        session, meta = _open_cached(path, choice.device, cache_dir)
    vocab_size = int(meta["vocab_size"])
    if vocab_size != tokenizer.vocab_size:
        raise LoadError(f"{path}: the model has {vocab_size} token rows but its vocabulary has "
                        f"{tokenizer.vocab_size} entries")
    used = session.get_providers()[0]
    device = {"DmlExecutionProvider": "directml", "CUDAExecutionProvider": "cuda"}.get(used, "cpu")
    if choice.device.split(":")[0] != "cpu" and device == "cpu":
        raise LoadError(f"{path}: ONNX Runtime could not start {choice.device} and fell back to the CPU "
                        f"(providers in the session: {', '.join(session.get_providers())})")
    info = EngineInfo("rwkv7", "onnx", choice.device if device != "cpu" else "cpu", str(path),
                      int(meta["n_layer"]), int(meta["n_embd"]), vocab_size)
    return OnnxEngine(session, tokenizer, info, head_size=int(meta["head_size"]))


def _open_cached(path: Path, device: str, cache_dir=None):
    """The session of this model file's cached export: made on first use; a stale or corrupt file is rebuilt."""
    from backends import onnx_export

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
