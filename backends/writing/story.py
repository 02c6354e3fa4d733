"""The story around a manuscript: what the model must not forget, kept outside the text.

A Story holds a memory (always read first), an author's note (read a little before
the cursor) and lorebook entries (read when one of their keys appears near the
cursor). The budgets say how many characters each part may take. These are plain
values: backends.writing.context assembles them with the manuscript into what the
model reads; studio.data.story_file reads and writes them as NAME.story.toml.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NOTE_UNITS = ("chars", "paragraphs")


@dataclass(frozen=True)
class LoreEntry:
    name: str  # for the author only; never sent to the model
    keys: tuple[str, ...] = ()  # plain (case-insensitive) or "/regex/"
    text: str = ""
    secondary_keys: tuple[str, ...] = ()  # when given, every one must match too
    exclude_keys: tuple[str, ...] = ()  # any match keeps the entry out
    enabled: bool = True
    constant: bool = False  # in whenever enabled, keys or not
    priority: int = 0  # higher goes first and is cut last
    scan_chars: int = 2000  # how far back from the cursor keys are looked for


@dataclass(frozen=True)
class AuthorsNote:
    text: str = ""
    depth: int = 300  # how far before the cursor it goes, in `unit`
    unit: str = "chars"  # "chars" | "paragraphs"


@dataclass(frozen=True)
class Story:
    memory: str = ""
    authors_note: AuthorsNote = AuthorsNote()
    lore: tuple[LoreEntry, ...] = ()
    # The story file's [generation] table: overrides of sampling and context settings.
    generation: dict = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not (self.memory or self.authors_note.text or self.lore or self.generation)


@dataclass(frozen=True)
class ContextBudgets:
    """How many characters each part of the context may take (0: no limit for context_chars only)."""

    context_chars: int = 1024  # the story text before the cursor; 0 = the whole book
    memory_budget: int = 1000
    lore_budget: int = 2000
    note_budget: int = 500
