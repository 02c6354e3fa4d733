"""RWKV-7's decode step in C (native/rwkv7_step.c beside this file), compiled for this CPU on first use.

    library = build_library()                      # NativeBuildError (one line) without a C compiler
    step = NativeStep(library, model, tokenizer, info)
    logits, state = step.forward([[id], [id]], state)   # B rows, one token each (T tokens run T steps)

On a CPU a decode step is bound by reading the weights. The C step reads every
weight matrix once for up to 4 rows, prefetching ahead in each row, so that 4
candidates cost little more than one (bench/bench_engine.py measures it). It
computes the equations of models/rwkv7.py at T == 1, in float32, on the numpy
state of backends.engines.numpy_state, and reads the torch model's own weight
tensors as they are, in the layout models/rwkv7.py documents (no copy).

The same library scans prompts: torch still computes a prompt's projections in
large matrix products, but the state update over its T tokens runs token by token
in C (FusedRWKV7.use_sequence_wkv of an eager model), with each head's state held
in cache: less arithmetic than the chunked form (models/wkv7.py).

The source is compiled with the C compiler found here ($CC, cc, gcc or clang;
-O3 -march=native, OpenMP when the compiler has it) into the cache folder
(AI_WRITER_NATIVE_CACHE, or the user cache folder's native/), named by the hash
of the source, the compiler and the flags, so a changed source or compiler gets a
new library. AI_WRITER_NATIVE=0 turns the native step off (backend auto then
decodes with ONNX Runtime).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from ai_writer.backends.engines.base import EngineInfo, check_batch
from ai_writer.backends.engines.numpy_state import NumpyStateOps, state_layout

SOURCE = Path(__file__).resolve().parent / "native" / "rwkv7_step.c"
CACHE_ENV = "AI_WRITER_NATIVE_CACHE"
SWITCH_ENV = "AI_WRITER_NATIVE"  # "0" turns the native step off
MAX_HEAD = 256  # rwkv7_step.c's MAX_HEAD
# The per-layer weights in rwkv7_step.c's order (its enum), as models.rwkv7 names and lays them out.
LAYER_WEIGHTS = (
    "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias",
    "att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g",
    "att.w0", "att.w1", "att.w2", "att.a0", "att.a1", "att.a2", "att.v0", "att.v1", "att.v2", "att.g1", "att.g2",
    "att.k_k", "att.k_a", "att.r_k",
    "att.receptance.weight", "att.key.weight", "att.value.weight", "att.output.weight",
    "att.ln_x.weight", "att.ln_x.bias", "ffn.x_k", "ffn.key.weight", "ffn.value.weight",
)
GLOBAL_WEIGHTS = ("emb.weight", "blocks.0.ln0.weight", "blocks.0.ln0.bias", "ln_out.weight", "ln_out.bias", "head.weight")

_building = threading.Lock()


class NativeBuildError(RuntimeError):
    """The native step cannot be built or opened here; one line saying why."""


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def native_possible() -> bool:
    """Whether the native step may be built here: not turned off, and a C compiler on PATH."""
    return enabled() and find_compiler() is not None


def find_compiler() -> str | None:
    """The C compiler to build with: $CC, else cc, gcc or clang on PATH; None without one."""
    if os.environ.get("CC"):
        return shutil.which(os.environ["CC"].split()[0]) and os.environ["CC"]
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    return None


def default_cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ai-writer-studio")) / "native"


def _cpu_signature() -> str:
    """What -march=native compiles for: the CPU's feature flags where Linux lists them."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


FLAG_SETS = (  # tried in order; the first that compiles is used
    ["-O3", "-march=native", "-fopenmp"],
    ["-O3", "-mcpu=native", "-fopenmp"],
    ["-O3", "-march=native"],
    ["-O3", "-mcpu=native"],
    ["-O3"],
)


def build_library(cache_dir=None, compiler: str | None = None) -> Path:
    """The compiled step for this CPU: from the cache, or compiled now (a second or two). NativeBuildError if not."""
    compiler = compiler or find_compiler()
    if not compiler:
        raise NativeBuildError("no C compiler (cc, gcc or clang) to build the native step")
    source = SOURCE.read_bytes()
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    with _building:
        first_error = None
        for flags in FLAG_SETS:
            key = hashlib.sha256(b"\n".join([source, compiler.encode(), " ".join(flags).encode(),
                                             _cpu_signature().encode()])).hexdigest()[:24]
            target = folder / f"rwkv7_step-{key}{_suffix()}"
            if target.is_file() or (error := _compile(compiler, flags, target)) is None:
                return target
            first_error = first_error or error
        raise NativeBuildError(f"the native step does not compile here ({compiler}: {first_error})")


def _suffix() -> str:
    return ".dll" if os.name == "nt" else ".dylib" if platform.system() == "Darwin" else ".so"


