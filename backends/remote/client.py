"""HTTP to an OpenAI-compatible server, on the standard library: GET /v1/models and POST /v1/completions streamed as
server-sent events, each on the calling thread (the service's worker or its readers).

    client = RemoteClient("http://gpu-box:8000", api_key_env="MY_KEY", timeout=60)
    client.models()                                   # [{"id": ..., "owned_by": ...}, ...]
    stream = client.stream("/v1/completions", body)   # not connected yet
    for event in stream: ...                          # connects (with retries), then each `data:` JSON object
    stream.abort()                                    # from any thread: the socket is shut at once

Timeouts: a connection must open within min(timeout, CONNECT_TIMEOUT) seconds; after that the server may
take `timeout` seconds for each answer (the headers, then every streamed event). Retries, with the
RETRY_DELAYS backoff, only where nothing was sent back: a connection refused, reset or not opened in
time, and 503 (the server says it is not ready yet, e.g. llama-server loading its model); never an HTTP
error (400, 401, 404, 429, ...) nor a stream that broke off halfway. The API key is read from the
environment variable named in config at each request, sent as `Authorization: Bearer`, kept nowhere
and masked in any message a server sends back. Every failure is a RemoteError of one line.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
RETRY_DELAYS = (0.5, 1.0, 2.0)  # before the 2nd, 3rd and 4th try
BODY_LIMIT = 1 << 20  # the most of a non-streamed answer read (an error body, the model list)
MESSAGE_CHARS = 300  # of a server's own error message


class RemoteError(Exception):
    """One line saying what went wrong; status: the HTTP status (0: no answer); server_message: the server's own
    words (from its JSON error), param: the field it named, if any."""

    def __init__(self, message: str, status: int = 0, server_message: str = "", param: str | None = None):
        super().__init__(message)
        self.message, self.status, self.server_message, self.param = message, status, server_message, param


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    prefix: str  # a path the API lives under ("" for the root; a trailing /v1 is taken off)

    @property
    def shown(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.prefix}"


def parse_url(url: str) -> Endpoint:
    """http(s)://host[:port][/prefix][/v1] -> Endpoint; ValueError (one line) for anything else."""
    text = str(url or "").strip()
    if not text:
        raise ValueError("no server: set [model] url (e.g. http://127.0.0.1:8000)")
    parts = urlsplit(text if "://" in text else "http://" + text)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"[model] url {text!r}: the port is not a number from 0 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"[model] url {text!r} is not an http:// or https:// address with a host")
    if parts.username or parts.password:
        raise ValueError(f"[model] url {parts.scheme}://...@{parts.hostname}: no user or password in the address "
                         "(the key goes in the environment variable named by [model] api_key_env)")
    prefix = parts.path.rstrip("/")
    if prefix.endswith("/v1"):
        prefix = prefix[:-3]
    default = 443 if parts.scheme == "https" else 80
    return Endpoint(parts.scheme, parts.hostname, port or default, prefix)


