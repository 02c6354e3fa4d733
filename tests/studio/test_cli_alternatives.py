"""`ai-writer continue --json --alternatives K`: each token's probabilities and the K the model liked best."""

from __future__ import annotations

import json

import pytest

from ai_writer.studio.cli import main
from tests.studio.test_cli import isolated_user_config, manuscript, run  # noqa: F401  (fixtures)


def continue_json(capsys, manuscript, model, *extra):
    code, out, err = run(capsys, "continue", manuscript, "--model", model, "-n", 2, "--length", 12,
                         "--seed", 3, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def test_alternatives_give_each_tokens_choices(capsys, manuscript, tiny_model):
    result = continue_json(capsys, manuscript, tiny_model, "--alternatives", 5)
    plain = continue_json(capsys, manuscript, tiny_model)
    assert result["candidates"] == plain["candidates"]  # recording changes nothing that is written
    assert "choices" not in plain and set(plain) == {"model", "backend", "device", "seed", "candidates"}
    assert len(result["choices"]) == 2
    for candidate, tokens in zip(result["candidates"], result["choices"]):
        assert "".join(t["text"] for t in tokens) == candidate  # no indent in this manuscript
        for token in tokens:
            assert set(token) == {"text", "p", "p_raw", "alternatives"}
            assert 0.0 < token["p"] <= 1.0 and 0.0 < token["p_raw"] <= 1.0
            alternatives = token["alternatives"]
            assert len(alternatives) == 5 and all(set(a) == {"text", "p", "p_raw"} for a in alternatives)
            raw = [a["p_raw"] for a in alternatives]
            assert raw == sorted(raw, reverse=True) and sum(raw) <= 1.005
            if token["p_raw"] > raw[-1]:
                assert token["text"] in [a["text"] for a in alternatives]


@pytest.mark.parametrize("extra, says", [
    (("--alternatives", "0"), "--alternatives"),
    (("--alternatives", "51"), "--alternatives"),
    (("--alternatives", "x"), "--alternatives"),
])
def test_out_of_range_alternatives_are_refused(capsys, manuscript, tiny_model, extra, says):
    code, out, err = run_exit(capsys, "continue", manuscript, "--model", tiny_model, "--json", *extra)
    assert code == 2 and out == "" and says in err and "Traceback" not in err


def test_alternatives_need_json(capsys, manuscript, tiny_model):
    code, out, err = run(capsys, "continue", manuscript, "--model", tiny_model, "--alternatives", 3)
    assert code == 2 and out == ""
    assert err.strip() == "ai-writer: --alternatives goes with --json (the choices are printed in the JSON object)"


def run_exit(capsys, *argv):
    """argparse refuses with SystemExit(2) and its usage on stderr."""
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exited.value.code, out, err
