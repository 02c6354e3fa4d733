"""The studio, driven through Textual's Pilot: on the fake engine (tests/fake_engine.py) where the
model's math is not what is tested, on a tiny random RWKV-7 where the real backend is (make_app(real=True))."""

import json
from pathlib import Path

import pytest

from ai_writer.studio.app import StudioApp
from ai_writer.studio.config import load_config
from ai_writer.studio.widgets.candidates import first_sentence_end
from tests.fake_engine import fake_loader
from tests.helpers import small_model_auto_backend

MANUSCRIPT = "　　第一章　天才少年\n　　他抬头望向远方，"


def write_config(tmp_path: Path, model: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[model]\npath = "{model}"\n[generation]\ncandidates = 3\nlength = 12\n'
        f"[sampling]\nseed = 5\n[studio]\nlanguage = \"en\"\nautosave_seconds = 0.3\n{extra}",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def make_app(tmp_path, request):
    """make(...) -> (app, manuscript path). The app runs the fake engine (each forward() taking `delay` s),
    or with real=True the tiny RWKV-7 through backends.load (the config's backend: auto)."""

    def make(text=MANUSCRIPT, extra="", name="novel.txt", real=False, delay=0.0):
        manuscript = tmp_path / name
        if text is not None:
            manuscript.write_text(text, encoding="utf-8")
        model = request.getfixturevalue("tiny_model" if real else "fake_model")
        config = load_config(write_config(tmp_path, model, extra), user_path=tmp_path / "no-user.toml")
        loader = None if real else fake_loader(delay=delay)
        return StudioApp(config, manuscript, data_dir=tmp_path / "data", engine_loader=loader), manuscript

    return make


async def wait_until(pilot, condition, timeout=20.0):
    for _ in range(int(timeout / 0.05)):
        if condition():
            return True
        await pilot.pause(0.05)
    return condition()


async def ready(pilot, app):
    assert await wait_until(pilot, lambda: app.service is not None), app.status.message


async def generate(pilot, app):
    await pilot.press("ctrl+g")
    assert await wait_until(pilot, lambda: app.job is not None and app.job.done)
    assert await wait_until(pilot, lambda: app.candidates.candidates and not app.candidates.candidates[0].streaming)
    return [c.text for c in app.candidates.candidates]


async def test_generate_streams_n_candidates_and_ghost_text(make_app):
    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        assert len(texts) == 3 and all(len(t) == 12 for t in texts)
        assert app.editor.suggestion == texts[0]  # the highlighted candidate, as ghost text
        assert "chars/s" in app.status.activity
        await pilot.press("left")  # moving on removes the ghost
        assert app.editor.suggestion == ""


async def test_accept_inserts_as_one_undo_step_and_saves(make_app):
    app, path = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        await pilot.press("alt+2")
        assert app.editor.text == MANUSCRIPT + texts[1]
        assert app.editor.cursor_location == app.editor.document.end
        assert await wait_until(pilot, lambda: path.read_text(encoding="utf-8") == MANUSCRIPT + texts[1])
        assert app.editor.suggestion == ""
        await pilot.press("ctrl+z")
        assert app.editor.text == MANUSCRIPT
        await pilot.press("ctrl+y")
        assert app.editor.text == MANUSCRIPT + texts[1]
        history = [json.loads(line) for line in path.with_name("novel.history.jsonl").read_text().splitlines()]
        assert any(e.get("action") == "accepted" and e.get("candidate") == 1 for e in history)


async def test_typing_then_generating_uses_the_text_before_the_cursor(make_app):
    app, path = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        await pilot.press(*"abc")
        assert app.editor.text == MANUSCRIPT + "abc"
        app.editor.move_cursor((1, 4))
        texts = await generate(pilot, app)
        assert app.main.generation.request.text == "　　第一章　天才少年\n　　他抬"
        await pilot.press("alt+1")
        assert app.editor.text == "　　第一章　天才少年\n　　他抬" + texts[0] + "头望向远方，abc"
        assert await wait_until(pilot, lambda: path.read_text(encoding="utf-8") == app.editor.text)


async def test_candidates_panel_keys_partial_reject_regenerate(make_app):
    app, path = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        app.candidates.focus()
        await pilot.press("down")
        assert app.candidates.selected == 1
        assert app.editor.suggestion == texts[1]
        await pilot.press("x")  # reject candidate 2
        assert app.candidates.candidates[1].rejected and app.editor.suggestion == ""
        await pilot.press("down", "shift+left", "shift+left", "shift+left")  # candidate 3, cut 3 characters
        assert app.editor.suggestion == texts[2][:-3]
        await pilot.press("enter")
        assert app.editor.text == MANUSCRIPT + texts[2][:-3]
        log = path.with_name("novel.history.jsonl").read_text()
        assert '"rejected"' in log and '"accepted-partial"' in log
        first = await generate(pilot, app)
        app.candidates.focus()
        await pilot.press("r")  # regenerate: new candidates from the same place
        assert await wait_until(pilot, lambda: app.job.done and not app.candidates.candidates[0].streaming)
        assert [c.text for c in app.candidates.candidates] != first


async def test_accept_up_to_the_first_sentence():
    assert first_sentence_end("他走了。她笑了。") == 4
    assert first_sentence_end("“走吧！”他说。") == 5
    assert first_sentence_end("没有句号") == 4
    assert first_sentence_end("一行\n二行") == 2


async def test_stop_cancels_within_a_step(make_app):
    # 0.05 s a step: 5000 characters would take minutes, and the UI stays idle enough for Pilot's key presses
    app, _ = make_app(extra="", delay=0.05)
    app.config = app.config.with_value("generation", "length", 5000)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        await pilot.press("ctrl+g")
        assert await wait_until(pilot, lambda: app.candidates.candidates and len(app.candidates.candidates[0].text) > 5)
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: app.job.done)
        await pilot.pause(0.2)
        assert app.status.activity == "stopped"
        assert all(len(c.text) < 5000 for c in app.candidates.candidates)


