"""studio.data.version_tree: the tree built from the history records, placed in today's manuscript."""

from __future__ import annotations

import json
import time

import pytest

from ai_writer.models.textprep import format_continuation, paragraph_indent
from ai_writer.studio.data.history import HistoryLog
from ai_writer.studio.data.version_tree import NotPlaced, build_tree

START = "　　第一章　风起\n　　夜色如墨，他推开了门。"


class Session:
    """What the main screen does, without the screen: the text, a cursor at its end, the log."""

    def __init__(self, path, text=START, prefix="r"):
        self.log = HistoryLog(path)
        self.prefix = prefix
        self.text = text
        self.log.track(text)
        self.count = 0

    def generate(self, candidates, at=None) -> str:
        self.log.note_text(self.text)
        self.count += 1
        request_id = f"{self.prefix}{self.count}"
        cursor = len(self.text) if at is None else at
        assert self.log.record_request(request_id, {"length": 12}, self.text[:cursor], candidates, "fake")
        self.candidates, self.cursor = candidates, cursor
        return request_id

    def accept(self, request_id, index, length=None):
        self.log.note_text(self.text)
        taken = self.candidates[index] if length is None else self.candidates[index][:length]
        inserted = format_continuation(taken, paragraph_indent(self.text[: self.cursor]))
        self.text = self.text[: self.cursor] + inserted + self.text[self.cursor :]
        action = "accepted" if length is None else "accepted-partial"
        assert self.log.record_outcome(request_id, index, action, taken if length is not None else None,
                                       position=self.cursor, inserted=inserted)
        self.cursor += len(inserted)
        return inserted

    def edit(self, start, end, new):
        self.text = self.text[:start] + new + self.text[end:]

    def restore(self, tree, request_id, index):
        plan = tree.plan_restore(request_id, index)
        assert self.text[plan.start : plan.end] == plan.replaced
        self.log.note_text(self.text)
        self.text = self.text[: plan.start] + plan.text + self.text[plan.end :]
        assert self.log.record_restore(plan)
        return plan

    def tree(self, text=None, log=None):
        log = log or self.log
        return build_tree(log.read_records(), self.text if text is None else text, log.warnings)


@pytest.fixture
def session(tmp_path):
    return Session(tmp_path / "novel.history.jsonl")


def test_requests_candidates_and_the_path_taken(session):
    first = session.generate(["他走了进去。", "风吹灭了灯。", "门外无人。"])
    at_first = len(session.text)
    taken = session.accept(first, 1)
    second = session.generate(["屋里很暗。", "他停下脚步。"])
    session.log.record_outcome(second, 0, "rejected")
    session.accept(second, 1, length=3)
    tree = session.tree()
    assert [n.id for n in tree.roots] == [first]
    one, two = tree.nodes[first], tree.nodes[second]
    assert one.candidates[1].children == [two] and two.parent == (first, 1)
    assert (one.taken, one.candidates[1].fate, one.candidates[0].fate) == (1, "accepted", "")
    assert (two.taken, two.candidates[0].fate, two.candidates[1].fate) == (1, "rejected", "accepted-partial")
    assert two.candidates[1].taken == "他停下"
    assert one.here == one.position == at_first and two.here == at_first + len(taken)
    assert one.span == (at_first, at_first + len(taken)) and two.span == (two.here, two.here + 3)
    assert not one.detached and not two.detached
    assert session.text[one.span[0] : one.span[1]] == "风吹灭了灯。"
    # The path taken reads as one line; other candidates would branch off.
    assert [n.id for n in tree.line(tree.roots)] == [first, second]
    assert tree.branches(one, one.candidates[1]) == [] and tree.branches(one, one.candidates[0]) == []


def test_a_request_elsewhere_is_a_root_and_typing_after_an_accept_breaks_the_parent(session):
    first = session.generate(["一。", "二。"])
    session.accept(first, 0)
    session.text += "他想"  # typed: the text before the cursor no longer ends with the accept
    second = session.generate(["了想。"])
    third = session.generate(["甲"], at=5)
    tree = session.tree()
    assert [n.id for n in tree.roots] == [first, second, third]
    assert tree.nodes[second].parent is None and tree.nodes[third].here == 5


