"""`ai-writer scan FILE`: eval's bits/char, paragraphs at the file's lines and characters, spans and loops as
text and JSON, one line for bad input, progress on stderr only when it is a terminal (a real pty)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess

import pytest

from ai_writer.studio.cli import main
from ai_writer.studio.i18n import set_language
from tests.studio.test_cli import _command, one_error_line, run
from tests.helpers import FIXTURES, REPO

SENTENCE = "他深深地吸了一口气。"
# CRLF, indents, empty lines and a line of spaces: positions must still be the file's
MANUSCRIPT = (f"　　第一章　山雨欲来\r\n\r\n　　他走进了房间，四下看了看。{SENTENCE}\r\n"
              f"　　“你来了。”她说。{SENTENCE}\r\n　　\r\n　　窗外下着雨。{SENTENCE}\r\n")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    set_language("en")


@pytest.fixture
def manuscript(tmp_path):
    path = tmp_path / "novel.txt"
    path.write_bytes(MANUSCRIPT.encode("utf-8"))
    return path


def scan_json(capsys, *argv) -> dict:
    code, out, err = run(capsys, "scan", *argv, "--json")
    assert code == 0, err
    assert err == ""  # not a terminal: no progress
    return json.loads(out)


def test_scan_bits_per_char_is_evals(capsys, manuscript, tiny_model):
    scanned = scan_json(capsys, manuscript, "--model", tiny_model)
    code, out, err = run(capsys, "eval", manuscript, "--model", tiny_model, "--json")
    assert code == 0, err
    evaluated = json.loads(out)
    assert scanned["chars"] == evaluated["chars"]
    assert scanned["bits_per_char"] == pytest.approx(evaluated["bits_per_char"], rel=1e-12)


def test_json_positions_are_the_files(capsys, manuscript, tiny_model):
    result = scan_json(capsys, manuscript, "--model", tiny_model)
    text = manuscript.read_bytes().decode("utf-8")
    lines = text.split("\r\n")
    assert [p["line"] for p in result["paragraphs"]] == [1, 3, 4, 6]
    for paragraph in result["paragraphs"]:
        assert text[paragraph["start"]:paragraph["end"]] == lines[paragraph["line"] - 1].strip("\u3000")
    (loop,) = result["loops"]
    assert (loop["kind"], loop["text"], loop["count"], loop["lines"]) == ("sentence", SENTENCE, 3, [3, 4, 6])
    assert [text[s:e] for s, e in zip(loop["starts"], loop["ends"])] == [SENTENCE] * 3
    for span in result["spans"]:
        assert text[span["start"]:span["end"]] == span["text"]
        assert span["peak_bits"] > result["surprise_threshold_bits"]


def test_top_limits_the_spans(capsys, tmp_path, tiny_model):
    book = tmp_path / "book.txt"
    book.write_text((FIXTURES / "hongloumeng-heldout-3000.txt").read_text(encoding="utf-8")[:600], encoding="utf-8")
    every = scan_json(capsys, book, "--model", tiny_model, "--top", 1000)["spans"]
    assert len(every) >= 3, "the random model finds several surprising spans here"
    assert scan_json(capsys, book, "--model", tiny_model)["spans"] == every[:20]
    assert scan_json(capsys, book, "--model", tiny_model, "--top", 2)["spans"] == every[:2]


def test_text_output_has_the_overall_paragraphs_spans_and_loops(capsys, manuscript, tiny_model):
    result = scan_json(capsys, manuscript, "--model", tiny_model)
    code, out, err = run(capsys, "scan", manuscript, "--model", tiny_model)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"{manuscript} · Surprise scan · {result['bits_per_char']:.3f} bits/char · {result['chars']} characters"
    table = lines[lines.index("Paragraphs (line · characters · bits/char)") + 1:][:4]
    assert [int(row[2:].split()[0]) for row in table] == [1, 3, 4, 6]
    assert [float(row[2:].split()[2]) for row in table] == \
        [pytest.approx(p["bits_per_char"], abs=5e-4) for p in result["paragraphs"]]
    worst = max(range(4), key=lambda i: result["paragraphs"][i]["bits_per_char"])
    assert [row.startswith("*") for row in table] == [i == worst for i in range(4)]
    assert table[worst].endswith("█" * 20)  # the worst paragraph's bar is the longest
    assert f"  sentence ×3: {SENTENCE} · lines 3, 4, 6" in lines
    spans = lines[lines.index(f"Most surprising spans (a character counts above "
                              f"{result['surprise_threshold_bits']:.1f} bits)") + 1:]
    first = result["spans"][0]
    assert spans[0] == f"  line {first['line']}: {first['before']}[{first['text']}]{first['after']} · " \
                       f"{first['bits']:.1f} bits, peak {first['peak_bits']:.1f}"


@pytest.mark.parametrize("content", ["", "\r\n\r\n", "　　\n"])
def test_nothing_to_scan_is_one_line_naming_the_file(capsys, tmp_path, tiny_model, content):
    empty = tmp_path / "empty.txt"
    empty.write_text(content, encoding="utf-8")
    code, out, err = run(capsys, "scan", empty, "--model", tiny_model)
    assert code == 2 and out == ""
    assert one_error_line(err) == f"ai-writer: {empty}: nothing to scan, it holds no text"


def test_a_missing_file_or_model_is_one_line(capsys, tmp_path, manuscript):
    code, out, err = run(capsys, "scan", tmp_path / "none.txt")
    assert code == 2 and out == "" and "none.txt" in one_error_line(err)
    code, out, err = run(capsys, "scan", manuscript, "--model", tmp_path / "none.safetensors")
    assert code == 2 and out == "" and "none.safetensors" in one_error_line(err)


def test_progress_goes_to_stderr_when_it_is_a_terminal(tmp_path, tiny_model):
    book = tmp_path / "book.txt"
    book.write_text("　　他走进了房间，四下看了看。窗外下着雨。\n" * 120, encoding="utf-8")  # 3 pieces of 1024
    leader, follower = pty.openpty()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(_command() + ["scan", str(book), "--model", str(tiny_model), "--json"],
                               stdout=subprocess.PIPE, stderr=follower, cwd=tmp_path, env=env)
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    out, _ = process.communicate(timeout=120)
    os.close(leader)
    assert process.returncode == 0, seen
    total = json.loads(out)["chars"]
    shown = seen.decode("utf-8")
    assert f"scanning… 1,024 of {total:,} characters" in shown
    assert f"scanning… {total:,} of {total:,} characters" in shown
    assert shown.endswith("\r\x1b[K")  # the line is cleared at the end


def test_a_reader_that_stops_early_ends_the_scan_quietly(tmp_path, tiny_model):
    book = tmp_path / "book.txt"
    book.write_text("".join(f"　　第{i}句。\n" for i in range(1000)), encoding="utf-8")  # 1,000 rows: more than a pipe holds
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    process = subprocess.Popen(_command() + ["scan", str(book), "--model", str(tiny_model)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    assert process.stdout.readline()  # like `| head -1`: one line, then the pipe is closed
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