async def test_settings_change_applies_to_the_next_request_and_is_saved(make_app, tmp_path):
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        await pilot.press("f2")
        field = app.query_one("#setting-generation-candidates")
        field.focus()
        field.value = "2"
        await pilot.press("enter")  # applied on enter (or leaving the field), never while typing
        await pilot.pause(0.1)
        assert len(await generate(pilot, app)) == 2
        saved = (tmp_path / "config.toml").read_text()
        assert "candidates = 2" in saved and 'language = "en"' in saved  # the rest kept
        field.value = "12"  # out of range: marked, not applied
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert field.has_class("-invalid") and app.config.generation.candidates == 2
        assert "12 is outside 1..9" in str(app.query_one("#setting-generation-candidates-problem").render())


async def test_reopening_finds_the_saved_text(make_app):
    app, path = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        await pilot.press(*"xyz")
        await pilot.press("ctrl+s")
        assert await wait_until(pilot, lambda: path.read_text(encoding="utf-8") == MANUSCRIPT + "xyz")
    again, _ = make_app(text=None)
    async with again.run_test(size=(100, 30)) as pilot:
        assert again.editor.text == MANUSCRIPT + "xyz"


async def test_a_terminal_too_small_gets_a_message(make_app):
    app, _ = make_app()
    async with app.run_test(size=(50, 12)) as pilot:
        await pilot.pause(0.1)
        assert app.screen.has_class("-too-small")
        assert "50x12" in str(app.query_one("#too-small").render())
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.1)
        assert not app.screen.has_class("-too-small")


async def test_history_tree_takes_an_earlier_candidate(make_app):
    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        await pilot.press("f3")
        await pilot.pause(0.1)
        await pilot.press("down", "down", "enter")  # the newest request, then its candidates: candidate 2
        await pilot.pause(0.1)
        assert app.editor.text == MANUSCRIPT + texts[1]


async def test_chinese_interface(make_app):
    app, _ = make_app(extra="")
    app.config = app.config.with_value("studio", "language", "zh")
    from ai_writer.studio.i18n import choose_language, set_language, tr

    set_language(choose_language("zh"))
    try:
        assert tr("generating") == "生成中"
        assert choose_language("auto", {"LANG": "zh_CN.UTF-8"}) == "zh"
        assert choose_language("auto", {"LANG": "en_US.UTF-8"}) == "en"
    finally:
        set_language("en")


@pytest.mark.parametrize("real", [True, False], ids=["backends.load", "engine_loader"])
async def test_a_missing_model_is_reported_not_raised(tmp_path, make_app, real):
    app, _ = make_app(real=real)  # backends.load's own LoadError, or the one an engine_loader raises
    app.config = app.config.with_value("model", "path", str(tmp_path / "nope.safetensors"))
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_until(pilot, lambda: "nope.safetensors" in app.status.message)
        await pilot.press("ctrl+g")
        assert app.candidates.candidates == []


