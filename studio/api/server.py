"""The engine as an OpenAI-compatible completions server (aiohttp): POST /v1/completions, GET /v1/models.

    server = ApiServer(service, model_id="tiny", defaults=config.sampling.settings, api_key=None, queue_size=8)
    server.run("127.0.0.1", 8000)             # blocks (the `ai-writer serve-api` command)
    port = await server.start("127.0.0.1", 0)  # or inside a running loop; await server.stop()

One GenerationService runs every request (its prompt cache is shared); requests take turns
in arrival order, at most queue_size waiting behind the one running (429 beyond). Model code
runs only on the service's thread: its events come here through loop.call_soon_threadsafe.
A client that goes away cancels its job (it stops within one step).
"""

from __future__ import annotations

import asyncio
import threading
import hmac
import json
import time
import uuid

from aiohttp import web

from ai_writer.backends.writing.generation import Chunk, Failed, Finished, GenerationRequest
from ai_writer.backends.writing.story import ContextBudgets, Story
from ai_writer.models.textprep import TextPrep
from ai_writer.studio.api.candidates import Candidates
from ai_writer.studio.api.protocol import (ApiError, CompletionParams, choice_body, chunk_body, completion_body,
                                           error_body, logprobs_of, models_body, parse_completion, tokens_written,
                                           usage_body)

RAW_PREP = TextPrep(strip_indents=False, drop_empty_lines=False, leading_newline=False)  # the prompt as sent
WHOLE_PROMPT = ContextBudgets(context_chars=0)  # the client chose its context: read all of it
# The service counts a candidate's length in characters and sizes its ChoiceLog by it (per row and character: 8
# bytes per alternative and 10 more): max_tokens x the longest token. Requests that would set aside more are refused.
CHOICE_LOG_BYTES = 256 << 20


class ApiServer:
    def __init__(self, service, model_id: str, defaults, api_key: str | None = None, queue_size: int = 8,
                 cors_origin: str | None = None):
        """cors_origin: the web origin (or "*") whose pages may call this server from a browser; None: none."""
        self.service, self.model_id, self.defaults = service, model_id, defaults
        self.api_key, self.queue_size, self.cors_origin = api_key, queue_size, cors_origin
        self.created = int(time.time())
        self.waiting = 0  # requests waiting for their turn
        self.last_job = None  # the job of the latest request (for tests and diagnostics)
        self._turn: asyncio.Lock | None = None
        self._runner: web.AppRunner | None = None
        self._token_chars = _longest_token(service.engine.tokenizer)

    # -- running -----------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=16 << 20)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/models/{model}", self.model)
        if self.cors_origin:
            app.on_response_prepare.append(self._cors_headers)
        return app

    async def _cors_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Access-Control-Allow-Origin"] = self.cors_origin
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Expose-Headers"] = "X-Ignored-Fields"

    async def start(self, host: str, port: int) -> int:
        """Listen (port 0: any free one) and return the port."""
        self._turn = asyncio.Lock()
        self._runner = web.AppRunner(self.app(), handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        return self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self.last_job is not None:
            self.last_job.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def run(self, host: str, port: int, on_ready=None) -> None:
        """Serve until interrupted; on_ready(port) once listening."""
        async def main():
            bound = await self.start(host, port)
            if on_ready is not None:
                on_ready(bound)
            try:
                await asyncio.Event().wait()
            finally:
                await self.stop()

        asyncio.run(main())

    # -- handlers ------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        """Every refusal in OpenAI's error shape; nothing unexpected reaches the client as a traceback."""
        try:
            if request.method == "OPTIONS" and self.cors_origin:  # a browser's preflight: no key is sent with it
                return web.Response(status=204)
            self._check_key(request)
            return await handler(request)
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return web.json_response(error_body(f"{request.method} {request.path}: {exc.reason}",
                                                code=str(exc.status)), status=exc.status)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return web.json_response(error_body(message, "server_error"), status=500)

    def _check_key(self, request: web.Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("Authorization", "")
        if not given:
            raise ApiError(401, "no API key: send it as 'Authorization: Bearer KEY'", code="invalid_api_key")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
            raise ApiError(401, "the API key is wrong", code="invalid_api_key")

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(models_body(self.model_id, self.created))

    async def model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        if name != self.model_id:
            raise ApiError(404, f"the model {name!r} does not exist; this server has {self.model_id!r}", "model",
                           "model_not_found")
        return web.json_response(models_body(self.model_id, self.created)["data"][0])

    async def completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not valid JSON") from None
        params = parse_completion(body, self.defaults, self.model_id)
        generation = self.generation_request(params)
        if self._turn.locked() and self.waiting >= self.queue_size:
            raise ApiError(429, f"the server is busy: {self.waiting} requests are waiting already; try again soon",
                           kind="rate_limit_error", code="queue_full")
        self.waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self.waiting -= 1
        try:
            return await self._complete(request, params, generation)
        finally:
            self._turn.release()

    def generation_request(self, params: CompletionParams) -> GenerationRequest:
        """The service request for these params (the prompt read as sent, all of it; 400 when too large)."""
        length, alternatives = params.max_tokens * self._token_chars, max(1, params.logprobs or 0)
        if params.n * length * (8 * alternatives + 10) > CHOICE_LOG_BYTES:  # what the job's ChoiceLog sets aside
            raise ApiError(400, f"n = {params.n} x max_tokens = {params.max_tokens} x logprobs = {alternatives} is "
                                f"too much for this model's tokenizer (up to {self._token_chars} characters a token); "
                                "ask for fewer", "max_tokens")
        return GenerationRequest(
            text=params.prompt, n=params.n, length=length, sampling=params.sampling,
            prep=RAW_PREP, story=Story(), budgets=WHOLE_PROMPT, alternatives=alternatives)

    async def _complete(self, request: web.Request, params: CompletionParams,
                        generation: GenerationRequest) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        candidates = Candidates(params.n, params.max_tokens, params.stop)
        streamed = _Streamed(params) if params.stream else None
        job_holder = []

        def push(item) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the server stopped and its loop closed: nobody waits for this any more
                pass

        def on_event(event) -> None:  # the service's thread
            job = job_holder[0] if job_holder else None
            log = job.choices if job is not None else None
            if isinstance(event, Chunk) and log is not None:
                candidates.sync(log)
                if candidates.all_done:
                    job.cancel()  # no row needs another step
                news = candidates.release()
                if news and streamed is not None:
                    push(streamed.annotate(log, candidates, news))
            elif isinstance(event, Finished):
                if log is not None:
                    candidates.sync(log)
                candidates.end()
                news = candidates.release()
                if streamed is not None:
                    push(streamed.annotate(log, candidates, news))
                push(event)
            elif isinstance(event, Failed):
                push(event)

        # the worker may call on_event before submit returns: until then it sees no job (a Chunk then is caught up
        # by the next sync, which reads the whole log)
        job = self.service.submit(generation, on_event)
        job_holder.append(job)
        self.last_job = job
        ident, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        headers = {"X-Ignored-Fields": ", ".join(params.ignored)} if params.ignored else {}
        try:
            if params.stream:
                return await self._stream(request, params, events, ident, created, headers, candidates, job)
            await self._until_done(events)
            choices, written = [], 0
            for row, text in enumerate(candidates.texts):
                reason, logprobs, steps = candidates.finish[row], None, 0
                if job.choices is not None:
                    steps = tokens_written(job.choices, row, text, reason, params.max_tokens)
                    if params.logprobs is not None:
                        logprobs = logprobs_of(job.choices, row, range(steps), text, params.logprobs,
                                               len(params.prompt))
                written += steps
                choices.append(choice_body(row, text, reason, logprobs))
            usage = usage_body(self._prompt_tokens(params.prompt), written)
            return web.json_response(completion_body(ident, created, self.model_id, choices, usage), headers=headers)
        finally:
            if not job.done:
                job.cancel()  # the client went away (or the reply failed): stop within one step

    def _prompt_tokens(self, prompt: str) -> int:
        return len(self.service.engine.tokenizer.encode(prompt))

    async def _until_done(self, events: asyncio.Queue):
        while True:
            event = await events.get()
            if isinstance(event, Failed):
                raise ApiError(500, f"generation failed: {event.message}", kind="server_error")
            if isinstance(event, Finished):
                return event

    async def _stream(self, request, params, events: asyncio.Queue, ident: str, created: int, headers: dict,
                      candidates: Candidates, job) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               **headers})
        await response.prepare(request)

        async def send(payload) -> None:
            await response.write(f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode())

        while True:
            event = await events.get()
            if isinstance(event, Failed):
                await send(error_body(f"generation failed: {event.message}", "server_error"))
                break
            if isinstance(event, Finished):
                if params.include_usage:  # OpenAI's last chunk: no choices, the usage
                    written = sum(tokens_written(job.choices, row, text, candidates.finish[row], params.max_tokens)
                                  for row, text in enumerate(candidates.texts)) if job.choices is not None else 0
                    usage = usage_body(self._prompt_tokens(params.prompt), written)
                    await send(completion_body(ident, created, self.model_id, [], usage))
                break
            for row, text, reason, logprobs in event:
                await send(chunk_body(ident, created, self.model_id, row, text, reason, logprobs))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


