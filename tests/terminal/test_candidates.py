"""Generating and accepting candidates by every route a terminal offers."""

from __future__ import annotations

import time

import pytest

from tests.terminal.harness import alt, ctrl, wait_file

ORIGINAL = "　　他走进了房间。\n"
LONG = 1500  # characters: streams for a second or so
SHORT = {"generation": {"candidates": 3, "length": 24, "banned_chars": "\n"}, "sampling": {"seed": 7}}


def generated(start_studio, **sections):
    studio = start_studio(ORIGINAL, **(sections or SHORT))
    studio.wait_for("他走进了房间")
    studio.wait_ready()
    studio.send(ctrl("g"))
    return studio, studio.finished_candidates(3)


def test_generating_streams_candidates_into_the_panel(start_studio):
    studio = start_studio(ORIGINAL, generation={"candidates": 2, "length": LONG})
    studio.wait_for("他走进了房间")
    studio.wait_ready()
    studio.send(ctrl("g"))
    seen = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = studio.candidates()
        seen.update(c["length"] for c in found if c["streaming"])
        if len(found) == 2 and not any(c["streaming"] for c in found):
            break
        time.sleep(0.03)
    else:
        raise AssertionError(f"candidates never finished\n{studio.dump()}")
    assert len([n for n in seen if 0 < n < LONG]) >= 2, f"saw streaming lengths {sorted(seen)}\n{studio.dump()}"
    studio.wait_for(lambda _s: [(c["length"], c["streaming"]) for c in studio.candidates()] == [(LONG, False)] * 2,
                    message=f"waited for two finished candidates of {LONG} characters:")
    studio.wait_for("chars/s")


def click_candidates(studio) -> None:
    """Focus the candidates panel with a mouse click inside candidate 1's box."""
    at = studio.locate("╭─ 1 ·")
    assert at is not None, studio.dump()
    studio.click(at[0] + 3, at[1] + 1)
    time.sleep(0.2)


ROUTES = {
    # route: (keys pressed after the candidates finished, which candidate is taken)
    "alt+1 as ESC 1": (lambda s: s.send(alt("1", "esc")), 1),
    "alt+1 as modifyOtherKeys": (lambda s: s.send(alt("1", "modify_other_keys")), 1),
    "alt+3 as kitty": (lambda s: s.send(alt("3", "kitty")), 3),
    "digit 2 in the candidates panel": (lambda s: (click_candidates(s), s.press("2")), 2),
    "enter on the highlighted candidate": (lambda s: (click_candidates(s), s.press("down", "enter")), 2),
    "right arrow on the ghost text": (lambda s: s.press("right"), 1),
}
@pytest.mark.parametrize("route", ROUTES)
def test_accepting_a_candidate(start_studio, route):
    studio, found = generated(start_studio)
    press, number = ROUTES[route]
    taken = found[number - 1]["text"]
    press(studio)
    studio.wait_for(f"accepted candidate {number}", timeout=4)
    wait_file(studio.manuscript, ORIGINAL + taken, screen=studio)  # an accept saves at once
    studio.wait_for("Press ctrl+g to write candidates")  # the panel is empty again
    assert taken in studio.screen_text()  # in the editor now, not as ghost text: the panel is empty


def test_tab_moves_focus_to_the_candidates_panel(start_studio):
    studio, found = generated(start_studio)
    studio.press("tab")
    time.sleep(0.2)
    studio.press("down", "enter")  # the second candidate, from the panel's own keys
    studio.wait_for("accepted candidate 2", timeout=3)
    wait_file(studio.manuscript, ORIGINAL + found[1]["text"], screen=studio)


def test_p_in_the_panel_accepts_the_first_sentence(start_studio):
    studio, found = generated(start_studio, generation={"candidates": 3, "length": 24, "banned_chars": "\n"})
    for _attempt in range(8):  # a candidate whose first sentence ends before its last character (no seed: new ones)
        with_stop = [c for c in found if 0 <= c["text"].find("。") < len(c["text"]) - 1]
        if with_stop:
            break
        studio.send(ctrl("g"))
        found = studio.finished_candidates(3, other_than=found)
    else:
        pytest.fail(f"no candidate with a sentence end in eight tries\n{studio.dump()}")
    chosen = with_stop[0]
    click_candidates(studio)
    studio.press(*["down"] * (chosen["number"] - 1))
    studio.press("p")
    studio.wait_for(f"accepted candidate {chosen['number']}", timeout=4)
    sentence = chosen["text"][: chosen["text"].index("。") + 1]
    wait_file(studio.manuscript, ORIGINAL + sentence, screen=studio)


def test_undo_and_redo_after_an_accept(start_studio):
    studio, found = generated(start_studio)
    taken = found[0]["text"]
    studio.send(alt("1", "kitty"))
    studio.wait_for("accepted candidate 1", timeout=5)
    wait_file(studio.manuscript, ORIGINAL + taken, screen=studio)
    studio.send(ctrl("z"))
    studio.wait_gone(taken[:6], timeout=5)
    studio.save_and_expect(ORIGINAL)
    studio.send(ctrl("y"))
    studio.wait_for(taken[:6], timeout=5)
    studio.save_and_expect(ORIGINAL + taken)
