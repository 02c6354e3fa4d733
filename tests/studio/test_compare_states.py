"""State files in the CLI (--state, --compare-state) and two starts side by side in the studio's candidates panel."""

from __future__ import annotations

import json

import pytest
import torch

from ai_writer.studio.app import StudioApp
from ai_writer.studio.cli import main
from ai_writer.studio.config import load_config
from ai_writer.studio.widgets.settings_panel import field_id
from tests.studio.test_app import MANUSCRIPT, generate, ready, wait_until, write_config

GREEDY = "top_k = 1\n"  # each start's candidates are then the same text: easy to tell the starts apart


def write_state(path, n_layer=2, n_embd=64, seed=0, scale=3.0):
    generator = torch.Generator().manual_seed(seed)
    torch.save({f"blocks.{i}.att.time_state": torch.randn(n_embd // 64, 64, 64, generator=generator) * scale
                for i in range(n_layer)}, path)
    return path


@pytest.fixture
def states(tmp_path):
    return write_state(tmp_path / "gentle.pth", seed=1), write_state(tmp_path / "grim.pth", seed=2)


@pytest.fixture
def cli_config(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = tmp_path / "config.toml"
    path.write_text(f'[model]\npath = "{tiny_model}"\nbackend = "torch"\n[sampling]\n{GREEDY}', encoding="utf-8")
    manuscript = tmp_path / "novel.txt"
    manuscript.write_text(MANUSCRIPT, encoding="utf-8")
    return path, manuscript


def test_continue_with_a_state_and_a_compared_state(cli_config, states, capsys):
    config, manuscript = cli_config
    gentle, grim = states
    code = main(["--config", str(config), "continue", str(manuscript), "-n", "4", "--length", "16", "--json",
                 "--state", str(gentle), "--compare-state", str(grim)])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    first, second, third, fourth = result["candidates"]
    assert result["starts"] == ["gentle", "gentle", "grim", "grim"]
    assert first == second and third == fourth and first != third
    main(["--config", str(config), "continue", str(manuscript), "-n", "1", "--length", "16", "--json", "--state", str(grim)])
    assert json.loads(capsys.readouterr().out)["candidates"] == [third]  # the compared start writes as that state alone
    main(["--config", str(config), "continue", str(manuscript), "-n", "2", "--length", "16", "--compare-state", str(grim)])
    out = capsys.readouterr().out
    assert "from none" in out and "from grim" in out  # printed form: each candidate's start


def test_a_state_that_does_not_fit_is_one_line(cli_config, tmp_path, capsys):
    config, manuscript = cli_config
    wrong = write_state(tmp_path / "wide.pth", n_layer=24, n_embd=2048, scale=0.0)
    for option in ("--state", "--compare-state"):
        code = main(["--config", str(config), "continue", str(manuscript), "-n", "2", option, str(wrong)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert "this state is for a 24-layer 2048 model (heads of 64); yours is 2 x 64" in err


async def test_the_candidates_panel_shows_two_starts_side_by_side(tmp_path, tiny_model, states):
    gentle, grim = states
    manuscript = tmp_path / "novel.txt"
    manuscript.write_text(MANUSCRIPT, encoding="utf-8")
    path = write_config(tmp_path, tiny_model).read_text(encoding="utf-8")
    path = path.replace("[generation]\ncandidates = 3\n", "[generation]\ncandidates = 4\n").replace("[sampling]\n", f"[sampling]\n{GREEDY}")
    (tmp_path / "config.toml").write_text(path.replace('[model]\n', f'[model]\nstate = "{gentle}"\n'), encoding="utf-8")
    config = load_config(tmp_path / "config.toml", user_path=tmp_path / "user.toml")
    app = StudioApp(config, manuscript, data_dir=tmp_path / "data")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        await pilot.press("f2")
        field = app.main.query_one(f"#{field_id('generation', 'compare_state')}")
        field.focus()
        field.value = str(grim)
        await pilot.press("enter")
        assert await wait_until(pilot, lambda: "comparing starts" in app.status.message)
        await pilot.press("f2")
        texts = await generate(pilot, app)
        titles = [str(app.candidates.view(i).border_title) for i in range(4)]
        assert [t.split(" · ")[1] for t in titles] == ["gentle", "gentle", "grim", "grim"]
        assert texts[0] == texts[1] and texts[2] == texts[3] and texts[0] != texts[2]
        wrong = write_state(tmp_path / "wide.pth", n_layer=3, n_embd=64)
        await pilot.press("f2")
        field.focus()
        field.value = str(wrong)
        await pilot.press("enter")
        assert await wait_until(pilot, lambda: "not compared" in app.status.message)
        assert "3-layer 64 model" in app.status.message and field.value == str(grim)
    assert f'compare_state = "{grim}"' in (tmp_path / "config.toml").read_text(encoding="utf-8")  # the file it came from
