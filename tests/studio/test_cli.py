"""The `ai-writer` command, in-process and as a real subprocess, and the text preparation it relies on."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ai_writer.models.textprep import TextPrep, format_continuation, paragraph_indent
from ai_writer.models.tokenizer import DEFAULT_UNKNOWN_CHAR, CharTokenizer
from ai_writer.studio.cli import main
from tests.helpers import REAL_VOCAB, REPO, random_rwkv7_weights, small_model_auto_backend, write_checkpoint

MANUSCRIPT = "第一章 山雨欲来\n他走进了房间，四下看了看。\n“你来了。”\n"
INDENTED = "　　第一章\n\n　　他走进了房间。\r\n　　“你来了。”\n"


@pytest.fixture(autouse=True)
def isolated_user_config(tmp_path, monkeypatch):
    """Never read the real user's config file."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def manuscript(tmp_path):
    path = tmp_path / "novel.txt"
    path.write_text(MANUSCRIPT, encoding="utf-8")
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ai-writer: ")
    assert "Traceback" not in err
    return lines[0]


def continue_json(capsys, manuscript, model, seed, n=2, length=20):
    code, out, err = run(capsys, "continue", manuscript, "--model", model, "-n", n, "--length", length,
                         "--seed", seed, "--json")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1
    return json.loads(out)


# -- continue ------------------------------------------------------------------------


def test_continue_json(capsys, manuscript, tiny_model):
    result = continue_json(capsys, manuscript, tiny_model, seed=7)
    assert result["seed"] == 7
    assert result["model"] == str(tiny_model)
    assert result["backend"] == small_model_auto_backend()  # what auto picks for a small model on a CPU
    assert len(result["candidates"]) == 2
    for candidate in result["candidates"]:
        assert len(candidate) == 20  # the manuscript has no indent, so nothing is added
        assert DEFAULT_UNKNOWN_CHAR not in candidate


def test_same_seed_same_candidates_other_seed_differs(capsys, manuscript, tiny_model):
    first = continue_json(capsys, manuscript, tiny_model, seed=7)["candidates"]
    again = continue_json(capsys, manuscript, tiny_model, seed=7)["candidates"]
    other = continue_json(capsys, manuscript, tiny_model, seed=8)["candidates"]
    assert first == again
    assert other != first
    assert first[0] != first[1]  # each candidate row has its own generator


def test_continue_plain_output(capsys, manuscript, tiny_model):
    code, out, err = run(capsys, "continue", manuscript, "--model", tiny_model, "-n", 2, "--length", 12, "--seed", 3)
    assert code == 0, err
    assert "candidate 1" in out and "candidate 2" in out
    assert "candidate 3" not in out
    assert err == ""


def test_continue_reads_standard_input(capsys, monkeypatch, tiny_model, manuscript):
    from_file = continue_json(capsys, manuscript, tiny_model, seed=5, n=1, length=8)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(MANUSCRIPT.encode("utf-8"))))
    from_stdin = continue_json(capsys, "-", tiny_model, seed=5, n=1, length=8)
    assert from_stdin["candidates"] == from_file["candidates"]


def test_utf8_bom_manuscript_is_read(capsys, tmp_path, tiny_model, manuscript):
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + MANUSCRIPT.encode("utf-8"))
    plain = continue_json(capsys, manuscript, tiny_model, seed=4, n=1, length=8)
    assert continue_json(capsys, bom, tiny_model, seed=4, n=1, length=8)["candidates"] == plain["candidates"]


# -- one line for every failure the user can cause -----------------------------------


def test_undecodable_manuscript(capsys, tmp_path, tiny_model):
    # GBK, Big5 and UTF-16 are read now (tests/test_data_encodings.py); 0xFF starts no character in any of them.
    path = tmp_path / "latin.txt"
    path.write_bytes(b"Chapter 1\nThe caf\xff was closed.\n")
    code, out, err = run(capsys, "continue", path, "--model", tiny_model)
    assert code == 2
    assert out == ""
    line = one_error_line(err)
    assert str(path) in line
    assert "line 2" in line


def test_binary_manuscript(capsys, tmp_path, tiny_model):
    path = tmp_path / "picture.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    code, _, err = run(capsys, "continue", path, "--model", tiny_model)
    assert code == 2
    assert str(path) in one_error_line(err)


def test_missing_manuscript(capsys, tmp_path, tiny_model):
    path = tmp_path / "absent.txt"
    code, _, err = run(capsys, "continue", path, "--model", tiny_model)
    assert code == 2
    assert str(path) in one_error_line(err)


