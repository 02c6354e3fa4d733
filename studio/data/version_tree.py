"""The version tree of a manuscript, built from its history records (studio/data/history.py).

Every request is a node at a position in the manuscript; its candidates are its children.
A request whose text before the cursor ended with an accept hangs under that accepted
candidate (its "parent"); others are roots. The path taken at a node is its latest accept
(whole or partial) or restore; the edits the author made between requests are kept with
the request that followed them (Node.edits_before; those after the last, VersionTree.edits_after).

Where things are today: the records are replayed in order. Each node's position, and the
span each path taken inserted, are points that every later change moves (an edit, an
accept, a restore: the span it replaced and the length it put there): a point after the
span shifts by the change in length, one inside it falls to the span's start. A node's
position stays put when text is inserted exactly there (the text before it is the same);
a span's start moves with it. The replay is a few numpy operations a change, so a long
history of a 1,000,000-character book builds at once.

Detached: a node whose context_tail (the 200 characters before it when it was asked for)
is not the text before its position now (the manuscript was edited outside the studio, or
the place was deleted or replaced), or that has no position (files from before positions
were recorded). Detached nodes are shown and kept, never lost; only they cannot be restored
in place (a candidate can still be inserted at the cursor).

Restore (node N, candidate k), precisely:
- it replaces the text from N's position up to the end of the path taken from N: N's
  accepted span, then the span of the continuation of that candidate (its latest child
  request that has a path taken) while each starts exactly where the previous one ends,
  and so on; nothing when nothing was accepted at N (or it went in elsewhere);
- with the branch's text: k's text as it was inserted the last time it was taken (else
  formatted as an accept would format it, with the manuscript's paragraph indent), then the
  text of k's continuation's path taken, and so on down the branch.
So restoring the candidate on the current path gives back today's text unless it was edited
there, and restoring an abandoned branch gives back that branch as it was written.

The views (the f3 dialog, `ai-writer history`) show the path taken straight down: a node is
followed by the requests under its taken candidate (VersionTree.line), and only the requests
under other candidates branch off, under those candidates (VersionTree.branches). So a chapter
written accept after accept reads as one flat list, not thousands of levels deep.

Favourites ({"type": "mark", ...}) and prunes ({"type": "prune", ...}) are records too:
the latest mark of a candidate wins; a pruned node (and what hangs under it) is hidden from
the views but stays in the file and in `nodes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ai_writer.models.textprep import format_continuation, paragraph_indent
from ai_writer.studio.data.history import CONTEXT_TAIL_CHARS, accepted_text

INDENT_LOOKBACK = 10_000  # characters before a position that tell the paragraph indent (as the main screen)
ACCEPTS = ("accepted", "accepted-partial")


@dataclass
class Edit:
    time: str
    position: int
    removed: str  # the first EDIT_TEXT_CHARS of them
    inserted: str
    removed_length: int
    inserted_length: int


@dataclass
class Candidate:
    index: int
    text: str
    fate: str = ""  # the latest: "accepted", "accepted-partial", "rejected", "restored" or ""
    taken: str | None = None  # the text it inserted the last time it was taken (None: never, or not known)
    favourite: bool = False
    children: list["Node"] = field(default_factory=list)


@dataclass
class Node:
    id: str
    order: int  # when it was first recorded, among the requests
    time: str
    position: int | None  # the cursor when it was asked for (None: not recorded)
    context_tail: str
    model: str
    settings: dict
    candidates: list[Candidate]
    parent: tuple[str, int] | None  # (request id, candidate) it continues
    edits_before: list[Edit] = field(default_factory=list)
    pruned: bool = False
    taken: int | None = None  # the candidate on the path taken
    here: int | None = None  # its position in today's manuscript
    span: tuple[int, int] | None = None  # where the path taken's text is today
    detached: bool = False
    _point: int | None = None
    _span_points: tuple[int, int] | None = None
    _tail: str = ""  # the text before it as the recorded changes left it
    _broken: bool = False  # a recorded change replaced the text around it


@dataclass(frozen=True)
class Restore:
    """What the main screen applies (one undo step): text[start:end] (== replaced) becomes `text`."""

    node: str
    candidate: int
    start: int
    end: int
    text: str
    replaced: str
    pieces: tuple  # ((request id, candidate, text), ...): `text` in the branch's pieces


@dataclass(frozen=True)
class Take:
    """A candidate's text to insert at the cursor, as an accept (detached nodes, or by choice)."""

    node: str
    candidate: int
    text: str


