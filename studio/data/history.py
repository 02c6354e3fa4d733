"""The generation history: every request, what became of each candidate, and the edits between.

Kept as JSON lines beside the manuscript (chapter1.txt -> chapter1.history.jsonl),
one self-contained record a line, each appended with a single write and fsynced, so a
crash loses at most the line being written. The file is only ever appended to.

Positions are character offsets in the manuscript as the editor holds it (line breaks
as "\\n"). The records:

    {"type": "request", "id", "time", "model", "settings", "context_sha256", "context_tail",
     "candidates": [...], "position", "parent": [request id, candidate] | null}
        candidates asked for at `position` (the cursor); context_tail is the last 200
        characters before it. `parent` is the accept this request continues: the text
        before the cursor ended with the text that accept inserted. A request written
        again under the same id (an accept or reject came before it finished) gives
        the candidates as they ended.
    {"type": "outcome", "id", "time", "candidate", "action", ["text"], ["position"], ["inserted"]}
        action: accepted / accepted-partial (text: the part taken) / rejected. An accept
        says where it went in (position) and, when the manuscript's paragraph indent
        changed it, the text it really inserted (inserted).
    {"type": "edit", "time", "position", "removed_length", "inserted_length", "removed",
     "inserted", "length", "sha1"}
        the author changed the manuscript (other than by an accept or a restore) since the
        last record: the one span that changed (text/changes.py), its removed and inserted
        text capped at EDIT_TEXT_CHARS each, and the whole text's length and sha1 after.
        Written before the request (or accept, restore, history view) that follows.
    {"type": "restore", "id", "time", "candidate", "position", "removed_length", "removed",
     "chain": [[request id, candidate, length], ...]}
        a branch of the version tree put back: the text from `position` (removed_length
        characters, the first EDIT_TEXT_CHARS kept) replaced by the pieces in `chain`,
        in order (studio/data/version_tree.py says what a restore replaces).
    {"type": "mark", "id", "candidate", "favourite": true | false}
    {"type": "prune", "id"}                     hidden from the tree view, kept in the file

Files written before positions were kept (request and outcome records only) still read:
their requests have no position and are shown as detached. `read_records()` skips a
damaged or truncated line (a crash mid-write) with one warning naming the file and line,
never the whole file. Writing problems (read-only folder, full disk) never raise: the
method returns False and `last_error` holds one line for the UI to show.

Edits are found cheaply: the log keeps the text as of its last record (one string,
shared with the editor's, not a copy per request), and `note_text()` compares it with the
text now by a common prefix/suffix scan.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections import deque
from datetime import datetime
from pathlib import Path

from ai_writer.studio.data.text_changes import changed_span

log = logging.getLogger(__name__)

ACTIONS = ("accepted", "accepted-partial", "rejected")
CONTEXT_TAIL_CHARS = 200
EDIT_TEXT_CHARS = 4000  # of an edit's removed and inserted text, each; the lengths are always whole
RECENT_ACCEPTS = 32  # accepts remembered for telling a request's parent
SEED_BYTES = 1 << 18  # of the file's end read to find the accepts of earlier sessions


def history_path_for(manuscript_path) -> Path:
    """NAME.history.jsonl beside NAME.txt."""
    path = Path(manuscript_path)
    return path.with_name(f"{path.stem}.history.jsonl")


def new_request_id() -> str:
    return uuid.uuid4().hex


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def text_sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def parse_records(data: bytes, name: str, first_line: int = 1) -> tuple[list[dict], list[str]]:
    """The records in `data`, in order, and one warning per damaged line ("NAME: line N: ...")."""
    records, warnings = [], []
    # Split on b"\n" only: str.splitlines would also split at U+2028 inside a text.
    for number, raw in enumerate(data.split(b"\n"), start=first_line):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError both
            warnings.append(f"{name}: line {number}: a damaged record, skipped")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("type"), str):
            warnings.append(f"{name}: line {number}: not a history record, skipped")
            continue
        records.append(record)
    return records, warnings


def accepted_text(record: dict, request: dict | None) -> str | None:
    """The text an accept record put into the manuscript (None if it cannot be told)."""
    if isinstance(record.get("inserted"), str):
        return record["inserted"]
    if isinstance(record.get("text"), str):
        return record["text"]
    candidates = request.get("candidates") if request else None
    index = record.get("candidate")
    if isinstance(candidates, list) and isinstance(index, int) and 0 <= index < len(candidates):
        text = candidates[index]
        return text if isinstance(text, str) else None
    return None


class HistoryLog:
    """Appends to, and reads back, one history file; keeps the text as of its last record."""

    def __init__(self, path):
        self.path = Path(path)
        self.last_error: str | None = None
        self.warnings: list[str] = []  # of the last read
        self.known_revision = 0  # counts every change of known_text (a caller may skip a comparison)
        self.known_text: str | None = None  # the manuscript as of the last record (None: not followed)
        self._recent: deque = deque(maxlen=RECENT_ACCEPTS)  # (request id, candidate, its inserted text's tail)
        self._seeded = False
        self._written: dict[str, tuple] = {}  # request id -> the candidates last written for it

    @property
    def known_text(self) -> str | None:
        return self._known_text

    @known_text.setter
    def known_text(self, text: str | None) -> None:
        self._known_text = text
        self.known_revision += 1

    @classmethod
    def for_manuscript(cls, manuscript_path) -> "HistoryLog":
        return cls(history_path_for(manuscript_path))

    # --- following the manuscript ---

    def track(self, text: str) -> None:
        """The manuscript as it is now (just opened): later edits are measured from it."""
        self.known_text = text

    def follow(self, text: str, previous: "HistoryLog | None" = None) -> None:
        """Start following the manuscript just opened; when it is the same file read again (a reload),
        what changed on disk since `previous` (its log) last knew it is an edit record."""
        if previous is None or previous.path != self.path or previous.known_text is None:
            self.track(text)
            return
        self.known_text, self._recent, self._seeded = previous.known_text, previous._recent, previous._seeded
        self._written = previous._written
        self.note_text(text)

    def note_text(self, text: str) -> bool:
        """Write an edit record if the manuscript changed since the last record; False if that failed."""
        old = self.known_text
        self.known_text = text
        if old is None:
            return True
        change = changed_span(old, text)
        if change is None:
            return True
        return self._append({
            "type": "edit", "time": _now(), "position": change.position,
            "removed_length": len(change.removed), "inserted_length": len(change.inserted),
            "removed": change.removed[:EDIT_TEXT_CHARS], "inserted": change.inserted[:EDIT_TEXT_CHARS],
            "length": len(text), "sha1": text_sha1(text),
        })

    def _replace_known(self, start: int, end: int, text: str) -> None:
        known = self.known_text
        if known is not None:
            self.known_text = known[:start] + text + known[end:]

    def parent_for(self, context_text: str) -> list | None:
        """[request id, candidate] of the latest accept the text before the cursor ends with, else None."""
        if not self._seeded:
            self._seed()
        for request_id, candidate, inserted in reversed(self._recent):
            if inserted and context_text.endswith(inserted):
                return [request_id, candidate]
        return None

    def _seed(self) -> None:
        """The accepts of earlier sessions, from the file's last SEED_BYTES."""
        self._seeded = True
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - SEED_BYTES))
                data = f.read()
        except OSError:
            return
        if size > SEED_BYTES:
            data = data[data.find(b"\n") + 1 :]  # the first line may start before the chunk
        records, _ = parse_records(data, str(self.path))
        requests: dict[str, dict] = {}
        found = []
        for record in records:
            kind, request_id = record.get("type"), record.get("id")
            if kind == "request" and isinstance(request_id, str):
                requests[request_id] = record
            elif kind == "outcome" and record.get("action") in ("accepted", "accepted-partial"):
                text = accepted_text(record, requests.get(request_id))
                if text is not None:
                    found.append((request_id, record.get("candidate"), text[-CONTEXT_TAIL_CHARS:]))
            elif kind == "restore" and isinstance(record.get("chain"), list) and record["chain"]:
                last = record["chain"][-1]
                if isinstance(last, list) and len(last) == 3 and isinstance(record.get("end_tail"), str):
                    found.append((last[0], last[1], record["end_tail"]))
        self._recent.extend(found[-RECENT_ACCEPTS:])

    def _remember(self, request_id: str, candidate: int, inserted: str) -> None:
        """An accept (or the end of a restore) a later request may continue from."""
        if not self._seeded:
            self._seed()
        self._recent.append((request_id, candidate, inserted[-CONTEXT_TAIL_CHARS:]))

    # --- writing ---

    def record_request(self, request_id: str, settings: dict, context_text: str, candidates: list[str], model: str,
                       position: int | None = None) -> bool:
        """Keep a generation request and its candidates; False (and last_error) if it could not be written.

        context_text: the manuscript before the cursor; position: the cursor (default: its length).
        Written again for the same id only when its candidates changed."""
        request_id = str(request_id)
        if self._written.get(request_id) == tuple(candidates):
            return True
        first = request_id not in self._written
        self._written[request_id] = tuple(candidates)
        record = {
            "type": "request",
            "id": request_id,
            "time": _now(),
            "model": model,
            "settings": settings,
            "context_sha256": hashlib.sha256(context_text.encode("utf-8", "surrogatepass")).hexdigest(),
            "context_tail": context_text[-CONTEXT_TAIL_CHARS:],
            "candidates": list(candidates),
            "position": len(context_text) if position is None else int(position),
        }
        if first:
            record["parent"] = self.parent_for(context_text)
        return self._append(record)

    def record_outcome(self, request_id: str, candidate_index: int, action: str, text: str | None = None,
                       position: int | None = None, inserted: str | None = None) -> bool:
        """Keep what the author did with a candidate; `text` is the part kept for "accepted-partial".

        For an accept, position: where it went in; inserted: the text really inserted there
        (kept only when it differs from the candidate's text or `text`)."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        if action == "accepted-partial" and text is None:
            raise ValueError("an accepted-partial outcome needs the accepted text")
        request_id = str(request_id)
        record = {"type": "outcome", "id": request_id, "time": _now(), "candidate": int(candidate_index), "action": action}
        if text is not None:
            record["text"] = text
        if action != "rejected" and position is not None:
            record["position"] = int(position)
            written = self._written.get(request_id)
            plain = text if text is not None else (
                written[candidate_index] if written and 0 <= candidate_index < len(written) else None)
            if inserted is not None and inserted != plain:
                record["inserted"] = inserted
            taken = inserted if inserted is not None else plain
            if taken is not None:
                self._remember(request_id, int(candidate_index), taken)
                self._replace_known(int(position), int(position), taken)
        return self._append(record)

    def record_restore(self, restore) -> bool:
        """Keep a restore (version_tree.Restore): what it replaced and the pieces it put there."""
        self._replace_known(restore.start, restore.end, restore.text)
        chain = [[request_id, candidate, len(text)] for request_id, candidate, text in restore.pieces]
        if restore.pieces:
            request_id, candidate, text = restore.pieces[-1]
            self._remember(request_id, candidate, text)
        return self._append({
            "type": "restore", "id": restore.node, "time": _now(), "candidate": restore.candidate,
            "position": restore.start, "removed_length": restore.end - restore.start,
            "removed": restore.replaced[:EDIT_TEXT_CHARS], "chain": chain,
            "end_tail": restore.text[-CONTEXT_TAIL_CHARS:],
        })

    def record_mark(self, request_id: str, candidate_index: int, favourite: bool) -> bool:
        return self._append({"type": "mark", "id": str(request_id), "time": _now(),
                             "candidate": int(candidate_index), "favourite": bool(favourite)})

    def record_prune(self, request_id: str) -> bool:
        return self._append({"type": "prune", "id": str(request_id), "time": _now()})

    def _append(self, record: dict) -> bool:
        try:
            line = json.dumps(record, ensure_ascii=False, default=str).encode("utf-8", "backslashreplace") + b"\n"
        except (TypeError, ValueError) as exc:  # e.g. a circular settings dict
            return self._failed(f"{self.path}: cannot record the history ({exc})")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
        except OSError as exc:
            return self._failed(f"{self.path}: cannot write the history ({exc.strerror or exc})")
        try:
            if self._ends_mid_line():
                line = b"\n" + line  # a crash cut the last line short: start a fresh one
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            return self._failed(f"{self.path}: cannot write the history ({exc.strerror or exc})")
        finally:
            os.close(fd)
        self.last_error = None
        return True

    def _ends_mid_line(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"

    def _failed(self, message: str) -> bool:
        log.warning("%s", message)
        self.last_error = message
        return False

    # --- reading ---

    def read_records(self) -> list[dict]:
        """Every record in order ([] if there is no history); damaged lines go to `warnings`."""
        self.warnings = []
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._failed(f"{self.path}: cannot read the history ({exc.strerror or exc})")
            self.warnings = [self.last_error]
            return []
        records, self.warnings = parse_records(data, str(self.path))
        for warning in self.warnings:
            log.warning("%s", warning)
        return records

    def entries(self) -> list[dict]:
        """Requests in order, each with "outcomes": [outcome records]; [] if there is no history."""
        requests: dict[str, dict] = {}
        for record in self.read_records():
            if not isinstance(record.get("id"), str):
                continue
            if record["type"] == "request":
                outcomes = requests[record["id"]]["outcomes"] if record["id"] in requests else []
                requests[record["id"]] = {**record, "outcomes": outcomes}
            elif record["type"] == "outcome" and record["id"] in requests:
                requests[record["id"]]["outcomes"].append(record)
        return list(requests.values())
