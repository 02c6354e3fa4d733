"""Drive the real StudioApp headless until killed; log every version it may save.

Used by tests/test_studio_kill.py, which SIGKILLs the driver at a random
moment and then checks the manuscript on disk. Run from the repository root:

    python -m tests.kill_driver WORKDIR MODE      one driver, in this process
    python -m tests.kill_driver --serve MODEL     a fork server (what the test uses)

The fork server imports torch, Textual and the studio and loads MODEL once
(one torch thread, so no thread pool exists to break in a forked child), says
"ready", then reads commands on standard input:

    run WORKDIR MODE  ->  "pid PID"      fork a driver (its output goes to WORKDIR/stdout.txt, stderr.txt)
    wait PID          ->  "status CODE"  reap it (-9 after SIGKILL)

so that each driver starts in well under a second instead of paying for
importing torch again. The children are the real StudioApp all the same; they
load the model themselves, through the app, as usual.

WORKDIR holds config.toml and novel.txt; the driver appends JSON lines to
WORKDIR/log.jsonl, each written, flushed and fsynced before it goes on:

    {"kind": "original", "text": ...}  the manuscript as it was on disk at the start
    {"kind": "pending", "text": ...}   a save of exactly this text is about to start
    {"kind": "done", "text": ...}      that save has finished (the file was renamed
                                       into place and the folder fsynced)
    {"kind": "error", "text": ...}     a save failed (never expected here)
    {"kind": "phase", "text": MODE}    the driver is now in the phase of interest
                                       (it also creates WORKDIR/phase, cheaper to watch)

MODE "stream": generate long candidates and accept the first (alt+1) while it
is still streaming, over and over: every accept saves at once.
MODE "autosave": type Chinese text in bursts and pause past autosave_seconds,
so autosaves of a large manuscript keep happening.

The driver gives up (exit status 3) after MAX_SECONDS if nobody killed it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import traceback
from pathlib import Path

from textual import events
from textual.keys import _character_to_key

from ai_writer.studio.app import StudioApp
from ai_writer.studio.screens.main_screen import MainScreen
from ai_writer.studio.config import load_config
from ai_writer.studio.data.manuscript_file import load_manuscript

MAX_SECONDS = 60.0
TYPED = "他抬起头，望向远处灰蒙蒙的天空。“走吧！”少年说。　　雨还在下，风吹过林间的小路。"


class SideLog:
    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")

    def write(self, kind: str, text: str) -> None:
        self.file.write(json.dumps({"kind": kind, "text": text}, ensure_ascii=False) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())
        if kind == "phase":
            (Path(self.file.name).parent / "phase").touch()


class LoggedMainScreen(MainScreen):
    """The main screen, logging each save before it starts and after it has finished."""

    def save_now(self, convert_to_utf8: bool = False):
        if self.path is not None and self.editor.edit_version != self.saved_version:
            self.app.side_log.write("pending", self.editor.text)  # exactly what save_now will pass on
        return super().save_now(convert_to_utf8)

    def on_save_finished(self, message) -> None:
        super().on_save_finished(message)
        if message.error:
            self.app.side_log.write("error", message.error)
        else:
            self.app.side_log.write("done", message.text)


class LoggedStudio(StudioApp):
    MAIN_SCREEN = LoggedMainScreen
    side_log: SideLog


async def wait_until(pilot, condition, timeout=20.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await pilot.pause(0.01)
    if not condition():
        raise SystemExit(f"kill_driver: timed out waiting (status: {pilot.app.status.message!r})")


def send_key(app: StudioApp, key: str) -> None:
    """One key as a terminal sends it (with its character), without Pilot's waits for idle.

    Pilot.press waits until the process is idle, up to a second or two per key
    while candidates stream in; it also drops the character of keys such as
    '，' (it cannot look the character up from the key's name).
    """
    character = key if len(key) == 1 else None
    name = _character_to_key(key) if character is not None else key
    app.post_message(events.Key(name, character))


async def stream(pilot, app: LoggedStudio, rng: random.Random) -> None:
    phase_logged = False
    while True:
        previous = app.job
        send_key(app, "ctrl+g")
        want = rng.randint(2, 40)
        await wait_until(pilot, lambda: app.job is not previous and len(app.candidates.candidates) == 3
                         and len(app.candidates.candidates[0].text) >= want)
        if not phase_logged:
            app.side_log.write("phase", "stream")
            phase_logged = True
        send_key(app, "alt+1")  # while it streams: inserted, and saved at once
        await wait_until(pilot, lambda: not app.candidates.candidates)
        await pilot.pause(rng.uniform(0.0, 0.03))


async def autosave(pilot, app: LoggedStudio, rng: random.Random) -> None:
    delay = app.config.studio.autosave_seconds
    phase_logged = False
    position = 0
    while True:
        for _ in range(rng.randint(1, 6)):
            send_key(app, TYPED[position % len(TYPED)])
            position += 1
            await pilot.pause(0.01)
        if not phase_logged:
            app.side_log.write("phase", "autosave")
            phase_logged = True
        await pilot.pause(delay + rng.uniform(0.0, 0.15))  # the autosave fires in here


MODES = {"stream": stream, "autosave": autosave}


async def main(workdir: Path, mode: str) -> None:
    log = SideLog(workdir / "log.jsonl")
    manuscript = workdir / "novel.txt"
    log.write("original", load_manuscript(manuscript).text)
    config = load_config(workdir / "config.toml", user_path=workdir / "no-user.toml")
    app = LoggedStudio(config, manuscript, data_dir=workdir / "data")
    app.side_log = log
    rng = random.Random(os.getpid())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.service is not None, timeout=60.0)
        try:
            await asyncio.wait_for(MODES[mode](pilot, app, rng), MAX_SECONDS)
        except asyncio.TimeoutError:
            print("kill_driver: nobody killed me", file=sys.stderr)
            os._exit(3)


def child(folder: Path, mode: str) -> None:
    """In a forked child: run one driver with its output in WORKDIR; never returns."""
    code = 1
    try:
        for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
            target = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        asyncio.run(main(folder, mode))
        code = 0
    except SystemExit as exc:
        if exc.code not in (None, 0):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(model: str) -> None:
    import torch

    torch.set_num_threads(1)  # before any op: no OpenMP pool in the parent of the forks
    from ai_writer.backends import load

    load(model, backend="torch", device="cpu")  # pulls in the modules torch imports lazily, once
    import gc

    gc.collect()
    gc.freeze()  # the drivers' collections leave what is here alone: no copy of every page on the first one
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "run":
            folder, mode = Path(args[0]), args[1]
            pid = os.fork()
            if pid == 0:
                child(folder, mode)
            print(f"pid {pid}", flush=True)
        elif command == "wait":
            _, status = os.waitpid(int(args[0]), 0)
            print(f"status {os.waitstatus_to_exitcode(status)}", flush=True)
        else:
            print(f"unknown command {command!r}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        folder, which = Path(sys.argv[1]), sys.argv[2]
        if which not in MODES:
            raise SystemExit(f"unknown mode {which!r}")
        asyncio.run(main(folder, which))