class NotPlaced(ValueError):
    """The node has no place in today's manuscript (detached): it cannot be restored in place."""


class _Points:
    """Positions that follow the manuscript's changes; `right` points move with text inserted at them.
    A node's point also has a window: how many characters before it its tail still tells."""

    def __init__(self):
        self.values = np.zeros(64, dtype=np.int64)
        self.right = np.zeros(64, dtype=bool)
        self.window = np.zeros(64, dtype=np.int64)
        self.count = 0

    def add(self, value: int, right: bool = False, window: int = 0) -> int:
        if self.count == len(self.values):
            self.values, self.right, self.window = (np.concatenate([a, np.zeros_like(a)])
                                                    for a in (self.values, self.right, self.window))
        self.values[self.count], self.right[self.count], self.window[self.count] = value, right, window
        self.count += 1
        return self.count - 1

    def touched(self, start: int, removed: int) -> np.ndarray:
        """The points whose window the change overlaps, or that it swallows (ep < h and ep + r > h - window)."""
        values, window = self.values[: self.count], self.window[: self.count]
        return np.flatnonzero((window > 0) & (values > start) & (start + removed > values - window))

    def replace(self, start: int, removed: int, inserted: int) -> None:
        """removed characters at start became inserted characters."""
        if not self.count or (removed == 0 and inserted == 0):
            return
        values, right = self.values[: self.count], self.right[: self.count]
        end = start + removed
        movable = (values > start) | right  # a left point exactly at start keeps its place
        after = (values >= end) & movable
        inside = (values >= start) & (values < end) & movable
        values[inside] = start
        values[after] += inserted - removed


def retail(tail: str, here: int, start: int, removed: int, inserted_end: str, complete: bool) -> str | None:
    """The tail before `here` after the change (None: the change swallowed `here`).

    inserted_end: the end of the inserted text as far as it is known (all of it when complete)."""
    end = start + removed
    if start < here < end:
        return None
    if end <= here - len(tail) or start >= here:
        return tail
    after = tail[len(tail) - (here - end) :] if here > end else ""
    before = tail[: max(0, start - (here - len(tail)))] if complete else ""
    return (before + inserted_end + after)[-CONTEXT_TAIL_CHARS:]


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _edit(record: dict) -> Edit | None:
    position, removed, inserted = (_int(record.get(k)) for k in ("position", "removed_length", "inserted_length"))
    if position is None or removed is None or inserted is None:
        return None
    return Edit(str(record.get("time", "")), position, str(record.get("removed", "")),
                str(record.get("inserted", "")), removed, inserted)


def _parent(value) -> tuple[str, int] | None:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and _int(value[1]) is not None:
        return value[0], value[1]
    return None


