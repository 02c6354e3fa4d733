"""The CPU backends torch+native and torch+onnx: torch reads prompts, a step of their own decodes.

On a CPU each engine is fastest at one half of writing: torch's chunked sequence
form reads a prompt of T tokens in a few large matrix products, while a decode
step (one token for each of B rows) is bound by reading the weights, where
torch's small-batch matrix products are slow. This engine sends forward() calls
with T > 1 to torch and T == 1 to its step:

  torch+native   backends.native_step: RWKV-7's step in C, compiled for this CPU
                 on first use (then cached). It reads every weight
                 once for up to 4 rows, so 4 candidates cost little more than one.
                 What backend auto takes for an RWKV-7 where a C compiler is found.
  torch+onnx     ONNX Runtime's exported step (backends.onnx_export): RWKV-7 and
                 RWKV-4; auto's choice where the native step cannot be built.

Both steps compute the same equations as torch on the same state layout (the axes
and order of models.rwkv7.RWKV7State / models.rwkv4.RWKV4State are those of the
step's inputs), so a state passes between them as it is: numpy arrays shared with
torch tensors through torch.from_numpy, no copy.

The state it hands out is the onnx backend's (OnnxState / OnnxState4: float32
numpy arrays, batch on axis 1), so backends.state's copy / take / repeat work on
it; a torch state of the same shapes is accepted too.

The native step is built (or found in its cache) while the model loads. The ONNX
step graph is exported (or read from the cache, backends.onnx_export) on a
background thread, so loading costs no more than the torch model's; until the
session is open, decode steps run on torch, with the same results to float32
rounding. `wait_for_step()` waits for it; `step_error` says why it could not be
made (then the engine stays on torch). The export itself runs in a child process
at lower priority: building and serialising the graph holds Python's GIL for long
stretches, which would freeze a UI thread in this process; opening the session
does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import torch

from backends.engine import EngineInfo, check_batch
from backends.onnx_engine import NumpyStates, state_layout

BACKEND = "torch+onnx"
NATIVE_BACKEND = "torch+native"  # the decode step is backends.native_step


class HybridEngine(NumpyStates):
    def __init__(self, torch_engine, tokenizer, info: EngineInfo):
        """torch_engine: a CPU, float32 TorchEngine of an RWKV-7 or RWKV-4; the step comes from set_step()."""
        self.torch_engine = torch_engine
        self.model = torch_engine.model
        self.tokenizer = tokenizer
        self.info = info
        config = self.model.config
        size = config.n_att if info.architecture == "rwkv4" else config.head_size
        self._torch_state_class = type(self.model.zero_state(1))
        self.state_class, self._shapes, self._fills = state_layout(info.architecture, info.n_embd, size)
        self.step_engine = None  # the OnnxEngine, once its session is open
        self.step_error: str | None = None
        self._ready = threading.Event()

    @property
    def tokens_processed(self) -> int:
        return self.torch_engine.tokens_processed + (self.step_engine.tokens_processed if self.step_engine else 0)

    # -- the step session -------------------------------------------------------

    def set_step(self, step_engine=None, error: str | None = None) -> None:
        """Use this step (an OnnxEngine or a NativeStep) for single-token steps from now on (or record why
        there is none)."""
        if step_engine is not None:
            info = step_engine.info
            mine = (self.info.architecture, self.info.n_layer, self.info.n_embd, self.info.vocab_size)
            if (info.architecture, info.n_layer, info.n_embd, info.vocab_size) != mine:
                step_engine, error = None, "the ONNX step does not fit this model"
        self.step_engine, self.step_error = step_engine, error
        self._ready.set()

    def prepare_step(self, make_step, background: bool = True) -> None:
        """Run make_step() -> OnnxEngine (an export can take seconds) and use its result; LoadError -> step_error."""
        def run():
            try:
                self.set_step(make_step())
            except Exception as exc:  # whatever stops the export, the engine keeps running on torch
                self.set_step(None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

        if background:
            threading.Thread(target=run, name="onnx-step-export", daemon=True).start()
        else:
            run()

    def wait_for_step(self, timeout: float | None = None) -> bool:
        """Wait until the ONNX step is open (True) or has failed / the timeout passed (False)."""
        self._ready.wait(timeout)
        return self.step_engine is not None

    # -- running -----------------------------------------------------------------

    def forward(self, token_lists, state=None, full_output: bool = False):
        """B equal-length id lists (and a state of B rows, or None) -> (logits, new state).

        logits: float32 numpy (B, V) for each last position, or (B, T, V) for every
        position with full_output. T == 1 runs the ONNX step (torch until it is
        ready), T > 1 torch's chunked sequence form. The given state is not modified.
        """
        batch = check_batch(token_lists, self.info.vocab_size)
        B, T = batch.shape
        state = None if state is None else self._checked(state, B)
        step = self.step_engine
        if T == 1 and step is not None:
            return step.forward(batch, state, full_output)
        torch_state = None if state is None else self._torch_state_class(*(torch.from_numpy(a) for a in state))
        logits, new_state = self.torch_engine.forward(batch, torch_state, full_output)
        return logits, self.state_class(*(t.numpy() for t in new_state))


def load_hybrid(path, tokenizer, choice, dtype: str | None = None, cache_dir=None, background: bool = True):
    """(engine, selection): a HybridEngine of this model file. torch+native: the C step built (or found in its
    cache) now; if it cannot be, under auto, torch+onnx with a reason saying why (asked for by name: LoadError).
    torch+onnx: its step exported or read from the cache in the background. A plain TorchEngine (and a
    selection saying so) for a dtype other than float32."""
    from backends import _load_torch
    from backends.selection import Selection

    float32 = dtype in (None, "", "float32")
    native = choice.backend == NATIVE_BACKEND and float32
    # eager layers for the C step: they take its scan for prompts (FusedRWKV7.use_sequence_wkv)
    torch_engine = _load_torch(path, tokenizer, "cpu", dtype, script=not native)
    if not float32:
        return torch_engine, Selection("torch", "cpu", f"auto: torch on the CPU, as dtype {dtype} asks "
                                                       "(the decode steps are float32 only)")
    info = torch_engine.info

    def hybrid(backend):
        return HybridEngine(torch_engine, tokenizer, EngineInfo(
            info.architecture, backend, "cpu", info.model_path, info.n_layer, info.n_embd, info.vocab_size))

    if native:
        from backends import LoadError
        from backends.native_step import NativeBuildError, NativeStep, build_library

        try:
            engine = hybrid(NATIVE_BACKEND)
            engine.set_step(NativeStep(build_library(), torch_engine.model, tokenizer, engine.info))
            return engine, choice
        except NativeBuildError as exc:
            if not choice.reason.startswith("auto"):
                raise LoadError(f"{path}: {exc}") from None
            choice = Selection(BACKEND, "cpu", f"{choice.reason.rsplit(':', 1)[0]}: {exc}; so ONNX Runtime decodes")
    engine = hybrid(BACKEND)

    def make_step():
        from backends.onnx_engine import load_onnx

        export_in_child(path, cache_dir)  # if that fails, load_onnx exports here (and says why it cannot)
        return load_onnx(path, tokenizer, Selection("onnx", "cpu", choice.reason), None, cache_dir)

    engine.prepare_step(make_step, background)
    return engine, choice


_exporting = threading.Lock()  # one export at a time: loads of the same model wait for it, then find it cached

EXPORT_IN_CHILD = """
import os, sys
if hasattr(os, "nice"):
    os.nice(10)  # behind the app's own threads
from backends.onnx_export import cached_export
cached_export(sys.argv[1], sys.argv[2] or None)
"""


def export_in_child(path, cache_dir=None, timeout: float = 1800) -> bool:
    """Fill the export cache for this model file from a child Python process; True if it exited cleanly.

    Nothing is raised: the caller opens (or makes) the cached file itself and reports any problem then.
    """
    try:
        with _exporting:
            return _export_in_child(path, cache_dir, timeout)
    except (OSError, subprocess.SubprocessError):
        return False


def _export_in_child(path, cache_dir, timeout: float) -> bool:
    from backends import onnx_export

    if onnx_export.cache_path(path, cache_dir).is_file():
        return True
    root = str(Path(__file__).resolve().parent.parent)  # the folder holding the backends package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", EXPORT_IN_CHILD, str(path), str(cache_dir or "")], env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=timeout)
    return done.returncode == 0
