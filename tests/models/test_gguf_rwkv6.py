"""RWKV-6 GGUF files (llama.cpp's architecture "rwkv6", models/gguf_rwkv6.py through models/gguf_file.py): random
x060 models written by backends/files/gguf_write.py read back tensor for tensor, and backends.load runs the .gguf as
it runs the BlinkDL .pth; files changed through the gguf package's own reader and writer get one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import gguf
from ai_writer.backends import LoadError, load
from ai_writer.backends.files.gguf_write import write_gguf
from ai_writer.models.checkpoint import ModelFileError
from ai_writer.models.gguf_file import gguf_summary, read_gguf_weights
from ai_writer.models.model_file import identify
from ai_writer.models.rwkv6 import RWKV6, RWKV6Config, init_weights
from ai_writer.models.world_tokenizer import WORLD_VOCAB_SIZE
from tests.helpers import write_checkpoint
from tests.gguf_helpers import copy_gguf

# (n_layer, n_embd, vocab, seed, spread, rescale_every): the second rescales every layer (write_gguf divides layer
# i's time_mix_output and channel_mix_value by 2^i), the first keeps the World models' 6, which 2 layers never reach
SHAPES = {"2x128": (2, 128, 300, 1, 1.0, None), "3x192": (3, 192, 300, 2, 3.0, 1)}
# max |logit difference| against the .pth after a 64-token prompt and each of 16 steps (logits of magnitude ~4),
# measured on these shapes, seeds 0-2, rescale_every 6 and 1: F32 0 (the same weights), F16 <= 3.5e-3,
# BF16 <= 2.9e-2, Q8_0 <= 8.3e-2
LOGIT_TOLERANCE = {"f32": 1e-5, "f16": 1e-2, "bf16": 6e-2, "q8_0": 0.2}


def random_rwkv6(n_layer, n_embd, vocab, seed=0, spread=1.0) -> dict:
    model = init_weights(RWKV6(RWKV6Config(n_layer, n_embd, vocab)), seed=seed, spread=spread)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def engine_logits(path, prompt, steps):
    """(engine, logits (1 + steps, V)): backends.load as the studio calls it, the prompt then one token a step."""
    engine = load(path, device="cpu")
    logits, state = engine.forward([prompt], None)
    rows = [logits[0]]
    for token in steps:
        logits, state = engine.forward([[token]], state)
        rows.append(logits[0])
    return engine, np.stack(rows)


@pytest.fixture(scope="module", params=list(SHAPES))
def case(request, tmp_path_factory):
    """(folder, weights, rescale_every, prompt, steps, the BlinkDL .pth's logits) of one random RWKV-6."""
    n_layer, n_embd, vocab, seed, spread, rescale = SHAPES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    (folder / "vocab.json").write_text(json.dumps({str(i): chr(0x4E00 + i) for i in range(vocab)}, ensure_ascii=False))
    weights = random_rwkv6(n_layer, n_embd, vocab, seed, spread)
    rng = np.random.default_rng(seed)
    prompt, steps = rng.integers(0, vocab, 64).tolist(), rng.integers(0, vocab, 16).tolist()
    engine, want = engine_logits(write_checkpoint(folder / "source.pth", weights), prompt, steps)
    assert engine.info.architecture == "rwkv6"
    return folder, weights, rescale, prompt, steps, want


def one_line_naming(exc_info, path) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_f32_round_trip_is_exact(case):
    folder, weights, rescale, *_ = case
    path = write_gguf(weights, folder / "exact.gguf", rescale_every=rescale)
    read = read_gguf_weights(path)
    assert set(read) == set(weights)
    for name, tensor in read.items():
        assert tensor.dtype == torch.float32 and tensor.is_contiguous(), name
        assert torch.equal(tensor, weights[name]), name


@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0"])
def test_backends_load_runs_the_gguf_as_the_pth(case, dtype):
    folder, weights, rescale, prompt, steps, want = case
    path = write_gguf(weights, folder / f"model-{dtype}.gguf", dtype=dtype, rescale_every=rescale)
    facts = identify(path)
    assert (facts.format, facts.architecture, facts.vocab_rows, facts.tokenizer_model) == ("gguf", "rwkv6", 300, "none")
    engine, got = engine_logits(path, prompt, steps)
    assert engine.info.architecture == "rwkv6" and engine.tokenizer_source == str(folder / "vocab.json")
    difference = np.abs(got - want).max()
    assert difference <= LOGIT_TOLERANCE[dtype], difference


def test_bf16_logits_within_tolerance(case):
    """BF16 through the model built from the weights read (build_model, as backends.load builds the files above)."""
    from ai_writer.models.checkpoint import build_model

    folder, weights, rescale, prompt, steps, want = case
    path = write_gguf(weights, folder / "model-bf16.gguf", dtype="bf16", rescale_every=rescale)
    model = build_model(read_gguf_weights(path), path, script=False)
    with torch.inference_mode():
        logits, state = model(torch.tensor([prompt]))
        rows = [logits[0]]
        for token in steps:
            logits, state = model.step(torch.tensor([token]), state)
            rows.append(logits[0])
    difference = np.abs(torch.stack(rows).numpy() - want).max()
    assert difference <= LOGIT_TOLERANCE["bf16"], difference


@pytest.mark.parametrize("dtype, torch_dtype", [("f16", torch.float16), ("bf16", torch.bfloat16)])
def test_half_tensors_keep_their_type(tmp_path, dtype, torch_dtype):
    """llama.cpp's converter keeps the vectors, norms, time_faaaa and the two LoRAs' matrices F32 (read exactly);
    the rest come back in the file's type, equal to the source cast to it (no rescaling in 2 layers)."""
    weights = random_rwkv6(2, 128, 300, seed=3)
    read = read_gguf_weights(write_gguf(weights, tmp_path / "m.gguf", dtype=dtype))
    kept = {"time_faaaa", "time_maa_w1", "time_maa_w2", "time_decay_w1", "time_decay_w2"}
    for name, tensor in read.items():
        f32 = weights[name].dim() == 1 or weights[name].shape[:2] == (1, 1) or name.rsplit(".", 1)[-1] in kept
        assert tensor.dtype == (torch.float32 if f32 else torch_dtype), name
        assert torch.equal(tensor, weights[name].to(tensor.dtype)), name


def test_rescaled_layers_read_back_exactly(tmp_path):
    """Seven layers at the World models' rescale_every 6: layer 6's output and value matrices are stored halved and
    read back exact, in F32 and in Q8_0 (the same values as a file without rescaling)."""
    weights = random_rwkv6(7, 64, 100, seed=6)
    path = write_gguf(weights, tmp_path / "seven.gguf")
    reader = gguf.GGUFReader(path)
    stored = {t.name: np.array(t.data) for t in reader.tensors}
    assert reader.fields["rwkv6.rescale_every_n_layers"].contents() == 6
    for gguf_name, name in (("time_mix_output", "att.output"), ("channel_mix_value", "ffn.value")):
        assert np.array_equal(stored[f"blk.5.{gguf_name}.weight"], weights[f"blocks.5.{name}.weight"].numpy())
        assert np.array_equal(stored[f"blk.6.{gguf_name}.weight"], weights[f"blocks.6.{name}.weight"].numpy() / 2)
    read = read_gguf_weights(path)
    assert all(torch.equal(read[k], weights[k]) for k in weights) and set(read) == set(weights)
    q8 = read_gguf_weights(write_gguf(weights, tmp_path / "q8.gguf", dtype="q8_0"))
    plain = read_gguf_weights(write_gguf(weights, tmp_path / "q8-plain.gguf", dtype="q8_0", rescale_every=0))
    assert all(torch.equal(q8[k], plain[k]) for k in weights)
    assert not torch.equal(q8["blocks.6.ffn.value.weight"], weights["blocks.6.ffn.value.weight"])  # quantized


def test_summary_reads_the_header(tmp_path):
    path = write_gguf(random_rwkv6(3, 192, 300), tmp_path / "m.gguf", dtype="q8_0")
    summary = gguf_summary(path)
    assert (summary.architecture, summary.n_layer, summary.n_embd, summary.vocab_rows) == ("rwkv6", 3, 192, 300)
    assert summary.tensor_types["blk.0.time_mix_key.weight"] == "Q8_0"
    assert summary.tensor_types["blk.0.time_mix_decay_w1.weight"] == "F32"
    assert len(summary.tensor_types) == 6 + 3 * 24
    assert summary.tokenizer_model == "rwkv" and summary.vocabulary == "none"


def test_world_vocabulary_model(tmp_path):
    """65,536 rows: the file carries the World vocabulary, the summary and identify say so, and the loader takes
    the World tokenizer for the .gguf as for the .pth, with the same logits."""
    weights = random_rwkv6(2, 64, WORLD_VOCAB_SIZE, seed=7)
    rng = np.random.default_rng(7)
    prompt, steps = rng.integers(0, WORLD_VOCAB_SIZE, 64).tolist(), rng.integers(0, WORLD_VOCAB_SIZE, 16).tolist()
    source, want = engine_logits(write_checkpoint(tmp_path / "world.pth", weights), prompt, steps)
    path = write_gguf(weights, tmp_path / "world.gguf")
    summary = gguf_summary(path)
    assert (summary.architecture, summary.vocabulary, summary.vocab_rows) == ("rwkv6", "world", WORLD_VOCAB_SIZE)
    facts = identify(path)
    assert (facts.architecture, facts.vocab_rows, facts.tokenizer_model) == ("rwkv6", WORLD_VOCAB_SIZE, "world")
    engine, got = engine_logits(path, prompt, steps)
    assert type(engine.tokenizer).__name__ == type(source.tokenizer).__name__ == "WorldTokenizer"
    assert engine.tokenizer.encode("第一章 风起\n") == source.tokenizer.encode("第一章 风起\n")
    assert np.abs(got - want).max() <= 1e-5


def rebuild(src, dst, change):
    """src written anew through the gguf package's reader and writer, each tensor replaced by change(name, data):
    a list of (name, numpy data) in the same GGML type (none: left out)."""
    return copy_gguf(src, dst, lambda tensors: ((name, data, tensor.tensor_type) for tensor in tensors
                                                for name, data in change(tensor.name, np.array(tensor.data))))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(weights, an F32 rwkv6 GGUF of them) with rescale_every 1, so the rebuilt files keep the metadata it needs."""
    weights = random_rwkv6(2, 128, 300, seed=5)
    return weights, write_gguf(weights, tmp_path_factory.mktemp("rwkv6") / "small.gguf", rescale_every=1)


def test_separate_token_shift_mixes_read_the_same(tmp_path, small):
    """Files of llama.cpp's earlier converter keep time_mix_lerp_w/k/v/r/g (C,) apart instead of the fused tensor."""
    weights, path = small

    def split(name, data):
        if not name.endswith("time_mix_lerp_fused.weight"):
            return [(name, data)]
        return [(name.replace("fused", x), data[j].reshape(-1)) for j, x in enumerate("wkvrg")]

    separate = rebuild(path, tmp_path / "separate.gguf", split)
    assert "blk.1.time_mix_lerp_r.weight" in gguf_summary(separate).tensor_types
    read = read_gguf_weights(separate)
    assert set(read) == set(weights) and all(torch.equal(read[k], weights[k]) for k in weights)


def test_missing_tensor_is_one_line(tmp_path, small):
    _, path = small
    gone = "blk.1.channel_mix_receptance.weight"  # RWKV-6's own (RWKV-7 has no channel-mix receptance)
    missing = rebuild(path, tmp_path / "missing.gguf", lambda name, data: [] if name == gone else [(name, data)])
    with pytest.raises(ModelFileError) as info:
        read_gguf_weights(missing)
    message = one_line_naming(info, missing)
    assert gone in message and "RWKV-6" in message
    (tmp_path / "vocab.json").write_text(json.dumps({str(i): chr(0x4E00 + i) for i in range(300)}, ensure_ascii=False))
    with pytest.raises(LoadError) as info:  # the loader says the same, after the vocabulary beside it was found
        load(missing, device="cpu")
    assert gone in one_line_naming(info, missing)


def test_misshapen_and_extra_tensors_are_one_line(tmp_path, small):
    _, path = small
    flat = rebuild(path, tmp_path / "flat.gguf", lambda name, data: [
        (name, data.reshape(data.shape[0] * data.shape[1], -1) if name == "blk.0.time_mix_w2.weight" else data)])
    with pytest.raises(ModelFileError) as info:
        read_gguf_weights(flat)
    assert "blk.0.time_mix_w2.weight" in one_line_naming(info, flat) and "RWKV-6's shapes" in str(info.value)
    extra = rebuild(path, tmp_path / "extra.gguf", lambda name, data: [(name, data)] + (
        [("blk.0.time_mix_k_k.weight", data)] if name == "blk.0.time_mix_decay.weight" else []))
    with pytest.raises(ModelFileError) as info:
        read_gguf_weights(extra)
    assert "blk.0.time_mix_k_k.weight" in one_line_naming(info, extra) and "RWKV-6 layout" in str(info.value)