def server_message(raw: bytes) -> tuple[str, str | None]:
    """(the server's own message, the field it names) from an error body: OpenAI's {"error": {"message", "param"}},
    vLLM's {"message"}, Ollama's {"error": "..."}, FastAPI's {"detail": ...}, else the body's first line."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    message, param = "", None
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, str):
            message = error
        elif isinstance(error, dict):
            message = error.get("message") or error.get("detail") or ""
            param = error.get("param") if isinstance(error.get("param"), str) else None
        if isinstance(message, list):  # FastAPI's validation errors
            message = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg', '')}"
                                if isinstance(d, dict) else str(d) for d in message)
    if not isinstance(message, str) or not message:
        message = text.splitlines()[0] if text else ""
    message = " ".join(message.split())
    return (message[:MESSAGE_CHARS] + "..." if len(message) > MESSAGE_CHARS else message), param


class RemoteClient:
    def __init__(self, url: str, api_key_env: str = "", timeout: float = DEFAULT_TIMEOUT,
                 retry_delays: tuple = RETRY_DELAYS):
        self.endpoint = parse_url(url)  # ValueError for a bad address
        self.api_key_env = (api_key_env or "").strip()
        self.timeout = float(timeout)
        self.connect_timeout = min(self.timeout, CONNECT_TIMEOUT)
        self.retry_delays = tuple(retry_delays)

    @property
    def shown(self) -> str:
        return self.endpoint.shown

    def _key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise RemoteError(f"the environment variable {self.api_key_env} named by [model] api_key_env is not set "
                              f"(it should hold the API key of {self.shown})")
        return key

    def headers(self, json_body: bool) -> dict:
        headers = {"Accept": "text/event-stream, application/json", "User-Agent": "ai-writer-studio"}
        if json_body:
            headers["Content-Type"] = "application/json"
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def masked(self, text: str) -> str:
        """text with the API key (should a server echo it) replaced by ***."""
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        return text.replace(key, "***") if key and len(key) >= 4 else text

    def connection(self) -> http.client.HTTPConnection:
        e = self.endpoint
        if e.scheme == "https":
            return http.client.HTTPSConnection(e.host, e.port, timeout=self.connect_timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(e.host, e.port, timeout=self.connect_timeout)

    def get_json(self, path: str):
        """The JSON answer of GET prefix+path (RemoteError for no answer, an HTTP error or a body that is not JSON)."""
        request = Request(self, "GET", path, None)
        try:
            response = request.open()
            raw = response.read(BODY_LIMIT)
        except (TimeoutError, socket.timeout):
            raise RemoteError(f"{self.shown} did not answer within {self.timeout:g} s ([model] timeout_seconds)") from None
        except OSError as exc:
            raise RemoteError(f"{self.shown} broke off its answer ({exc.strerror or exc})") from None
        finally:
            request.close()
        try:
            return json.loads(raw)
        except ValueError:
            raise RemoteError(f"{self.shown}{path} did not answer in JSON (is it an OpenAI-compatible server?)") from None

    def models(self) -> list[dict]:
        """GET /v1/models: each model the server lists, as a dict with at least "id"."""
        answer = self.get_json("/v1/models")
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise RemoteError(f"{self.shown}/v1/models did not list models (no \"data\" list)")
        return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    def stream(self, path: str, body: dict) -> "EventStream":
        """POST body (stream: true) to prefix+path: an EventStream, connected when first read."""
        return EventStream(Request(self, "POST", path, json.dumps(body, ensure_ascii=False).encode("utf-8")))


class Request:
    """One HTTP request with its retries; abort() from another thread shuts its socket."""

    def __init__(self, client: RemoteClient, method: str, path: str, body: bytes | None):
        self.client, self.method, self.path, self.body = client, method, path, body
        self._connection: http.client.HTTPConnection | None = None
        self._aborted = threading.Event()
        self._lock = threading.Lock()
        self.tries = 0

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def open(self) -> http.client.HTTPResponse:
        """The response (status 200), after the retries a connection error or a 503 allows; RemoteError else (or
        RemoteError with status -1 once aborted)."""
        client = self.client
        headers = client.headers(self.body is not None)
        delays = list(client.retry_delays)
        while True:
            self.tries += 1
            problem, status, raw = None, 0, b""
            try:
                response = self._send(headers)
                if response.status == 200:
                    return response
                status, raw = response.status, response.read(BODY_LIMIT)
                self._drop()
                if status != 503:
                    raise http_error(client, status, raw, self.path)
                problem = http_error(client, status, raw, self.path)
            except RemoteError:
                raise
            except (TimeoutError, socket.timeout):
                self._drop()
                if self.aborted:
                    raise RemoteError("cancelled", -1) from None
                if self._connection_opened:
                    raise RemoteError(f"{client.shown} did not answer within {client.timeout:g} s "
                                      "([model] timeout_seconds)") from None
                problem = RemoteError(f"cannot reach {client.shown}: no connection within "
                                      f"{client.connect_timeout:g} s")
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, unreachable, closed early
                self._drop()
                if self.aborted:
                    raise RemoteError("cancelled", -1) from None
                problem = RemoteError(f"cannot reach {client.shown}: {_reason(exc)}")
            if self.aborted:
                raise RemoteError("cancelled", -1)
            if not delays:
                tries = f" ({self.tries} tries)" if self.tries > 1 else ""
                raise RemoteError(problem.message + tries, problem.status, problem.server_message, problem.param)
            if self._aborted.wait(delays.pop(0)):
                raise RemoteError("cancelled", -1)

    _connection_opened = False

    def _send(self, headers: dict) -> http.client.HTTPResponse:
        self._connection_opened = False
        connection = self.client.connection()
        with self._lock:
            if self.aborted:
                raise RemoteError("cancelled", -1)
            self._connection = connection
        connection.connect()
        self._connection_opened = True
        connection.sock.settimeout(self.client.timeout)
        if self.aborted:  # cancelled while connecting
            raise RemoteError("cancelled", -1)
        connection.request(self.method, self.client.endpoint.prefix + self.path, body=self.body, headers=headers)
        return connection.getresponse()

    def _drop(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def abort(self) -> None:
        """Stop now, from any thread: a blocked read returns at once."""
        self._aborted.set()
        with self._lock:
            connection = self._connection
        sock = getattr(connection, "sock", None) if connection is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._drop()


class EventStream:
    """The `data:` events of a server-sent event stream, each parsed from JSON; ends at `data: [DONE]` or when the
    server closes the stream. Iterating raises RemoteError for a failure (an error event included), and ends quietly
    once aborted."""

    def __init__(self, request: Request):
        self.request = request

    @property
    def aborted(self) -> bool:
        return self.request.aborted

    def abort(self) -> None:
        self.request.abort()

    def __iter__(self):
        request, client = self.request, self.request.client
        try:
            try:
                response = request.open()
            except RemoteError as exc:
                if exc.status == -1:
                    return
                raise
            data: list[str] = []
            while True:
                try:
                    line = response.readline()
                except (TimeoutError, socket.timeout):
                    if request.aborted:
                        return
                    raise RemoteError(f"{client.shown} stopped answering: nothing for {client.timeout:g} s "
                                      "([model] timeout_seconds)") from None
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    if request.aborted:
                        return
                    raise RemoteError(f"{client.shown} broke off its answer ({_reason(exc)})") from None
                if request.aborted:
                    return
                if not line:
                    if data:  # a last event without its blank line
                        yield from self._parsed(data)
                    return
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text:
                    if text.startswith("data:"):
                        data.append(text[5:].removeprefix(" "))
                    continue  # comments (":") and other fields (event:, id:, retry:)
                if data:
                    if data == ["[DONE]"]:
                        return
                    yield from self._parsed(data)
                    data = []
        finally:
            request.close()

    def _parsed(self, data: list[str]):
        client = self.request.client
        joined = "\n".join(data)
        if joined == "[DONE]":
            return
        try:
            event = json.loads(joined)
        except ValueError:
            raise RemoteError(f"{client.shown} sent an event that is not JSON: {joined[:80]!r}") from None
        if isinstance(event, dict) and "error" in event and not event.get("choices"):
            message, param = server_message(joined.encode())
            raise RemoteError(f"{client.shown} failed: {client.masked(message)}", 500, message, param)
        if isinstance(event, dict):
            yield event


def http_error(client: RemoteClient, status: int, raw: bytes, path: str) -> RemoteError:
    """One line for an HTTP error status (the 404 of a model is worded by the caller, who knows the model list)."""
    message, param = server_message(raw)
    message = client.masked(message)
    said = f"{status}: {message}" if message else str(status)
    shown = client.shown
    if status in (401, 403):
        hint = (f"check the key in the environment variable {client.api_key_env}" if client.api_key_env
                else "name the environment variable that holds the key in [model] api_key_env")
        line = f"{shown} refused the API key ({said}); {hint}"
    elif status == 404:
        line = f"{shown}{path}: not found ({said})"
    elif status in (400, 413, 422):
        line = f"{shown} refused the request: {message or status}"
    elif status == 429:
        line = f"{shown} is busy ({said}); try again soon"
    elif status == 503:
        line = f"{shown} is not ready ({said})"
    else:
        line = f"{shown} failed (HTTP {said})"
    return RemoteError(line, status, message, param)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, (http.client.RemoteDisconnected, http.client.IncompleteRead)):
        return "the connection closed early"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__
