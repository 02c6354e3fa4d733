"""backends/files/gguf_write.py: the file holds llama.cpp's RWKV-7 layout and metadata, checked here through the
gguf package's own reader (independent of models/gguf_file.py, which the round trips in tests/models use)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gguf
from ai_writer.backends.errors import LoadError
from ai_writer.backends.files.gguf_write import write_gguf
from tests.gguf_helpers import stored
from tests.helpers import random_rwkv7_weights


@pytest.fixture(scope="module")
def weights():
    return random_rwkv7_weights(3, 128, 300, seed=11)


def test_llamacpp_tensor_layout(tmp_path, weights):
    tensors, _ = stored(write_gguf(weights, tmp_path / "m.gguf"))
    C, V = 128, 300
    assert tensors["token_embd.weight"][1] == [C, V]  # ggml lists dimensions innermost first
    lerp = tensors["blk.2.time_mix_lerp_fused.weight"]
    assert lerp[1] == [C, 1, 1, 6]
    for i, x in enumerate("rwkvag"):  # llama.cpp's views into the fused tensor, in this order
        assert np.array_equal(lerp[2][i, 0, 0], weights[f"blocks.2.att.x_{x}"].reshape(-1).numpy()), x
    for p in "wavg":
        assert np.array_equal(tensors[f"blk.1.time_mix_{p}1.weight"][2], weights[f"blocks.1.att.{p}1"].t().numpy())
        assert np.array_equal(tensors[f"blk.1.time_mix_{p}2.weight"][2], weights[f"blocks.1.att.{p}2"].t().numpy())
    assert np.array_equal(tensors["blk.1.time_mix_w0.weight"][2], weights["blocks.1.att.w0"].reshape(-1).numpy())
    # layer 0 has no value-residual mix: llama.cpp's loader wants v0/v1/v2 there, of the iclr rank, unused
    for n in "012":
        assert np.array_equal(tensors[f"blk.0.time_mix_v{n}.weight"][2], tensors[f"blk.0.time_mix_a{n}.weight"][2])
    assert tensors["blk.0.time_mix_r_k.weight"][1] == [C]
    assert np.array_equal(tensors["blk.0.time_mix_r_k.weight"][2], weights["blocks.0.att.r_k"].reshape(-1).numpy())
    assert np.array_equal(tensors["blk.2.time_mix_receptance.weight"][2], weights["blocks.2.att.receptance.weight"].numpy())
    assert np.array_equal(tensors["blk.2.channel_mix_key.weight"][2], weights["blocks.2.ffn.key.weight"].numpy())
    assert np.array_equal(tensors["blk.0.time_mix_ln.bias"][2], weights["blocks.0.att.ln_x.bias"].numpy())
    assert np.array_equal(tensors["token_embd_norm.weight"][2], weights["blocks.0.ln0.weight"].numpy())
    # every tensor llama.cpp's RWKV-7 loader creates, and no other
    names = {gguf.TENSOR_NAMES[t] for t in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.RWKV7]}
    expected = {n + ".weight" for n in names if "{bid}" not in n} | {
        n.format(bid=i) + ".weight" for n in names if "{bid}" in n for i in range(3)}
    expected |= {n.replace(".weight", ".bias") for n in expected if "norm" in n or "time_mix_ln" in n}
    assert set(tensors) == expected


def test_llamacpp_metadata(tmp_path, weights):
    _, fields = stored(write_gguf(weights, tmp_path / "m.gguf", name="tiny"))
    assert fields["general.architecture"] == "rwkv7" and fields["general.name"] == "tiny"
    assert fields["rwkv7.context_length"] == 1048576 and fields["rwkv7.embedding_length"] == 128
    assert fields["rwkv7.block_count"] == 3 and fields["rwkv7.feed_forward_length"] == 512
    assert fields["rwkv7.wkv.head_size"] == 64 and fields["rwkv7.attention.head_count"] == 0
    assert abs(fields["rwkv7.attention.layer_norm_epsilon"] - 1e-5) < 1e-12
    ranks = {k: weights[f"blocks.1.att.{p}1"].shape[1] for k, p in
             [("decay", "w"), ("iclr", "a"), ("value_residual_mix", "v"), ("gate", "g")]}
    assert all(fields[f"rwkv7.attention.{k}_lora_rank"] == r for k, r in ranks.items())
    assert fields["tokenizer.ggml.model"] == "rwkv" and fields["general.file_type"] == int(gguf.LlamaFileType.ALL_F32)
    assert fields["general.quantization_version"] == gguf.GGML_QUANT_VERSION
    assert "tokenizer.ggml.bos_token_id" not in fields  # no World vocabulary, no special ids


@pytest.mark.parametrize("dtype, kind, file_type", [
    ("f16", "F16", gguf.LlamaFileType.MOSTLY_F16), ("bf16", "BF16", gguf.LlamaFileType.MOSTLY_BF16),
    ("q8_0", "Q8_0", gguf.LlamaFileType.MOSTLY_Q8_0)])
def test_types_as_llamacpp_converter(tmp_path, weights, dtype, kind, file_type):
    tensors, fields = stored(write_gguf(weights, tmp_path / "m.gguf", dtype=dtype))
    assert fields["general.file_type"] == int(file_type)
    for name, (stored_kind, shape, _) in tensors.items():
        f32 = len(shape) == 1 or name.endswith(("time_mix_w1.weight", "time_mix_w2.weight", "time_mix_lerp_fused.weight"))
        assert stored_kind == ("F32" if f32 else kind), name


def test_q8_0_falls_back_to_f16_for_odd_rows(tmp_path):
    """A matrix whose rows are not whole 32-value blocks (a gate LoRA 48 wide: g2 is stored (64, 48)) is
    written F16, as llama.cpp's converter does."""
    from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights

    model = init_weights(RWKV7(RWKV7Config(2, 64, 300, d_gate=48)), seed=0)
    tensors, _ = stored(write_gguf(model.state_dict(), tmp_path / "m.gguf", dtype="q8_0"))
    assert tensors["blk.1.time_mix_g1.weight"][0] == "Q8_0"  # stored (48, 64): rows of 64
    assert tensors["blk.1.time_mix_g2.weight"][0] == "F16"  # stored (64, 48): rows of 48


def test_refuses_what_it_cannot_write(tmp_path, weights):
    with pytest.raises(LoadError, match="GGUF type 'q4_0'"):
        write_gguf(weights, tmp_path / "m.gguf", dtype="q4_0")
    with pytest.raises(LoadError, match="only RWKV-7"):
        write_gguf({"emb.weight": torch.zeros(3, 4)}, tmp_path / "m.gguf")
    with pytest.raises(LoadError, match="301 tokens for a model of 300 token rows"):
        write_gguf(weights, tmp_path / "m.gguf", tokens=["x"] * 301)
    with pytest.raises(LoadError, match="cannot write it"):
        write_gguf(weights, tmp_path / "no-such-folder" / "m.gguf")
    assert not list(tmp_path.rglob("*.gguf*"))  # nothing half-written left behind
