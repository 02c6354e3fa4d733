"""Switching models from the settings panel: a failed switch keeps the running model and says so; the
setting is saved only once its model has loaded; when both models would not fit in memory the author is
asked to let the running one go first."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ai_writer.studio import model_memory
from ai_writer.studio.app import StudioApp
from ai_writer.studio.config import load_config
from ai_writer.studio.widgets.settings_panel import field_id
from tests.fake_engine import fake_loader, write_fake_model
from tests.studio.test_app import MANUSCRIPT, generate, ready, wait_until, write_config


@pytest.fixture
def studio(tmp_path, fake_model):
    manuscript = tmp_path / "novel.txt"
    manuscript.write_text(MANUSCRIPT, encoding="utf-8")
    user = tmp_path / "user.toml"
    config = load_config(write_config(tmp_path, fake_model), user_path=user)
    loads = []
    loader = fake_loader()

    def counting_loader(model):
        loads.append(model.path)
        return loader(model)

    app = StudioApp(config, manuscript, data_dir=tmp_path / "data", engine_loader=counting_loader)
    return app, config.sources[-1], loads


async def type_setting(pilot, app, key: str, value: str):
    await pilot.press("f2")
    field = app.main.query_one(f"#{field_id('model', key)}")
    field.focus()
    field.value = value
    await pilot.press("enter")


def saved_model_path(config_file: Path) -> str:
    return tomllib.loads(config_file.read_text(encoding="utf-8")).get("model", {}).get("path", "")


async def test_an_emptied_model_file_field_puts_the_running_model_back_and_opens_nothing(studio):
    app, config_file, loads = studio
    before = saved_model_path(config_file)
    async with app.run_test(size=(110, 32)) as pilot:
        await ready(pilot, app)
        opened = list(loads)
        await type_setting(pilot, app, "path", "")
        await pilot.pause(0.3)
        field = app.main.query_one(f"#{field_id('model', 'path')}")
        assert field.value == app.config.model.path and loads == opened  # nothing was opened, the path is back
        assert "not switched" not in app.status.message
    assert saved_model_path(config_file) == before


async def test_a_failed_switch_keeps_the_model_running_and_says_so_in_full(studio, tmp_path):
    app, config_file, _ = studio
    before = saved_model_path(config_file)
    async with app.run_test(size=(110, 32)) as pilot:
        await ready(pilot, app)
        old_engine = app.main.engine
        missing = tmp_path / "models" / ("a-very-long-model-name-" * 4 + ".safetensors")
        await type_setting(pilot, app, "path", str(missing))
        assert await wait_until(pilot, lambda: "not switched" in app.status.message)
        assert app.main.engine is old_engine and "fake" in app.status.model  # the status line names the old model
        assert "still writing with fake.model" in app.status.message
        notes = [n.message for n in app._notifications]  # the whole reason, however long
        assert any(str(missing) in m and "no such model file" in m for m in notes)
        assert app.main.query_one(f"#{field_id('model', 'path')}").value == app.config.model.path  # shown back
        assert app.config.model.path != str(missing)
        await pilot.press("f2")
        texts = await generate(pilot, app)  # ctrl+g writes with the old model, as the status line says
        assert len(texts) == 3
    assert saved_model_path(config_file) == before  # the failing path was never saved


async def test_a_switch_is_saved_once_its_model_has_loaded(studio, tmp_path):
    app, config_file, loads = studio
    other = write_fake_model(tmp_path, "other.model")
    async with app.run_test(size=(110, 32)) as pilot:
        await ready(pilot, app)
        await type_setting(pilot, app, "path", str(other))
        assert await wait_until(pilot, lambda: app.main.engine is not None and app.main.engine.info.model_path == str(other))
        assert app.config.model.path == str(other) and "other" in app.status.model
    assert saved_model_path(config_file) == str(other)
    assert loads[-1] == str(other)


@pytest.mark.parametrize("answer", ["y", "n"])
async def test_when_both_would_not_fit_the_author_is_asked_first(studio, tmp_path, monkeypatch, answer):
    app, config_file, loads = studio
    other = write_fake_model(tmp_path, "big.model")
    monkeypatch.setattr(model_memory, "needed_bytes", lambda model: 16 * 2**30 if "big" in model.path else 2**30)
    monkeypatch.setattr(model_memory, "available_bytes", lambda: 9 * 2**30)
    async with app.run_test(size=(110, 32)) as pilot:
        await ready(pilot, app)
        old_engine = app.main.engine
        await type_setting(pilot, app, "path", str(other))
        assert await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog")
        question = str(app.screen.question)
        assert "16.0 GiB" in question and "9.0 GiB" in question and "fake.model" in question
        await pilot.press(answer)
        if answer == "n":
            assert await wait_until(pilot, lambda: "kept fake.model" in app.status.message)
            assert app.main.engine is old_engine and loads == [loads[0]]
        else:
            assert await wait_until(pilot, lambda: app.main.engine is not None and app.main.engine is not old_engine)
            assert app.main.engine.info.model_path == str(other)
    assert (saved_model_path(config_file) == str(other)) == (answer == "y")


async def test_a_released_model_is_opened_again_when_the_new_one_fails(studio, tmp_path, monkeypatch):
    app, config_file, loads = studio
    missing = tmp_path / "missing.model"
    monkeypatch.setattr(model_memory, "too_tight", lambda model, free=None: (16 * 2**30, 9 * 2**30))
    async with app.run_test(size=(110, 32)) as pilot:
        await ready(pilot, app)
        old_path = app.main.engine.info.model_path
        await type_setting(pilot, app, "path", str(missing))
        assert await wait_until(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog")
        await pilot.press("y")
        assert await wait_until(pilot, lambda: len(loads) == 3 and app.main.engine is not None)
        assert loads == [old_path, str(missing), old_path] and app.main.engine.info.model_path == old_path
        assert app.config.model.path == old_path
    assert saved_model_path(config_file) != str(missing)


async def test_the_panel_has_vocab_dtype_and_state_fields(studio):
    app, _, _ = studio
    async with app.run_test(size=(110, 40)) as pilot:
        await ready(pilot, app)
        await pilot.press("f2")
        for key in ("vocab", "dtype", "state"):
            assert app.main.query_one(f"#{field_id('model', key)}").value == str(app.config.value("model", key))
        await type_setting(pilot, app, "dtype", "float64")  # not a dtype: explained under the field, not applied
        await pilot.pause(0.1)
        problem = app.main.query_one(f"#{field_id('model', 'dtype')}-problem")
        assert problem.display and "float16" in str(problem.render())
