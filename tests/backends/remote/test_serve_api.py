"""RemoteService against this project's real `ai-writer serve-api` (aiohttp on 127.0.0.1, a tiny real RWKV-7): the
same candidates as the in-process service for the same seed, cancellation, the probabilities, refusals."""

import queue

import pytest

from ai_writer.backends.errors import LoadError
from ai_writer.backends.remote.client import RemoteClient
from ai_writer.backends.remote.engine import RemoteEngine, connect
from ai_writer.backends.remote.servers import AI_WRITER, NEEDS_TOKENIZER, LOCAL_ONLY
from ai_writer.backends.remote.service import RemoteService
from ai_writer.backends.writing.generation import Chunk, Failed, Finished, GenerationRequest, GenerationService, Started
from ai_writer.backends.writing.sampling import SamplingSettings
from ai_writer.backends.writing.story import Story
from ai_writer.studio.api.server import ApiServer, BackgroundServer
from tests.helpers import wait_until

TEXT = "第一章\n从前有座山，山里有座庙，庙里有个老和尚。\n"
QUICK = (0.05, 0.1, 0.2)


@pytest.fixture(scope="module")
def served(tiny_engine):
    service = GenerationService(tiny_engine, state_store=None)
    running = BackgroundServer(ApiServer(service, "tiny", SamplingSettings(top_p=0.3), queue_size=8))
    yield running
    running.close()
    service.close()


@pytest.fixture(scope="module")
def local(tiny_engine):
    service = GenerationService(tiny_engine, state_store=None)
    yield service
    service.close()


@pytest.fixture
def remote(served):
    service = RemoteService(connect(f"http://127.0.0.1:{served.port}/v1", "tiny", timeout=10, retry_delays=QUICK))
    yield service
    service.close()


def events_of(service, request):
    return list(service.generate(request, timeout=30))


def test_connect_reads_the_model_list_and_knows_serve_api(served):
    engine = connect(f"http://127.0.0.1:{served.port}", "", timeout=10)  # "": the only model it serves
    assert engine.model == "tiny" and engine.server == AI_WRITER and engine.models == ("tiny",)
    info = engine.info
    assert (info.architecture, info.backend, info.device) == ("remote", "openai", "127.0.0.1")
    assert info.model_path == f"http://127.0.0.1:{served.port} tiny"
    assert engine.label == f"tiny @ 127.0.0.1:{served.port}"
    assert engine.description == f"tiny on http://127.0.0.1:{served.port} (ai-writer)"


def test_candidates_stream_as_the_in_process_service_writes_them(remote, local, served):
    story = Story(memory="山中古寺。")
    request = GenerationRequest(TEXT, n=3, length=40, story=story,
                                sampling=SamplingSettings(seed=11, top_p=0.8, top_k=50, min_p=0.01, temperature=0.9,
                                                          presence_penalty=0.3, frequency_penalty=0.2,
                                                          penalty_decay=0.99, top_p_newline=0.5))
    events = events_of(remote, request)
    assert served.server.last_job.request.sampling == request.sampling  # every setting reached its sampler
    here = events_of(local, request)[-1]
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    assert all(isinstance(e, Chunk) for e in events[1:-1]) and len(events) > 10  # streamed, not in one piece
    final = events[-1]
    assert final.texts == here.texts and not final.cancelled and final.tokens_per_second > 0
    assert len(set(final.texts)) == 3 and all(len(t) == 40 for t in final.texts)
    for row in range(3):
        assert "".join(e.text for e in events[1:-1] if e.index == row) == final.texts[row]
    other = events_of(remote, GenerationRequest(TEXT, n=3, length=40, story=story, sampling=SamplingSettings(seed=12)))
    assert other[-1].texts != final.texts


def test_the_prompt_is_the_studios_assembly(remote, served):
    story = Story(memory="人物：老和尚。")
    request = GenerationRequest(TEXT * 3, n=1, length=3, story=story, alternatives=0)
    events_of(remote, request)
    assert served.server.last_job.request.text == remote.prompt(request) == remote.plan(request).context.text
    assert remote.prompt(request).startswith("\n人物：老和尚。\n")  # memory first, after the leading newline


def test_cancelling_shuts_the_stream_and_the_server_stops(remote, served):
    events: queue.Queue = queue.Queue()
    job = remote.submit(GenerationRequest(TEXT, n=4, length=2000), events.put)
    assert isinstance(events.get(timeout=10), Started)
    assert isinstance(events.get(timeout=10), Chunk)
    server_job = served.server.last_job
    job.cancel()
    assert job.wait(5)
    assert wait_until(lambda: server_job.done, timeout=5)
    assert server_job.is_cancelled and server_job.choices.steps(0) < 2000
    while True:
        event = events.get(timeout=5)
        if isinstance(event, Finished):
            break
    assert event.cancelled and all(len(t) < 2000 for t in event.texts)


def test_a_new_request_cancels_the_one_streaming(remote, served):
    first = remote.submit(GenerationRequest(TEXT, n=2, length=2000), lambda e: None)
    assert wait_until(lambda: first.choices is not None and first.choices.steps(0) > 0, timeout=10)
    second = list(remote.generate(GenerationRequest(TEXT, n=1, length=5, sampling=SamplingSettings(seed=1)), timeout=20))
    assert first.done and first.is_cancelled
    assert len(second[-1].texts[0]) == 5