@dataclass
class VersionTree:
    nodes: dict[str, Node]  # every request, in the order first recorded (pruned ones too)
    roots: list[Node]
    edits_after: list[Edit]  # edits since the last request
    warnings: list[str]
    text: str | None  # the manuscript the positions are of

    # --- what the views show ---

    @staticmethod
    def line(nodes: list[Node], show_pruned: bool = False) -> list[Node]:
        """These nodes in order, each followed by the requests under its path taken (and theirs):
        a story written straight on reads as one flat line; only other candidates' requests branch off."""
        shown, stack = [], list(reversed(nodes))
        while stack:
            node = stack.pop()
            if node.pruned and not show_pruned:
                continue  # and what hangs under it
            shown.append(node)
            if node.taken is not None:
                stack.extend(reversed(node.candidates[node.taken].children))
        return shown

    @staticmethod
    def branches(node: Node, candidate: Candidate) -> list[Node]:
        """The requests that branch off under a candidate (those under the path taken follow the node instead)."""
        return [] if node.taken == candidate.index else candidate.children

    def set_favourite(self, node_id: str, candidate: int, favourite: bool) -> None:
        self.nodes[node_id].candidates[candidate].favourite = favourite

    def prune(self, node_id: str) -> None:
        self.nodes[node_id].pruned = True

    # --- restoring ---

    @staticmethod
    def continuation(node: Node, candidate: int) -> Node | None:
        """The latest request under the candidate that has a path taken (where that branch went on)."""
        for child in reversed(node.candidates[candidate].children):
            if child.taken is not None:
                return child
        return None

    def path_end(self, node: Node) -> int:
        """Where the text the path taken from `node` inserted ends today (its position if nothing)."""
        if node.here is None:
            raise NotPlaced(node.id)
        end, current, seen = node.here, node, set()
        while current.taken is not None and current.span is not None and current.span[0] == end and current.id not in seen:
            seen.add(current.id)
            end = current.span[1]
            following = self.continuation(current, current.taken)
            if following is None or following.detached or following.here != end:
                break
            current = following
        return end

    def branch_pieces(self, node: Node, candidate: int, indent: str) -> list[tuple[str, int, str]]:
        """(request id, candidate, text) of the branch from (node, candidate) down its path taken."""
        pieces, current, index, seen = [], node, candidate, set()
        while current is not None and current.id not in seen:
            seen.add(current.id)
            chosen = current.candidates[index]
            pieces.append((current.id, index, chosen.taken if chosen.taken is not None
                           else format_continuation(chosen.text, indent)))
            current = self.continuation(current, index)
            index = current.taken if current is not None else None
        return pieces

    def plan_restore(self, node_id: str, candidate: int) -> Restore:
        """The restore of (node, candidate) against today's text (NotPlaced if the node is detached)."""
        node = self.nodes[node_id]
        if node.detached or node.here is None or self.text is None:
            raise NotPlaced(node_id)
        text, start = self.text, node.here
        end = self.path_end(node)
        indent = paragraph_indent(text[max(0, start - INDENT_LOOKBACK) : start])
        pieces = tuple(self.branch_pieces(node, candidate, indent))
        return Restore(node_id, candidate, start, end, "".join(p[2] for p in pieces), text[start:end], pieces)


def build_tree(records: list[dict], text: str | None, warnings: list[str] | None = None) -> VersionTree:
    """The tree of these records (history.HistoryLog.read_records()), placed in `text` (None: not placed)."""
    replay = _Replay()
    for record in records:
        replay.record(record)
    nodes, points = replay.nodes, replay.points
    roots = []
    for node in nodes.values():
        if node._point is not None:
            node.here = int(points.values[node._point])
        if node._span_points is not None:
            node.span = (int(points.values[node._span_points[0]]), int(points.values[node._span_points[1]]))
        node.detached = not _placed(node, text)
        parent = nodes.get(node.parent[0]) if node.parent else None
        if parent is not None and parent.order < node.order and node.parent[1] < len(parent.candidates):
            parent.candidates[node.parent[1]].children.append(node)
        else:
            roots.append(node)
    return VersionTree(nodes, roots, replay.pending, list(warnings or []), text)


