"""SIGKILL the real studio at random moments while the author types, streams, accepts and saves:
no character typed or accepted more than 3 s before the kill is lost.

Each trial runs `ai-writer` under its own pseudo-terminal in its own folder, types one
character every 0.3-1.5 s (random), and kills the process group with SIGKILL at a random
moment. What the document held at each moment is known from what was sent, so the file on
disk must start with the document as it was 3 s before the kill (the autosave fires at most
2 s after the first unsaved change; 1 s is left for the key to arrive and the save itself
under load), and must be a prefix of the document at the kill (nothing invented, nothing
torn). Sixteen trials run at once (they mostly wait) to keep the file short: all trials run
once, in one pool, and each test checks its own kind. Most studios are forked by the studio
server (tests/terminal/studio_server.py: ready in half a second); the "typing-cold" trials
execute `ai-writer` afresh, so the model loads (torch importing in a thread) while the author
types. The "typing-no-model" trials name a model file that does not exist (the studio says so
on its status line and carries on): typing and saving must be the same.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.terminal.harness import Studio, StudioServer, alt, ctrl, write_config

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

ORIGINAL = "　　他走进了房间。\n"
TYPED_CHARS = "她抬起头笑了看见海风雨夜门窗灯光心里想着什么，。"
SAFE_AFTER = 3.0  # seconds: anything typed or accepted longer ago than this must be on disk
SLOTS = 16
TYPING_KINDS = ["typing-cold", "typing", "typing-no-model", "typing", "typing-no-model"] * 6  # cold ones spread out
START_TIMEOUT = 40.0  # sixteen studios starting at once on two busy cores
# Cold starts under way at once. Six at once starve each other on two cores (torch importing in
# each one's loader thread): a key typed in the first second then waited up to 2 s to be read,
# and its autosave landed up to 3.8 s after it, a load this file made, not one an author meets.
# Two at once still lost a first key now and then beside the suite's other worker (half of the runs
# with two busy loops beside this file; none of 5 with one cold start at a time).
COLD_STARTS = threading.Semaphore(1)


@dataclass
class Trial:
    number: int
    kind: str  # "typing", "typing-cold", "typing-no-model", "stream", "accept" or "save"
    folder: Path
    rng: random.Random
    events: list = field(default_factory=list)  # (monotonic time sent, text appended)
    killed_at: float | None = None
    notes: list = field(default_factory=list)
    clock: tuple[float, float] = (0.0, 0.0)  # (time.time(), time.monotonic()) at the start: file times on the timeline

    def document_at(self, moment: float) -> str:
        return ORIGINAL + "".join(text for when, text in self.events if when <= moment)

    def describe(self) -> str:
        start = self.events[0][0] if self.events else self.killed_at or 0.0
        timeline = " ".join(f"{when - start:+.2f}:{text[:8]}" for when, text in self.events)
        killed = f"{self.killed_at - start:+.2f}" if self.killed_at else "never"
        try:  # when the last save wrote the manuscript (its temporary file, renamed into place)
            written = (self.folder / "novel.txt").stat().st_mtime - self.clock[0] + self.clock[1] - start
            saved = f"the file last written at {written:+.2f}"
        except FileNotFoundError:
            saved = "no file"
        return (f"trial {self.number} ({self.kind}, {self.folder}): events {timeline}; killed at {killed}; "
                f"{saved}; {'; '.join(self.notes)}")


def type_until(studio: Studio, trial: Trial, until: float) -> None:
    """One random character every 0.3-1.5 s until `until` (monotonic), each logged as it is sent."""
    while True:
        pause = trial.rng.uniform(0.3, 1.5)
        if time.monotonic() + pause >= until:
            time.sleep(max(0.0, until - time.monotonic()))
            return
        time.sleep(pause)
        char = trial.rng.choice(TYPED_CHARS)
        studio.send(char.encode("utf-8"))
        trial.events.append((time.monotonic(), char))


def release_once_loaded(studio: Studio, gate: threading.Semaphore) -> None:
    """Release `gate` once the studio's model has loaded (or the studio has ended), without waiting here."""
    def watch() -> None:
        try:
            studio.wait_ready(START_TIMEOUT)
        except AssertionError:
            pass  # killed while loading, or a failure the trial itself reports
        finally:
            gate.release()

    threading.Thread(target=watch, name=f"cold-start-{studio.pid}", daemon=True).start()


def kill(studio: Studio, trial: Trial) -> None:
    shown = [line.strip() for line in studio.screen_lines()[:3] if line.strip()]
    trial.notes.append(f"on screen just before the kill: {' / '.join(shown)!r}")
    trial.killed_at = time.monotonic()
    studio.kill9()
    assert studio.exit_status(timeout=10) == -signal.SIGKILL, trial.describe()


