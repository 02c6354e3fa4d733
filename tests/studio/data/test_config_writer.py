"""studio.data.config_writer: settings saved into TOML with comments and layout kept."""

import difflib
import errno
import os
import re
import stat
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ai_writer.studio.data import manuscript_file as mf
from ai_writer.studio.data.config_writer import ConfigWriteError, toml_string, update_config_file
from tests.helpers import REPO

REPO_CONFIG = REPO / "config.toml"

USER_CONFIG = """\
# My settings for AI-Writer Studio.

[model]
path   =   "D:/models/novel.safetensors"   # aligned, the way I like it
device="cpu"
unknown_char = "\\ue083"

[generation]
candidates = 3  # how many
banned_chars = "#&" # a '#' inside the string, then a comment
notes = \"\"\"
[sampling]
top_p = 0.1
\"\"\"
stop_list = [
    "a",  # first
    "b",
]

# Sampling: tuned by hand, don't lose this comment.
[sampling]
top_p = 0.75
"top_k" = 40
temperature = 1.0
"""


def changed_lines(old: str, new: str) -> tuple[list[str], list[str]]:
    """(lines only in old, lines only in new): everything else is byte-identical and in order."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    removed, added = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            removed += a[i1:i2]
            added += b[j1:j2]
    return removed, added


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_existing_keys_rewritten_in_place_comments_kept(tmp_path):
    path = write(tmp_path / "config.toml", USER_CONFIG)
    update_config_file(path, {"model": {"path": "E:/新模型.safetensors", "device": "cuda"}, "generation": {"candidates": 5, "banned_chars": "@"}, "sampling": {"top_p": 0.8, "top_k": 0}})
    new = path.read_text(encoding="utf-8")
    removed, added = changed_lines(USER_CONFIG, new)
    assert removed == [
        'path   =   "D:/models/novel.safetensors"   # aligned, the way I like it\n',
        'device="cpu"\n',
        "candidates = 3  # how many\n",
        "banned_chars = \"#&\" # a '#' inside the string, then a comment\n",
        "top_p = 0.75\n",
        '"top_k" = 40\n',
    ]
    assert added == [
        'path   =   "E:/新模型.safetensors"   # aligned, the way I like it\n',
        'device="cuda"\n',
        "candidates = 5  # how many\n",
        "banned_chars = \"@\" # a '#' inside the string, then a comment\n",
        "top_p = 0.8\n",
        '"top_k" = 0\n',
    ]
    parsed = tomllib.loads(new)
    assert parsed["model"] == {"path": "E:/新模型.safetensors", "device": "cuda", "unknown_char": "\ue083"}
    assert parsed["generation"]["notes"] == "[sampling]\ntop_p = 0.1\n"  # the fake header was left alone
    assert parsed["sampling"] == {"top_p": 0.8, "top_k": 0, "temperature": 1.0}


def test_missing_keys_go_after_the_last_key_of_their_section(tmp_path):
    path = write(tmp_path / "config.toml", USER_CONFIG)
    update_config_file(path, {"generation": {"length": 300}, "model": {"dtype": "float16"}})
    new = path.read_text(encoding="utf-8")
    removed, added = changed_lines(USER_CONFIG, new)
    assert removed == [] and added == ['dtype = "float16"\n', "length = 300\n"]  # in file order
    lines = new.splitlines()
    # after the multi-line array that ends [generation], before the comment of [sampling]
    assert lines[lines.index("length = 300") - 1] == "]"
    assert lines[lines.index("length = 300") + 2].startswith("# Sampling")
    assert lines[lines.index('dtype = "float16"') - 1] == 'unknown_char = "\\ue083"'
    parsed = tomllib.loads(new)
    assert parsed["generation"]["length"] == 300 and parsed["model"]["dtype"] == "float16"


def test_missing_sections_go_at_the_end(tmp_path):
    path = write(tmp_path / "config.toml", USER_CONFIG)
    update_config_file(path, {"studio": {"language": "zh", "autosave": True}, "my section": {"a key": 1}})
    new = path.read_text(encoding="utf-8")
    assert new.startswith(USER_CONFIG)
    assert new[len(USER_CONFIG) :] == '\n[studio]\nlanguage = "zh"\nautosave = true\n\n["my section"]\n"a key" = 1\n'
    parsed = tomllib.loads(new)
    assert parsed["studio"] == {"language": "zh", "autosave": True}
    assert parsed["my section"] == {"a key": 1}


def test_missing_file_is_created_with_just_the_changes(tmp_path):
    path = tmp_path / "new" / "folder" / "config.toml"
    update_config_file(path, {"sampling": {"temperature": 0.9}, "studio": {"theme": "dark"}})
    assert path.read_text(encoding="utf-8") == '[sampling]\ntemperature = 0.9\n\n[studio]\ntheme = "dark"\n'
    assert tomllib.loads(path.read_text(encoding="utf-8")) == {"sampling": {"temperature": 0.9}, "studio": {"theme": "dark"}}


STRINGS = [
    "\n",
    "\ue083",
    "",
    'say "hi"',
    "C:\\novels\\第一章.txt",
    "\\n is not a newline",
    "tab\there",
    "\r\n",
    "\x00\x1f\x7f",
    "\u2028\u2029\u200b\ufeff",
    "，。、：；？！“”‘’「」『』…—\n",
    "\U0001f600 emoji",
    "'single' and '''triple'''",
    '"""',
    "# not a comment",
    "　　ideographic spaces",
]


