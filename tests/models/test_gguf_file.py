"""models/gguf_file.py: llama.cpp RWKV-7 GGUF files (written by backends/files/gguf_write.py, or rebuilt with the
gguf package's own reader and writer) read back as BlinkDL's state dict; bad files get one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gguf
from ai_writer.backends.files.gguf_write import write_gguf
from ai_writer.models.checkpoint import ModelFileError
from ai_writer.models.gguf_file import gguf_summary, read_gguf_weights, unescape_rwkv_token
from ai_writer.models.gguf_header import read_header
from tests.gguf_helpers import copy_gguf
from tests.helpers import random_rwkv7_weights, rwkv7_logits

LAYER0_VALUE_MIX = {"blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"}  # not in a GGUF (llama.cpp's dummies)
SHAPES = {"2x64": (2, 64, 300), "3x128": (3, 128, 300)}
# max |logit difference| after a 64-token prompt and 16 steps (logits of magnitude ~4); measured on these shapes
# and seeds 0-2: F16 <= 3.1e-3, BF16 <= 2.5e-2, Q8_0 <= 7.4e-2
LOGIT_TOLERANCE = {"f32": 1e-5, "f16": 1e-2, "bf16": 6e-2, "q8_0": 0.2}


@pytest.fixture(scope="module", params=list(SHAPES))
def model(request):
    """(weights, the plain model's logits) of one random RWKV-7."""
    weights = random_rwkv7_weights(*SHAPES[request.param], seed=1)
    return weights, rwkv7_logits(weights)


def stored_f32(name, tensor) -> bool:
    """Whether llama.cpp's converter keeps this tensor F32 in an F16/BF16/Q8_0 file: the vectors and norms
    (r_k and the (1, 1, C) mixes among them, stored flat), the decay LoRA w1/w2, the fused token-shift mixes."""
    return tensor.dim() < 2 or tensor.shape[:2] == (1, 1) or name.endswith((".w1", ".w2", ".r_k"))


def one_line_naming(exc_info, path) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and str(path) in message, message
    return message


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16", "q8_0"])
def test_round_trip_logits(tmp_path, model, dtype):
    weights, expected = model
    read = read_gguf_weights(write_gguf(weights, tmp_path / f"m-{dtype}.gguf", dtype=dtype))
    assert set(read) == set(weights) - LAYER0_VALUE_MIX
    assert all(read[k].shape == weights[k].shape and read[k].is_contiguous() for k in read)
    difference = (rwkv7_logits(read) - expected).abs().max().item()
    assert difference <= LOGIT_TOLERANCE[dtype], difference


def test_f32_tensors_are_identical(tmp_path, model):
    weights, _ = model
    read = read_gguf_weights(write_gguf(weights, tmp_path / "m.gguf"))
    assert all(read[k].dtype == torch.float32 and torch.equal(read[k], weights[k]) for k in read)


@pytest.mark.parametrize("dtype, torch_dtype", [("f16", torch.float16), ("bf16", torch.bfloat16)])
def test_half_tensors_keep_their_type(tmp_path, dtype, torch_dtype):
    weights = random_rwkv7_weights(2, 64, 300, seed=3)
    read = read_gguf_weights(write_gguf(weights, tmp_path / "m.gguf", dtype=dtype))
    for name, tensor in read.items():
        # llama.cpp's converter keeps vectors, norms, the decay LoRA and the token-shift mixes in F32
        kept = stored_f32(name, tensor)
        assert tensor.dtype == (torch.float32 if kept else torch_dtype), name
        assert torch.equal(tensor, weights[name].to(tensor.dtype)), name


def test_q8_0_within_its_block_scale(tmp_path):
    """Q8_0 stores each run of 32 values as int8 times an fp16 scale absmax/127: the error is at most half a
    step (plus the scale's fp16 rounding)."""
    weights = random_rwkv7_weights(2, 64, 300, seed=4)
    path = write_gguf(weights, tmp_path / "m.gguf", dtype="q8_0")
    types = gguf_summary(path).tensor_types
    assert types["blk.0.time_mix_key.weight"] == "Q8_0" and types["token_embd.weight"] == "Q8_0"
    assert types["blk.0.time_mix_w1.weight"] == "F32" and types["blk.0.time_mix_lerp_fused.weight"] == "F32"
    read = read_gguf_weights(path)
    quantized = 0
    for name, tensor in read.items():
        source = weights[name]
        if stored_f32(name, tensor):
            assert torch.equal(tensor, source), name  # stored F32
            continue
        # the blocks run along the GGUF rows: the last axis of the stored (numpy) array
        stored = source.t() if name.endswith(("1", "2")) and ".att." in name else source
        step = stored.reshape(-1, 32).abs().amax(dim=1, keepdim=True) / 127
        got = (tensor.t() if stored is not source else tensor).reshape(-1, 32)
        error = (got - stored.reshape(-1, 32)).abs()
        assert (error <= 0.6 * step + 1e-12).all(), name
        assert not torch.equal(tensor, source)
        quantized += 1
    assert quantized >= 12


def test_summary_reads_the_header(tmp_path):
    path = write_gguf(random_rwkv7_weights(3, 128, 300), tmp_path / "m.gguf", dtype="f16")
    summary = gguf_summary(path)
    assert (summary.architecture, summary.n_layer, summary.n_embd, summary.vocab_rows) == ("rwkv7", 3, 128, 300)
    assert summary.tensor_types["token_embd.weight"] == "F16" and summary.tensor_types["output_norm.bias"] == "F32"
    assert len(summary.tensor_types) == 6 + 3 * 28
    assert summary.tokenizer_model == "rwkv"
    assert summary.tokens == [f"[PAD{i}]".encode() for i in range(300)] and summary.vocabulary == "none"


def test_world_vocabulary(tmp_path):
    """A 65536-row model gets the World vocabulary, which the summary recognises (tokenizer 'rwkv', ids 1..65529)."""
    from ai_writer.models.world_tokenizer import default_vocab_path, read_world_vocab

    summary = gguf_summary(write_gguf(random_rwkv7_weights(1, 64, 65536), tmp_path / "world.gguf"))
    world = read_world_vocab(default_vocab_path())
    assert summary.vocabulary == "world" and summary.vocab_rows == 65536 and len(summary.tokens) == 65536
    assert summary.tokens[0] == b"<s>" and summary.tokens[65530:] == [f"[PAD{i}]".encode() for i in range(65530, 65536)]
    assert all(summary.tokens[i] == world[i] for i in (11, 93, 261, 379, 65529))
    fields = read_header(summary.path).fields
    assert fields["tokenizer.ggml.bos_token_id"] == 0 and fields["tokenizer.ggml.eot_token_id"] == 261
    assert fields["tokenizer.chat_template"] == "rwkv-world"


def test_own_token_list(tmp_path):
    """Tokens given to the writer come back byte for byte, quotes, backslashes and invalid UTF-8 included."""
    tokens = ["\n", "。", "'", '"\'', "\\", "\\x41", "a\tb\r"] + [bytes([0xE4]), bytes([0xFF, 0x00])] + [chr(0x4E00 + i) for i in range(280)]
    summary = gguf_summary(write_gguf(random_rwkv7_weights(2, 64, 300), tmp_path / "m.gguf", tokens=tokens))
    expected = [t.encode() if isinstance(t, str) else t for t in tokens]
    assert summary.tokens[: len(tokens)] == expected and summary.vocabulary == "own"
    assert summary.tokens[len(tokens):] == [f"[PAD{i}]".encode() for i in range(len(tokens), 300)]


def test_unescape_matches_python_bytes_repr():
    for token in (b"\\n", b"\xe4\xb8\x80", b"\\\\x41", b"'\"", bytes(range(256))):
        assert unescape_rwkv_token(repr(token)[2:-1].encode()) == token
    assert unescape_rwkv_token(b"\\xZZ") == b"xZZ"  # not hex: the escaped char itself, never an error


def test_header_parser_agrees_with_gguf_reader(tmp_path):
    path = write_gguf(random_rwkv7_weights(2, 64, 300), tmp_path / "m.gguf", dtype="q8_0", tokens=["a", "\\", "\n"])
    header, reader = read_header(path), gguf.GGUFReader(path)
    fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert list(header.fields) == list(fields)
    for key, field in fields.items():
        if field.types[0] == gguf.GGUFValueType.ARRAY and field.types[-1] == gguf.GGUFValueType.STRING:
            assert header.fields[key] == [bytes(field.parts[i]) for i in field.data], key
        else:
            assert header.fields[key] == field.contents(), key
    assert [(t.name, t.type_id, t.shape, t.offset, t.n_bytes) for t in header.tensors] == [
        (t.name, int(t.tensor_type), tuple(reversed(t.shape.tolist())), t.data_offset, t.n_bytes) for t in reader.tensors]


def rewrite(src, dst, arch=None, drop=(), retype=None):
    """src rewritten: another architecture name, tensors left out, or some tensors stored in another type (F32 ones
    quantized)."""

    def tensors_of(tensors):
        for tensor in tensors:
            if tensor.name in drop:
                continue
            kind = (retype or {}).get(tensor.name)
            if kind is None:
                yield tensor.name, np.array(tensor.data), tensor.tensor_type
            else:
                yield tensor.name, gguf.quants.quantize(np.array(tensor.data), kind), kind

    return copy_gguf(src, dst, tensors_of, arch)


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory):
    return write_gguf(random_rwkv7_weights(2, 64, 300, seed=5), tmp_path_factory.mktemp("gguf") / "small.gguf")


