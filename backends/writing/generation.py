"""The generation service: N candidate continuations of a manuscript, streamed as events.

    service = GenerationService(engine, state_store=StateStore(None, model_path, 1 << 30))
    job = service.submit(GenerationRequest(text, story=story, n=3, length=200), on_event)
    ...                      # on_event(Reading(...)), Started, Chunk(...) arrive on the service's thread
    job.cancel()             # takes effect within one step
    service.plan(request)    # what the next request reads, without running the model

One worker thread runs one job at a time; submitting a new job cancels the one
running. The prompt is what backends.writing.context assembles (memory, lore, the
story window, the author's note), read part after part from the longest prefix held
in memory (backends.writing.prompt_cache) or on disk (backends.writing.state_store);
its state is forked into N rows, and the N candidates decode together as one batch.
Errors become a Failed event; the caller's thread never runs model code.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ai_writer.backends.engines.base import Engine
from ai_writer.backends.engines.state_rows import concat_rows
from ai_writer.backends.writing.branch_pool import BranchPool, branch_every, state_nbytes
from ai_writer.backends.writing.choices import ChoiceLog
from ai_writer.backends.writing.context import AssembledContext, assemble
from ai_writer.backends.writing.events import (  # noqa: F401 - the service's API, imported from here by callers
    Chunk, Failed, Finished, GenerationRequest, Job, Plan, Reading, Started,
)
from ai_writer.backends.writing.job_queue import JobQueue
from ai_writer.backends.writing.prompt_cache import (
    INTERVAL, Checkpoint, PromptCache, PromptLayout, prefix_hashes, start_digest,
)
from ai_writer.backends.writing.sampling import Sampler
from ai_writer.backends.writing.story import ContextBudgets, Story
from ai_writer.models.textprep import TextPrep

DISK_EVERY = 4096  # ids between states kept on disk (absolute positions, so a later prompt finds them)
BRANCH_STATE_BYTES = 256 << 20  # states along the candidates, in memory ([generation] branch_state_mb)


class GenerationService(JobQueue):
    def __init__(self, engine: Engine, context_chars: int = 1024, state_store=None,
                 branch_state_bytes: int = BRANCH_STATE_BYTES):
        """state_store: a backends.writing.state_store.StateStore for states on disk, or None (memory only).
        branch_state_bytes: the memory for states along the candidates (backends.writing.branch_pool; 0: none)."""
        self.engine = engine
        self.context_chars = context_chars
        self.cache = PromptCache()
        self.branches = BranchPool(branch_state_bytes)  # under cache_lock too
        self.cache_lock = threading.Lock()  # the cache is read by plan() on the caller's thread
        self.state_store = _store_for(state_store, engine)
        self._compared = None  # (base engine, state sha256, that engine started from it): _compare_engine
        self._like_state = None  # an empty one-row state of the engine: what disk states are rebuilt as
        self._store_failed = ""
        self._engine_lock = threading.Lock()
        super().__init__("generation")

    # -- the caller's side -------------------------------------------------

    def plan(self, request: GenerationRequest) -> Plan:
        """What this request would read now, without running the model (safe beside the worker; never hashes
        the model file here: disk states count only once its hash is known)."""
        engine = self.engine
        store = self._disk_store(engine)
        model_hash = store.known_model_hash() if store is not None else None
        context, layout = self._assemble(request, engine)
        disk_lengths = self._disk_lengths(store, model_hash, len(layout)) if model_hash else set()
        with self.cache_lock:
            memory_lengths = self.cache.lengths() | self.branches.lengths()
        hashes = prefix_hashes(layout.array(), set(layout.stops()) | memory_lengths | disk_lengths, _start_key(engine))
        with self.cache_lock:
            hit = _longer(self.cache.longest(hashes), self.branches.longest(hashes))
        start = hit.n_tokens if hit else 0
        on_disk = [n for n in disk_lengths if n > start and store.has(hashes[n], n, model_hash)]
        from_disk = bool(on_disk)
        start = max(on_disk, default=start)
        to_read = self._to_read(engine, len(layout), start)
        return Plan(context, len(layout), len(layout) - to_read, from_disk)

    @property
    def store_problem(self) -> str:
        """Why states are not kept on disk, one line ('' while they are, or without a store)."""
        return (self.state_store.problem if self.state_store is not None else "") or self._store_failed

    def set_engine(self, engine: Engine) -> None:
        """Use another model from the next request on (the cache is dropped; the disk store follows the model)."""
        with self._engine_lock:
            self.engine = engine
            with self.cache_lock:
                self.cache.clear()
                self.branches.clear()
            self._like_state = None
            self.state_store = _store_for(self.state_store, engine)

    def warm(self, text: str, prep: TextPrep = TextPrep(), story: Story = Story(),
             budgets: ContextBudgets | None = None) -> Job:
        """Read a manuscript into the cache ahead of the first request (no candidates)."""
        request = GenerationRequest(text, n=0, length=0, prep=prep, story=story, budgets=budgets)
        return self.submit(request, lambda event: None)

    # -- the worker thread -------------------------------------------------

    def _run_job(self, job: Job) -> None:
        with self._engine_lock:
            self._generate(job)

    def read_prompt(self, text: str, prep: TextPrep = TextPrep(), should_stop=lambda: False, *,
                    story: Story = Story(), budgets: ContextBudgets | None = None, on_progress=None):
        """(logits (V,), state of one row, tokens read, last prompt id) after the assembled context, or None if
        should_stop() said so. on_progress(done, total) after each chunk read."""
        request = GenerationRequest(text, n=0, length=0, prep=prep, story=story, budgets=budgets)
        found = self._read(request, should_stop, on_progress)
        return None if found is None else found[:4]

    def _read(self, request: GenerationRequest, should_stop, on_progress=None, deferred: list | None = None,
              engine=None):
        engine = engine or self.engine
        store = self._disk_store(engine)
        _, layout = self._assemble(request, engine)
        ids, total = layout.ids, len(layout)
        disk_lengths = self._disk_lengths(store, None, total)
        with self.cache_lock:
            memory_lengths = self.cache.lengths() | self.branches.lengths()
        disk_stops = set(range(DISK_EVERY, total, DISK_EVERY)) if store is not None else set()
        stops = sorted(set(layout.stops()) | disk_stops)
        hashes = prefix_hashes(layout.array(), set(stops) | memory_lengths | disk_lengths, _start_key(engine))
        with self.cache_lock:
            hit = _longer(self.cache.use(layout, hashes), self.branches.use(hashes))
        done, state, logits = (hit.n_tokens, hit.state, hit.logits) if hit else (0, None, None)
        for n in sorted((n for n in disk_lengths if n > done), reverse=True):
            found = self._store_call(store.get, hashes[n], n, self._like(engine))
            if found is not None:
                (state, logits), done = found, n
                self._keep(Checkpoint(n, hashes[n], state, logits, layout.role_at(n) or INTERVAL), [])
                break
        to_read, read, made = self._to_read(engine, total, done), 0, []
        window = getattr(engine, "window", None)  # a model that reads only its last `window` ids
        while done < total:
            if should_stop():
                return None
            end = stops[bisect.bisect_right(stops, done)]
            if window and total - done > window:  # what lies before the last window is never read
                done, end, state = total - window, total, None
            step_logits, state = engine.forward([list(ids[done:end])], state)
            logits = step_logits[0]
            read += end - done
            done = end
            role = layout.role_at(done)
            if role is not None:
                self._keep(Checkpoint(done, hashes[done], state, logits, role), made)
            if done in disk_stops:
                self._store_put(store, hashes[done], done, state, logits)
            if on_progress is not None:
                on_progress(read, to_read)
        if store is not None and total >= DISK_EVERY and read:  # the end, for the next time this book opens
            end_write = (store, hashes[total], total, state, logits)
            if deferred is not None:
                deferred.append(end_write)
            else:
                self._store_put(*end_write)
        return logits, state, read, ids[-1], layout

    def _generate(self, job: Job) -> None:
        task = getattr(job, "task", None)
        if task is not None:  # submit_task's: the caller's code, on this thread
            task(self.engine, job)
            return
        request, emit = job.request, job.on_event
        started = time.perf_counter()
        deferred: list = []  # disk writes that wait until the candidates are out (before Finished)
        try:
            prompt = self._read(request, lambda: job.is_cancelled,
                                lambda done, total: emit(Reading(job.id, done, total)), deferred)
            if prompt is None:
                emit(Finished(job.id, (), True, 0.0))
                return
            logits, state, read, _, layout = prompt
            rows, sources = None, ()
            if request.compare_state is not None and request.n >= 2:
                compared = self._read_compared(job, deferred)
                if compared is None:
                    emit(Finished(job.id, (), True, 0.0))
                    return
                rows, sources, read = compared[0], compared[1], read + compared[2]
            emit(Started(job.id, request.n, read, time.perf_counter() - started, sources))
            if request.n == 0 or request.length == 0:
                finished = Finished(job.id, ("",) * request.n, False, 0.0)
            else:
                finished = self._decode(job, logits, state, layout, rows)
            self._flush(deferred)
            emit(finished)
        finally:
            self._flush(deferred)

    def _flush(self, writes: list) -> None:
        while writes:
            self._store_put(*writes.pop(0))

    def _read_compared(self, job: Job, deferred: list):
        """The prompt read again from request.compare_state, for the last n // 2 candidates: ((state, logits) of
        all n rows, each row's source, tokens read), or None if cancelled."""
        request = job.request
        other = self._compare_engine(request.compare_state)
        found = self._read(request, lambda: job.is_cancelled, None, deferred, engine=other)
        if found is None:
            return None
        own_rows, other_rows = request.n - request.n // 2, request.n // 2
        return (other, found[0], found[1], own_rows, other_rows), \
            ("",) * own_rows + (Path(request.compare_state.path).stem,) * other_rows, found[2]

    def _compare_engine(self, tuned):
        """This model started from `tuned` (backends.engines.start_state); LoadError when it does not fit."""
        from ai_writer.backends.engines.start_state import with_start_state

        base = getattr(self.engine, "inner", self.engine)
        held = self._compared
        if held is None or held[0] is not base or held[1] != tuned.sha256:
            self._compared = (base, tuned.sha256, with_start_state(base, tuned))
        return self._compared[2]

    def _decode(self, job: Job, logits, state, layout: PromptLayout, rows=None) -> Finished:
        """The N candidates, streamed as Chunk events (what the model weighed at each token in job.choices, states
        along them in the branch pool); returns their Finished event. rows: the compared start
        (_read_compared), whose state and logits the last candidates take."""
        request, emit, engine = job.request, job.on_event, self.engine
        last_id = layout.ids[-1]
        tokenizer = engine.tokenizer
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
        if request.alternatives > 0:
            job.choices = ChoiceLog(n, request.length, request.alternatives, lambda i: tokenizer.decode([i]))
        branches = self._branch_start(job, layout, state, logits) if rows is None else None
        if rows is None:
            state = engine.repeat_rows(state, n)
            logits = np.repeat(logits[None, :], n, axis=0)
        else:  # own start for the first rows, the compared one for the rest: one batch all the same
            _, other_logits, other_state, own, other = rows
            state = concat_rows(engine.repeat_rows(state, own), engine.repeat_rows(other_state, other))
            logits = np.concatenate([np.repeat(logits[None, :], own, axis=0), np.repeat(other_logits[None, :], other, axis=0)])
        previous = [last_id] * n
        decode_start = time.perf_counter()
        steps = 0
        while min(len(t) for t in texts) < request.length and not job.is_cancelled:
            chosen = sampler.sample(logits, previous)
            pieces, writing = [], []
            for index, token_id in enumerate(chosen):
                piece = decoders[index].feed(int(token_id))
                room = request.length - len(texts[index])
                if room > 0:
                    writing.append(index)
                pieces.append(piece[:room] if room > 0 else "")
                texts[index] += pieces[-1]
            if job.choices is not None:  # before the Chunks: a caller sees each character's choice with it
                job.choices.record(logits, sampler.last_weights, chosen, pieces, writing)
            for index, piece in enumerate(pieces):
                if piece:
                    emit(Chunk(job.id, index, piece))
            steps += 1
            previous = [int(t) for t in chosen]
            if branches is not None:
                branches.generated.append(previous)
            if min(len(t) for t in texts) >= request.length or job.is_cancelled:
                break
            logits, state = engine.forward([[t] for t in previous], state)
            if branches is not None and steps % job.branch_every == 0:
                self._keep_branches(branches, state, logits, [i for i in range(n) if len(texts[i]) < request.length])
        seconds = time.perf_counter() - decode_start
        return Finished(job.id, tuple(texts), job.is_cancelled, steps * n / seconds if seconds > 0 else 0.0)

    # -- states along the candidates (backends.writing.branch_pool) ---------

    def _branch_start(self, job: Job, layout: PromptLayout, state, logits) -> _Branches | None:
        """Where the states along this job's candidates go, with the prompt's end kept as the first of them;
        None when none are kept (no alternatives asked for, no budget, or a model that reads only a window,
        whose decoded state is not what reading the same text gives)."""
        request, engine = job.request, self.engine
        if request.alternatives <= 0 or getattr(engine, "window", None):
            return None
        entry_bytes = state_nbytes(state) + logits.nbytes
        job.branch_every = branch_every(self.branches.max_bytes, request.n, request.length, entry_bytes)
        if not job.branch_every:
            return None
        prompt = start_digest(_start_key(engine))  # as prefix_hashes: little-endian int32 ids
        prompt.update(layout.array().tobytes())
        branches = _Branches(len(layout), [prompt.copy() for _ in range(request.n)], [], entry_bytes)
        with self.cache_lock:
            self.branches.add(Checkpoint(len(layout), prompt.hexdigest(), state, logits, INTERVAL), entry_bytes)
        return branches

    def _keep_branches(self, branches: _Branches, state, logits, rows) -> None:
        """Each listed row's state and logits after the ids generated so far."""
        new = np.asarray(branches.generated[branches.hashed:], dtype="<i4")  # (steps, rows)
        branches.hashed = len(branches.generated)
        for row, digest in enumerate(branches.digests):
            digest.update(np.ascontiguousarray(new[:, row]).tobytes())
        n_tokens = branches.prompt_tokens + branches.hashed
        kept = [Checkpoint(n_tokens, branches.digests[row].hexdigest(), self.engine.take_rows(state, [row]),
                           logits[row].copy(), INTERVAL) for row in rows]
        with self.cache_lock:
            for checkpoint in kept:
                self.branches.add(checkpoint, branches.entry_bytes)

    # -- prompts, checkpoints, the disk ------------------------------------

    def _assemble(self, request: GenerationRequest, engine) -> tuple[AssembledContext, PromptLayout]:
        budgets = request.budgets or ContextBudgets(context_chars=self.context_chars)
        context = assemble(request.text, request.story, budgets, request.prep)
        tokenizer = engine.tokenizer
        layout = PromptLayout.of_parts(tokenizer.encode(part.text) for part in context.parts)
        if not layout.ids:
            layout = PromptLayout.of_parts([tokenizer.encode("\n") or [0]])
        return context, layout

    @staticmethod
    def _to_read(engine, total: int, start: int) -> int:
        window = getattr(engine, "window", None)
        return min(total - start, window) if window else total - start

    def _keep(self, checkpoint: Checkpoint, made: list) -> None:
        """Into the memory cache; a read keeps only its last few new interval checkpoints."""
        with self.cache_lock:
            if checkpoint.role == INTERVAL and checkpoint.key not in self.cache.entries:
                made.append(checkpoint.key)
            self.cache.add(checkpoint)
            while len(made) > self.cache.keep_intervals:
                self.cache.discard(made.pop(0))

    def _disk_store(self, engine):
        """The store, for engines whose state is their whole past (not one that reads only a window)."""
        return None if self.state_store is None or getattr(engine, "window", None) else self.state_store

    def _disk_lengths(self, store, model_hash, total: int) -> set[int]:
        """Where states of this prompt may lie on disk: every DISK_EVERY ids, and the lengths of its files."""
        if store is None:
            return set()
        held = self._store_call(store.lengths, model_hash) or set()
        return {n for n in held | set(range(DISK_EVERY, total + 1, DISK_EVERY)) if 0 < n <= total}

    def _like(self, engine):
        if self._like_state is None:
            self._like_state = engine.zero_state(1)
        return self._like_state

    def _store_put(self, store, prefix_hash, n_tokens, state, logits) -> None:
        if not self._store_call(store.has, prefix_hash, n_tokens):
            self._store_call(store.put, prefix_hash, n_tokens, state, logits)

    def _store_call(self, method, *args):
        """A store call that never fails a request: anything it raises is noted once and is a miss."""
        try:
            return method(*args)
        except Exception as exc:  # noqa: BLE001 - the disk is an optimisation, never a reason to fail
            self._store_failed = self._store_failed or f"states on disk: {type(exc).__name__}: {exc}".splitlines()[0]
            return None


def _start_key(engine) -> str:
    """The key of the state an engine starts from ('' for the empty state; backends.engines.start_state)."""
    return getattr(engine, "start_key", "")


@dataclass
class _Branches:
    """One job's running prefix hashes (a sha1 per candidate row over the prompt's ids and its own)."""

    prompt_tokens: int
    digests: list
    generated: list  # per step, the id each row took
    entry_bytes: int
    hashed: int = 0  # steps already in the digests


def _longer(first: Checkpoint | None, second: Checkpoint | None) -> Checkpoint | None:
    """The checkpoint covering more of the prompt (the first on a tie)."""
    if first is None or (second is not None and second.n_tokens > first.n_tokens):
        return second
    return first


def _store_for(store, engine):
    """The store for this engine's model file (another file: the same folder and bound, its own states)."""
    if store is None or not engine.info.model_path:
        return None
    if Path(store.model_path).resolve() != Path(engine.info.model_path).resolve():
        return store.for_model(engine.info.model_path)
    return store


def _known_ids(tokenizer, chars: str) -> list[int]:
    return [tokenizer.char_to_id[c] for c in chars if c in tokenizer.char_to_id]
