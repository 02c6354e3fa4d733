"""Settings: the repo's config.toml (documented defaults), overridden by the user's file.

Every key the user may set is in the defaults file, with its type; a user file
with a TOML syntax error, an unknown key, a wrong type or a value out of range
stops with one ConfigError line naming the file, the line and the key.
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ai_writer.backends.engines.names import NAMES as BACKEND_NAMES
from ai_writer.backends.writing.story import ContextBudgets
from ai_writer.studio.config_sections import (SECTIONS, GenerationSection, ModelSection, SamplingSection, StorySection,
                                              StudioSection, field_names)
from ai_writer.studio.i18n import tr

APP_NAME = "ai-writer-studio"
# The folder that holds studio/, backends/ and models/: the repository, or site-packages once installed.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# The documented defaults are the repository's top-level config.toml. A wheel carries that same file
# as studio/defaults.toml (setup.py copies it at build time), since site-packages has no place for it.
PACKAGED_DEFAULTS = Path(__file__).resolve().parent / "defaults.toml"


def find_defaults() -> Path:
    """The defaults file: the copy inside the installed package, else the repository's config.toml."""
    return PACKAGED_DEFAULTS if PACKAGED_DEFAULTS.is_file() else PACKAGE_ROOT / "config.toml"


DEFAULTS_PATH = find_defaults()

# Allowed ranges beyond the type (inclusive); sampling ranges live with the sampler.
RANGES = {
    ("model", "window_refill"): (0, 100000),  # the model checks it against its own ctx_len
    ("model", "timeout_seconds"): (1.0, 3600.0),
    ("generation", "candidates"): (1, 9),
    ("generation", "length"): (1, 20000),
    ("generation", "context_chars"): (0, 10_000_000),
    ("generation", "state_cache_mb"): (0, 1_000_000),
    ("generation", "alternatives"): (0, 50),
    ("generation", "branch_state_mb"): (0, 1_000_000),
    ("story", "memory_budget"): (0, 100_000),
    ("story", "lore_budget"): (0, 100_000),
    ("story", "note_budget"): (0, 100_000),
    ("generation", "threads"): (0, 1024),
    ("sampling", "seed"): (-1, 2**63 - 1),
    ("studio", "autosave_seconds"): (0.2, 3600.0),
    ("studio", "ambiguous_width"): (1, 2),
    ("studio", "max_fps"): (1, 120),
}
CHOICES = {
    ("model", "backend"): BACKEND_NAMES,
    ("model", "dtype"): ("", "float32", "float16", "bfloat16", "int8"),
    ("studio", "language"): ("auto", "en", "zh"),
}
PATH_KEYS = {("model", "path"), ("model", "vocab"), ("model", "state"), ("generation", "compare_state")}
# What a story file's [generation] table may set (NAME.story.toml), and the config section of each key.
STORY_OVERRIDE_KEYS = {
    **{key: "sampling" for key in field_names(SamplingSection)},
    "candidates": "generation", "length": "generation", "context_chars": "generation",
    **{key: "story" for key in field_names(StorySection)},
}


class ConfigError(ValueError):
    """One line: the file, the line and the key at fault."""


def user_config_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME)) / "config.toml"


def _line_of(text: str, section: str, key: str | None) -> int | None:
    """The line setting [section] key, or (key None) the line that opens [section]."""
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip() if line.lstrip().startswith("[") else line.strip()
        name = stripped.split("=", 1)[0].strip().strip("\"'")
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped.strip("[]").strip()
            if key is None and current == section:
                return number
        elif "=" in stripped and (current, name) == ((section, key) if key else ("", section)):
            return number
    return None


def _where(path: Path, text: str, section: str, key: str | None = None) -> str:
    line = _line_of(text, section, key)
    return f"{path}: line {line}" if line else f"{path}"


