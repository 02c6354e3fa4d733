"""The current generation: one request, its job on the service, and where it was asked for."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class GenerationRun:
    request: object  # backends.writing.generation.GenerationRequest
    job: object  # the service's job (cancel(), done, id)
    anchor: tuple  # (cursor location, the editor's edit_version) when the candidates were asked for
    history_id: str  # unique across sessions, unlike the service's job ids
    indent: str = ""  # the manuscript's paragraph indent, for new paragraphs in the candidates
    started: float = field(default_factory=time.monotonic)
    generated_chars: int = 0

    @property
    def running(self) -> bool:
        return not self.job.done

    def stop(self) -> None:
        if not self.job.done:
            self.job.cancel()

    def rate(self) -> float | None:
        """Characters per second so far, once there is enough to say."""
        elapsed = time.monotonic() - self.started
        return self.generated_chars / elapsed if elapsed > 0.2 else None