@pytest.mark.parametrize("value", STRINGS, ids=[repr(s) for s in STRINGS])
def test_strings_round_trip(tmp_path, value):
    path = write(tmp_path / "config.toml", USER_CONFIG)
    update_config_file(path, {"generation": {"banned_chars": value, "brand_new": value}, "extra": {"s": value}})
    parsed = tomllib.loads(path.read_text(encoding="utf-8"))
    assert parsed["generation"]["banned_chars"] == value
    assert parsed["generation"]["brand_new"] == value
    assert parsed["extra"]["s"] == value
    assert toml_string(value).count("\n") == 0  # always a single line


def test_non_ascii_is_written_as_is_and_invisible_characters_escaped():
    assert toml_string("中文“引号”…") == '"中文“引号”…"'
    assert toml_string("\ue083") == '"\\ue083"'
    assert toml_string("\n\t\"\\") == '"\\n\\t\\"\\\\"'
    assert toml_string("\x7f") == '"\\u007f"'


@pytest.mark.parametrize(
    "value, written",
    [(True, "true"), (False, "false"), (0, "0"), (-1, "-1"), (2**63 - 1, str(2**63 - 1)), (0.75, "0.75"),
     (1.0, "1.0"), (1e-05, "1e-05"), (1.5e20, "1.5e+20"), (-0.0, "-0.0"), (float("inf"), "inf"), (float("-inf"), "-inf")],
)
def test_scalar_values_keep_their_type(tmp_path, value, written):
    path = write(tmp_path / "config.toml", USER_CONFIG)
    update_config_file(path, {"sampling": {"top_p": value}})
    new = path.read_text(encoding="utf-8")
    assert f"\ntop_p = {written}\n" in new
    parsed = tomllib.loads(new)["sampling"]["top_p"]
    assert type(parsed) is type(value) and parsed == value


def test_nan_is_written(tmp_path):
    path = write(tmp_path / "config.toml", "[sampling]\ntop_p = 0.5\n")
    update_config_file(path, {"sampling": {"top_p": float("nan")}})
    assert path.read_text() == "[sampling]\ntop_p = nan\n"


def test_other_types_are_refused(tmp_path):
    path = write(tmp_path / "config.toml", USER_CONFIG)
    with pytest.raises(TypeError, match="only str, bool, int, float"):
        update_config_file(path, {"sampling": {"top_p": [1, 2]}})
    assert path.read_text(encoding="utf-8") == USER_CONFIG


def test_crlf_file_stays_crlf(tmp_path):
    original = USER_CONFIG.replace("\n", "\r\n")
    path = write(tmp_path / "config.toml", original)
    update_config_file(path, {"sampling": {"top_p": 0.6}, "model": {"dtype": "bfloat16"}, "studio": {"x": 1}})
    data = path.read_bytes()
    assert re.search(rb"(?<!\r)\n", data) is None
    new = data.decode("utf-8")
    removed, added = changed_lines(original, new)
    assert removed == ["top_p = 0.75\r\n"]
    assert added == ['dtype = "bfloat16"\r\n', "top_p = 0.6\r\n", "\r\n", "[studio]\r\n", "x = 1\r\n"]
    assert tomllib.loads(new)["sampling"]["top_p"] == 0.6


