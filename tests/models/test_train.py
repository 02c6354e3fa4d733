"""models.train: the vocabulary, the schedule, batches, a real (tiny) run with resume and
export, and growing a trained model deeper without changing what it computes."""

import json
import math
from argparse import Namespace

import pytest
import torch

from ai_writer.backends import load
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights
from ai_writer.models.tokenizer import DEFAULT_UNKNOWN_CHAR, CharTokenizer
from ai_writer.models.train import (build_vocab, grow_from, grown_layer_sources, learning_rate, main,
                          pick_device, sample_batch)

TEXT = "\n".join(["天下大势，分久必合，合久必分。", "话说宝玉在林黛玉房中说耗子精。", "却说孙悟空回到花果山。"] * 40)


def test_the_vocabulary_is_the_commonest_characters_then_unknown():
    text = "甲" * 9000 + "乙" * 999 + "丙"  # 丙 is 1 in 10,000: past 99.99% coverage
    tokenizer = build_vocab(text)
    assert tokenizer.chars[:2] == ["甲", "乙"]
    assert "丙" not in tokenizer.char_to_id
    assert tokenizer.chars[-1] == DEFAULT_UNKNOWN_CHAR and "\n" in tokenizer.char_to_id
    assert tokenizer.encode("丙") == [tokenizer.unknown_id]


def test_the_schedule_warms_up_then_falls_to_the_final_rate_by_steps_or_by_minutes():
    by_steps = Namespace(lr=1e-3, lr_final=1e-4, steps=1100, minutes=0)
    assert learning_rate(by_steps, 0) == pytest.approx(1e-5)
    assert learning_rate(by_steps, 100) == pytest.approx(1e-3)
    assert learning_rate(by_steps, 600) == pytest.approx(5.5e-4)
    assert learning_rate(by_steps, 1100) == pytest.approx(1e-4)
    by_minutes = Namespace(lr=1e-3, lr_final=1e-4, steps=0, minutes=10)
    assert learning_rate(by_minutes, 500, minutes=5) == pytest.approx(5.5e-4)
    assert learning_rate(by_minutes, 500, minutes=12) == pytest.approx(1e-4)


def test_batches_are_windows_of_the_data_with_targets_one_ahead():
    data = torch.arange(1000)
    x, y = sample_batch(data, 4, 16, torch.Generator().manual_seed(3))
    assert x.shape == y.shape == (4, 16)
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(4, 15, dtype=torch.long))  # contiguous windows
    again, _ = sample_batch(data, 4, 16, torch.Generator().manual_seed(3))
    assert torch.equal(x, again)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_asking_for_a_gpu_that_is_not_there_says_so():
    with pytest.raises(SystemExit, match="--device cuda: this torch sees no CUDA device"):
        pick_device("cuda")
    assert pick_device("auto").type == "cpu"


def _tiny_run(tmp_path, *extra):
    data = tmp_path / "novel.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    args = ["--data", str(data), "--out", str(out), "--layers", "2", "--embd", "64", "--ctx", "32",
            "--batch", "2", "--save-every", "2", *extra]
    assert main(args) == 0
    return out


def test_a_run_saves_resumes_and_exports_a_model_the_engine_loads(tmp_path):
    out = _tiny_run(tmp_path, "--steps", "4")
    recipe = json.loads((out / "recipe.json").read_text())
    vocab = CharTokenizer.from_file(out / "vocab.json")
    assert recipe["vocab_size"] == vocab.vocab_size == len(set(TEXT)) + 1
    assert recipe["sources"][0]["chars"] == len(TEXT)
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [2, 4]
    first = torch.load(out / "checkpoint.pt", weights_only=True)
    assert first["step"] == 4

    assert main(["--out", str(out), "--resume", "--steps", "6"]) == 0  # shape and data from the recipe
    resumed = torch.load(out / "checkpoint.pt", weights_only=True)
    assert resumed["step"] == 6
    assert not torch.equal(resumed["model"]["head.weight"], first["model"]["head.weight"])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [2, 4, 6]
    assert all(0 < entry["train_bits_per_char"] < 12 for entry in log)

    target = tmp_path / "export" / "tiny.safetensors"
    assert main(["--out", str(out), "--export", str(target)]) == 0
    engine = load(target, backend="torch", device="cpu")
    assert engine.info.architecture == "rwkv7" and engine.info.vocab_size == vocab.vocab_size
    assert engine.tokenizer.chars == vocab.chars
    model = RWKV7(RWKV7Config.from_state_dict(resumed["model"]))
    model.load_state_dict(resumed["model"])
    ids = vocab.encode("却说孙悟空")
    with torch.no_grad():
        expected, _ = model(torch.tensor([ids]))
    got, _ = engine.forward([ids])
    assert torch.allclose(torch.from_numpy(got), expected, atol=0.02)  # fp16 weights: close, not equal