def read_toml(path: Path) -> tuple[dict, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        lines = text.splitlines()
        line = int(found.group(1)) if found else 0
        shown = f": {lines[line - 1].strip()[:80]}" if 0 < line <= len(lines) else ""
        raise ConfigError(f"{path}: TOML syntax error: {exc}{shown}") from None


# A problem found in a value: an i18n key and its parameters, turned into text by tr()
# where it is shown (so the settings panel can speak the author's language).
Problem = tuple[str, dict]
_TYPE_PROBLEMS = {bool: "problem_must_be_bool", int: "problem_must_be_int", float: "problem_must_be_float",
                  str: "problem_must_be_str"}


def problem_text(problem: Problem) -> str:
    key, values = problem
    return tr(key, **values)


def _check_value(section: str, key: str, value, default) -> tuple[object, Problem | None]:
    """The value if it has the default's type and is in range, else (None, problem)."""
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        if expected in _TYPE_PROBLEMS:
            return None, (_TYPE_PROBLEMS[expected], {"value": repr(value)})
        return None, ("problem_must_be_type", {"type": expected.__name__, "value": repr(value)})
    if (section, key) in RANGES:
        low, high = RANGES[(section, key)]
        if not low <= value <= high:
            return None, ("problem_outside", {"value": value, "low": low, "high": high})
    if (section, key) in CHOICES and value not in CHOICES[(section, key)]:
        choices = ", ".join(repr(c) for c in CHOICES[(section, key)])
        return None, ("problem_not_choice", {"value": repr(value), "choices": choices})
    return value, None


def _sampling_problem(config: "Config", key: str, value) -> Problem | None:
    """What the sampler's ranges say about `key` = value beside the other sampling settings, if anything."""
    trial = replace(config.sampling, **{key: value}).settings
    for name, found, low, high in trial.out_of_range():
        if name == key:
            return "problem_outside", {"value": found, "low": low, "high": high}
    return None


def parse_setting(config: "Config", section: str, key: str, raw: str) -> tuple[object, str | None]:
    """A value typed into the settings panel -> (value, None) or (None, problem text in the interface language)."""
    default = config.value(section, key)
    raw = raw.strip()
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false"):
                return None, tr("problem_true_false")
            value = raw.lower() == "true"
        elif isinstance(default, int):
            value = int(raw)
        elif isinstance(default, float):
            value = float(raw)
        else:
            value = raw
    except ValueError:
        return None, tr("problem_not_int" if isinstance(default, int) else "problem_not_float", raw=repr(raw))
    value, problem = _check_value(section, key, value, default)
    if problem is None and section == "sampling":
        problem = _sampling_problem(config, key, value)
    return (None, problem_text(problem)) if problem else (value, None)


def merge(settings: dict, path: Path, table: dict, text: str, defaults: dict) -> None:
    """Check `table` (read from `path`) against the defaults and lay it over `settings`."""
    for section, values in table.items():
        if section not in defaults:
            raise ConfigError(f"{_where(path, text, section)}: unknown section [{section}] (known: {', '.join(defaults)})")
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        for key, value in values.items():
            where = _where(path, text, section, key)
            if key not in defaults[section]:
                raise ConfigError(f"{where}: unknown key [{section}] {key}")
            checked, problem = _check_value(section, key, value, defaults[section][key])
            if problem:
                raise ConfigError(f"{where}: [{section}] {key} {problem_text(problem)}")
            if (section, key) in PATH_KEYS and checked and str(checked).lower() != "world":  # vocab "world": a name
                checked = str((path.parent / Path(checked).expanduser()).resolve())
            settings[section][key] = checked
    sampling = SamplingSection(**settings["sampling"]).settings
    for key, value, low, high in sampling.out_of_range():
        where = _where(path, text, "sampling", key)
        raise ConfigError(f"{where}: [sampling] {key} {problem_text(('problem_outside', {'value': value, 'low': low, 'high': high}))}")


@dataclass(frozen=True)
class Config:
    """The merged settings, one typed section per [table] of config.toml."""

    model: ModelSection
    generation: GenerationSection
    story: StorySection
    sampling: SamplingSection
    studio: StudioSection
    keys: dict  # binding id -> keys ("ctrl+g", "alt+1,f9")
    sources: tuple  # the files read, in order

    @classmethod
    def from_tables(cls, tables: dict, sources: tuple) -> "Config":
        sections = {name: section_type(**tables[name]) for name, section_type in SECTIONS.items()}
        return cls(**sections, keys=dict(tables["keys"]), sources=tuple(sources))

    @property
    def budgets(self) -> ContextBudgets:
        """How many characters each part of the context may take."""
        return ContextBudgets(self.generation.context_chars, self.story.memory_budget, self.story.lore_budget,
                              self.story.note_budget)

    def value(self, section: str, key: str):
        return self.keys[key] if section == "keys" else getattr(getattr(self, section), key)

    def with_value(self, section: str, key: str, value) -> "Config":
        if section == "keys":
            return replace(self, keys={**self.keys, key: value})
        return replace(self, **{section: replace(getattr(self, section), **{key: value})})

    def with_story_overrides(self, overrides: dict) -> "Config":
        """These settings with a story file's [generation] table laid over them (keys already checked)."""
        config = self
        for key, value in overrides.items():
            config = config.with_value(STORY_OVERRIDE_KEYS[key], key, value)
        return config

    def tables(self) -> dict:
        """Section -> key -> value, as in the TOML files."""
        result = {name: asdict(getattr(self, name)) for name in SECTIONS}
        result["keys"] = dict(self.keys)
        return result


def _check_defaults(path: Path, defaults: dict) -> None:
    """The defaults file must hold exactly the keys the sections declare (and [keys])."""
    for name, section_type in SECTIONS.items():
        have, want = set(defaults.get(name, {})), set(field_names(section_type))
        if have != want:
            odd = ", ".join(sorted(have ^ want))
            raise ConfigError(f"{path}: [{name}] does not match the studio's settings ({odd})")
    unknown = set(defaults) - set(SECTIONS) - {"keys"}
    if unknown or "keys" not in defaults:
        raise ConfigError(f"{path}: sections must be {', '.join([*SECTIONS, 'keys'])}")


def load_config(explicit: str | Path | None = None, defaults_path: Path = DEFAULTS_PATH, user_path: Path | None = None) -> Config:
    """Defaults, then the user's file (if any), then an explicitly named file."""
    defaults, text = read_toml(defaults_path)
    _check_defaults(defaults_path, defaults)
    settings = {section: dict(values) for section, values in defaults.items()}
    # the packaged copy stands for the top-level file: its paths are relative to where that one lives
    base = PACKAGE_ROOT if defaults_path == PACKAGED_DEFAULTS else defaults_path.parent
    for key in PATH_KEYS:
        section, name = key
        if settings[section][name]:
            settings[section][name] = str((base / settings[section][name]).resolve())
    sources = [defaults_path]
    user_path = user_config_path() if user_path is None else user_path
    layers = [user_path] if user_path.is_file() else []
    if explicit is not None:
        layers.append(Path(explicit).expanduser())
    for path in layers:
        table, text = read_toml(path)
        merge(settings, path, table, text, defaults)
        sources.append(path)
    return Config.from_tables(settings, tuple(sources))