def test_rewritten_file_reads_the_same(tmp_path, small_gguf):
    """The rebuilding helper below keeps a file readable as it was (so what the error tests change is all they change)."""
    copy = read_gguf_weights(rewrite(small_gguf, tmp_path / "copy.gguf"))
    original = read_gguf_weights(small_gguf)
    assert all(torch.equal(copy[k], original[k]) for k in original) and set(copy) == set(original)


def test_unsupported_quantization_is_one_line(tmp_path, small_gguf):
    path = rewrite(small_gguf, tmp_path / "q4.gguf", retype={"blk.1.channel_mix_key.weight": gguf.GGMLQuantizationType.Q4_0})
    assert gguf_summary(path).tensor_types["blk.1.channel_mix_key.weight"] == "Q4_0"
    with pytest.raises(ModelFileError) as info:
        read_gguf_weights(path)
    message = one_line_naming(info, path)
    assert "blk.1.channel_mix_key.weight" in message and "Q4_0" in message


def test_other_architecture_is_one_line(tmp_path, small_gguf):
    path = rewrite(small_gguf, tmp_path / "llama.gguf", arch="llama")
    assert gguf_summary(path).architecture == "llama"  # the summary says what it is; reading refuses it
    with pytest.raises(ModelFileError) as info:
        read_gguf_weights(path)
    assert "'llama'" in one_line_naming(info, path)


