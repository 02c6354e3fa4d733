"""AI-Writer's special sampling and the extra controls."""

import math

import numpy as np
import pytest

from ai_writer.backends.writing.sampling import Sampler, SamplingSettings, cut_top_p, filter_probs

PROBS = np.array([0.05, 0.5, 0.15, 0.3])


def logits_for(probs):
    return np.log(np.asarray(probs, dtype=np.float64))[None, :]


def test_top_p_keeps_the_token_that_crosses_it():
    kept = cut_top_p(PROBS, 0.75)  # 0.5 + 0.3 passes 0.75 at the 0.3 token
    assert list(np.nonzero(kept)[0]) == [1, 3]
    assert list(np.nonzero(cut_top_p(PROBS, 0.81))[0]) == [1, 2, 3]
    assert list(np.nonzero(cut_top_p(PROBS, 0.4))[0]) == [1]


def test_top_p_keeps_ties_with_the_crossing_token():
    kept = cut_top_p(np.array([0.4, 0.2, 0.2, 0.2]), 0.5)
    assert np.count_nonzero(kept) == 4


def whole_row_cut(probs, top_p):
    """The top_p cut by its definition: the whole row sorted, the running sum from the largest down."""
    ordered = np.sort(probs)[::-1]
    cumulative = np.cumsum(ordered)
    cutoff = ordered[min(int(np.searchsorted(cumulative, top_p, side="right")), len(ordered) - 1)]
    return np.where(probs >= cutoff, probs, 0.0)


def test_top_p_sorting_only_the_likely_tokens_cuts_where_the_whole_row_would():
    rng = np.random.default_rng(5)
    rows = []
    for scale in (0.2, 1.0, 3.0, 6.0):  # flat (a random model's) to peaked (a trained model's)
        logits = rng.standard_normal((40, 8849)) * scale
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        rows += list(probs / probs.sum(axis=1, keepdims=True))
    tied = np.full(1000, 0.25 / 990)  # many tokens at one value beside the mean, four likely ones
    tied[:4] = [0.4, 0.2, 0.1, 0.05]
    banned = rows[-1].copy()
    banned[:100] = 0.0
    rows += [tied / tied.sum(), banned / banned.sum(), np.full(64, 1 / 64)]
    fast = 0
    for probs in rows:
        for top_p in (0.05, 0.5, 0.75, 0.9, 0.999):
            assert np.array_equal(cut_top_p(probs, top_p), whole_row_cut(probs, top_p))
            fast += probs[probs >= 1 / len(probs)].sum() > top_p  # cut among the likely tokens alone
    assert 0 < fast < len(rows) * 5  # both ways of cutting were taken


def test_top_p_of_one_cuts_nothing_and_is_not_greedy():
    assert np.array_equal(cut_top_p(PROBS, 1.0), PROBS)
    sampler = Sampler(SamplingSettings(top_p=1.0, seed=3), batch=1, vocab_size=4)
    seen = {int(sampler.sample(logits_for(PROBS), [None])[0]) for _ in range(200)}
    assert seen == {0, 1, 2, 3}


def test_top_p_newline_applies_only_right_after_a_newline():
    newline = 0
    settings = SamplingSettings(top_p=0.4, top_p_newline=1.0)
    sampler = Sampler(settings, batch=2, vocab_size=4, newline_id=newline)
    weights = sampler.probabilities(np.vstack([logits_for(PROBS)] * 2), [newline, 2])
    assert np.count_nonzero(weights[0]) == 4  # after '\n': top_p_newline = 1.0
    assert np.count_nonzero(weights[1]) == 1  # otherwise: top_p = 0.4


def test_banned_tokens_are_never_sampled_even_when_most_likely():
    sampler = Sampler(SamplingSettings(top_p=1.0, seed=1), batch=3, vocab_size=4, banned_ids=[1])
    logits = np.vstack([logits_for([0.01, 0.97, 0.01, 0.01])] * 3)
    drawn = np.concatenate([sampler.sample(logits, [None] * 3) for _ in range(300)])
    assert 1 not in drawn
    assert set(drawn) == {0, 2, 3}


