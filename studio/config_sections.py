"""The config's sections as types. Their values (defaults included) come from config.toml only."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.models.textprep import TextPrep


@dataclass(frozen=True)
class ModelSection:
    path: str  # absolute once loaded ("" for none)
    vocab: str  # "" = beside the model; "world" = the RWKV World tokenizer
    state: str  # a state-tuning file every text starts from ("" for none)
    backend: str
    device: str
    dtype: str
    unknown_char: str
    window_refill: int
    url: str  # backend "openai": the server (http://host:port)
    remote_model: str  # the model it serves ("": its only one)
    api_key_env: str  # the environment variable holding its API key ("": none sent)
    timeout_seconds: float  # for a connection and for each answer


@dataclass(frozen=True)
class GenerationSection:
    candidates: int
    length: int
    compare_state: str  # a state file the last n // 2 candidates start from ("" for none)
    context_chars: int  # 0: the whole book
    state_cache_mb: int
    alternatives: int  # top choices kept per generated character (0: none)
    branch_state_mb: int  # memory for states along the candidates (0: none)
    threads: int
    strip_indents: bool
    drop_empty_lines: bool
    leading_newline: bool
    banned_chars: str
    penalty_exempt_chars: str

    @property
    def text_prep(self) -> TextPrep:
        return TextPrep(self.strip_indents, self.drop_empty_lines, self.leading_newline)


@dataclass(frozen=True)
class SamplingSection:
    temperature: float
    top_p: float
    top_p_newline: float
    top_k: int
    min_p: float
    presence_penalty: float
    frequency_penalty: float
    penalty_decay: float
    seed: int  # -1: a new seed each time

    @property
    def settings(self) -> SamplingSettings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["seed"] = None if self.seed == -1 else self.seed
        return SamplingSettings(**values)


@dataclass(frozen=True)
class StorySection:
    memory_budget: int
    lore_budget: int
    note_budget: int


@dataclass(frozen=True)
class StudioSection:
    language: str
    autosave_seconds: float
    ambiguous_width: int
    max_fps: int


# [section] name -> its type; [keys] is a table of binding id -> keys.
SECTIONS = {"model": ModelSection, "generation": GenerationSection, "story": StorySection,
            "sampling": SamplingSection, "studio": StudioSection}


def field_names(section_type) -> list[str]:
    return [f.name for f in fields(section_type)]
