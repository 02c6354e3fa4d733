"""`ai-writer context` and `ai-writer continue --story`: the story file honoured on the command line."""

from __future__ import annotations

import json

import pytest

from tests.studio.test_cli import MANUSCRIPT, continue_json, isolated_user_config, manuscript, one_error_line, run  # noqa: F401

STORY = '''memory = "林远：少年剑客。"

[generation]
length = 7

[[lore]]
name = "房间"
keys = ["房间"]
text = "房间在客栈二楼。"

[[lore]]
name = "城门"
keys = ["城门"]
text = "城门朝东。"
'''


@pytest.fixture
def story(manuscript):
    path = manuscript.with_name("novel.story.toml")
    path.write_text(STORY, encoding="utf-8")
    return path


def context_json(capsys, *argv):
    code, out, err = run(capsys, "context", *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_context_shows_each_part_the_keys_that_fired_and_what_is_left_out(capsys, manuscript, story, tiny_model):
    result = context_json(capsys, manuscript, "--model", tiny_model)
    assert [(p["kind"], p["name"]) for p in result["parts"]] == [("memory", ""), ("lore", "房间"), ("story", "")]
    assert result["parts"][0]["text"] == "\n林远：少年剑客。\n"
    assert result["hits"] == [{"entry": "房间", "key": "房间", "position": MANUSCRIPT.rfind("房间")}]
    assert result["left_out"] == [{"entry": "城门", "why": "no key"}]
    assert result["chars"] == sum(p["chars"] for p in result["parts"])
    assert result["reread_tokens"] == result["tokens"] > 0  # a fresh process: nothing cached yet


def test_context_as_text_names_every_part(capsys, manuscript, story, tiny_model):
    code, out, err = run(capsys, "context", manuscript, "--model", tiny_model)
    assert code == 0, err
    assert "── memory" in out and "── lore entry 房间" in out and "── story" in out
    assert "林远：少年剑客。⏎" in out
    assert f"房间: 房间 at character {MANUSCRIPT.rfind('房间')}" in out
    assert "城门: none of its keys appeared" in out
    assert "will be re-read" in out


def test_context_at_a_cursor_reads_only_what_is_before_it(capsys, manuscript, story, tiny_model):
    cursor = MANUSCRIPT.index("他")  # before "房间" is written
    result = context_json(capsys, manuscript, "--model", tiny_model, "--cursor", cursor)
    assert [p["kind"] for p in result["parts"]] == ["memory", "story"]
    assert result["parts"][-1]["text"] == MANUSCRIPT[:cursor] == "第一章 山雨欲来\n"
    code, _, err = run(capsys, "context", manuscript, "--model", tiny_model, "--cursor", len(MANUSCRIPT) + 1)
    assert code == 2 and "--cursor" in one_error_line(err)


def test_a_long_books_states_on_disk_spare_the_next_run_reading_it(capsys, tmp_path, tiny_model):
    book = tmp_path / "book.txt"
    book.write_text(("他走进了房间，四下看了看。\n" * 400), encoding="utf-8")  # 5,600 characters
    (tmp_path / "book.story.toml").write_text("[generation]\ncontext_chars = 0\n", encoding="utf-8")
    before = context_json(capsys, book, "--model", tiny_model)
    assert before["reread_tokens"] == before["tokens"] > 5000 and not before["from_disk"]
    continue_json(capsys, book, tiny_model, seed=1, n=1, length=3)  # reads the whole book, keeps its end on disk
    after = context_json(capsys, book, "--model", tiny_model)
    assert after["tokens"] == before["tokens"]
    assert after["reread_tokens"] == 0 and after["from_disk"]


def test_continue_honours_the_story_and_another_story_file(capsys, tmp_path, manuscript, story, tiny_model):
    code, out, err = run(capsys, "continue", manuscript, "--model", tiny_model, "-n", 2, "--seed", 3, "--json")
    assert code == 0, err
    with_story = json.loads(out)
    assert all(len(c) == 7 for c in with_story["candidates"])  # the story's [generation] length
    plain = tmp_path / "plain.story.toml"
    plain.write_text("[generation]\nlength = 7\n", encoding="utf-8")
    code, out, err = run(capsys, "continue", manuscript, "--model", tiny_model, "-n", 2, "--seed", 3,
                         "--story", plain, "--json")
    assert code == 0, err
    without_memory = json.loads(out)["candidates"]
    assert all(len(c) == 7 for c in without_memory)
    assert without_memory != with_story["candidates"]  # the memory and lore changed what the model read


def test_a_broken_or_missing_story_file_is_one_line(capsys, manuscript, story, tiny_model):
    story.write_text(STORY.replace("length = 7", "length = 0"), encoding="utf-8")
    for command in ("continue", "context"):
        code, _, err = run(capsys, command, manuscript, "--model", tiny_model)
        line = one_error_line(err)
        assert code == 2 and "novel.story.toml" in line and "length" in line
    code, _, err = run(capsys, "context", manuscript, "--model", tiny_model, "--story", story.with_name("none.toml"))
    assert code == 2 and "none.toml: no such story file" in one_error_line(err)
