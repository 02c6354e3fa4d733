"""The only place that touches Textual's private API (tested with the range in pyproject.toml).

- Alt+digit: xterm, tmux and most SSH clients send ESC followed by the digit; Textual maps
  that to '¡™£¢∞§¶•ªº' (a workaround for one macOS terminal). xterm's modifyOtherKeys form
  (CSI 27;mod;code ~) is read as a kitty sequence that drops the Alt. Both become alt+N here.
- Binding descriptions in the author's language: bindings are class attributes, read before
  the language is chosen, so a node's binding map is rebuilt once it is.
"""

from __future__ import annotations

import re

from textual import events
from textual.binding import Binding, BindingsMap

TESTED_TEXTUAL = ">=8.2,<9"  # pyproject.toml pins the same range

_MODIFY_OTHER_KEYS = re.compile(r"\x1b\[27;(\d+);(\d+)~")
_ESC_DIGIT = re.compile(r"\x1b([0-9])")


def _modifier_names(modifiers: int) -> list[str]:
    bits = modifiers - 1  # xterm: 1 + shift(1) + alt(2) + ctrl(4) + meta(8)
    return [name for bit, name in ((4, "ctrl"), (2, "alt"), (8, "meta"), (1, "shift")) if bits & bit]


def keys_for_sequence(sequence: str) -> list[events.Key] | None:
    """Key events for the sequences Textual misreads, or None to let Textual read it."""
    if match := _ESC_DIGIT.fullmatch(sequence):
        return [events.Key(f"alt+{match.group(1)}", None)]
    if match := _MODIFY_OTHER_KEYS.fullmatch(sequence):
        modifiers, code = int(match.group(1)), int(match.group(2))
        char = chr(code)
        names = _modifier_names(modifiers)
        if char.isalpha() and "shift" in names and len(names) > 1:
            names.remove("shift")  # shift+alt+a arrives as alt+A
        if not names or names == ["shift"]:
            return [events.Key(char if char.isalnum() else _key_name(char), char)]
        return [events.Key("+".join(sorted(names) + [_key_name(char.lower())]), None)]
    return None


def _key_name(char: str) -> str:
    from textual.keys import _character_to_key

    return _character_to_key(char)


_installed = False


def install_key_fixes() -> None:
    """Teach Textual's input parser the alt+digit encodings above (idempotent)."""
    global _installed
    if _installed:
        return
    from textual._xterm_parser import XTermParser

    original = XTermParser._sequence_to_key_events

    def sequence_to_key_events(self, sequence: str, alt: bool = False):
        fixed = keys_for_sequence(sequence)
        if fixed is not None:
            return iter(fixed)
        return original(self, sequence, alt)

    XTermParser._sequence_to_key_events = sequence_to_key_events
    _installed = True


def set_bindings(node, bindings: list[Binding]) -> None:
    """Give a node `bindings` (e.g. with translated descriptions) on top of its classes' own
    (a Screen's tab / shift+tab among them)."""
    inherited = [binding for _, binding in node._merge_bindings()]
    node._bindings = BindingsMap([*inherited, *bindings])
