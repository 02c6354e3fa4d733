"""backends/files/gguf_write_rwkv6.py through write_gguf: the file holds llama.cpp's rwkv6 layout, shapes and metadata,
checked through the gguf package's own reader against llama.cpp's loader (src/models/rwkv6.cpp) and the converter
(class Rwkv6Model), independently of models/gguf_rwkv6.py, which the round trips in tests/models use."""

from __future__ import annotations

import numpy as np
import pytest

import gguf
from ai_writer.backends.errors import LoadError
from ai_writer.backends.files.gguf_write import write_gguf
from ai_writer.models.rwkv6 import RWKV6, RWKV6Config, init_weights
from tests.gguf_helpers import stored

C, L, V = 128, 3, 300
F, D_MIX, D_DECAY, N = 448, 32, 64, 64  # BlinkDL's defaults at n_embd 128: int(3.5 C) // 32 * 32, 32, 64, head 64


def random_rwkv6(n_layer=L, n_embd=C, vocab=V, seed=11, **config) -> dict:
    model = init_weights(RWKV6(RWKV6Config(n_layer, n_embd, vocab, **config)), seed=seed)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def weights():
    return random_rwkv6()


# ggml dimensions (innermost first) as llama.cpp's loader creates each rwkv6 tensor
LOADER_DIMS = {
    "token_embd.weight": [C, V], "token_embd_norm.weight": [C], "output_norm.weight": [C], "output.weight": [C, V],
    "blk.1.attn_norm.weight": [C], "blk.1.attn_norm_2.bias": [C],
    "blk.1.time_mix_w1.weight": [C, D_MIX * 5], "blk.1.time_mix_w2.weight": [D_MIX, C, 5],
    "blk.1.time_mix_lerp_x.weight": [C], "blk.1.time_mix_lerp_fused.weight": [C, 1, 1, 5],
    "blk.1.time_mix_first.weight": [N, C // N], "blk.1.time_mix_decay.weight": [C],
    "blk.1.time_mix_decay_w1.weight": [C, D_DECAY], "blk.1.time_mix_decay_w2.weight": [D_DECAY, C],
    "blk.1.time_mix_key.weight": [C, C], "blk.1.time_mix_gate.weight": [C, C], "blk.1.time_mix_output.weight": [C, C],
    "blk.1.time_mix_ln.weight": [C], "blk.1.channel_mix_lerp_k.weight": [C], "blk.1.channel_mix_lerp_r.weight": [C],
    "blk.1.channel_mix_key.weight": [C, F], "blk.1.channel_mix_value.weight": [F, C],
    "blk.1.channel_mix_receptance.weight": [C, C],
}


def test_llamacpp_tensor_layout(tmp_path, weights):
    tensors, _ = stored(write_gguf(weights, tmp_path / "m.gguf"))
    for name, dims in LOADER_DIMS.items():
        assert tensors[name][1] == dims, name
    a, g = "blocks.2.att.", "blk.2."
    lerp = tensors[g + "time_mix_lerp_fused.weight"][2]
    for j, x in enumerate("wkvrg"):  # llama.cpp's views xw, xk, xv, xr, xg, in this order
        assert np.array_equal(lerp[j, 0, 0], weights[f"{a}time_maa_{x}"].reshape(-1).numpy()), x
    assert np.array_equal(tensors[g + "time_mix_lerp_x.weight"][2], weights[a + "time_maa_x"].reshape(-1).numpy())
    assert np.array_equal(tensors[g + "time_mix_w1.weight"][2], weights[a + "time_maa_w1"].t().numpy())
    w2 = tensors[g + "time_mix_w2.weight"][2]  # (5, C, D): each of the five LoRA outputs transposed
    assert all(np.array_equal(w2[k], weights[a + "time_maa_w2"][k].t().numpy()) for k in range(5))
    assert np.array_equal(tensors[g + "time_mix_decay.weight"][2], weights[a + "time_decay"].reshape(-1).numpy())
    assert np.array_equal(tensors[g + "time_mix_decay_w1.weight"][2], weights[a + "time_decay_w1"].t().numpy())
    assert np.array_equal(tensors[g + "time_mix_decay_w2.weight"][2], weights[a + "time_decay_w2"].t().numpy())
    assert np.array_equal(tensors[g + "time_mix_first.weight"][2], weights[a + "time_faaaa"].numpy())
    assert np.array_equal(tensors[g + "time_mix_gate.weight"][2], weights[a + "gate.weight"].numpy())
    assert np.array_equal(tensors[g + "channel_mix_lerp_r.weight"][2], weights["blocks.2.ffn.time_maa_r"].reshape(-1).numpy())
    assert np.array_equal(tensors[g + "channel_mix_receptance.weight"][2], weights["blocks.2.ffn.receptance.weight"].numpy())
    assert np.array_equal(tensors["token_embd_norm.bias"][2], weights["blocks.0.ln0.bias"].numpy())
    # every tensor llama.cpp's rwkv6 loader creates (the fused mixes, not the five separate ones), and no other
    names = {gguf.TENSOR_NAMES[t] for t in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.RWKV6]}
    names -= {f"blk.{{bid}}.time_mix_lerp_{x}" for x in "wkvrg"}
    expected = {n + ".weight" for n in names if "{bid}" not in n} | {
        n.format(bid=i) + ".weight" for n in names if "{bid}" in n for i in range(L)}
    expected |= {n.replace(".weight", ".bias") for n in expected if "norm" in n or "time_mix_ln" in n}
    assert set(tensors) == expected


