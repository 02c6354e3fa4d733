"""studio.data.history: the JSON-lines record of requests and outcomes beside the manuscript."""

import errno
import hashlib
import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from ai_writer.studio.data import history as history_module
from ai_writer.studio.data.history import HistoryLog, history_path_for, new_request_id

SETTINGS = {"temperature": 1.0, "top_p": 0.75, "length": 200, "seed": None}
CONTEXT = "第一章　风起\n" + "夜色如墨，他推开了门。" * 40


def test_history_path_is_beside_the_manuscript(tmp_path):
    assert history_path_for(tmp_path / "chapter1.txt") == tmp_path / "chapter1.history.jsonl"
    assert history_path_for("书稿/第一卷.v2.txt") == Path("书稿/第一卷.v2.history.jsonl")
    assert history_path_for(tmp_path / "notes") == tmp_path / "notes.history.jsonl"
    assert HistoryLog.for_manuscript(tmp_path / "a.txt").path == tmp_path / "a.history.jsonl"


def test_request_and_outcomes_round_trip(tmp_path):
    log = HistoryLog(tmp_path / "chapter1.history.jsonl")
    first, second = new_request_id(), new_request_id()
    assert first != second
    assert log.record_request(first, SETTINGS, CONTEXT, ["候选一", "候选二\n第二行", "候选三"], "zh-novel-rwkv7")
    assert log.record_outcome(first, 1, "accepted")
    assert log.record_outcome(first, 0, "rejected")
    assert log.record_request(second, {**SETTINGS, "seed": 7}, CONTEXT + "候选二", ["甲", "乙"], "zh-novel-rwkv7")
    assert log.record_outcome(second, 0, "accepted-partial", text="甲的前半")
    entries = log.entries()
    assert [e["id"] for e in entries] == [first, second]
    one, two = entries
    assert one["type"] == "request"
    assert one["settings"] == SETTINGS
    assert one["model"] == "zh-novel-rwkv7"
    assert one["candidates"] == ["候选一", "候选二\n第二行", "候选三"]
    assert one["context_sha256"] == hashlib.sha256(CONTEXT.encode("utf-8")).hexdigest()
    assert one["context_tail"] == CONTEXT[-200:] and len(one["context_tail"]) == 200
    assert datetime.fromisoformat(one["time"]).tzinfo is not None
    assert [(o["candidate"], o["action"]) for o in one["outcomes"]] == [(1, "accepted"), (0, "rejected")]
    assert two["outcomes"][0]["action"] == "accepted-partial"
    assert two["outcomes"][0]["text"] == "甲的前半"
    assert "text" not in one["outcomes"][0]
    # One JSON object a line, Chinese kept readable.
    lines = log.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 6
    assert "候选一".encode("utf-8") in lines[0]


def test_short_context_is_kept_whole(tmp_path):
    log = HistoryLog(tmp_path / "h.jsonl")
    log.record_request("r", {}, "短", ["x"], "m")
    assert log.entries()[0]["context_tail"] == "短"


def test_missing_history_is_empty(tmp_path):
    assert HistoryLog(tmp_path / "none.history.jsonl").entries() == []


def test_truncated_last_line_is_skipped_and_appends_recover(tmp_path):
    log = HistoryLog(tmp_path / "h.jsonl")
    log.record_request("a", SETTINGS, CONTEXT, ["一", "二"], "m")
    log.record_outcome("a", 0, "accepted")
    log.record_request("b", SETTINGS, CONTEXT, ["三"], "m")
    data = log.path.read_bytes()
    cut = data[: len(data) - 25]  # a crash in the middle of the last line (inside UTF-8 text, maybe)
    log.path.write_bytes(cut)
    entries = log.entries()
    assert [e["id"] for e in entries] == ["a"]
    assert entries[0]["outcomes"][0]["action"] == "accepted"
    # The next record starts on a line of its own, not glued to the broken one.
    assert log.record_request("c", SETTINGS, CONTEXT, ["四"], "m")
    assert [e["id"] for e in log.entries()] == ["a", "c"]


def test_garbage_lines_and_orphan_outcomes_are_skipped(tmp_path):
    path = tmp_path / "h.jsonl"
    good = json.dumps({"type": "request", "id": "a", "candidates": ["x"]}).encode()
    orphan = json.dumps({"type": "outcome", "id": "zzz", "candidate": 0, "action": "accepted"}).encode()
    path.write_bytes(b"\n".join([b"\xff\xfe not utf-8", b"[1, 2]", b"{broken", good, orphan, b"", b'"str"', b"{\"id\": 5}"]))
    entries = HistoryLog(path).entries()
    assert [e["id"] for e in entries] == ["a"] and entries[0]["outcomes"] == []


def test_line_separator_characters_inside_text_do_not_split_records(tmp_path):
    log = HistoryLog(tmp_path / "h.jsonl")
    weird = "甲\u2028乙\u2029丙\x85丁\x0c戊\r己"
    log.record_request("a", SETTINGS, weird, [weird], "m")
    log.record_outcome("a", 0, "accepted-partial", text=weird)
    (entry,) = log.entries()
    assert entry["candidates"] == [weird]
    assert entry["outcomes"][0]["text"] == weird


