"""The generation history: every request, and what became of each candidate.

Kept as JSON lines beside the manuscript (chapter1.txt -> chapter1.history.jsonl),
one record a line, each appended with a single write and fsynced, so a crash
loses at most the line being written. Two kinds of record:

    {"type": "request", "id", "time", "model", "settings", "context_sha256",
     "context_tail", "candidates": [...]}
    {"type": "outcome", "id", "time", "candidate", "action", ["text"]}

`entries()` reads them back, each request with its "outcomes" list; a damaged
or truncated line (a crash mid-write) is skipped, never an error. Writing
problems (read-only folder, full disk) never raise: the method returns False
and `last_error` holds one line for the UI to show.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

ACTIONS = ("accepted", "accepted-partial", "rejected")
CONTEXT_TAIL_CHARS = 200


def history_path_for(manuscript_path) -> Path:
    """NAME.history.jsonl beside NAME.txt."""
    path = Path(manuscript_path)
    return path.with_name(f"{path.stem}.history.jsonl")


def new_request_id() -> str:
    return uuid.uuid4().hex


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


class HistoryLog:
    """Appends to, and reads back, one history file."""

    def __init__(self, path):
        self.path = Path(path)
        self.last_error: str | None = None

    @classmethod
    def for_manuscript(cls, manuscript_path) -> "HistoryLog":
        return cls(history_path_for(manuscript_path))

    # --- writing ---

    def record_request(self, request_id: str, settings: dict, context_text: str, candidates: list[str], model: str) -> bool:
        """Keep a generation request and its candidates; False (and last_error) if it could not be written."""
        return self._append(
            {
                "type": "request",
                "id": str(request_id),
                "time": _now(),
                "model": model,
                "settings": settings,
                "context_sha256": hashlib.sha256(context_text.encode("utf-8", "surrogatepass")).hexdigest(),
                "context_tail": context_text[-CONTEXT_TAIL_CHARS:],
                "candidates": list(candidates),
            }
        )

    def record_outcome(self, request_id: str, candidate_index: int, action: str, text: str | None = None) -> bool:
        """Keep what the author did with a candidate; `text` is the part kept for "accepted-partial"."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        if action == "accepted-partial" and text is None:
            raise ValueError("an accepted-partial outcome needs the accepted text")
        record = {"type": "outcome", "id": str(request_id), "time": _now(), "candidate": int(candidate_index), "action": action}
        if text is not None:
            record["text"] = text
        return self._append(record)

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

    def entries(self) -> list[dict]:
        """Requests in order, each with "outcomes": [outcome records]; [] if there is no history."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._failed(f"{self.path}: cannot read the history ({exc.strerror or exc})")
            return []
        requests: dict[str, dict] = {}
        # Split on b"\n" only: str.splitlines would also split at U+2028 inside a text.
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError and JSONDecodeError both
                log.info("%s: line %d: damaged history record skipped", self.path, number)
                continue
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                continue
            if record.get("type") == "request":
                requests[record["id"]] = {**record, "outcomes": []}
            elif record.get("type") == "outcome" and record["id"] in requests:
                requests[record["id"]]["outcomes"].append(record)
        return list(requests.values())
