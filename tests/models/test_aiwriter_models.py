"""The original AI-Writer's models: v1 `.pth` files (whole pickled modules) and the v2 RNN's .bin
folders, checked against an independent float64 reading of the documented equations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ai_writer.backends import LoadError, load
from ai_writer.backends.files.convert import convert_model
from ai_writer.backends.writing.generation import Chunk, Finished, GenerationRequest, GenerationService
from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.models.checkpoint import ModelFileError, detect_architecture, read_weights
from ai_writer.studio.cli import main as cli_main
from tests.aiwriter_fixtures import (
    random_v1_weights,
    random_v2_weights,
    stored_v2_form,
    write_bin_folder,
    write_v1_whole_module,
)
from tests.aiwriter_reference import v1_logits, v2_logits_sequence
from tests.helpers import REAL_VOCAB

CHARS = "\x07\ue083\n" + "的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会"
CTX = 12  # the tiny v1 models' ctx_len: short, so tests run past the window


def write_vocab(path: Path, size: int) -> Path:
    path.write_text(json.dumps({str(i): CHARS[i] for i in range(size)}, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def v1_file(tmp_path):
    weights = random_v1_weights(ctx_len=CTX, vocab_size=40)
    path = write_v1_whole_module(tmp_path / "wangwen-tiny.pth", weights)
    write_vocab(path.with_suffix(".json"), 40)
    return path, weights


def ids_batch(batch, length, seed, vocab=40):
    return torch.randint(3, vocab, (batch, length), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize("older", [False, True], ids=["2022-02-15 layout", "older layout"])
def test_v1_whole_module_pickle_matches_the_documented_equations(tmp_path, older):
    weights = random_v1_weights(ctx_len=CTX, vocab_size=40, older=older, seed=3)
    path = write_v1_whole_module(tmp_path / "old.pth", weights)
    write_vocab(path.with_suffix(".json"), 40)
    assert set(read_weights(path)) == set(weights)
    assert detect_architecture(read_weights(path)) == "aiwriter-v1"
    engine = load(path, backend="torch", device="cpu")
    assert engine.info.architecture == "aiwriter-v1"
    rows = ids_batch(2, 3 * CTX, seed=1)
    logits, state = engine.forward([r[:5] for r in rows], None)  # a prompt, then one character at a time
    errors = [np.abs(logits[b] - v1_logits(weights, rows[b][:5])).max() for b in range(2)]
    for n in range(5, len(rows[0])):  # past ctx_len: the window moves and is read from position 0
        logits, state = engine.forward([[r[n]] for r in rows], state)
        errors += [np.abs(logits[b] - v1_logits(weights, rows[b][: n + 1])).max() for b in range(2)]
    assert max(errors) < 1e-4


def test_v1_prompt_longer_than_the_window_and_full_output(v1_file):
    path, weights = v1_file
    engine = load(path, backend="torch", device="cpu")
    row = ids_batch(1, 2 * CTX + 5, seed=2)[0]
    last, _ = engine.forward([row], None)
    assert np.abs(last[0] - v1_logits(weights, row)).max() < 1e-4
    every, _ = engine.forward([row], None, full_output=True)
    assert every.shape == (1, len(row), 40)
    expected = np.stack([v1_logits(weights, row[: t + 1]) for t in range(len(row))])
    assert np.abs(every[0] - expected).max() < 1e-4


def test_v1_cache_each_step_reads_one_position(v1_file):
    """While the text is shorter than ctx_len, a new character reuses the cached positions."""
    path, weights = v1_file
    model = load(path, backend="torch", device="cpu").model
    calls = []
    handle = model.blocks[0].attn.key.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[1]))
    with torch.inference_mode():
        _, state = model(torch.tensor([[3, 4, 5, 6]]), None)
        for token in (7, 8, 9):
            _, state = model(torch.tensor([[token]]), state)
    handle.remove()
    assert calls == [4, 1, 1, 1]


def test_v1_branches_from_one_state_stay_independent(v1_file):
    """Decoding writes the cache in place; a second branch from the same state must not disturb the first."""
    path, weights = v1_file
    engine = load(path, backend="torch", device="cpu")
    _, base = engine.forward([[5, 6, 7]], None)
    _, branch_a = engine.forward([[8]], base)
    _, branch_b = engine.forward([[9]], base)  # writes position 3 again, in a copy
    logits_a, _ = engine.forward([[10]], branch_a)
    logits_b, _ = engine.forward([[10]], branch_b)
    assert np.abs(logits_a[0] - v1_logits(weights, [5, 6, 7, 8, 10])).max() < 1e-4
    assert np.abs(logits_b[0] - v1_logits(weights, [5, 6, 7, 9, 10])).max() < 1e-4
    forked = engine.repeat_rows(base, 3)
    logits, _ = engine.forward([[8], [9], [10]], forked)
    assert np.abs(logits[0] - engine.forward([[8]], base)[0][0]).max() < 1e-5
    single, _ = engine.forward([[9]], engine.take_rows(forked, [1]))
    assert np.abs(logits[1] - single[0]).max() < 1e-5


@pytest.mark.parametrize("payload", ["os.system", "src.model.Evil"])
def test_v1_pickle_that_asks_for_anything_else_is_refused_and_never_runs(tmp_path, payload):
    marker = tmp_path / "ran"
    module, name = payload.rsplit(".", 1)
    # GLOBAL module name; MARK; string arg; TUPLE; REDUCE -> module.name("touch ...")
    evil = (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n(X" + len(f"touch {marker}").to_bytes(4, "little")
            + f"touch {marker}".encode() + b"tR.")
    path = tmp_path / "evil.pth"
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("evil/data.pkl", evil)
        archive.writestr("evil/version", "3\n")
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ModelFileError) as caught:
        read_weights(path)
    message = str(caught.value)
    assert str(path) in message and "refused" in message and "\n" not in message
    assert not marker.exists()


def test_the_real_vocab_loads_with_unknown_char_at_8778(tmp_path):
    weights = random_v1_weights(ctx_len=CTX, vocab_size=8849, n_embd=16)
    path = write_v1_whole_module(tmp_path / "wangwen.pth", weights)
    shutil.copy(REAL_VOCAB, path.with_suffix(".json"))
    engine = load(path, backend="torch", device="cpu")
    assert engine.tokenizer.vocab_size == 8849 and engine.tokenizer.unknown_id == 8778
    ids = engine.tokenizer.encode("\n第一章　☃")
    assert ids[-1] == 8778  # not in the vocabulary
    logits, _ = engine.forward([ids], None)
    assert np.abs(logits[0] - v1_logits(weights, ids)).max() < 1e-4


def test_v1_generation_service_streams_candidates(v1_file):
    path, _ = v1_file
    engine = load(path, backend="torch", device="cpu")
    service = GenerationService(engine)
    try:
        request = GenerationRequest(text="的一是了我不人在他有这个上们来到时大地", n=3, length=20,
                                    sampling=SamplingSettings(seed=5))
        events = list(service.generate(request))
    finally:
        service.close(wait=True)
    texts = ["", "", ""]
    for event in events:
        if isinstance(event, Chunk):
            texts[event.index] += event.text
    assert isinstance(events[-1], Finished)
    assert all(len(t) == 20 for t in texts) and len(set(texts)) > 1
    assert "\ue083" not in "".join(texts)


# -- v2 ---------------------------------------------------------------------------------

@pytest.fixture
def v2_folder(tmp_path):
    weights = random_v2_weights(vocab_size=40, seed=4)
    folder = write_bin_folder(tmp_path / "rwkv-v2-demo", weights)
    write_vocab(folder / "vocab.json", 40)
    return folder, weights


def small_copy_window(engine, window=7):
    """The tests' copy window: short, so sequences run past it (the files do not record it)."""
    object.__setattr__(engine.model.config, "ctx_len", window)
    return window


