"""`ai-writer serve` without a browser: what it prints, who it refuses, and bad input as one line."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest

from ai_writer.studio.web.access import is_loopback
from tests.studio.web.browser import http_get, websocket_status
from tests.terminal.harness import isolated_env, studio_command


def run_serve(tmp_path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*studio_command(), "serve", *args], cwd=tmp_path, env=isolated_env(tmp_path / "env"),
                          capture_output=True, text=True, timeout=timeout)


def test_on_loopback_no_token_but_other_sites_and_other_names_are_refused(serve):
    served = serve()
    assert served.url.startswith("http://127.0.0.1:")
    assert not any("token=" in line or "a token is required" in line for line in served.lines)
    status, headers, page = http_get(served.local_url)
    assert status == 200 and 'data-session-websocket-url="ws://127.0.0.1:' in page
    assert not re.findall(r'(?:href|src)="(?:https?:)?//', page), "the page loads something from another site"
    assert headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    # DNS rebinding: a name that resolves to 127.0.0.1 but is not this machine's own
    assert http_get(served.local_url, {"Host": f"attacker.example:{served.port}"})[0] == 403
    # another site's page opening the websocket (cross-site WebSocket hijacking)
    assert websocket_status(served.port, origin="http://attacker.example") == 403
    assert websocket_status(served.port, origin=None) == 403
    assert served.process.poll() is None


def test_a_host_other_than_loopback_gets_a_token_printed_once(serve):
    served = serve("--host", "0.0.0.0")  # only loopback traffic is sent to it below
    line = served.wait_line(r"a token is required \(--host 0\.0\.0\.0 is not loopback\)").string
    token = re.search(r"\?token=(\S+)$", line).group(1)
    assert len(token) >= 32 and sum(token in shown for shown in served.lines) == 1
    origin = f"http://127.0.0.1:{served.port}"

    assert http_get(served.local_url)[0] == 403
    assert http_get(served.local_url + "?token=not-" + token)[0] == 403
    assert websocket_status(served.port, origin=origin) == 403

    status, headers, _ = http_get(served.local_url + "?token=" + token + "&fontsize=18")
    assert status == 303 and headers["Location"] == "/?fontsize=18"  # the token leaves the address bar
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"ai_writer_token_{served.port}={token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, _, page = http_get(served.local_url, {"Cookie": cookie.split(";")[0]})
    assert status == 200 and f'ws://127.0.0.1:{served.port}/ws' in page  # the address the browser used
    assert http_get(served.local_url, {"Authorization": f"Bearer {token}"})[0] == 200
    # the token does not lift the websocket's same-origin rule
    assert websocket_status(served.port, origin="http://attacker.example",
                            headers={"Cookie": cookie.split(";")[0]}) == 403


def test_behind_a_reverse_proxy_with_a_token(serve):
    """--token on loopback: a proxy's name is let in with the token (and only with it); its https gives wss://."""
    served = serve("--token")
    token = served.wait_line(r"\?token=(\S+)$").group(1)
    proxy = {"Host": "studio.example", "X-Forwarded-Proto": "https"}
    assert http_get(served.local_url, proxy)[0] == 403
    status, _, page = http_get(served.local_url, {**proxy, "Authorization": f"Bearer {token}"})
    assert status == 200 and 'data-session-websocket-url="wss://studio.example/ws"' in page
    status, headers, _ = http_get(served.local_url + "?token=" + token, proxy)
    assert status == 303 and "Secure" in headers["Set-Cookie"]
    assert websocket_status(served.port, origin="https://studio.example", host="studio.example") == 403  # no token
    assert websocket_status(served.port, origin="https://elsewhere.example", host="studio.example",
                            headers={"Authorization": f"Bearer {token}"}) == 403


@pytest.mark.parametrize("is_it, host", [(True, "127.0.0.1"), (True, "127.8.9.10"), (True, "::1"), (True, "[::1]"),
                                         (True, "localhost"), (False, "0.0.0.0"), (False, "192.168.1.2"),
                                         (False, "::"), (False, "example.com"), (False, "")])
def test_loopback_hosts(is_it, host):
    assert is_loopback(host) is is_it


def bad_input(tmp_path) -> tuple[socket.socket, dict]:
    (tmp_path / "a folder").mkdir()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    return busy, {
        "port out of range": (["--port", "70000"], "--port 70000 is outside 0..65535"),
        "a folder": (["a folder"], "is a folder, not a manuscript"),
        "no such folder": (["nowhere/novel.txt"], "the folder nowhere does not exist"),
        "port in use": (["--port", str(busy.getsockname()[1])], f"cannot listen on 127.0.0.1:{busy.getsockname()[1]}"),
        "a broken config": (["--config", "broken.toml"], "broken.toml"),
    }


def test_bad_input_is_one_line_and_no_port_opened(tmp_path):
    (tmp_path / "broken.toml").write_text("[model\n", encoding="utf-8")
    busy, cases = bad_input(tmp_path)
    try:
        for name, (args, expected) in cases.items():
            if args[0] == "--config":
                result = subprocess.run([*studio_command(), *args, "serve"], cwd=tmp_path,
                                        env=isolated_env(tmp_path / "env"), capture_output=True, text=True, timeout=30)
            else:
                result = run_serve(tmp_path, *args)
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], (name, result.stderr)
            assert lines[0].startswith("ai-writer: ") and result.stdout == "", (name, result.stdout)
    finally:
        busy.close()
