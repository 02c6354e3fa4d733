"""The surprise scan on a real (tiny, random) RWKV-7: its bits are eval's and -log2 softmax of engine.forward,
its positions are the manuscript's (indents, CRLF, empty lines), its spans follow the documented rule, a
typo stands out under the bundled model; cancelling and progress through GenerationService.submit_task."""

from __future__ import annotations

import itertools
import queue
import random
import threading
from dataclasses import replace

import numpy as np
import pytest

from ai_writer.backends.writing.evaluation import _per_char, char_bits, scored_text, text_bits
from ai_writer.backends.writing.generation import Failed, Finished, GenerationRequest, GenerationService
from ai_writer.backends.writing.scan import (
    AROUND, MERGE_GAP, SURPRISE_FLOOR, SURPRISE_SD, ScanFinished, ScanProgress, scan_task, scan_text,
)
from ai_writer.backends.writing.text_positions import prepare_with_positions
from ai_writer.models.textprep import TextPrep
from tests.helpers import FIXTURES, REPO

MANUSCRIPT = ("　　第一章　山雨欲来\r\n\r\n　　他走进了房间，四下看了看。  \r\n\n"
              "　　“你来了。”她说。\n　　\n窗外下着雨。\n\n")
BUNDLED = REPO / "models" / "bundled" / "zh-novel-rwkv7.safetensors"


