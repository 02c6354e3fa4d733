"""Big manuscripts in the studio: first frame and keystroke echo under a pty, UI-thread stalls while saving.

    .venv/bin/python bench/bench_big_manuscript.py                 # 30 MB and 25 MB, no model (about 1 min)
    .venv/bin/python bench/bench_big_manuscript.py --model M.safetensors --mb 30 --save-mb 25

bench_studio.py runs the same measures with its first model and prints the rows in its table.
Every measure is taken on a BASELINE_KB manuscript too, in the same run.

1. `ai-writer --config C FILE` under a pseudo-terminal of 120 x 40 (XDG folders in a temp
   folder): from the spawn to the output containing the manuscript's last characters (the
   first frame: the editor opens at the end), then at once a key (a Cyrillic letter, which no
   manuscript here contains, so that its echo is unmistakable) and the time until the terminal
   is sent that letter; then KEYS - 1 more keys, one every KEY_INTERVAL s, each timed the same way.
2. The real StudioApp headless (App.run_test) on the manuscript: once the editor has wrapped it
   all and a second has passed, an asyncio task on the UI thread's loop sleeps PROBE_SLEEP s
   over and over and records how late it wakes (the event loop's lag: any stretch the UI
   thread spends on one thing, or waiting for the GIL). The longest lag over IDLE_SECONDS with
   nothing to do is the baseline; then a typed 'a' and ctrl+s (as the driver delivers keys),
   and the longest lag from ctrl+s until the file on disk has changed and AFTER_SAVE s more.

The manuscripts are the corpus in shared/corpus repeated (paragraphs of Chinese prose), cut at
the end of a paragraph; without that folder, generated paragraphs of CJK text.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import random
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
SIZE = (120, 40)
BASELINE_KB = 100
KEYS = 10
KEY_INTERVAL = 0.15
KEY_CHARS = "жзийклмнопрстуфхцчшщъыьэюя"
FIRST_FRAME_TIMEOUT = 120.0
ECHO_TIMEOUT = 30.0
PROBE_SLEEP = 0.002
IDLE_SECONDS = 2.0
AFTER_SAVE = 0.5
TARGET_FIRST_FRAME_S = 3.0


def corpus_text(size_bytes: int) -> str:
    """About `size_bytes` of UTF-8 prose, cut at the end of a paragraph."""
    files = sorted(CORPUS.glob("*.txt")) if CORPUS.is_dir() else []
    parts, size = [], 0
    while files and size < size_bytes:
        for path in files:
            part = path.read_text(encoding="utf-8").strip("\n") + "\n"
            parts.append(part)
            size += len(part.encode("utf-8"))
            if size >= size_bytes:
                break
    if not parts:  # no corpus: paragraphs of common ideographs and punctuation
        rng = random.Random(0)
        ideographs = [chr(0x4E00 + rng.randrange(3000)) for _ in range(3000)]
        while size < size_bytes:
            paragraph = "　　" + "".join(rng.choice(ideographs) + ("，" if rng.random() < 0.1 else "")
                                       for _ in range(rng.randint(20, 400))) + "。\n"
            parts.append(paragraph)
            size += len(paragraph.encode("utf-8"))
    data = "".join(parts).encode("utf-8")[:size_bytes].decode("utf-8", "ignore")
    end = data.rfind("\n")
    return data[:end] if end > 0 else data


def write_sized(folder: Path, name: str, size_bytes: int) -> tuple[Path, str]:
    text = corpus_text(size_bytes)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path, text


def write_config(folder: Path, model: Path | None) -> Path:
    """A config naming `model` (None: a file that is not there; the studio runs without a model)."""
    path = folder / "config-big.toml"
    model_path = model if model is not None else folder / "no-model.safetensors"
    path.write_text(f'[model]\npath = "{model_path}"\ndevice = "cpu"\n[studio]\nlanguage = "en"\n', encoding="utf-8")
    return path


# -- 1. under a pseudo-terminal -----------------------------------------------------------


def spawn_studio(config_path: Path, manuscript: Path, home: Path) -> tuple[subprocess.Popen, int, float]:
    """`ai-writer --config C FILE` under a pty of SIZE, with its own config and data folders under `home`:
    (the process, the pty's master side, when it was started)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTUAL")}
    env.update(XDG_CONFIG_HOME=str(home / "xdg-config"), XDG_DATA_HOME=str(home / "xdg-data"),
               TERM="xterm-256color", COLORTERM="truecolor", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
    script = REPO / ".venv" / "bin" / "ai-writer"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ai_writer.studio.cli"]
    started = time.perf_counter()
    proc = subprocess.Popen(command + ["--config", str(config_path), str(manuscript)], stdin=slave, stdout=slave,
                            stderr=slave, env=env, cwd=str(home), start_new_session=True, close_fds=True)
    os.close(slave)
    return proc, master, started


def stop_studio(proc: subprocess.Popen, master: int) -> None:
    """Kill the studio's process group if it is still running, and close the pty."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    os.close(master)


def open_and_type(config_path: Path, manuscript: Path, text: str, home: Path) -> dict:
    """Spawn the studio on `manuscript`, time its first frame and the echo of each typed key."""
    keys = [c for c in KEY_CHARS if c not in text][:KEYS]
    proc, master, started = spawn_studio(config_path, manuscript, home)
    output = bytearray()
    result: dict = {"first_frame": None, "echoes_ms": [], "missing": 0}

    def read_until(predicate, seconds: float) -> bool:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            ready, _, _ = select.select([master], [], [], 0.005)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return False
                if not data:
                    return False
                output.extend(data)
                if predicate():
                    return True
            elif proc.poll() is not None:
                return False
        return predicate()

    try:
        last = text.rstrip()[-3:].encode("utf-8")
        if read_until(lambda: last in output, FIRST_FRAME_TIMEOUT):
            result["first_frame"] = time.perf_counter() - started
            for n, key in enumerate(keys):
                if n:
                    read_until(lambda: False, KEY_INTERVAL)  # keep reading while waiting
                mark, wanted = len(output), key.encode("utf-8")
                sent = time.perf_counter()
                os.write(master, wanted)
                if read_until(lambda: wanted in output[mark:], ECHO_TIMEOUT):
                    result["echoes_ms"].append((time.perf_counter() - sent) * 1000)
                else:
                    result["missing"] += 1
        os.write(master, b"\x11")  # ctrl+q (saves the typed keys first)
        end = time.perf_counter() + 30
        while proc.poll() is None and time.perf_counter() < end:
            read_until(lambda: False, 0.05)
    finally:
        stop_studio(proc, master)
    if result["first_frame"] is None:
        tail = bytes(output[-400:]).decode("utf-8", "replace")
        print(f"warning: {manuscript.name}: no first frame seen; output ended with {tail!r}", file=sys.stderr)
    return result


# -- 2. event-loop lag while saving, headless -------------------------------------------------


async def save_stall(config_path: Path, manuscript: Path, data_dir: Path) -> dict:
    from textual import events

    from ai_writer.studio.app import StudioApp
    from ai_writer.studio.config import load_config

    config = load_config(config_path, user_path=config_path.parent / "no-user.toml")
    app = StudioApp(config, manuscript, data_dir=data_dir)
    lags: list[tuple[float, float]] = []  # (when, how late the probe woke)
    running = True

    async def probe() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(PROBE_SLEEP)
            now = time.perf_counter()
            lags.append((now, max(0.0, now - last - PROBE_SLEEP)))
            last = now

    def worst(start: float, end: float) -> float:
        return max((lag for when, lag in lags if start <= when <= end), default=float("nan")) * 1000

    def send(key: str, character: str | None) -> None:
        event = events.Key(key, character)
        event.set_sender(app)
        app._driver.send_message(event)

    async with app.run_test(size=SIZE):
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:  # loaded and wrapped in full (no idle wrapping left)
            editor = app.editor
            if editor.document.line_count > 1 and not getattr(editor.wrapped_document, "pending_lines", 0):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        task = asyncio.create_task(probe())
        idle_start = time.perf_counter()
        await asyncio.sleep(IDLE_SECONDS)
        idle = worst(idle_start, time.perf_counter())
        send("a", "a")
        await asyncio.sleep(0.3)
        before = manuscript.stat()
        pressed = time.perf_counter()
        send("ctrl+s", None)
        saved = None
        while time.perf_counter() - pressed < 60:
            now = manuscript.stat()
            if (now.st_size, now.st_mtime_ns, now.st_ino) != (before.st_size, before.st_mtime_ns, before.st_ino):
                saved = time.perf_counter()
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(AFTER_SAVE)
        running = False
        await task
        stall = worst(pressed, time.perf_counter())
    return {"idle_ms": idle, "stall_ms": stall, "save_s": None if saved is None else saved - pressed}


# -- the rows ---------------------------------------------------------------------------------


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def fmt(value, digits: int = 1) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def measure(config_path: Path, folder: Path, rows: list, notes: list, big_mb: float = 30, save_mb: float = 25,
            label: str = "") -> None:
    """The big-manuscript rows (and notes) for the studio run with `config_path`."""
    prefix = f"{label}: " if label else ""
    baseline_path, baseline_text = write_sized(folder, "baseline.txt", BASELINE_KB * 1000)
    big_path, big_text = write_sized(folder, "big.txt", int(big_mb * 1_000_000))
    sizes = {"baseline": f"{BASELINE_KB} KB", "big": f"{big_mb:g} MB"}
    opened = {}
    for name, path, text in (("baseline", baseline_path, baseline_text), ("big", big_path, big_text)):
        home = folder / f"home-{name}"
        home.mkdir(exist_ok=True)
        opened[name] = open_and_type(config_path, path, text, home)
        path.write_text(text, encoding="utf-8")  # the typed keys were saved on quit
    for name in ("baseline", "big"):
        result, size = opened[name], sizes[name]
        first = result["first_frame"]
        target = f"<= {TARGET_FIRST_FRAME_S:.0f} s" if name == "big" else ""
        met = ("yes" if first is not None and first <= TARGET_FIRST_FRAME_S else "**no**") if name == "big" else ""
        rows.append(row(f"{prefix}{size} manuscript: `ai-writer FILE` to the first frame, pty {SIZE[0]}x{SIZE[1]} (s)",
                        fmt(first, 2) if first is not None else "not seen", target, met))
        echoes = result["echoes_ms"]
        rows.append(row(f"{prefix}{size} manuscript: first key right after the first frame, to its echo (ms)",
                        fmt(echoes[0]) if echoes else "-", "", ""))
        rows.append(row(f"{prefix}{size} manuscript: the next {max(0, len(echoes) - 1)} keys' echo, median / max (ms)",
                        f"{fmt(statistics.median(echoes[1:]))} / {fmt(max(echoes[1:]))}" if len(echoes) > 1 else "-",
                        "", ""))
        if result["missing"]:
            notes.append(f"{prefix}{size}: {result['missing']} typed keys were never echoed")
    big_path.unlink()

    save_path, save_text = write_sized(folder, "save.txt", int(save_mb * 1_000_000))
    baseline_path.write_text(baseline_text, encoding="utf-8")
    for name, path, size in (("baseline", baseline_path, f"{BASELINE_KB} KB"), ("big", save_path, f"{save_mb:g} MB")):
        stall = asyncio.run(save_stall(config_path, path, folder / f"data-save-{name}"))
        rows.append(row(f"{prefix}{size} manuscript: ctrl+s, longest UI-thread stall until saved + {AFTER_SAVE:g} s "
                        f"(ms; idle: longest in {IDLE_SECONDS:g} s doing nothing)",
                        f"{fmt(stall['stall_ms'])} (idle {fmt(stall['idle_ms'])})", "", ""))
        notes.append(f"{prefix}{size} save: ctrl+s to the file changed on disk in "
                     + (f"{stall['save_s']:.2f} s" if stall["save_s"] is not None else "**never (60 s)**"))
    save_path.unlink()
    notes.append(f"{prefix}manuscripts: {len(baseline_text):,} characters ({BASELINE_KB} KB), "
                 f"{len(big_text):,} characters ({big_mb:g} MB, {big_text.count(chr(10)) + 1:,} paragraphs), "
                 f"{len(save_text):,} characters ({save_mb:g} MB) for the save; keys typed one every "
                 f"{KEY_INTERVAL * 1000:.0f} ms after the first")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=30, help="size of the big manuscript opened and typed in (MB)")
    parser.add_argument("--save-mb", type=float, default=25, help="size of the manuscript saved (MB)")
    parser.add_argument("--model", type=Path, help="a model for the studio to load meanwhile (default: none)")
    args = parser.parse_args(argv)
    rows, notes = [], []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-big-") as tmp_name:
        folder = Path(tmp_name)
        measure(write_config(folder, args.model), folder, rows, notes, args.mb, args.save_mb)
    print("# Studio with big manuscripts" + (f" (model {args.model.name})" if args.model else " (no model)"))
    print()
    print(row("Measure", "Value", "Target", "Met"))
    print(row("---", "---:", "---", "---"))
    print("\n".join(rows))
    print()
    for note in notes:
        print(f"- {note}")
    print(f"- Total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
