"""The CPU backends torch+native and torch+onnx: torch reads prompts, a decode step of their own decodes.

On a CPU each engine is fastest at one half of writing: torch's chunked sequence
form reads a prompt of T tokens in a few large matrix products, while a decode
step (one token for each of B rows) is bound by reading the weights, where
torch's small-batch matrix products are slow. This engine sends forward() calls
with T > 1 to torch and T == 1 to its decode step (all of them to a C step with
narrow-typed weights, which reads prompts too; the torch model then holds no
matrices):

  torch+native   backends.engines.native_step: RWKV-7's step in C, compiled for
                 this CPU on first use (then cached). It reads every weight once
                 for up to 4 rows, so 4 candidates cost little more than one.
  torch+onnx     ONNX Runtime's exported step (backends.files.onnx_export):
                 RWKV-7 and RWKV-4.

Both steps compute the same equations as torch on the same state layout
(backends.engines.numpy_state, in the order of models.rwkv7.RWKV7State /
models.rwkv4.RWKV4State), so a state passes between them as it is: numpy arrays
shared with torch tensors through torch.from_numpy, no copy. The state handed out
is that numpy state; a torch state of the same shapes is accepted too.

The native step is built (or found in its cache) while the model loads. The ONNX
step graph is exported (or read from the cache) on a background thread, so loading
costs no more than the torch model's; until the session is open, decode steps run
on torch, with the same results to float32 rounding. `wait_for_decode_step()` waits
for it; `decode_step_error` says why it could not be made (then the engine stays on
torch). The export itself runs in a child process at lower priority: building and
serialising the graph holds Python's GIL for long stretches, which would freeze a
UI thread in this process; opening the session does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import torch

from ai_writer.backends.engines.base import Engine, EngineInfo, check_batch
from ai_writer.backends.engines.names import Backend
from ai_writer.backends.engines.numpy_state import NumpyStateOps, state_layout


class HybridEngine(NumpyStateOps):
    def __init__(self, torch_engine, tokenizer, info: EngineInfo):
        """torch_engine: a CPU, float32 TorchEngine of an RWKV-7 or RWKV-4; the decode step comes from
        use_decode_step() or prepare_decode_step()."""
        self.torch_engine = torch_engine
        self.model = torch_engine.model
        self.tokenizer = tokenizer
        self.info = info
        config = self.model.config
        size = config.n_att if info.architecture == "rwkv4" else config.head_size
        self._torch_state_class = type(self.model.zero_state(1))
        self.state_class, self._shapes, self._fills = state_layout(info.architecture, info.n_embd, size)
        self.decode_step: Engine | None = None  # an OnnxEngine or a NativeStep, once it is ready
        self.decode_step_error: str | None = None
        self._ready = threading.Event()

    @property
    def tokens_processed(self) -> int:
        return self.torch_engine.tokens_processed + (self.decode_step.tokens_processed if self.decode_step else 0)

    # -- the decode step ------------------------------------------------------------

    def use_decode_step(self, step: Engine | None = None, error: str | None = None) -> None:
        """Run single-token steps on this engine (an OnnxEngine or a NativeStep) from now on, or record why
        there is none."""
        if step is not None:
            info = step.info
            mine = (self.info.architecture, self.info.n_layer, self.info.n_embd, self.info.vocab_size)
            if (info.architecture, info.n_layer, info.n_embd, info.vocab_size) != mine:
                step, error = None, "the decode step does not fit this model"
        self.decode_step, self.decode_step_error = step, error
        self._ready.set()

    def prepare_decode_step(self, make_step, background: bool = True) -> None:
        """Run make_step() -> a decode step engine (an ONNX export can take seconds) and use its result; any
        error becomes decode_step_error."""
        def run():
            try:
                self.use_decode_step(make_step())
            except Exception as exc:  # whatever stops the export, the engine keeps running on torch
                self.use_decode_step(None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

        if background:
            threading.Thread(target=run, name="decode-step-export", daemon=True).start()
        else:
            run()

    def wait_for_decode_step(self, timeout: float | None = None) -> bool:
        """Wait until the decode step is ready (True) or has failed / the timeout passed (False)."""
        self._ready.wait(timeout)
        return self.decode_step is not None

    # -- running -----------------------------------------------------------------

    def forward(self, token_lists, state=None, full_output: bool = False):
        """B equal-length id lists (and a state of B rows, or None) -> (logits, new state).

        logits: float32 numpy (B, V) for each last position, or (B, T, V) for every
        position with full_output. T == 1 runs the decode step (torch until it is
        ready), T > 1 torch's chunked sequence form, or the decode step where it reads
        prompts too (a narrow-typed C step: the torch model's matrices are freed then).
        The given state is not modified.
        """
        batch = check_batch(token_lists, self.info.vocab_size)
        B, T = batch.shape
        state = None if state is None else self._checked(state, B)
        step = self.decode_step
        if step is not None and (T == 1 or getattr(step, "reads_prompts", False)):
            return step.forward(batch, state, full_output)
        torch_state = None if state is None else self._torch_state_class(*(torch.from_numpy(a) for a in state))
        logits, new_state = self.torch_engine.forward(batch, torch_state, full_output)
        return logits, self.state_class(*(t.numpy() for t in new_state))


def _pair(torch_engine, backend: Backend) -> HybridEngine:
    info = torch_engine.info
    return HybridEngine(torch_engine, torch_engine.tokenizer, EngineInfo(
        info.architecture, backend, "cpu", info.model_path, info.n_layer, info.n_embd, info.vocab_size))


def native_pair(torch_engine, dtype: str = "float32") -> HybridEngine:
    """torch+native around a CPU float32 TorchEngine of an RWKV-7 with eager layers (they take the C scan for
    prompts): the C step built, or found in its cache, now, its weight matrices in `dtype` (native_step.PRECISIONS;
    other than float32, torch's prompts read the step's converted head). NativeBuildError (one line) if it cannot be."""
    from ai_writer.backends.engines.native_step import NativeStep, build_library

    engine = _pair(torch_engine, Backend.TORCH_NATIVE)
    engine.use_decode_step(NativeStep.of_torch_model(build_library(), torch_engine.model, torch_engine.tokenizer,
                                                   engine.info, dtype))
    return engine


def onnx_pair(torch_engine, cache_dir=None, background: bool = True) -> HybridEngine:
    """torch+onnx around a CPU float32 TorchEngine of an RWKV-7 or RWKV-4: its ONNX step exported, or read from
    the cache, in the background (decode steps run on torch until then)."""
    engine = _pair(torch_engine, Backend.TORCH_ONNX)
    path = Path(torch_engine.info.model_path)

    def make_step():
        from ai_writer.backends.engines.onnx_engine import load_onnx

        export_in_child(path, cache_dir)  # if that fails, load_onnx exports here (and says why it cannot)
        return load_onnx(path, torch_engine.tokenizer, "cpu", None, cache_dir)

    engine.prepare_decode_step(make_step, background)
    return engine


_exporting = threading.Lock()  # one export at a time: loads of the same model wait for it, then find it cached

EXPORT_IN_CHILD = """
import os, sys
if hasattr(os, "nice"):
    os.nice(10)  # behind the app's own threads
from ai_writer.backends.files.onnx_export import cached_export
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
    from ai_writer.backends.files import onnx_export

    if onnx_export.cache_path(path, cache_dir).is_file():
        return True
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the backends package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", EXPORT_IN_CHILD, str(path), str(cache_dir or "")], env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=timeout)
    return done.returncode == 0
