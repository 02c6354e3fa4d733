"""Responsiveness of the studio: keystroke-to-screen latency while candidates stream, and start-up.

Run from the repository root:

    .venv/bin/python bench/bench_studio.py            # random 4x256 and 12x768 RWKV-7 (about 2-3 min on 2 cores)
    .venv/bin/python bench/bench_studio.py --quick    # 4x256 only, fewer keystrokes (about 1 min)
    .venv/bin/python bench/bench_studio.py --models 4x256,6x256   # other shapes (6 x 256: the bundled model's)
    .venv/bin/python bench/bench_studio.py --models bundled --big-mb 0   # the bundled (trained) model itself

Both default models are random RWKV-7s (models.rwkv7.init_weights via tests.helpers) with the real
AI-Writer vocabulary; 12 x 768 is AI-Writer's size, 4 x 256 a small one. Random weights write
characters at the same speed as trained ones, but not the same text, and their next-character
distributions are flat where a trained model's are peaked (which the top_p cut's cost follows);
`bundled` (a copy of models/bundled/) is the model an author starts with: real text, real
distributions.

1. Keystroke to screen, in the real StudioApp run headless (App.run_test(size=(120, 40))) on a
   manuscript of about 20,000 characters of 红楼梦 (the cursor at its end). First a few keys with
   no generation running (the baseline), then ctrl+g (4 candidates, length 20000 so that they
   stream all through), and while they stream, one 'a' every INTERVAL seconds (open loop: the
   schedule never waits for the screen, as a typist does not).

   Each key is sent the way Textual's Linux driver sends one: from another thread (the driver's
   input thread), with driver.send_message(events.Key("a", "a")). A key's latency runs from its
   scheduled time (when it "arrives at the terminal", so the input thread's wait for the GIL
   counts) to the end of the first frame that shows it. A frame is a call of App._display with
   a compositor update (what Screen._compositor_refresh hands over after rendering the dirty
   regions); headless, Textual skips turning the update into terminal bytes, so this script does
   that itself (update.render_segments, encoded and written to /dev/null) before taking the time.
   A frame "shows" key k when, after the k-th 'a' was in the editor's document, the editor drew
   the cursor's row (its render_line; rows are cached by their text, so a row drawn with the
   k-th key in the document shows it) and that frame is the one drawn then. pilot.press is not used: it waits for the process to
   go idle, which never happens while the model runs on its thread.

   Also reported: the candidates' characters per second while the keys were typed (all four
   together, as drained into the panel), and whether they were still streaming at the end.

2. Start-up: `.venv/bin/ai-writer --config TMP/config.toml MANUSCRIPT` under a pseudo-terminal
   of 120 x 40 (XDG_CONFIG_HOME / XDG_DATA_HOME in a temp folder), timed from the spawn until the
   manuscript's last characters appear in its output (the first frame: the editor opens at the
   end, where the cursor is), and until the status line names the model ("STEM.safetensors ·
   rwkv7": the model loaded). The peak RSS (VmHWM in /proc/PID/status) is read a second after
   the model loaded; then ctrl+q is sent and the time to exit measured (killed after 15 s).

3. Big manuscripts (bench_big_manuscript.py, with the first model): `ai-writer FILE` on a
   --big-mb manuscript (default 30 MB of Chinese paragraphs) and on a 100 KB one, under the
   same pty: time to the first frame, then a key typed at once and its echo on the terminal,
   and 9 more keys; and, headless, the longest stall of the UI thread's event loop from ctrl+s
   until a --save-mb manuscript (default 25 MB) is on disk (and the same for 100 KB), beside the
   longest stall of an idle stretch. --big-mb 0 leaves this out.

Variants:
  --gc-freeze  gc.freeze() in the headless app once the model has loaded (full cyclic-GC
               collections over the ~330,000 objects that torch and Textual keep alive stop
               every thread for 150-270 ms on a busy 2-core machine; the studio now does this);
  --generation-threads N[,M...]
               the studio's [generation] threads setting (0: automatic, one fewer than the
               cores); with several values the keystroke session runs once per value, per
               model, in the same run (start-up is measured with the first value only).

It prints a Markdown table and never asserts anything; the "met" column compares with the
targets (keystroke p95 <= 50 ms, first frame <= 2 s; a 30 MB manuscript's first frame <= 3 s) on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bench_big_manuscript  # noqa: E402
from bench_common import load_average  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus" / "hongloumeng.txt"
MANUSCRIPT_CHARS = 20_000
SIZE = (120, 40)
WARM_TIMEOUT = 90.0  # s for the model's first reading of the manuscript (service.warm)
FIRST_CHARS_TIMEOUT = 60.0
INTERVAL = 0.08  # seconds between keystrokes: 12.5 keys/s, a fast typist
TARGET_P95_MS = 50.0
TARGET_FIRST_FRAME_S = 2.0

FULL = dict(models=[(4, 256), (12, 768)], keys=200, idle_keys=40, startups=2)
QUICK = dict(models=[(4, 256)], keys=120, idle_keys=20, startups=1)


# -- helpers -------------------------------------------------------------------



def percentile(values, q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def other_load() -> str:
    """Other busy processes (the load this machine was under)."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"], capture_output=True, text=True,
                             timeout=5).stdout.splitlines()[1:]
    except (OSError, subprocess.SubprocessError):
        return "?"
    busy = []
    for line in out:
        pid, cpu, args = line.split(None, 2)
        if int(pid) != os.getpid() and float(cpu) >= 20:
            busy.append(f"{args[:60]}… ({cpu}% CPU)")
    return "; ".join(busy[:3]) or "none above 20% CPU"


