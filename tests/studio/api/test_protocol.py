"""Request checking (one clear message per bad field, OpenAI's error shape) and the response shapes."""

import math

import pytest

from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.studio.api.protocol import SMALLEST_P, ApiError, logprob, parse_completion

DEFAULTS = SamplingSettings(temperature=0.8, top_p=0.6)


def parse(**body):
    return parse_completion({"model": "tiny", "prompt": "山", **body}, DEFAULTS, "tiny")


def refused(**body) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse(**body)
    return caught.value


def test_defaults_come_from_the_config_and_openai():
    params = parse()
    assert (params.prompt, params.max_tokens, params.n, params.stop, params.stream, params.logprobs) == (
        "山", 16, 1, (), False, None)
    assert params.sampling == DEFAULTS


def test_fields_and_extras_override():
    params = parse(prompt=["水"], max_tokens=5, n=3, stop="。", seed=4, temperature=0, top_k=7, min_p=0.2,
                   top_p_newline=0.5, penalty_decay=0.9, presence_penalty=-1, frequency_penalty=0.5, logprobs=2)
    assert (params.prompt, params.max_tokens, params.n, params.stop, params.logprobs) == ("水", 5, 3, ("。",), 2)
    s = params.sampling
    assert (s.seed, s.temperature, s.top_k, s.min_p, s.top_p_newline, s.penalty_decay, s.presence_penalty,
            s.frequency_penalty, s.top_p) == (4, 0, 7, 0.2, 0.5, 0.9, -1, 0.5, 0.6)


@pytest.mark.parametrize("field, value, words", [
    ("temperature", 9, "outside 0.0..5.0"), ("top_p", "high", "must be a number"), ("top_k", 1.5, "whole number"),
    ("max_tokens", 0, "outside 1..4096"), ("n", 17, "outside 1..16"), ("stop", ["a"] * 33, "at most 32"),
    ("stop", [""], "must not be empty"), ("stop", 3, "string or a list"), ("seed", -1, "outside"),
    ("prompt", [1, 2], "token ids"), ("prompt", ["a", "b"], "one prompt per request"), ("stream", "yes", "true or false"),
    ("echo", True, "not supported"), ("best_of", 3, "not supported"), ("logprobs", 21, "outside 0..20"),
    ("temperature", float("nan"), "must be a number"), ("stream_options", 1, "must be an object"),
])
def test_each_bad_field_is_named(field, value, words):
    error = refused(**{field: value})
    assert error.status == 400 and error.param == field and words in error.message
    assert set(error.body()["error"]) == {"message", "type", "param", "code"}


def test_an_unknown_model_is_404_and_other_servers_fields_are_ignored_by_name():
    error = refused(model="gpt-4")
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")
    params = parse(rep_pen=1.1, typical_p=0.9, stream=True, stream_options={"include_usage": True})
    assert params.ignored == ("rep_pen", "typical_p") and params.include_usage and params.sampling == DEFAULTS
    with pytest.raises(ApiError):
        parse_completion(["not", "an", "object"], DEFAULTS, "tiny")


def test_logprob_reads_a_zero_as_the_smallest_float16():
    assert logprob(0.5) == pytest.approx(math.log(0.5))
    assert logprob(0.0) == math.log(SMALLEST_P)
