"""The generation service: N streamed candidates, cancel, the prompt cache, errors as events.

The prompt made of parts, its checkpoints in memory and on disk, plan() and the reading progress:
tests/backends/test_prompt_cache.py."""

import threading
import time

from ai_writer.backends.writing.generation import (
    Chunk, Failed, Finished, GenerationRequest, Reading, Started,
)
from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.models.textprep import TextPrep
from tests.helpers import wait_until

MANUSCRIPT = "　　第一章　天才少年\n\n　　那少年抬头望向远方，只见山峦起伏，云雾缭绕。" * 6


class WatchedEngine:
    """The real engine, with its forward calls counted, optionally slowed, biased or broken."""

    def __init__(self, engine, delay=0.0, boost_id=None, fail=False):
        self.engine, self.delay, self.boost_id, self.fail = engine, delay, boost_id, fail
        self.calls, self.threads = [], set()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def forward(self, token_lists, state=None):
        self.threads.add(threading.current_thread().name)
        self.calls.append(len(token_lists[0]))
        if self.fail:
            raise RuntimeError("the device went away")
        time.sleep(self.delay)
        logits, state = self.engine.forward(token_lists, state)
        if self.boost_id is not None:
            logits[:, self.boost_id] += 100.0
        return logits, state


def request(text=MANUSCRIPT, **kwargs):
    kwargs.setdefault("sampling", SamplingSettings(seed=1))
    return GenerationRequest(text=text, **kwargs)


def started(events) -> Started:
    """The one Started event (after the prompt's Reading events)."""
    found = [e for e in events if isinstance(e, Started)]
    assert len(found) == 1
    return found[0]


def prompt_tokens(service, req) -> int:
    return started(service.generate(req)).prompt_tokens


def test_n_candidates_stream_and_add_up_to_the_final_texts(tiny_engine, service_for):
    engine = WatchedEngine(tiny_engine)
    events = list(service_for(engine).generate(request(n=3, length=25)))
    at = events.index(started(events))
    assert at > 0 and all(isinstance(e, Reading) for e in events[:at]) and isinstance(events[-1], Finished)
    final = events[-1]
    assert len(final.texts) == 3 and all(len(t) == 25 for t in final.texts)
    for index in range(3):
        streamed = "".join(e.text for e in events if isinstance(e, Chunk) and e.index == index)
        assert streamed == final.texts[index]
    assert not final.cancelled and final.tokens_per_second > 0
    # one batch of 3 rows per step, after the prompt
    assert engine.calls[0] > 1 and set(engine.calls[1:]) == {1}
    assert threading.main_thread().name not in engine.threads


def test_same_seed_same_candidates(tiny_engine, service_for):
    service = service_for(tiny_engine)
    first = list(service.generate(request(n=2, length=20)))[-1].texts
    again = list(service.generate(request(n=2, length=20)))[-1].texts
    other = list(service.generate(request(n=2, length=20, sampling=SamplingSettings(seed=2))))[-1].texts
    assert first == again and first != other
    assert first[0] != first[1]


def test_unknown_char_is_never_written_even_when_the_model_wants_it(tiny_engine, service_for):
    unknown = tiny_engine.tokenizer.unknown_id
    favourite = tiny_engine.tokenizer.encode("龙")[0]
    engine = WatchedEngine(tiny_engine, boost_id=unknown)
    texts = list(service_for(engine).generate(request(n=2, length=30)))[-1].texts
    assert texts[0] and all(tiny_engine.tokenizer.unknown_char not in t for t in texts)
    engine.boost_id = favourite  # the same bias on an ordinary character does show
    banned = request(n=2, length=30, banned_chars="龙")
    assert "龙" * 30 in list(service_for(engine).generate(request(n=2, length=30)))[-1].texts
    assert all("龙" not in t for t in list(service_for(engine).generate(banned))[-1].texts)


def test_cancel_takes_effect_within_one_step(tiny_engine, service_for):
    engine = WatchedEngine(tiny_engine, delay=0.02)
    chunks, finished = [], []
    service = service_for(engine)

    def on_event(event):
        (chunks if isinstance(event, Chunk) else finished).append(event)

    job = service.submit(request(n=2, length=500), on_event)
    assert wait_until(lambda: len(chunks) >= 10)
    calls_at_cancel = len(engine.calls)
    job.cancel()
    assert job.wait(5)
    assert len(engine.calls) - calls_at_cancel <= 1
    final = finished[-1]
    assert isinstance(final, Finished) and final.cancelled and max(len(t) for t in final.texts) < 500


