"""RWKV-7's decode step in C (native/rwkv7_step.c and rwkv7_matrix.c beside this file), compiled for this
CPU on first use.

    library = build_library()                      # NativeBuildError (one line) without a C compiler
    step = NativeStep(library, model, tokenizer, info, dtype="int8")
    logits, state = step.forward([[id], [id]], state)   # B rows, one token each (T tokens run T steps)

On a CPU a decode step is bound by reading the weights. The C step reads every
weight matrix once for up to 4 rows, prefetching ahead in each row, so that 4
candidates cost little more than one (bench/bench_engine.py measures it). It
computes the equations of models/rwkv7.py at T == 1 on the numpy state of
backends.engines.numpy_state, in float32 but for the weight matrices, which are
in the step's `dtype` (PRECISIONS), all in the layout models/rwkv7.py documents:

  float32    the torch model's own tensors, read in place (no copy), but the
             head: copied into blocks (below), the model's freed. A native
             engine (no torch) copies every matrix into blocks, the file's
             pages dropped: the same memory, faster steps and prompts.
  float16,   every matrix (projections, FFN, LoRA, head) converted once at load,
  bfloat16   rounded to nearest; converted to float32 in registers, float32 sums.
             On a CPU with AVX-512 BF16, bfloat16 projections, FFN and head
             multiply bfloat16 by bfloat16 (vdpbf16ps, float32 sums) against
             activations rounded to bfloat16 per product (the faster;
             Library.bf16_kernel(0) turns it off).
  int8       every matrix as int8 with one float32 scale per output channel
             (symmetric, scale = max |w| / 127). On a CPU with AVX-512 VNNI the
             projections, FFN and head multiply int8 by int8 (vpdpbusd) against
             activations quantised to int8 per row, int32 sums (the faster;
             Library.int8_kernel(0) turns it off); elsewhere the weights are
             converted to float32 in registers.

The embedding is stored as the matrices are (a token's row read as float32: int8's
scale per row is harmless there, the first layer norm takes it out); the norms,
every vector, the state and its update stay float32 (the torch model's tensors).
Converted matrices, the (in, out) LoRA ones too, are stored in 4-row blocks of
cache lines (rwkv7_matrix.h), read as one stream, all of them carved from one
arena on 2 MB pages (weight_arena.py). The model's head becomes the step's
(native_head), the model's float32 one freed.

Prompts: a narrow-typed step reads them too (reads_prompts; rwkv7_forward takes
B rows x T tokens, SEQUENCE_CHUNK tokens a call, every matrix product over all of a
chunk's tokens, the state update on the transposed state), so the torch model's
float32 matrices and embedding are freed as each is converted: the memory held is
the step's matrices and embedding plus the float32 vectors (at 12 x 768, vocabulary
65536: ~370 MB of 16-bit or ~190 MB of int8, of which the embedding is 96 or
48 MB; as float32 it would be 192 MB, and a prompt's scattered rows map most of
it from the page cache of a mapped file). A float32
step reads the model's own matrices in place, and torch reads its prompts in large
matrix products (faster there), with the state update over the T tokens scanned
token by token in C (FusedRWKV7.use_sequence_wkv of an eager model), each head's
state held in cache.

The sources are compiled with the C compiler found here ($CC, cc, gcc or clang;
-O3 -march=native, OpenMP when the compiler has it) into the cache folder
(AI_WRITER_NATIVE_CACHE, or the user cache folder's native/), named by the hash
of the sources, the compiler, the flags and the CPU's features, so a changed
source or compiler gets a new library. The kernels are picked at compile time from
what -march=native enables (kernels() names them); AI_WRITER_NATIVE_PORTABLE=1
builds the portable plain-C kernels instead (-DRWKV7_PORTABLE), as a CPU without
any of those instructions gets. AI_WRITER_NATIVE=0 turns the native step off
(backend auto then decodes with ONNX Runtime).
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from ai_writer.backends.engines.base import EngineInfo, check_batch
from ai_writer.backends.engines.numpy_state import NumpyStateOps, state_layout
from ai_writer.backends.engines.weight_arena import WeightArena, arena_bytes

NATIVE = Path(__file__).resolve().parent / "native"
SOURCES = (NATIVE / "rwkv7_step.c", NATIVE / "rwkv7_matrix.c")
HEADERS = (NATIVE / "rwkv7_matrix.h",)
CACHE_ENV = "AI_WRITER_NATIVE_CACHE"
SWITCH_ENV = "AI_WRITER_NATIVE"  # "0" turns the native step off
PORTABLE_ENV = "AI_WRITER_NATIVE_PORTABLE"  # "1" builds the portable kernels
MAX_HEAD = 256  # rwkv7_step.c's MAX_HEAD
SEQUENCE_CHUNK = 128  # tokens per call of rwkv7_forward for a prompt (its scratch memory: ~22 floats per token and
# channel, ~10 MB at 768 channels)
# The step's weight types (rwkv7_matrix.h's MT_*) and their numpy storage.
PRECISIONS = {"float32": 0, "float16": 1, "bfloat16": 2, "int8": 3}
CONVERT_ROWS = 8192  # rows of an (out, in) matrix converted at a time (a multiple of 4; 24 MB of float32 at 768)
STORAGE = {"float16": np.uint16, "bfloat16": np.uint16, "int8": np.int8}
# How far each precision's logits and state may be from the float32 step's over a short run (a prompt, then steps),
# as max |difference| / max(1, max |float32 value|); tests/backends/test_native_precision.py holds them to it.
TOLERANCES = {"float32": 0.0, "float16": 2e-3, "bfloat16": 1.5e-2, "int8": 6e-2}
OUT_IN, IN_OUT, BLOCKS = 0, 1, 2  # rwkv7_matrix.h's layouts: nn.Linear's (out, in), the LoRA matrices' (in, out),
# and (out, in) in 4-row blocks of cache lines (every matrix of the narrow types, the LoRA ones too: read as one
# stream, more than twice as fast as the (in, out) rows for those small matrices; the head of any type)
# The per-layer float32 vectors and matrices in rwkv7_step.c's orders (its enums), as models.rwkv7 names them.
LAYER_VECTORS = (
    "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias",
    "att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g",
    "att.w0", "att.a0", "att.v0", "att.k_k", "att.k_a", "att.r_k", "att.ln_x.weight", "att.ln_x.bias", "ffn.x_k",
)
LAYER_MATRICES = (
    ("att.receptance.weight", OUT_IN), ("att.key.weight", OUT_IN), ("att.value.weight", OUT_IN),
    ("att.output.weight", OUT_IN), ("att.w1", IN_OUT), ("att.w2", IN_OUT), ("att.a1", IN_OUT), ("att.a2", IN_OUT),
    ("att.v1", IN_OUT), ("att.v2", IN_OUT), ("att.g1", IN_OUT), ("att.g2", IN_OUT),
    ("ffn.key.weight", OUT_IN), ("ffn.value.weight", OUT_IN),
)
# A float32 head is copied into blocks (the model's freed): read as one stream, faster (bench/bench_sizes.py).
FLOAT32_HEAD_IN_BLOCKS = True
GLOBAL_VECTORS = ("blocks.0.ln0.weight", "blocks.0.ln0.bias", "ln_out.weight", "ln_out.bias")


class Matrix(ctypes.Structure):
    """rwkv7_matrix.h's matrix_t: one weight matrix as the C step reads it."""

    _fields_ = [("data", ctypes.c_void_p), ("scale", ctypes.c_void_p), ("row_sum", ctypes.c_void_p),
                ("type", ctypes.c_int32), ("layout", ctypes.c_int32), ("n_out", ctypes.c_int32),
                ("n_in", ctypes.c_int32)]

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