class _Streamed:
    """Per row, the text and tokens already streamed: each release's logprobs cover the tokens it completes."""

    def __init__(self, params: CompletionParams):
        self.params = params
        self.text = [""] * params.n
        self.steps = [0] * params.n

    def annotate(self, log, candidates: Candidates, news) -> list:
        """(row, piece, finish_reason, logprobs or None) for each release (on the service's thread: a whole log)."""
        params, annotated = self.params, []
        for row, piece, reason in news:
            self.text[row] += piece
            logprobs = None
            if params.logprobs is not None and log is not None:
                text = candidates.texts[row] if reason else self.text[row]
                end = tokens_written(log, row, text, reason, params.max_tokens, self.steps[row])
                logprobs = logprobs_of(log, row, range(self.steps[row], end), text, params.logprobs,
                                       len(params.prompt))
                self.steps[row] = end
            annotated.append((row, piece, reason, logprobs))
        return annotated


def _longest_token(tokenizer) -> int:
    """The most characters one token can add to a candidate (a bound for the service's length in characters)."""
    chars = getattr(tokenizer, "chars", None)
    if chars is not None:
        return max(1, max(len(c) for c in chars))
    pieces = getattr(tokenizer, "id_to_bytes", None)
    if pieces is not None:
        return max(len(p) for p in pieces) + 3  # bytes held back from the token before may complete with it
    return 64


class BackgroundServer:
    """An ApiServer listening on 127.0.0.1 (port 0: a free one), its event loop on a thread of its own: for
    programs that embed the server (the benchmark, the tests) rather than run `ai-writer serve-api`."""

    def __init__(self, server: ApiServer, port: int = 0, timeout: float = 30.0):
        self.server, self.timeout = server, timeout
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            self.port = self.loop.run_until_complete(server.start("127.0.0.1", port))
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, name="api-server", daemon=True)
        self.thread.start()
        if not started.wait(timeout):
            raise RuntimeError(f"the API server did not start within {timeout:.0f} s")
        self.base = f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(self.timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(self.timeout)
