"""A server's logprobs as a ChoiceLog: tokens that spell the chunk, byte tokens that do not, a chunk cut at the length."""

import math

import pytest

from ai_writer.backends.remote.choices import RemoteChoiceLog
from ai_writer.studio.choice_map import ChoiceMap


def test_tokens_that_spell_the_chunk_are_one_step_each():
    log = RemoteChoiceLog(rows=2, max_steps=4, k=3)
    log.add(1, "山里", ["山", "里"], [-0.1, -2.0], [{"山": -0.1, "水": -2.5}, {"里": -2.0, "中": -0.5, "上": -3.0, "下": -4}])
    assert (log.steps(0), log.steps(1), log.text(1)) == (0, 2, "山里")
    first, second = log.choice(1, 0), log.choice(1, 1)
    assert (first.text, first.char_start, second.text, second.char_start) == ("山", 0, "里", 1)
    assert first.p == first.p_raw == pytest.approx(math.exp(-0.1), rel=1e-3)
    assert [a.text for a in first.alternatives] == ["山", "水"]  # only what the server gave: no padding
    assert [a.text for a in second.alternatives] == ["中", "里", "上"]  # most likely first, k of them
    assert log.probabilities(1) == pytest.approx([math.exp(-0.1), math.exp(-2.0)], rel=1e-3)


def test_byte_tokens_give_their_text_to_the_last_and_a_cut_drops_the_rest():
    log = RemoteChoiceLog(rows=1, max_steps=2, k=2)
    log.add(0, "庙", ["bytes:\\xe5\\xba", "bytes:\\x99"], [-1.0, -0.01], [None, None])
    assert log.steps(0) == 2 and [log.choice(0, s).text for s in range(2)] == ["", "庙"]
    assert log.step_at_char(0, 0) == 1
    log.add(0, "老和尚", ["老", "和", "尚"], [-1, -1, -1], [{}, {}, {}], cut=2)  # the candidate's length came
    assert log.text(0) == "庙老和" and log.steps(0) == 4
    for step in range(5):  # capacity grows past max_steps
        log.add(0, "。", ["。"], [0.0], [{"。": 0.0}])
    assert log.text(0) == "庙老和" + "。" * 5 and log.choice(0, 8).p == 1.0


def test_the_studios_choice_map_reads_it_as_a_local_log():
    class Job:
        choices = RemoteChoiceLog(rows=1, max_steps=3, k=2)

    Job.choices.add(0, "从前", ["从", "前"], [-0.2, -0.3], [{"从": -0.2, "很": -1.8}, {"前": -0.3}])
    found = ChoiceMap.of_job(Job, 0).choice_at(1)
    assert found[0] == 1 and found[1].text == "前"
    assert ChoiceMap.of_job(Job, 0).probabilities(3)[2] is None
