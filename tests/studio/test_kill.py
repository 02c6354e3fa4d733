"""SIGKILL the studio while it streams candidates and while it autosaves; the text survives.

Each run starts tests/kill_driver.py (the real StudioApp, headless, on a real
model and a real manuscript file) in its own folder. The driver logs every text
it is about to save ("pending") and every save that has finished ("done"),
fsynced, before it goes on. The test waits for the phase of interest, kills
the driver with SIGKILL at a random moment, and then checks the manuscript:

- it decodes as UTF-8 and is exactly the original or one of the pending texts
  (never a partial write, never a half-written temporary file renamed over it);
- it is at least as new as the newest save that had finished before the kill;
- the studio's loader reads the same text back;
- temporary files left behind are only the killed process's own, never the manuscript.

The drivers are forked from one server process that has imported torch and
the studio already (see tests/kill_driver.py), and several run at once, each in
its own folder, to keep the file short. SIGKILL ends the process but not the
machine, so this checks atomic replacement against a dying writer, not the
fsyncs against a power cut.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import ai_writer.studio.saver as saver_module
from ai_writer.studio.app import StudioApp
from ai_writer.studio.config import load_config
from ai_writer.studio.data.manuscript_file import load_manuscript
from tests.helpers import FIXTURES, REPO

SAMPLE = FIXTURES / "studio_snapshot_manuscript.txt"
NAME = "novel.txt"
PHASE_TIMEOUT = 60.0

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


@dataclass
class Run:
    folder: Path
    mode: str
    how: str  # "delay": kill after a random delay; "tmp": after a random delay, the moment a save's temporary file appears
    pid: int | None = None
    started_at: float = 0.0
    status: int | None = None
    phase_at: float | None = None
    delay: float = 0.0
    killed: bool = False
    tmp_seen_at_kill: bool = False

    def log_entries(self) -> list[dict]:
        """The side log; a last line cut short by the kill is left out (its save never started)."""
        path = self.folder / "log.jsonl"
        if not path.exists():
            return []
        entries = []
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines):
            if not line:
                continue
            try:
                entries.append(json.loads(line.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError):
                assert number == len(lines) - 1, f"{path}: a line other than the last is damaged"
        return entries

    def temp_files(self) -> list[str]:
        return [n for n in os.listdir(self.folder) if n.startswith(f".{NAME}.tmp-")]

    def output(self) -> str:
        return "".join((self.folder / f).read_text(errors="replace")[-2000:] for f in ("stdout.txt", "stderr.txt"))


def make_folder(folder: Path, model: Path, paragraphs: int) -> Path:
    folder.mkdir(parents=True)
    sample = SAMPLE.read_text(encoding="utf-8")
    (folder / NAME).write_text("\n".join([sample] * paragraphs), encoding="utf-8")
    (folder / "config.toml").write_text(
        f'[model]\npath = "{model}"\nbackend = "torch"\ndevice = "cpu"\n'
        "[generation]\ncandidates = 3\nlength = 2000\n"
        "[sampling]\nseed = 1\n"
        '[studio]\nlanguage = "en"\nautosave_seconds = 0.2\n',
        encoding="utf-8",
    )
    return folder


class ForkServer:
    """tests/kill_driver.py --serve: forks drivers on request, reaps them."""

    def __init__(self, model: Path, folder: Path):
        self.stderr = folder / "server-stderr.txt"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.kill_driver", "--serve", str(model)], cwd=REPO, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.stderr, "w"),
        )
        self.expect("ready")

    def expect(self, word: str) -> str:
        line = self.process.stdout.readline()
        if not line.startswith(word):
            self.process.kill()
            raise RuntimeError(f"fork server said {line!r}:\n{self.stderr.read_text()[-3000:]}")
        return line[len(word):].strip()

    def ask(self, command: str, answer: str) -> str:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.expect(answer)

    def start(self, run: Run) -> None:
        run.pid = int(self.ask(f"run {run.folder} {run.mode}", "pid"))
        run.started_at = time.monotonic()

    def reap(self, run: Run) -> int:
        run.status = int(self.ask(f"wait {run.pid}", "status"))
        return run.status

    @staticmethod
    def alive(run: Run) -> bool:
        """False once the driver has ended (a zombie until the server reaps it); it is not our child."""
        try:
            with open(f"/proc/{run.pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to watch the drivers")
    server = ForkServer(tiny_model, tmp_path_factory.mktemp("fork-server"))
    yield server
    server.close()


def kill_all(server: ForkServer, runs: list[Run], rng: random.Random) -> None:
    """Wait for each driver's phase, then kill it as its `how` says."""
    deadline = time.monotonic() + PHASE_TIMEOUT
    while not all(r.killed for r in runs):
        now = time.monotonic()
        for run in runs:
            if run.killed:
                continue
            if not server.alive(run):
                pytest.fail(f"driver ({run.mode}) ended by itself, status {server.reap(run)}:\n{run.output()}")
            if run.phase_at is None:
                if (run.folder / "phase").exists():
                    run.phase_at = now
                    run.delay = rng.uniform(0.0, 2.0) if run.how == "delay" else rng.uniform(0.3, 1.2)
                elif now > deadline:
                    pytest.fail(f"driver ({run.mode}) never reached its phase:\n{run.output()}")
                continue
            if now - run.phase_at < run.delay:
                continue
            if run.how == "tmp" and not run.temp_files():
                if now - run.phase_at > 15.0:
                    run.how = "delay"  # no save caught in the act; kill anyway
                continue
            os.kill(run.pid, signal.SIGKILL)
            run.tmp_seen_at_kill = bool(run.temp_files())
            run.killed = True
        watching = any(r.phase_at is not None and not r.killed and r.how == "tmp" for r in runs)
        time.sleep(0.0005 if watching else 0.01)
    for run in runs:
        assert server.reap(run) == -signal.SIGKILL


