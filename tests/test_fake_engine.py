"""The fake engine the studio's UI tests run on keeps the contract the generation service relies on."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest

from ai_writer.backends import LoadError
from ai_writer.backends import EngineError
from ai_writer.backends.writing.evaluation import text_bits
from ai_writer.backends.writing.generation import Chunk, Finished, GenerationRequest, GenerationService, Started
from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.models.textprep import TextPrep
from tests.fake_engine import FakeEngine, fake_loader, write_fake_model
from tests.studio.test_app import MANUSCRIPT

SNAPSHOT_MANUSCRIPT = (Path(__file__).resolve().parent / "fixtures" / "studio_snapshot_manuscript.txt").read_text(
    encoding="utf-8")


def run(service, text, n=3, length=30, seed=1):
    events = list(service.generate(GenerationRequest(text, n=n, length=length, sampling=SamplingSettings(seed=seed)),
                                   timeout=30))
    return events, events[-1]


def test_forward_shapes_state_rows_and_range_checks(fake_engine):
    engine = fake_engine
    vocab = engine.info.vocab_size
    ids = engine.tokenizer.encode("他抬头望向远方，")
    logits, state = engine.forward([ids, ids[::-1]])
    assert logits.shape == (2, vocab) and logits.dtype == np.float32
    assert not np.allclose(logits[0], logits[1])  # what was read decides what comes next
    before = engine.copy_state(state)
    step, after = engine.forward([[ids[0]], [ids[1]]], state)
    assert step.shape == (2, vocab)
    assert all(np.array_equal(a, b) for a, b in zip(state, before))  # the given state is not modified
    full, full_state = engine.forward([ids], None, full_output=True)
    assert full.shape == (1, len(ids), vocab)
    np.testing.assert_array_equal(full[0, -1], logits[0])
    # token by token reaches the same logits and state as the whole list at once
    state_1 = None
    for i in ids:
        one, state_1 = engine.forward([[i]], state_1)
    np.testing.assert_array_equal(one[0], logits[0])
    np.testing.assert_array_equal(state_1[0][:, 0], full_state[0][:, 0])
    forked = engine.repeat_rows(engine.take_rows(state, [0]), 3)
    again, _ = engine.forward([[ids[0]]] * 3, forked)
    assert np.array_equal(again[0], again[2])
    with pytest.raises(EngineError):
        engine.forward([[vocab]])
    with pytest.raises(EngineError):
        engine.forward([[1], [2]], engine.zero_state(3))


def test_the_vocabulary_holds_the_tests_manuscripts():
    tokenizer = FakeEngine().tokenizer
    for text in (MANUSCRIPT, SNAPSHOT_MANUSCRIPT):
        assert tokenizer.unknown_id not in tokenizer.encode(text)
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.encode("abc") == [tokenizer.unknown_id] * 3  # what it does not know is UNKNOWN_CHAR
    assert tokenizer.unknown_id in tokenizer.banned_ids


def test_the_service_writes_n_different_candidates_the_seed_reproduces(fake_engine):
    service = GenerationService(fake_engine)
    try:
        events, first = run(service, SNAPSHOT_MANUSCRIPT, n=3, length=40, seed=7)
        assert isinstance(first, Finished) and not first.cancelled
        assert len(first.texts) == 3 and all(len(t) == 40 for t in first.texts)
        assert len(set(first.texts)) == 3
        for index, text in enumerate(first.texts):
            assert "".join(e.text for e in events if isinstance(e, Chunk) and e.index == index) == text
        _, again = run(GenerationService(FakeEngine()), SNAPSHOT_MANUSCRIPT, n=3, length=40, seed=7)
        assert again.texts == first.texts  # another engine, same seed: the same candidates
        _, other = run(service, SNAPSHOT_MANUSCRIPT, n=3, length=40, seed=8)
        assert set(other.texts).isdisjoint(first.texts)
        assert "，" in "".join(first.texts + other.texts)  # commas and stops, for the wrapping rules
    finally:
        service.close()


def test_the_prompt_cache_reads_only_what_was_added(fake_engine):
    service = GenerationService(fake_engine)
    try:
        events, _ = run(service, MANUSCRIPT, n=1, length=5)
        started = [e for e in events if isinstance(e, Started)]
        assert len(started) == 1 and started[0].prompt_tokens > 10
        events, warm = run(service, MANUSCRIPT + "他笑了。", n=1, length=5)
        started = [e for e in events if isinstance(e, Started)]
        assert len(started) == 1 and started[0].prompt_tokens == 4
        _, cold = run(GenerationService(FakeEngine()), MANUSCRIPT + "他笑了。", n=1, length=5)
        assert warm.texts == cold.texts  # a state from the cache continues as reading it all again does
    finally:
        service.close()


def test_cancelling_stops_within_a_step_of_a_slow_engine():
    service = GenerationService(FakeEngine(delay=0.01))
    try:
        chunks = []
        first_chunk = threading.Event()

        def on_event(event):
            chunks.append(event)
            if isinstance(event, Chunk):
                first_chunk.set()

        job = service.submit(GenerationRequest(MANUSCRIPT, n=2, length=5000), on_event)
        assert first_chunk.wait(10)
        started = time.monotonic()
        job.cancel()
        assert job.wait(5) and time.monotonic() - started < 1.0
        final = chunks[-1]
        assert isinstance(final, Finished) and final.cancelled and all(len(t) < 5000 for t in final.texts)
    finally:
        service.close()


def test_full_output_serves_the_evaluation_too(fake_engine):
    whole, count = text_bits(fake_engine, SNAPSHOT_MANUSCRIPT, TextPrep())
    pieces, same_count = text_bits(fake_engine, SNAPSHOT_MANUSCRIPT, TextPrep(), piece=7)  # states carried on
    assert count == same_count > 200 and whole > 0
    assert pieces == pytest.approx(whole, rel=1e-6)


def test_the_loader_names_a_missing_file_and_the_engine_after_its_path(tmp_path):
    loader = fake_loader()
    with pytest.raises(LoadError, match="nope.model: no such model file"):
        loader(SimpleNamespace(path=str(tmp_path / "nope.model")))
    engine = loader(SimpleNamespace(path=str(write_fake_model(tmp_path))))
    assert (engine.info.architecture, engine.info.backend, engine.info.device) == ("fake", "fake", "cpu")
    assert engine.info.model_path == str(tmp_path / "fake.model")