def run_trial(trial: Trial, model: Path, server: StudioServer) -> None:
    trial.clock = (time.time(), time.monotonic())
    trial.folder.mkdir(parents=True)
    manuscript = trial.folder / "novel.txt"
    manuscript.write_text(ORIGINAL, encoding="utf-8")
    length = 20000 if trial.kind == "stream" else 16
    if trial.kind == "typing-no-model":
        model = trial.folder / "no-model.safetensors"
    config = write_config(trial.folder / "config.toml", model,
                          generation={"candidates": 2, "length": length, "banned_chars": "\n", "threads": 1})
    rng = trial.rng
    cold = trial.kind == "typing-cold"
    if cold:
        COLD_STARTS.acquire()
    try:
        studio = Studio(trial.folder, config, manuscript, cols=90, rows=24, server=None if cold else server)
    except BaseException:
        if cold:
            COLD_STARTS.release()
        raise
    if cold:
        release_once_loaded(studio, COLD_STARTS)
    with studio:
        studio.wait_for("他走进了房间", START_TIMEOUT)
        if trial.kind.startswith("typing"):
            type_until(studio, trial, time.monotonic() + rng.uniform(3.5, 7.5))
        else:
            studio.wait_ready(START_TIMEOUT)
            type_until(studio, trial, time.monotonic() + rng.uniform(1.5, 4.0))
            if trial.kind == "stream":
                time.sleep(rng.uniform(0.0, 2.5))
                studio.send(ctrl("g"))
                studio.wait_for(lambda _s: any(c["streaming"] and c["length"] for c in studio.candidates()), 30,
                                message=f"{trial.describe()}: waited for streaming:")
                trial.notes.append(f"streaming from {time.monotonic() - trial.events[0][0]:+.2f}")
                time.sleep(rng.uniform(0.2, 4.0))
                if not any(c["streaming"] for c in studio.candidates()):
                    trial.notes.append("streaming had ended")
            elif trial.kind == "accept":
                studio.send(ctrl("g"))
                text = studio.finished_candidates(2, timeout=30)[0]["text"]
                studio.send(alt("1", "kitty"))
                trial.events.append((time.monotonic(), text))
                studio.wait_for("accepted candidate 1", 10, message=f"{trial.describe()}:")
                type_until(studio, trial, trial.events[-1][0] + rng.uniform(0.0, 4.0))
            elif trial.kind == "save":
                studio.send(ctrl("s"))
                trial.notes.append(f"ctrl+s at {time.monotonic() - trial.events[0][0]:+.2f}")
                type_until(studio, trial, time.monotonic() + rng.uniform(0.0, 3.0))
        kill(studio, trial)


def check(trial: Trial) -> dict:
    data = (trial.folder / "novel.txt").read_bytes()
    text = data.decode("utf-8")  # strict: a torn write would break here
    must_have = trial.document_at(trial.killed_at - SAFE_AFTER)
    at_kill = trial.document_at(trial.killed_at)
    assert text.startswith(must_have), (
        f"{trial.describe()}\nlost {len(must_have) - len(os.path.commonprefix([text, must_have]))} characters "
        f"typed or accepted more than {SAFE_AFTER} s before the kill:\nfile     {text!r}\nexpected {must_have!r}…")
    assert at_kill.startswith(text), f"{trial.describe()}\nthe file {text!r} is not what was typed ({at_kill!r})"
    return {"kept": len(text) - len(ORIGINAL), "required": len(must_have) - len(ORIGINAL),
            "typed": len(at_kill) - len(ORIGINAL)}


@dataclass
class Outcome:
    trial: Trial
    result: dict | None = None
    problem: str = ""


def run_all(trials: list[Trial], model: Path, server: StudioServer) -> list[Outcome]:
    """Run every trial, SLOTS at once; each one's check result or what went wrong."""
    outcomes = {trial.number: Outcome(trial) for trial in trials}

    def one(trial: Trial) -> None:
        outcome = outcomes[trial.number]
        try:
            run_trial(trial, model, server)
        except BaseException as exc:  # noqa: BLE001 - reported by the test of this kind
            outcome.problem = f"{trial.describe()}: {exc if isinstance(exc, AssertionError) else repr(exc)}"
            return
        try:
            outcome.result = check(trial)
        except AssertionError as exc:
            outcome.problem = str(exc)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=SLOTS) as pool:
        list(pool.map(one, trials))
    print(f"{len(trials)} kill trials, {SLOTS} at once, in {time.monotonic() - started:.1f} s")
    return list(outcomes.values())


def assert_nothing_lost(outcomes: list[Outcome], kinds: set[str]) -> list[dict]:
    mine = [o for o in outcomes if o.trial.kind in kinds]
    failures = [o.problem for o in mine if o.problem]
    results = [o.result for o in mine if o.result is not None]
    print(f"{len(mine)} trials ({', '.join(sorted(kinds))}): {results}")
    assert not failures, f"{len(failures)} of {len(mine)} trials failed:\n\n" + "\n\n".join(failures)
    assert sum(r["required"] for r in results) > 0, "no trial typed long enough before its kill to check anything"
    return results


@pytest.fixture(scope="module")
def kill_outcomes(tmp_path_factory, terminal_model, studio_server) -> list[Outcome]:
    """Every trial of this file, run once: the slow ones (candidates to write; a cold start) start first."""
    base = random.randrange(1 << 30)
    print(f"random seed base {base}")
    kinds = ["stream", "accept", "save"] * 2 + TYPING_KINDS
    folder = tmp_path_factory.mktemp("kills")
    trials = [Trial(i, kind, folder / f"{kind}-{i}", random.Random(base + i)) for i, kind in enumerate(kinds)]
    return run_all(trials, terminal_model, studio_server)


def test_sigkill_while_typing_steadily_loses_nothing_older_than_3_s(kill_outcomes):
    results = assert_nothing_lost(kill_outcomes, {"typing", "typing-cold", "typing-no-model"})
    assert len(results) >= 30


def test_sigkill_while_streaming_accepting_and_saving_loses_nothing_older_than_3_s(kill_outcomes):
    assert_nothing_lost(kill_outcomes, {"stream", "accept", "save"})
