"""The C step's reduced-precision weights (backends.engines.native_step: float16, bfloat16, int8) against float32.

Conversions are checked bit for bit (float16 / bfloat16 against torch's rounding, int8 against its formula);
each kernel's product against numpy on the same converted weights, on odd sizes (every remainder loop) and 1
to 6 rows; the whole step at each precision against the float32 step, B = 1 and B = 4 rows, within
native_step.TOLERANCES; the portable plain-C build (-DRWKV7_PORTABLE) against the optimised one; and the
selection: dtype int8 on torch+native runs the C step (its head too, for prompts), AI_WRITER_NATIVE_PORTABLE
gets the portable kernels, a bad dtype or one the backend cannot run is one clear line.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

from ai_writer.backends import LoadError, load
from ai_writer.backends.engines import native_step
from ai_writer.backends.engines.base import EngineInfo
from ai_writer.backends.engines.native_step import (BLOCKS, IN_OUT, OUT_IN, TOLERANCES, Matrix, NativeBuildError, NativeStep,
                                                    convert_matrix, native_possible, open_library)
from ai_writer.backends.selection import Why
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights
from ai_writer.models.rwkv7_fused import prepare_for_inference
from tests.helpers import cjk_chars, random_rwkv7_weights, write_model_with_chars

pytestmark = pytest.mark.skipif(not native_possible(), reason="needs a C compiler (CI has gcc)")

REDUCED = ("float16", "bfloat16", "int8")
# Vocabularies and LoRA widths that are no multiple of 4, 16 or 64: every remainder loop runs.
CONFIGS = {"plain": RWKV7Config(2, 128, 300),
           "odd widths": RWKV7Config(3, 128, 1001, d_decay=40, d_iclr=24, d_value=20, d_gate=36)}


@pytest.fixture(scope="module")
def libraries():
    """{"optimised": Library, "portable": Library} (each built once, then found in the cache)."""
    found = {"optimised": open_library(native_step.build_library(portable=False)),
             "portable": open_library(native_step.build_library(portable=True))}
    assert found["portable"].kernels() == "portable" and found["optimised"].kernels() != "portable"
    return found


@pytest.fixture(params=["optimised", "portable"])
def library(request, libraries):
    return libraries[request.param]


def each_kernel(request, libraries, switch: str, missing: str):
    """The kernel request.param of the library switch `switch` (int8_kernel, bf16_kernel); skipped where this CPU's
    build lacks it; the default restored after."""
    set_kernel = getattr(libraries["optimised"], switch)
    before = set_kernel()
    if set_kernel(request.param) != request.param:
        pytest.skip(missing)
    yield request.param
    set_kernel(before)


@pytest.fixture(params=[0, 1], ids=["int8 to float32", "int8 activations"])
def int8_kernel(request, libraries):
    """Each int8 kernel in turn (the VNNI one only where this CPU's build has it)."""
    yield from each_kernel(request, libraries, "int8_kernel", "this build has no AVX-512 VNNI kernel")


def max_error(found, reference) -> float:
    found, reference = np.asarray(found, np.float64), np.asarray(reference, np.float64)
    return float(np.abs(found - reference).max() / max(1.0, np.abs(reference).max()))


def run_matmul(library, matrix: Matrix, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    y = np.empty((x.shape[0], matrix.n_out), np.float32)
    library.matmul(x.ctypes.data, ctypes.byref(matrix), y.ctypes.data, x.shape[0], 2)
    return y


def from_blocks(data: np.ndarray) -> np.ndarray:
    """The (out, in) rows of a narrow-type (out, in) matrix stored in 4-row blocks of cache lines (rwkv7_matrix.h)."""
    n_out, n_in = data.shape
    line, flat = 64 // data.itemsize, data.reshape(-1)
    lines = n_in // line
    rows = np.empty_like(data)
    for b in range(n_out // 4):
        block = flat[4 * b * n_in:4 * (b + 1) * n_in]
        body = block[:4 * lines * line].reshape(lines, 4, line)  # [line][row in the block][element]
        rows[4 * b:4 * b + 4, :lines * line] = body.transpose(1, 0, 2).reshape(4, lines * line)
        rows[4 * b:4 * b + 4, lines * line:] = block[4 * lines * line:].reshape(4, n_in - lines * line)
    whole = n_out // 4 * 4
    rows[whole:] = flat[whole * n_in:].reshape(-1, n_in)
    return rows


def dequantised(arrays, dtype: str, layout: int) -> np.ndarray:
    """The (out, in) float64 weights a converted matrix (stored in `layout`) stands for."""
    data = from_blocks(arrays[0]) if layout == BLOCKS else arrays[0]
    if dtype == "float32":
        w = data.astype(np.float64)
    elif dtype == "float16":
        w = data.view(np.float16).astype(np.float64)
    elif dtype == "bfloat16":
        w = (data.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    else:
        w = data.astype(np.float64)
    w = w if layout == BLOCKS else w.T
    return w * arrays[1][:, None] if dtype == "int8" else w


# -- conversions ---------------------------------------------------------------------------------


TRICKY = np.array([0.0, -0.0, 1.0, -2.5, 1e-8, -3e-7, 6.1e-5, 5.96e-8, 2.98e-8, 65504.0, 65519.0, -65519.0,
                   1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 3.3895e38, 1.17549e-38,
                   np.pi, -np.e, 0.1, 1234.5678], dtype=np.float32)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("layout", [OUT_IN, IN_OUT])
def test_16_bit_conversion_rounds_as_torch_does(library, dtype, layout):
    values = np.concatenate([TRICKY, np.random.default_rng(0).normal(0, 3, 7 * 101).astype(np.float32)])
    values = values[np.abs(values) < (65520 if dtype == "float16" else 3.39e38)][:7 * 101]
    source = torch.from_numpy(values.copy()).reshape(7, 101)  # blocks of 4 rows, 3 rows after them; 101 % 32 == 5
    matrix, arrays = convert_matrix(library, source, layout, dtype)
    rows = source if layout == OUT_IN else source.T.contiguous()  # (out, in): an (in, out) source is transposed
    expected = rows.to(getattr(torch, dtype)).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(from_blocks(arrays[0]), expected)
    assert matrix.layout == BLOCKS  # every narrow matrix, the (in, out) LoRA ones too
    shape = (7, 101) if layout == OUT_IN else (101, 7)
    assert (matrix.n_out, matrix.n_in, matrix.type) == (*shape, native_step.PRECISIONS[dtype])


@pytest.mark.parametrize("dtype", REDUCED)
def test_narrow_weights_are_stored_in_blocks_only(library, dtype):
    lora = torch.zeros(64, 768)  # (in, out), as the LoRA matrices are
    with pytest.raises(NativeBuildError) as caught:
        convert_matrix(library, lora, IN_OUT, dtype, "blocks.0.att.w2", stored=IN_OUT)
    assert str(caught.value) == f"blocks.0.att.w2: the native step stores converted {dtype} weights in blocks only"
    out = np.empty((768, 64), np.float32)  # and the library itself converts to blocks only
    assert library.convert(lora.numpy().ctypes.data, native_step.PRECISIONS[dtype], IN_OUT, IN_OUT, 768, 64,
                           out.ctypes.data, None, None, 1) == -1


def test_values_that_do_not_fit_are_refused_in_one_line(library):
    too_big = torch.tensor([[1.0, 70000.0, -80000.0], [0.5, 0.25, 0.0]])
    with pytest.raises(NativeBuildError) as caught:
        convert_matrix(library, too_big, OUT_IN, "float16", "blocks.3.ffn.key.weight")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("blocks.3.ffn.key.weight: 2 weights") and "65504" in message
    convert_matrix(library, too_big, OUT_IN, "bfloat16")  # bfloat16 holds them
    with pytest.raises(NativeBuildError, match="1 weights are not finite"):
        convert_matrix(library, torch.tensor([[1.0, float("nan")]]), OUT_IN, "int8")


@pytest.mark.parametrize("layout", [OUT_IN, IN_OUT])
def test_int8_has_one_symmetric_scale_per_output_channel(library, layout):
    rng = np.random.default_rng(1)
    source = rng.normal(0, 1, (37, 53)).astype(np.float32)
    source[5] = 0.0  # an all-zero channel: scale 0, every value 0
    if layout == IN_OUT:
        source = np.ascontiguousarray(source.T)  # (in, out)
    matrix, arrays = convert_matrix(library, torch.from_numpy(source), layout, "int8")
    channels = source if layout == OUT_IN else source.T  # (out, in)
    top = np.abs(channels).max(axis=1)
    inv = np.divide(np.float32(127), top, out=np.zeros_like(top), where=top > 0)
    q = np.clip(np.rint(channels * inv[:, None]), -127, 127).astype(np.int8)
    assert matrix.layout == BLOCKS
    assert np.array_equal(from_blocks(arrays[0]), q)
    assert np.array_equal(arrays[1], (top / np.float32(127)).astype(np.float32))
    assert np.array_equal(arrays[2], q.astype(np.int32).sum(axis=1))
    assert np.abs(dequantised(arrays, "int8", matrix.layout) - channels).max() <= top.max() / 254 * 1.0001


@pytest.mark.parametrize("dtype", ["float32", *REDUCED])
def test_a_matrix_converted_part_by_part_is_the_whole_converted_at_once(library, dtype, monkeypatch):
    source = torch.from_numpy(np.random.default_rng(3).normal(0, 1, (37, 100)).astype(np.float32))
    _, whole = convert_matrix(library, source, OUT_IN, dtype, stored=BLOCKS)
    monkeypatch.setattr(native_step, "CONVERT_ROWS", 8)
    parts = []
    _, in_parts = convert_matrix(library, source, OUT_IN, dtype, stored=BLOCKS, converted=parts.append)
    assert all(np.array_equal(a, b) for a, b in zip(whole, in_parts)) and len(whole) == len(in_parts)
    assert [p.shape[0] for p in parts] == [8, 8, 8, 8, 5] and torch.equal(torch.cat(parts), source)


@pytest.mark.parametrize("dtype", ["float32", *REDUCED])
def test_a_row_of_a_converted_matrix_reads_back_as_float32(library, dtype):
    # the embedding's rows (rwkv7_matrix_row): in blocks, or float32 in place
    source = torch.from_numpy(np.random.default_rng(4).normal(0, 1, (39, 77)).astype(np.float32))
    row_of = ctypes.CDLL(str(library.path)).rwkv7_matrix_row
    row_of.argtypes, row_of.restype = [ctypes.POINTER(Matrix), ctypes.c_int, ctypes.c_void_p], None
    for stored in ([OUT_IN, BLOCKS] if dtype == "float32" else [BLOCKS]):
        matrix, arrays = convert_matrix(library, source, OUT_IN, dtype, stored=stored)
        weights = source.numpy() if matrix.layout == OUT_IN else dequantised(arrays, dtype, matrix.layout)
        for n in (0, 3, 4, 35, 36, 38):  # in a block, a block's last row, the rows after the blocks
            out = np.empty(77, np.float32)
            row_of(ctypes.byref(matrix), n, out.ctypes.data)
            assert max_error(out, weights[n]) <= 1e-6, (stored, n)


# -- the products -----------------------------------------------------------------------------------


SHAPES = [(4, 16), (301, 40), (37, 100), (64, 20), (1001, 128), (130, 771)]  # (n_out, n_in); 771 % 64 == 3


@pytest.mark.parametrize("dtype", ["float32", *REDUCED])
@pytest.mark.parametrize("layout, stored", [(OUT_IN, None), (IN_OUT, None), (OUT_IN, BLOCKS), (IN_OUT, BLOCKS)],
                         ids=["out-in", "in-out", "out-in in blocks", "in-out in blocks"])
def test_each_product_is_the_converted_weights_times_x(library, dtype, layout, stored):
    # int8 and bfloat16 weights widened to float32 (the kernels on narrow activations are checked below)
    before = library.int8_kernel(), library.bf16_kernel()  # read, then set (a set returns the new value)
    library.int8_kernel(0), library.bf16_kernel(0)
    try:
        check_products(library, dtype, layout, stored)
    finally:
        library.int8_kernel(before[0])
        library.bf16_kernel(before[1])


def check_products(library, dtype: str, layout: int, stored: int):
    rng = np.random.default_rng(2)
    for n_out, n_in in SHAPES:
        shape = (n_out, n_in) if layout == OUT_IN else (n_in, n_out)
        matrix, arrays = convert_matrix(library, torch.from_numpy(rng.normal(0, 1, shape).astype(np.float32)),
                                        layout, dtype, stored=stored)
        if dtype == "float32" and stored is None:  # the tensor itself, as it was given
            assert matrix.layout == layout and matrix.data == arrays[0].ctypes.data
            weights = arrays[0].astype(np.float64) if layout == OUT_IN else arrays[0].astype(np.float64).T
        else:  # the narrow types always go in blocks, (in, out) matrices too; float32 where asked
            assert matrix.layout == BLOCKS
            weights = dequantised(arrays, dtype, matrix.layout)
        for rows in (1, 3, 4, 6, 70):  # 70: two passes of 64 rows, the second with 6
            x = rng.normal(0, 1, (rows, n_in)).astype(np.float32)
            assert max_error(run_matmul(library, matrix, x), x.astype(np.float64) @ weights.T) <= 1e-5, (n_out, n_in, rows)


def test_the_vnni_kernel_is_int8_activations_times_int8_weights(libraries, int8_kernel):
    lib = libraries["optimised"]
    rng = np.random.default_rng(3)
    for n_out, n_in in SHAPES:
        matrix, (blocks, scale, _) = convert_matrix(
            lib, torch.from_numpy(rng.normal(0, 1, (n_out, n_in)).astype(np.float32)), OUT_IN, "int8")
        q = from_blocks(blocks)
        for rows in (1, 4, 5):
            x = rng.normal(0, 1, (rows, n_in)).astype(np.float32)
            if int8_kernel:  # what the kernel computes: x quantised per row, integer sums
                top = np.abs(x).max(axis=1)
                qx = np.rint(x * (np.float32(127) / top)[:, None]).astype(np.int64)
                expected = (qx @ q.astype(np.int64).T) * (top / np.float32(127))[:, None] * scale[None, :]
            else:
                expected = x.astype(np.float64) @ (q.astype(np.float64) * scale[:, None]).T
            assert max_error(run_matmul(lib, matrix, x), expected) <= 1e-5


def to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16 (ties to even), as float64."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32)
    return rounded.view(np.float32).astype(np.float64)


@pytest.fixture(params=[0, 1], ids=["bf16 to float32", "bf16 activations"])
def bf16_kernel(request, libraries):
    """Each bfloat16 kernel in turn (vdpbf16ps only where this CPU's build has it)."""
    yield from each_kernel(request, libraries, "bf16_kernel", "this build has no AVX-512 BF16 kernel")


def test_the_bf16_kernel_is_bf16_activations_times_bf16_weights(libraries, bf16_kernel):
    lib = libraries["optimised"]
    rng = np.random.default_rng(4)
    for n_out, n_in in [*SHAPES, (66, 95)]:  # 95 % 32 == 31: the masked tail; 66 % 4 == 2: plain rows
        matrix, arrays = convert_matrix(
            lib, torch.from_numpy(rng.normal(0, 1, (n_out, n_in)).astype(np.float32)), OUT_IN, "bfloat16")
        weights = dequantised(arrays, "bfloat16", matrix.layout)
        for rows in (1, 4, 5, 70):
            x = rng.normal(0, 1, (rows, n_in)).astype(np.float32)
            expected = (to_bf16(x) if bf16_kernel else x.astype(np.float64)) @ weights.T
            assert max_error(run_matmul(lib, matrix, x), expected) <= 1e-5, (n_out, n_in, rows)


# -- the step ------------------------------------------------------------------------------------------


def make_model(config: RWKV7Config):
    return prepare_for_inference(init_weights(RWKV7(config), seed=4, spread=1.6), script=False)


def make_step(library, config: RWKV7Config, dtype: str) -> NativeStep:
    info = EngineInfo("rwkv7", "torch+native", "cpu", "m", config.n_layer, config.n_embd, config.vocab_size)
    return NativeStep.of_torch_model(library, make_model(config), None, info, dtype)


def run(step: NativeStep, rows: int, vocab: int, steps: int = 8):
    """Logits and states of a 12-token prompt then `steps` single steps, all on the C step."""
    rng = np.random.default_rng(rows)
    logits, state = step.forward(rng.integers(0, vocab, size=(rows, 12)).tolist())
    out = [(logits, state)]
    for _ in range(steps):
        logits, state = step.forward(rng.integers(0, vocab, size=(rows, 1)).tolist(), state)
        out.append((logits, state))
    return out


@pytest.fixture(scope="module", params=list(CONFIGS))
def reference(request, libraries):
    """(config, {rows: the float32 step's run}) for one model."""
    config = CONFIGS[request.param]
    step = make_step(libraries["optimised"], config, "float32")
    return config, {rows: run(step, rows, config.vocab_size) for rows in (1, 4)}


@pytest.mark.parametrize("rows", [1, 4])
def test_float16_steps_are_float32_within_tolerance(libraries, reference, rows):
    check_against_float32(make_step(libraries["optimised"], reference[0], "float16"), reference[1][rows], "float16")


@pytest.mark.parametrize("rows", [1, 4])
def test_bfloat16_steps_are_float32_within_tolerance(libraries, reference, bf16_kernel, rows):
    check_against_float32(make_step(libraries["optimised"], reference[0], "bfloat16"), reference[1][rows], "bfloat16")


@pytest.mark.parametrize("rows", [1, 4])
def test_int8_steps_are_float32_within_tolerance(libraries, reference, int8_kernel, rows):
    check_against_float32(make_step(libraries["optimised"], reference[0], "int8"), reference[1][rows], "int8")


def check_against_float32(step: NativeStep, expected, dtype: str):
    found = run(step, len(expected[0][0]), step.info.vocab_size)
    logits = max(max_error(f[0], e[0]) for f, e in zip(found, expected))
    states = max(max_error(a, b) for f, e in zip(found, expected) for a, b in zip(f[1], e[1]))
    assert 0 < logits <= TOLERANCES[dtype] and states <= TOLERANCES[dtype], (logits, states)


@pytest.mark.parametrize("dtype", ["float32", *REDUCED])
def test_the_portable_build_computes_what_the_optimised_one_does(libraries, dtype):
    config = CONFIGS["odd widths"]
    optimised, portable = (make_step(libraries[name], config, dtype) for name in ("optimised", "portable"))
    lib = libraries["optimised"]
    before = lib.int8_kernel(), lib.bf16_kernel()  # read, then set (a set returns the new value)
    lib.int8_kernel(0), lib.bf16_kernel(0)  # the same arithmetic: narrow weights widened to float32
    try:
        for (a, sa), (b, sb) in zip(run(optimised, 4, config.vocab_size, 4), run(portable, 4, config.vocab_size, 4)):
            assert max_error(a, b) <= 1e-5 and max(max_error(x, y) for x, y in zip(sa, sb)) <= 1e-5
    finally:
        lib.int8_kernel(before[0])
        lib.bf16_kernel(before[1])


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_the_step_takes_over_the_head_and_frees_the_model_s(libraries, dtype):
    config = CONFIGS["plain"]
    model = make_model(config)
    head = model.head.weight.detach().clone()
    info = EngineInfo("rwkv7", "torch+native", "cpu", "m", config.n_layer, config.n_embd, config.vocab_size)
    step = NativeStep.of_torch_model(libraries["optimised"], model, None, info, dtype)
    assert "head.weight" not in model.state_dict() and step.dtype == dtype
    if dtype == "float32":  # the head's copy alone: the other matrices are read in place
        assert step.converted_bytes == head.numel() * 4
    else:  # every matrix the step reads and the embedding, a byte per weight, and the scales
        read = sum(p.numel() for name, p in make_model(config).named_parameters() if p.dim() == 2 and name not in (
            "blocks.0.att.v1", "blocks.0.att.v2") and not name.endswith("r_k"))
        assert read < step.converted_bytes < read * 1.1
        starts = sorted(m.data for m in step._matrices if m.data)  # one after another in one mapping (weight_arena)
        assert starts[-1] - starts[0] < step.converted_bytes
    x = torch.randn(2, 5, config.n_embd)
    assert model.head(x).shape == (2, 5, config.vocab_size)
    assert max_error(model.head(x).numpy(), (x @ head.T).numpy()) <= TOLERANCES[dtype] or 1e-5


# -- selection ------------------------------------------------------------------------------------------


VOCAB = 301
CHARS = cjk_chars(VOCAB)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return write_model_with_chars(tmp_path_factory.mktemp("precision"), random_rwkv7_weights(2, 128, VOCAB, seed=1,
                                                                                           spread=1.6), CHARS)


def test_dtype_int8_on_the_cpu_runs_prompts_and_steps_in_c_and_frees_the_model_s_float32_matrices(model_file):
    exact = load(model_file, backend="torch+native", device="cpu")
    engine = load(model_file, backend="torch+native", device="cpu", dtype="int8")  # auto: native (no torch model)
    assert engine.info.backend == "torch+native" and engine.decode_step.dtype == "int8"
    assert engine.selection.reason.why == Why.ASKED and engine.selection.reason.text().endswith("weights in int8")
    assert engine.decode_step.reads_prompts and not exact.decode_step.reads_prompts
    matrices = [name for name, p in exact.model.named_parameters()
                if p.dim() == 2 and not name.endswith("r_k")]  # r_k: a vector per head
    kept = dict(engine.model.named_parameters())
    assert "emb.weight" in matrices and all(kept[name].numel() == 0 for name in matrices if name in kept)  # freed
    prompt = [[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]]
    (ref, ref_state), (found, state) = exact.forward(prompt), engine.forward(prompt)  # torch; the C step
    assert 0 < max_error(found, ref) <= TOLERANCES["int8"]
    assert np.array_equal(found, engine.decode_step.forward(prompt)[0])
    for token in (20, 30, 40):
        ref, ref_state = exact.forward([[token], [token + 1]], ref_state)
        found, state = engine.forward([[token], [token + 1]], state)  # the C step
        assert 0 < max_error(found, ref) <= TOLERANCES["int8"]
    by_name = load(model_file, backend="torch+native", device="cpu", dtype="bfloat16")
    assert by_name.decode_step.dtype == "bfloat16" and by_name.selection.reason.text() == (
        "torch+native backend asked for; the decode step's weights in bfloat16")


def test_a_cpu_without_the_instructions_gets_the_portable_kernels(model_file, monkeypatch):
    monkeypatch.setenv(native_step.PORTABLE_ENV, "1")  # as -march=native on a CPU with none of them compiles
    engine = load(model_file, backend="torch+native", device="cpu", dtype="int8")
    assert engine.decode_step.kernels() == "portable"
    monkeypatch.delenv(native_step.PORTABLE_ENV)
    fast = load(model_file, backend="torch+native", device="cpu", dtype="int8")
    assert fast.decode_step.kernels() != "portable"
    before = fast.decode_step.library.int8_kernel()
    fast.decode_step.library.int8_kernel(0)  # the arithmetic the portable build does
    try:
        state = fast_state = None
        for tokens in ([[3, 4, 5]], [[6]], [[7]]):  # a prompt (torch with the C head), then two steps
            logits, state = engine.forward(tokens, state)
            expected, fast_state = fast.forward(tokens, fast_state)
            assert max_error(logits, expected) <= 1e-5
    finally:
        fast.decode_step.library.int8_kernel(before)


def test_a_bad_dtype_or_one_the_backend_cannot_run_is_one_clear_line(model_file, monkeypatch):
    with pytest.raises(LoadError) as caught:
        load(model_file, backend="auto", device="cpu", dtype="int4")
    assert str(caught.value) == "unknown dtype 'int4' (available: float32, float16, bfloat16, int8)"
    with pytest.raises(LoadError) as caught:
        load(model_file, backend="torch", device="cpu", dtype="int8")
    assert "\n" not in str(caught.value) and "torch+native and native backends only" in str(caught.value)
    monkeypatch.setattr(native_step, "find_compiler", lambda: None)  # auto then picks torch+onnx: no int8
    with pytest.raises(LoadError, match="runs on the torch[+]native and native backends only.*torch[+]onnx"):
        load(model_file, backend="auto", device="cpu", dtype="int8")
