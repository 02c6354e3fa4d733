"""Work the studio can walk away from: a model load (torch importing, gigabytes read) cannot be
interrupted, and quitting (Ctrl+Q, or SIGHUP when the terminal window closes) must not wait for it.

A Textual thread worker runs in asyncio's default executor, and `asyncio.run` joins that executor
before `App.run` returns: a quit during a load would hang until the load ends. `call_or_walk_away`
runs the work on a daemon thread of its own and waits for it from inside the worker, watching
`is_cancelled` (Textual cancels every worker when the app ends, and `exclusive=True` cancels the
older one), so the worker, and with it the executor, ends at once. The work carries on unwatched;
its outcome is dropped. `work_left_behind()` tells the CLI to end the process without waiting.
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

from textual.worker import get_current_worker

Result = TypeVar("Result")
POLL_SECONDS = 0.05

_running: set[threading.Thread] = set()


class WalkedAway(Exception):
    """The worker was cancelled before its work ended; the work's outcome will never be looked at."""


def call_or_walk_away(work: Callable[..., Result], *args, name: str = "studio-work") -> Result:
    """work(*args) on a daemon thread, from inside a thread worker: its result (or its exception),
    or WalkedAway as soon as the worker is cancelled."""
    worker = get_current_worker()
    outcome: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["result"] = work(*args)
        except BaseException as exc:  # handed to the waiting worker, raised there
            outcome["error"] = exc
        finally:
            done.set()
            _running.discard(thread)

    thread = threading.Thread(target=run, name=name, daemon=True)
    _running.add(thread)
    thread.start()
    while not done.wait(POLL_SECONDS):
        if worker.is_cancelled:
            raise WalkedAway(name)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


def call_back(node, callback: Callable, *args) -> None:
    """From a thread worker: callback(*args) on the UI thread, unless by then the worker has been cancelled (a
    newer worker of its group) or the app is ending or `node` (the screen or widget the callback belongs to) is no
    longer in the app: the widgets it would touch may be gone."""
    worker, app = get_current_worker(), node.app

    def still_wanted() -> bool:
        return not worker.is_cancelled and app.is_running and node.is_attached

    def unless_gone():
        if still_wanted():
            callback(*args)

    if not still_wanted():
        return
    try:
        app.call_from_thread(unless_gone)
    except RuntimeError:  # the app is no longer running
        pass


def work_left_behind() -> bool:
    """Whether work walked away from is still running (the process should end without waiting for it)."""
    return any(thread.is_alive() for thread in list(_running))
