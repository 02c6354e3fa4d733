"""The two errors a caller of backends meets; each message is one line naming what is wrong."""

from __future__ import annotations


class LoadError(ValueError):
    """The model, its vocabulary or the backend choice cannot be used; one line naming which."""


class EngineError(ValueError):
    """A request the engine cannot run (bad token ids, mismatched batch)."""
