"""The generation service for a model on another machine: backends.writing.generation.GenerationService's caller
side (submit, generate, plan, warm, close; the same events in the same order), each request sent to the server.

    service = RemoteService(connect(url, model), context_chars=1024)
    job = service.submit(GenerationRequest(text, story=story, n=3, length=200), on_event)
    ...                        # Started, Chunk(request_id, index, text)..., Finished | Failed, on the service's thread
    job.cancel()               # its HTTP streams are shut at once
    service.unavailable_settings()   # {"sampling.top_p_newline": "server", ...}: what this server cannot honour

The prompt is the studio's (backends.writing.context.assemble: text in, text out). The N candidates are one
request with `n` where the server takes it, else N requests side by side (a set seed gives candidate i
seed + i; one after another where the server serves one request at a time); a server that answers a request for n with a 400, or with fewer choices, is asked again the
other way, and that is remembered for the server. The server counts tokens and the studio characters:
max_tokens is 2 x length + 16, and each candidate is cut at `length` characters, its stream shut once
every candidate in it is long enough. With [generation] alternatives > 0 the server is asked for that
many logprobs (up to what it allows), which fill Job.choices as the local service's ChoiceLog does.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

from ai_writer.backends.remote.choices import RemoteChoiceLog
from ai_writer.backends.remote.client import RemoteError
from ai_writer.backends.remote.engine import RemoteEngine, no_model_line
from ai_writer.backends.remote.servers import extra_fields, unavailable
from ai_writer.backends.writing.context import assemble
from ai_writer.backends.writing.events import Chunk, Failed, Finished, GenerationRequest, Job, Plan, Started
from ai_writer.backends.writing.job_queue import JobQueue
from ai_writer.backends.writing.story import ContextBudgets, Story
from ai_writer.models.textprep import TextPrep

COMPLETIONS = "/v1/completions"
_END = object()  # a reader's last item


def max_tokens_for(length: int, cap: int | None) -> int:
    """Tokens to ask for, for `length` characters: enough for a tokenizer that spends two tokens on a character."""
    wanted = 2 * length + 16
    return min(wanted, cap) if cap else wanted


class RemoteJob(Job):
    """A Job whose cancel() also shuts the HTTP streams it reads (a blocked read returns at once)."""

    def __init__(self, request_id: int, request, on_event):
        super().__init__(request_id, request, on_event)
        self._streams: list = []
        self._streams_lock = threading.Lock()

    def cancel(self) -> None:
        super().cancel()
        with self._streams_lock:
            streams = list(self._streams)
        for stream in streams:
            stream.abort()

    def attach(self, stream) -> None:
        with self._streams_lock:
            self._streams.append(stream)
        if self.is_cancelled:
            stream.abort()


@dataclass
class _Part:
    """One HTTP request of a job: the candidate rows its choices 0, 1, ... fill."""

    rows: list[int]
    body: dict
    stream: object = None
    seen: set = field(default_factory=set)  # its choice indexes that came back


class _Progress:
    """What a job's candidates have written so far (the service's worker thread only)."""

    def __init__(self, job: RemoteJob, n: int, length: int, k: int):
        self.job, self.n, self.length, self.k = job, n, length, k
        self.texts = [""] * n
        self.done = [False] * n  # long enough, or ended by the server
        self.begun = time.perf_counter()
        self.first: float | None = None  # when the first answer came
        self.tokens = 0
        self.chunks = 0  # Chunk events sent
        self.logprobs_seen = False
        self.log_decided = False

    def started(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()
            job = self.job
            job.on_event(Started(job.id, self.n, 0, self.first - self.begun))

    def take(self, part: _Part, event: dict) -> None:
        """One streamed event of `part`: its choices' text, cut at each candidate's length, sent on as Chunks."""
        self.started()
        job = self.job
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            if not isinstance(index, int) or not 0 <= index < len(part.rows):
                continue
            part.seen.add(index)
            row = part.rows[index]
            text = choice.get("text")
            text = text if isinstance(text, str) else ""
            logprobs = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else None
            tokens = logprobs.get("tokens") if logprobs else None
            self.tokens += len(tokens) if isinstance(tokens, list) and tokens else (1 if text else 0)
            if not self.done[row] and text:
                room = self.length - len(self.texts[row])
                piece = text[:room]
                self._record(row, text, logprobs, len(piece))
                self.texts[row] += piece
                self.chunks += 1
                job.on_event(Chunk(job.id, row, piece))
                if len(self.texts[row]) >= self.length:
                    self.done[row] = True
            if choice.get("finish_reason") is not None:
                self.done[row] = True

    def _record(self, row: int, text: str, logprobs: dict | None, kept: int) -> None:
        """Into job.choices, set at the first chunk if that chunk has logprobs (before its Chunk event)."""
        job = self.job
        if logprobs is not None:
            self.logprobs_seen = True
        if not self.log_decided:
            self.log_decided = True
            if logprobs is not None and self.k > 0:
                job.choices = RemoteChoiceLog(self.n, self.length, self.k)
        if job.choices is not None:
            lp = logprobs or {}
            job.choices.add(row, text, lp.get("tokens"), lp.get("token_logprobs"), lp.get("top_logprobs"), cut=kept)

    def part_done(self, part: _Part) -> bool:
        return all(self.done[row] for row in part.rows)

    def finished(self) -> Finished:
        job = self.job
        seconds = time.perf_counter() - (self.first or self.begun)
        rate = self.tokens / seconds if seconds > 0 and self.tokens else 0.0
        return Finished(job.id, tuple(self.texts), job.is_cancelled, rate)


class RemoteService(JobQueue):
    job_class = RemoteJob

    def __init__(self, engine: RemoteEngine, context_chars: int = 1024):
        self.engine = engine
        self.context_chars = context_chars
        super().__init__("remote-generation")

    # -- the caller's side (submit, generate, close: backends.writing.job_queue) ---

    def prompt(self, request: GenerationRequest) -> str:
        """The text sent: what backends.writing.context assembles (a lone newline for nothing, as the local service)."""
        return self._context(request).text or "\n"

    def plan(self, request: GenerationRequest) -> Plan:
        """What the request would send; the server does not say how many tokens that is (0) nor what it holds."""
        return Plan(self._context(request), 0, 0, False)

    @property
    def store_problem(self) -> str:
        return ""  # no states on disk: the server keeps its own

    def set_engine(self, engine) -> None:
        """Another server or model from the next request on (a model on this machine needs a GenerationService)."""
        if not isinstance(engine, RemoteEngine):
            raise TypeError("a RemoteService writes with a model on a server; a local model needs a GenerationService")
        self.engine = engine

    def warm(self, text: str, prep: TextPrep = TextPrep(), story: Story = Story(),
             budgets: ContextBudgets | None = None) -> Job:
        """Nothing to read ahead here (the server keeps its own cache): a job that ends at once."""
        return self.submit(GenerationRequest(text, n=0, length=0, prep=prep, story=story, budgets=budgets),
                           lambda event: None)

    def unavailable_settings(self) -> dict[str, str]:
        """The settings this server's model cannot honour: "section.key" -> reason code, one of
        backends.remote.servers NEEDS_TOKENIZER ("tokenizer"), SERVER_LACKS ("server"), LOCAL_ONLY ("local")."""
        return unavailable(self.engine.server, self.engine.gives_logprobs)

    def _context(self, request: GenerationRequest):
        budgets = request.budgets or ContextBudgets(context_chars=self.context_chars)
        return assemble(request.text, request.story, budgets, request.prep)

    # -- the worker thread -------------------------------------------------

    def _run_job(self, job: RemoteJob) -> None:
        if getattr(job, "task", None) is not None:  # a task on the model itself (the scan): not with a remote model
            job.on_event(Failed(job.id, f"this needs the model on this machine; it runs on {self.engine.client.shown}"))
            return
        self._generate(job)

    def _failure(self, exc: Exception) -> str:
        return exc.message if isinstance(exc, RemoteError) else super()._failure(exc)

    def _generate(self, job: RemoteJob) -> None:
        request, engine = job.request, self.engine
        n, length = request.n, request.length
        if n == 0 or length == 0:
            job.on_event(Started(job.id, n, 0, 0.0))
            job.on_event(Finished(job.id, ("",) * n, False, 0.0))
            return
        prompt = self.prompt(request)
        k = min(request.alternatives, engine.server.max_logprobs) if engine.gives_logprobs else 0
        progress = _Progress(job, n, length, k)
        together = n > 1 and engine.takes_n
        parts = self._parts(request, prompt, list(range(n)), together, k)
        refused_n = False  # n asked for, refused with a 400: now side by side
        while True:
            error = self._stream_parts(job, progress, parts)
            if error is None or job.is_cancelled:
                break
            said = f"{error.server_message} {error.param or ''}".lower()
            if progress.chunks or error.status not in (400, 422):
                raise self._worded(error)
            if k > 0 and "logprob" in said:  # it names logprobs: without them
                engine.learned.logprobs = False
                k = progress.k = 0
            elif together:  # n itself may be what it refuses: once, side by side
                together, refused_n = False, True
            else:
                raise error
            parts = self._parts(request, prompt, list(range(n)), together, k)
        if refused_n and not job.is_cancelled:
            engine.learned.takes_n = False
        if together and not job.is_cancelled:  # one request for n: did n choices come back?
            missing = [row for index, row in enumerate(parts[0].rows) if index not in parts[0].seen]
            if missing:  # the server ignored n: the others side by side, now and from now on
                engine.learned.takes_n = False
                error = self._stream_parts(job, progress, self._parts(request, prompt, missing, False, k))
                if error is not None and not job.is_cancelled:
                    raise self._worded(error)
            elif progress.chunks:
                engine.learned.takes_n = True
        if progress.chunks and k > 0 and not job.is_cancelled:
            engine.learned.logprobs = progress.logprobs_seen
        progress.started()  # a request that wrote nothing still starts before it finishes
        job.on_event(progress.finished())

    def _worded(self, error: RemoteError) -> RemoteError:
        """A 404 that is the model's: which models the server has (asked once more)."""
        engine = self.engine
        if error.status != 404:
            return error
        try:
            ids = [m["id"] for m in engine.client.models()]
        except RemoteError:
            return error
        return RemoteError(no_model_line(engine.client.shown, engine.model, ids), 404) if engine.model not in ids \
            else error

    def _parts(self, request: GenerationRequest, prompt: str, rows: list[int], together: bool, k: int) -> list[_Part]:
        engine, settings = self.engine, request.sampling
        body = {"model": engine.model, "prompt": prompt, "stream": True,
                "max_tokens": max_tokens_for(request.length, engine.server.max_tokens),
                "temperature": settings.temperature, "top_p": settings.top_p,
                "presence_penalty": settings.presence_penalty, "frequency_penalty": settings.frequency_penalty,
                **extra_fields(engine.server, settings)}
        if k > 0:
            body["logprobs"] = k
        if together:
            if settings.seed is not None:
                body["seed"] = settings.seed
            return [_Part(list(rows), {**body, "n": len(rows)})]
        parts = []
        for row in rows:  # side by side: each candidate its own seed
            one = dict(body)
            if settings.seed is not None:
                one["seed"] = settings.seed + row
            parts.append(_Part([row], one))
        return parts

    def _stream_parts(self, job: RemoteJob, progress: _Progress, parts: list[_Part]) -> RemoteError | None:
        """All at once, or one after another for a server that serves one request at a time; the first error."""
        if self.engine.server.concurrent or len(parts) == 1:
            return self._stream(job, progress, parts)
        for part in parts:
            error = self._stream(job, progress, [part])
            if error is not None or job.is_cancelled:
                return error
        return None

    def _stream(self, job: RemoteJob, progress: _Progress, parts: list[_Part]) -> RemoteError | None:
        """Run the parts' streams together (a reader thread each) until each ends or is shut; the first error."""
        events: queue.Queue = queue.Queue()
        for index, part in enumerate(parts):
            part.stream = self.engine.client.stream(COMPLETIONS, part.body)
            job.attach(part.stream)
            threading.Thread(target=_read, args=(part.stream, index, events), name="remote-stream", daemon=True).start()
        running, error = len(parts), None
        while running:
            index, item = events.get()
            part = parts[index]  # (the index into the parts run here)
            if item is _END:
                running -= 1
            elif isinstance(item, RemoteError):
                if error is None:
                    error = item
                for other in parts:  # one fails, all stop
                    other.stream.abort()
            elif error is None and not job.is_cancelled:
                progress.take(part, item)
                if progress.part_done(part):
                    part.stream.abort()  # every candidate in it is long enough
        return error


def _read(stream, index: int, events: queue.Queue) -> None:
    """A reader thread: each event of the stream into `events`, then any error, then _END."""
    try:
        for event in stream:
            events.put((index, event))
    except RemoteError as exc:
        events.put((index, exc))
    except Exception as exc:  # noqa: BLE001 - becomes the job's Failed line
        events.put((index, RemoteError(f"{type(exc).__name__}: {exc}".splitlines()[0])))
    finally:
        events.put((index, _END))