def test_the_probabilities_fill_the_jobs_choices(remote, served):
    job = remote.submit(GenerationRequest(TEXT, n=2, length=12, alternatives=4, sampling=SamplingSettings(seed=3)),
                        lambda e: None)
    assert job.wait(20)
    log, theirs = job.choices, served.server.last_job.choices
    assert log is not None
    for row in range(2):
        assert log.steps(row) == 12 and log.text(row) == theirs.text(row)[:12]  # one character per token here
        for step in range(12):
            mine, server = log.choice(row, step), theirs.choice(row, step)
            assert mine.text == server.text and mine.char_start == step
            assert mine.p == mine.p_raw == pytest.approx(max(server.p_raw, 2.0 ** -24), rel=2e-3)
            assert [a.text for a in mine.alternatives] == [a.text for a in server.alternatives[:4]]
            assert mine.alternatives[0].p_raw == pytest.approx(server.alternatives[0].p_raw, rel=2e-3)
        assert log.step_at_char(row, 5) == 5
        assert all(0 < p <= 1 for p in log.probabilities(row)) and len(log.probabilities(row)) == 12


def test_no_alternatives_asks_for_no_logprobs(remote):
    job = remote.submit(GenerationRequest(TEXT, n=1, length=4, alternatives=0), lambda e: None)
    assert job.wait(20) and job.choices is None


def test_a_model_the_server_does_not_have_is_one_line_naming_its_models(served):
    with pytest.raises(LoadError) as caught:
        connect(f"http://127.0.0.1:{served.port}", "rwkv-14b", timeout=10)
    assert str(caught.value) == (f"http://127.0.0.1:{served.port} has no model 'rwkv-14b' (it has 'tiny'); "
                                 "set [model] remote_model")
    gone = RemoteService(RemoteEngine(RemoteClient(f"http://127.0.0.1:{served.port}", timeout=10), "gone", AI_WRITER))
    try:  # a model that went away after connecting
        final = events_of(gone, GenerationRequest(TEXT, n=2, length=5))[-1]
    finally:
        gone.close()
    assert isinstance(final, Failed)
    assert final.message == f"http://127.0.0.1:{served.port} has no model 'gone' (it has 'tiny'); set [model] remote_model"


def test_a_bad_key_is_one_line_and_the_key_is_never_shown(tiny_engine, monkeypatch):
    service = GenerationService(tiny_engine, state_store=None)
    keyed = BackgroundServer(ApiServer(service, "tiny", SamplingSettings(), api_key="right-key-1234"))
    url = f"http://127.0.0.1:{keyed.port}"
    try:
        monkeypatch.setenv("AIW_KEY", "wrong-key-5678")
        with pytest.raises(LoadError) as caught:
            connect(url, "tiny", api_key_env="AIW_KEY", timeout=10)
        assert str(caught.value) == (f"{url} refused the API key (401: the API key is wrong); "
                                     "check the key in the environment variable AIW_KEY")
        with pytest.raises(LoadError, match=r"\(401: no API key: .*\); name the environment variable that holds the "
                                             r"key in \[model\] api_key_env$"):
            connect(url, "tiny", timeout=10)
        monkeypatch.setenv("AIW_KEY", "right-key-1234")
        engine = connect(url, "tiny", api_key_env="AIW_KEY", timeout=10)
        remote = RemoteService(engine)
        try:
            assert len(events_of(remote, GenerationRequest(TEXT, n=2, length=6))[-1].texts[1]) == 6
            monkeypatch.setenv("AIW_KEY", "changed-key-000")  # read at each request, kept nowhere
            final = events_of(remote, GenerationRequest(TEXT, n=2, length=6))[-1]
            assert isinstance(final, Failed) and "refused the API key (401" in final.message
            assert "right-key" not in repr(vars(engine)) + repr(vars(engine.client)) + repr(engine.info)
        finally:
            remote.close()
    finally:
        keyed.close()
        service.close()


def test_a_server_that_goes_down_fails_the_request_in_one_line(tiny_engine):
    service = GenerationService(tiny_engine, state_store=None)
    running = BackgroundServer(ApiServer(service, "tiny", SamplingSettings()))
    remote = RemoteService(connect(f"http://127.0.0.1:{running.port}", "tiny", timeout=10, retry_delays=QUICK))
    try:
        running.close()
        final = events_of(remote, GenerationRequest(TEXT, n=2, length=5))[-1]
        assert isinstance(final, Failed)
        assert final.message == f"cannot reach http://127.0.0.1:{running.port}: connection refused (4 tries)"
    finally:
        remote.close()
        service.close()


def test_a_bad_request_is_the_servers_own_words(remote):
    final = events_of(remote, GenerationRequest(TEXT, n=1, length=5, sampling=SamplingSettings(temperature=-1)))[-1]
    assert isinstance(final, Failed) and "refused the request: 'temperature' = -1 is outside 0.0..5.0" in final.message


def test_what_serve_api_cannot_honour(remote):
    unavailable = remote.unavailable_settings()
    assert unavailable["generation.banned_chars"] == NEEDS_TOKENIZER
    assert unavailable["model.path"] == unavailable["generation.compare_state"] == LOCAL_ONLY
    assert not any(key.startswith("sampling.") for key in unavailable)  # it takes every sampling setting
    assert "generation.alternatives" not in unavailable


def test_warming_and_model_tasks_send_nothing(remote, served):
    before = served.server.last_job
    events = []
    job = remote.warm(TEXT)
    assert job.wait(5) and served.server.last_job is before
    failed = remote.submit_task(lambda engine, job: None, events.append)
    assert failed.wait(5) and isinstance(events[0], Failed) and "model on this machine" in events[0].message
