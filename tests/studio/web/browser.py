"""`ai-writer serve` as a real subprocess, and a real Chromium tab on it (Playwright, Debian's chromium).

The page draws the terminal on a canvas (xterm.js with its WebGL/canvas renderer), so there is no
text in the DOM to read. HOOK, added before the page's scripts run, keeps a reference to each
xterm.js Terminal as it is built (the one assignment of its `_core`), and Tab.screen() reads that
terminal's own buffer: the characters the browser shows, row by row.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.terminal.harness import candidate_boxes, isolated_env, studio_command

CHROMIUM_NAMES = ("chromium", "chromium-browser")
BROWSER_ENV = "AI_WRITER_CHROMIUM"  # a Chromium binary to use instead of the one on PATH
REQUIRE_ENV = "AI_WRITER_REQUIRE_BROWSER"  # set (CI): a missing browser fails instead of skipping

HOOK = """
window.__terminals = [];
Object.defineProperty(Object.prototype, '_core', {
  configurable: true,
  set(value) {
    Object.defineProperty(this, '_core', {value, writable: true, configurable: true});
    if (typeof this.onData === 'function' && 'buffer' in this) window.__terminals.push(this);
  },
});
"""
READ_SCREEN = """() => {
  const terminal = window.__terminals[0];
  if (!terminal) return null;
  const buffer = terminal.buffer.active, rows = [];
  for (let y = 0; y < terminal.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    rows.push(line ? line.translateToString(true, 0, terminal.cols) : '');  // cells past the width may linger
  }
  return rows.join('\\n');
}"""
# What a paste from the clipboard does in the page: a paste event on xterm.js's input element.
PASTE = """(text) => {
  const data = new DataTransfer();
  data.setData('text/plain', text);
  document.querySelector('textarea.xterm-helper-textarea')
    .dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
}"""


def find_chromium() -> str | None:
    if os.environ.get(BROWSER_ENV):
        return os.environ[BROWSER_ENV]
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    return None


class Served:
    """`ai-writer --config CONFIG serve [FILE] ARGS...` on its own, in an isolated home under `root`."""

    def __init__(self, root: Path, config: Path, manuscript: Path | None, *args: str):
        self.root, self.manuscript = Path(root), manuscript
        command = [*studio_command(), "--config", str(config), "serve"]
        command += [str(manuscript)] if manuscript is not None else []
        command += ["--port", "0", *args]
        self.lines: list[str] = []
        self._stderr = open(self.root / "serve-stderr.txt", "w+b")
        self.process = subprocess.Popen(command, cwd=self.root, env=isolated_env(self.root / "env"),
                                        stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8")
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self.wait_line(r"serving the studio on .* at (http://\S+/) ").group(1)
        self.port = int(re.search(r":(\d+)/$", self.url).group(1))
        self.local_url = f"http://127.0.0.1:{self.port}/"  # where the tests connect, whatever the host

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_line(self, pattern: str, timeout: float = 30.0) -> re.Match:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if match := re.search(pattern, line):
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no line matching {pattern!r} from `ai-writer serve`; "
                                         f"status {self.process.poll()}\nstdout: {self.lines}\nstderr: {self.stderr()}")
                self._changed.wait(min(left, 0.1))

    def stderr(self) -> str:
        self._stderr.flush()
        return (self.root / "serve-stderr.txt").read_text(encoding="utf-8", errors="replace")

    def stop(self, how: int = signal.SIGINT, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(how)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"`ai-writer serve` did not stop {timeout} s after signal {how}\n{self.stderr()}")


class Tab:
    """A browser tab on the studio: what it shows, and keys typed into it."""

    def __init__(self, page, url: str):
        self.page = page
        page.add_init_script(HOOK)
        page.goto(url)

    def screen(self) -> str:
        return self.page.evaluate(READ_SCREEN) or ""

    def columns(self) -> int:
        """The terminal's width in cells (xterm.js fits it to the page)."""
        return self.page.evaluate("window.__terminals[0].cols")

    def lines(self) -> list[str]:
        return self.screen().splitlines()

    def status(self) -> str:
        """The status line and the footer (the screen's last rows)."""
        return "\n".join(self.lines()[-3:])

    def wait_for(self, condition, timeout: float = 30.0, what: str = "") -> str:
        """Until condition(screen text) holds (a string: is on screen); returns the screen."""
        test = (lambda text: condition in text) if isinstance(condition, str) else condition
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if test(text):
                return text
            if time.monotonic() > deadline:
                shown = "\n".join(line for line in text.splitlines() if line.strip())
                raise AssertionError(f"waited {timeout} s for {what or condition!r} in the browser; it shows:\n{shown}")
            time.sleep(0.05)

    def wait_ready(self, model_stem: str, timeout: float = 40.0) -> None:
        """Until the studio has loaded the model (its name on the status line, no longer 'loading')."""
        self.wait_for(lambda text: f"{model_stem} · " in text and f"loading {model_stem}" not in text, timeout,
                      what=f"the studio to load {model_stem}")

    def click_editor(self) -> None:
        """A click in the editor: the page takes the keyboard (as an author clicks into the tab)."""
        self.page.mouse.click(400, 150)
        time.sleep(0.2)  # Textual moves the cursor on the click after a key sent at once (the pty tests wait too)

    def paste(self, text: str) -> None:
        self.page.evaluate(PASTE, text)

    def candidates(self) -> list[dict]:
        """The candidate boxes shown: {"number", "length", "streaming", "text"} (as tests/terminal reads them)."""
        return candidate_boxes(self.lines())

    def finished_candidates(self, count: int, timeout: float = 30.0) -> list[dict]:
        reads = [None]

        def done(_text) -> bool:
            found = self.candidates()
            previous, _ = reads[-1], reads.append(found)
            whole = all(not c["streaming"] and 0 < len(c["text"]) == c["length"] for c in found)
            return len(found) == count and whole and found == previous

        self.wait_for(done, timeout, what=f"{count} finished candidates")
        return reads[-1]


def http_get(url: str, headers: dict | None = None) -> tuple[int, dict, str]:
    """(status, headers, body) of one GET, redirects not followed."""
    match = re.fullmatch(r"http://([^/:]+):(\d+)(/.*)", url)
    connection = http.client.HTTPConnection(match.group(1), int(match.group(2)), timeout=10)
    try:
        connection.request("GET", match.group(3), headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def websocket_status(port: int, origin: str | None, host: str | None = None, headers: dict | None = None) -> int:
    """The status a websocket handshake on /ws gets (101: opened, and closed again at once)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    sent = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    if origin is not None:
        sent["Origin"] = origin
    if host is not None:
        sent["Host"] = host
    sent.update(headers or {})
    try:
        connection.request("GET", "/ws?width=80&height=24", headers=sent)
        return connection.getresponse().status
    finally:
        connection.close()


def wait_file(path: Path, expected: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(encoding="utf-8") if path.exists() else None
        if text == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} holds {text!r}, not {expected!r}")
        time.sleep(0.05)