def test_llamacpp_metadata(tmp_path, weights):
    _, fields = stored(write_gguf(weights, tmp_path / "m.gguf", name="finch"))
    assert fields["general.architecture"] == "rwkv6" and fields["general.name"] == "finch"
    assert fields["rwkv6.context_length"] == 1048576 and fields["rwkv6.embedding_length"] == C
    assert fields["rwkv6.block_count"] == L and fields["rwkv6.feed_forward_length"] == F
    assert fields["rwkv6.wkv.head_size"] == N and fields["rwkv6.attention.head_count"] == 0
    assert fields["rwkv6.time_mix_extra_dim"] == D_MIX and fields["rwkv6.time_decay_extra_dim"] == D_DECAY
    assert fields["rwkv6.rescale_every_n_layers"] == 6  # the World models' rescale_every
    assert abs(fields["rwkv6.attention.layer_norm_epsilon"] - 1e-5) < 1e-12
    assert fields["tokenizer.ggml.model"] == "rwkv" and fields["general.file_type"] == int(gguf.LlamaFileType.ALL_F32)
    assert fields["general.quantization_version"] == gguf.GGML_QUANT_VERSION
    assert not any(k.startswith("rwkv7.") or "lora_rank" in k for k in fields)  # RWKV-7's keys stay out


def test_lora_ranks_follow_the_weights(tmp_path):
    """time_mix_extra_dim / time_decay_extra_dim are the model's own LoRA widths (llama.cpp sizes w1/w2 by them)."""
    tensors, fields = stored(write_gguf(random_rwkv6(2, 64, 100, d_mix=16, d_decay=48), tmp_path / "m.gguf"))
    assert fields["rwkv6.time_mix_extra_dim"] == 16 and fields["rwkv6.time_decay_extra_dim"] == 48
    assert tensors["blk.0.time_mix_w2.weight"][1] == [16, 64, 5] and tensors["blk.0.time_mix_decay_w1.weight"][1] == [64, 48]


@pytest.mark.parametrize("rescale_every, halved_from", [(None, 6), (2, 2), (0, None)])
def test_rescaling_as_the_converter(tmp_path, rescale_every, halved_from):
    """Layer i's time_mix_output and channel_mix_value are divided by 2^(i // R); nothing else changes."""
    weights = random_rwkv6(7, 64, 100, seed=2)
    tensors, fields = stored(write_gguf(weights, tmp_path / "m.gguf", rescale_every=rescale_every))
    assert fields["rwkv6.rescale_every_n_layers"] == (6 if rescale_every is None else rescale_every)
    for i in range(7):
        factor = 2 ** (i // halved_from) if halved_from else 1
        for gguf_name, name in (("time_mix_output", "att.output"), ("channel_mix_value", "ffn.value")):
            want = weights[f"blocks.{i}.{name}.weight"].numpy() / factor
            assert np.array_equal(tensors[f"blk.{i}.{gguf_name}.weight"][2], want), (i, gguf_name)
        assert np.array_equal(tensors[f"blk.{i}.time_mix_key.weight"][2], weights[f"blocks.{i}.att.key.weight"].numpy())


@pytest.mark.parametrize("dtype, kind, file_type", [
    ("f16", "F16", gguf.LlamaFileType.MOSTLY_F16), ("bf16", "BF16", gguf.LlamaFileType.MOSTLY_BF16),
    ("q8_0", "Q8_0", gguf.LlamaFileType.MOSTLY_Q8_0)])
def test_types_as_llamacpp_converter(tmp_path, weights, dtype, kind, file_type):
    tensors, fields = stored(write_gguf(weights, tmp_path / "m.gguf", dtype=dtype))
    assert fields["general.file_type"] == int(file_type)
    always_f32 = ("time_mix_first", "time_mix_w1", "time_mix_w2", "time_mix_decay_w1", "time_mix_decay_w2",
                  "time_mix_lerp_fused")
    quantized = 0
    for name, (stored_kind, shape, _) in tensors.items():
        f32 = len(shape) == 1 or name.endswith(tuple(f"{n}.weight" for n in always_f32))
        assert stored_kind == ("F32" if f32 else kind), name
        quantized += not f32
    assert quantized == 2 + L * 8  # embedding, head; r, k, v, g, output, ffn key, receptance, value


def test_refuses_what_llamacpp_cannot_hold(tmp_path, weights):
    with pytest.raises(LoadError, match="attention width 64 is not n_embd 128"):
        write_gguf(random_rwkv6(2, 128, 100, n_att=64), tmp_path / "m.gguf")
    with pytest.raises(LoadError, match="rescale_every -1"):
        write_gguf(weights, tmp_path / "m.gguf", rescale_every=-1)
    partial = {k: v for k, v in weights.items() if k != "blocks.1.ffn.receptance.weight"}
    with pytest.raises(LoadError) as info:
        write_gguf(partial, tmp_path / "m.gguf")
    message = str(info.value)
    assert "\n" not in message and "RWKV-6" in message and "blocks.1.ffn.receptance.weight" in message
    assert not list(tmp_path.rglob("*.gguf*"))  # nothing half-written left behind
