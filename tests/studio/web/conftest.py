"""Fixtures for `ai-writer serve` in a real browser: one tiny model and one headless Chromium per session.

The browser is Debian's `chromium` (or AI_WRITER_CHROMIUM), driven by Playwright for Python: no
browser is downloaded (`playwright install` is never run). Without either, the browser tests skip
saying why, unless AI_WRITER_REQUIRE_BROWSER is set (as .ci/run does), where they fail.
"""

from __future__ import annotations

import os

import pytest

from tests.studio.web.browser import REQUIRE_ENV, Served, find_chromium
from tests.helpers import cjk_chars, random_rwkv7_weights, write_model_with_chars

if os.name != "posix":  # the studio's hang-up on a closed tab is a POSIX signal
    collect_ignore_glob = ["test_*.py"]

VOCAB = cjk_chars(64)
ORIGINAL = "　　他走进了房间。\n"
MODEL_STEM = "tiny7"


def _no_browser(reason: str):
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def web_model(tmp_path_factory):
    """A random 2 x 64 RWKV-7 over VOCAB (never a model to ship)."""
    weights = random_rwkv7_weights(2, 64, len(VOCAB), seed=0)
    return write_model_with_chars(tmp_path_factory.mktemp("web-model"), weights, VOCAB, stem=MODEL_STEM)


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium under Playwright (skipped where there is none). Module-scoped: Playwright's sync API
    keeps an event loop marked running on this thread while it is started, and the asyncio tests that a worker
    runs after these modules need that loop gone."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("Playwright for Python is not installed (pip install playwright; no `playwright install`)")
    executable = find_chromium()
    if executable is None:
        _no_browser("no chromium on PATH (apt-get install chromium, or set AI_WRITER_CHROMIUM)")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
    except Exception as exc:  # a broken install: say which binary and why
        playwright.stop()
        _no_browser(f"{executable} does not start under Playwright: {str(exc).splitlines()[0]}")
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def browser(chromium):
    """A fresh browser profile (no cookies) per test, 1280 x 800; new_page() opens a tab in it."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


@pytest.fixture
def serve(tmp_path, web_model):
    """serve(*args, text=ORIGINAL, file="novel.txt", **config sections) -> a running `ai-writer serve`
    on tmp_path/FILE (file=None: no FILE), stopped with Ctrl+C's SIGINT at teardown."""
    from tests.terminal.harness import write_config

    started = []

    def start(*args: str, text: str | None = ORIGINAL, file: str | None = "novel.txt", **sections) -> Served:
        manuscript = tmp_path / file if file is not None else None
        if manuscript is not None and text is not None and not manuscript.exists():
            manuscript.write_text(text, encoding="utf-8")
        values = {"generation": {"candidates": 3, "length": 24, "banned_chars": "\n"}, "sampling": {"seed": 7},
                  "studio": {"autosave_seconds": 3600.0}}  # only the keys, an accept or a hang-up save
        for section, table in sections.items():
            values.setdefault(section, {}).update(table)
        config = write_config(tmp_path / "config.toml", web_model, **values)
        served = Served(tmp_path, config, manuscript, *args)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()
