"""The generation service: N candidate continuations of a manuscript, streamed as events.

    service = GenerationService(engine)
    job = service.submit(GenerationRequest(text, n=3, length=200), on_event)
    ...                      # on_event(Chunk(...)) arrives on the service's thread
    job.cancel()             # takes effect within one step

One worker thread runs one job at a time; submitting a new job cancels the one
running. The prompt is read once (from the longest cached prefix), its state is
forked into N rows, and the N candidates decode together as one batch. Errors
become a Failed event; the caller's thread never runs model code.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ai_writer.backends.engines.base import Engine
from ai_writer.backends.writing.prompt_cache import Checkpoint, PromptCache
from ai_writer.backends.writing.sampling import Sampler, SamplingSettings
from ai_writer.models.textprep import TextPrep

CHECKPOINT_EVERY = 256  # tokens between cached states while reading a prompt


@dataclass(frozen=True)
class GenerationRequest:
    text: str  # the manuscript up to the cursor
    n: int = 3
    length: int = 200  # characters per candidate
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    prep: TextPrep = field(default_factory=TextPrep)
    banned_chars: str = ""
    penalty_exempt_chars: str = ""


@dataclass(frozen=True)
class Started:
    request_id: int
    n: int
    prompt_tokens: int  # tokens read for this request (the rest came from the cache)
    prompt_seconds: float


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


class GenerationService:
    def __init__(self, engine: Engine, context_chars: int = 1024):
        self.engine = engine
        self.cache = PromptCache(context_chars)
        self._ids = itertools.count(1)
        self._queue: queue.Queue = queue.Queue()
        self._current: Job | None = None
        self._lock = threading.Lock()
        self._engine_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="generation", daemon=True)
        self._thread.start()

    # -- the caller's side -------------------------------------------------

    def submit(self, request: GenerationRequest, on_event) -> Job:
        """Queue a request (cancelling the one running); events go to on_event on the worker thread."""
        job = Job(next(self._ids), request, on_event)
        with self._lock:
            if self._current is not None:
                self._current.cancel()
            self._current = job
        self._queue.put(job)
        return job

    def generate(self, request: GenerationRequest, timeout: float | None = None):
        """Run one request and yield its events here, in order (for scripts and the CLI)."""
        events: queue.Queue = queue.Queue()
        job = self.submit(request, events.put)
        while True:
            event = events.get(timeout=timeout)
            yield event
            if isinstance(event, (Finished, Failed)) and event.request_id == job.id:
                return

    def set_engine(self, engine: Engine) -> None:
        """Use another model from the next request on (the cache is dropped)."""
        with self._engine_lock:
            self.engine = engine
            self.cache.clear()

    def warm(self, text: str, prep: TextPrep = TextPrep()) -> Job:
        """Read a manuscript into the cache ahead of the first request (no candidates)."""
        return self.submit(GenerationRequest(text, n=0, length=0, prep=prep), lambda event: None)

    def close(self, wait: bool = True) -> None:
        """Cancel what runs and stop the worker; with wait, until its current model call returns."""
        with self._lock:
            if self._current is not None:
                self._current.cancel()
        self._queue.put(None)
        if wait:
            self._thread.join()

    # -- the worker thread -------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                if not job.is_cancelled:
                    with self._engine_lock:
                        self._generate(job)
                else:
                    job.on_event(Finished(job.id, (), True, 0.0))
            except Exception as exc:  # reported, never raised on a thread nobody joins
                job.on_event(Failed(job.id, f"{type(exc).__name__}: {exc}".splitlines()[0]))
            finally:
                job._done.set()

    def read_prompt(self, text: str, prep: TextPrep, should_stop=lambda: False):
        """(logits (V,), state of one row, tokens read, last prompt id) after the prepared manuscript."""
        engine = self.engine
        prepared = prep.prepare(text)
        if prep.leading_newline:
            prepared = prepared[1:]  # the leading '\n' is added below, after the anchor
        anchor = self.cache.anchor_for(prepared)
        fed = prepared[anchor.offset :]
        ids = tuple(engine.tokenizer.encode(("\n" if prep.leading_newline else "") + fed))
        if not ids:
            ids = tuple(engine.tokenizer.encode("\n")) or (0,)
        cached = self.cache.longest_prefix(anchor, ids)
        done = len(cached.ids) if cached else 0
        state, logits = (cached.state, cached.logits) if cached else (None, None)
        read = 0
        window = getattr(engine, "window", None)  # a model that reads only its last `window` ids
        while done < len(ids):
            if should_stop():
                return None
            end = min(len(ids), (done // CHECKPOINT_EVERY + 1) * CHECKPOINT_EVERY)
            if window and len(ids) - done > window:  # what lies before the last window is never read
                done, end, state = len(ids) - window, len(ids), None
            step_logits, state = engine.forward([list(ids[done:end])], state)
            logits = step_logits[0]
            read += end - done
            done = end
            self.cache.add(anchor, Checkpoint(ids[:done], state, logits))
        return logits, state, read, ids[-1]

    def _generate(self, job: Job) -> None:
        request, emit, engine = job.request, job.on_event, self.engine
        tokenizer = engine.tokenizer
        started = time.perf_counter()
        prompt = self.read_prompt(request.text, request.prep, lambda: job.is_cancelled)
        if prompt is None:
            emit(Finished(job.id, (), True, 0.0))
            return
        logits, state, read, last_id = prompt
        emit(Started(job.id, request.n, read, time.perf_counter() - started))
        if request.n == 0 or request.length == 0:
            emit(Finished(job.id, ("",) * request.n, False, 0.0))
            return

        n = request.n
        newline = tokenizer.encode("\n")
        sampler = Sampler(
            request.sampling,
            batch=n,
            vocab_size=engine.info.vocab_size,
            banned_ids=set(tokenizer.banned_ids) | set(tokenizer.ids_writing(request.banned_chars)),
            newline_id=newline[0] if newline else None,
            penalty_exempt_ids=_known_ids(tokenizer, request.penalty_exempt_chars),
        )
        decoders = [tokenizer.stream_decoder() for _ in range(n)]
        texts = [""] * n
        state = engine.repeat_rows(state, n)
        logits = np.repeat(logits[None, :], n, axis=0)
        previous = [last_id] * n
        decode_start = time.perf_counter()
        steps = 0
        while min(len(t) for t in texts) < request.length and not job.is_cancelled:
            chosen = sampler.sample(logits, previous)
            for index, token_id in enumerate(chosen):
                piece = decoders[index].feed(int(token_id))
                room = request.length - len(texts[index])
                piece = piece[:room] if room > 0 else ""
                if piece:
                    texts[index] += piece
                    emit(Chunk(job.id, index, piece))
            steps += 1
            previous = [int(t) for t in chosen]
            if min(len(t) for t in texts) >= request.length or job.is_cancelled:
                break
            logits, state = engine.forward([[t] for t in previous], state)
        seconds = time.perf_counter() - decode_start
        emit(Finished(job.id, tuple(texts), job.is_cancelled, steps * n / seconds if seconds > 0 else 0.0))


def _known_ids(tokenizer, chars: str) -> list[int]:
    return [tokenizer.char_to_id[c] for c in chars if c in tokenizer.char_to_id]
