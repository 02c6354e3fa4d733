"""The status line at 80 and 120 columns: what the terminal shows, read from the rendered screen."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.app import App

from ai_writer.studio.i18n import set_language, tr
from ai_writer.studio.widgets.status_line import StatusLine

# What the app put first before: model, architecture, backend and why (about 150 cells).
LONG_MODEL = ("zh-novel-rwkv7.safetensors · rwkv7 · torch+native/cpu (auto: no CUDA GPU, so on the CPU: "
              "prompts on torch, each step in C compiled for this CPU)")
SAVE_ERROR = tr("recovery_written", error="[Errno 21] Is a directory: '/home/author/novels/book.txt'",
                path="/home/author/.local/share/ai-writer-studio/recovery/book-1.txt")


class Host(App):
    CSS = "StatusLine { dock: bottom; }"

    def compose(self):
        yield StatusLine(id="status")


def shown_rows(app) -> list[str]:
    """The status line's rows as the terminal would show them."""
    status = app.query_one(StatusLine)
    strips = app.screen._compositor.render_strips()
    region = status.region
    return [strips[y].crop(region.x, region.right).text for y in range(region.y, region.bottom)]


def squeeze(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(autouse=True)
def english():
    set_language("en")
    yield
    set_language("en")


@pytest.mark.parametrize("width", [80, 120])
async def test_a_save_error_is_shown_whole_before_the_model(width):
    app = Host()
    async with app.run_test(size=(width, 10)) as pilot:
        status = app.query_one(StatusLine)
        status.model, status.activity, status.dirty = LONG_MODEL, "generating · 38 chars/s", True
        status.save_error = SAVE_ERROR
        await pilot.pause()
        rows = shown_rows(app)
        assert squeeze(SAVE_ERROR) in squeeze("".join(rows)), rows  # whole, over as many rows as it needs
        assert rows[0].lstrip().startswith("NOT SAVED:")
        assert "CUDA" not in "".join(rows)  # the long description is not on the line
        assert status.has_class("-error")


@pytest.mark.parametrize("width", [80, 120])
async def test_save_state_and_message_come_first_and_the_model_is_cut(width):
    app = Host()
    async with app.run_test(size=(width, 10)) as pilot:
        status = app.query_one(StatusLine)
        status.model, status.saved_at = LONG_MODEL, time.monotonic()
        status.message = tr("generation_failed", error="out of memory")
        status.activity = "stopped"
        await pilot.pause()
        rows = shown_rows(app)
        assert len(rows) == 1
        row = rows[0]
        assert row.lstrip().startswith("saved │ generation failed: out of memory │ stopped │ zh-novel-rwkv7")
        assert row.rstrip().endswith("…")  # the least important part is cut
        assert len(row) == width


async def test_saved_only_when_nothing_is_unsaved():
    app = Host()
    async with app.run_test(size=(80, 10)) as pilot:
        status = app.query_one(StatusLine)
        status.saved_at, status.message = time.monotonic(), "Opened book.txt"
        await pilot.pause()
        assert shown_rows(app)[0].lstrip().startswith("saved │ Opened book.txt")
        status.dirty = True
        await pilot.pause()
        row = shown_rows(app)[0]
        assert row.lstrip().startswith("unsaved changes │ Opened book.txt") and "saved │" not in row
        status.saving = True
        await pilot.pause()
        assert shown_rows(app)[0].lstrip().startswith("saving…")
        status.saving, status.dirty, status.saved_at = False, False, time.monotonic()
        await pilot.pause()
        assert shown_rows(app)[0].lstrip().startswith("saved │")
        set_language("zh")
        status.dirty = True
        await pilot.pause()
        assert shown_rows(app)[0].lstrip().startswith("未保存的修改")


async def test_encoding_and_path_when_there_is_room_cut_from_the_start_when_not():
    app = Host()
    async with app.run_test(size=(120, 10)) as pilot:
        status = app.query_one(StatusLine)
        status.saved_at, status.model = time.monotonic(), "zh-novel-rwkv7 · torch+native/cpu"
        status.encoding, status.manuscript = "GB18030", "~/novels/a-long-folder-name/book.txt"
        await pilot.pause()
        assert shown_rows(app)[0].rstrip().endswith("zh-novel-rwkv7 · torch+native/cpu │ GB18030 · ~/novels/a-long-folder-name/book.txt")
        await pilot.resize_terminal(80, 10)
        status.model, status.message = "zh-novel-rwkv7", "Opened book.txt"
        await pilot.pause()
        row = shown_rows(app)[0]
        assert row.lstrip().startswith("saved │ Opened book.txt │ zh-novel-rwkv7 │ GB18030 · …")
        assert row.rstrip().endswith("-name/book.txt") and len(row) == 80
        status.message = "Opened ~/novels/a-long-folder-name/book.txt"  # the model comes before the file
        await pilot.pause()
        row = shown_rows(app)[0]
        assert row.lstrip().startswith("saved │ Opened ~/novels/a-long-folder-name/book.txt │ zh-novel-rwkv7 │ GB18030")


async def test_details_are_the_tooltip_not_the_line():
    app = Host()
    async with app.run_test(size=(80, 10)) as pilot:
        status = app.query_one(StatusLine)
        status.details = LONG_MODEL
        await pilot.pause()
        assert status.tooltip == LONG_MODEL and "CUDA" not in shown_rows(app)[0]


async def test_the_studio_at_80_columns_shows_a_failed_save_whole(tmp_path, fake_model):
    """The real app (on the fake engine): the manuscript's file turns into a folder, so saving fails; the line
    says so, whole."""
    from ai_writer.studio.app import StudioApp
    from ai_writer.studio.config import load_config
    from tests.fake_engine import fake_loader

    config_path = tmp_path / "config.toml"
    config_path.write_text(f'[model]\npath = "{fake_model}"\n[studio]\nlanguage = "en"\nautosave_seconds = 600.0\n',
                           encoding="utf-8")
    manuscript = tmp_path / "novel.txt"
    manuscript.write_text("　　第一章\n", encoding="utf-8")
    app = StudioApp(load_config(config_path, user_path=tmp_path / "no-user.toml"), manuscript, data_dir=tmp_path / "data",
                    engine_loader=fake_loader())
    async with app.run_test(size=(80, 24)) as pilot:
        status = app.screen.query_one(StatusLine)
        await pilot.pause(0.2)
        opened = status.message
        manuscript.unlink()
        manuscript.mkdir()
        await pilot.press(*"abc", "ctrl+s")
        for _ in range(200):
            if not status.saving and (status.save_error or status.message != opened):
                break
            await pilot.pause(0.05)
        await pilot.pause(0.1)
        rows = shown_rows(app)
        problem = status.save_error or status.message
        assert problem != opened and status.save_state() != tr("saving")
        assert rows[0].lstrip().startswith(status.save_state()[:10]), rows  # the save state first
        assert squeeze(problem) in squeeze("".join(rows)), rows  # the error whole
