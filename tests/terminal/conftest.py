"""Fixtures for the real-terminal tests: one tiny model per session, a studio per test.

A studio is forked by one studio server per session (tests/terminal/studio_server.py: torch,
Textual and the studio imported once), so a start costs a fifth of a second, not three; the
same `ai-writer` main() on a real pty. cold=True executes the console script afresh, for what
a real start does (the model still loading while the author types, a signal during the load)."""

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


@pytest.fixture(scope="session")
def studio_server(terminal_model, tmp_path_factory):
    """The fork server the studios start from (it has loaded terminal_model once)."""
    from tests.terminal.harness import StudioServer

    server = StudioServer(terminal_model, tmp_path_factory.mktemp("studio-server"))
    yield server
    server.close()


@pytest.fixture
def start_studio(tmp_path, terminal_model, studio_server):
    """start_studio(text=..., cols=, rows=, cold=False, **config sections) -> a running Studio on
    tmp_path/novel.txt (forked by studio_server; cold=True: the console script executed afresh).

    text None starts on a file that does not exist yet. Every studio started is killed at teardown."""
    from tests.terminal.harness import Studio, write_config

    started = []

    def start(text: str | None = "　　他走进了房间。\n", *, name: str = "novel.txt", cols: int = 100,
              rows: int = 30, cold: bool = False, **sections) -> Studio:
        manuscript = tmp_path / name
        if text is not None and not manuscript.exists():
            manuscript.write_bytes(text.encode("utf-8"))
        config = write_config(tmp_path / "config.toml", terminal_model, **sections)
        studio = Studio(tmp_path, config, manuscript, cols=cols, rows=rows,
                        server=None if cold else studio_server)
        started.append(studio)
        return studio

    yield start
    for studio in started:
        studio.close()
