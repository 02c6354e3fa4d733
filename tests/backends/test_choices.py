"""What the model thought at each generated token (Job.choices) and the states kept along each candidate.

The probabilities are checked against the engine and the sampler run again by hand on the same prefix;
choosing an alternative is an ordinary request on the edited text, checked against a fresh service."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from ai_writer.backends.writing.branch_pool import BranchPool, state_nbytes
from ai_writer.backends.writing.choices import ChoiceLog, top_ids
from ai_writer.backends.writing.context import assemble
from ai_writer.backends.writing.generation import Chunk, Finished, GenerationRequest, Started
from ai_writer.backends.writing.prompt_cache import Checkpoint
from ai_writer.backends.writing.sampling import Sampler, SamplingSettings
from ai_writer.backends.writing.story import ContextBudgets, Story
from ai_writer.models.textprep import INDENT_CHARS, TextPrep

MANUSCRIPT = "　　第一章　天才少年\n\n　　那少年抬头望向远方，只见山峦起伏，云雾缭绕。" * 3
# penalties, a top_p cut and a temperature: p differs from p_raw, and some alternatives are cut
SETTINGS = SamplingSettings(temperature=0.7, top_p=0.5, top_k=5, presence_penalty=0.6, frequency_penalty=0.4, seed=11)


def run(service, request):
    """(Started, Finished, Job) of one request."""
    events: queue.Queue = queue.Queue()
    job = service.submit(request, events.put)
    started = None
    while True:
        event = events.get(timeout=60)
        if isinstance(event, Started):
            started = event
        if isinstance(event, Finished):
            return started, event, job


def prompt_ids(engine, text, prep=TextPrep()):
    return engine.tokenizer.encode(assemble(text, Story(), ContextBudgets(context_chars=1024), prep).text)


def softmax(logits):
    z = np.exp(logits - logits.max())
    return z / z.sum()


def test_p_raw_is_the_models_softmax_and_p_the_samplers_weights(tiny_engine, service_for):
    request = GenerationRequest(MANUSCRIPT, n=2, length=24, sampling=SETTINGS, alternatives=8)
    _, finished, job = run(service_for(tiny_engine), request)
    log, tokenizer = job.choices, tiny_engine.tokenizer
    assert log is not None and log.k == 8 and log.rows == 2
    # replay: the same prefix through the engine, the same choices through a sampler of the same settings
    newline = tokenizer.encode("\n")[0]
    sampler = Sampler(SETTINGS, batch=2, vocab_size=tiny_engine.info.vocab_size,
                      banned_ids=tokenizer.banned_ids, newline_id=newline)
    prompt = prompt_ids(tiny_engine, MANUSCRIPT)
    logits, state = tiny_engine.forward([prompt], None)
    logits, state = np.repeat(logits, 2, axis=0), tiny_engine.repeat_rows(state, 2)
    previous, cut, kept = [prompt[-1]] * 2, 0, 0
    for step in range(24):
        weights = sampler.probabilities(logits, previous)
        chosen = []
        for row in range(2):
            choice = log.choice(row, step)
            assert choice.char_start == step and choice.text == finished.texts[row][step]
            token = tokenizer.encode(choice.text)[0]
            chosen.append(token)
            raw = softmax(logits[row].astype(np.float64))
            assert choice.p_raw == pytest.approx(raw[token], rel=2e-3, abs=1e-6)
            assert choice.p == pytest.approx(weights[row, token], rel=2e-3, abs=1e-6)
            top = np.argsort(-raw)[:8]
            assert [a.text for a in choice.alternatives] == [tokenizer.decode([int(i)]) for i in top]
            for alternative, token_id in zip(choice.alternatives, top):
                assert alternative.p_raw == pytest.approx(raw[token_id], rel=2e-3, abs=1e-6)
                assert alternative.p == pytest.approx(weights[row, token_id], rel=2e-3, abs=1e-6)
                cut += weights[row, token_id] == 0.0
                kept += weights[row, token_id] > 0.0
        sampler.note(chosen)
        previous = chosen
        logits, state = tiny_engine.forward([[t] for t in chosen], state)
    assert cut and kept  # both sides of the cut were checked


def test_alternatives_are_sorted_and_hold_at_most_all_the_probability(tiny_engine, service_for):
    request = GenerationRequest(MANUSCRIPT, n=3, length=40, sampling=SETTINGS, alternatives=12)
    _, finished, job = run(service_for(tiny_engine), request)
    log = job.choices
    for row in range(3):
        assert log.steps(row) == 40
        assert "".join(log.choice(row, s).text for s in range(40)) == finished.texts[row] == log.text(row)
        assert len(log.probabilities(row)) == 40
        assert log.probabilities(row) == [log.choice(row, s).p for s in range(40)]
        assert log.step_at_char(row, 17) == 17 and log.step_at_char(row, 40) is None
        for step in range(40):
            choice = log.choice(row, step)
            raw = [a.p_raw for a in choice.alternatives]
            assert len(raw) == 12 and raw == sorted(raw, reverse=True)
            assert sum(raw) <= 1.0 + 12 * 1e-3 and sum(a.p for a in choice.alternatives) <= 1.0 + 12 * 1e-3
            if choice.p_raw > raw[-1]:  # among the top 12: listed
                assert choice.text in [a.text for a in choice.alternatives]
            assert 0.0 < choice.p <= 1.0  # a drawn token was never cut


def test_nothing_is_recorded_without_alternatives_or_candidates(tiny_engine, service_for):
    service = service_for(tiny_engine)
    _, finished, job = run(service, GenerationRequest(MANUSCRIPT, n=2, length=10, sampling=SETTINGS, alternatives=0))
    assert job.choices is None and job.branch_every == 0 and len(finished.texts[0]) == 10
    assert len(service.branches) == 0
    _, _, warm = run(service, GenerationRequest(MANUSCRIPT + "山", n=0, length=0))
    assert warm.choices is None


def test_each_chunk_finds_its_choice_recorded(tiny_engine, service_for):
    seen, ready, problems = [], threading.Event(), []
    holder = {}

    def on_event(event):
        ready.wait(10)
        if isinstance(event, Chunk):
            log = holder["job"].choices
            if log is None or log.step_at_char(event.index, len(log.text(event.index)) - 1) is None:
                problems.append(event)
            seen.append(event)

    job = service_for(tiny_engine).submit(GenerationRequest(MANUSCRIPT, n=2, length=15, sampling=SETTINGS), on_event)
    holder["job"] = job
    ready.set()
    assert job.wait(60)
    assert len(seen) == 30 and not problems


def test_the_log_of_nine_long_candidates_is_small():
    rows, steps, k, vocab = 9, 2000, 10, 2000
    log = ChoiceLog(rows, steps, k, decode=lambda i: chr(0x4E00 + i))
    before = log.nbytes
    generator = np.random.default_rng(0)
    logits = generator.normal(size=(rows, vocab)).astype(np.float32)
    weights = np.full((rows, vocab), 1.0 / vocab)
    for _ in range(steps):
        log.record(logits, weights, np.arange(rows), ["字"] * rows, range(rows))
    assert [log.steps(r) for r in range(rows)] == [steps] * rows
    assert log.nbytes - before == 4 * rows * steps  # only the text grew: the arrays were allocated once
    assert log.nbytes < 3 << 20


def test_steps_that_write_nothing_or_several_characters(tiny_engine):
    log = ChoiceLog(1, 2, 3, decode=lambda i: f"<{i}>")  # fewer steps allocated than written: it grows
    logits = np.array([[0.0, 1.0, 2.0, 3.0]], dtype=np.float32)
    weights = np.array([[0.0, 0.0, 0.25, 0.75]])
    for piece, token in (("a", 3), ("", 2), ("bc", 3), ("d", 2)):
        log.record(logits, weights, [token], [piece], [0])
    assert log.steps(0) == 4 and log.text(0) == "abcd"
    assert [log.step_at_char(0, c) for c in range(5)] == [0, 2, 2, 3, None]
    assert log.probabilities(0) == [0.75, 0.75, 0.75, 0.25]
    choice = log.choice(0, 2)
    assert (choice.text, choice.char_start, choice.p) == ("bc", 1, 0.75)
    assert [a.text for a in choice.alternatives] == ["<3>", "<2>", "<1>"]
    assert [a.p for a in choice.alternatives] == [0.75, 0.25, 0.0]
    assert choice.p_raw == pytest.approx(softmax(logits[0])[3], rel=1e-3)
    with pytest.raises(IndexError):
        log.choice(0, 4)


def plain_branch_point(log, row, manuscript, prep=TextPrep()):
    """A step of `row` whose candidate text before it reads back as the same ids (no indent, no line break)
    and one of its alternatives that does too: (step, char_start, alternative text)."""
    text = log.text(row)
    for step in range(20, log.steps(row) - 5):
        choice = log.choice(row, step)
        prefix = text[:choice.char_start]
        if any(c in INDENT_CHARS or c == "\n" for c in prefix):
            break
        others = [a.text for a in choice.alternatives if a.text != choice.text and a.text not in INDENT_CHARS + "\n"]
        if step % 16 not in (0, 15) and others:
            return step, choice.char_start, others[0]
    pytest.fail("no plain branch point in this candidate")


def test_choosing_an_alternative_rereads_at_most_branch_every_and_matches_a_fresh_service(tiny_engine, service_for):
    service = service_for(tiny_engine)
    _, finished, job = run(service, GenerationRequest(MANUSCRIPT, n=3, length=80, sampling=SETTINGS))
    every = job.branch_every
    assert every == 16  # a 256 MB budget and a tiny model: the closest spacing
    row = 1
    step, char_start, alternative = plain_branch_point(job.choices, row, MANUSCRIPT)
    edited = MANUSCRIPT + finished.texts[row][:char_start] + alternative
    branch = GenerationRequest(edited, n=1, length=30, sampling=SETTINGS)
    plan = service.plan(branch)
    started, chosen, _ = run(service, branch)
    assert started.prompt_tokens == step % every + 1 <= every  # from the state kept at the last multiple
    assert plan.tokens_to_read == started.prompt_tokens
    fresh_started, fresh, _ = run(service_for(tiny_engine), branch)
    assert fresh_started.prompt_tokens == len(prompt_ids(tiny_engine, edited))
    assert chosen.texts == fresh.texts and len(chosen.texts[0]) == 30
    # early in a candidate: from the prompt's own end, kept with the branch states
    early = MANUSCRIPT + finished.texts[0][:3] + job.choices.choice(0, 3).alternatives[1].text
    assert run(service, GenerationRequest(early, n=1, length=5, sampling=SETTINGS))[0].prompt_tokens == 4


def test_branch_states_stay_within_their_bytes_and_leave_prompt_checkpoints_alone(tiny_engine, service_for):
    entry = state_nbytes(tiny_engine.zero_state(1)) + 4 * tiny_engine.info.vocab_size
    service = service_for(tiny_engine, branch_state_bytes=7 * entry)
    long_text = MANUSCRIPT * 20  # several prompt checkpoints (boundaries, intervals, the end)
    run(service, GenerationRequest(long_text, n=0, length=0))
    prompt_keys = set(service.cache.entries)
    assert len(prompt_keys) >= 3
    _, _, first = run(service, GenerationRequest(long_text, n=3, length=48, sampling=SETTINGS))
    assert first.branch_every == 24  # (7 - 1) // 3 = 2 states a row fit: every 48 / 2 tokens
    assert len(service.branches) == 1 + 3  # the prompt's end, then step 24 of each row (48 is the last)
    first_keys = set(service.branches.entries)
    run(service, GenerationRequest(long_text + "山", n=3, length=48, sampling=SETTINGS))
    assert service.branches.nbytes <= 7 * entry and len(service.branches) == 7
    assert set(service.branches.entries) - first_keys == set(list(service.branches.entries)[-4:])  # the newest
    assert prompt_keys <= set(service.cache.entries)
    # many more states than the prompt cache counts: its checkpoints are still all there
    roomy = service_for(tiny_engine)
    run(roomy, GenerationRequest(long_text, n=0, length=0))
    prompt_keys = set(roomy.cache.entries)
    run(roomy, GenerationRequest(long_text, n=4, length=150, sampling=SETTINGS))
    assert len(roomy.branches) > roomy.cache.max_checkpoints and prompt_keys <= set(roomy.cache.entries)


def test_the_pool_evicts_the_least_recently_used_and_never_holds_more_than_its_bytes():
    pool = BranchPool(max_bytes=300)
    checkpoints = [Checkpoint(10 + i, f"k{i}", None, np.zeros(1)) for i in range(5)]
    for checkpoint in checkpoints[:3]:
        pool.add(checkpoint, 100)
    assert pool.use({11: "k1"}) is checkpoints[1]  # touched: the oldest is now k0, then k2
    pool.add(checkpoints[3], 100)
    assert list(pool.entries) == ["k2", "k1", "k3"] and pool.nbytes == 300
    pool.add(checkpoints[4], 250)
    assert list(pool.entries) == ["k4"] and pool.nbytes == 250
    pool.add(Checkpoint(99, "big", None, np.zeros(1)), 301)  # larger than the pool: not kept
    assert "big" not in pool.entries
    assert pool.longest({14: "k4", 13: "k3"}) is checkpoints[4]
    assert pool.longest({15: "k4"}) is None  # the key at another length is not that prefix


@pytest.mark.parametrize("vocab", [300, 1000, 8849, 65536])
def test_top_ids_are_those_of_a_full_sort(vocab):
    generator = np.random.default_rng(vocab)
    for k in (1, 10, 50):
        logits = generator.normal(size=(3, vocab)).astype(np.float32)
        logits[1, ::7] = -np.inf  # banned tokens
        logits[2, -5:] = 9.0  # the best ones all in the last (partial) block, tied
        assert (top_ids(logits, k) == np.argsort(-logits, axis=1, kind="stable")[:, :k]).all()
