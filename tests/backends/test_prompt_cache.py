"""A prompt made of parts: checkpoints at part boundaries and intervals, found again by prefix hash, in memory
and on disk; plan() says what the next request reads; the reading reports its progress."""

import hashlib
import threading

import numpy as np
import torch

from ai_writer.backends.writing import generation
from ai_writer.backends.writing.generation import Finished, GenerationRequest, Reading, Started
from ai_writer.backends.writing.prompt_cache import (
    BOUNDARY, CHECKPOINT_EVERY, END, INTERVAL, Checkpoint, PromptCache, PromptLayout, prefix_hashes,
)
from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.backends.writing.state_store import StateStore
from ai_writer.backends.writing.story import AuthorsNote, ContextBudgets, LoreEntry, Story
from tests.backends.test_generation import MANUSCRIPT, WatchedEngine

WHOLE_BOOK = ContextBudgets(context_chars=0)
STORY = Story(
    memory="主角是少年林动，生于青阳镇。",
    lore=(LoreEntry("镇", constant=True, text="青阳镇在群山之中，镇外有一条大河。"),
          LoreEntry("少年", keys=("少年",), text="那少年十五岁，天生神力。")),
    authors_note=AuthorsNote("文风：简洁，多写景。", depth=40),
)


def ask(text=MANUSCRIPT, story=Story(), budgets=None, n=0, length=0):
    return GenerationRequest(text, n=n, length=length, sampling=SamplingSettings(seed=1), story=story, budgets=budgets)


def run(service, req):
    """(the request's events, its Started)."""
    events = list(service.generate(req, timeout=60))
    assert isinstance(events[-1], Finished), events[-1]
    started = [e for e in events if isinstance(e, Started)]
    assert len(started) == 1
    return events, started[0]


def read(service, req) -> int:
    """Tokens the request read, after checking that plan() said so beforehand."""
    planned = service.plan(req)
    _, started = run(service, req)
    assert started.prompt_tokens == planned.tokens_to_read
    return started.prompt_tokens


def part_lengths(service, req) -> list[int]:
    return [len(service.engine.tokenizer.encode(p.text)) for p in service.plan(req).context.parts]


# -- the pieces ---------------------------------------------------------------


def test_prefix_hashes_are_the_sha1_of_each_prefix():
    ids = np.arange(1000) * 7
    hashes = prefix_hashes(ids, [1, 256, 999, 1000, 0, 1001])
    assert sorted(hashes) == [1, 256, 999, 1000]  # 0 and past the end have none
    for n, key in hashes.items():
        assert key == hashlib.sha1(np.asarray(ids[:n], "<i4").tobytes()).hexdigest()


def test_checkpoints_go_at_part_starts_every_interval_inside_a_part_and_at_the_end():
    layout = PromptLayout.of_parts([[1] * 3, [2] * 600, [], [3] * 10])
    assert layout.part_starts == (0, 3, 603)
    assert layout.stops() == [3, 3 + 256, 3 + 512, 603, 613]
    assert [layout.role_at(n) for n in (3, 259, 515, 603, 613, 100)] == [BOUNDARY, INTERVAL, INTERVAL, BOUNDARY, END, None]


def test_the_cache_drops_superseded_ends_and_other_checkpoints_before_boundaries():
    cache = PromptCache(max_checkpoints=4, keep_ends=1)
    ids = np.arange(50)
    layout = PromptLayout.of_parts([ids[:10], ids[10:]])
    hashes = prefix_hashes(ids, range(1, 51))

    def add(n, role):
        cache.add(Checkpoint(n, hashes[n], None, np.zeros(1), role))

    add(10, BOUNDARY)
    for n in (20, 21, 22):  # the ends of three prompts, each a prefix of the next
        add(n, END)
    assert cache.use(layout, hashes).n_tokens == 22  # the longest prefix
    assert cache.lengths() == {10, 22}  # the superseded ends went (keep_ends=1)
    add(30, INTERVAL)
    other = prefix_hashes(np.arange(50) + 1, range(1, 51))
    for n in (5, 6, 7):  # another text's ends: the cache is full, boundaries stay
        cache.add(Checkpoint(n, other[n], None, np.zeros(1), END))
    assert 10 in cache.lengths() and len(cache) == 4


# -- reading the parts ----------------------------------------------------------


