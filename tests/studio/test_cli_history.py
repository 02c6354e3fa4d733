"""`ai-writer history FILE [--all] [--json]`: the version tree beside a manuscript, as text or JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ai_writer.studio.cli import main
from tests.helpers import REPO
from tests.studio.data.test_version_tree import Session


@pytest.fixture(autouse=True)
def isolated_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def written(tmp_path):
    """A manuscript with three requests: accepted, partly accepted after a rejection, then an edit and a third."""
    session = Session(tmp_path / "novel.history.jsonl")
    first = session.generate(["他走了进去。", "风\n吹灭了灯。", "门外无人。"])
    session.accept(first, 1)
    second = session.generate(["屋里很暗。", "他停下脚步。"])
    session.log.record_outcome(second, 0, "rejected")
    session.accept(second, 1, length=3)
    session.log.record_mark(first, 2, True)
    session.edit(3, 3, "改")
    third = session.generate(["甲乙"], at=10)  # elsewhere: a root of its own
    manuscript = tmp_path / "novel.txt"
    manuscript.write_text(session.text, encoding="utf-8")
    return manuscript, session, (first, second, third)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_tree_as_text(capsys, written):
    manuscript, _, _ = written
    code, out, err = run(capsys, "history", manuscript)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "3 requests · 0 detached · 0 pruned"
    assert lines[1].endswith(" · at 23")  # moved by the edit before it
    assert lines[2:5] == ["    1 他走了进去。", "  ✓ 2 风⏎吹灭了灯。  accepted", "    3 门外无人。 ★"]
    assert lines[5].endswith(" · at 32")  # the path taken goes straight on
    assert lines[6:8] == ["    1 屋里很暗。  rejected", "  ✓ 2 他停下脚步。  partly accepted"]
    assert lines[8] == "✎ edit at 3: −0 +1 「改」"
    assert lines[9].endswith(" · at 10") and lines[10] == "    1 甲乙"


def test_the_tree_as_json(capsys, written):
    manuscript, session, (first, second, third) = written
    code, out, err = run(capsys, "history", manuscript, "--json")
    assert code == 0 and len(out.splitlines()) == 1
    tree = json.loads(out)
    assert tree["history"] == str(session.log.path) and tree["requests"] == 3
    assert tree["roots"] == [first, third]
    nodes = {n["id"]: n for n in tree["nodes"]}
    assert nodes[first]["candidates"][1]["children"] == [second]
    assert nodes[first]["candidates"][1]["on_path"] and nodes[first]["candidates"][2]["favourite"]
    assert nodes[second]["candidates"][1]["fate"] == "accepted-partial"
    assert nodes[second]["parent"] == [first, 1] and nodes[third]["parent"] is None
    assert nodes[third]["edits_before"][0]["inserted"] == "改"
    assert not any(n["detached"] for n in tree["nodes"])


def test_detached_and_pruned_nodes(capsys, written):
    manuscript, session, (first, second, _) = written
    manuscript.write_text(session.text.replace("吹灭", "吹熄"), encoding="utf-8")  # edited in another program
    session.log.record_prune(first)
    code, out, _ = run(capsys, "history", manuscript)
    assert out.splitlines()[0] == "3 requests · 1 detached · 1 pruned"
    assert "吹灭" not in out  # the pruned request and what hangs under it are hidden
    code, out, _ = run(capsys, "history", manuscript, "--all")
    lines = out.splitlines()
    assert lines[1].endswith(" · at 23 · pruned") and lines[5].endswith(" · at 32 · detached")


def test_a_damaged_line_is_one_warning_and_the_rest_is_shown(capsys, written):
    manuscript, session, (first, second, third) = written
    line = len(session.log.path.read_bytes().splitlines()) + 1
    with open(session.log.path, "ab") as f:
        f.write(b'{"type": "mark", "id"\n')
    code, out, err = run(capsys, "history", manuscript, "--json")
    assert code == 0 and json.loads(out)["requests"] == 3
    assert err == f"ai-writer: {session.log.path}: line {line}: a damaged record, skipped\n"


def test_no_history_and_no_manuscript(capsys, tmp_path):
    manuscript = tmp_path / "new.txt"
    manuscript.write_text("第一章", encoding="utf-8")
    code, out, _ = run(capsys, "history", manuscript)
    assert (code, out) == (0, "No history yet.\n")
    code, out, err = run(capsys, "history", tmp_path / "missing.txt")
    assert code == 2 and out == "" and err.startswith("ai-writer: ") and len(err.splitlines()) == 1


def test_a_real_process_in_chinese(written, tmp_path):
    manuscript, _, _ = written
    config = tmp_path / "zh.toml"
    config.write_text('[studio]\nlanguage = "zh"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "ai_writer.studio.cli", "--config", str(config), "history", str(manuscript)],
                          capture_output=True, text=True, encoding="utf-8", cwd=REPO, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "3 次请求 · 0 个脱离 · 0 个已剪除"
    assert "✓ 2 风⏎吹灭了灯。  已采用" in done.stdout