def write_manuscript(folder: Path) -> tuple[Path, str]:
    """About MANUSCRIPT_CHARS characters of 红楼梦, cut at the end of a paragraph (no final newline)."""
    corpus = CORPUS.read_text(encoding="utf-8")
    end = corpus.find("\n", MANUSCRIPT_CHARS)
    text = corpus[:end] if end > 0 else corpus[:MANUSCRIPT_CHARS]
    path = folder / "novel.txt"
    path.write_text(text, encoding="utf-8")
    return path, text


def write_config(folder: Path, model: Path, name: str, threads: int = 0, backend: str = "auto", dtype: str = "") -> Path:
    path = folder / name
    path.write_text(
        f'[model]\npath = "{model}"\nbackend = "{backend}"\ndevice = "cpu"\ndtype = "{dtype}"\n'
        f"[generation]\ncandidates = 4\nlength = 20000\nthreads = {threads}\n"
        f"[sampling]\nseed = 0\n"
        f'[studio]\nlanguage = "en"\n',
        encoding="utf-8",
    )
    return path


BUNDLED_NAME = "bundled"
BUNDLED = REPO / "models" / "bundled" / "zh-novel-rwkv7.safetensors"


def model_label(shape) -> str:
    return "bundled (6x256, trained)" if shape == BUNDLED_NAME else f"{shape[0]}x{shape[1]}"


def make_model(folder: Path, shape) -> Path:
    """A copy of the bundled model (trained: the candidates are real text, its distributions a trained model's), or a
    random RWKV-7 of shape (layers, width) with the real vocabulary."""
    if shape == BUNDLED_NAME:
        for source in (BUNDLED, BUNDLED.with_suffix(".json")):
            shutil.copyfile(source, folder / source.name)
        return folder / BUNDLED.name
    from tests.helpers import write_model_with_vocab

    n_layer, n_embd = shape
    return write_model_with_vocab(folder, stem=f"bench-{n_layer}x{n_embd}", n_layer=n_layer, n_embd=n_embd)


# -- 1. keystroke to screen, headless ------------------------------------------------