def portable_asked() -> bool:
    return os.environ.get(PORTABLE_ENV, "0").strip().lower() not in ("", "0", "false", "no", "off")


def build_library(cache_dir=None, compiler: str | None = None, portable: bool | None = None) -> Path:
    """The compiled step for this CPU: from the cache, or compiled now (a few seconds). NativeBuildError if not.

    portable: the plain-C kernels (-DRWKV7_PORTABLE); None: as AI_WRITER_NATIVE_PORTABLE says."""
    compiler = compiler or find_compiler()
    if not compiler:
        raise NativeBuildError("no C compiler (cc, gcc or clang) to build the native step")
    portable = portable_asked() if portable is None else portable
    source = b"\n".join(path.read_bytes() for path in (*SOURCES, *HEADERS))
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    with _building:
        first_error = None
        for flags in FLAG_SETS:
            flags = [*flags, "-DRWKV7_PORTABLE"] if portable else flags
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
    command = [*compiler.split(), *flags, "-shared", "-fPIC", *map(str, SOURCES), "-o", tmp, "-lm"]
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


class Library:
    """The compiled library's functions, typed."""

    def __init__(self, path: Path):
        try:
            lib = ctypes.CDLL(str(path))
            self.sequence, self.scan, self.matmul = lib.rwkv7_forward, lib.wkv7_scan, lib.rwkv7_matmul
            self.convert, self._kernels, self._int8_kernel = lib.rwkv7_convert, lib.rwkv7_kernels, lib.rwkv7_int8_kernel
            self._bf16_kernel = lib.rwkv7_bf16_kernel
        except (OSError, AttributeError) as exc:
            raise NativeBuildError(f"{path}: cannot be opened ({str(exc).splitlines()[0][:200]})") from None
        self.path = path
        self.sequence.restype = ctypes.c_int
        self.sequence.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int] * 3 + [ctypes.c_void_p] * 8 + [ctypes.c_int]
        self.scan.restype = None
        self.scan.argtypes = [ctypes.c_int] * 4 + [ctypes.c_void_p] * 9 + [ctypes.c_int]
        self.matmul.restype = None
        self.matmul.argtypes = [ctypes.c_void_p, ctypes.POINTER(Matrix), ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self.convert.restype = ctypes.c_int64
        self.convert.argtypes = ([ctypes.c_void_p] + [ctypes.c_int] * 5 + [ctypes.c_void_p] * 3 + [ctypes.c_int])
        self._kernels.restype = ctypes.c_char_p
        self._kernels.argtypes = []
        for switch in (self._int8_kernel, self._bf16_kernel):
            switch.restype = ctypes.c_int
            switch.argtypes = [ctypes.c_int]

    def kernels(self) -> str:
        """What this build's kernels use: "portable", or e.g. "float16:avx512f bfloat16:vector int8:vector+avx512vnni"."""
        return self._kernels().decode()

    def int8_kernel(self, which: int = -1) -> int:
        """Set (0: int8 weights converted to float32; 1: int8 activations through VNNI, where compiled in) and/or
        read (-1) how int8 (out, in) products run; returns the setting in force after the call (a set returns the new
        value: 1 only where compiled in). The library's setting: every step of this process shares it."""
        return self._int8_kernel(which)

    def bf16_kernel(self, which: int = -1) -> int:
        """Set (0: bfloat16 weights widened to float32; 1: bfloat16 activations through vdpbf16ps, where compiled in)
        and/or read (-1) how bfloat16 (out, in) products run. The library's setting, as int8_kernel."""
        return self._bf16_kernel(which)


_opened: dict[Path, Library] = {}


def open_library(path: Path) -> Library:
    """The library at path, opened once per process."""
    path = Path(path)
    if path not in _opened:
        _opened[path] = Library(path)
    return _opened[path]


def convert_matrix(library: Library, tensor, layout: int, dtype: str, name: str = "matrix", threads: int = 1,
                   stored: int | None = None, arena: WeightArena | None = None, converted=None):
    """(Matrix, arrays it points to) for a float32 2-D tensor in `layout` (OUT_IN or IN_OUT), converted to `dtype` and
    stored in layout `stored`: BLOCKS (rwkv7_matrix.h; for float32 a copy), or for float32 `layout` itself (the
    tensor's own memory). By default float32 is the tensor's own memory and the narrow types go in BLOCKS.
    NativeBuildError (one line) when values do not fit the type, or for a layout it does not store. arena: where the
    converted arrays are carved from (else each its own memory). converted: called with each part of the tensor once
    it is converted (an (out, in) tensor CONVERT_ROWS rows at a time, so that their file pages can go at once)."""
    source = tensor.detach().numpy() if hasattr(tensor, "numpy") else np.asarray(tensor)
    if source.dtype != np.float32 or source.ndim != 2 or not source.flags.c_contiguous:
        raise NativeBuildError(f"{name}: the native step converts contiguous 2-D float32 weights only")
    n_out, n_in = source.shape if layout == OUT_IN else source.shape[::-1]
    kind = PRECISIONS[dtype]
    if stored is None:
        stored = layout if dtype == "float32" else BLOCKS
    if dtype == "float32" and stored == layout:
        return Matrix(source.ctypes.data, None, None, kind, layout, n_out, n_in), [source]
    if stored != BLOCKS:
        raise NativeBuildError(f"{name}: the native step stores converted {dtype} weights in blocks only")
    empty = arena.empty if arena else np.empty
    data = empty((n_out, n_in), STORAGE.get(dtype, np.float32))
    scale = empty(n_out, np.float32) if dtype == "int8" else None
    row_sum = empty(n_out, np.int32) if dtype == "int8" else None
    pointers = [None if a is None else a.ctypes.data for a in (scale, row_sum)]
    rows = CONVERT_ROWS if layout == OUT_IN else n_out  # a multiple of 4: the blocks of a part are the whole's
    for start in range(0, n_out, rows):
        end = min(n_out, start + rows)
        at = [None if a is None else a[start:].ctypes.data for a in (scale, row_sum)]
        bad = library.convert(source[start:].ctypes.data, kind, layout, stored, end - start, n_in,
                              data[start:].ctypes.data, *at, threads)
        if bad != 0:
            break
        if converted is not None:
            converted(tensor[start:end] if layout == OUT_IN else tensor)
    if bad < 0:
        raise NativeBuildError(f"{name}: the native step does not store {dtype} weights in layout {stored}")
    if bad:
        what = "are not finite" if dtype != "float16" else "are not finite or beyond float16's range (65504)"
        raise NativeBuildError(f"{name}: {bad} weights {what}; {dtype} cannot hold them")
    arrays = [a for a in (data, scale, row_sum) if a is not None]
    return Matrix(data.ctypes.data, *pointers, kind, stored, n_out, n_in), arrays


def address_and_size(array) -> tuple[int, int]:
    """Where a numpy array's or a torch CPU tensor's elements start, and their bytes."""
    if isinstance(array, np.ndarray):
        return array.ctypes.data, array.nbytes
    return array.data_ptr(), array.numel() * array.element_size()


def release_file_pages(tensor, mappings: list[tuple[int, int]] | None = None) -> bool:
    """Drop the pages of a tensor (or numpy array) that lies in a file mapping (a memory-mapped model file) from this process, once
    the step holds its own copy: they stay in the page cache, and would come back from the file if read again.
    Anonymous memory is left alone (it is freed with its last tensor). mappings: file_mappings(), read once for
    many tensors. True if pages were dropped (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    start, size = address_and_size(tensor)
    page = mmap.PAGESIZE
    low, high = -(-start // page) * page, (start + size) // page * page
    mappings = file_mappings() if mappings is None else mappings
    if high <= low or not any(begin <= low and high <= end for begin, end in mappings):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc.madvise(low, high - low, 4) == 0  # MADV_DONTNEED


def file_mappings() -> list[tuple[int, int]]:
    """This process's mappings of files ((begin, end) of each line of /proc/self/maps that names a path)."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            begin, end = (int(x, 16) for x in fields[0].split("-"))
            found.append((begin, end))
    return found


def matrix_bytes(arrays) -> int:
    return sum(a.nbytes for a in arrays)


def stored_bytes(shape, layout: int, dtype: str) -> int:
    """What convert_matrix's arrays for a matrix of this shape take in a WeightArena."""
    n_out = shape[0] if layout == OUT_IN else shape[1]
    extra = arena_bytes(n_out, np.float32) + arena_bytes(n_out, np.int32) if dtype == "int8" else 0
    return arena_bytes(tuple(shape), STORAGE.get(dtype, np.float32)) + extra


def native_head(library: Library, matrix: Matrix, keep, threads):
    """An nn.Module computing x @ head^T with the C step's (converted) head: torch's prompt path runs it in place
    of the model's nn.Linear head, whose float32 weights are then no longer needed."""
    import torch

    class NativeHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.matrix, self.keep, self.out_features = matrix, keep, matrix.n_out

        def forward(self, x):
            rows = x.reshape(-1, x.shape[-1]).to(torch.float32).contiguous()
            out = torch.empty(rows.shape[0], self.out_features, dtype=torch.float32)
            library.matmul(rows.data_ptr(), ctypes.byref(self.matrix), out.data_ptr(), rows.shape[0],
                           max(1, threads()))
            return out.view(*x.shape[:-1], self.out_features)

    return NativeHead()


_thread_count = 0  # the native engine's threads (set_threads); 0: the CPUs this process may use


def set_threads(count: int) -> None:
    """How many threads the C step of a native engine (no torch) runs on from now on; 0: every CPU it may use."""
    global _thread_count
    _thread_count = max(0, int(count))


def thread_count() -> int:
    if _thread_count:
        return _thread_count
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def weights_of_torch_model(model) -> dict:
    """A float32 CPU RWKV-7's parameters by name (detached, the model's own memory), for NativeStep;
    NativeBuildError (one line) for others."""
    import torch

    params = dict(model.named_parameters())
    if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in params.values()):
        raise NativeBuildError("the native step runs float32 weights on the CPU only")
    if not all(p.is_contiguous() for p in params.values()):
        raise NativeBuildError("the native step reads contiguous weights (models.rwkv7_fused.prepare_for_inference)")
    return {name: p.detach() for name, p in params.items()}


