"""The real `ai-writer` process under a pseudo-terminal, with pyte as the terminal.

Keys go in as the bytes a terminal sends (xterm's defaults unless an encoding is
named), so the studio's key decoding, signals, resizes and a closed terminal are tested
as a user meets them. A reader thread feeds everything the app writes to a pyte screen
and keeps the raw bytes, to check what was on screen and how the terminal was left.
A Studio is either executed afresh (the console script) or forked by a StudioServer that has
imported the studio already (tests/terminal/studio_server.py): the same main() on the same pty.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import select
import signal as signals
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pyte
from ptyprocess import PtyProcess

ESC = b"\x1b"
ESCAPE_DELAY = 0.1  # Textual's default ESCDELAY: a lone ESC becomes the escape key after this long

# What xterm sends (normal cursor-key mode, which Textual leaves on).
KEYS = {
    "enter": b"\r", "tab": b"\t", "shift+tab": b"\x1b[Z", "escape": ESC, "backspace": b"\x7f",
    "delete": b"\x1b[3~", "up": b"\x1b[A", "down": b"\x1b[B", "right": b"\x1b[C", "left": b"\x1b[D",
    "shift+right": b"\x1b[1;2C", "shift+left": b"\x1b[1;2D",
    "home": b"\x1b[H", "end": b"\x1b[F", "ctrl+home": b"\x1b[1;5H", "ctrl+end": b"\x1b[1;5F",
    "pageup": b"\x1b[5~", "pagedown": b"\x1b[6~",
}
F_KEYS = {1: b"\x1bOP", 2: b"\x1bOQ", 3: b"\x1bOR", 4: b"\x1bOS", 5: b"\x1b[15~", 6: b"\x1b[17~",
          7: b"\x1b[18~", 8: b"\x1b[19~", 9: b"\x1b[20~", 10: b"\x1b[21~", 11: b"\x1b[23~", 12: b"\x1b[24~"}

# Sequences an app leaves the alternate screen and its input modes with (Textual's stop_application_mode).
RESTORE_SEQUENCES = {
    "alternate screen left": b"\x1b[?1049l",
    "cursor shown": b"\x1b[?25h",
    "mouse reporting off (1000)": b"\x1b[?1000l",
    "any-event mouse off (1003)": b"\x1b[?1003l",
    "SGR mouse off (1006)": b"\x1b[?1006l",
    "bracketed paste off": b"\x1b[?2004l",
    "focus events off": b"\x1b[?1004l",
    "kitty keyboard protocol popped": b"\x1b[<u",
}


def ctrl(letter: str) -> bytes:
    """ctrl+LETTER as a terminal sends it (a C0 control byte)."""
    return bytes([ord(letter.lower()) & 0x1F])


def fkey(number: int) -> bytes:
    return F_KEYS[number]


def alt(key: str, encoding: str = "esc") -> bytes:
    """alt+KEY (one character) in one of the encodings terminals use:
    "esc": ESC then the key (xterm's metaSendsEscape, tmux, most terminals' default);
    "modify_other_keys": xterm's modifyOtherKeys form CSI 27 ; 3 ; CODE ~;
    "kitty": the kitty keyboard protocol, CSI CODE ; 3 u (which Textual asks the terminal for)."""
    code = ord(key)
    if encoding == "esc":
        return ESC + key.encode("utf-8")
    if encoding == "modify_other_keys":
        return f"\x1b[27;3;{code}~".encode()
    if encoding == "kitty":
        return f"\x1b[{code};3u".encode()
    raise ValueError(f"unknown alt encoding {encoding!r}")


def key(name: str) -> bytes:
    """A named key (enter, tab, escape, ctrl+home, f3, ctrl+s, ...) as xterm sends it."""
    if name in KEYS:
        return KEYS[name]
    if name.startswith("f") and name[1:].isdigit():
        return fkey(int(name[1:]))
    if name.startswith("ctrl+") and len(name) == 6:
        return ctrl(name[-1])
    if name.startswith("alt+") and len(name) == 5:
        return alt(name[-1])
    if len(name) == 1:
        return name.encode("utf-8")
    raise ValueError(f"no encoding for key {name!r}")


def studio_command() -> list[str]:
    """The installed console script beside this Python (what users run); else the module."""
    script = Path(sys.executable).with_name("ai-writer")
    if script.exists() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "ai_writer.studio.cli"]


def isolated_env(root: Path) -> dict:
    """An environment whose home, config, data and cache folders are all under `root`."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm-256color", "LANG": "C.UTF-8",
           "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[name] = str(root / name.lower())
    env["AI_WRITER_STUDIO_DATA_DIR"] = str(root / "studio-data")
    for name in ("AI_WRITER_NATIVE_CACHE", "AI_WRITER_ONNX_CACHE"):  # the suite's temporary caches, if set
        if name in os.environ:
            env[name] = os.environ[name]
    for folder in env.values():
        if folder.startswith(str(root)):
            Path(folder).mkdir(parents=True, exist_ok=True)
    return env


