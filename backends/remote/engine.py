"""A model served by another machine, as the studio shows one: connect() asks the server once for its models.

    engine = connect("http://gpu-box:8000", "rwkv7-g1", api_key_env="GPU_BOX_KEY", timeout=60)  # LoadError
    engine.info          # EngineInfo(architecture "remote", backend "openai", device the host, model_path "URL MODEL")
    engine.server        # a backends.remote.servers.ServerKind, from the model's owned_by
    engine.models        # the ids the server listed

It runs nothing itself: backends.remote.service.RemoteService writes with it. What the server turns
out to take (n, logprobs) is kept in `learned`, for as long as this connection is used.
"""

from __future__ import annotations

from dataclasses import dataclass

from ai_writer.backends.engines.base import EngineInfo
from ai_writer.backends.engines.names import Backend
from ai_writer.backends.errors import LoadError
from ai_writer.backends.remote.client import DEFAULT_TIMEOUT, RETRY_DELAYS, RemoteClient, RemoteError
from ai_writer.backends.remote.servers import ServerKind, kind_of

SHOWN_MODELS = 12  # model ids named in a message, at most


@dataclass
class Learned:
    """What a server's answers showed (None: not yet known; the ServerKind's guess holds until then)."""

    takes_n: bool | None = None
    logprobs: bool | None = None



class RemoteEngine:
    tokenizer = None  # the server's tokenizer is its own: text goes in, text comes out
    tokens_processed = 0

    def __init__(self, client: RemoteClient, model: str, server: ServerKind, models: tuple[str, ...] = ()):
        self.client, self.model, self.server, self.models = client, model, server, tuple(models)
        self.info = EngineInfo("remote", str(Backend.OPENAI), client.endpoint.host, f"{client.shown} {model}", 0, 0, 0)
        self.learned = Learned()

    @property
    def takes_n(self) -> bool:
        return self.server.takes_n if self.learned.takes_n is None else self.learned.takes_n

    @property
    def gives_logprobs(self) -> bool:
        return self.server.max_logprobs > 0 and self.learned.logprobs is not False

    @property
    def label(self) -> str:
        """Short, for the status line: 'MODEL @ host:port' (model_path is 'URL MODEL', not a file name)."""
        e = self.client.endpoint
        return f"{self.model} @ {e.host}:{e.port}"

    @property
    def description(self) -> str:
        """One line for the status line's details: 'MODEL on URL (vllm)'."""
        return f"{self.model} on {self.client.shown} ({self.server.name})"


def connect(url: str, model: str = "", api_key_env: str = "", timeout: float = DEFAULT_TIMEOUT,
            retry_delays: tuple = RETRY_DELAYS) -> RemoteEngine:
    """The engine for `model` on the server at `url`, after one GET /v1/models; LoadError (one line) if the server is
    not there, refuses the key, or lacks the model. model "": the server's only model."""
    try:
        client = RemoteClient(url, api_key_env, timeout, retry_delays)
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    try:
        listed = client.models()
    except RemoteError as exc:
        raise LoadError(exc.message) from None
    ids = [m["id"] for m in listed]
    chosen = pick_model(client.shown, (model or "").strip(), ids)
    owned_by = next((m.get("owned_by", "") for m in listed if m["id"] == chosen), "")
    return RemoteEngine(client, chosen, kind_of(owned_by), tuple(ids))


def pick_model(shown: str, model: str, ids: list[str]) -> str:
    if not ids:
        raise LoadError(f"{shown} lists no models at /v1/models")
    if not model:
        if len(ids) == 1:
            return ids[0]
        raise LoadError(f"{shown} serves {len(ids)} models: set [model] remote_model to one of {name_list(ids)}")
    if model in ids:
        return model
    if f"{model}:latest" in ids:  # Ollama's tags
        return f"{model}:latest"
    raise LoadError(no_model_line(shown, model, ids))


def no_model_line(shown: str, model: str, ids) -> str:
    return f"{shown} has no model {model!r} (it has {name_list(ids)}); set [model] remote_model"


def name_list(ids) -> str:
    ids = list(ids)
    named = ", ".join(repr(i) for i in ids[:SHOWN_MODELS])
    return named + (f" and {len(ids) - SHOWN_MODELS} more" if len(ids) > SHOWN_MODELS else "") if ids else "none"