def test_reading_reports_its_progress_chunk_by_chunk(tiny_engine, service_for):
    service = service_for(tiny_engine, context_chars=0)
    events, started = run(service, ask(MANUSCRIPT * 4))
    progress = [e for e in events if isinstance(e, Reading)]
    total = started.prompt_tokens
    assert len(progress) == -(-total // CHECKPOINT_EVERY) and events.index(started) == len(progress)
    assert [e.done_tokens for e in progress] == sorted({*range(CHECKPOINT_EVERY, total, CHECKPOINT_EVERY), total})
    assert {e.total_tokens for e in progress} == {total}
    _, again = run(service, ask(MANUSCRIPT * 4 + "天"))
    assert again.prompt_tokens == 1


def test_typing_at_the_end_reads_one_token_with_memory_lore_and_a_note(tiny_engine, service_for):
    service = service_for(tiny_engine)
    text = MANUSCRIPT * 3
    first = service.plan(ask(text, STORY))
    assert [p.kind for p in first.context.parts] == ["memory", "lore", "lore", "story", "note", "story"]
    assert read(service, ask(text, STORY)) == first.total_tokens
    for char in "山中有":
        text += char
        plan = service.plan(ask(text, STORY))
        assert plan.context.parts[:-1] == first.context.parts[:-1]  # the note did not move
        assert read(service, ask(text, STORY)) == 1


def test_editing_a_middle_part_rereads_from_that_parts_start(tiny_engine, service_for):
    service = service_for(tiny_engine)
    text = MANUSCRIPT * 3
    read(service, ask(text, STORY))
    edited = Story(STORY.memory, STORY.authors_note, (STORY.lore[0], LoreEntry("少年", ("少年",), "那少年十六岁。")))
    lengths = part_lengths(service, ask(text, edited))
    assert read(service, ask(text, edited)) == sum(lengths) - sum(lengths[:2])  # memory and the first entry kept
    assert read(service, ask(text, STORY)) == 0  # back as it was: that prompt's end is still held
    other_memory = Story("主角是少女。", STORY.authors_note, STORY.lore)
    assert read(service, ask(text, other_memory)) == sum(part_lengths(service, ask(text, other_memory)))


def test_typing_for_a_while_keeps_the_boundaries(tiny_engine, service_for):
    service = service_for(tiny_engine)
    text = MANUSCRIPT * 3
    read(service, ask(text, STORY))
    for char in "山中有虎，林中有鸟，河中有鱼。" * 3:  # more requests than the cache holds checkpoints
        text += char
        service.read_prompt(text, story=STORY)
    assert len(service.cache) <= service.cache.max_checkpoints
    edited = Story(STORY.memory, STORY.authors_note, (STORY.lore[0], LoreEntry("少年", ("少年",), "那少年十六岁。")))
    lengths = part_lengths(service, ask(text, edited))
    assert read(service, ask(text, edited)) == sum(lengths) - sum(lengths[:2])


def test_a_long_read_keeps_a_few_of_its_interval_checkpoints_and_flushes_nothing(tiny_engine, service_for):
    service = service_for(tiny_engine)
    text = MANUSCRIPT * 3
    read(service, ask(text, STORY))
    held = len(service.cache)
    book = "　　大河向东流，两岸青山相对出。\n" * 500  # 7501 ids: 29 interval checkpoints on the way
    assert read(service, ask(book, budgets=WHOLE_BOOK)) > 29 * CHECKPOINT_EVERY
    assert len(service.cache) <= held + service.cache.keep_intervals + 1  # its last intervals and its end
    assert read(service, ask(text, STORY)) == 0  # the first prompt's checkpoints are all still there
    edited_end = book[:-20] + "雨" + book[-19:]
    assert read(service, ask(edited_end, budgets=WHOLE_BOOK)) <= CHECKPOINT_EVERY + 20


def test_cancelling_a_read_keeps_the_checkpoints_it_made(tiny_engine, service_for):
    engine = WatchedEngine(tiny_engine, delay=0.02)
    service = service_for(engine, context_chars=0)
    req = ask(MANUSCRIPT * 8, n=1, length=5)
    events = []

    def on_event(event):
        events.append(event)
        if isinstance(event, Reading) and event.done_tokens >= 2 * CHECKPOINT_EVERY:
            job.cancel()  # on the worker, between two chunks: the read stops before the next one

    job = service.submit(req, on_event)
    assert job.wait(30)
    assert isinstance(events[-1], Finished) and events[-1].cancelled
    assert not any(isinstance(e, Started) for e in events)
    plan = service.plan(req)
    assert plan.cached_tokens == 2 * CHECKPOINT_EVERY and not plan.from_disk
    assert read(service, req) == plan.total_tokens - 2 * CHECKPOINT_EVERY


def test_a_new_engine_drops_the_cache(tiny_engine, service_for):
    service = service_for(tiny_engine)
    read(service, ask())
    assert service.plan(ask()).tokens_to_read == 0
    service.set_engine(tiny_engine)
    assert len(service.cache) == 0 and service.plan(ask()).cached_tokens == 0


# -- states on disk -----------------------------------------------------------


def close_states(a, b, atol=2e-5):
    assert type(a) is type(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert torch.allclose(x, y, atol=atol, rtol=1e-4), float((x - y).abs().max())


def test_a_book_reopened_starts_from_its_states_on_disk_as_reading_it_all_would(tiny_engine, tiny_model, tmp_path,
                                                                               service_for):
    folder = tmp_path / "states"
    book = MANUSCRIPT * 25  # ~ 4500 ids: one state at 4096 and one at the end
    first = service_for(tiny_engine, context_chars=0, state_store=StateStore(folder, tiny_model, 1 << 30))
    total = read(first, ask(book, n=1, length=2))
    assert total > generation.DISK_EVERY
    assert first.state_store.lengths() == {generation.DISK_EVERY, total}

    scratch = service_for(tiny_engine, context_chars=0)
    logits, state, read_all, _ = scratch.read_prompt(book)
    assert read_all == total

    reopened = service_for(tiny_engine, context_chars=0, state_store=StateStore(folder, tiny_model, 1 << 30))
    plan = reopened.plan(ask(book))
    assert plan.from_disk and plan.cached_tokens == total
    disk_logits, disk_state, read_now, _ = reopened.read_prompt(book)
    assert read_now == 0
    close_states(disk_state, state)
    assert np.allclose(disk_logits, logits, atol=2e-5)

    # another ending after the first 4096 ids: from the state at 4096, then read on
    changed = book[:-300] + "　　忽然下起了大雨。" + book[-290:]
    resumed = service_for(tiny_engine, context_chars=0, state_store=StateStore(folder, tiny_model, 1 << 30))
    plan = resumed.plan(ask(changed))
    assert plan.from_disk and plan.cached_tokens == generation.DISK_EVERY
    logits, state, read_now, _ = resumed.read_prompt(changed)
    assert read_now == plan.tokens_to_read
    fresh_logits, fresh_state, _, _ = service_for(tiny_engine, context_chars=0).read_prompt(changed)
    close_states(state, fresh_state)
    assert np.allclose(logits, fresh_logits, atol=2e-5)


def test_a_corrupt_state_on_disk_is_read_again_not_trusted(tiny_engine, tiny_model, tmp_path, service_for):
    folder = tmp_path / "states"
    book = MANUSCRIPT * 25
    store = StateStore(folder, tiny_model, 1 << 30)
    total = read(service_for(tiny_engine, context_chars=0, state_store=store), ask(book))
    for path in (store.folder / store.model_hash[:16]).glob("*.npz"):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    reopened = service_for(tiny_engine, context_chars=0, state_store=StateStore(folder, tiny_model, 1 << 30))
    logits, state, read_now, _ = reopened.read_prompt(book)
    assert read_now == total  # both files failed their check: read from the start
    fresh_logits, fresh_state, _, _ = service_for(tiny_engine, context_chars=0).read_prompt(book)
    close_states(state, fresh_state, atol=1e-6)
    assert reopened.state_store.lengths() == {generation.DISK_EVERY, total}  # and written again, whole


def test_a_store_that_cannot_write_never_fails_a_request(tiny_engine, tiny_model, tmp_path, service_for):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    service = service_for(tiny_engine, context_chars=0, state_store=StateStore(blocked, tiny_model, 1 << 30))
    events, started = run(service, ask(MANUSCRIPT * 25, n=2, length=5))
    assert len(events[-1].texts) == 2 and not events[-1].cancelled
    assert "states are not kept on disk" in service.store_problem
    assert read(service, ask(MANUSCRIPT * 25 + "天")) == 1  # memory goes on as before


def test_the_store_follows_the_engines_model_file(tiny_engine, tiny_model, tmp_path, service_for):
    store = StateStore(tmp_path / "states", tmp_path / "another.safetensors", 1 << 30)
    service = service_for(tiny_engine, state_store=store)
    assert service.state_store.model_path == tiny_model and service.state_store.folder == store.folder
    assert service_for(tiny_engine).state_store is None


def test_plan_never_hashes_the_model_file_on_the_callers_thread(tiny_engine, tiny_model, tmp_path, service_for,
                                                                monkeypatch):
    model = tmp_path / "copy.safetensors"
    model.write_bytes(tiny_model.read_bytes())
    engine = WatchedEngine(tiny_engine)
    engine.info = type(tiny_engine.info)(**{**tiny_engine.info.__dict__, "model_path": str(model)})
    service = service_for(engine, context_chars=0, state_store=StateStore(tmp_path / "states", model, 1 << 30))
    hashed_on = []
    from ai_writer.backends.writing import state_store

    real = state_store.file_sha256
    monkeypatch.setattr(state_store, "file_sha256", lambda path: hashed_on.append(threading.current_thread().name)
                        or real(path))
    plan = service.plan(ask(MANUSCRIPT * 25))
    assert not plan.from_disk and hashed_on == []
    read(service, ask(MANUSCRIPT * 25))
    assert hashed_on == ["generation"]  # hashed once, by the worker