def _compile(compiler: str, flags: list[str], target: Path) -> str | None:
    """Compile the source to target (atomically); None, or the compiler's first error line."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        return f"cannot write to {target.parent}: {exc.strerror or exc}"
    command = [*compiler.split(), *flags, "-shared", "-fPIC", str(SOURCE), "-o", tmp, "-lm"]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if "error" in line.lower()] or done.stderr.splitlines()
            return (lines[0].strip() if lines else f"exit status {done.returncode}")[:200]
        os.replace(tmp, target)
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _open(library: Path):
    """(rwkv7_step, wkv7_scan) of the compiled library."""
    try:
        lib = ctypes.CDLL(str(library))
        step, scan = lib.rwkv7_step, lib.wkv7_scan
    except (OSError, AttributeError) as exc:
        raise NativeBuildError(f"{library}: cannot be opened ({str(exc).splitlines()[0][:200]})") from None
    step.restype = ctypes.c_int
    step.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] + [ctypes.c_void_p] * 8 + [ctypes.c_int]
    scan.restype = None
    scan.argtypes = [ctypes.c_int] * 4 + [ctypes.c_void_p] * 9 + [ctypes.c_int]
    return step, scan


class NativeStep(NumpyStateOps):
    """The C step of one RWKV-7 model (models.rwkv7.RWKV7, float32 on the CPU), behind the Engine protocol."""

    def __init__(self, library: Path, model, tokenizer, info: EngineInfo):
        import torch

        config = model.config
        if info.architecture != "rwkv7":
            raise NativeBuildError(f"the native step runs RWKV-7 only, not {info.architecture}")
        if config.head_size > MAX_HEAD:
            raise NativeBuildError(f"the native step takes head sizes up to {MAX_HEAD}, not {config.head_size}")
        self._step, self._scan = _open(library)
        self.tokenizer, self.info = tokenizer, info
        self.state_class, self._shapes, self._fills = state_layout("rwkv7", config.n_embd, config.head_size)
        self.tokens_processed = 0
        self._threads = torch.get_num_threads  # the studio sets how many the model may use
        params = dict(model.named_parameters())
        if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in params.values()):
            raise NativeBuildError("the native step runs float32 weights on the CPU only")
        if not all(p.is_contiguous() for p in params.values()):
            raise NativeBuildError("the native step reads contiguous weights (models.rwkv7_fused.prepare_for_inference)")
        weights = {name: p.detach() for name, p in params.items()}
        self._keep = []  # every array whose memory the C step reads

        def pointer(tensor) -> int:
            array = tensor.numpy()  # the parameter's own memory
            self._keep.append(array)
            return array.ctypes.data

        layer_pointers = []
        for i in range(config.n_layer):
            for name in LAYER_WEIGHTS:
                key = f"blocks.{i}.{name}"
                if key not in weights:  # layer 0 has no value mix (v0, v1, v2)
                    layer_pointers.append(0)
                    continue
                layer_pointers.append(pointer(weights[key]))
        self._layers = (ctypes.c_void_p * len(layer_pointers))(*layer_pointers)
        self._globals = (ctypes.c_void_p * len(GLOBAL_WEIGHTS))(*(pointer(weights[k]) for k in GLOBAL_WEIGHTS))
        use_scan = getattr(model, "use_sequence_wkv", None)  # models.rwkv7_fused.FusedRWKV7
        self.scans_prompts = bool(use_scan and use_scan(self.sequence_wkv))  # False: scripted layers
        value_width = config.d_value if config.n_layer > 1 else 0
        self._sizes = np.array([config.n_layer, config.n_embd, config.head_size, config.vocab_size, config.d_decay,
                                config.d_iclr, value_width, config.d_gate, weights["blocks.0.ffn.key.weight"].shape[0]],
                               dtype=np.int64)

    def sequence_wkv(self, state, r, log_w, k, v, a, b):
        """models.wkv7.wkv7_chunked's state update over T tokens, token by token in C: (o, new state).

        Inputs (B, T, H, N) float32 CPU tensors with log_w = log(w); state (B, H, N, N). Under
        autograd (training) or for other dtypes, the chunked form."""
        import torch

        from ai_writer.models.wkv7 import wkv7_chunked

        inputs = (state, r, log_w, k, v, a, b)
        if torch.is_grad_enabled() or any(t.dtype != torch.float32 or t.device.type != "cpu" for t in inputs):
            return wkv7_chunked(*inputs)
        B, T, H, N = r.shape
        r, w, k, v, a, b = (t.contiguous() for t in (r, torch.exp(log_w), k, v, a, b))
        state = state.contiguous()
        out, new_state = torch.empty_like(r), torch.empty_like(state)
        self._scan(B, T, H, N, *(t.data_ptr() for t in (r, w, k, v, a, b, state, new_state, out)),
                   max(1, self._threads()))
        return out, new_state

    def forward(self, token_lists, state=None, full_output: bool = False):
        """B equal-length id lists (and a state of B rows, or None) -> (logits, new state).

        logits: float32 numpy (B, V) for each last position, or (B, T, V) for every
        position with full_output. T tokens run T steps. The given state is not modified.
        """
        batch = check_batch(token_lists, self.info.vocab_size)
        B, T = batch.shape
        state = self.zero_state(B) if state is None else self._checked(state, B)
        threads, every = max(1, self._threads()), []
        for t in range(T):
            tokens = np.ascontiguousarray(batch[:, t])
            new = self.state_class(*(np.empty_like(a) for a in state))
            logits = np.empty((B, self.info.vocab_size), dtype=np.float32)
            if self._step(self._sizes.ctypes.data, self._globals, self._layers, B, tokens.ctypes.data,
                          *(a.ctypes.data for a in state), *(a.ctypes.data for a in new), logits.ctypes.data,
                          threads):
                raise MemoryError("the native step could not allocate its scratch memory")
            state = new
            if full_output:
                every.append(logits)
        self.tokens_processed += batch.size
        return (np.stack(every, axis=1) if full_output else logits), state
