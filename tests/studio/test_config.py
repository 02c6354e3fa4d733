"""Settings: the repo's config.toml as defaults, a user file and an explicit file laid over it."""

from __future__ import annotations

import pytest

from ai_writer.studio.config import DEFAULTS_PATH, ConfigError, load_config, read_toml


@pytest.fixture
def no_user(tmp_path):
    """A user config path that does not exist, so the real user folder is never read."""
    return tmp_path / "no-user" / "config.toml"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_load(no_user):
    config = load_config(user_path=no_user)
    defaults, _ = read_toml(DEFAULTS_PATH)
    assert config.sources == (DEFAULTS_PATH,)
    for section in ("generation", "sampling"):
        assert config.tables()[section] == defaults[section]
    # the default model path is resolved relative to the repo's config.toml
    assert config.model.path == str((DEFAULTS_PATH.parent / defaults["model"]["path"]).resolve())
    assert config.model.vocab == ""
    assert config.sampling.top_p == defaults["sampling"]["top_p"]
    assert config.sampling.settings.problems() == []


def test_user_file_overrides_values(tmp_path):
    user = write(tmp_path / "user" / "config.toml", "[generation]\ncandidates = 5\n\n[sampling]\ntop_p = 0.5\n")
    config = load_config(user_path=user)
    assert config.generation.candidates == 5
    assert config.sampling.top_p == 0.5
    assert config.generation.length == read_toml(DEFAULTS_PATH)[0]["generation"]["length"]
    assert config.sources == (DEFAULTS_PATH, user)


def test_explicit_file_overrides_the_user_file(tmp_path):
    user = write(tmp_path / "user" / "config.toml", "[generation]\ncandidates = 5\nlength = 50\n")
    explicit = write(tmp_path / "run.toml", "[generation]\ncandidates = 2\n")
    config = load_config(explicit, user_path=user)
    assert config.generation.candidates == 2
    assert config.generation.length == 50
    assert config.sources == (DEFAULTS_PATH, user, explicit)


def test_relative_model_path_is_relative_to_the_file_that_sets_it(tmp_path, no_user, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the working folder must not matter
    explicit = write(tmp_path / "deep" / "er" / "run.toml", '[model]\npath = "../models/m.safetensors"\nvocab = "v.json"\n')
    config = load_config(explicit, user_path=no_user)
    assert config.model.path == str((tmp_path / "deep" / "models" / "m.safetensors").resolve())
    assert config.model.vocab == str((tmp_path / "deep" / "er" / "v.json").resolve())


def test_absolute_model_path_is_kept(tmp_path, no_user):
    target = (tmp_path / "abs" / "m.safetensors").resolve()
    explicit = write(tmp_path / "run.toml", f'[model]\npath = "{target.as_posix()}"\n')
    assert load_config(explicit, user_path=no_user).model.path == str(target)


def test_int_is_accepted_for_a_float_key(tmp_path, no_user):
    explicit = write(tmp_path / "run.toml", "[sampling]\ntemperature = 2\ntop_p = 1\n")
    config = load_config(explicit, user_path=no_user)
    assert config.sampling.temperature == 2.0
    assert isinstance(config.sampling.temperature, float)
    assert config.sampling.top_p == 1.0


def test_seed_minus_one_means_none(tmp_path, no_user):
    assert load_config(user_path=no_user).sampling.settings.seed is None  # the default is -1
    explicit = write(tmp_path / "run.toml", "[sampling]\nseed = 42\n")
    assert load_config(explicit, user_path=no_user).sampling.settings.seed == 42


def test_text_prep_follows_the_settings(tmp_path, no_user):
    explicit = write(tmp_path / "run.toml", "[generation]\nstrip_indents = false\nleading_newline = false\n")
    prep = load_config(explicit, user_path=no_user).generation.text_prep
    assert (prep.strip_indents, prep.drop_empty_lines, prep.leading_newline) == (False, True, False)


def test_missing_explicit_file(tmp_path, no_user):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="absent.toml"):
        load_config(path, user_path=no_user)