def test_file_without_final_newline(tmp_path):
    path = write(tmp_path / "config.toml", "[sampling]\ntop_p = 0.5")
    update_config_file(path, {"sampling": {"seed": 3}, "model": {"device": "cpu"}})
    assert path.read_text() == '[sampling]\ntop_p = 0.5\nseed = 3\n\n[model]\ndevice = "cpu"\n'


def test_empty_section_gets_its_key_after_the_header(tmp_path):
    path = write(tmp_path / "config.toml", "[model]  # nothing yet\n\n[sampling]\ntop_p = 0.5\n")
    update_config_file(path, {"model": {"device": "cpu"}})
    assert path.read_text() == '[model]  # nothing yet\ndevice = "cpu"\n\n[sampling]\ntop_p = 0.5\n'


def test_multiline_values_are_replaced_whole(tmp_path):
    path = write(tmp_path / "config.toml", USER_CONFIG)
    update_config_file(path, {"generation": {"notes": "short", "stop_list": "now a string"}})
    new = path.read_text(encoding="utf-8")
    parsed = tomllib.loads(new)
    assert parsed["generation"]["notes"] == "short" and parsed["generation"]["stop_list"] == "now a string"
    assert parsed["sampling"] == {"top_p": 0.75, "top_k": 40, "temperature": 1.0}
    assert "top_p = 0.1" not in new
    removed, added = changed_lines(USER_CONFIG, new)
    assert added == ['notes = "short"\n', 'stop_list = "now a string"\n']
    assert len(removed) == 8


def test_repo_defaults_file_updates_cleanly(tmp_path):
    original = REPO_CONFIG.read_text(encoding="utf-8")
    path = write(tmp_path / "config.toml", original)
    update_config_file(path, {"model": {"unknown_char": "\ue083", "device": "cuda:1"}, "generation": {"penalty_exempt_chars": "，。\n"}})
    new = path.read_text(encoding="utf-8")
    removed, added = changed_lines(original, new)
    assert len(removed) == len(added) == 2  # unknown_char is written exactly as before
    parsed, before = tomllib.loads(new), tomllib.loads(original)
    before["model"]["device"] = "cuda:1"
    before["generation"]["penalty_exempt_chars"] = "，。\n"
    assert parsed == before


def test_invalid_toml_is_left_alone(tmp_path):
    broken = "[sampling]\ntop_p = = 0.5\n"
    path = write(tmp_path / "config.toml", broken)
    with pytest.raises(ConfigWriteError, match=r"config\.toml: TOML syntax error"):
        update_config_file(path, {"sampling": {"top_p": 0.6}})
    assert path.read_text() == broken


def test_non_utf8_file_is_left_alone(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes("[model]\n# 注释\n".encode("gbk"))
    with pytest.raises(ConfigWriteError, match=r"config\.toml: line 2: not UTF-8"):
        update_config_file(path, {"model": {"device": "cpu"}})
    assert path.read_bytes() == "[model]\n# 注释\n".encode("gbk")


def test_layout_too_unusual_is_refused_not_corrupted(tmp_path):
    # [model] is defined by a dotted key at the top: appending a [model] table would be invalid.
    original = 'model.device = "cpu"\n\n[sampling]\ntop_p = 0.5\n'
    path = write(tmp_path / "config.toml", original)
    with pytest.raises(ConfigWriteError, match="too unusual"):
        update_config_file(path, {"model": {"device": "cuda"}})
    assert path.read_text() == original


def test_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = write(tmp_path / "config.toml", USER_CONFIG)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mf.os, "fsync", full)
    with pytest.raises(ConfigWriteError, match=r"config\.toml: cannot save: no space left on device; settings not saved"):
        update_config_file(path, {"sampling": {"top_p": 0.6}})
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == USER_CONFIG
    assert os.listdir(tmp_path) == ["config.toml"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_permissions_kept(tmp_path):
    path = write(tmp_path / "config.toml", USER_CONFIG)
    path.chmod(0o600)
    update_config_file(path, {"sampling": {"top_p": 0.6}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_bom_is_kept(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xef\xbb\xbf[sampling]\ntop_p = 0.5\n")
    update_config_file(path, {"sampling": {"top_p": 0.25}})
    assert path.read_bytes() == b"\xef\xbb\xbf[sampling]\ntop_p = 0.25\n"
