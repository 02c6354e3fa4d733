"""The studio writing with a model on a server ([model] backend = "openai") against a real serve-api: the status
line names the server, the settings it cannot honour are marked in the panel, and switching back to a model on
this machine gives a local service again."""

from __future__ import annotations

import pytest

from ai_writer.backends.writing.generation import GenerationService
from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.studio.api.server import ApiServer, BackgroundServer
from ai_writer.studio.app import StudioApp
from ai_writer.studio.config import load_config
from ai_writer.studio.widgets.settings_panel import field_id
from tests.studio.test_app import MANUSCRIPT, generate, ready, wait_until


@pytest.fixture(scope="module")
def served(tiny_engine):
    service = GenerationService(tiny_engine, state_store=None)
    running = BackgroundServer(ApiServer(service, "tiny", SamplingSettings(), queue_size=8))
    yield running
    running.close()
    service.close()


async def test_writing_with_a_model_on_a_server(tmp_path, served, tiny_model):
    manuscript = tmp_path / "novel.txt"
    manuscript.write_text(MANUSCRIPT, encoding="utf-8")
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[model]\npath = "{tiny_model}"\nbackend = "openai"\nurl = "http://127.0.0.1:{served.port}/v1"\n'
        f'remote_model = "tiny"\n[generation]\ncandidates = 2\nlength = 12\n[sampling]\nseed = 4\n'
        f'[studio]\nlanguage = "en"\n', encoding="utf-8")
    config = load_config(config_file, user_path=tmp_path / "user.toml")
    app = StudioApp(config, manuscript, data_dir=tmp_path / "data")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        assert app.status.model == f"tiny @ 127.0.0.1:{served.port} · openai"
        assert type(app.service).__name__ == "RemoteService"
        texts = await generate(pilot, app)
        assert len(texts) == 2 and all(len(t) == 12 for t in texts)
        note = app.main.query_one(f"#{field_id('model', 'state')}-unavailable")
        assert note.display and "only for a model on this machine" in str(note.render())
        assert not app.main.query_one(f"#{field_id('sampling', 'top_p_newline')}-unavailable").display  # serve-api takes it
        await pilot.press("f2")
        field = app.main.query_one(f"#{field_id('model', 'backend')}")
        field.focus()
        field.value = "torch"
        await pilot.press("enter")
        assert await wait_until(pilot, lambda: app.main.engine is not None and app.main.engine.info.backend == "torch")
        assert type(app.service).__name__ == "GenerationService" and "tiny" in app.status.model
        assert not note.display  # a model on this machine honours every setting
        await pilot.press("f2")
        assert len(await generate(pilot, app)) == 2
