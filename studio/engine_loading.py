"""Open the model that the [model] settings name (backends.LoadError says why not)."""

from __future__ import annotations

from ai_writer.studio.config_sections import ModelSection


def load_engine(model: ModelSection, path: str | None = None, device: str | None = None, state: str | None = None):
    """The engine for `model` (path, device and state may be overridden, as the CLI's --model, --device and
    --state do); for backend "openai" a backends.remote.engine.RemoteEngine, after one look at the server."""
    from ai_writer.backends import load

    if model.backend == "openai":  # a model on a server: path, device and state are the server's business
        from ai_writer.backends.remote.engine import connect

        return connect(model.url, model.remote_model, model.api_key_env, model.timeout_seconds)
    return load(path or model.path, backend=model.backend, device=device or model.device,
                vocab=model.vocab or None, dtype=model.dtype or None, unknown_char=model.unknown_char,
                window_refill=model.window_refill, state=state or model.state or None)