def test_folder_as_manuscript(capsys, tmp_path, tiny_model):
    code, _, err = run(capsys, "continue", tmp_path, "--model", tiny_model)
    assert code == 2
    assert str(tmp_path) in one_error_line(err)


def test_missing_model(capsys, tmp_path, manuscript):
    model = tmp_path / "absent.safetensors"
    code, out, err = run(capsys, "continue", manuscript, "--model", model)
    assert code == 2
    assert out == ""
    assert str(model) in one_error_line(err)


def test_missing_model_named_in_config(capsys, tmp_path, manuscript):
    config = tmp_path / "run.toml"
    config.write_text('[model]\npath = "models/gone.safetensors"\n', encoding="utf-8")
    code, _, err = run(capsys, "--config", config, "continue", manuscript)
    assert code == 2
    assert str(tmp_path / "models" / "gone.safetensors") in one_error_line(err)


def test_model_without_vocab(capsys, tmp_path, manuscript, tiny_model):
    model = tmp_path / "lonely.safetensors"
    shutil.copy(tiny_model, model)
    code, _, err = run(capsys, "continue", manuscript, "--model", model)
    assert code == 2
    assert str(model) in one_error_line(err)


def test_bad_device(capsys, manuscript, tiny_model):
    code, _, err = run(capsys, "continue", manuscript, "--model", tiny_model, "--device", "tpu")
    assert code == 2
    assert "tpu" in one_error_line(err)


def test_bad_config(capsys, tmp_path, manuscript, tiny_model):
    config = tmp_path / "run.toml"
    config.write_text("[generation]\nlength = 10\ncandidatez = 3\n", encoding="utf-8")
    code, out, err = run(capsys, "--config", config, "continue", manuscript, "--model", tiny_model)
    assert code == 2
    assert out == ""
    line = one_error_line(err)
    assert str(config) in line and "line 3" in line and "candidatez" in line


def test_bad_user_config(capsys, tmp_path, manuscript, tiny_model):
    user = tmp_path / "xdg" / "ai-writer-studio" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[sampling]\ntop_p = 1.5\n", encoding="utf-8")
    code, _, err = run(capsys, "continue", manuscript, "--model", tiny_model)
    assert code == 2
    line = one_error_line(err)
    assert str(user) in line and "line 2" in line and "top_p" in line


@pytest.mark.parametrize("length", ["0", "-3", "x"])
def test_bad_length_is_refused(capsys, manuscript, tiny_model, length):
    with pytest.raises(SystemExit) as caught:
        main(["continue", str(manuscript), "--model", str(tiny_model), f"--length={length}"])
    assert caught.value.code == 2
    assert "--length" in capsys.readouterr().err


def test_length_above_the_configs_cap_is_one_line(capsys, manuscript, tiny_model):
    code, out, err = run(capsys, "continue", manuscript, "--model", tiny_model, "--length", 20001)
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "--length 20001" in line and "20000" in line


# -- eval ------------------------------------------------------------------------------


def test_eval_reports_bits_per_char(capsys, tmp_path, newline_model):
    path = tmp_path / "text.txt"
    path.write_text("好好好\n好好\n", encoding="utf-8")
    code, out, err = run(capsys, "eval", path, "--model", newline_model, "--json")
    assert code == 0, err
    result = json.loads(out)
    # this model gives '\n' and '好' half each: one bit for each of the 7 characters after the leading newline
    assert result["chars"] == result["files"][str(path)]["chars"] == 7
    assert abs(result["bits_per_char"] - 1.0) < 1e-3


@pytest.mark.parametrize("content", ["", "\n\n", "　　\n"])
def test_eval_of_an_empty_file_is_one_line_naming_it(capsys, tmp_path, manuscript, tiny_model, content):
    empty = tmp_path / "empty.txt"
    empty.write_text(content, encoding="utf-8")
    code, out, err = run(capsys, "eval", manuscript, empty, "--model", tiny_model)
    assert code == 2 and out == ""
    assert str(empty) in one_error_line(err)


def test_config_path_command(capsys, tmp_path):
    code, out, _ = run(capsys, "config-path")
    assert code == 0
    assert out.strip() == str(tmp_path / "xdg" / "ai-writer-studio" / "config.toml")


# -- a real subprocess ---------------------------------------------------------------


def _command():
    script = Path(sys.executable).parent / "ai-writer"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ai_writer.studio.cli"]


def _subprocess(tmp_path, *argv):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYTHONPATH": str(REPO)}
    return subprocess.run(_command() + [str(a) for a in argv], capture_output=True, cwd=tmp_path, env=env,
                          timeout=120)


