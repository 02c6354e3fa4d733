"""The settings panel on its own, driven with real key presses through Textual's Pilot."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.widgets import Input, Label, Static

from ai_writer.studio.config import load_config, parse_setting
from ai_writer.studio.i18n import set_language
from ai_writer.studio.widgets.settings_panel import SettingsPanel, field_id


class Host(App):
    """The panel beside another field to move the focus to; records what the panel applies."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.changes: list[tuple] = []

    def compose(self):
        yield SettingsPanel(self.config, id="settings")
        yield Input(id="elsewhere")

    def on_settings_panel_setting_changed(self, event: SettingsPanel.SettingChanged) -> None:
        self.changes.append((event.section, event.key, event.value))


@pytest.fixture
def config(tmp_path):
    return load_config(user_path=tmp_path / "no-user.toml")


@pytest.fixture
def english():
    set_language("en")
    yield
    set_language("en")


async def type_into(pilot, section: str, key: str, text: str) -> Input:
    field = pilot.app.query_one(f"#{field_id(section, key)}", Input)
    field.focus()
    await pilot.pause()
    field.value = ""
    await pilot.press(*text)
    return field


def problem_under(app, section: str, key: str) -> str:
    return str(app.query_one(f"#{field_id(section, key)}-problem", Static).render())


async def test_typing_applies_nothing_until_enter(config, english):
    app = Host(config)
    async with app.run_test(size=(100, 50)) as pilot:
        field = await type_into(pilot, "generation", "length", "1000")
        assert app.changes == []  # not 1, 10, 100 on the way
        await pilot.press("enter")
        assert app.changes == [("generation", "length", 1000)]
        assert app.query_one(SettingsPanel).config.generation.length == 1000
        assert not field.has_class("-invalid") and problem_under(app, "generation", "length") == ""


async def test_an_invalid_value_is_marked_while_typing_and_explained_on_enter(config, english):
    app = Host(config)
    async with app.run_test(size=(100, 50)) as pilot:
        field = await type_into(pilot, "generation", "length", "1e")
        assert field.has_class("-invalid") and problem_under(app, "generation", "length") == ""
        await pilot.press("3", "enter")
        assert app.changes == []
        assert field.has_class("-invalid")
        assert problem_under(app, "generation", "length") == "'1e3' is not a whole number"
        assert app.query_one(SettingsPanel).config.generation.length == config.generation.length
        await pilot.press("backspace", "backspace")  # "1": valid again, the explanation goes
        assert not field.has_class("-invalid") and problem_under(app, "generation", "length") == ""
        assert app.changes == []


async def test_leaving_a_field_applies_a_valid_value_and_explains_an_invalid_one(config, english):
    app = Host(config)
    async with app.run_test(size=(100, 50)) as pilot:
        await type_into(pilot, "generation", "candidates", "5")
        app.query_one("#elsewhere").focus()
        await pilot.pause()
        assert app.changes == [("generation", "candidates", 5)]
        await type_into(pilot, "sampling", "top_p", "1.5")
        app.query_one("#elsewhere").focus()
        await pilot.pause()
        assert app.changes == [("generation", "candidates", 5)]
        assert problem_under(app, "sampling", "top_p") == "1.5 is outside 0.0..1.0"
        # focus back and out again with the same text: applied once only
        await type_into(pilot, "generation", "candidates", "5")
        await pilot.press("enter")
        app.query_one("#elsewhere").focus()
        await pilot.pause()
        assert app.changes == [("generation", "candidates", 5)]


async def test_labels_and_problems_in_chinese_keep_the_config_key(config):
    set_language("zh")
    try:
        app = Host(config)
        async with app.run_test(size=(100, 50)) as pilot:
            labels = [str(label.render()) for label in app.query(Label)]
            assert any("候选数" in text and "candidates" in text for text in labels), labels
            field = app.query_one(f"#{field_id('generation', 'candidates')}", Input)
            assert "[generation] candidates" in str(field.tooltip)
            await type_into(pilot, "generation", "candidates", "12")
            await pilot.press("enter")
            assert problem_under(app, "generation", "candidates") == "12 不在 1..9 范围内"
            assert app.changes == []
    finally:
        set_language("en")


def test_parse_setting_keeps_its_contract_in_both_languages(config):
    try:
        for language, expected in (("en", "'x' is not a number"), ("zh", "'x' 不是数字")):
            set_language(language)
            assert parse_setting(config, "sampling", "temperature", "x") == (None, expected)
            assert parse_setting(config, "sampling", "temperature", " 0.5 ") == (0.5, None)
        set_language("en")
        assert parse_setting(config, "model", "backend", "cuda")[1].startswith("'cuda' is not one of 'auto'")
        assert parse_setting(config, "generation", "strip_indents", "yes") == (None, "must be true or false")
        assert parse_setting(config, "sampling", "seed", "-1") == (-1, None)
    finally:
        set_language("en")
