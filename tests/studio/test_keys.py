"""Every key binding has an id, every id is in config.toml's [keys] with the key it really has,
and an author can rebind any of them from their own config."""

from ai_writer.studio.config import load_config, read_toml, DEFAULTS_PATH
from ai_writer.studio.dialogs.alternatives import AlternativesDialog
from ai_writer.studio.dialogs.confirm import ConfirmDialog
from ai_writer.studio.dialogs.context_view import ContextView
from ai_writer.studio.dialogs.history_tree import HistoryTree
from ai_writer.studio.dialogs.open_file import OpenFileDialog
from ai_writer.studio.dialogs.scan_view import ScanView
from ai_writer.studio.dialogs.story_panel import StoryPanel
from ai_writer.studio.keys import ACTIONS, make_bindings
from ai_writer.studio.widgets.candidates import CandidatesPanel
from ai_writer.studio.widgets.manuscript_area import ManuscriptArea
from ai_writer.studio.widgets.scan_list import ScanList
from tests.studio.test_app import make_app, wait_until  # noqa: F401 (fixture)

OWN_BINDINGS = [CandidatesPanel, ManuscriptArea, ConfirmDialog, HistoryTree, OpenFileDialog, StoryPanel, ContextView,
                AlternativesDialog, ScanView, ScanList]


def declared_bindings() -> dict:
    """binding id -> keys, as the studio's own classes declare them (the main screen's from [keys])."""
    found = {}
    for owner in OWN_BINDINGS:
        for binding in owner.__dict__["BINDINGS"]:
            assert binding.id, f"{owner.__name__}: a binding for {binding.key!r} has no id (it could not be rebound)"
            found[binding.id] = binding.key
    return found


def test_every_binding_has_an_id_listed_in_config_toml_with_its_key():
    keys = read_toml(DEFAULTS_PATH)[0]["keys"]
    declared = declared_bindings()
    main_ids = {action_id for action_id, *_ in ACTIONS}
    assert set(keys) == set(declared) | main_ids
    for binding_id, key in declared.items():
        assert keys[binding_id] == key, f"config.toml says {binding_id} = {keys[binding_id]!r}, the widget {key!r}"
    for binding in make_bindings(keys):
        assert binding.key.split(",")[0] == keys[binding.id]


async def test_a_panel_key_is_rebound_from_the_authors_config(make_app):
    app, _ = make_app(extra='[keys]\n"candidates.reject" = "z"\n"candidates.accept_2" = "f9"\n')
    assert app.config.keys["candidates.reject"] == "z"
    async with app.run_test(size=(100, 30)) as pilot:
        assert await wait_until(pilot, lambda: app.service is not None)
        await pilot.press("ctrl+g")
        assert await wait_until(pilot, lambda: app.job is not None and app.job.done)
        app.candidates.focus()
        await pilot.press("x")  # the old key does nothing now
        assert not app.candidates.candidates[0].rejected
        await pilot.press("z")
        assert app.candidates.candidates[0].rejected
        second = app.candidates.candidates[1].text
        await pilot.press("f9")
        assert await wait_until(pilot, lambda: app.editor.text.endswith(second))


def test_a_binding_id_the_studio_does_not_have_is_refused_with_its_line(tmp_path):
    import pytest

    from ai_writer.studio.config import ConfigError

    path = tmp_path / "mine.toml"
    path.write_text('[keys]\n"candidates.nonsense" = "q"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"mine.toml: line 2: unknown key \[keys\] candidates.nonsense"):
        load_config(path, user_path=tmp_path / "none.toml")