class _Replay:
    """The records, one by one: the nodes, and every change moving their points and tails."""

    def __init__(self):
        self.nodes: dict[str, Node] = {}
        self.points = _Points()
        self.owners: dict[int, Node] = {}  # a node's position point -> the node
        self.pending: list[Edit] = []  # edits since the last request

    def record(self, record: dict) -> None:
        kind, request_id = record.get("type"), record.get("id")
        node = self.nodes.get(request_id) if isinstance(request_id, str) else None
        if kind == "request" and isinstance(request_id, str):
            self.request(record, node)
        elif kind == "outcome":
            self.outcome(record, node)
        elif kind == "edit":
            edit = _edit(record)
            if edit is not None:
                complete = len(edit.inserted) == edit.inserted_length
                self.change(edit.position, edit.removed_length, edit.inserted_length,
                            edit.inserted if complete else "", complete)
                self.pending.append(edit)
        elif kind == "restore":
            self.restore(record)
        elif kind == "mark" and node is not None:
            index = _int(record.get("candidate"))
            if index is not None and index < len(node.candidates):
                node.candidates[index].favourite = bool(record.get("favourite"))
        elif kind == "prune" and node is not None:
            node.pruned = bool(record.get("pruned", True))

    def change(self, start: int, removed: int, inserted: int, inserted_end: str, complete: bool) -> None:
        points = self.points
        touched = [(int(i), int(points.values[i])) for i in points.touched(start, removed)]
        points.replace(start, removed, inserted)
        for index, here in touched:
            node = self.owners[index]
            tail = retail(node._tail, here, start, removed, inserted_end, complete)
            node._broken = tail is None
            node._tail = tail or ""
            points.window[index] = len(node._tail)

    def place(self, node: Node, at: int, tail: str) -> None:
        if node._point is None:
            node._point = self.points.add(at, window=len(tail))
            self.owners[node._point] = node
        else:
            self.points.values[node._point], self.points.window[node._point] = at, len(tail)
        node._tail, node._broken = tail, False

    def set_span(self, node: Node, start: int, length: int) -> None:
        if node._span_points is None:
            node._span_points = (self.points.add(0, right=True), self.points.add(0))
        first, last = node._span_points
        self.points.values[first], self.points.values[last] = start, start + length

    def request(self, record: dict, node: Node | None) -> None:
        candidates = record.get("candidates")
        texts = [t if isinstance(t, str) else str(t) for t in candidates] if isinstance(candidates, list) else []
        if node is not None:  # written again: the candidates as they ended
            for index, text in enumerate(texts):
                if index < len(node.candidates):
                    node.candidates[index].text = text
                else:
                    node.candidates.append(Candidate(index, text))
            return
        position, settings = _int(record.get("position")), record.get("settings")
        node = Node(record["id"], len(self.nodes), str(record.get("time", "")), position,
                    str(record.get("context_tail", "")), str(record.get("model", "")),
                    settings if isinstance(settings, dict) else {},
                    [Candidate(i, t) for i, t in enumerate(texts)], _parent(record.get("parent")), self.pending)
        self.pending = []
        if position is not None:
            self.place(node, position, node.context_tail)
        self.nodes[node.id] = node

    def outcome(self, record: dict, node: Node | None) -> None:
        index, action = _int(record.get("candidate")), record.get("action")
        candidate = node.candidates[index] if node is not None and index is not None and index < len(node.candidates) else None
        if action == "rejected" and candidate is not None:
            candidate.fate = "rejected"
        if action not in ACCEPTS:
            return
        request = {"candidates": [c.text for c in node.candidates]} if node is not None else None
        taken = accepted_text(record, request)
        position = _int(record.get("position"))
        if position is not None and taken is not None:
            self.change(position, 0, len(taken), taken, True)
        if candidate is not None:
            candidate.fate, candidate.taken, node.taken = action, taken, index
            if position is not None and taken is not None:
                self.set_span(node, position, len(taken))
            else:  # an older record: where it went is not known
                node.span, node._span_points = None, None

    def restore(self, record: dict) -> None:
        position, removed, chain = _int(record.get("position")), _int(record.get("removed_length")), record.get("chain")
        if position is None or removed is None or not isinstance(chain, list):
            return
        pieces = [p for p in chain if isinstance(p, list) and len(p) == 3 and isinstance(p[0], str)
                  and _int(p[1]) is not None and _int(p[2]) is not None]
        total = sum(p[2] for p in pieces)
        end_tail = record.get("end_tail") if isinstance(record.get("end_tail"), str) else ""
        self.change(position, removed, total, end_tail, len(end_tail) == total)
        at = position
        for number, (request_id, index, length) in enumerate(pieces):
            node = self.nodes.get(request_id)
            if node is not None and index < len(node.candidates):
                if number:  # back in place: the branch's text is before it again
                    self.place(node, at, node.context_tail)
                self.set_span(node, at, length)
                node.taken = index
                node.candidates[index].fate = "restored"
            at += length


def _placed(node: Node, text: str | None) -> bool:
    """Whether the text before the node's position today is the text it was asked after
    (its context_tail, with the changes recorded since laid over it)."""
    if node.here is None or node._broken:
        return False
    if text is None:
        return True
    tail = node._tail
    return len(tail) <= node.here <= len(text) and text[node.here - len(tail) : node.here] == tail
