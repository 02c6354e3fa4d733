"""`ai-writer continue --json` with [model] backend = "openai": the candidates come from a real serve-api on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from ai_writer.backends.writing.generation import GenerationService
from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.studio.api.server import ApiServer, BackgroundServer
from ai_writer.studio.cli import main

MANUSCRIPT = "第一章 山雨欲来\n他走进了房间，四下看了看。\n“你来了。”\n"


@pytest.fixture(autouse=True)
def isolated_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture(scope="module")
def served(tiny_engine):
    service = GenerationService(tiny_engine, state_store=None)
    running = BackgroundServer(ApiServer(service, "tiny", SamplingSettings()))
    yield running
    running.close()
    service.close()


def write_config(folder, **model) -> str:
    lines = ["[model]"] + [f"{key} = {json.dumps(value)}" for key, value in model.items()]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def continue_json(capsys, config, manuscript, *extra):
    code = main(["--config", config, "continue", str(manuscript), "-n", "2", "--length", "20", "--seed", "7",
                 "--json", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_continue_writes_with_the_servers_model(capsys, tmp_path, served, tiny_model):
    manuscript = tmp_path / "novel.txt"
    manuscript.write_text(MANUSCRIPT, encoding="utf-8")
    url = f"http://127.0.0.1:{served.port}"
    remote = continue_json(capsys, write_config(tmp_path, backend="openai", url=url, remote_model="tiny"), manuscript,
                           "--alternatives", "3")
    here = continue_json(capsys, write_config(tmp_path, backend="torch", device="cpu", path=str(tiny_model)),
                         manuscript, "--alternatives", "3")
    assert (remote["backend"], remote["device"], remote["model"]) == ("openai", "127.0.0.1", f"{url} tiny")
    assert remote["candidates"] == here["candidates"] and len(remote["candidates"][0]) == 20
    for mine, local in zip(remote["choices"], here["choices"]):  # the server's logprobs, token by token
        assert [t["text"] for t in mine] == [t["text"] for t in local]
        assert [t["p_raw"] for t in mine] == pytest.approx([max(t["p_raw"], 2.0 ** -24) for t in local], rel=2e-3)
        assert [a["text"] for a in mine[0]["alternatives"]] == [a["text"] for a in local[0]["alternatives"]]


def test_a_model_the_server_lacks_is_one_line(capsys, tmp_path, served):
    manuscript = tmp_path / "novel.txt"
    manuscript.write_text(MANUSCRIPT, encoding="utf-8")
    url = f"http://127.0.0.1:{served.port}"
    code = main(["--config", write_config(tmp_path, backend="openai", url=url, remote_model="nope"),
                 "continue", str(manuscript)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err == f"ai-writer: {url} has no model 'nope' (it has 'tiny'); set [model] remote_model\n"
