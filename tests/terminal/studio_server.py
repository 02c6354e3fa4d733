"""A fork server for the real-terminal tests: `ai-writer` started in a twentieth of the time.

    python -m tests.terminal.studio_server MODEL      (from the repository root)

It imports torch, Textual and the studio and loads MODEL once (one torch thread, so no
thread pool exists to break in a forked child), says {"ready": true}, then reads one JSON
request a line on standard input:

    {"id": N, "argv": [...], "env": {...}, "cwd": DIR, "tty": "/dev/pts/K"}

and forks a child that becomes what `ai-writer ARGS` would be: a new session whose
controlling terminal is that pseudo-terminal (its standard input, output and error), in
DIR with exactly that environment, running ai_writer.studio.cli.main and ending through
the interpreter's own exit (threads joined, atexit run, SystemExit's code as its status).
It answers {"id": N, "pid": PID} once the child has the terminal open, and
{"exit": PID, "code": CODE} when a child ends (CODE -N after signal N, as subprocess).
The children are the real studio on a real terminal; only the imports were done earlier.
"""

from __future__ import annotations

import io
import json
import os
import select
import sys

LINE_END = b"\n"


def say(message: dict) -> None:
    os.write(1, json.dumps(message).encode("utf-8") + LINE_END)


def warm_up(model: str) -> None:
    import torch

    torch.set_num_threads(1)  # before any op: no OpenMP pool in the parent of the forks
    import ai_writer.studio.app  # noqa: F401  (Textual, the screens, the widgets)
    import ai_writer.studio.cli  # noqa: F401
    from ai_writer.backends import load

    load(model, backend="torch", device="cpu")  # the modules torch imports lazily while a model is built
    import gc

    gc.collect()
    gc.freeze()  # the children's collections leave what is here alone: no copy of every page on the first one


def become_studio(request: dict, ready_fd: int) -> None:
    """In the forked child: take the terminal, the folder, the environment and the arguments; run the
    studio; leave by SystemExit (never returns into the server's loop: nothing there catches it)."""
    import fcntl
    import signal
    import termios

    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    tty = os.open(request["tty"], os.O_RDWR)
    fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(tty, fd)
    os.close(tty)
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # Standard streams as a fresh interpreter opens them (PYTHONUNBUFFERED: writes go straight through).
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(open(0, "rb", closefd=False), encoding="utf-8")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(open(1, "wb", buffering=0, closefd=False), encoding="utf-8",
                                                   line_buffering=True, write_through=True)
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(open(2, "wb", buffering=0, closefd=False), encoding="utf-8",
                                                   errors="backslashreplace", line_buffering=True, write_through=True)
    script = request["argv"][0]
    sys.argv = [script, *request["argv"][1:]]
    sys.path[0] = os.path.dirname(script)  # as when the console script runs: not the repository root
    from ai_writer.studio.cli import main

    raise SystemExit(main(sys.argv[1:]))


def start(request: dict) -> int:
    """Fork the child for `request`; returns its pid once it holds the terminal."""
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_read)
        try:
            become_studio(request, ready_write)
        except SystemExit:
            raise
        except BaseException:  # before main: say why on the terminal, then end as a failed start would
            import traceback

            traceback.print_exc()
            os._exit(1)
    os.close(ready_write)
    os.read(ready_read, 1)  # b"" if the child died before taking the terminal
    os.close(ready_read)
    return pid


def reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        say({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def serve(model: str) -> None:
    warm_up(model)
    say({"ready": True})
    pending = b""
    while True:
        ready, _, _ = select.select([0], [], [], 0.02)
        reap()
        if not ready:
            continue
        data = os.read(0, 65536)
        if not data:  # the tests are done; children still running are the tests' to kill
            return
        pending += data
        while LINE_END in pending:
            line, pending = pending.split(LINE_END, 1)
            request = json.loads(line)
            say({"id": request["id"], "pid": start(request)})


if __name__ == "__main__":
    serve(sys.argv[1])
