"""`ai-writer serve-api` as a command: its security default in-process, and a real server process end to end."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from ai_writer.studio.api.command import is_loopback
from ai_writer.studio.cli import main
from tests.helpers import REPO


@pytest.fixture(autouse=True)
def isolated_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def test_another_host_needs_an_api_key(capsys):
    assert main(["serve-api", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--api-key" in err and "Traceback" not in err


def test_a_port_already_taken_is_one_line(capsys, tiny_model):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve-api", "--model", str(tiny_model), "--device", "cpu", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err and "Traceback" not in err


def test_loopback_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.org")


def test_the_command_serves_until_interrupted(tmp_path, tiny_model):
    script = Path(sys.executable).parent / "ai-writer"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "ai_writer.studio.cli"]
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8"}
    process = subprocess.Popen(command + ["serve-api", "--model", str(tiny_model), "--device", "cpu", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path, text=True)
    try:
        line = process.stdout.readline()
        found = re.fullmatch(r"serving tiny at (http://127\.0\.0\.1:\d+/v1) \(Ctrl\+C stops\)\n", line)
        assert found, line + process.stderr.read() if process.poll() is not None else line
        client = openai.OpenAI(base_url=found.group(1), api_key="none", max_retries=0, timeout=30)
        assert [m.id for m in client.models.list().data] == ["tiny"]
        result = client.completions.create(model="tiny", prompt="山", max_tokens=3, seed=1)
        assert len(result.choices[0].text) == 3
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