def test_v2_bin_folder_matches_the_documented_rnn(v2_folder):
    folder, weights = v2_folder
    engine = load(folder, backend="auto", device="cpu")
    assert engine.info.architecture == "aiwriter-v2" and engine.selection.backend == "torch"
    window = small_copy_window(engine)
    rows = ids_batch(2, 20, seed=6)
    expected = [v2_logits_sequence(stored_v2_form(weights), row, window) for row in rows]
    logits, state = engine.forward([r[:6] for r in rows], None)
    errors = [np.abs(logits[b] - expected[b][5]).max() for b in range(2)]
    for n in range(6, 20):
        logits, state = engine.forward([[r[n]] for r in rows], state)
        errors += [np.abs(logits[b] - expected[b][n]).max() for b in range(2)]
    every, _ = engine.forward(rows, None, full_output=True)
    errors += [np.abs(every[b] - np.stack(expected[b])).max() for b in range(2)]
    assert max(errors) < 1e-4


def test_v2_one_bin_file_names_its_folder_and_pth_keeps_the_trained_form(v2_folder, tmp_path):
    folder, weights = v2_folder
    via_file = load(folder / "emb.weight.bin", backend="torch", device="cpu", vocab=folder / "vocab.json")
    torch.save({k: v.reshape(1, 1, -1) if k.endswith("time_mix") else v for k, v in weights.items()}, tmp_path / "v2.pth")
    via_pth = load(tmp_path / "v2.pth", backend="torch", device="cpu", vocab=folder / "vocab.json")
    row = ids_batch(1, 9, seed=7)
    a, _ = via_file.forward(row, None)
    b, _ = via_pth.forward(row, None)
    assert np.abs(a - b).max() < 1e-4


