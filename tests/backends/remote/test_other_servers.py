"""RemoteService against servers unlike serve-api (tests/backends/remote/fake_server.py, on 127.0.0.1): one that
ignores or refuses `n`, one that refuses logprobs, one that never answers a completion; what each kind lacks."""

import contextlib
import time

import pytest

from ai_writer.backends.remote.engine import connect
from ai_writer.backends.remote.servers import LOCAL_ONLY, NEEDS_TOKENIZER, SERVER_LACKS, unavailable, kind_of
from ai_writer.backends.remote.service import RemoteService, max_tokens_for
from ai_writer.backends.writing.generation import Failed, Finished, GenerationRequest
from ai_writer.backends.writing.sampling import SamplingSettings
from tests.backends.remote.fake_server import FakeServer, fake_text
from tests.helpers import wait_until

QUICK = (0.05, 0.1, 0.2)
SAMPLING = SamplingSettings(seed=40, top_k=0, min_p=0.0)


def service_for(fake, model="fake", timeout=10):
    return RemoteService(connect(fake.url, model, timeout=timeout, retry_delays=QUICK))


@contextlib.contextmanager
def served(model="fake", timeout=10, **fake_options):
    """(a FakeServer with fake_options, a RemoteService on it), the service closed after."""
    with FakeServer(**fake_options) as fake:
        service = service_for(fake, model, timeout)
        try:
            yield fake, service
        finally:
            service.close()


def last(service, request):
    return list(service.generate(request, timeout=30))[-1]


@pytest.mark.parametrize("mode", ["ignore", "refuse"])
def test_a_server_without_n_gets_requests_side_by_side(mode):
    with served(owned_by="openai-like", models=(f"fake-{mode}",), n=mode, model=f"fake-{mode}") as (fake, service):
        request = GenerationRequest("山", n=3, length=8, sampling=SAMPLING, alternatives=0)
        final = last(service, request)
        assert final.texts == tuple(fake_text(40 + row, 8) for row in range(3))  # candidate i: seed + i
        assert fake.bodies[0]["n"] == 3 and service.engine.learned.takes_n is False
        asked = len(fake.bodies)
        assert asked == (3 if mode == "ignore" else 4)  # n=3, then the two missing (or all three) one by one
        assert all("n" not in body for body in fake.bodies[1:])
        again = last(service, request)  # remembered: side by side at once
        assert again.texts == final.texts and len(fake.bodies) == asked + 3
        assert sorted(b["seed"] for b in fake.bodies[asked:]) == [40, 41, 42]


def test_a_server_with_n_gets_one_request():
    with served(owned_by="vllm", n="take") as (fake, service):
        final = last(service, GenerationRequest("山", n=3, length=8, sampling=SAMPLING, alternatives=0))
        assert final.texts == tuple(fake_text(40 + row, 8) for row in range(3))
        assert len(fake.bodies) == 1 and fake.bodies[0]["n"] == 3
        body = fake.bodies[0]
        assert body["top_k"] == -1 and body["min_p"] == 0.0  # vLLM reads -1 as no top_k cut
        assert "top_p_newline" not in body and "penalty_decay" not in body
        assert body["max_tokens"] == max_tokens_for(8, None) == 32 and body["stream"] is True
        assert service.engine.learned.takes_n is True


def test_a_server_that_refuses_logprobs_is_asked_without_them():
    with served(owned_by="llamacpp", logprobs="refuse") as (fake, service):
        job = service.submit(GenerationRequest("山", n=1, length=5, sampling=SAMPLING, alternatives=5),
                             lambda e: None)
        assert job.wait(10) and job.choices is None
        assert [b.get("logprobs") for b in fake.bodies] == [5, None]
        assert service.unavailable_settings()["generation.alternatives"] == SERVER_LACKS
        service.submit(GenerationRequest("山", n=1, length=5, alternatives=5), lambda e: None).wait(10)
        assert fake.bodies[-1].get("logprobs") is None and len(fake.bodies) == 3  # remembered