def test_edits_between_requests_are_recorded_and_move_the_nodes_after_them(session):
    first = session.generate(["他走了进去。"])
    session.accept(first, 0)
    at_first = session.tree().nodes[first].here
    session.edit(2, 4, "序章")  # "第一" -> "序章": same length
    session.edit(0, 0, "前言\n")  # 3 characters before everything
    second = session.generate(["屋里很暗。"])
    records = session.log.read_records()
    (edit,) = [r for r in records if r["type"] == "edit"]
    assert (edit["position"], edit["removed"], edit["inserted"]) == (0, "　　第一", "前言\n　　序章")
    assert edit["length"] == len(session.text) and len(edit["sha1"]) == 40
    tree = session.tree()
    one, two = tree.nodes[first], tree.nodes[second]
    assert one.here == at_first + 3 and not one.detached
    assert session.text[one.span[0] : one.span[1]] == "他走了进去。"
    assert [e.inserted for e in two.edits_before] == ["前言\n　　序章"]
    assert two.parent == (first, 0)  # the edit was before the accept: the text still ends with it
    # No change, no edit record.
    session.log.note_text(session.text)
    assert len(session.log.read_records()) == len(records)


def test_edit_records_are_bounded_and_a_million_characters_are_cheap(tmp_path):
    book = "他抬头望向远方，" * 125_000
    session = Session(tmp_path / "h.jsonl", book)
    started = time.perf_counter()
    session.edit(10, 10, "新" * 9000)
    session.generate(["甲"])
    elapsed = time.perf_counter() - started
    (edit,) = [r for r in session.log.read_records() if r["type"] == "edit"]
    assert edit["inserted_length"] == 9000 and len(edit["inserted"]) == 4000
    assert session.log.path.stat().st_size < 30_000  # no copy of the book
    assert elapsed < 1.0


def test_the_tree_survives_reopening_and_the_next_session_continues_the_last_accept(session, tmp_path):
    first = session.generate(["一。", "二。"])
    session.accept(first, 1)
    session.log.record_mark(first, 0, True)
    again = Session(session.log.path, session.text, prefix="s")  # the studio opened again
    second = again.generate(["三。"])
    tree = again.tree()
    assert [n.id for n in tree.roots] == [first]
    assert tree.nodes[second].parent == (first, 1)
    assert tree.nodes[first].candidates[0].favourite
    assert json.loads(again.log.path.read_text(encoding="utf-8").splitlines()[-1])["parent"] == [first, 1]


def test_a_damaged_line_is_skipped_with_a_warning_never_the_whole_file(session):
    first = session.generate(["一。"])
    session.accept(first, 0)
    second = session.generate(["二。"])
    path = session.log.path
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1][:30]  # the accept's line, cut short
    path.write_bytes(b"\n".join(lines))
    tree = session.tree()
    assert set(tree.nodes) == {first, second}
    assert tree.warnings == [f"{path}: line 2: a damaged record, skipped"]
    assert tree.nodes[first].taken is None  # what that line said is lost, nothing else


def test_a_manuscript_edited_outside_makes_nodes_detached_not_lost(session):
    first = session.generate(["他走了进去。"])
    session.accept(first, 0)
    second = session.generate(["屋里很暗。"])
    session.accept(second, 0)
    outside = session.text.replace("走了", "跑了")  # another program, no edit record
    tree = session.tree(text=outside)
    assert not tree.nodes[first].detached  # the text before it is as it was
    assert tree.nodes[second].detached and tree.nodes[second] in tree.line(tree.roots)
    with pytest.raises(NotPlaced):
        tree.plan_restore(second, 0)
    # The whole chapter gone: every node detached, all still there.
    gone = session.tree(text="别的书。")
    assert all(n.detached for n in gone.nodes.values()) and len(gone.nodes) == 2


def test_favourites_and_prunes_are_records_and_prunes_hide_what_hangs_under(session):
    first = session.generate(["一。", "二。"])
    session.accept(first, 0)
    second = session.generate(["三。"])
    session.accept(second, 0)
    third = session.generate(["四。"])
    log = session.log
    log.record_mark(first, 1, True)
    log.record_mark(second, 0, True)
    log.record_mark(second, 0, False)  # the latest mark wins
    assert session.tree().nodes[first].candidates[1].favourite
    assert not session.tree().nodes[second].candidates[0].favourite
    log.record_prune(second)
    tree = session.tree()
    assert tree.nodes[second].pruned and second in tree.nodes and third in tree.nodes
    assert [n.id for n in tree.line(tree.roots)] == [first]
    assert [n.id for n in tree.line(tree.roots, show_pruned=True)] == [first, second, third]
    assert [json.loads(line)["type"] for line in log.path.read_text(encoding="utf-8").splitlines()][-4:] == \
        ["mark", "mark", "mark", "prune"]


