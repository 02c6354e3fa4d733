"""Fixtures for the real-terminal tests: one tiny model per session, a studio per test."""

from __future__ import annotations

import os

import pytest

if os.name != "posix":  # pseudo-terminals and these signals are POSIX
    collect_ignore_glob = ["test_*.py"]

from tests.helpers import cjk_chars, random_rwkv7_weights, write_model_with_chars  # noqa: E402

VOCAB = cjk_chars(64)  # newline, "。", "，" and 61 ideographs: short sentences, so `p` has a sentence to take


@pytest.fixture(scope="session")
def terminal_model(tmp_path_factory):
    """A random 2 x 64 RWKV-7 over VOCAB (never a model to ship)."""
    weights = random_rwkv7_weights(2, 64, len(VOCAB), seed=0)
    return write_model_with_chars(tmp_path_factory.mktemp("terminal-model"), weights, VOCAB, stem="tiny7")


@pytest.fixture
def start_studio(tmp_path, terminal_model):
    """start_studio(text=..., cols=, rows=, **config sections) -> a running Studio on tmp_path/novel.txt.

    text None starts on a file that does not exist yet. Every studio started is killed at teardown."""
    from tests.terminal.harness import Studio, write_config

    started = []

    def start(text: str | None = "　　他走进了房间。\n", *, name: str = "novel.txt", cols: int = 100,
              rows: int = 30, **sections) -> Studio:
        manuscript = tmp_path / name
        if text is not None and not manuscript.exists():
            manuscript.write_bytes(text.encode("utf-8"))
        config = write_config(tmp_path / "config.toml", terminal_model, **sections)
        studio = Studio(tmp_path, config, manuscript, cols=cols, rows=rows)
        started.append(studio)
        return studio

    yield start
    for studio in started:
        studio.close()