class NativeStep(NumpyStateOps):
    """The C step of one RWKV-7 model, behind the Engine protocol: from a torch model (of_torch_model: its
    decode step in torch+native) or from float32 arrays by name (a native engine, no torch:
    backends/engines/native_engine.py).

    dtype (PRECISIONS): the weight matrices' type in the step."""

    def __init__(self, library, config, weights, tokenizer, info: EngineInfo, dtype: str = "float32",
                 threads=thread_count, reads_prompts: bool | None = None, converted=None):
        """config: a models.rwkv7_config.RWKV7Config. weights: models.rwkv7's parameter names -> contiguous
        float32 arrays (numpy, or torch CPU tensors), each matrix taken once (popped where the mapping
        allows), read in place (float32) or converted (the others: their memory may go once converted,
        and pages of a mapped file are dropped). threads: a function giving the thread count of each call.
        reads_prompts: whether forward() with T > 1 comes here too (default: a narrow dtype; a native engine
        always). converted(key): called once a matrix's float32 source is no longer read (the step has its
        own copy)."""
        dtype = dtype or "float32"
        if dtype not in PRECISIONS:
            raise NativeBuildError(f"unknown dtype {dtype!r} for the native step (available: {', '.join(PRECISIONS)})")
        if info.architecture != "rwkv7":
            raise NativeBuildError(f"the native step runs RWKV-7 only, not {info.architecture}")
        if config.head_size > MAX_HEAD:
            raise NativeBuildError(f"the native step takes head sizes up to {MAX_HEAD}, not {config.head_size}")
        self.library = library if isinstance(library, Library) else open_library(library)
        self._sequence, self._scan = self.library.sequence, self.library.scan
        self.tokenizer, self.info, self.dtype = tokenizer, info, dtype
        self.state_class, self._shapes, self._fills = state_layout("rwkv7", config.n_embd, config.head_size)
        self.tokens_processed = 0
        self._threads = threads
        take = getattr(weights, "pop", weights.__getitem__)  # a matrix's source is not held here once taken
        shape = getattr(weights, "shape", lambda key: weights[key].shape)  # without converting (Float32Arrays)
        ffn_width = shape("blocks.0.ffn.key.weight")[0]
        self._keep = []  # every array whose memory the C step reads
        # A narrow-typed step reads prompts too (all of a chunk's tokens in each product): the float32 matrices
        # can go as they are converted; a float32 step reads the model's own, and torch reads prompts there.
        self.reads_prompts = dtype != "float32" if reads_prompts is None else reads_prompts
        self.converted_bytes = 0  # memory held by converted copies (a float32 step: its head's, if copied)
        self.in_place_bytes = 0  # the float32 arrays read where they are (vectors; float32 matrices)
        self.scans_prompts = False  # torch's prompts take the C scan (of_torch_model)
        threads = max(1, self._threads())
        mapped = file_mappings()  # where a memory-mapped model file lies (read once)
        every = [("head.weight", OUT_IN)] + [(f"blocks.{i}.{name}", layout) for i in range(config.n_layer)
                                             for name, layout in LAYER_MATRICES] + [("emb.weight", OUT_IN)]
        # A float32 step that reads prompts too (a native engine: no torch reads the model's matrices) copies them into
        # blocks as well, the file's pages dropped: read as one stream, 1.2-1.4x (one row) and 1.3-1.6x (4 rows) faster
        # steps and 1.6x faster prompts than in the model's own layout, in the same memory. The embedding stays in
        # place (a token's row at a time).
        f32_blocks = dtype == "float32" and self.reads_prompts

        def in_blocks(key) -> bool:  # a converted copy in blocks (carved from the arena), or read in place
            if dtype != "float32":
                return True
            if key == "head.weight":
                return FLOAT32_HEAD_IN_BLOCKS
            return f32_blocks and key != "emb.weight"

        arena = WeightArena(sum(stored_bytes(shape(key), layout, dtype) for key, layout in every
                                if key in weights and in_blocks(key)))

        def matrix(key, layout):
            source = take(key)
            # once converted, no one reads the source: its pages read from a mapped file go part by part
            unread = self.reads_prompts or key == "head.weight"
            release = (lambda part: release_file_pages(part, mapped)) if unread else None
            stored = BLOCKS if in_blocks(key) else layout
            found, arrays = convert_matrix(self.library, source, layout, dtype, key, threads, stored, arena, release)
            self._keep.extend(arrays)
            if found.data != address_and_size(source)[0]:  # a converted copy, not the source
                self.converted_bytes += matrix_bytes(arrays)
                if converted is not None and unread:
                    converted(key)
            else:
                self.in_place_bytes += matrix_bytes(arrays)
            return found

        # the head first, in blocks (float32 too: a copy), so that a torch model's float32 head can go before
        # the layers are converted
        self.head = matrix("head.weight", OUT_IN)
        matrices = []
        for i in range(config.n_layer):
            for name, layout in LAYER_MATRICES:
                key = f"blocks.{i}.{name}"
                matrices.append(matrix(key, layout) if key in weights else Matrix())
        # the embedding's rows as the matrices' type (a narrow step: the float32 one can go), read a token's row
        # at a time
        embedding = matrix("emb.weight", OUT_IN)
        self._matrices = (Matrix * (len(matrices) + 2))(*matrices, self.head, embedding)

        def pointer(tensor) -> int:
            array = tensor if isinstance(tensor, np.ndarray) else tensor.numpy()  # the array's own memory
            if array.dtype != np.float32 or not array.flags.c_contiguous:
                raise NativeBuildError("the native step reads contiguous float32 vectors")
            self._keep.append(array)
            self.in_place_bytes += array.nbytes
            return array.ctypes.data

        layer_pointers = []
        for i in range(config.n_layer):
            for name in LAYER_VECTORS:
                key = f"blocks.{i}.{name}"
                layer_pointers.append(pointer(weights[key]) if key in weights else 0)  # layer 0 has no v0
        self._layers = (ctypes.c_void_p * len(layer_pointers))(*layer_pointers)
        self._globals = (ctypes.c_void_p * len(GLOBAL_VECTORS))(*(pointer(weights[k]) for k in GLOBAL_VECTORS))
        value_width = config.d_value if config.n_layer > 1 else 0
        self._sizes = np.array([config.n_layer, config.n_embd, config.head_size, config.vocab_size, config.d_decay,
                                config.d_iclr, value_width, config.d_gate, ffn_width], dtype=np.int64)

    @classmethod
    def of_torch_model(cls, library, model, tokenizer, info: EngineInfo, dtype: str = "float32") -> "NativeStep":
        """The C step of a float32 CPU torch RWKV-7 (models.rwkv7.RWKV7), torch+native's decode step. Its head is
        replaced by the step's copy (native_head; for float32 while FLOAT32_HEAD_IN_BLOCKS), so torch's prompts
        read that one too; a narrow-typed step frees the model's float32 matrices as it converts them. Its
        threads follow torch's (the studio sets how many the model may use)."""
        import torch

        weights = weights_of_torch_model(model)

        def freed(key):  # the model's float32 tensor, no longer read (the head: once replaced, below)
            if key != "head.weight":
                model.get_parameter(key).data = torch.empty(0)

        step = cls(library, model.config, weights, tokenizer, info, dtype, torch.get_num_threads, converted=freed)
        if step.head.data != model.head.weight.data_ptr():
            model.head = native_head(step.library, step.head, list(step._keep), step._threads)
        use_scan = getattr(model, "use_sequence_wkv", None)  # models.rwkv7_fused.FusedRWKV7
        step.scans_prompts = bool(use_scan and use_scan(step.sequence_wkv))  # False: scripted layers
        return step

    def kernels(self) -> str:
        """The compiled kernels' instruction sets ("portable" for the plain-C build)."""
        return self.library.kernels()

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
        position with full_output. T tokens go through the C step SEQUENCE_CHUNK at a time, every matrix
        product taken for all of a chunk's tokens at once. The given state is not modified.
        """
        batch = check_batch(token_lists, self.info.vocab_size)
        B, T = batch.shape
        state = self.zero_state(B) if state is None else self._checked(state, B)
        threads, every, V = max(1, self._threads()), [], self.info.vocab_size
        for start in range(0, T, SEQUENCE_CHUNK):
            tokens = np.ascontiguousarray(batch[:, start:start + SEQUENCE_CHUNK])
            chunk = tokens.shape[1]
            new = self.state_class(*(np.empty_like(a) for a in state))
            logits = np.empty((B, chunk, V) if full_output else (B, V), dtype=np.float32)
            if self._sequence(self._sizes.ctypes.data, self._globals, self._layers, self._matrices, B, chunk,
                              int(full_output), tokens.ctypes.data, *(a.ctypes.data for a in state),
                              *(a.ctypes.data for a in new), logits.ctypes.data, threads):
                raise MemoryError("the native step could not allocate its scratch memory")
            state = new
            every.append(logits)
        self.tokens_processed += batch.size
        return (np.concatenate(every, axis=1) if full_output else every[-1]), state
