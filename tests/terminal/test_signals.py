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
    studio.exit_status(timeout=10)  # it must end, whatever its status
    assert studio.file_text() == ORIGINAL + TYPED