def test_an_old_format_file_still_reads(tmp_path):
    path = tmp_path / "old.history.jsonl"
    records = [
        {"type": "request", "id": "a", "time": "2025-01-02T03:04:05+08:00", "model": "m", "settings": {},
         "context_sha256": "0" * 64, "context_tail": "他推开了门。", "candidates": ["一", "二"]},
        {"type": "outcome", "id": "a", "time": "2025-01-02T03:04:09+08:00", "candidate": 1, "action": "accepted"},
        {"type": "outcome", "id": "a", "time": "2025-01-02T03:04:10+08:00", "candidate": 0, "action": "rejected"},
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    log = HistoryLog(path)
    tree = build_tree(log.read_records(), START + "二")
    (node,) = tree.roots
    assert node.position is None and node.detached and node.span is None
    assert (node.taken, [c.fate for c in node.candidates]) == (1, ["rejected", "accepted"])
    assert log.entries()[0]["candidates"] == ["一", "二"]
    # The next session's request continues it (its accept, found in the file's end).
    log.track(START + "二")
    assert log.record_request("b", {}, START + "二", ["三"], "m")
    assert build_tree(log.read_records(), START + "二").nodes["b"].parent == ("a", 1)


def test_restore_replaces_the_path_taken_and_brings_a_branch_back(session):
    first = session.generate(["他走了进去。", "风\n吹灭了灯。"])
    start = len(session.text)
    session.accept(first, 0)
    second = session.generate(["屋里很暗。"])
    session.accept(second, 0)
    session.text += "他想。"  # typed after the path: kept by a restore
    written = session.text
    tree = session.tree()
    assert tree.path_end(tree.nodes[first]) == start + len("他走了进去。屋里很暗。")
    plan = session.restore(tree, first, 1)
    assert (plan.start, plan.replaced) == (start, "他走了进去。屋里很暗。")
    assert plan.text == "风\n　　吹灭了灯。"  # an accept's paragraph indent
    assert session.text == written[:start] + "风\n　　吹灭了灯。他想。"
    tree = session.tree()
    one, two = tree.nodes[first], tree.nodes[second]
    assert (one.taken, one.candidates[1].fate) == (1, "restored") and two.detached
    assert tree.path_end(one) == start + len(plan.text)
    # The old branch, with its continuation, comes back whole; its request is in place again.
    plan = session.restore(tree, first, 0)
    assert plan.text == "他走了进去。屋里很暗。" and [p[0] for p in plan.pieces] == [first, second]
    assert session.text == written
    tree = session.tree()
    assert not tree.nodes[second].detached and tree.nodes[second].here == start + len("他走了进去。")
    assert tree.nodes[first].taken == 0
    # Restoring what is there changes nothing.
    again = tree.plan_restore(first, 0)
    assert again.text == again.replaced


def test_restore_where_nothing_was_accepted_inserts_at_the_node(session):
    first = session.generate(["一。", "二。"])
    at = len(session.text)
    session.text += "后来的字。"
    plan = session.tree().plan_restore(first, 1)
    assert (plan.start, plan.end, plan.text) == (at, at, "二。")


def test_a_long_history_in_a_long_book_builds_quickly(tmp_path):
    session = Session(tmp_path / "h.jsonl", "他抬头望向远方，" * 25_000)
    for number in range(1500):  # revising near the start: every change moves every later node
        request = session.generate(["一二三。", "四五六。"], at=100 + number)
        session.accept(request, number % 2)
        session.edit(50, 51, "改")
    started = time.perf_counter()
    tree = session.tree()
    assert time.perf_counter() - started < 1.0
    assert len(tree.nodes) == 1500 and not tree.nodes["r1500"].detached


def test_a_tail_follows_recorded_changes_as_far_as_they_are_known():
    import random

    from ai_writer.studio.data.version_tree import retail

    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice("甲乙丙丁") for _ in range(rng.randint(0, 40)))
        here = rng.randint(0, len(text))
        tail = text[max(0, here - rng.randint(0, 12)) : here]
        start = rng.randint(0, len(text))
        removed = rng.randint(0, len(text) - start)
        inserted = "".join(rng.choice("戊己") for _ in range(rng.randint(0, 6)))
        complete = rng.random() < 0.7
        known = inserted if complete else inserted[len(inserted) // 2 :]
        new = retail(tail, here, start, removed, known, complete)
        if start < here < start + removed:
            assert new is None
            continue
        after = text[: start] + inserted + text[start + removed :]
        moved = here if here <= start else here + len(inserted) - removed
        assert after[:moved].endswith(new), (text, here, tail, start, removed, inserted, new)
        if start >= here or start + removed <= here - len(tail):
            assert new == tail  # the change is not in the tail's window
        elif complete:  # all of it known: exactly the text from where the tail or the change began
            assert new == after[min(start, here - len(tail)) : moved]


def test_a_recorded_edit_that_deletes_a_nodes_place_detaches_it(session):
    first = session.generate(["他走了进去。"])
    session.accept(first, 0)
    second = session.generate(["屋里很暗。"])
    session.accept(second, 0)
    span = session.tree().nodes[first].span
    session.edit(span[0] + 1, span[1] + 2, "")  # across the second request's place
    session.log.note_text(session.text)
    tree = session.tree()
    assert not tree.nodes[first].detached and tree.nodes[second].detached