def write_config(path: Path, model_path: Path, /, **sections) -> Path:
    """A config file naming `model_path` on the torch backend in English; `sections` adds or overrides keys,
    e.g. generation={"length": 20} or model={"backend": "openai", ...}."""
    values = {
        "model": {"path": str(model_path), "backend": "torch", "device": "cpu"},
        "generation": {"candidates": 3, "length": 40, "threads": 1},
        "studio": {"language": "en"},
    }
    for section, table in sections.items():
        values.setdefault(section, {}).update(table)
    lines = []
    for section, table in values.items():
        lines.append(f"[{section}]")
        for name, value in table.items():
            if isinstance(value, bool):
                shown = "true" if value else "false"
            elif isinstance(value, str):
                shown = '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
            else:
                shown = repr(value)
            lines.append(f"{name} = {shown}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class ForkedProcess:
    """A studio forked by a StudioServer on a pty the tests opened: the part of ptyprocess's
    PtyProcess that Terminal uses (pid, fd and fileobj of the pty's master side, isalive,
    exitstatus/signalstatus once ended, setwinsize). Its exit status comes from the server."""

    def __init__(self, server: "StudioServer", pid: int, master: int):
        self.server, self.pid, self.fd = server, pid, master
        self.fileobj = os.fdopen(master, "r+b", buffering=0)
        self.exitstatus: int | None = None
        self.signalstatus: int | None = None
        self.termios_before = None  # the tty's modes before the child started (set by spawn)

    def isalive(self) -> bool:
        code = self.server.exit_code(self.pid)
        if code is None:
            return True
        self.exitstatus, self.signalstatus = (code, None) if code >= 0 else (None, -code)
        return False

    def setwinsize(self, rows: int, cols: int) -> None:
        set_window_size(self.fd, rows, cols)  # the kernel sends SIGWINCH to the terminal's foreground group


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class StudioServer:
    """tests/terminal/studio_server.py: `ai-writer` forked, already imported, on a pty opened here.

    spawn() has PtyProcess.spawn's signature; the child is a new session whose controlling terminal
    is the pty, in `cwd` with exactly `env`, running the studio's main() with argv[1:]."""

    def __init__(self, model: Path, root: Path):
        from tests.helpers import REPO

        self.root = Path(root)
        self._stderr = open(self.root / "server-stderr.txt", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.terminal.studio_server", str(model)], cwd=REPO,
            env=isolated_env(self.root), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._lock = threading.Lock()  # one request at a time
        self._changed = threading.Condition()
        self._answers: dict[int, int] = {}  # request id -> pid
        self._exits: dict[int, int] = {}  # pid -> exit code (-N: signal N)
        self._ready = self._ended = False
        self._next_id = 0
        self._reader = threading.Thread(target=self._read_loop, name="studio-server-reader", daemon=True)
        self._reader.start()
        self._wait(lambda: self._ready, 120, "the studio server to import the studio and load the model")

    def _read_loop(self) -> None:
        for line in self.process.stdout:
            message = json.loads(line)
            with self._changed:
                if "ready" in message:
                    self._ready = True
                elif "exit" in message:
                    self._exits[message["exit"]] = message["code"]
                else:
                    self._answers[message["id"]] = message["pid"]
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def _wait(self, condition, timeout: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition() or self._ended, timeout) or not condition():
                self._stderr.flush()
                errors = (self.root / "server-stderr.txt").read_text(errors="replace")[-3000:]
                raise AssertionError(f"waited {timeout} s for {what}; server status {self.process.poll()}\n{errors}")

    def spawn(self, argv: list[str], *, cwd: str, env: dict, dimensions: tuple[int, int]) -> ForkedProcess:
        master, slave = os.openpty()
        try:
            set_window_size(slave, *dimensions)
            before = termios.tcgetattr(master)  # read now: a forked studio may switch modes at once
            with self._lock:
                self._next_id += 1
                number = self._next_id
                request = {"id": number, "argv": list(argv), "env": env, "cwd": str(cwd), "tty": os.ttyname(slave)}
                self.process.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
                self.process.stdin.flush()
                self._wait(lambda: number in self._answers, 30, f"the studio server to fork {argv}")
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)  # the child holds it now: when the child goes, the master reads EOF
        process = ForkedProcess(self, self._answers.pop(number), master)
        process.termios_before = before
        return process

    def exit_code(self, pid: int) -> int | None:
        with self._changed:
            return self._exits.get(pid)

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


class Terminal:
    """One process under a pty of `cols` x `rows`, read into a pyte screen by a thread.

    spawn: ptyprocess's PtyProcess.spawn (a fresh exec), or a StudioServer's.
    Use as a context manager (or call close()): the process group is killed if still alive."""

    def __init__(self, argv: list[str], *, env: dict, cwd: Path | str, cols: int = 100, rows: int = 30,
                 spawn=None):
        self.argv = list(argv)
        self.cols, self.rows = cols, rows
        self._lock = threading.Lock()
        self._screen = pyte.Screen(cols, rows)
        self._stream = pyte.ByteStream(self._screen)
        self.raw = bytearray()  # everything the process wrote
        self.eof_at: float | None = None
        self._status: int | None = None
        self.process = (spawn or PtyProcess.spawn)(self.argv, cwd=str(cwd), env=env, dimensions=(rows, cols))
        self.pid = self.process.pid
        self.started_at = time.monotonic()
        self._hung_up = False
        self._closing = False
        self.termios_before = getattr(self.process, "termios_before", None) or self._termios()
        self._read_fd = os.dup(self.process.fd)  # the reader's own: closed only by the reader, never reused under it
        self._reader = threading.Thread(target=self._read_loop, name=f"pty-reader-{self.pid}", daemon=True)
        self._reader.start()

    # -- output ------------------------------------------------------------

    def _read_loop(self) -> None:
        fd = self._read_fd
        try:
            while not self._closing:
                try:
                    ready, _, _ = select.select([fd], [], [], 0.1)
                    data = os.read(fd, 65536) if ready else None
                except OSError as exc:  # EIO: every holder of the pty's other side is gone
                    if exc.errno != errno.EIO:
                        raise
                    data = b""
                if data is None:
                    continue
                if not data:
                    break
                with self._lock:
                    self.raw += data
                    # pyte prints the 'u' of the kitty protocol's pop sequence; the raw bytes keep it.
                    self._stream.feed(data.replace(b"\x1b[<u", b""))
        finally:
            self.eof_at = time.monotonic()
            os.close(fd)

    def screen_lines(self) -> list[str]:
        """Each row's text: a wide character once, the empty cell after it skipped (pyte's own
        `display` fails on such a cell whose wide character was overwritten)."""
        with self._lock:
            screen = self._screen
            return ["".join(screen.buffer[y][x].data for x in range(screen.columns)).rstrip()
                    for y in range(screen.lines)]

    def screen_text(self) -> str:
        """The screen as text, one line per row (wide characters once, trailing spaces cut)."""
        return "\n".join(self.screen_lines())

    def locate(self, text: str) -> tuple[int, int] | None:
        """(column, row) in cells of the first place `text` is shown, or None."""
        from wcwidth import wcswidth

        for row, line in enumerate(self.screen_lines()):
            at = line.find(text)
            if at >= 0:
                return max(0, wcswidth(line[:at])), row
        return None

    def cursor(self) -> tuple[int, int]:
        with self._lock:
            return self._screen.cursor.x, self._screen.cursor.y

    def dump(self, title: str = "screen") -> str:
        """The screen in a frame, the process's state and the last output bytes: for failure messages."""
        width = self.cols
        lines = self.screen_lines()
        framed = "\n".join(f"|{line}" for line in lines)
        tail = bytes(self.raw[-600:])
        state = "running" if self.alive() else f"exited with {self._status}"
        return (f"--- {title} ({self.cols}x{self.rows}, pid {self.pid}, {state}, "
                f"{time.monotonic() - self.started_at:.1f} s after start) ---\n{framed}\n{'-' * width}\n"
                f"last output bytes: {tail!r}")

    def wait_for(self, expected, timeout: float = 15.0, message: str = "") -> str:
        """Wait until `expected` (a string on screen, or a predicate of the screen text) holds;
        returns the screen text. Fails with the screen dumped."""
        check = expected if callable(expected) else (lambda text: expected in text)
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen_text()
            if check(text):
                return text
            if time.monotonic() > deadline:
                what = expected if isinstance(expected, str) else getattr(expected, "__name__", "condition")
                raise AssertionError(f"{message or 'waited for'} {what!r} for {timeout} s\n{self.dump()}")
            if not self.alive() and self.eof_at is not None:
                time.sleep(0.05)  # the last frame may still be in the reader
                text = self.screen_text()
                if check(text):
                    return text
                raise AssertionError(f"the process ended while waiting for {expected!r}\n{self.dump()}")
            time.sleep(0.02)

    def wait_gone(self, text: str, timeout: float = 10.0) -> str:
        return self.wait_for(lambda screen: text not in screen, timeout, message=f"waited for {text!r} to go;")

    # -- input -------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write bytes as if typed, all in one write (they reach the app in one read)."""
        assert not self._hung_up, "the terminal was closed"
        view = memoryview(data)
        while view:
            written = os.write(self.process.fd, view)
            view = view[written:]

    def press(self, *names: str, delay: float = 0.05) -> None:
        """Named keys one after another; a lone escape is followed by Textual's escape delay,
        as a person's next key would be."""
        for name in names:
            self.send(key(name))
            time.sleep(max(delay, ESCAPE_DELAY * 2) if name == "escape" else delay)

    def type_text(self, text: str, per_key_delay: float = 0.03) -> None:
        """Type `text` key by key (each character's UTF-8 bytes in one write; newline as enter)."""
        for char in text:
            self.send(b"\r" if char == "\n" else char.encode("utf-8"))
            time.sleep(per_key_delay)

    def paste(self, text: str) -> None:
        """A bracketed paste, as terminals send it once the app has switched the mode on."""
        self.send(b"\x1b[200~" + text.encode("utf-8") + b"\x1b[201~")

    def click(self, column: int, row: int) -> None:
        """A left click at a cell (0-based), as SGR mouse reports (mode 1006, which Textual turns on)."""
        self.send(f"\x1b[<0;{column + 1};{row + 1}M".encode())
        time.sleep(0.05)
        self.send(f"\x1b[<0;{column + 1};{row + 1}m".encode())

    def resize(self, cols: int, rows: int) -> None:
        """A new window size: the kernel sends SIGWINCH to the app."""
        with self._lock:
            self._screen.resize(rows, cols)
            self._screen.buffer.clear()  # blank, not pyte's clipped rows: the app must repaint all of it
            self.cols, self.rows = cols, rows
        self.process.setwinsize(rows, cols)

    # -- the process -------------------------------------------------------

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def hangup(self) -> None:
        """Close the terminal, as closing its window does: the kernel sends SIGHUP to the app and
        its reads and writes on the terminal fail from then on. Nothing more is read from it."""
        self._hung_up = self._closing = True
        self._reader.join(timeout=5)  # the reader closes its copy of the master side
        try:
            self.process.fileobj.close()  # the last copy: the terminal is gone
        except OSError:
            pass

    def kill9(self) -> None:
        try:
            os.killpg(self.pid, signals.SIGKILL)
        except ProcessLookupError:
            pass

    def alive(self) -> bool:
        if self._status is not None:
            return False
        try:
            if self.process.isalive():
                return True
        except Exception:  # ptyprocess raises if the status was already collected
            pass
        status = self.process.exitstatus
        self._status = status if status is not None else -(self.process.signalstatus or 0)
        return False

    def exit_status(self, timeout: float = 15.0) -> int:
        """Wait for the process to end: its exit status, or -N when signal N ended it (as subprocess)."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                raise AssertionError(f"the process did not end within {timeout} s\n{self.dump()}")
            time.sleep(0.02)
        self._reader.join(timeout=5)
        return self._status

    def output_text(self) -> str:
        with self._lock:
            return bytes(self.raw).decode("utf-8", "replace")

    def after_screen(self) -> str:
        """What was written after the app left the alternate screen (e.g. a line it printed on exit)."""
        with self._lock:
            data = bytes(self.raw)
        at = data.rfind(b"\x1b[?1049l")
        return "" if at < 0 else data[at + len(b"\x1b[?1049l"):].decode("utf-8", "replace")

    def restore_problems(self) -> list[str]:
        """What the app left switched on (empty when the terminal was restored): each of
        RESTORE_SEQUENCES must come after the app last entered the alternate screen, and
        the tty's echo and line mode must be back."""
        with self._lock:
            data = bytes(self.raw)
        start = data.rfind(b"\x1b[?1049h")
        if start < 0:
            return ["the app never entered the alternate screen"]
        tail = data[start:]
        problems = [name for name, sequence in RESTORE_SEQUENCES.items() if sequence not in tail]
        now = self._termios()
        if self.termios_before is not None and now is not None:
            lflag_bits = termios.ECHO | termios.ICANON | termios.ISIG
            if (now[3] & lflag_bits) != (self.termios_before[3] & lflag_bits):
                problems.append("the tty's echo/canonical/signal modes were not restored")
        return problems

    def _termios(self):
        if self._hung_up:
            return None
        try:
            return termios.tcgetattr(self.process.fd)
        except (termios.error, OSError, ValueError):
            return None

    def close(self) -> None:
        """Kill the process group if it is still there, reap it, close the pty: nothing is left behind."""
        if self.alive():
            self.kill9()
            deadline = time.monotonic() + 10
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
        try:
            os.killpg(self.pid, signals.SIGKILL)  # anything the app started in its group
        except (ProcessLookupError, PermissionError):
            pass
        self._closing = True
        self._reader.join(timeout=5)
        if not self._hung_up:
            try:
                self.process.fileobj.close()
            except OSError:
                pass

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Studio(Terminal):
    """`ai-writer [FILE] --config CONFIG` in an isolated home under `root`: executed afresh, or forked
    by `server` (a StudioServer; the same studio, its imports done already)."""

    def __init__(self, root: Path, config: Path, manuscript: Path | None = None, *, cols: int = 100,
                 rows: int = 30, extra_args: tuple = (), server: StudioServer | None = None):
        self.root = Path(root)
        self.config_path = config
        self.manuscript = manuscript
        self.forked = server is not None
        args = ["--config", str(config), *extra_args]
        if manuscript is not None:  # relative to the working folder when inside it, as a user types it
            inside = Path(manuscript).resolve().is_relative_to(self.root.resolve())
            args.append(os.path.relpath(manuscript, self.root) if inside else str(manuscript))
        argv = ([str(Path(sys.executable).with_name("ai-writer"))] if server else studio_command()) + args
        super().__init__(argv, env=isolated_env(self.root), cwd=self.root, cols=cols, rows=rows,
                         spawn=server.spawn if server else None)

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Until the model is loaded (the status line names the model file)."""
        stem = Path(self._model_name()).stem  # on the status line while loading ("loading NAME…") and once loaded

        def loaded(text: str) -> bool:
            status = "\n".join(text.splitlines()[-4:])
            return stem in status and f"loading {stem}" not in status

        return self.wait_for(loaded, timeout, message=f"waited for the status line to show {stem} loaded:")

    def _model_name(self) -> str:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib

        return Path(tomllib.loads(self.config_path.read_text(encoding="utf-8"))["model"]["path"]).name

    def file_text(self) -> str:
        """The manuscript on disk, decoded strictly."""
        return self.manuscript.read_bytes().decode("utf-8")

    def save_and_expect(self, expected: str) -> None:
        """ctrl+s, then wait until the manuscript on disk is exactly `expected`."""
        self.send(b"\x13")
        wait_file(self.manuscript, expected, screen=self)

    def candidates(self) -> list[dict]:
        """The candidate boxes on screen, in order: {"number", "length", "streaming", "text"}.

        Reads the bordered views ("╭─ 2 · 24 chars …" then "│ text │" rows), side by side or stacked;
        the text is the rows joined with their padding cut (candidates written without spaces)."""
        return candidate_boxes(self.screen_lines())

    def finished_candidates(self, count: int | None = None, timeout: float = 20.0, other_than=None) -> list[dict]:
        """Wait until the candidates (`count` of them, if given) have finished streaming, each text as
        long as its title says, the same on two reads in a row (a frame drawn whole) and, if given,
        other than `other_than` (the last ones); returns them."""
        reads = [None]

        def done(_screen) -> bool:
            found, previous = self.candidates(), reads[-1]
            reads.append(found)
            whole = all(not c["streaming"] and 0 < len(c["text"]) == c["length"] for c in found)
            return (bool(found) and whole and (count is None or len(found) == count)
                    and found != other_than and found == previous)

        self.wait_for(done, timeout, message="waited for finished candidates:")
        return reads[-1]


TITLE = re.compile(r"╭─ (\d+) · (\d+) chars( …)?")


def candidate_boxes(lines: list[str]) -> list[dict]:
    """The candidate boxes in a screen's lines, in order: {"number", "length", "streaming", "text"}; the text is the
    rows joined with their padding cut (candidates written without spaces). Also read from the browser's screen."""
    found, row = [], 0
    while row < len(lines):
        titles = TITLE.findall(lines[row])
        if not titles or "╭" not in lines[row]:
            row += 1
            continue
        texts = [""] * len(titles)
        row += 1
        while row < len(lines) and "╰" not in lines[row]:
            for i, part in enumerate(lines[row].split("│")[1::2][: len(titles)]):
                texts[i] += part.strip()
            row += 1
        for (number, length, streaming), text in zip(titles, texts):
            found.append({"number": int(number), "length": int(length), "streaming": bool(streaming), "text": text})
    return found


def wait_file(path: Path, expected: str, timeout: float = 10.0, screen: Terminal | None = None) -> None:
    """Until the file at `path` holds exactly `expected` (UTF-8); fails showing both texts."""
    deadline = time.monotonic() + timeout
    data = None
    while time.monotonic() < deadline:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = None
        if data == expected.encode("utf-8"):
            return
        time.sleep(0.05)
    shown = "(no file)" if data is None else repr(data.decode("utf-8", "replace"))
    raise AssertionError(f"{path} holds {shown}\nexpected {expected!r}" + (f"\n{screen.dump()}" if screen else ""))