def check(run: Run) -> dict:
    entries = run.log_entries()
    assert entries and entries[0]["kind"] == "original"
    assert not [e for e in entries if e["kind"] == "error"], "a save failed"
    versions = [entries[0]["text"]] + [e["text"] for e in entries if e["kind"] == "pending"]
    for older, newer in zip(versions, versions[1:]):
        assert newer.startswith(older)  # the driver only ever adds at the end
    done = [e["text"] for e in entries if e["kind"] == "done"]

    path = run.folder / NAME
    data = path.read_bytes()
    text = data.decode("utf-8")  # strict: a torn write would likely break UTF-8 here
    assert text in versions, (
        f"the manuscript ({len(text)} chars) is none of the {len(versions)} logged versions "
        f"(lengths {sorted({len(v) for v in versions})[-5:]})"
    )
    if done:
        newest = max(done, key=len)
        assert len(text) >= len(newest), (
            f"a finished save ({len(newest)} chars) was lost: the file holds an older text ({len(text)} chars)"
        )
    assert load_manuscript(path).text == text
    for name in run.temp_files():  # a kill mid-write may leave one; only the dead process's own
        assert f".tmp-{run.pid}-" in name, name
    return {"versions": len(versions) - 1, "done": len(done), "length": len(text), "tmp_left": len(run.temp_files())}


