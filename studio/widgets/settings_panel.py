"""The settings panel: model and sampling settings, edited live and validated.

A valid value is posted as SettingChanged (the app applies it to the next request
and saves it to the user's config file); an invalid one is marked and explained
under its field, and nothing is applied.
"""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Static

from studio.config import Config, parse_setting
from studio.i18n import tr

FIELDS = [  # (section, key) in the order shown
    ("model", "path"),
    ("model", "backend"),
    ("model", "device"),
    ("generation", "candidates"),
    ("generation", "length"),
    ("sampling", "temperature"),
    ("sampling", "top_p"),
    ("sampling", "top_p_newline"),
    ("sampling", "top_k"),
    ("sampling", "min_p"),
    ("sampling", "presence_penalty"),
    ("sampling", "frequency_penalty"),
    ("sampling", "penalty_decay"),
    ("sampling", "seed"),
]


def field_id(section: str, key: str) -> str:
    return f"setting-{section}-{key}"


class SettingsPanel(VerticalScroll):
    DEFAULT_CSS = """
    SettingsPanel { dock: right; width: 44; border-left: solid $accent; padding: 0 1; background: $surface; }
    SettingsPanel Label { margin-top: 1; color: $text-muted; }
    SettingsPanel Input { height: 3; }
    SettingsPanel Input.-invalid { border: tall $error; }
    SettingsPanel .problem { color: $error; height: auto; }
    """

    class SettingChanged(Message):
        def __init__(self, section: str, key: str, value):
            super().__init__()
            self.section, self.key, self.value = section, key, value

    def __init__(self, config: Config, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def compose(self):
        yield Static(f"[b]{tr('settings')}[/b]")
        for section, key in FIELDS:
            yield Label(f"{section}.{key}")
            yield Input(str(self.config.values[section][key]), id=field_id(section, key))
            yield Static("", classes="problem", id=field_id(section, key) + "-problem")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._edited(event, submitted=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._edited(event, submitted=True)

    def _edited(self, event, submitted: bool) -> None:
        """Validate a field; apply it when valid (model settings only on enter)."""
        section, key = self._field_of(event.input)
        if section is None:
            return
        event.stop()
        value, problem = parse_setting(self.config, section, key, event.value)
        event.input.set_class(problem is not None, "-invalid")
        self.query_one(f"#{event.input.id}-problem", Static).update(problem or "")
        if problem is None and (submitted or section != "model"):
            self._apply(section, key, value)

    def _apply(self, section: str, key: str, value) -> None:
        if value != self.config.values[section][key]:
            self.config = self.config.with_value(section, key, value)
            self.post_message(self.SettingChanged(section, key, value))

    def _field_of(self, widget):
        for section, key in FIELDS:
            if widget.id == field_id(section, key):
                return section, key
        return None, None
