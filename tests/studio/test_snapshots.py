"""Snapshots of the studio's main screen (pytest-textual-snapshot), Chinese manuscript.

Update after an intended change with `pytest tests/test_studio_snapshots.py
--snapshot-update` and look at the SVGs under tests/__snapshots__/.

What would differ between runs is kept out of the picture:
- paths: the test runs in its temporary folder and opens the manuscript by a
  relative name, so the status line reads "Opened novel.txt";
- time: the status line's clock is frozen, so it always says "saved";
- speed: the chars/s figure after generating is replaced by a fixed one;
- the cursor does not blink.
The candidates come from the fake engine (tests/fake_engine.py: deterministic,
no model file read) with a fixed sampling seed, so they are the same on every
run; the config's [model] path is replaced by the fake's stand-in file.
"""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest

from ai_writer.studio.app import StudioApp
from ai_writer.studio.config import load_config
from ai_writer.studio.i18n import set_language
from ai_writer.studio.widgets import status_line
from tests.fake_engine import fake_loader, write_fake_model
from tests.helpers import FIXTURES

CONFIG = FIXTURES / "studio_snapshot.toml"
MANUSCRIPT = FIXTURES / "studio_snapshot_manuscript.txt"
FIXED_ACTIVITY = "123 chars/s"  # stands in for the measured speed


@pytest.fixture
def studio(tmp_path, monkeypatch):
    """A StudioApp on the fixed manuscript and config and the fake engine, run from its temporary folder."""
    shutil.copy(CONFIG, tmp_path / "config.toml")
    shutil.copy(MANUSCRIPT, tmp_path / "novel.txt")
    monkeypatch.chdir(tmp_path)
    # The status line's clock stands still: "saved", never "saved 3 s ago".
    monkeypatch.setattr(status_line, "time", types.SimpleNamespace(monotonic=lambda: 0.0))
    config = load_config(tmp_path / "config.toml", user_path=tmp_path / "no-user.toml")
    config = config.with_value("model", "path", str(write_fake_model(tmp_path)))
    app = StudioApp(config, Path("novel.txt"), data_dir=tmp_path / "data", engine_loader=fake_loader())
    yield app
    if app.service is not None:
        app.service.close()
    set_language("en")


async def wait_for(pilot, condition, timeout=30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    assert condition(), "timed out"


async def settle(pilot) -> None:
    """The model loaded, the cursor steady."""
    app = pilot.app
    await wait_for(pilot, lambda: app.service is not None)
    app.editor.cursor_blink = False
    await pilot.pause()


async def with_candidates(pilot) -> None:
    """Generate (ctrl+g) and wait until all candidates have streamed in."""
    app = pilot.app
    await settle(pilot)
    await pilot.press("ctrl+g")
    await wait_for(pilot, lambda: app.job is not None and app.job.done)
    await wait_for(pilot, lambda: app.candidates.candidates and not any(c.streaming for c in app.candidates.candidates))
    assert "chars/s" in app.status.activity
    app.status.activity = FIXED_ACTIVITY
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_main_screen(snap_compare, studio, size):
    seen = {}

    async def run_before(pilot):
        await settle(pilot)
        seen["message"] = studio.status.message

    assert snap_compare(studio, terminal_size=size, run_before=run_before)
    assert seen["message"] == "Opened novel.txt"


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_main_screen_with_candidates(snap_compare, studio, size):
    seen = {}

    async def run_before(pilot):
        await with_candidates(pilot)
        seen["texts"] = [c.text for c in studio.candidates.candidates]
        seen["wide"] = studio.candidates.has_class("-wide")

    assert snap_compare(studio, terminal_size=size, run_before=run_before)
    assert len(seen["texts"]) == 3 and all(len(t) == 60 for t in seen["texts"])
    assert seen["wide"] == (size[0] >= 100)  # side by side when wide, stacked when narrow