def softmax_bits(engine, text: str) -> np.ndarray:
    """-log2 p of each id after the first, from one forward over the whole text (no pieces, no state carried)."""
    ids = engine.tokenizer.encode(text)
    logits, _ = engine.forward([ids[:-1]], None, full_output=True)
    logits = np.asarray(logits[0], dtype=np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return -np.log2(probs[np.arange(len(ids) - 1), ids[1:]])


# -- the bits ----------------------------------------------------------------------------


def test_overall_bits_are_evals(tiny_engine):
    scan = scan_text(tiny_engine, MANUSCRIPT)
    bits, chars = text_bits(tiny_engine, MANUSCRIPT)
    assert scan.chars == chars == len(scored_text(MANUSCRIPT)) - 1
    assert scan.bits == pytest.approx(bits, rel=1e-12)
    assert scan.bits_per_char == pytest.approx(bits / chars, rel=1e-12)


def test_each_characters_bits_are_minus_log2_softmax_of_forward(tiny_engine):
    scan = scan_text(tiny_engine, MANUSCRIPT, piece=5)  # pieces of 5 ids, the state carried between them
    expected = softmax_bits(tiny_engine, scored_text(MANUSCRIPT))
    assert np.isnan(scan.char_bits[0])  # the leading '\n' is read, not predicted
    np.testing.assert_allclose(scan.char_bits[1:], expected, rtol=1e-4, atol=1e-4)
    assert expected.std() > 0.05  # the comparison means something: the bits differ from character to character


def test_paragraph_bits_add_up_to_the_whole(tiny_engine):
    scan = scan_text(tiny_engine, MANUSCRIPT)
    assert sum(p.chars for p in scan.paragraphs) == scan.chars
    assert sum(p.bits for p in scan.paragraphs) == pytest.approx(scan.bits, rel=1e-9)


def test_a_character_outside_the_vocabulary_is_scored_as_eval_scores_it(tiny_engine):
    text = "他走进了\U0001F600房间。\n"  # an emoji: UNKNOWN_CHAR
    scan = scan_text(tiny_engine, text)
    assert (scan.bits, scan.chars) == pytest.approx(text_bits(tiny_engine, text))
    emoji = scored_text(text).index("\U0001F600")
    assert np.flatnonzero(np.isnan(scan.char_bits)).tolist() == [0]  # only the leading '\n' goes unscored
    assert scan.char_bits[emoji] > 0


def test_multi_character_ids_share_their_bits_and_split_characters_wait(tmp_path):
    from ai_writer.models.world_tokenizer import WorldTokenizer

    tokenizer = WorldTokenizer.default()
    text = "\nhello 他\U00020000。"  # 'hello' is one id; U+20000 is several byte ids
    ids = tokenizer.encode(text)
    assert len(ids) < len(text) + 3 and ids != [tokenizer.char_to_id.get(c) for c in text]
    id_bits = np.arange(1.0, len(ids))  # 1, 2, 3, ... for the ids after the first
    bits = _per_char(tokenizer, text, ids, id_bits)
    assert np.isnan(bits[0]) and not np.isnan(bits[1:]).any()
    assert bits[1:].sum() == pytest.approx(id_bits.sum())
    assert len(set(bits[1:6].tolist())) == 1  # the five letters of one id share its bits


# -- positions in the manuscript -----------------------------------------------------


@pytest.mark.parametrize("strip, drop, leading", list(itertools.product([True, False], repeat=3)))
def test_the_prepared_text_is_textpreps_and_each_character_maps_back(strip, drop, leading):
    rng = random.Random(f"{strip}{drop}{leading}")
    pieces = ["好", "a", "。", "\n", "\r\n", "\r", " ", "\u3000", "\t"]
    prep = TextPrep(strip, drop, leading)
    for _ in range(3000):
        source = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        prepared = prepare_with_positions(source, prep)
        assert prepared.text == replace(prep, leading_newline=True).prepare(source), repr(source)
        assert len(prepared.positions) == len(prepared.text) == len(prepared.lines)
        for char, position in zip(prepared.text[1:], prepared.positions[1:].tolist()):
            if char == "\n":  # the line break it stands for (or the end, for one TextPrep adds)
                assert position == len(source) or source[position] in "\r\n", repr(source)
            else:
                assert source[position] == char, repr(source)


def test_paragraphs_carry_their_manuscript_lines_and_spans(tiny_engine):
    scan = scan_text(tiny_engine, MANUSCRIPT)
    lines = MANUSCRIPT.replace("\r\n", "\n").split("\n")
    assert [p.line for p in scan.paragraphs] == [1, 3, 5, 7]
    for paragraph in scan.paragraphs:
        assert MANUSCRIPT[paragraph.start:paragraph.end] == lines[paragraph.line - 1].strip(" \u3000")
    assert [p.chars for p in scan.paragraphs] == [len("第一章　山雨欲来") + 1, len("他走进了房间，四下看了看。") + 1,
                                                 len("“你来了。”她说。") + 1, len("窗外下着雨。") + 1]


def test_every_scored_character_maps_to_its_manuscript_character(tiny_engine):
    scan = scan_text(tiny_engine, MANUSCRIPT)
    scored = scored_text(MANUSCRIPT)
    for index, char in enumerate(scored[1:], start=1):
        found = MANUSCRIPT[scan.positions[index]]
        assert found == char or (char == "\n" and found == "\r"), index


# -- surprising spans ------------------------------------------------------------------


def test_spans_follow_the_documented_rule(tiny_engine):
    text = "　　" + "他走进了房间，四下看了看，窗外下着雨，远处传来钟声。" * 6 + "\n\n　　她抬起头。\n"
    scan = scan_text(tiny_engine, text, top=1000)
    bits = scan.char_bits
    scored = bits[~np.isnan(bits)]
    assert scan.threshold == pytest.approx(max(SURPRISE_FLOOR, scored.mean() + SURPRISE_SD * scored.std()))
    hot = set(np.flatnonzero(np.nan_to_num(bits) > scan.threshold).tolist())
    assert hot, "the random model gives some characters more than the threshold"
    covered = set()
    for span in scan.spans:
        assert text[span.start:span.end] == span.text
        # a few characters of its line either side
        assert text[span.start - len(span.before):span.end + len(span.after)] == span.before + span.text + span.after
        assert len(span.before) == min(AROUND, span.start - (text.rfind("\n", 0, span.start) + 1))
        assert "\n" not in span.before + span.after and len(span.after) <= AROUND
        assert span.peak > scan.threshold
        inside = np.flatnonzero((scan.positions >= span.start) & (scan.positions < span.end)).tolist()
        assert span.bits == pytest.approx(np.nansum(bits[inside]))
        assert span.chars == len(inside)
        covered |= set(inside)
        gaps = [b - a - 1 for a, b in zip(sorted(hot & set(inside)), sorted(hot & set(inside))[1:])]
        assert all(g <= MERGE_GAP for g in gaps)
    assert hot <= covered
    assert [s.bits for s in scan.spans] == sorted((s.bits for s in scan.spans), reverse=True)
    assert len(scan_text(tiny_engine, text, top=2).spans) == min(2, len(scan.spans))


@pytest.mark.skipif(not BUNDLED.is_file(), reason="the bundled model is not in this checkout")
def test_a_typo_is_among_the_most_surprising_spans_under_the_bundled_model():
    from ai_writer.backends import load

    engine = load(BUNDLED, backend="torch", device="cpu")
    text = (FIXTURES / "hongloumeng-heldout-3000.txt").read_text(encoding="utf-8")[:500]
    clean = scan_text(engine, text)
    # the best-predicted character of the passage gets a character the model finds very unlikely there
    scored = clean.char_bits.copy()
    scored[np.isnan(scored)] = np.inf
    scored[[i for i, c in enumerate(scored_text(text)) if not c.strip() or not "\u4e00" <= c <= "\u9fff"]] = np.inf
    where = int(clean.positions[int(np.argmin(scored))])
    typo = text[:where] + "氽" + text[where + 1:]
    spans = scan_text(engine, typo).spans
    assert any(s.start <= where < s.end for s in spans[:3]), (where, spans[:3])
    assert not any(s.start <= where < s.end for s in clean.spans)


# -- loops -------------------------------------------------------------------------------


def test_a_repeated_sentence_is_a_loop_at_its_manuscript_positions(tiny_engine):
    sentence = "他深深地吸了一口气。"
    text = f"　　{sentence}窗外下着雨。\n\n　　她说：“走吧。”{sentence}\n　　{sentence}远处传来钟声。\n"
    loops = scan_text(tiny_engine, text).loops
    assert [(o.kind, o.text, o.count) for o in loops] == [("sentence", sentence, 3)]
    starts = [i for i in range(len(text)) if text.startswith(sentence, i)]
    assert list(loops[0].starts) == starts
    assert [text[s:e] for s, e in zip(loops[0].starts, loops[0].ends)] == [sentence] * 3
    assert list(loops[0].lines) == [1, 3, 4]
    assert scan_text(tiny_engine, text.replace(sentence, "他吸了一口气。", 1)).loops == ()


# -- on the service's thread -----------------------------------------------------------


def collect(service: GenerationService, task, on_first_progress=None):
    events: queue.Queue = queue.Queue()
    holder = {}

    def on_event(event) -> None:
        if isinstance(event, ScanProgress) and on_first_progress is not None and not holder.get("seen"):
            holder["seen"] = True
            on_first_progress(holder["job"])
        events.put(event)

    holder["job"] = service.submit_task(task, on_event)
    assert holder["job"].wait(60)
    found = []
    while not events.empty():
        found.append(events.get())
    return holder["job"], found


def long_text() -> str:
    return "　　他走进了房间，四下看了看。窗外下着雨。\n" * 150  # 3,000 characters: 3 pieces of 1024


def test_progress_events_then_the_scan(tiny_engine):
    service = GenerationService(tiny_engine)
    try:
        job, events = collect(service, scan_task(long_text()))
    finally:
        service.close()
    progress = [e for e in events if isinstance(e, ScanProgress)]
    total = len(scored_text(long_text())) - 1
    pieces = [*range(1024, total, 1024), total]  # one event after each piece of 1024 ids
    assert len(pieces) >= 3
    assert [e.total_chars for e in progress] == [total] * len(pieces)
    assert [e.done_chars for e in progress] == pieces
    assert all(e.request_id == job.id for e in events)
    assert isinstance(events[-1], ScanFinished) and events[-1].scan.chars == total


def test_cancelling_stops_the_scan_after_the_piece_being_read(tiny_engine):
    service = GenerationService(tiny_engine)
    try:
        job, events = collect(service, scan_task(long_text()), on_first_progress=lambda job: job.cancel())
    finally:
        service.close()
    assert [type(e) for e in events] == [ScanProgress, ScanFinished]
    assert events[-1].scan is None
    assert scan_text(tiny_engine, long_text(), should_stop=lambda: True) is None


def test_a_task_runs_on_the_worker_thread_and_cancels_the_job_before_it(fake_engine):
    service = GenerationService(fake_engine)
    threads, events = [], queue.Queue()
    try:
        before = service.submit(GenerationRequest("他走进了房间。" * 50, n=2, length=5000), events.put)
        job = service.submit_task(lambda engine, job: threads.append((threading.current_thread(), engine)),
                                  events.put)
        assert job.wait(10) and before.wait(10)
    finally:
        service.close()
    assert before.is_cancelled
    assert threads == [(service._thread, fake_engine)]


def test_a_failing_task_is_a_failed_event_and_one_cancelled_first_never_runs(fake_engine):
    service = GenerationService(fake_engine)
    events: queue.Queue = queue.Queue()
    ran, gate = [], threading.Event()
    try:
        failing = service.submit_task(lambda engine, job: 1 / 0, events.put)
        assert failing.wait(10)
        service.submit_task(lambda engine, job: gate.wait(10), events.put)  # holds the worker
        skipped = service.submit_task(lambda engine, job: ran.append(job), events.put)
        skipped.cancel()
        gate.set()
        assert skipped.wait(10)
    finally:
        service.close()
    got = [events.get() for _ in range(events.qsize())]
    assert Failed(failing.id, "ZeroDivisionError: division by zero") in got
    assert Finished(skipped.id, (), True, 0.0) in got
    assert ran == []
