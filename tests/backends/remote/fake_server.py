"""Small OpenAI-style servers on 127.0.0.1 for what serve-api never does: ignore or refuse `n`, hang, refuse logprobs.

    with FakeServer(owned_by="llamacpp", n="ignore") as fake:   # fake.url, fake.bodies (each POST's JSON)
        ...

Each candidate's text is a function of its seed: character i is chr(0x4E00 + (7 * seed + i) % 500).
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def fake_text(seed: int, length: int) -> str:
    return "".join(chr(0x4E00 + (7 * seed + i) % 500) for i in range(length))


class FakeServer:
    def __init__(self, owned_by: str = "llamacpp", models=("fake",), n: str = "ignore", logprobs: str = "give",
                 hang: bool = False, status: int = 200, status_times: int = 0):
        """n: "take" (n choices), "ignore" (one choice whatever n), "refuse" (400 for n > 1); logprobs: "give",
        "ignore" or "refuse" (400 naming logprobs); hang: POSTs are never answered; status/status_times: answer
        the first status_times POSTs with that status (e.g. 503)."""
        self.owned_by, self.models, self.n, self.logprobs, self.hang = owned_by, models, n, logprobs, hang
        self.status, self.status_times = status, status_times
        self.bodies: list[dict] = []
        self.gets = 0
        self.disconnects = 0
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                fake.gets += 1
                if self.path == "/v1/models":
                    data = [{"id": m, "object": "model", "owned_by": fake.owned_by} for m in fake.models]
                    self.reply(200, {"object": "list", "data": data})
                else:
                    self.reply(404, {"error": {"message": f"no {self.path}"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.bodies.append(body)
                if fake.hang:
                    fake.release.wait(10)
                    return
                if fake.status_times > 0:
                    fake.status_times -= 1
                    return self.reply(fake.status, {"error": {"message": "Loading model"}})
                if body.get("model") not in fake.models:
                    return self.reply(404, {"error": {"message": f"model {body.get('model')!r} not found"}})
                n = body.get("n", 1)
                if fake.n == "refuse" and n > 1:
                    return self.reply(400, {"error": {"message": "Only one completion choice is allowed",
                                                      "type": "invalid_request_error"}})
                if fake.logprobs == "refuse" and body.get("logprobs"):
                    return self.reply(400, {"error": {"message": "logprobs is not supported by this model"}})
                rows = n if fake.n == "take" else 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                seed = body.get("seed", 0)
                try:
                    for i in range(body["max_tokens"]):
                        for row in range(rows):
                            char = fake_text(seed + row, i + 1)[-1]
                            choice = {"index": row, "text": char, "finish_reason": None}
                            if body.get("logprobs") and fake.logprobs == "give":
                                choice["logprobs"] = {"tokens": [char], "token_logprobs": [-0.5],
                                                      "top_logprobs": [{char: -0.5, "。": -1.5}]}
                            self.wfile.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
                            self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    fake.disconnects += 1

            def reply(self, status: int, payload: dict) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Silent:
    """A listening socket that never accepts: connections open (the kernel's backlog) and nothing ever answers."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.socket.close()


def free_port() -> int:
    """A port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