def run_kills(server, tmp_path, tiny_model, mode: str, hows: list[str], paragraphs: int) -> list[dict]:
    rng = random.Random()
    runs = [Run(make_folder(tmp_path / f"{mode}-{i}", tiny_model, paragraphs), mode, how) for i, how in enumerate(hows)]
    try:
        for run in runs:
            server.start(run)
        kill_all(server, runs, rng)
    finally:
        for run in runs:
            if run.pid is not None and run.status is None:
                try:
                    os.kill(run.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                server.reap(run)
    results = []
    for run in runs:
        try:
            results.append(check(run) | {"how": run.how, "delay": round(run.delay, 3), "tmp_at_kill": run.tmp_seen_at_kill,
                                         "to_phase": round(run.phase_at - run.started_at, 2)})
        except AssertionError as exc:
            raise AssertionError(f"{run.folder} ({run.how}, delay {run.delay:.3f}): {exc}") from None
    print(mode, results)
    return results


def test_kill_while_streaming_and_accepting(server, tmp_path, tiny_model):
    results = run_kills(server, tmp_path, tiny_model, "stream", ["delay", "delay", "tmp"], paragraphs=20)
    assert any(r["versions"] for r in results), "no accept was saved before the kills"


def test_kill_during_autosave(server, tmp_path, tiny_model):
    results = run_kills(server, tmp_path, tiny_model, "autosave", ["tmp", "tmp", "delay"], paragraphs=200)
    assert any(r["versions"] for r in results), "no autosave happened before the kills"


def studio_without_autosave(tmp_path, tiny_model):
    """(app, manuscript): a studio on a short manuscript that saves only when asked (autosave after 10 minutes)."""
    manuscript = tmp_path / NAME
    manuscript.write_text("　　开头。", encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        f'[model]\npath = "{tiny_model}"\n[studio]\nlanguage = "en"\nautosave_seconds = 600.0\n', encoding="utf-8")
    config = load_config(tmp_path / "config.toml", user_path=tmp_path / "no-user.toml")
    return StudioApp(config, manuscript, data_dir=tmp_path / "data"), manuscript


async def wait_for(pilot, condition, timeout=10.0):
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    assert condition()


async def test_an_older_save_finishing_last_does_not_undo_a_newer_one(tmp_path, tiny_model, monkeypatch):
    """Two saves in flight (a slow disk, a descheduled thread): the file ends with the newer text."""
    real_save = saver_module.save_atomic
    first_started, release, first_done = threading.Event(), threading.Event(), threading.Event()
    calls = []

    def slow_first_save(path, text, newline="\n", **options):
        calls.append(text)
        first = len(calls) == 1
        if first:
            first_started.set()
            release.wait(10)
        fingerprint = real_save(path, text, newline, **options)
        if first:
            first_done.set()
        return fingerprint

    monkeypatch.setattr(saver_module, "save_atomic", slow_first_save)
    app, manuscript = studio_without_autosave(tmp_path, tiny_model)

    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("a", "ctrl+s")
        await wait_for(pilot, first_started.is_set)
        await pilot.press("b", "ctrl+s")
        await pilot.pause(0.3)  # the second save runs now, if the app lets it
        release.set()
        await wait_for(pilot, first_done.is_set)
        # the older save is done: only the newer one may still write (queued behind it, or already done, when the
        # file keeps the older text for good); on a loaded machine it can take a while to start
        await wait_for(pilot, lambda: manuscript.read_text(encoding="utf-8") == "　　开头。ab", timeout=15)
        await wait_for(pilot, lambda: all(w.is_finished for w in app.workers if w.group == "save"))
        await pilot.pause(0.3)
        assert app.editor.text == "　　开头。ab"
        assert manuscript.read_text(encoding="utf-8") == app.editor.text, "an older save overwrote a newer one"
        assert app.main.saved_text == app.editor.text
        if app.service is not None:
            app.service.close()


async def test_redo_while_the_undo_is_being_saved_is_saved_too(tmp_path, tiny_model, monkeypatch):
    """Undo, save, redo and save before the first save has landed: the redone text gets to disk (the second save
    must not think the file already holds it, as it did before the undo)."""
    real_save = saver_module.save_atomic
    hold = threading.Event()
    holding = threading.Event()

    def held_save(path, text, newline="\n", **options):  # the first save after the undo waits for `hold`
        if not hold.is_set():
            holding.set()
            hold.wait(10)
        return real_save(path, text, newline, **options)

    app, manuscript = studio_without_autosave(tmp_path, tiny_model)

    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("x", "y", "z", "ctrl+s")
        await wait_for(pilot, lambda: manuscript.read_text(encoding="utf-8") == "　　开头。xyz"
                       and not app.main.status.saving)
        monkeypatch.setattr(saver_module, "save_atomic", held_save)
        await pilot.press("ctrl+z")
        await wait_for(pilot, lambda: app.editor.text == "　　开头。")
        await pilot.press("ctrl+s")
        await wait_for(pilot, holding.is_set)
        await pilot.press("ctrl+y")
        await wait_for(pilot, lambda: app.editor.text == "　　开头。xyz")
        await pilot.press("ctrl+s")
        hold.set()
        await wait_for(pilot, lambda: manuscript.read_text(encoding="utf-8") == "　　开头。xyz"
                       and not app.main.status.saving)
        assert not app.main.status.dirty
        if app.service is not None:
            app.service.close()
