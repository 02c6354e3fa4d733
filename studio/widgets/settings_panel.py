"""The settings panel: model and sampling settings, validated as typed, applied when complete.

While the author types, a field is only marked when its text is not a valid value.
On Enter, or when the field loses focus, a valid value is posted as SettingChanged
(the app applies it to the next request and saves it to the user's config file);
an invalid one is explained under its field and nothing is applied. So typing
`1000` never applies `1` on the way.

Each field has a readable name in the interface language; its config.toml key is
shown small beside the name (and in the field's tooltip) so authors can find it.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.message import Message
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, Static

from ai_writer.studio.config import Config, parse_setting
from ai_writer.studio.i18n import tr

FIELDS = [  # (section, key) in the order shown
    ("model", "path"),
    ("model", "backend"),
    ("model", "url"),
    ("model", "remote_model"),
    ("model", "api_key_env"),
    ("model", "device"),
    ("model", "dtype"),
    ("model", "vocab"),
    ("model", "state"),
    ("generation", "candidates"),
    ("generation", "length"),
    ("generation", "compare_state"),
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


def field_label(section: str, key: str) -> str:
    """The field's readable name in the interface language, e.g. "Candidates" / "候选数"."""
    return tr(f"setting_{section}_{key}")


class SettingValidator(Validator):
    """Checks a field's text with parse_setting against the panel's current settings."""

    def __init__(self, panel: "SettingsPanel", section: str, key: str):
        super().__init__()
        self.panel, self.section, self.key = panel, section, key

    def validate(self, value: str) -> ValidationResult:
        _, problem = parse_setting(self.panel.config, self.section, self.key, value)
        return self.success() if problem is None else self.failure(problem)


class SettingsPanel(VerticalScroll):
    DEFAULT_CSS = """
    SettingsPanel { dock: right; width: 44; border-left: solid $accent; padding: 0 1; background: $surface; }
    SettingsPanel .hint { color: $text-muted; }
    SettingsPanel .section { margin-top: 1; text-style: bold; color: $accent; }
    SettingsPanel Label { margin-top: 1; color: $text; }
    SettingsPanel Input { height: 3; }
    SettingsPanel .problem { color: $error; height: auto; display: none; }
    SettingsPanel .unavailable { color: $warning; height: auto; display: none; }
    SettingsPanel Input.-unavailable { color: $text-muted; }
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
        yield Static(tr("settings_hint"), classes="hint")
        section_shown = None
        for section, key in FIELDS:
            if section != section_shown:
                section_shown = section
                yield Static(tr(f"setting_section_{section}"), classes="section")
            yield Label(Text.assemble(field_label(section, key), ("  " + key, "dim")))
            field = Input(str(self.config.value(section, key)), id=field_id(section, key),
                          validators=[SettingValidator(self, section, key)])
            field.tooltip = tr("setting_key_tooltip", section=section, key=key)
            yield field
            yield Static("", classes="problem", id=field_id(section, key) + "-problem", markup=False)
            yield Static("", classes="unavailable", id=field_id(section, key) + "-unavailable", markup=False)

    def on_input_changed(self, event: Input.Changed) -> None:
        """While typing: the Input marks itself invalid; a valid text clears the old explanation."""
        if self._field_of(event.input)[0] is None:
            return
        event.stop()
        if event.validation_result is None or event.validation_result.is_valid:
            self._explain(event.input, "")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._commit(event)

    def on_input_blurred(self, event: Input.Blurred) -> None:
        self._commit(event)

    def _commit(self, event: Input.Submitted | Input.Blurred) -> None:
        """Enter or leaving the field: explain an invalid value, apply a valid one."""
        section, key = self._field_of(event.input)
        if section is None:
            return
        event.stop()
        value, problem = parse_setting(self.config, section, key, event.value)
        event.input.set_class(problem is not None, "-invalid")
        self._explain(event.input, problem or "")
        if problem is None:
            self._apply(section, key, value)

    def _apply(self, section: str, key: str, value) -> None:
        if value != self.config.value(section, key):
            self.config = self.config.with_value(section, key, value)
            self.post_message(self.SettingChanged(section, key, value))

    def mark_unavailable(self, reasons: dict[str, str]) -> None:
        """Say under each field the running model cannot honour why ("section.key" -> a reason code of
        backends.remote.servers: "tokenizer", "server", "local"); the others are cleared."""
        for section, key in FIELDS:
            code = reasons.get(f"{section}.{key}")
            note = self.query_one(f"#{field_id(section, key)}-unavailable", Static)
            note.update(tr(f"remote_setting_{code}") if code else "")
            note.display = bool(code)
            self.query_one(f"#{field_id(section, key)}", Input).set_class(bool(code), "-unavailable")

    def show_value(self, section: str, key: str, value) -> None:
        """Show (and hold) `value` for a field again: a model switch that failed or was declined."""
        self.config = self.config.with_value(section, key, value)
        self.query_one(f"#{field_id(section, key)}", Input).value = str(value)

    def _explain(self, field: Input, problem: str) -> None:
        """The problem under the field ('' hides the line)."""
        view = self.query_one(f"#{field.id}-problem", Static)
        view.update(problem)
        view.display = bool(problem)

    def _field_of(self, widget):
        for section, key in FIELDS:
            if widget.id == field_id(section, key):
                return section, key
        return None, None