class FrameProbe:
    """Times frames of a running StudioApp and which typed keys each one shows."""

    def __init__(self, app):
        from textual._compositor import CompositorUpdate

        self.app = app
        self.editor = app.editor
        self.base = self.last_line_length()
        self.rendered = 0  # keys in the document when the editor last drew the cursor's row afresh
        self.scheduled: list[float] = []  # per key, filled by the sender thread
        self.shown: list[float | None] = []
        self.next_unshown = 0
        self.frames = 0
        self.render_costs: list[tuple[float, float]] = []  # (wall, this thread's CPU) ms per compositor render
        self._devnull = os.open(os.devnull, os.O_WRONLY)

        original_display = app._display
        original_render_line = self.editor.render_line

        def display(screen, renderable):
            original_display(screen, renderable)
            if renderable is None or app._batch_count:
                return
            if isinstance(renderable, CompositorUpdate) and self._devnull is not None:  # what a terminal would be sent
                os.write(self._devnull, renderable.render_segments(app.console).encode("utf-8"))
            now = time.perf_counter()
            self.frames += 1
            limit = min(self.rendered, len(self.scheduled))
            while self.next_unshown < limit:
                self.shown[self.next_unshown] = now
                self.next_unshown += 1

        def render_line(y):
            editor = self.editor
            if editor.scroll_offset.y + y == editor._cursor_offset[1]:
                self.rendered = self.typed()
            return original_render_line(y)

        compositor = app.screen._compositor
        original_render_update = compositor.render_update

        def render_update(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return original_render_update(*args, **kwargs)
            finally:
                self.render_costs.append(((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000))

        app._display = display
        self.editor.render_line = render_line
        compositor.render_update = render_update

    def close(self) -> None:
        """After this the app may still draw (while it shuts down); those frames are not written."""
        os.close(self._devnull)
        self._devnull = None

    def last_line_length(self) -> int:
        document = self.editor.document
        return len(document[document.line_count - 1])

    def typed(self) -> int:
        return self.last_line_length() - self.base

    def reset(self) -> None:
        self.base = self.last_line_length()
        self.rendered = 0
        self.scheduled, self.shown, self.next_unshown = [], [], 0
        self.render_costs = []

    async def type_keys(self, count: int, interval: float, timeout: float = 30.0) -> dict:
        """Send `count` 'a' keys from a thread, one every `interval` s; latencies in ms."""
        from textual import events

        self.reset()
        self.shown = [None] * count
        app = self.app
        driver = app._driver
        lateness = []

        def sender():
            start = time.perf_counter() + 0.05
            for k in range(count):
                target = start + k * interval
                delay = target - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                lateness.append(time.perf_counter() - target)
                event = events.Key("a", "a")
                event.set_sender(app)
                self.scheduled.append(target)
                driver.send_message(event)

        collections: list[tuple[int, float]] = []  # (generation, ms) of each cyclic-GC run meanwhile
        gc_started = [0.0]

        def on_gc(phase, info):
            if phase == "start":
                gc_started[0] = time.perf_counter()
            else:
                collections.append((info["generation"], (time.perf_counter() - gc_started[0]) * 1000))

        gc.callbacks.append(on_gc)
        frames_before = self.frames
        thread = threading.Thread(target=sender, name="bench-keys", daemon=True)
        t0, cpu0 = time.perf_counter(), time.thread_time()  # this coroutine runs on the UI thread
        thread.start()
        deadline = t0 + count * interval + timeout
        while time.perf_counter() < deadline and (thread.is_alive() or self.next_unshown < count):
            await asyncio.sleep(0.02)
        thread.join(timeout=1)
        gc.callbacks.remove(on_gc)
        elapsed = time.perf_counter() - t0
        ui_busy = (time.thread_time() - cpu0) / elapsed
        latencies = [(s - t) * 1000 for s, t in zip(self.shown, self.scheduled) if s is not None]
        return dict(
            latencies=latencies,
            missing=count - len(latencies),
            typed=self.typed(),
            lateness_ms=statistics.median(lateness) * 1000 if lateness else float("nan"),
            fps=(self.frames - frames_before) / elapsed,
            seconds=elapsed,
            ui_busy=ui_busy,
            gc_ms=sum(ms for _, ms in collections),
            gc2=[ms for generation, ms in collections if generation == 2],
            render_wall_ms=statistics.median(c[0] for c in self.render_costs) if self.render_costs else float("nan"),
            render_cpu_ms=statistics.median(c[1] for c in self.render_costs) if self.render_costs else float("nan"),
        )


async def wait_for(condition, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def typing_session(config_path: Path, manuscript: Path, data_dir: Path, keys: int, idle_keys: int,
                         gc_freeze: bool = False) -> dict:
    from textual import events

    from ai_writer.studio.app import StudioApp
    from ai_writer.studio.config import load_config

    config = load_config(config_path, user_path=config_path.parent / "no-user.toml")
    app = StudioApp(config, manuscript, data_dir=data_dir)
    result: dict = {}
    async with app.run_test(size=SIZE):
        if not await wait_for(lambda: app.service is not None, 120):
            raise RuntimeError(f"the model did not load: {app.status.message}")
        service = app.service
        # the prompt read by service.warm (the last context_chars of the manuscript)
        warm_started = time.perf_counter()
        await wait_for(lambda: service._current is None or service._current.done, WARM_TIMEOUT)
        result["warm_s"] = time.perf_counter() - warm_started
        if gc_freeze:  # what a gc.freeze() at the end of StudioApp.engine_ready would do
            gc.freeze()
        probe = FrameProbe(app)
        await asyncio.sleep(0.3)
        result["idle"] = await probe.type_keys(idle_keys, INTERVAL)

        key = events.Key("ctrl+g", None)
        key.set_sender(app)
        pressed = time.perf_counter()
        app._driver.send_message(key)
        panel = app.candidates
        if await wait_for(lambda: len(panel.candidates) == 4 and all(c.text for c in panel.candidates), FIRST_CHARS_TIMEOUT):
            result["first_chars_s"] = time.perf_counter() - pressed
            await asyncio.sleep(1.0)  # streaming in full
        else:  # measured anyway: the keys then compete with the prompt being read
            result["first_chars_s"] = None

        chars_before, t_before = sum(len(c.text) for c in panel.candidates), time.perf_counter()
        result["stream"] = await probe.type_keys(keys, INTERVAL)
        chars_after, t_after = sum(len(c.text) for c in panel.candidates), time.perf_counter()
        result["chars_per_s"] = (chars_after - chars_before) / (t_after - t_before)
        result["still_streaming"] = app.job is not None and not app.job.done
        result["candidate_chars"] = chars_after // 4
        result["document_ok"] = app.editor.text.endswith("a" * (idle_keys + keys))
        service.close()  # cancels the job and joins the thread
        probe.close()
    return result


# -- 2. start-up under a pseudo-terminal -------------------------------------------------


def launch(config_path: Path, manuscript: Path, first_text: str, model_text: str, home: Path) -> dict:
    proc, master, started = bench_big_manuscript.spawn_studio(config_path, manuscript, home)
    first, model = first_text.encode("utf-8"), model_text.encode("utf-8")
    output = bytearray()
    times: dict = {"first_frame": None, "model": None, "peak_rss_mb": None, "exit": None, "killed": False,
                   "abnormal": False}
    after_quit = bytearray()

    def pump(seconds: float, stop_when_seen: bool = True) -> None:
        """Read what the app writes (it blocks when the pty is full) for up to `seconds`."""
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            ready, _, _ = select.select([master], [], [], 0.01)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the other side closed
                    return
                if not data:
                    return
                output.extend(data)
                now = time.perf_counter() - started
                if times["first_frame"] is None and first in output:
                    times["first_frame"] = now
                if times["model"] is None and model in output:
                    times["model"] = now
                if stop_when_seen and times["first_frame"] is not None and times["model"] is not None:
                    return
            elif proc.poll() is not None:
                return

    try:
        pump(120)
        if times["model"] is not None:
            pump(1.0, stop_when_seen=False)  # a second of service.warm reading the manuscript
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        times["peak_rss_mb"] = int(line.split()[1]) / 1024
            except OSError:
                pass
        quit_sent = time.perf_counter()
        os.write(master, b"\x11")  # ctrl+q
        end = time.perf_counter() + 15
        while proc.poll() is None and time.perf_counter() < end:
            ready, _, _ = select.select([master], [], [], 0.02)
            if ready:
                try:
                    after_quit.extend(os.read(master, 65536))
                except OSError:
                    time.sleep(0.02)  # EIO once the app has closed the terminal
        if proc.poll() is None:
            times["killed"] = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        else:
            times["exit"] = time.perf_counter() - quit_sent
        times["returncode"] = proc.returncode
        times["abnormal"] = proc.returncode != 0 or b"terminate called" in after_quit
        if times["abnormal"]:
            said = " after printing 'terminate called…'" if b"terminate called" in after_quit else ""
            times["abnormal_detail"] = f"exit status {proc.returncode}{said}"
    finally:
        bench_big_manuscript.stop_studio(proc, master)
    if times["first_frame"] is None:
        tail = bytes(output[-400:]).decode("utf-8", "replace")
        print(f"warning: no first frame seen; output ended with {tail!r}", file=sys.stderr)
    return times


# -- the report -------------------------------------------------------------------


def ms(values, q=None) -> str:
    if not values:
        return "-"
    value = statistics.median(values) if q is None else percentile(values, q)
    return f"{value:.1f}"


def session_rows(config_path: Path, manuscript: Path, data_dir: Path, label: str, cfg: dict, args, rows: list,
                 notes: list) -> None:
    """One keystroke session: its rows and notes."""
    session = asyncio.run(typing_session(config_path, manuscript, data_dir, cfg["keys"], cfg["idle_keys"],
                                         gc_freeze=args.gc_freeze))
    idle, stream = session["idle"], session["stream"]
    p95 = percentile(stream["latencies"], 95) if stream["latencies"] else float("inf")
    rows.append(row(f"{label}: keystroke to screen, no generation ({len(idle['latencies'])} keys), median / p95 (ms)",
                    f"{ms(idle['latencies'])} / {ms(idle['latencies'], 95)}", "", ""))
    rows.append(row(f"{label}: keystroke to screen while 4 candidates stream ({len(stream['latencies'])} keys), "
                    "median / p95 (ms)",
                    f"{ms(stream['latencies'])} / {ms(stream['latencies'], 95)}",
                    f"p95 <= {TARGET_P95_MS:.0f} ms", verdict(p95 <= TARGET_P95_MS)))
    rows.append(row(f"{label}: worst keystroke while streaming (ms)", f"{max(stream['latencies'], default=0):.1f}", "", ""))
    rows.append(row(f"{label}: candidates' chars/s while typing (4 together; per candidate)",
                    f"{session['chars_per_s']:.1f} ({session['chars_per_s'] / 4:.1f})", "", ""))
    first_chars = session["first_chars_s"]
    rows.append(row(f"{label}: ctrl+g to the first characters of all 4 candidates in the panel (ms)",
                    f"{first_chars * 1000:.0f}" if first_chars is not None
                    else f"none in {FIRST_CHARS_TIMEOUT:.0f} s", "", ""))
    notes.append(f"{label}: {stream['fps']:.0f} frames/s while typing and streaming "
                 f"({idle['fps']:.0f} typing alone); compositor render per frame, median wall / UI-thread CPU: "
                 f"{stream['render_wall_ms']:.1f} / {stream['render_cpu_ms']:.1f} ms streaming, "
                 f"{idle['render_wall_ms']:.1f} / {idle['render_cpu_ms']:.1f} ms typing alone; UI thread busy "
                 f"{stream['ui_busy']:.0%} of the time streaming, {idle['ui_busy']:.0%} typing alone; "
                 f"candidates {session['candidate_chars']} chars each at the end, "
                 f"{'still streaming' if session['still_streaming'] else '**not streaming at the end**'}; "
                 f"keys not shown: {stream['missing'] + idle['missing']}; document has every key: "
                 f"{session['document_ok']}; input thread woke {stream['lateness_ms']:.2f} ms late (median); "
                 f"the model's first reading of the manuscript (service.warm) took {session['warm_s']:.1f} s; "
                 f"cyclic GC on any thread while streaming: {stream['gc_ms']:.0f} ms in all, "
                 f"{len(stream['gc2'])} full (generation 2) collections"
                 + (f" of up to {max(stream['gc2']):.0f} ms" if stream["gc2"] else "")
                 + f" ({len(gc.get_objects()):,} objects in the collected generations at the end)")


def main(argv=None) -> None:
    global SIZE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 4x256 model only, fewer keystrokes (a dry run)")
    parser.add_argument("--generation-threads", default="0", metavar="N[,M...]",
                        help="the studio's [generation] threads setting (0: automatic); several values: one "
                             "keystroke session per value and model, in this run (default 0)")
    parser.add_argument("--backend", default="auto",
                        help="the studio's [model] backend (default auto: what the studio uses; on a CPU with a C "
                             "compiler, torch+native)")
    parser.add_argument("--dtype", default="",
                        help="the studio's [model] dtype (default \"\": float32 on a CPU; float16, bfloat16 or int8 of "
                             "a .safetensors model run on native there, without torch)")
    parser.add_argument("--typing-redraw-interval", type=float, metavar="S",
                        help="studio.screens.main_screen.TYPING_REDRAW_INTERVAL for the headless app (0: candidates redrawn at max_fps "
                             "while typing, as before it existed)")
    parser.add_argument("--models", metavar="LxC[,LxC...]",
                        help="the models: random ones' shapes, layers x width (default 4x256,12x768; --quick "
                             "4x256; 6x256 is the bundled model's shape), or bundled (the bundled model itself)")
    parser.add_argument("--size", metavar="COLSxROWS",
                        help=f"the headless app's terminal for the keystrokes (default {SIZE[0]}x{SIZE[1]}; below "
                             "100 columns the candidates are stacked, not side by side)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() in the headless app once the model is loaded (a candidate fix for GC pauses)")
    parser.add_argument("--big-mb", type=float, default=30, metavar="MB",
                        help="the big manuscript opened and typed in, with the first model (default 30; 0: skip)")
    parser.add_argument("--save-mb", type=float, default=25, metavar="MB",
                        help="the manuscript saved while the UI thread's stalls are timed (default 25)")
    args = parser.parse_args(argv)
    try:
        thread_settings = [int(value) for value in args.generation_threads.split(",")]
        if any(value < 0 for value in thread_settings):
            raise ValueError
    except ValueError:
        parser.error(f"--generation-threads: whole numbers >= 0, comma-separated, not {args.generation_threads!r}")
    if args.size:
        try:
            SIZE = tuple(int(n) for n in args.size.lower().split("x"))
            if len(SIZE) != 2 or min(SIZE) < 20:
                raise ValueError
        except ValueError:
            parser.error(f"--size: like 80x40, not {args.size!r}")
    cfg = dict(QUICK if args.quick else FULL)
    if args.models:
        try:
            cfg["models"] = [BUNDLED_NAME if shape.strip().lower() == BUNDLED_NAME else
                             tuple(int(n) for n in shape.lower().split("x")) for shape in args.models.split(",")]
            if any(shape != BUNDLED_NAME and (len(shape) != 2 or min(shape) < 1) for shape in cfg["models"]):
                raise ValueError
        except ValueError:
            parser.error(f"--models: shapes like 4x256 or {BUNDLED_NAME}, comma-separated, not {args.models!r}")
    started = time.perf_counter()

    import textual
    import torch

    import ai_writer.studio.screens.main_screen as main_screen
    from ai_writer.studio.screens.main_screen import generation_threads

    if args.typing_redraw_interval is not None:
        main_screen.TYPING_REDRAW_INTERVAL = args.typing_redraw_interval

    def threads_label(setting: int) -> str:
        return f"threads {setting}" if setting else f"threads auto = {generation_threads(0)}"

    shapes = ", ".join(model_label(shape) for shape in cfg["models"])
    print(f"# Studio benchmark: RWKV-7 ({shapes}), real AI-Writer vocabulary, {args.dtype or 'float32'} on the CPU"
          + (" (--quick)" if args.quick else ""))
    print()
    print(f"- Python {platform.python_version()}, textual {textual.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); os.cpu_count() = {os.cpu_count()}")
    print(f"- Other load at the start: {other_load()}")
    print(f"- [model] backend: {args.backend}, dtype: {args.dtype or 'float32'}; [generation] threads: "
          f"{', '.join(threads_label(value) for value in thread_settings)}")
    print(f"- Candidates redrawn at most every {main_screen.TYPING_REDRAW_INTERVAL * 1000:.0f} ms while typing "
          "(headless app; the launched one as the studio)")
    if args.gc_freeze:
        print("- Variant: gc.freeze() after the model loaded (headless app only)")
    load_before = load_average()

    rows = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as tmp_name:
        tmp = Path(tmp_name)
        manuscript, text = write_manuscript(tmp)
        first_text = text[-3:]  # the editor opens scrolled to the end, where the cursor is
        for shape in cfg["models"]:
            label = model_label(shape)
            folder = tmp / label.split(" ")[0]
            folder.mkdir()
            model = make_model(folder, shape)
            config_path = write_config(folder, model, "config.toml", thread_settings[0], args.backend, args.dtype)
            for setting in thread_settings:
                session_config = write_config(folder, model, f"config-{setting}.toml", setting, args.backend,
                                              args.dtype)
                label = model_label(shape) + (f" ({threads_label(setting)})" if len(thread_settings) > 1 else "")
                session_rows(session_config, manuscript, folder / f"data-{setting}", label, cfg, args, rows, notes)
            label = model_label(shape)

            first_frames, loaded, peaks, exits, aborted = [], [], [], [], []
            for _ in range(cfg["startups"]):
                home = folder / f"home-{len(first_frames)}"
                home.mkdir()
                times = launch(config_path, manuscript, first_text, f"{model.stem} · ", home)
                if times["first_frame"] is not None:
                    first_frames.append(times["first_frame"])
                if times["model"] is not None:
                    loaded.append(times["model"])
                if times["peak_rss_mb"] is not None:
                    peaks.append(times["peak_rss_mb"])
                if times.get("abnormal"):
                    aborted.append(times.get("abnormal_detail", "killed"))
                if times["exit"] is not None:
                    exits.append(times["exit"])
                elif times["killed"]:
                    notes.append(f"{label}: the app did not exit within 15 s of ctrl+q and was killed")
            best_first = min(first_frames) if first_frames else float("inf")
            runs = f"{cfg['startups']} run{'s' if cfg['startups'] > 1 else ''}"
            rows.append(row(f"{label}: `ai-writer FILE` to the first frame, pty {SIZE[0]}x{SIZE[1]} (s; median of {runs})",
                            f"{statistics.median(first_frames):.2f}" if first_frames else "not seen",
                            f"<= {TARGET_FIRST_FRAME_S:.0f} s", verdict(best_first <= TARGET_FIRST_FRAME_S)))
            rows.append(row(f"{label}: `ai-writer FILE` to the model loaded in the status line (s)",
                            f"{statistics.median(loaded):.2f}" if loaded else "not seen", "", ""))
            rows.append(row(f"{label}: peak RSS of the app, 1 s after the model loaded (MB)",
                            f"{max(peaks):.0f}" if peaks else "-", "", ""))
            rows.append(row(f"{label}: ctrl+q to exit (s)", f"{statistics.median(exits):.2f}" if exits else "-", "", ""))
            if aborted:
                notes.append(f"{label}: the app ended abnormally after ctrl+q in {len(aborted)} of {cfg['startups']} "
                             f"runs ({'; '.join(aborted)})")
            if args.big_mb > 0 and shape == cfg["models"][0]:
                big = folder / "big"
                big.mkdir()
                bench_big_manuscript.measure(config_path, big, rows, notes, args.big_mb, args.save_mb, label)
            model.unlink()  # the 12x768 one is ~400 MB (the bundled one: a copy)

    print()
    print(row("Measure", "Value", "Target", "Met"))
    print(row("---", "---:", "---", "---"))
    print("\n".join(rows))
    print()
    print(f"Keystrokes: the real StudioApp headless (App.run_test(size={SIZE})), a {len(text):,}-character manuscript "
          f"(红楼梦), 4 candidates of up to 20000 characters streaming (seed 0), one 'a' every {INTERVAL * 1000:.0f} ms "
          "sent from a thread through the driver; latency = from the key's scheduled time to the end of the first "
          "frame (App._display + render_segments) drawn after the editor re-rendered the cursor's row with the key in "
          "the document. Models: random weights. Start-up: the ai-writer console script under a pty, "
          "until the manuscript's last characters (the first frame) / the model's name appear in its output.")
    for note in notes:
        print(f"- {note}")
    print(f"- Load average before / after: {load_before} / {load_average()}; other load at the end: {other_load()}. "
          f"Total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
