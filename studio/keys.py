"""The studio's actions and their key bindings, built from the author's [keys] config."""

from __future__ import annotations

from textual.binding import Binding

from ai_writer.studio.i18n import tr

# (binding id = [keys] name in config.toml, action on the main screen, i18n key of its description, in the footer)
ACTIONS = [
    ("generate", "generate", "cmd_generate", True),
    ("stop", "stop", "cmd_stop", True),
    *[(f"accept_{n}", f"accept({n})", "cmd_accept", n == 1) for n in range(1, 10)],
    ("save", "save", "cmd_save", True),
    ("open", "open", "cmd_open", False),
    ("quit", "app.quit", "cmd_quit", True),
    ("settings", "toggle_settings", "cmd_settings", True),
    ("history", "history", "cmd_history", False),
    ("undo", "undo", "cmd_undo", False),
    ("redo", "redo", "cmd_redo", False),
    ("reload", "reload", "cmd_reload", False),
    ("details", "details", "cmd_details", False),
    ("story", "story", "cmd_story", False),
    ("context", "context", "cmd_context", False),
    ("probabilities", "probabilities", "cmd_probabilities", False),
    ("alternatives", "alternatives", "cmd_alternatives", False),
    ("scan", "scan", "cmd_scan", False),
]
# Work from any panel of the main screen (never inside a dialog: those have their own keys).
PRIORITY = {"generate", "stop", "save", "quit", "settings", "history", "open", "story", "context",
            "alternatives", "scan"}  # alt+a arrives with the character "a": the editor would type it

# macOS terminals without "Option as Meta" send these characters for Option+1..9.
MAC_OPTION_DIGITS = {
    "1": "inverted_exclamation_mark", "2": "trade_mark_sign", "3": "pound_sign", "4": "cent_sign",
    "5": "infinity", "6": "section_sign", "7": "pilcrow_sign", "8": "bullet", "9": "feminine_ordinal_indicator",
}


def describe(action_id: str, text_key: str) -> str:
    if action_id.startswith("accept_"):
        return tr(text_key, number=action_id.rsplit("_", 1)[-1])
    return tr(text_key)


def with_mac_option_alias(keys: str) -> str:
    """'alt+3' -> 'alt+3,pound_sign': the same action from a Mac terminal's Option+3."""
    extra = [MAC_OPTION_DIGITS[k[4:]] for k in keys.split(",") if k.startswith("alt+") and k[4:] in MAC_OPTION_DIGITS]
    return ",".join([keys, *extra])


# Short footer labels (the command palette shows the long descriptions).
FOOTER = {"generate": "footer_generate", "stop": "footer_stop", "accept_1": "footer_accept", "save": "footer_save",
          "quit": "footer_quit", "settings": "footer_settings"}


def make_bindings(keys: dict) -> list[Binding]:
    bindings = []
    for action_id, action, text_key, shown in ACTIONS:
        key = keys[action_id]
        if action_id.startswith("accept_"):
            key = with_mac_option_alias(key)
        description = tr(FOOTER[action_id]) if action_id in FOOTER else describe(action_id, text_key)
        bindings.append(Binding(key, action, description, show=shown, id=action_id,
                                tooltip=describe(action_id, text_key),
                                priority=action_id in PRIORITY or action_id.startswith("accept_")))
    return bindings


def keymap(keys: dict) -> dict:
    """The [keys] config as a Textual keymap (binding id -> keys), Option aliases included."""
    return {binding_id: with_mac_option_alias(k) if binding_id.startswith("accept_") else k
            for binding_id, k in keys.items()}