def test_same_seed_same_tokens_and_each_candidate_has_its_own_generator():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 50)) * 2

    def run(seed, batch):
        sampler = Sampler(SamplingSettings(top_p=0.95, seed=seed), batch=batch, vocab_size=50)
        return np.stack([sampler.sample(logits[:batch], [None] * batch) for _ in range(30)], axis=1)

    assert np.array_equal(run(11, 4), run(11, 4))
    assert not np.array_equal(run(11, 4), run(12, 4))
    assert np.array_equal(run(11, 2), run(11, 4)[:2])  # candidate i depends on (seed, i) only
    assert not np.array_equal(run(11, 4)[0], run(11, 4)[1])


def entropy(weights):
    w = weights[weights > 0]
    return float(-(w * np.log(w)).sum())


def test_temperature_widens_or_narrows_the_spread():
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    spreads = [entropy(filter_probs(probs, 1.0, SamplingSettings(temperature=t))) for t in (0.5, 1.0, 2.0)]
    assert spreads[0] < spreads[1] < spreads[2]
    assert np.allclose(filter_probs(probs, 1.0, SamplingSettings(temperature=1.0)), probs)
    hot = filter_probs(probs, 1.0, SamplingSettings(temperature=2.0))
    assert np.allclose(hot, np.sqrt(probs) / np.sqrt(probs).sum())


def test_temperature_zero_is_greedy():
    sampler = Sampler(SamplingSettings(temperature=0.0, top_p=1.0), batch=1, vocab_size=4)
    assert {int(sampler.sample(logits_for(PROBS), [None])[0]) for _ in range(20)} == {1}


def test_samples_follow_the_weights():
    sampler = Sampler(SamplingSettings(top_p=1.0, seed=5), batch=1, vocab_size=4)
    drawn = np.array([sampler.sample(logits_for(PROBS), [None])[0] for _ in range(4000)])
    freq = np.bincount(drawn, minlength=4) / len(drawn)
    assert np.abs(freq - PROBS).max() < 0.03


def test_top_k_and_min_p():
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    assert np.count_nonzero(filter_probs(probs, 1.0, SamplingSettings(top_k=2))) == 2
    assert np.count_nonzero(filter_probs(probs, 1.0, SamplingSettings(min_p=0.5))) == 3  # p >= 0.2
    assert np.count_nonzero(filter_probs(probs, 1.0, SamplingSettings(min_p=0.6))) == 2  # p >= 0.24


def test_penalties_lower_written_tokens_and_fade():
    settings = SamplingSettings(top_p=1.0, temperature=0.0, presence_penalty=0.5, frequency_penalty=0.25,
                                penalty_decay=0.5)
    sampler = Sampler(settings, batch=1, vocab_size=3, penalty_exempt_ids=[2])
    flat = np.zeros((1, 3))
    first = int(sampler.sample(flat + [[1.0, 0, 0]], [None])[0])
    assert first == 0
    after = sampler.probabilities(flat, [None])  # greedy: the unpenalised tokens tie for the top
    weights = Sampler(SamplingSettings(top_p=1.0), 1, 3).probabilities(flat, [None])
    sampler.settings = SamplingSettings(top_p=1.0, presence_penalty=0.5, frequency_penalty=0.25, penalty_decay=0.5)
    soft = sampler.probabilities(flat, [None])[0]
    assert math.isclose(soft[0] / soft[1], math.exp(-(0.5 + 0.25 * 1.0)), rel_tol=1e-9)
    assert after[0, 0] == 0.0 and np.allclose(weights, 1 / 3)
    sampler.sample(flat + [[0, 0, 5.0]], [None])  # an exempt token: not counted
    assert sampler.counts[0, 2] == 0.0
    assert math.isclose(sampler.counts[0, 0], 0.5)  # faded by penalty_decay


def test_settings_report_values_out_of_range():
    assert SamplingSettings().problems() == []
    problems = SamplingSettings(top_p=1.5, temperature=-1).problems()
    assert any(p.startswith("top_p") for p in problems) and any(p.startswith("temperature") for p in problems)
