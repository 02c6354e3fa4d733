"""Hands generation events from the service's thread to the UI thread in batches.

The generation service calls `push` on its own thread for every event; the app
drains the buffer on a timer (at most `max_fps` times a second), so a burst of
characters becomes one redraw and the UI thread never waits for the model.
"""

from __future__ import annotations

import threading

from ai_writer.backends.writing.generation import Chunk, Reading


class StreamBuffer:
    def __init__(self):
        self._lock = threading.Lock()
        self._events: list = []

    def push(self, event) -> None:
        with self._lock:
            last = self._events[-1] if self._events else None
            if (
                isinstance(event, Chunk)
                and isinstance(last, Chunk)
                and last.request_id == event.request_id
                and last.index == event.index
            ):
                self._events[-1] = Chunk(event.request_id, event.index, last.text + event.text)
            elif isinstance(event, Reading) and isinstance(last, Reading) and last.request_id == event.request_id:
                self._events[-1] = event  # progress: only the latest counts
            else:
                self._events.append(event)

    def drain(self) -> list:
        with self._lock:
            events, self._events = self._events, []
        return events