def test_v2_folder_with_a_wrong_sized_file_names_it(v2_folder):
    folder, _ = v2_folder
    (folder / "blocks.1.att.key.weight.bin").write_bytes(b"\0" * 12)
    with pytest.raises(LoadError) as caught:
        load(folder, backend="torch", device="cpu")
    assert "blocks.1.att.key.weight" in str(caught.value) and "\n" not in str(caught.value)


def test_the_2023_successor_is_named_not_run(tmp_path):
    weights = {k.replace("att.time_mix", "att.time_mix_k"): v for k, v in random_v2_weights(vocab_size=40).items()}
    torch.save(weights, tmp_path / "next.pth")
    write_vocab(tmp_path / "next.json", 40)
    with pytest.raises(LoadError, match="aiwriter-2023 models are not supported"):
        load(tmp_path / "next.pth", backend="torch", device="cpu")


# -- convert ----------------------------------------------------------------------------

def test_convert_writes_a_plain_safetensors_that_runs_the_same(v1_file, tmp_path, capsys):
    path, weights = v1_file
    out = tmp_path / "converted" / "wangwen.safetensors"
    out.parent.mkdir()
    assert cli_main(["convert", str(path), str(out)]) == 0
    assert "AI-Writer v1" in capsys.readouterr().out
    assert out.with_suffix(".json").read_text(encoding="utf-8") == path.with_suffix(".json").read_text(encoding="utf-8")
    with out.open("rb") as f:  # safetensors: an 8-byte header length, then JSON; no pickle anywhere
        assert f.read(9)[8:9] == b"{"
    # the same tensors bit for bit (less the constant masks, rebuilt on load) ...
    stored, source = read_weights(out), read_weights(path)
    assert set(stored) == {k for k in source if k != "copy_mask" and not k.endswith(".attn.mask")}
    for name, tensor in stored.items():
        assert tensor.dtype == source[name].dtype and torch.equal(tensor, source[name]), name
    # ... so the same logits, up to fp32 rounding (two loads need not sum in the same order on every CPU)
    old = load(path, backend="torch", device="cpu")
    new = load(out, backend="torch", device="cpu")
    row = ids_batch(1, CTX + 3, seed=8)
    assert np.abs(old.forward(row, None)[0] - new.forward(row, None)[0]).max() < 1e-5


def test_convert_v2_folder_round_trips(v2_folder, tmp_path):
    folder, _ = v2_folder
    out = tmp_path / "v2.safetensors"
    convert_model(folder, out)
    a = load(folder, backend="torch", device="cpu")
    b = load(out, backend="torch", device="cpu")
    row = ids_batch(1, 10, seed=9)
    assert np.abs(a.forward(row, None)[0] - b.forward(row, None)[0]).max() < 1e-5


