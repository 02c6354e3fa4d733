"""What a generation service takes and gives: the request, its plan, the events a job streams back (Reading,
Started, Chunk, Finished, Failed) and the Job the caller holds."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ai_writer.backends.writing.choices import ChoiceLog
from ai_writer.backends.writing.context import AssembledContext
from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.backends.writing.story import ContextBudgets, Story
from ai_writer.models.textprep import TextPrep


@dataclass(frozen=True)
class GenerationRequest:
    text: str  # the manuscript up to the cursor
    n: int = 3
    length: int = 200  # characters per candidate
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    prep: TextPrep = field(default_factory=TextPrep)
    banned_chars: str = ""
    penalty_exempt_chars: str = ""
    story: Story = Story()
    budgets: ContextBudgets | None = None  # None: ContextBudgets(context_chars=the service's context_chars)
    alternatives: int = 10  # K: the top tokens recorded at each step (Job.choices); 0 records nothing
    compare_state: object = None  # a models.state_file.TunedState: the last n // 2 candidates start from it


@dataclass(frozen=True)
class Plan:
    """What a request would read: its context, and how much of it is already held."""

    context: AssembledContext
    total_tokens: int  # the prompt's ids
    cached_tokens: int  # of those, the ones not read again (from memory or disk; before a model's window)
    from_disk: bool  # the reading starts from a state on disk

    @property
    def tokens_to_read(self) -> int:
        return self.total_tokens - self.cached_tokens


@dataclass(frozen=True)
class Reading:
    """Progress of a prompt read, after each chunk of it."""

    request_id: int
    done_tokens: int  # read so far for this request
    total_tokens: int  # to read for this request (the rest came from the cache)


@dataclass(frozen=True)
class Started:
    request_id: int
    n: int
    prompt_tokens: int  # tokens read for this request (the rest came from the cache)
    prompt_seconds: float
    sources: tuple = ()  # with compare_state: each candidate's start ("" the model's own, else the state's name)


@dataclass(frozen=True)
class Chunk:
    request_id: int
    index: int  # candidate number, from 0
    text: str  # new text for that candidate


@dataclass(frozen=True)
class Finished:
    request_id: int
    texts: tuple
    cancelled: bool
    tokens_per_second: float  # candidate tokens written per second, all rows together


@dataclass(frozen=True)
class Failed:
    request_id: int
    message: str


class Job:
    def __init__(self, request_id: int, request: GenerationRequest, on_event):
        self.id = request_id
        self.request = request
        self.on_event = on_event
        self._cancelled = threading.Event()
        self._done = threading.Event()
        self.choices: ChoiceLog | None = None  # set before the first Chunk (None: n == 0 or alternatives == 0)
        self.branch_every = 0  # tokens between the states kept along each candidate (0: none kept)

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)