def test_missing_tensor_is_one_line(tmp_path, small_gguf):
    path = rewrite(small_gguf, tmp_path / "missing.gguf", drop={"blk.1.time_mix_r_k.weight"})
    with pytest.raises(ModelFileError) as info:
        read_gguf_weights(path)
    assert "blk.1.time_mix_r_k.weight" in one_line_naming(info, path)


@pytest.mark.parametrize("where", ["data", "header", "start"])
def test_truncated_file_is_one_line(tmp_path, small_gguf, where):
    """Cut inside the tensor data, inside the header (in the token list), and after 10 bytes."""
    data = small_gguf.read_bytes()
    data_start = read_header(small_gguf).tensors[0].offset
    cut = {"data": (data_start + len(data)) // 2, "header": data_start // 2, "start": 10}[where]
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[:cut])
    with pytest.raises(ModelFileError) as info:
        read_gguf_weights(path)
    one_line_naming(info, path)
    if where != "data":
        with pytest.raises(ModelFileError) as info:
            gguf_summary(path)
        one_line_naming(info, path)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not a gguf at all" * 4, b"GGUF\x07\x00\x00\x00" + bytes(40)])
def test_not_a_gguf_is_one_line(tmp_path, content):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    for read in (read_gguf_weights, gguf_summary):
        with pytest.raises(ModelFileError) as info:
            read(path)
        one_line_naming(info, path)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(ModelFileError) as info:
        read_gguf_weights(tmp_path / "none.gguf")
    one_line_naming(info, tmp_path / "none.gguf")
