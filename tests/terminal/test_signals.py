"""SIGHUP (the terminal closed), SIGTERM and SIGINT while the author types: the studio saves
everything typed, ends, and leaves the terminal as it found it."""

from __future__ import annotations

import signal

import pytest

ORIGINAL = "　　他走进了房间。\n"
TYPED = "她推开窗，看见了海。"


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_while_typing_saves_and_restores_the_terminal(start_studio, sig):
    studio = start_studio(ORIGINAL)
    studio.wait_for("他走进了房间")
    studio.type_text(TYPED, per_key_delay=0.05)
    studio.wait_for(TYPED)  # on screen: the app has every key; no autosave yet (2 s)
    studio.signal(sig)
    status = studio.exit_status(timeout=10)
    assert studio.file_text() == ORIGINAL + TYPED, f"exit status {status}\n{studio.dump()}"
    assert studio.restore_problems() == [], studio.dump()
    assert "Traceback" not in studio.output_text(), studio.output_text()[-3000:]


def test_closing_the_terminal_while_typing_saves_everything(start_studio):
    """The window is closed: SIGHUP from the kernel, and the terminal gone for good. Started afresh,
    so the model is still loading (torch importing in a thread) while the author types and the window closes."""
    studio = start_studio(ORIGINAL, cold=True)
    studio.wait_for("他走进了房间")
    studio.type_text(TYPED, per_key_delay=0.05)
    studio.wait_for(TYPED)
    studio.hangup()
    # it must end, whatever its status; how soon during a load is the silent-server tests' (8 s): here a cold start
    # under the suite's load on 2 cores once took longer than 10 s
    studio.exit_status(timeout=20)
    assert studio.file_text() == ORIGINAL + TYPED


@pytest.fixture
def silent_server():
    """A real listening socket that takes connections and never answers: a model server that hangs."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


@pytest.mark.parametrize("how", ["ctrl+q", "hangup"])
def test_quitting_while_the_model_is_still_opening_ends_at_once_and_saves(start_studio, silent_server, how):
    """The model takes long to open (here a server that never answers, with a timeout of a minute; the same
    for a large file): quitting, or the window closing, does not wait for it."""
    studio = start_studio(ORIGINAL, model={"backend": "openai", "url": f"http://127.0.0.1:{silent_server}/v1",
                                           "timeout_seconds": 60.0})
    studio.wait_for("他走进了房间")
    studio.wait_for("loading")
    studio.type_text(TYPED, per_key_delay=0.05)
    studio.wait_for(TYPED)
    if how == "hangup":
        studio.hangup()
    else:
        studio.press("ctrl+q")
    studio.exit_status(timeout=8)  # the load would hold it for 60 s
    assert studio.file_text() == ORIGINAL + TYPED
    if how == "ctrl+q":
        assert "Traceback" not in studio.output_text(), studio.output_text()[-3000:]