def test_convert_refuses_a_bad_source_with_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    assert cli_main(["convert", str(broken), str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ai-writer: ") and str(broken) in err and "\n" not in err
    assert not (tmp_path / "x.safetensors").exists()


# -- in the studio -------------------------------------------------------------------------

async def test_the_studio_writes_with_a_v1_pth_and_names_it(v1_file, tmp_path):
    from ai_writer.studio.app import StudioApp
    from ai_writer.studio.config import load_config
    from tests.studio.test_app import generate, ready, wait_until, write_config

    path, _ = v1_file
    manuscript = tmp_path / "novel.txt"
    manuscript.write_text("　　他说：“我们来了。”\n　　", encoding="utf-8")
    config = load_config(write_config(tmp_path, path), user_path=tmp_path / "no-user.toml")
    app = StudioApp(config, manuscript, data_dir=tmp_path / "data")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        assert "aiwriter-v1" in app.status.details
        app.editor.move_cursor(app.editor.document.end)
        texts = await generate(pilot, app)
        assert len(texts) == 3 and all(len(t) == 12 for t in texts)
        before = app.editor.text
        await pilot.press("alt+2")
        assert await wait_until(pilot, lambda: manuscript.read_text(encoding="utf-8") == app.editor.text != before)
        added = app.editor.text[len(before):].replace("\n　　", "\n")
        assert added == texts[1], (added, texts)


def test_a_long_manuscript_reads_only_the_last_window(v1_file):
    """A v1 model sees the last ctx_len characters; the prompt reader skips what lies before them."""
    from ai_writer.models.textprep import TextPrep

    path, weights = v1_file
    engine = load(path, backend="torch", device="cpu")
    service = GenerationService(engine)
    try:
        text = "的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会" * 3
        logits, state, read, _ = service.read_prompt(text, TextPrep())
        ids = engine.tokenizer.encode("\n" + text)
        assert read == CTX and engine.tokens_processed == CTX
        assert np.abs(logits - v1_logits(weights, ids)).max() < 1e-4
        logits, _, read, _ = service.read_prompt(text + "的", TextPrep())  # one more: from the cache
        assert read == 1
        assert np.abs(logits - v1_logits(weights, ids + engine.tokenizer.encode("的"))).max() < 1e-4
    finally:
        service.close(wait=True)


def test_window_refill_restarts_from_the_last_n_characters_and_grows(v1_file):
    path, weights = v1_file
    engine = load(path, backend="torch", device="cpu", window_refill=5)
    row = ids_batch(1, CTX + 12, seed=11)[0]
    logits, state = engine.forward([row[:CTX]], None)  # a full window
    seen = CTX
    errors = []
    for n in range(CTX, len(row)):
        logits, state = engine.forward([[row[n]]], state)
        seen = 5 if seen == CTX else seen + 1  # full: start again from the last 5, then grow
        errors.append(np.abs(logits[0] - v1_logits(weights, row[n + 1 - seen : n + 1])).max())
    assert max(errors) < 1e-4
    with pytest.raises(LoadError, match="window_refill must be 0"):
        load(path, backend="torch", device="cpu", window_refill=CTX)


def test_window_refill_from_the_config_file(v1_file, tmp_path, capsys):
    path, _ = v1_file
    manuscript = tmp_path / "novel.txt"
    manuscript.write_text("他说：我们来了。" * 3, encoding="utf-8")
    config = tmp_path / "refill.toml"
    config.write_text(f'[model]\npath = "{path}"\nwindow_refill = 6\n', encoding="utf-8")
    assert cli_main(["--config", str(config), "continue", str(manuscript), "-n", "2", "--length", "20",
                     "--seed", "1", "--json"]) == 0
    assert [len(t) for t in json.loads(capsys.readouterr().out)["candidates"]] == [20, 20]
    config.write_text(f'[model]\npath = "{path}"\nwindow_refill = {CTX}\n', encoding="utf-8")
    assert cli_main(["--config", str(config), "continue", str(manuscript)]) == 2
    err = capsys.readouterr().err.strip()
    assert "window_refill must be 0" in err and str(path) in err and "\n" not in err