# -- errors: one line naming the file, the line and the key --------------------------


def config_error(tmp_path, no_user, text, name="bad.toml"):
    path = write(tmp_path / name, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, user_path=no_user)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    return message


@pytest.mark.parametrize(
    "text, line, key",
    [
        ("[generation]\nlength = 100\ncandidates = \n", 3, "candidates"),
        ('[model]\npath = "unterminated\n', 2, "path"),
        ("[sampling\ntop_p = 0.5\n", 1, "sampling"),
    ],
    ids=["missing-value", "unterminated-string", "unclosed-header"],
)
def test_toml_syntax_error(tmp_path, no_user, text, line, key):
    message = config_error(tmp_path, no_user, text)
    assert f"line {line}" in message
    assert key in message
    assert "syntax" in message


def test_unknown_section(tmp_path, no_user):
    message = config_error(tmp_path, no_user, "[generation]\nlength = 100\n\n[colours]\nink = 1\n")
    assert "line 4" in message
    assert "colours" in message


def test_unknown_key(tmp_path, no_user):
    message = config_error(tmp_path, no_user, "[generation]\nlength = 100\ncandidatez = 3\n")
    assert "line 3" in message
    assert "candidatez" in message


def test_key_outside_any_section(tmp_path, no_user):
    message = config_error(tmp_path, no_user, "# settings\ncandidates = 3\n")
    assert "line 2" in message
    assert "candidates" in message


def test_wrong_type(tmp_path, no_user):
    message = config_error(tmp_path, no_user, '[generation]\ncandidates = "3"\n')
    assert "line 2" in message
    assert "candidates" in message


@pytest.mark.parametrize(
    "text, key",
    [
        ("[generation]\nstrip_indents = 1\n", "strip_indents"),
        ("[generation]\ncandidates = 2.0\n", "candidates"),
        ("[sampling]\ntop_p = true\n", "top_p"),
        ("[model]\npath = 3\n", "path"),
    ],
)
def test_other_wrong_types(tmp_path, no_user, text, key):
    message = config_error(tmp_path, no_user, text)
    assert "line 2" in message
    assert key in message


@pytest.mark.parametrize(
    "text, line, key",
    [
        ("[generation]\ncandidates = 0\n", 2, "candidates"),
        ("[generation]\ncandidates = 10\n", 2, "candidates"),
        ("[sampling]\ntemperature = 1.0\ntop_p = 1.5\n", 3, "top_p"),
        ("[sampling]\ntop_k = -1\n", 2, "top_k"),
        ("[sampling]\nseed = -2\n", 2, "seed"),
    ],
)
def test_out_of_range(tmp_path, no_user, text, line, key):
    message = config_error(tmp_path, no_user, text)
    assert f"line {line}" in message
    assert key in message


def test_bad_choice(tmp_path, no_user):
    message = config_error(tmp_path, no_user, '[model]\ndevice = "cpu"\nbackend = "tpu"\n')
    assert "line 3" in message
    assert "backend" in message
    assert "'tpu'" in message


def test_section_header_with_a_comment(tmp_path, no_user):
    message = config_error(tmp_path, no_user, "[generation]  # mine\nlength = 100\n[sampling] # also mine\ntop_p = 1.5\n")
    assert "line 4" in message
    assert "top_p" in message


def test_error_in_the_user_file_names_the_user_file(tmp_path):
    user = write(tmp_path / "user" / "config.toml", "[generation]\n\ncandidates = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(user_path=user)
    assert str(user) in str(caught.value)
    assert "line 3" in str(caught.value)


def test_non_utf8_config(tmp_path, no_user):
    path = tmp_path / "gbk.toml"
    path.write_bytes('[model]\npath = "第一章.safetensors"\n'.encode("gbk"))
    with pytest.raises(ConfigError, match="gbk.toml"):
        load_config(path, user_path=no_user)
