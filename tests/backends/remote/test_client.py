"""The HTTP client on its own: addresses, error bodies, a server that is down, silent or not ready (127.0.0.1 only)."""

import re
import time

import pytest

from ai_writer.backends.errors import LoadError
from ai_writer.backends.remote.client import RemoteClient, RemoteError, parse_url, server_message
from ai_writer.backends.remote.engine import connect
from tests.backends.remote.fake_server import FakeServer, Silent, free_port

QUICK = (0.05, 0.1, 0.2)  # the retry backoff, shortened


def test_addresses_take_a_trailing_v1_and_refuse_what_is_not_http():
    assert parse_url("http://127.0.0.1:8000/v1/").shown == "http://127.0.0.1:8000"
    assert parse_url("localhost:11434").shown == "http://localhost:11434"
    assert parse_url("https://api.example.org/openai/v1").shown == "https://api.example.org:443/openai"
    assert parse_url("http://[::1]:8000").shown == "http://[::1]:8000"
    for bad, said in (("", "set [model] url"), ("ftp://host", "not an http"), ("http://host:99999", "port"),
                      ("http://me:secret@host", "no user or password")):
        with pytest.raises(ValueError, match=re.escape(said)) as caught:
            parse_url(bad)
        assert "secret" not in str(caught.value)


def test_error_bodies_of_each_server_kind_read_as_one_line():
    assert server_message(b'{"error": {"message": "bad  top_p\\nvalue", "param": "top_p"}}') == ("bad top_p value", "top_p")
    assert server_message(b'{"object": "error", "message": "vLLM says no", "code": 400}') == ("vLLM says no", None)
    assert server_message(b'{"error": "ollama says no"}') == ("ollama says no", None)
    assert server_message(b'{"detail": [{"loc": ["body", "top_k"], "msg": "Input should be <= 25"}]}') == \
        ("body.top_k: Input should be <= 25", None)
    assert server_message(b"<html>Bad Gateway</html>\nmore") == ("<html>Bad Gateway</html>", None)
    assert len(server_message(b'{"error": "' + b"x" * 5000 + b'"}')[0]) < 400


def test_a_server_that_is_down_is_tried_again_then_said_in_one_line():
    port = free_port()
    started = time.perf_counter()
    with pytest.raises(LoadError) as caught:
        connect(f"http://127.0.0.1:{port}", "m", retry_delays=QUICK)
    assert str(caught.value) == f"cannot reach http://127.0.0.1:{port}: connection refused (4 tries)"
    assert 0.3 < time.perf_counter() - started < 3  # the backoff was waited, and nothing more


def test_a_server_that_never_answers_times_out_once_without_retries():
    with Silent() as silent:
        started = time.perf_counter()
        with pytest.raises(LoadError) as caught:
            connect(silent.url, "m", timeout=1, retry_delays=QUICK)
        took = time.perf_counter() - started
    assert str(caught.value) == f"{silent.url} did not answer within 1 s ([model] timeout_seconds)"
    assert 0.9 < took < 1.8  # one wait: a timeout after connecting is not retried


def test_a_server_not_ready_yet_is_asked_again_and_other_errors_are_not():
    with FakeServer(status=503, status_times=2) as fake:
        client = RemoteClient(fake.url, retry_delays=QUICK)
        events = list(client.stream("/v1/completions", {"model": "fake", "prompt": "x", "max_tokens": 2, "stream": True}))
        assert len(events) == 2 and len(fake.bodies) == 3  # two 503s, then the answer
    with FakeServer(status=429, status_times=5) as fake:
        client = RemoteClient(fake.url, retry_delays=QUICK)
        with pytest.raises(RemoteError) as caught:
            list(client.stream("/v1/completions", {"model": "fake", "max_tokens": 2}))
        assert caught.value.message == f"{fake.url} is busy (429: Loading model); try again soon"
        assert len(fake.bodies) == 1
    with FakeServer(status=503, status_times=9) as fake:
        with pytest.raises(RemoteError, match=r"is not ready \(503: Loading model\) \(4 tries\)$"):
            list(RemoteClient(fake.url, retry_delays=QUICK).stream("/v1/completions", {"max_tokens": 2}))


def test_the_key_comes_from_the_environment_and_is_never_shown(monkeypatch):
    monkeypatch.delenv("AIW_TEST_KEY", raising=False)
    client = RemoteClient("http://127.0.0.1:1", api_key_env="AIW_TEST_KEY")
    with pytest.raises(RemoteError, match="AIW_TEST_KEY named by \\[model\\] api_key_env is not set"):
        client.headers(True)
    monkeypatch.setenv("AIW_TEST_KEY", "sk-very-secret")
    assert client.headers(True)["Authorization"] == "Bearer sk-very-secret"
    assert client.masked("Incorrect API key provided: sk-very-secret") == "Incorrect API key provided: ***"
    assert "sk-very-secret" not in repr(vars(client))
