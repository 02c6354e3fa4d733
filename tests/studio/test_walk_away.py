"""studio.walk_away: a thread worker that stops waiting for its work when cancelled, and results that reach the UI
only while someone is there to take them."""

from __future__ import annotations

import threading
import time

import pytest
from textual.worker import active_worker

from ai_writer.studio.walk_away import WalkedAway, call_back, call_or_walk_away, work_left_behind


class FakeWorker:
    def __init__(self):
        self.is_cancelled = False


class FakeApp:
    def __init__(self):
        self.is_running = True
        self.ran = []
        self.ends_before_it_runs = False

    def call_from_thread(self, callback, *args):
        self.ran.append("scheduled")
        if self.ends_before_it_runs:  # the app began closing between the worker's call and the UI thread's turn
            self.is_running = False
        callback(*args)


class FakeNode:
    def __init__(self, app):
        self.app, self.is_attached = app, True


@pytest.fixture
def worker():
    found = FakeWorker()
    token = active_worker.set(found)
    yield found
    active_worker.reset(token)


def test_the_work_gives_its_result_or_raises_its_error(worker):
    assert call_or_walk_away(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        call_or_walk_away(lambda: 1 / 0)


def test_a_cancelled_worker_stops_waiting_at_once_and_the_work_carries_on(worker):
    release, finished = threading.Event(), threading.Event()

    def slow():
        release.wait(10)
        finished.set()

    threading.Timer(0.1, lambda: setattr(worker, "is_cancelled", True)).start()
    begun = time.monotonic()
    with pytest.raises(WalkedAway):
        call_or_walk_away(slow, name="slow")
    assert time.monotonic() - begun < 2 and not finished.is_set()
    assert work_left_behind()
    release.set()
    assert finished.wait(5)
    for _ in range(100):
        if not work_left_behind():
            break
        time.sleep(0.01)
    assert not work_left_behind()


@pytest.mark.parametrize("gone", ["nothing", "cancelled", "app ending", "node detached", "app ending meanwhile"])
def test_a_result_reaches_the_ui_only_while_it_is_wanted(worker, gone):
    app = FakeApp()
    node = FakeNode(app)
    if gone == "cancelled":
        worker.is_cancelled = True
    elif gone == "app ending":
        app.is_running = False
    elif gone == "node detached":
        node.is_attached = False
    elif gone == "app ending meanwhile":
        app.ends_before_it_runs = True
    got = []
    call_back(node, got.append, "engine")
    assert got == (["engine"] if gone == "nothing" else [])
    assert app.ran == (["scheduled"] if gone in ("nothing", "app ending meanwhile") else [])