def test_logprobs_from_side_by_side_requests_fill_each_row():
    with served(owned_by="llamacpp") as (fake, service):
        job = service.submit(GenerationRequest("山", n=2, length=6, sampling=SAMPLING, alternatives=3),
                             lambda e: None)
        assert job.wait(10)
        assert all(b["repeat_penalty"] == 1.0 and b["top_k"] == 0 and b["min_p"] == 0.0 for b in fake.bodies)
        for row in range(2):
            assert job.choices.text(row) == fake_text(40 + row, 6)
            choice = job.choices.choice(row, 2)
            assert choice.text == fake_text(40 + row, 3)[-1] and choice.p == pytest.approx(0.6065, rel=1e-3)
            assert [a.text for a in choice.alternatives] == [choice.text, "。"]  # the two the server gave


def test_a_completion_that_never_comes_times_out_in_one_line():
    with served(hang=True, timeout=1) as (fake, service):
        started = time.perf_counter()
        final = last(service, GenerationRequest("山", n=2, length=5))
        assert isinstance(final, Failed)
        assert final.message == f"{fake.url} did not answer within 1 s ([model] timeout_seconds)"
        assert time.perf_counter() - started < 2.5 and len(fake.bodies) == 2  # side by side, each once


def test_cancelling_side_by_side_requests_shuts_every_stream():
    with served(owned_by="llamacpp") as (fake, service):
        job = service.submit(GenerationRequest("山", n=3, length=20000, alternatives=0), lambda e: None)
        assert wait_until(lambda: len(fake.bodies) == 3, timeout=5)
        time.sleep(0.2)
        job.cancel()
        assert job.wait(2)
        assert wait_until(lambda: fake.disconnects == 3, timeout=5)  # the server saw each connection go


def test_what_each_kind_of_server_cannot_honour():
    assert kind_of("vllm").name == "vllm" and kind_of("Someone Else").name == "openai"
    llama = unavailable(kind_of("llamacpp"))
    assert llama["sampling.top_p_newline"] == llama["sampling.penalty_decay"] == SERVER_LACKS
    assert "sampling.top_k" not in llama and "sampling.min_p" not in llama
    assert llama["generation.banned_chars"] == llama["generation.penalty_exempt_chars"] == NEEDS_TOKENIZER
    assert llama["model.state"] == LOCAL_ONLY
    generic = unavailable(kind_of("openai"))
    assert {k for k, v in generic.items() if v == SERVER_LACKS} == {
        "sampling.top_p_newline", "sampling.top_k", "sampling.min_p", "sampling.penalty_decay"}
    runner = unavailable(kind_of("rwkv"))
    assert runner["generation.alternatives"] == SERVER_LACKS and "sampling.penalty_decay" not in runner
    assert unavailable(kind_of("ai-writer")).keys() == {*generic} - {
        "sampling.top_p_newline", "sampling.top_k", "sampling.min_p", "sampling.penalty_decay"}


def test_a_server_listing_several_models_needs_one_named():
    from ai_writer.backends.errors import LoadError

    with FakeServer(models=("a", "b:latest")) as fake:
        with pytest.raises(LoadError, match=r"serves 2 models: set \[model\] remote_model to one of 'a', 'b:latest'$"):
            connect(fake.url, "")
        assert connect(fake.url, "b").model == "b:latest"  # Ollama's tag
        service = service_for(fake, "a")
        try:
            assert isinstance(last(service, GenerationRequest("山", n=1, length=3)), Finished)
        finally:
            service.close()


def test_every_reason_is_worded_in_both_languages():
    from ai_writer.studio.i18n import STRINGS

    codes = {code for owned_by in ("ai-writer", "vllm", "rwkv", "openai") for code in
             unavailable(kind_of(owned_by), logprobs=False).values()}
    assert codes == {NEEDS_TOKENIZER, SERVER_LACKS, LOCAL_ONLY}
    for language in ("en", "zh"):
        assert all(STRINGS[language].get(f"remote_setting_{code}") for code in codes), language
