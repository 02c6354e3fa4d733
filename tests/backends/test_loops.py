"""Repeated loops found from the text alone: sentences 3+ times, phrases back to back or 3+ times close together."""

from __future__ import annotations

import random

from ai_writer.backends.writing.loops import NEAR, PHRASE_MIN, find_loops, repeated_phrases
from tests.helpers import FIXTURES

PHRASE = "山间的小路弯弯曲曲地通向远方"  # 14 characters, no sentence end in it


def filler(length: int, seed: int = 0) -> str:
    """Text that repeats nothing: distinct hanzi in a random order, a stop now and then."""
    rng = random.Random(seed)
    chars = [chr(0x4E00 + i) for i in rng.sample(range(20000), length)]
    for i in range(7, length, 9):
        chars[i] = "，"
    return "".join(chars)


def test_ordinary_prose_has_no_loops():
    text = (FIXTURES / "hongloumeng-heldout-3000.txt").read_text(encoding="utf-8")
    assert find_loops(text) == []
    assert find_loops(filler(5000)) == []


def test_a_sentence_three_times_anywhere_is_found_with_every_copy():
    sentence = "他深深地吸了一口气。"
    text = sentence + filler(3000, 1) + "\n" + sentence + filler(3000, 2) + "。" + sentence
    loops = find_loops(text)
    assert [(r.kind, r.text, r.count) for r in loops] == [("sentence", sentence, 3)]
    assert [text[s:e] for s, e in loops[0].spans] == [sentence] * 3


def test_a_sentence_twice_or_a_short_one_is_not_a_loop():
    assert find_loops("他深深地吸了一口气。窗外下着雨。他深深地吸了一口气。") == []
    assert find_loops("“好的。”" * 5) == []  # two word characters: punctuation does not count


def test_spaces_do_not_make_sentences_differ_and_closing_quotes_stay_with_them():
    text = "“你终于来了，我等你很久了。”\n“你终于 来了，我等你很久了。”\n“你终于来了，我等你很久了。”"
    (loop,) = find_loops(text)
    assert loop.text == "“你终于来了，我等你很久了。”" and loop.count == 3
    assert [text[s:e] for s, e in loop.spans] == ["“你终于来了，我等你很久了。”", "“你终于 来了，我等你很久了。”",
                                                 "“你终于来了，我等你很久了。”"]


def test_a_phrase_back_to_back_is_found_once_with_its_copies():
    text = filler(200, 3) + PHRASE + PHRASE + filler(200, 4)
    (loop,) = find_loops(text)
    assert (loop.kind, loop.text, loop.count) == ("phrase", PHRASE, 2)
    assert [text[s:e] for s, e in loop.spans] == [PHRASE, PHRASE]


def test_a_phrase_three_times_close_together_is_found_and_far_apart_is_not():
    close = filler(300, 5) + PHRASE + filler(500, 6) + PHRASE + filler(500, 7) + PHRASE
    (loop,) = find_loops(close)
    assert loop.text == PHRASE and loop.count == 3
    far = PHRASE + filler(NEAR, 8) + PHRASE + filler(NEAR, 9) + PHRASE
    assert find_loops(far) == []
    twice = filler(300, 10) + PHRASE + filler(500, 11) + PHRASE  # twice, not back to back
    assert find_loops(twice) == []


def test_a_longer_loop_is_one_phrase_grown_to_all_it_repeats():
    unit = "他走了过去又走了回来然后坐下看着窗外的雨"  # 20 characters
    text = filler(100, 12) + unit * 4 + filler(100, 13)
    phrases = repeated_phrases(text)
    assert [(r.text, r.count) for r in phrases] == [(unit, 4)]
    assert phrases[0].spans[0][0] == 100


def test_a_phrase_shorter_than_the_minimum_is_not_a_loop():
    short = PHRASE[: PHRASE_MIN - 1]
    assert find_loops(filler(100, 14) + short * 2 + filler(100, 15)) == []


def test_a_repeated_sentence_is_not_reported_again_as_a_phrase():
    sentence = "他深深地吸了一口气然后慢慢地走出了房间。"
    loops = find_loops("".join(sentence + filler(100, seed) + "。" for seed in (16, 17, 18)))
    assert [(r.kind, r.text) for r in loops] == [("sentence", sentence)]
