"""Switching to a model that does not open, through a real pseudo-terminal: the status line says so, the
running model keeps writing, and the config file is left as it was."""

from __future__ import annotations

from tests.terminal.harness import ctrl, fkey


def test_a_failed_switch_keeps_writing_with_the_running_model(start_studio, tmp_path):
    studio = start_studio("　　他走进了房间。\n", cols=120, rows=34,
                          generation={"candidates": 2, "length": 16}, sampling={"seed": 3})
    studio.wait_ready()
    config_before = (tmp_path / "config.toml").read_text(encoding="utf-8")
    studio.send(fkey(2))  # the settings panel opens on the model file's field
    studio.wait_for("Model file", timeout=5)
    studio.press("end")
    studio.send(ctrl("u"))  # clear the field (Input: delete everything left of the cursor)
    studio.type_text(str(tmp_path / "missing.safetensors"), per_key_delay=0.005)
    studio.press("enter")
    studio.wait_for("not switched, still writing with tiny7", timeout=10)
    studio.wait_for("The model was not switched", timeout=10)  # the whole reason, in a notification
    where = studio.locate("The model was not switched")
    assert where is not None and "no such model file" in studio.screen_text(), studio.dump()
    studio.click(*where)  # a click dismisses it
    studio.wait_gone("The model was not switched", timeout=5)
    studio.send(fkey(2))  # close the panel; the editor has the focus again
    studio.wait_gone("Model file", timeout=5)
    studio.send(ctrl("g"))
    assert len(studio.finished_candidates(2)) == 2, studio.dump()
    assert (tmp_path / "config.toml").read_text(encoding="utf-8") == config_before
    user_config = tmp_path / "xdg_config_home" / "ai-writer-studio" / "config.toml"
    assert not user_config.exists() or "missing.safetensors" not in user_config.read_text(encoding="utf-8")
