"""The probability view in a real terminal: f9, the cut as the cursor, `a`, enter: the candidate goes on
from the chosen alternative, and accepting it saves the edited text."""

from __future__ import annotations

import re
import time

from tests.terminal.harness import ctrl, wait_file

ORIGINAL = "　　他走进了房间。\n"
SHORT = {"generation": {"candidates": 3, "length": 24, "banned_chars": "\n"}, "sampling": {"seed": 7}}
OPTION = re.compile(r"([✓ ]) (\S+)\s+(\d+%|<1%)")


def options_on_screen(studio) -> list[tuple[bool, str]]:
    """The alternatives list's rows: (is it the token written, the token as shown)."""
    rows = []
    for line in studio.screen_lines():
        inner = line.split("│")[1] if line.count("│") >= 2 else ""
        match = OPTION.search(inner)
        if match and "Instead of" not in inner:
            rows.append((match.group(1) == "✓", match.group(2)))
    return rows


def test_choosing_an_alternative_in_the_panel_continues_from_it_and_saves_when_accepted(start_studio):
    studio = start_studio(ORIGINAL, **SHORT)
    studio.wait_for("他走进了房间")
    studio.wait_ready()
    studio.send(ctrl("g"))
    found = studio.finished_candidates(3)
    text = found[0]["text"]
    studio.press("f9")
    studio.wait_for("probability view on")
    studio.press("tab")
    time.sleep(0.2)
    studio.press("shift+left", "shift+left", "shift+left")  # the cursor on the third character from the end
    cut = len(text) - 3
    studio.wait_for(f"“{text[cut]}”", message=f"waited for the alternatives of {text[cut]!r} under candidate 1:")
    studio.press("a")
    studio.wait_for(f"Instead of “{text[cut]}”")
    studio.wait_for(lambda _s: len(options_on_screen(studio)) >= 3, message="waited for the list:")
    options = options_on_screen(studio)
    assert options[0] == (True, text[cut]), options
    rivals = [token for _, token in options[1:]]
    pick = next(i for i, token in enumerate(rivals) if len(token) == 1 and token not in "⏎␣⎵⇥·")
    studio.press(*["down"] * pick, "enter")  # the list opens on the first rival
    prefix = text[:cut] + rivals[pick]
    total = len(prefix) + SHORT["generation"]["length"]

    def continued(_screen) -> bool:
        shown = studio.candidates()
        return bool(shown) and shown[0]["length"] == total and not shown[0]["streaming"] \
            and len(shown[0]["text"]) == total

    studio.wait_for(continued, timeout=20, message=f"waited for candidate 1 to go on from {prefix!r}:")
    branched = studio.candidates()[0]["text"]
    assert branched.startswith(prefix) and branched != text
    assert [c["text"] for c in studio.candidates()[1:]] == [c["text"] for c in found[1:]]
    studio.press("enter")  # accept the highlighted candidate (the panel still has the focus)
    studio.wait_for("accepted candidate 1", timeout=5)
    wait_file(studio.manuscript, ORIGINAL + branched, screen=studio)