def test_bad_action_is_a_programming_error(tmp_path):
    log = HistoryLog(tmp_path / "h.jsonl")
    with pytest.raises(ValueError, match="action"):
        log.record_outcome("a", 0, "maybe")
    with pytest.raises(ValueError, match="accepted text"):
        log.record_outcome("a", 0, "accepted-partial")
    assert not log.path.exists()


def test_unwritable_folder_returns_false_and_a_message(tmp_path):
    log = HistoryLog(tmp_path / "missing-folder" / "h.jsonl")
    assert log.record_request("a", SETTINGS, CONTEXT, ["x"], "m") is False
    assert log.last_error.startswith(f"{log.path}: cannot write the history")
    assert "\n" not in log.last_error
    assert log.entries() == []


def test_read_only_folder_simulated(tmp_path, monkeypatch):
    """As root a chmod'ed folder stays writable, so the refusal is simulated."""
    log = HistoryLog(tmp_path / "h.jsonl")

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(history_module.os, "open", read_only)
    assert log.record_outcome("a", 0, "rejected") is False
    assert "Permission denied" in log.last_error
    monkeypatch.undo()
    assert log.record_outcome("a", 0, "rejected") is True
    assert log.last_error is None


def test_disk_full_during_append_returns_false(tmp_path, monkeypatch):
    log = HistoryLog(tmp_path / "h.jsonl")
    log.record_request("a", SETTINGS, CONTEXT, ["x"], "m")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(history_module.os, "fsync", full)
    assert log.record_outcome("a", 0, "accepted") is False
    assert "No space left on device" in log.last_error


def test_each_append_is_fsynced(tmp_path, monkeypatch):
    log = HistoryLog(tmp_path / "h.jsonl")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(history_module.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    log.record_request("a", SETTINGS, CONTEXT, ["x"], "m")
    log.record_outcome("a", 0, "accepted")
    assert len(synced) == 2


def test_unserialisable_settings_do_not_crash(tmp_path):
    log = HistoryLog(tmp_path / "h.jsonl")
    assert log.record_request("a", {"path": Path("/models/x"), "when": object}, "ctx", ["x"], "m")
    assert log.entries()[0]["settings"]["path"] == str(Path("/models/x"))


def test_a_damaged_line_is_one_warning_naming_the_file_and_line(tmp_path):
    log = HistoryLog(tmp_path / "h.jsonl")
    log.record_request("a", SETTINGS, CONTEXT, ["x"], "m")
    with open(log.path, "ab") as f:
        f.write(b'{"type": "outcome", "id": "a", "cand\n')
    log.record_outcome("a", 0, "accepted")
    assert [e["outcomes"][0]["action"] for e in log.entries()] == ["accepted"]
    assert log.warnings == [f"{log.path}: line 2: a damaged record, skipped"]


def test_a_request_written_again_keeps_its_outcomes_and_the_same_candidates_are_not_rewritten(tmp_path):
    log = HistoryLog(tmp_path / "h.jsonl")
    log.record_request("a", SETTINGS, CONTEXT, ["半", "截"], "m")  # an accept came before it finished
    log.record_outcome("a", 1, "rejected")
    log.record_request("a", SETTINGS, CONTEXT, ["半截话", "截"], "m")
    log.record_request("a", SETTINGS, CONTEXT, ["半截话", "截"], "m")
    assert len(log.path.read_bytes().splitlines()) == 3
    (entry,) = log.entries()
    assert entry["candidates"] == ["半截话", "截"] and entry["outcomes"][0]["action"] == "rejected"


def test_requests_record_their_position_and_the_accept_they_continue(tmp_path):
    log = HistoryLog(tmp_path / "h.jsonl")
    log.track(CONTEXT)
    log.record_request("a", SETTINGS, CONTEXT, ["甲\n乙", "丙"], "m")
    log.record_outcome("a", 0, "accepted", position=len(CONTEXT), inserted="甲\n　　乙")
    log.record_request("b", SETTINGS, CONTEXT + "甲\n　　乙", ["丁"], "m")
    log.record_request("c", SETTINGS, CONTEXT[:10], ["戊"], "m")
    log.record_outcome("c", 0, "accepted", position=10)  # the candidate's text as it is: no "inserted"
    records = [json.loads(line) for line in log.path.read_text(encoding="utf-8").splitlines()]
    a, accept, b, c, accept_c = records
    assert (a["position"], a["parent"], b["parent"], c["parent"]) == (len(CONTEXT), None, ["a", 0], None)
    assert accept["inserted"] == "甲\n　　乙" and accept["position"] == len(CONTEXT)
    assert "inserted" not in accept_c and accept_c["position"] == 10
    # The log follows the text through its accepts: no edit record for them.
    assert log.known_text == CONTEXT[:10] + "戊" + CONTEXT[10:] + "甲\n　　乙"
    assert log.note_text(log.known_text) and len(log.path.read_text(encoding="utf-8").splitlines()) == 5
