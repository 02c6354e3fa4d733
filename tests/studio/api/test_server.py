"""`ai-writer serve-api` end to end: the real aiohttp server on 127.0.0.1, a real tiny RWKV-7, the real openai client."""

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from ai_writer.backends.writing.generation import GenerationService
from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.studio.api.protocol import logprob, parse_completion
from ai_writer.studio.api.server import ApiServer, BackgroundServer
from tests.helpers import wait_until

PROMPT = "从前有座山，山里有座庙，"


class Running(BackgroundServer):
    """An ApiServer on a free port, with the real openai client."""

    def client(self, key="none", **options):
        return openai.OpenAI(base_url=self.base, api_key=key, max_retries=0, timeout=30, **options)


@pytest.fixture(scope="module")
def service(tiny_engine):
    service = GenerationService(tiny_engine, state_store=None)
    yield service
    service.close()


@pytest.fixture(scope="module")
def running(service):
    running = Running(ApiServer(service, "tiny", SamplingSettings(), queue_size=8))
    yield running
    running.close()


@pytest.fixture
def client(running):
    return running.client()


def complete(client, **options):
    return client.completions.create(model=options.pop("model", "tiny"), prompt=options.pop("prompt", PROMPT), **options)


def post(url, body: bytes, headers=None):
    """(status, JSON body) of a raw POST, errors included."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_models_lists_the_one_model(client):
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_a_completion_is_reproducible_and_counts_its_tokens(client):
    first = complete(client, max_tokens=20, seed=7)
    again = complete(client, max_tokens=20, seed=7)
    other = complete(client, max_tokens=20, seed=8)
    choice = first.choices[0]
    assert first.object == "text_completion" and first.model == "tiny"
    assert len(choice.text) == 20 and choice.finish_reason == "length"  # one character per token here
    assert again.choices[0].text == choice.text and other.choices[0].text != choice.text
    assert first.usage.completion_tokens == 20 and first.usage.prompt_tokens == len(PROMPT)


def test_streamed_chunks_reassemble_to_the_same_text(client):
    whole = complete(client, max_tokens=30, seed=3).choices[0].text
    chunks = list(complete(client, max_tokens=30, seed=3, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == whole
    assert len(chunks) > 3  # streamed as it was written, not in one piece
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_n_candidates_come_back_distinct(client):
    result = complete(client, max_tokens=12, n=4, seed=11)
    assert [c.index for c in result.choices] == [0, 1, 2, 3]
    assert len({c.text for c in result.choices}) == 4
    assert all(len(c.text) == 12 for c in result.choices)
    assert result.usage.completion_tokens == 48


def test_a_stop_string_ends_only_its_candidate(client):
    free = [c.text for c in complete(client, max_tokens=24, n=2, seed=5).choices]
    stop = free[0][6:8]
    stopped = complete(client, max_tokens=24, n=2, seed=5, stop=[stop])
    for text, choice in zip(free, stopped.choices):
        if stop in text:
            assert (choice.text, choice.finish_reason) == (text[: text.find(stop)], "stop")
        else:
            assert (choice.text, choice.finish_reason) == (text, "length")
    assert stopped.choices[0].finish_reason == "stop"
    streamed = {}
    for chunk in complete(client, max_tokens=24, n=2, seed=5, stop=[stop], stream=True):
        piece = chunk.choices[0]
        streamed[piece.index] = streamed.get(piece.index, "") + piece.text
    assert [streamed[0], streamed[1]] == [c.text for c in stopped.choices]


def test_logprobs_are_the_services_raw_probabilities(client, running):
    result = complete(client, max_tokens=8, seed=2, logprobs=3)
    choice = result.choices[0]
    log = running.server.last_job.choices
    lp = choice.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 8
    assert "".join(lp.tokens) == choice.text
    assert lp.text_offset[0] == len(PROMPT) and lp.text_offset == sorted(lp.text_offset)
    for step in range(8):
        recorded = log.choice(0, step)
        assert lp.tokens[step] == recorded.text
        assert lp.token_logprobs[step] == pytest.approx(logprob(recorded.p_raw))
        assert len(lp.top_logprobs[step]) <= 3
        best = recorded.alternatives[0]
        assert lp.top_logprobs[step][best.text] == pytest.approx(logprob(best.p_raw))
        assert lp.token_logprobs[step] <= max(lp.top_logprobs[step].values()) + 1e-6


def test_streamed_logprobs_and_usage_match_the_whole_reply(client):
    stop = [complete(client, max_tokens=12, seed=9).choices[0].text[4:6]]
    whole = complete(client, max_tokens=12, n=2, seed=9, logprobs=2, stop=stop)
    assert whole.choices[0].finish_reason == "stop"
    chunks = list(complete(client, max_tokens=12, n=2, seed=9, logprobs=2, stop=stop, stream=True,
                           stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    for choice in whole.choices:
        parts = [c.choices[0].logprobs for c in chunks[:-1] if c.choices[0].index == choice.index]
        for name in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
            assert sum((getattr(p, name) for p in parts), []) == getattr(choice.logprobs, name)


def test_other_servers_fields_are_ignored_and_named(client):
    raw = client.completions.with_raw_response.create(model="tiny", prompt=PROMPT, max_tokens=3,
                                                      extra_body={"rep_pen": 1.1, "typical_p": 0.9})
    assert raw.headers["X-Ignored-Fields"] == "rep_pen, typical_p"
    assert len(raw.parse().choices[0].text) == 3


def test_bad_requests_get_the_openai_error_shape(client, running):
    with pytest.raises(openai.BadRequestError) as bad:
        complete(client, temperature=9)
    error = bad.value.response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == "temperature" and "0.0..5.0" in error["message"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.completions.create(model="gpt-4", prompt="x")
    assert "gpt-4" in missing.value.response.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        complete(client, extra_body={"top_k": -1})
    status, body = post(running.base + "/completions", b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = post(running.base + "/nowhere", b"{}")
    assert status == 404 and "error" in body


def test_the_sampling_extras_reach_the_sampler(client, running):
    complete(client, max_tokens=4, extra_body={"top_k": 5, "min_p": 0.1, "top_p_newline": 0.5,
                                                "penalty_decay": 0.9}, presence_penalty=0.5)
    settings = running.server.last_job.request.sampling
    assert (settings.top_k, settings.min_p, settings.top_p_newline, settings.penalty_decay,
            settings.presence_penalty) == (5, 0.1, 0.5, 0.9, 0.5)


def test_an_api_key_is_checked(service):
    keyed = Running(ApiServer(service, "tiny", SamplingSettings(), api_key="sekret"))
    try:
        with pytest.raises(openai.AuthenticationError):
            complete(keyed.client("wrong"), max_tokens=2)
        status, body = post(keyed.base + "/completions", json.dumps({"prompt": "x"}).encode())
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        assert len(complete(keyed.client("sekret"), max_tokens=2).choices[0].text) == 2
    finally:
        keyed.close()


def test_cors_is_off_unless_asked_for(service, running):
    def preflight(base):
        request = urllib.request.Request(base + "/completions", method="OPTIONS",
                                         headers={"Origin": "http://localhost:5173",
                                                  "Access-Control-Request-Method": "POST"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers

    status, headers = preflight(running.base)
    assert status == 405 and "Access-Control-Allow-Origin" not in headers
    open_to = Running(ApiServer(service, "tiny", SamplingSettings(), api_key="k", cors_origin="*"))
    try:
        status, headers = preflight(open_to.base)
        assert status == 204 and headers["Access-Control-Allow-Origin"] == "*"
        assert "Authorization" in headers["Access-Control-Allow-Headers"]
        raw = open_to.client("k").completions.with_raw_response.create(model="tiny", prompt="山", max_tokens=2)
        assert raw.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        open_to.close()


def test_closing_a_stream_cancels_its_job(client, running):
    stream = complete(client, max_tokens=4096, n=4, seed=1, stream=True)
    next(iter(stream))
    job = running.server.last_job
    stream.close()
    assert wait_until(lambda: job.done, timeout=5)
    assert job.is_cancelled and job.choices.steps(0) < 4096
    started = time.perf_counter()
    assert len(complete(client, max_tokens=5).choices[0].text) == 5
    assert time.perf_counter() - started < 5


def test_a_client_gone_before_its_reply_cancels_its_job(running):
    import http.client

    before = running.server.last_job
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    connection.request("POST", "/v1/completions", json.dumps({"prompt": PROMPT, "max_tokens": 4096, "n": 4}),
                       {"Content-Type": "application/json"})
    assert wait_until(lambda: running.server.last_job is not before and running.server.last_job.choices is not None
                      and running.server.last_job.choices.steps(0) > 0, timeout=5)
    job = running.server.last_job
    connection.close()
    assert wait_until(lambda: job.done, timeout=5)
    assert job.is_cancelled and job.choices.steps(0) < 4096


def test_the_prompt_cache_is_shared_across_requests(client, running, service):
    prompt = "山" * 300 + "水" * 7
    complete(client, prompt=prompt, max_tokens=2)
    body = {"model": "tiny", "prompt": prompt + "云", "max_tokens": 2}
    plan = service.plan(running.server.generation_request(parse_completion(body, SamplingSettings(), "tiny")))
    assert (plan.total_tokens, plan.cached_tokens) == (len(prompt) + 1, len(prompt))  # only the new character is read


def test_a_full_queue_answers_429(client, running):
    running.server.queue_size = 1
    try:
        stream = complete(client, max_tokens=4096, n=4, stream=True)
        next(iter(stream))  # running
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(complete, client, max_tokens=3)
            assert wait_until(lambda: running.server.waiting == 1, timeout=5)
            with pytest.raises(openai.RateLimitError) as refused:
                complete(client, max_tokens=3)
            assert refused.value.response.json()["error"]["code"] == "queue_full"
            stream.close()  # the waiting one gets its turn
            assert len(waiting.result(timeout=10).choices[0].text) == 3
    finally:
        running.server.queue_size = 8


def test_concurrent_clients_each_get_their_own_answer(running):
    asks = [(f"第{i}章　", 100 + i) for i in range(20)]
    client = running.client()
    alone = [complete(client, prompt=p, max_tokens=10, seed=s).choices[0].text for p, s in asks]

    def one_client(part):
        own = running.client()
        return [complete(own, prompt=p, max_tokens=10, seed=s).choices[0].text for p, s in part]

    with ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(one_client, [asks[i::4] for i in range(4)]))
    together = [None] * 20
    for i, part in enumerate(parts):
        together[i::4] = part
    assert together == alone
    assert len(set(alone)) == 20


def test_max_tokens_counts_tokens_of_a_multi_character_tokenizer(tmp_path):
    """The World tokenizer: a token writes 0 to many characters; max_tokens and logprobs count tokens."""
    from ai_writer.backends import load
    from tests.helpers import random_rwkv7_weights, write_checkpoint

    model = write_checkpoint(tmp_path / "world.safetensors", random_rwkv7_weights(1, 64, 65536))
    service = GenerationService(load(model, backend="torch", device="cpu"), state_store=None)
    world = Running(ApiServer(service, "world", SamplingSettings(top_p=1.0)))
    try:
        result = complete(world.client(), model="world", prompt="Once upon a time", max_tokens=6, n=2, seed=3,
                          logprobs=2)
        assert result.usage.completion_tokens == 12
        for choice in result.choices:
            assert choice.finish_reason == "length" and len(choice.logprobs.tokens) == 6
            assert "".join(choice.logprobs.tokens) == choice.text
        assert result.choices[0].text != result.choices[1].text
        assert any(len(c.text) > 6 for c in result.choices)  # tokens of several characters were cut by count
        with pytest.raises(openai.BadRequestError) as huge:  # its ChoiceLog would set aside gigabytes
            complete(world.client(), model="world", max_tokens=4096, n=16, logprobs=20)
        assert "too much" in huge.value.response.json()["error"]["message"]
    finally:
        world.close()
        service.close()