def test_subprocess_continue_json_matches_in_process(capsys, tmp_path, manuscript, tiny_model):
    done = _subprocess(tmp_path, "continue", manuscript, "--model", tiny_model, "-n", 2, "--length", 20,
                       "--seed", 7, "--json")
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout.decode("utf-8"))
    assert [len(c) for c in result["candidates"]] == [20, 20]
    assert result["candidates"] == continue_json(capsys, manuscript, tiny_model, seed=7)["candidates"]


def test_subprocess_error_is_one_line_without_traceback(tmp_path, tiny_model):
    path = tmp_path / "latin.txt"
    path.write_bytes(b"caf\xff\n")  # no UTF-8, UTF-16, GB18030 or Big5 text
    done = _subprocess(tmp_path, "continue", path, "--model", tiny_model)
    assert done.returncode == 2
    assert done.stdout == b""
    assert str(path) in one_error_line(done.stderr.decode("utf-8"))


# -- paragraph indents kept in the output --------------------------------------------


@pytest.fixture(scope="module")
def newline_model(tmp_path_factory):
    """A 2 x 64 RWKV-7 (real vocabulary) whose next character is always '\\n' or '好', about half each."""
    tokenizer = CharTokenizer.from_file(REAL_VOCAB)
    weights = random_rwkv7_weights(2, 64, tokenizer.vocab_size, seed=3)
    weights["ln_out.weight"].zero_()
    weights["ln_out.bias"].zero_()
    weights["ln_out.bias"][0] = 1.0  # the head always sees the same vector
    weights["head.weight"].zero_()
    for char in "\n好":
        weights["head.weight"][tokenizer.char_to_id[char], 0] = 30.0
    folder = tmp_path_factory.mktemp("newline")
    path = write_checkpoint(folder / "newline.safetensors", weights)
    shutil.copy(REAL_VOCAB, path.with_suffix(".json"))
    return path


def test_paragraph_breaks_keep_the_manuscripts_indent(capsys, tmp_path, newline_model):
    path = tmp_path / "indented.txt"
    path.write_text(INDENTED, encoding="utf-8")
    result = continue_json(capsys, path, newline_model, seed=7, n=2, length=20)
    for candidate in result["candidates"]:
        assert "\n" in candidate  # this model writes line breaks
        assert candidate.count("\n") == candidate.count("\n　　")
        raw = candidate.replace("\n　　", "\n")
        assert len(raw) == 20
        assert set(raw) <= {"\n", "好"}


def test_no_indent_added_when_the_manuscript_has_none(capsys, manuscript, newline_model):
    result = continue_json(capsys, manuscript, newline_model, seed=7, n=2, length=20)
    for candidate in result["candidates"]:
        assert "\n" in candidate
        assert "　" not in candidate
        assert len(candidate) == 20


# -- text preparation ----------------------------------------------------------------


def test_paragraph_indent():
    assert paragraph_indent(INDENTED) == "　　"
    assert paragraph_indent("  one\n\ntwo\n    three\n\n") == "    "
    assert paragraph_indent(MANUSCRIPT) == ""
    assert paragraph_indent("") == ""


def test_format_continuation():
    assert format_continuation("他说。\n她笑了。\n", "　　") == "他说。\n　　她笑了。\n　　"
    assert format_continuation("他说。\n她笑了。", "") == "他说。\n她笑了。"


def test_prepare_strips_indents_and_empty_lines():
    assert TextPrep().prepare(INDENTED) == "\n第一章\n他走进了房间。\n“你来了。”\n"


def test_prepare_without_trailing_newline():
    assert TextPrep().prepare("　　甲\n\n　　乙") == "\n甲\n乙"


def test_prepare_handles_carriage_returns():
    assert TextPrep().prepare("甲\r\n\r\n乙\r丙\r\n") == "\n甲\n乙\n丙\n"


def test_prepare_trailing_indent_after_newline_still_ends_the_paragraph():
    assert TextPrep().prepare("甲\n　　") == "\n甲\n"


def test_prepare_with_everything_off_changes_only_line_ends():
    prep = TextPrep(strip_indents=False, drop_empty_lines=False, leading_newline=False)
    assert prep.prepare("　　甲\r\n\r\n　乙") == "　　甲\n\n　乙"


def test_prepare_output_is_all_in_the_real_vocab():
    tokenizer = CharTokenizer.from_file(REAL_VOCAB)
    prepared = TextPrep().prepare(INDENTED)
    assert tokenizer.unknown_id not in tokenizer.encode(prepared)