async def test_new_manuscript_without_a_file(tmp_path, fake_model):
    config = load_config(write_config(tmp_path, fake_model), user_path=tmp_path / "no-user.toml")
    app = StudioApp(config, None, data_dir=tmp_path / "data", engine_loader=fake_loader())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.1)
        assert app.path.parent == tmp_path / "data" / "manuscripts"
        assert str(app.path) in app.status.message
        await pilot.press(*"hello")
        assert await wait_until(pilot, lambda: app.path.read_text(encoding="utf-8") == "hello")


async def test_the_terminal_cursor_follows_the_insertion_point_for_input_methods(make_app):
    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press(*"ab")
        await pilot.pause(0.05)
        assert app.cursor_position == app.editor.cursor_screen_offset
        app.editor.move_cursor((0, 2))
        await pilot.pause(0.05)
        assert app.cursor_position == app.editor.cursor_screen_offset
        assert app.cursor_position.x > app.editor.region.x  # inside the editor, past the indent


@pytest.mark.parametrize("width", [1, 2])
async def test_ambiguous_width_punctuation_keeps_the_cursor_on_its_character(make_app, width):
    from ai_writer.studio.terminal_widths import set_ambiguous_width

    app, _ = make_app(text="", extra=f"ambiguous_width = {width}\n")
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("a")
            before = app.cursor_position.x
            app.editor.insert("“…”")
            await pilot.pause(0.05)
            assert app.cursor_position.x - before == 3 * width  # as the terminal draws them
    finally:
        set_ambiguous_width(1)


async def test_the_status_line_says_which_backend_auto_chose_and_why(make_app):
    app, _ = make_app(real=True)  # the test config leaves backend = "auto"
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        backend = small_model_auto_backend()
        assert f"{backend}/cpu" in app.status.model  # short on the line
        assert "auto: no CUDA GPU" in app.status.details
        assert ("without torch (a float32 .safetensors file of" if backend == "native" else "ONNX") in app.status.details
        assert str(app.status.tooltip) == app.status.details
        await pilot.press("f8")  # the details, whole
        assert await wait_until(pilot, lambda: any("auto: no CUDA GPU" in str(n.message) for n in app._notifications))


def test_generation_threads_leave_a_core_to_the_ui_unless_set():
    import os

    from ai_writer.studio.screens.main_screen import generation_threads

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert generation_threads(0) == max(1, cpus - 1)
    assert generation_threads(3) == 3


async def test_the_model_gets_the_configured_threads_before_generating(make_app, monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    app, _ = make_app(real=True)
    app.config = app.config.with_value("generation", "threads", 1)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        assert calls == [1]


def test_a_bad_threads_setting_is_one_line(tmp_path, tiny_model):
    from ai_writer.studio.config import ConfigError

    path = write_config(tmp_path, tiny_model)
    path.write_text(path.read_text(encoding="utf-8").replace("length = 12\n", "length = 12\nthreads = -2\n"),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path, user_path=tmp_path / "no-user.toml")
    assert str(error.value) == f"{path}: line 6: [generation] threads -2 is outside 0..1024"


async def test_streaming_candidates_wait_while_the_author_types(make_app, monkeypatch):
    import types

    import ai_writer.studio.screens.main_screen as main_screen
    from ai_writer.backends.writing.generation import Chunk

    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        await generate(pilot, app)
        clock = [1000.0]
        monkeypatch.setattr(main_screen, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
        panel = app.candidates
        app.main._last_edit, app.main._last_drain = 999.9, 999.99  # a key 0.1 s ago, candidates drawn 0.01 s ago
        app.buffer.push(Chunk(app.job.id, 0, "X"))
        for _ in range(5):
            await pilot.pause(0.05)
        assert not panel.candidates[0].text.endswith("X")  # held back while typing
        clock[0] += main_screen.TYPING_REDRAW_INTERVAL
        assert await wait_until(pilot, lambda: panel.candidates[0].text.endswith("X"))  # at the slower pace
        app.main._last_edit, app.main._last_drain = clock[0] - 5, clock[0]  # not typing: every tick drains
        app.buffer.push(Chunk(app.job.id, 0, "Y"))
        assert await wait_until(pilot, lambda: panel.candidates[0].text.endswith("XY"))
