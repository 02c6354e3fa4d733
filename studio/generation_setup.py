"""From the settings and the story to the generation service and its requests (the studio and the CLI alike)."""

from __future__ import annotations

from dataclasses import replace

from ai_writer.backends.writing.generation import GenerationRequest, GenerationService
from ai_writer.backends.writing.state_store import StateStore
from ai_writer.backends.writing.story import Story


def make_service(config, engine) -> GenerationService:
    """The service for this engine; states go to disk unless [generation] state_cache_mb is 0. A model on a server
    (backend "openai") gets a backends.remote.service.RemoteService."""
    if engine.info.backend == "openai":
        from ai_writer.backends.remote.service import RemoteService

        return RemoteService(engine, context_chars=config.generation.context_chars)
    megabytes = config.generation.state_cache_mb
    store = StateStore(None, engine.info.model_path, megabytes << 20) if megabytes > 0 and engine.info.model_path else None
    return GenerationService(engine, context_chars=config.generation.context_chars, state_store=store,
                             branch_state_bytes=config.generation.branch_state_mb << 20)


def build_request(config, text: str, story: Story = Story(), *, n: int | None = None, length: int | None = None,
                  seed: int | None = None, seed_offset: int = 0) -> GenerationRequest:
    """The request for candidates after `text` (the manuscript up to the cursor), the story's own settings laid over.

    seed: instead of the configured one; seed_offset: added to a set seed (a regeneration gives new candidates)."""
    config = config.with_story_overrides(story.generation)
    g = config.generation
    sampling = config.sampling.settings
    if seed is not None:
        sampling = replace(sampling, seed=seed)
    if sampling.seed is not None and seed_offset:
        sampling = replace(sampling, seed=sampling.seed + seed_offset)
    return GenerationRequest(
        text=text, n=n or g.candidates, length=length or g.length, sampling=sampling, prep=g.text_prep,
        banned_chars=g.banned_chars, penalty_exempt_chars=g.penalty_exempt_chars, story=story, budgets=config.budgets,
        alternatives=g.alternatives,
    )