def test_a_new_request_cancels_the_running_one(tiny_engine, service_for):
    engine = WatchedEngine(tiny_engine, delay=0.01)
    service = service_for(engine)
    first_events, second_events = [], []
    first = service.submit(request(n=1, length=1000), first_events.append)
    assert wait_until(lambda: len(first_events) > 3)
    second = service.submit(request(n=1, length=5), second_events.append)
    assert first.wait(5) and second.wait(5)
    assert first_events[-1].cancelled
    assert isinstance(second_events[-1], Finished) and not second_events[-1].cancelled


def test_one_character_appended_reads_only_that_character(tiny_engine, service_for):
    engine = WatchedEngine(tiny_engine)
    service = service_for(engine)
    first = prompt_tokens(service, request(n=1, length=3))
    assert first == len(TextPrep().prepare(MANUSCRIPT))  # all of it, leading '\n' included
    before = engine.tokens_processed
    assert prompt_tokens(service, request(text=MANUSCRIPT + "天", n=1, length=3)) == 1
    assert engine.calls[-3] == 1  # the prompt call read one token
    assert prompt_tokens(service, request(text=MANUSCRIPT + "天", n=1, length=3)) == 0
    assert engine.tokens_processed - before == 1 + 2 + 0 + 2  # 1 prompt token, 2 decode steps each


def test_the_cached_answer_equals_reading_from_scratch(tiny_engine, service_for):
    settings = SamplingSettings(seed=9)
    warm = service_for(tiny_engine)
    list(warm.generate(request(n=1, length=2)))
    cached = list(warm.generate(request(text=MANUSCRIPT + "天下", n=2, length=20, sampling=settings)))[-1]
    fresh = list(service_for(tiny_engine).generate(request(text=MANUSCRIPT + "天下", n=2, length=20, sampling=settings)))[-1]
    assert cached.texts == fresh.texts


def test_an_edit_in_the_middle_rereads_from_the_last_checkpoint_before_it(tiny_engine, service_for):
    long_text = MANUSCRIPT * 3  # ~ 600 prepared characters: checkpoints at 256 and 512
    service = service_for(tiny_engine, context_chars=4096)
    total = prompt_tokens(service, request(text=long_text, n=1, length=1))
    edited = long_text[:-40] + "雨" + long_text[-39:]
    reread = prompt_tokens(service, request(text=edited, n=1, length=1))
    assert total > 512 and reread == total - 512  # from the checkpoint at 512, the last before the edit


def test_a_long_manuscript_reads_a_window_that_stays_put_while_the_author_writes(tiny_engine, service_for):
    # the prompt cache alone: no states along candidates (in this periodic text the moved window is the
    # first prompt again, which the branch pool would still hold)
    service = service_for(tiny_engine, context_chars=100, branch_state_bytes=0)
    long_text = MANUSCRIPT * 10
    first = prompt_tokens(service, request(text=long_text, n=1, length=1))
    assert 100 <= first <= 201  # between context_chars and twice that (and the leading '\n')
    grown = long_text
    for addition in ("山", "中", "有", "虎"):
        grown += addition
        assert prompt_tokens(service, request(text=grown, n=1, length=1)) == 1
    much_longer = grown + MANUSCRIPT * 2  # the window moved on: a new start, read once
    assert 100 <= prompt_tokens(service, request(text=much_longer, n=1, length=1)) <= 201


def test_errors_arrive_as_events_and_the_service_goes_on(tiny_engine, service_for):
    engine = WatchedEngine(tiny_engine, fail=True)
    service = service_for(engine)
    events = list(service.generate(request(n=2, length=5)))
    assert isinstance(events[-1], Failed) and "the device went away" in events[-1].message
    engine.fail = False
    assert isinstance(list(service.generate(request(n=2, length=5)))[-1], Finished)


def test_an_empty_manuscript_still_gets_candidates(tiny_engine, service_for):
    final = list(service_for(tiny_engine).generate(request(text="", n=2, length=10)))[-1]
    assert [len(t) for t in final.texts] == [10, 10]


def test_warm_fills_the_cache_without_candidates(tiny_engine, service_for):
    service = service_for(tiny_engine)
    assert service.warm(MANUSCRIPT).wait(10)
    assert prompt_tokens(service, request(n=1, length=2)) == 0
