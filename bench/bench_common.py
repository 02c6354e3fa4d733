"""What every benchmark prints about the machine it ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def first_character(service, request) -> tuple[float, int]:
    """(seconds from submit to the first Chunk, prompt tokens the service read) of one request."""
    import threading
    import time

    from ai_writer.backends.writing.generation import Chunk, Failed, Started

    seen, arrived = {}, threading.Event()

    def on_event(event):
        if isinstance(event, Started):
            seen["read"] = event.prompt_tokens
        elif isinstance(event, Chunk) and "t" not in seen:
            seen["t"] = time.perf_counter()
            arrived.set()
        elif isinstance(event, Failed):
            seen["failed"] = event.message
            arrived.set()

    start = time.perf_counter()
    job = service.submit(request, on_event)
    arrived.wait(timeout=3600)
    job.wait(timeout=3600)
    if "failed" in seen:
        raise RuntimeError(f"generation failed: {seen['failed']}")
    return seen["t"] - start, seen["read"]