def test_a_run_by_minutes_ends_on_time_at_the_final_rate(tmp_path):
    out = _tiny_run(tmp_path, "--steps", "0", "--minutes", "0.02", "--lr-final", "1e-5")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["minutes"] >= 0.02 and log[-1]["minutes"] < 1.0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == log[-1]["step"]


def test_a_folder_that_is_not_a_run_gets_one_line(tmp_path):
    for argv in (["--out", str(tmp_path), "--resume"], ["--out", str(tmp_path), "--export", str(tmp_path / "m.safetensors")],
                 ["--data", __file__, "--out", str(tmp_path / "new"), "--grow-from", str(tmp_path)]):
        with pytest.raises(SystemExit, match="no such file .* is not a training run folder"):
            main(argv)


@pytest.mark.parametrize("old, new, expected", [
    (4, 4, [0, 1, 2, 3]),
    (4, 6, [0, 1, 1, 2, 2, 3]),
    (4, 8, [0, 1, 1, 1, 2, 2, 2, 3]),
    (3, 5, [0, 1, 1, 1, 2]),
])
def test_grown_layers_keep_the_first_and_last_and_spread_the_inner_ones(old, new, expected):
    assert grown_layer_sources(old, new) == expected


def test_a_grown_model_computes_what_the_trained_one_did_until_it_trains(tmp_path):
    small = init_weights(RWKV7(RWKV7Config(n_layer=3, n_embd=64, vocab_size=50)), seed=5)
    deep = RWKV7(RWKV7Config(n_layer=5, n_embd=64, vocab_size=50))
    assert grow_from(deep, small.state_dict()) == [0, 1, 1, 1, 2]
    tokens = torch.randint(0, 50, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, _ = small(tokens, full_output=True)
        got, _ = deep(tokens, full_output=True)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.count_nonzero(deep.blocks[2].att.output.weight) == 0
    assert torch.equal(deep.blocks[2].att.key.weight, small.blocks[1].att.key.weight)
    assert torch.count_nonzero(deep.blocks[1].att.output.weight) > 0  # the first copy speaks
    with pytest.raises(SystemExit, match="cannot grow 3 layers to 2"):
        grow_from(RWKV7(RWKV7Config(n_layer=2, n_embd=64, vocab_size=50)), small.state_dict())
    assert math.isfinite(float(got.sum()))


def test_under_mixed_precision_the_state_update_still_runs_in_fp32(monkeypatch):
    from ai_writer.models.rwkv7_fused import FusedRWKV7, FusedTimeMix
    from ai_writer.models.wkv7 import wkv7_chunked

    seen = []

    def spy(kv, r, *rest):
        seen.append((r.dtype, torch.is_autocast_enabled("cpu")))
        return wkv7_chunked(kv, r, *rest)

    monkeypatch.setattr(FusedTimeMix, "sequence_wkv", staticmethod(spy))
    model = init_weights(FusedRWKV7(RWKV7Config(n_layer=2, n_embd=64, vocab_size=50)), seed=1)
    tokens = torch.randint(0, 50, (2, 100), generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, _ = model(tokens, full_output=True)
    exact, _ = model(tokens, full_output=True)
    assert seen == [(torch.float32, False)] * 4  # 2 layers, under autocast and then without
    assert mixed.dtype == torch.bfloat16
    assert (mixed.float() - exact).abs().max() < 0.1 * exact.abs().max()
