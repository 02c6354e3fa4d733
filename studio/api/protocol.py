"""The OpenAI completions protocol, pure: a request body checked into CompletionParams, and the response shapes.

    params = parse_completion(body, defaults=config.sampling.settings, model_id="tiny")  # raises ApiError
    completion_body(...), chunk_body(...), models_body(...), error_body(...)

Every problem a client can cause is an ApiError: an HTTP status and OpenAI's error shape
{"error": {"message", "type", "param", "code"}}, with a message naming the field. Fields this
server does not know are ignored (front ends send other servers' settings) and listed in
CompletionParams.ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ai_writer.backends.writing.sampling import SAMPLING_LIMITS, SamplingSettings

MAX_N = 16  # candidates per request (they decode as one batch)
MAX_TOKENS = 4096  # tokens per candidate
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
MAX_STOPS = 32  # stop strings (OpenAI allows 4; front ends such as SillyTavern send more)
MAX_LOGPROBS = 20  # top alternatives per token
SMALLEST_P = 2.0 ** -24  # float16's smallest positive value: a p_raw recorded as 0 reads as this
EXTRAS = ("top_p_newline", "top_k", "min_p", "penalty_decay")  # AI-Writer's sampling settings beyond OpenAI's
SAMPLING_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty") + EXTRAS
KNOWN = {"model", "prompt", "max_tokens", "n", "stop", "seed", "stream", "logprobs", "echo", "user",
         "best_of", "suffix", "logit_bias", "stream_options", *SAMPLING_FIELDS}


class ApiError(Exception):
    """A request the server refuses: status, and the fields of OpenAI's error object."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return error_body(self.message, self.kind, self.param, self.code)


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass(frozen=True)
class CompletionParams:
    prompt: str
    max_tokens: int
    n: int
    stop: tuple[str, ...]
    stream: bool
    logprobs: int | None  # how many top alternatives per token, or None for no logprobs
    sampling: SamplingSettings
    include_usage: bool = False  # stream_options.include_usage: a last chunk with the usage
    ignored: tuple[str, ...] = ()  # fields other servers know (rep_pen, typical_p, ...): ignored, named in a header


def parse_completion(body, defaults: SamplingSettings, model_id: str) -> CompletionParams:
    """The checked request; fields left out take `defaults` (the configured sampling) and OpenAI's defaults."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if model is not None and model != model_id:
        raise ApiError(404, f"the model {model!r} does not exist; this server has {model_id!r}", "model",
                       "model_not_found")
    for field in ("echo", "suffix", "logit_bias"):
        if body.get(field):  # false, empty or left out is what this server does anyway
            raise ApiError(400, f"{field!r} is not supported by this server", field)
    best_of = body.get("best_of")
    if best_of not in (None, 1) and best_of != body.get("n", 1):
        raise ApiError(400, "'best_of' is not supported by this server (ask for n candidates instead)", "best_of")
    prompt = _prompt(body.get("prompt", ""))
    max_tokens = _int(body, "max_tokens", DEFAULT_MAX_TOKENS, 1, MAX_TOKENS)
    n = _int(body, "n", 1, 1, MAX_N)
    stop = _stop(body.get("stop"))
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise ApiError(400, f"'stream' must be true or false, not {stream!r}", "stream")
    logprobs = None if body.get("logprobs") is None else _int(body, "logprobs", 0, 0, MAX_LOGPROBS)
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object", "stream_options")
    values = {}
    for name in SAMPLING_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        low, high = SAMPLING_LIMITS[name]
        if name == "top_k":
            value = _int(body, name, 0, low, high)
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ApiError(400, f"{name!r} must be a number, not {value!r}", name)
        elif not low <= value <= high:
            raise ApiError(400, f"{name!r} = {value} is outside {low}..{high}", name)
        values[name] = value
    seed = body.get("seed")
    if seed is not None:
        values["seed"] = _int(body, "seed", 0, 0, 2 ** 63 - 1)
    return CompletionParams(prompt, max_tokens, n, stop, stream, logprobs, replace(defaults, **values),
                            bool(options.get("include_usage")), tuple(sorted(set(body) - KNOWN)))


def _prompt(value) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) > 1 and all(isinstance(v, str) for v in value):
        raise ApiError(400, "one prompt per request, please (send the others as requests of their own)", "prompt")
    raise ApiError(400, "'prompt' must be a string (token ids are not accepted)", "prompt")


def _int(body: dict, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name!r} must be a whole number, not {value!r}", name)
    if not low <= value <= high:
        raise ApiError(400, f"{name!r} = {value} is outside {low}..{high}", name)
    return value


def _stop(value) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ApiError(400, "'stop' must be a string or a list of strings", "stop")
    if len(stops) > MAX_STOPS:
        raise ApiError(400, f"'stop' holds {len(stops)} strings; at most {MAX_STOPS}", "stop")
    if any(not s for s in stops):
        raise ApiError(400, "'stop' strings must not be empty", "stop")
    return tuple(stops)


# -- responses ---------------------------------------------------------------


def logprob(p: float) -> float:
    """The natural log of a recorded probability (float16 rounds the smallest to 0: read as SMALLEST_P)."""
    return math.log(max(p, SMALLEST_P))


def tokens_written(log, row: int, text: str, finish_reason: str | None, max_tokens: int, start: int = 0) -> int:
    """How many of candidate `row`'s tokens (from step `start`) wrote `text`: every step up to max_tokens for a row
    that ran to its length; those starting before a stop string; while the row goes on (finish_reason None), the
    ones wholly inside the text released so far."""
    limit = min(log.steps(row), max_tokens)
    if finish_reason == "length":
        return max(start, limit)
    step = start
    while step < limit:
        choice = log.choice(row, step)
        past = choice.char_start >= len(text) if finish_reason == "stop" else choice.char_start + len(choice.text) > len(text)
        if past:
            break
        step += 1
    return step


def logprobs_of(log, row: int, steps: range, text: str, top: int, offset: int) -> dict:
    """OpenAI's legacy logprobs for those steps of candidate `row` of a ChoiceLog: `text` is the candidate's text
    (a token cut by a stop string keeps only its part before it), offset where it starts (the prompt's length)."""
    tokens, token_logprobs, top_logprobs, text_offset = [], [], [], []
    for step in steps:
        choice = log.choice(row, step)
        tokens.append(choice.text[: max(0, len(text) - choice.char_start)])
        token_logprobs.append(logprob(choice.p_raw))
        alternatives = {}
        for alternative in choice.alternatives[:top]:
            alternatives.setdefault(alternative.text, logprob(alternative.p_raw))
        top_logprobs.append(alternatives)
        text_offset.append(offset + choice.char_start)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs,
            "text_offset": text_offset}


def completion_body(request_id: str, created: int, model: str, choices: list[dict], usage: dict) -> dict:
    return {"id": request_id, "object": "text_completion", "created": created, "model": model,
            "choices": choices, "usage": usage}


def choice_body(index: int, text: str, finish_reason: str | None, logprobs: dict | None = None) -> dict:
    return {"index": index, "text": text, "finish_reason": finish_reason, "logprobs": logprobs}


def chunk_body(request_id: str, created: int, model: str, index: int, text: str, finish_reason: str | None,
               logprobs: dict | None = None) -> dict:
    return completion_body(request_id, created, model, [choice_body(index, text, finish_reason, logprobs)], None)


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def models_body(model_id: str, created: int) -> dict:
    return {"object": "list", "data": [{"id": model_id, "object": "model", "created": created,
                                        "owned_by": "ai-writer"}]}
