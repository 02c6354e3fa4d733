"""models/hf_layout.py and backends/files/hf_write.py: RWKV-7 in the Hugging Face / fla layout, written and read
back (one file and shards), fla's names and shapes as fla's modules have them, refusals in one line."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from ai_writer.backends.files.hf_write import write_hf_folder
from ai_writer.models.checkpoint import ModelFileError
from ai_writer.models.hf_layout import hf_summary, is_hf_folder, read_hf_weights
from tests.helpers import random_rwkv7_weights, rwkv7_logits

LAYER0_VALUE_MIX = {"blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"}  # fla's layer 0 has no v_lora


@pytest.fixture(scope="module")
def weights():
    return random_rwkv7_weights(3, 128, 300, seed=21)


def identical(read, weights):
    assert set(read) == set(weights) - LAYER0_VALUE_MIX
    for name, tensor in read.items():
        assert tensor.dtype == weights[name].dtype and torch.equal(tensor, weights[name]), name
        assert tensor.is_contiguous(), name
    return True


def one_line_naming(exc_info, path) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and str(path) in message, message
    return message


@pytest.mark.parametrize("shape", [(2, 64, 300), (3, 128, 300)])
def test_round_trip_is_identical(tmp_path, shape):
    weights = random_rwkv7_weights(*shape, seed=22)
    folder = write_hf_folder(weights, tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    read = read_hf_weights(folder)
    assert identical(read, weights)
    if shape[0] == 2:  # the same tensors give the same logits; once is enough to show nothing is missing
        assert torch.equal(rwkv7_logits(read), rwkv7_logits(weights))


def test_fla_names_and_shapes(tmp_path, weights):
    """The stored names and shapes are those of fla's RWKV7ForCausalLM modules (fla/layers/rwkv7.py,
    fla/models/rwkv7): nn.Linear (out, in) for the LoRA, (C,) vectors, (1, 1, C) token-shift mixes."""
    stored = load_file(str(write_hf_folder(weights, tmp_path / "m") / "model.safetensors"))
    C, D = 128, 32
    assert stored["model.embeddings.weight"].shape == (300, C) and stored["lm_head.weight"].shape == (300, C)
    assert {"model.norm.weight", "model.layers.0.pre_norm.bias", "model.layers.2.ffn_norm.weight"} <= set(stored)
    assert "model.layers.1.pre_norm.weight" not in stored
    assert stored["model.layers.1.attn.x_g"].shape == (1, 1, C) and stored["model.layers.1.attn.k_k"].shape == (C,)
    assert stored["model.layers.1.attn.w_lora.lora.0.weight"].shape == (D, C)
    assert torch.equal(stored["model.layers.1.attn.w_lora.lora.0.weight"], weights["blocks.1.att.w1"].t())
    assert torch.equal(stored["model.layers.1.attn.a_lora.lora.2.weight"], weights["blocks.1.att.a2"].t())
    assert torch.equal(stored["model.layers.1.attn.v_lora.lora.2.bias"], weights["blocks.1.att.v0"].reshape(-1))
    assert "model.layers.1.attn.g_lora.lora.2.bias" not in stored  # fla's gate LoRA has no bias
    assert not any(k.startswith("model.layers.0.attn.v_lora") for k in stored)
    assert torch.equal(stored["model.layers.2.attn.o_proj.weight"], weights["blocks.2.att.output.weight"])
    assert torch.equal(stored["model.layers.2.attn.g_norm.bias"], weights["blocks.2.att.ln_x.bias"])
    assert stored["model.layers.2.ffn.x_k"].shape == (C,) and stored["model.layers.0.attn.r_k"].shape == (2, 64)
    assert len(stored) == 4 + 2 + 3 * 33 - 3  # BlinkDL's 105 less layer 0's v0/v1/v2


def test_config_json(tmp_path, weights):
    """The fields fla's RWKV7Config and llama.cpp's converter (Rwkv7Model) read, with the model's sizes."""
    config = json.loads((write_hf_folder(weights, tmp_path / "m") / "config.json").read_text())
    assert config["model_type"] == "rwkv7" and config["architectures"] == ["RWKV7ForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (128, 3, 300)
    assert (config["head_dim"], config["num_heads"], config["intermediate_size"], config["norm_eps"]) == (64, 2, 512, 1e-5)
    ranks = [weights[f"blocks.1.att.{p}1"].shape[1] for p in "wavg"]
    assert [config[k] for k in ("decay_low_rank_dim", "a_low_rank_dim", "v_low_rank_dim", "gate_low_rank_dim")] == ranks
    assert config["value_dim"] == [128] * 3 and config["torch_dtype"] == "float32" and config["attn"] is None


def test_sharded_round_trip(tmp_path, weights):
    folder = write_hf_folder(weights, tmp_path / "m", shard_bytes=300_000)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert not (folder / "model.safetensors").exists()
    assert sorted(set(index["weight_map"].values())) == shards and len(index["weight_map"]) == len(weights) - 3
    assert index["metadata"]["total_size"] == sum(p.stat().st_size for p in folder.glob("model-*")) - sum(
        8 + int.from_bytes(p.read_bytes()[:8], "little") for p in folder.glob("model-*"))
    assert identical(read_hf_weights(folder), weights)
    assert [p.name for p in hf_summary(folder).weight_files] == shards


def test_bfloat16_kept(tmp_path, weights):
    folder = write_hf_folder(weights, tmp_path / "m", dtype=torch.bfloat16)
    assert json.loads((folder / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert identical(read_hf_weights(folder), {k: v.to(torch.bfloat16) for k, v in weights.items()})


def test_older_fused_token_shift(tmp_path, weights):
    """An older fla stored attn.x_r .. x_g as one attn.x_x (6, C), in the order r, w, k, v, a, g."""
    folder = write_hf_folder(weights, tmp_path / "m")
    stored = load_file(str(folder / "model.safetensors"))
    for i in range(3):
        parts = [stored.pop(f"model.layers.{i}.attn.x_{x}").reshape(-1) for x in "rwkvag"]
        stored[f"model.layers.{i}.attn.x_x"] = torch.stack(parts)
    save_file(stored, str(folder / "model.safetensors"))
    assert identical(read_hf_weights(folder), weights)


def test_tied_embeddings(tmp_path, weights):
    tied = {**weights, "head.weight": weights["emb.weight"]}
    folder = write_hf_folder(tied, tmp_path / "m")
    stored = load_file(str(folder / "model.safetensors"))
    del stored["lm_head.weight"]
    save_file(stored, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": True}))
    assert identical(read_hf_weights(folder), tied)


def test_detection(tmp_path, weights):
    folder = write_hf_folder(weights, tmp_path / "m")
    assert is_hf_folder(folder) and is_hf_folder(folder / "config.json") and is_hf_folder(folder / "model.safetensors")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert not is_hf_folder(plain) and not is_hf_folder(tmp_path / "nothing")
    other = tmp_path / "gpt2"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    assert not is_hf_folder(other) and is_hf_folder(other, any_model_type=True)
    by_architecture = tmp_path / "arch"
    by_architecture.mkdir()
    (by_architecture / "config.json").write_text(json.dumps({"architectures": ["RWKV7ForCausalLM"]}))
    assert is_hf_folder(by_architecture)
    (plain / "config.json").write_text("{not json")
    assert not is_hf_folder(plain)


def test_summary(tmp_path, weights):
    folder = write_hf_folder(weights, tmp_path / "m")
    for name in ("tokenizer_config.json", "rwkv_vocab_v20230424.txt", "notes.txt"):
        (folder / name).write_text("{}")
    summary = hf_summary(folder / "config.json")
    assert (summary.folder, summary.n_layer, summary.n_embd, summary.vocab_rows) == (folder, 3, 128, 300)
    assert [p.name for p in summary.tokenizer_files] == ["tokenizer_config.json", "rwkv_vocab_v20230424.txt"]


def test_world_model_gets_the_world_vocabulary(tmp_path):
    from ai_writer.models.world_tokenizer import default_vocab_path

    folder = write_hf_folder(random_rwkv7_weights(1, 64, 65536), tmp_path / "world")
    vocab = folder / "rwkv_vocab_v20230424.txt"  # the name llama.cpp's converter and fla-hub's tokenizer read
    assert vocab.read_bytes() == default_vocab_path().read_bytes()
    assert hf_summary(folder).tokenizer_files == [vocab] and hf_summary(folder).vocab_rows == 65536


def test_other_model_type_is_one_line(tmp_path):
    folder = tmp_path / "rwkv4"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "rwkv", "architectures": ["RwkvForCausalLM"]}))
    save_file({"rwkv.embeddings.weight": torch.zeros(4, 4)}, str(folder / "model.safetensors"))
    for read in (read_hf_weights, hf_summary):
        with pytest.raises(ModelFileError) as info:
            read(folder)
        assert "'rwkv'" in one_line_naming(info, folder)


def test_broken_folders_are_one_line(tmp_path, weights):
    folder = write_hf_folder(weights, tmp_path / "m", shard_bytes=300_000)
    last = sorted(folder.glob("model-*.safetensors"))[-1]
    last.unlink()
    with pytest.raises(ModelFileError) as info:
        read_hf_weights(folder)
    one_line_naming(info, last)

    folder = write_hf_folder(weights, tmp_path / "unknown")
    stored = load_file(str(folder / "model.safetensors"))
    stored["model.layers.1.attn.q_proj.weight"] = torch.zeros(128, 128)  # a softmax-attention layer of a hybrid
    save_file(stored, str(folder / "model.safetensors"))
    with pytest.raises(ModelFileError) as info:
        read_hf_weights(folder)
    assert "model.layers.1.attn.q_proj.weight" in one_line_naming(info, folder)

    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header")
    with pytest.raises(ModelFileError) as info:
        read_hf_weights(folder)
    one_line_naming(info, folder / "model.safetensors")

    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFileError) as info:
        read_hf_weights(folder)
    one_line_naming(info, folder)

    (folder / "config.json").write_text("{broken")
    with pytest.raises(ModelFileError) as info:
        hf_summary(folder)
    one_line_naming(info, folder / "config.json")
