"""Our CPU engine at each weight precision against the `rwkv` package (0.8.32, cpu fp32), at the sizes users run.

Run from the repository root:

    .venv/bin/python bench/bench_sizes.py                 # 12 x 768, vocabulary 65536 (0.1B World shape), ~10 min
    .venv/bin/python bench/bench_sizes.py --quick         # 4 x 256, vocabulary 8192, short runs: a dry run
    .venv/bin/python bench/bench_sizes.py --shape 24x1024 --dtypes float32,int8 --no-rwkv
    .venv/bin/python bench/bench_sizes.py --llama-python /tmp/llamacpp-venv/bin/python   # + llama.cpp rows

One random RWKV-7 (models.rwkv7.init_weights) is written as STEM.safetensors (the World
tokenizer for 65536 rows, else a character vocabulary beside it) and STEM.pth for the
package. Each engine runs in a fresh child process (this script with --worker), so
that its peak RSS (VmHWM) and load time are its own: float32 on backend torch+native (what auto
picks for it) and on native, float16, bfloat16 and int8 on native (auto's choice for them: the C
step alone, torch never imported; int8 and bfloat16 once per kernel this CPU's build has;
--pair runs them on torch+native too, the same step beside torch), then the package. Each child measures, with --threads threads:

  prompt    one forward over 512 tokens (tok/s)
  decode    64 single-token steps after that prompt, one row (N=1), and 4 rows forked
            from it in one batch (N=4, total tok/s; the package runs 4 x 64 steps)
  load      seconds in backends.load (the C step found in its cache), peak RSS in MB
  quality   max |logit difference| against float32 after the prompt and each of the
            64 steps; bits per character of the bundled model (models/bundled) on the
            held-out text (tests/fixtures/hongloumeng-heldout-3000.txt) with every
            character read through the decode step at this precision, and the cost
            in % against float32 (the target for int8: <= 0.5 %)

Throughputs are the best of --reps quiet runs after a warm-up: a run counts when other
processes kept less than 10% of the cores busy during it (/proc/stat against the child's own
CPU time; up to 4 x --reps tries, else the fastest of all); the load average is printed
before and after each child. Every file is written (and synced) before the first run, and the
children that fit in memory together (all of them at 12x768) are loaded one after another and
then measured in turns, one run of each test from each child a round, the order rotating (each
load is timed first in a child of its own, with no other engine resident): this
machine's speed drifts by up to 1.7x within an hour (other tenants of its host), and a row measured
in a slow spell beside another measured in a fast one made a ratio of the drift, not of the
engines. --sequential measures one child after another. Nothing is asserted.

llama.cpp rows (--llama-python, or $AI_WRITER_LLAMA_PYTHON: the python of a virtual environment with
llama-cpp-python and numpy; bench/llama_engine.py says how to make one, ~20 minutes to build): the same
weights written as GGUF F32, F16 and Q8_0 by this project's converter (ai-writer convert --type), run through
llama-cpp-python's low-level API with the same protocol (prompt 512 in one llama_decode, N=1, N=4 as one
llama_batch of 4 sequences, VmHWM, load), then a table of our rows over llama.cpp's of the same precision
class, measured in this run, against issue #17's targets. ../shared/anchors/llamacpp/ holds an outside
reference of the same comparison (its own converter and driver), which agreed with these rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from bench_common import cpu_name, load_average  # noqa: E402

BUNDLED = REPO / "models" / "bundled" / "zh-novel-rwkv7.safetensors"
HELDOUT = REPO / "tests" / "fixtures" / "hongloumeng-heldout-3000.txt"
DTYPES = ("float32", "float16", "bfloat16", "int8")
LLAMA_TYPES = ("f32", "f16", "q8_0")  # llama.cpp's rows, against float32, 16-bit and int8 (bench/llama_engine.py)
FULL = dict(shape="12x768", vocab=65536, prompt=512, steps=64, reps=3)
QUICK = dict(shape="4x256", vocab=8192, prompt=128, steps=16, reps=2)


# -- the child process ---------------------------------------------------------------------------


def rss_mb() -> float:
    """The process's resident memory now (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_ticks() -> tuple[int, int]:
    """(all, idle) CPU ticks of the machine so far (/proc/stat), or (0, 0)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return sum(values), values[3] + values[4]


def own_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


QUIET = 0.10  # a run counts when other processes kept less than this share of the cores busy during it
TESTS = ("prompt", "decode1", "decode4")
REPLY = "@@ "  # the start of a worker's protocol lines on its stdout (anything else there is chatter)


def timed_run(fn) -> dict:
    """One run of fn: its wall time, and whether other processes kept the cores quiet meanwhile."""
    hz, cores = os.sysconf("SC_CLK_TCK"), os.cpu_count() or 1
    (all0, idle0), mine0, start = cpu_ticks(), own_cpu(), time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    (all1, idle1), mine1 = cpu_ticks(), own_cpu()
    others = max(0.0, ((all1 - all0) - (idle1 - idle0)) / hz - (mine1 - mine0)) / (wall * cores)
    return {"wall": wall, "quiet": bool(others < QUIET or not all1)}


class OurEngine:
    def __init__(self, path, backend, dtype, kernel):
        from ai_writer.backends import load

        self.engine = load(path, backend=backend, device="cpu", dtype=dtype)
        step = getattr(self.engine, "decode_step", self.engine)  # torch+native's C step, or native's engine
        if kernel is not None:
            set_kernel(step.library, dtype, kernel)
        self.kernels = step.kernels()
        self.info = f"{self.engine.selection.reason.text()}; kernels {self.kernels}"
        if step is self.engine:  # native: the step's converted matrices and the float32 arrays it reads in place
            self.weight_bytes = step.converted_bytes + step.in_place_bytes
        else:  # the step's converted matrices and the model's float32 tensors still there (read in place by the
            # step, or by torch for prompts)
            kept = sum(p.numel() * p.element_size() for p in self.engine.model.parameters())
            self.weight_bytes = step.converted_bytes + kept

    def prompt(self, tokens):
        return self.engine.forward([tokens])

    def step(self, tokens, state):
        return self.engine.forward([[t] for t in tokens], state)

    def fork(self, state, n):
        return self.engine.repeat_rows(state, n)


class Package:
    def __init__(self, stem):
        os.environ.update(RWKV_V7_ON="1", RWKV_JIT_ON="1", RWKV_CUDA_ON="0")
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # its loading chatter
            from rwkv.model import RWKV

            self.model = RWKV(model=str(stem), strategy="cpu fp32")
        self.info = "rwkv 0.8.32, strategy cpu fp32"

    # a state here: one package state per row (it has no batch dimension)
    def prompt(self, tokens):
        logits, state = self.model.forward(list(tokens), None)
        return logits.float().numpy()[None], [state]

    def step(self, tokens, states):
        import numpy as np

        out, states = [], list(states)
        for row, token in enumerate(tokens):  # one candidate after another
            logits, states[row] = self.model.forward([token], states[row])
            out.append(logits.float().numpy())
        return np.stack(out), states

    def fork(self, states, n):
        return [[t.clone() for t in states[0]] for _ in range(n)]


def worker(args) -> None:
    """A child that loads one engine, writes its trace, says it is ready, then runs what the parent asks, one line a
    request on stdin (a test of TESTS: one timed run, the first of each after a warm-up; "finish": its peak RSS and
    bits/char, then it exits), one protocol line a reply on stdout."""
    import contextlib

    backend, kind, kernel = parse(args.worker)
    guard = contextlib.nullcontext()
    if kind == "llama":  # in llama-cpp-python's own environment: no torch
        from llama_engine import LlamaEngine

        runtime_mb, start = rss_mb(), time.perf_counter()
        engine = LlamaEngine(args.model, args.threads)
    elif backend == "native":  # the C step alone: torch is never imported
        from ai_writer.backends import set_model_threads

        set_model_threads(args.threads)
        runtime_mb, start = rss_mb(), time.perf_counter()  # Python, numpy and the backends package, before any model
        engine = OurEngine(args.model, backend, kind, int(kernel) if kernel else None)
    else:
        import torch

        torch.set_num_threads(args.threads)
        guard = torch.inference_mode()
        runtime_mb = rss_mb()  # Python, numpy and torch imported, before any model
        start = time.perf_counter()
        engine = Package(Path(args.model).with_suffix("")) if kind == "rwkv" else \
            OurEngine(args.model, backend, kind, int(kernel) if kernel else None)
    load_s = time.perf_counter() - start
    if args.load_only:
        reply({"load_s": load_s})
        return
    with guard:
        tests = prepare(args, engine)
        reply({"load_s": load_s, "info": engine.info, "runtime_mb": runtime_mb,
               "weights_mb": getattr(engine, "weight_bytes", 0) / 2**20})
        warmed = set()
        for line in sys.stdin:
            request = line.strip()
            if request in tests:
                if request not in warmed:
                    tests[request]()
                    warmed.add(request)
                reply(timed_run(tests[request]))
            elif request == "finish":
                break
    result = {"rss_mb": peak_rss_mb(), "torch_imported": "torch" in sys.modules}  # before the bundled model
    if kind not in ("rwkv", "llama"):
        result["bits"] = bundled_bits(*parse(args.worker))
    reply(result)


def reply(message: dict) -> None:
    print(REPLY + json.dumps(message), flush=True)


def prepare(args, engine) -> dict:
    """Writes the engine's logits after the prompt and each decode step of one row (args.trace); returns the tests:
    the prompt, and args.steps steps of 1 and of 4 rows forked from the prompt's state."""
    import numpy as np

    rng = np.random.default_rng(0)
    prompt = rng.integers(0, args.vocab, size=args.prompt).tolist()
    seqs = rng.integers(0, args.vocab, size=(4, args.steps)).tolist()
    trace = []
    logits, primed = engine.prompt(prompt)
    trace.append(logits[0])
    state = engine.fork(primed, 1)
    for token in seqs[0]:
        logits, state = engine.step([token], state)
        trace.append(logits[0])
    np.save(args.trace, np.stack(trace).astype(np.float32))

    def decode(n):
        state = engine.fork(primed, n)
        for i in range(args.steps):
            _, state = engine.step([seqs[r][i] for r in range(n)], state)

    return {"prompt": lambda: engine.prompt(prompt), "decode1": lambda: decode(1), "decode4": lambda: decode(4)}


def bundled_bits(backend, dtype, kernel) -> float:
    """Bits per character of the bundled model on the held-out text, every character through the C step."""
    from ai_writer.backends import load
    from ai_writer.backends.writing.evaluation import char_bits, scored_text

    engine = load(BUNDLED, backend=backend, device="cpu", dtype=dtype)
    step = getattr(engine, "decode_step", engine)
    if kernel:
        set_kernel(step.library, dtype, int(kernel))
    bits = char_bits(step, scored_text(HELDOUT.read_text(encoding="utf-8")))
    scored = bits[bits == bits]
    return float(scored.sum() / len(scored))


# -- the parent ------------------------------------------------------------------------------------


def write_model(folder: Path, n_layer: int, n_embd: int, vocab: int, dtype=None, stem: str = "bench-sizes",
                pth: bool = True) -> Path:
    """Random RWKV-7 weights (in torch dtype `dtype`, else float32) as STEM.safetensors and (pth) STEM.pth for the
    package, with a character vocabulary beside them unless the 65536 rows take the World tokenizer."""
    import torch

    from ai_writer.models.checkpoint import save_safetensors
    from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights

    model = init_weights(RWKV7(RWKV7Config(n_layer, n_embd, vocab)), seed=0)
    weights = {k: v.detach().to(dtype or torch.float32).contiguous() for k, v in model.state_dict().items()}
    del model
    path = folder / f"{stem}.safetensors"
    save_safetensors(weights, path)
    if pth:
        torch.save(weights, path.with_suffix(".pth"))
    if vocab != 65536:  # 65536 rows take the World tokenizer
        chars = ["\n"] + [chr(0x4E00 + i) for i in range(vocab - 1)]
        path.with_suffix(".json").write_text(json.dumps(dict(enumerate(chars)), ensure_ascii=False), encoding="utf-8")
    return path


def worker_command(args, kind: str, model: Path, trace: Path) -> list[str]:
    python = args.llama_python if kind.startswith("llama:") else sys.executable
    return [python, __file__, "--worker", kind, "--model", str(model), "--trace", str(trace),
            "--threads", str(args.threads), "--vocab", str(args.vocab), "--prompt", str(args.prompt),
            "--steps", str(args.steps)]


def load_alone(args, kind: str, model: Path) -> float | None:
    """Seconds an engine's load takes in a child of its own with no other engine resident (None if it failed)."""
    done = subprocess.run(worker_command(args, kind, model, Path(os.devnull)) + ["--load-only"], capture_output=True,
                          text=True, cwd=REPO)
    lines = [line for line in done.stdout.splitlines() if line.startswith(REPLY)]
    return json.loads(lines[-1][len(REPLY):])["load_s"] if done.returncode == 0 and lines else None


class Worker:
    """One engine's child process (this script with --worker), asked for one run at a time."""

    def __init__(self, args, kind: str, model: Path, trace: Path):
        command = worker_command(args, kind, model, trace)
        self.kind, self.trace = kind, trace
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, cwd=REPO)
        self.result = self.answer()  # ready: its load time and weights, or an error
        self.walls = {test: [] for test in TESTS}  # every run's (wall s, quiet)

    def answer(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY):])
        self.process.wait()
        tail = (self.process.stderr.read().strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {self.process.returncode}: {tail}"}

    def ask(self, request: str) -> dict:
        try:
            self.process.stdin.write(request + "\n")
            self.process.stdin.flush()
        except OSError:
            pass
        return self.answer()

    def run(self, test: str) -> None:
        found = self.ask(test)
        if "error" in found:
            self.result = found
        else:
            self.walls[test].append((found["wall"], found["quiet"]))

    def needs(self, test: str, reps: int) -> bool:
        runs = self.walls[test]
        return "error" not in self.result and sum(q for _, q in runs) < reps and len(runs) < 4 * reps

    def finish(self, args) -> dict:
        """The throughputs from the fastest quiet run of each test (the fastest of all where none was quiet)."""
        if "error" not in self.result:
            self.result.update(self.ask("finish"))
        self.process.wait()
        if "error" in self.result:
            return self.result
        per_run = {"prompt": args.prompt, "decode1": args.steps, "decode4": 4 * args.steps}
        for test, runs in self.walls.items():
            quiet = [wall for wall, q in runs if q]
            self.result[test] = per_run[test] / min(quiet or [wall for wall, _ in runs])
        self.result["runs"] = "/".join(f"{sum(q for _, q in runs)}:{len(runs)}" for runs in self.walls.values())
        return self.result


# peak RSS over the float32 weights' bytes, measured at 12x768 V65536 (the rows' "RSS / weights"): how many engines
# fit in memory at once
MEMORY_SHARE = {"float32": 1.6, "native/float32": 1.2, "float16": 0.7, "bfloat16": 0.7, "int8": 0.45, "rwkv": 2.6,
                "llama:f32": 1.25, "llama:f16": 0.75, "llama:q8_0": 0.5}


def groups_in_memory(kinds, weight_bytes: int, sequential: bool) -> list[list[str]]:
    """The kinds in groups whose engines fit in memory together (half of what is available now), in order."""
    budget = available_bytes() / 2
    groups, used = [], budget
    for kind in kinds:
        share = MEMORY_SHARE.get(kind, MEMORY_SHARE.get(parse(kind)[1], 1.6))
        need = share * weight_bytes
        if sequential or used + need > budget:
            groups.append([])
            used = 0.0
        groups[-1].append(kind)
        used += need
    return groups


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def measure_group(args, group, models, folder: Path, loads: list) -> dict:
    """The engines of a group loaded one after another, then measured in turns: each round asks every engine for one
    run of each test, the order rotating, so that the machine's drift (other tenants, the memory bus) falls on every
    row alike rather than on whichever ran first."""
    import numpy as np

    # each load timed first in a child of its own: a load beside the other engines' resident memory took up to 3x as
    # long (page faults in fragmented memory), which would not be the load a user sees
    alone = {kind: load_alone(args, kind, models[kind]) for kind in group} if len(group) > 1 else {}
    workers = {}
    for kind in group:
        trace = folder / f"trace-{kind.replace(':', '-').replace('/', '-')}.npy"
        workers[kind] = Worker(args, kind, models[kind], trace)
    for round_ in range(4 * args.reps):
        order = group[round_ % len(group):] + group[:round_ % len(group)]
        for test in TESTS:
            for kind in order:
                if workers[kind].needs(test, args.reps):
                    time.sleep(0.05)  # the last engine's spinning threads gone to sleep
                    workers[kind].run(test)
    results = {}
    for kind, worker in workers.items():
        results[kind] = worker.finish(args)
        if alone.get(kind) is not None and "error" not in results[kind]:
            results[kind]["load_s"] = alone[kind]
        loads.append(f"after {kind}: {load_average()}")
        if "error" not in results[kind]:
            results[kind]["trace"] = np.load(worker.trace)
    return results


def parse(kind: str) -> tuple[str, str, str]:
    """(backend, dtype or "rwkv" / "llama", kernel) of a row's kind: "native/int8:1", "float32" (torch+native),
    "llama:f16", "rwkv"."""
    backend, _, rest = kind.rpartition("/")
    dtype, _, kernel = rest.partition(":")
    return backend or "torch+native", dtype, kernel


def set_kernel(library, dtype: str, kernel: int) -> int:
    """Which kernel int8 or bfloat16 products take (0: weights widened to float32; 1: narrow activations)."""
    return (library.int8_kernel if dtype == "int8" else library.bf16_kernel)(kernel)


def kernels_of(dtype: str) -> list[int]:
    """0 (weights widened to float32), and 1 (int8 activations through VNNI, bfloat16 ones through AVX-512 BF16)
    where this CPU's build has it."""
    from ai_writer.backends.engines import native_step

    library = native_step.open_library(native_step.build_library())
    before = set_kernel(library, dtype, -1)
    kernels = [0] + ([1] if set_kernel(library, dtype, 1) == 1 else [])
    set_kernel(library, dtype, before)
    return kernels


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 x 256, vocabulary 8192, short runs")
    parser.add_argument("--shape", help="LAYERSxWIDTH (default 12x768)")
    parser.add_argument("--vocab", type=int)
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--reps", type=int)
    parser.add_argument("--no-rwkv", action="store_true", help="leave out the rwkv package")
    parser.add_argument("--sequential", action="store_true",
                        help="one engine at a time (the default: all that fit in memory at once, in turns)")
    parser.add_argument("--pair", action="store_true", help="the narrow dtypes on torch+native too")
    parser.add_argument("--llama-python", default=os.environ.get("AI_WRITER_LLAMA_PYTHON"),
                        help="the python of a virtual environment with llama-cpp-python (bench/llama_engine.py): "
                             "adds llama.cpp F32, F16 and Q8_0 rows (default: $AI_WRITER_LLAMA_PYTHON)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--trace", help=argparse.SUPPRESS)
    parser.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.worker:
        worker(args)
        return

    import numpy as np

    n_layer, n_embd = (int(x) for x in args.shape.lower().split("x"))
    named = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    dtypes = ["float32"] + [d for d in dict.fromkeys(named) if d != "float32"]  # float32 first: the reference
    kinds = []
    for dtype in dtypes:  # float32 on torch+native and native; the others on native (and torch+native, --pair)
        backends = ["", "native/"] if dtype == "float32" or args.pair else ["native/"]
        kernels = [f":{k}" for k in kernels_of(dtype)] if dtype in ("int8", "bfloat16") else [""]
        kinds += [f"{backend}{dtype}{kernel}" for backend in backends for kernel in kernels]
    if not args.no_rwkv:
        kinds.append("rwkv")
    if args.llama_python:
        kinds += [f"llama:{t}" for t in LLAMA_TYPES]
    print(f"# RWKV-7 {n_layer} x {n_embd}, vocabulary {args.vocab}: precisions on the CPU"
          + (" (--quick)" if args.quick else ""))
    print(f"\n- CPU: {cpu_name()}; {os.cpu_count()} cores seen; {args.threads} threads")
    print(f"- prompt {args.prompt} tokens; decode {args.steps} steps; the best of {args.reps} quiet runs (other "
          f"processes below {QUIET:.0%} of the cores) after a warm-up; one child process per engine")
    results, loads = {}, [f"before: {load_average()}"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-sizes-") as tmp:
        path = write_model(Path(tmp), n_layer, n_embd, args.vocab, pth=not args.no_rwkv)  # fewer files to cache
        models = {kind: path for kind in kinds}
        for kind in kinds:
            if kind.startswith("llama:"):  # the same weights as a GGUF, written by this project's converter
                from ai_writer.backends.files.convert import convert_model

                models[kind] = Path(tmp) / f"bench-sizes.{kind[6:]}.gguf"
                convert_model(path, models[kind], gguf_type=kind[6:])
        # every file written before any run, and on disk: the kernel's writeback of dirty pages (after 30 s) slowed
        # the first engines' decoding by up to 30% (measured: 6.7 -> 8.8 ms a step), the last ones' not at all
        os.sync()
        groups = groups_in_memory(kinds, path.stat().st_size, args.sequential)
        print(f"- engines measured in turns, {' | '.join(', '.join(label(k) for k in g) for g in groups)}"
              if any(len(g) > 1 for g in groups) else "- engines measured one after another")
        for group in groups:
            results.update(measure_group(args, group, models, Path(tmp), loads))
    report(args, kinds, results)
    print("\nLoad average (1, 5, 15 min) " + "; ".join(loads) + f". Total {time.perf_counter() - started:.0f} s.")


def label(kind: str) -> str:
    if kind == "rwkv":
        return "rwkv 0.8.32 cpu fp32"
    if kind.startswith("llama:"):
        return f"llama.cpp {kind[6:].upper()}"
    backend, dtype, kernel = parse(kind)
    suffix = {"0": " (weights to float32)", "1": " (int8 activations, VNNI)" if dtype == "int8" else
              " (bf16 activations, AVX-512 BF16)"}.get(kernel, "")
    return f"{backend} {dtype}{suffix}"


def report(args, kinds, results) -> None:
    import numpy as np

    base = results.get("rwkv", {})
    reference = results.get("float32", {})

    def ratio(kind, key):
        value, against = results[kind].get(key), base.get(key)
        return f" ({value / against:.2f}x)" if value and against and kind != "rwkv" else ""

    print("\n| engine | prompt %d tok/s | decode N=1 tok/s | decode N=4 total tok/s | peak RSS MB | weights MB | "
          "RSS / weights | load s | max \\|Δlogit\\| vs fp32 | bits/char (bundled) | Δ bits/char |" % args.prompt)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind in kinds:
        found = results[kind]
        if "error" in found:
            print(f"| {label(kind)} | {found['error']} |||||||||")
            continue
        delta = "—"
        if "trace" in reference and kind != "float32":
            delta = f"{float(np.abs(found['trace'] - reference['trace']).max()):.3g}"
        weights = f"{found['weights_mb']:.0f}" if found.get("weights_mb") else ""
        share = (f"{found['rss_mb'] / found['weights_mb']:.2f}x "
                 f"({(found['rss_mb'] - found['runtime_mb']) / found['weights_mb']:.2f}x)") if found.get("weights_mb") else ""
        bits = found.get("bits")
        cost = ""
        if bits is not None and reference.get("bits") and kind != "float32":
            cost = f"{(bits / reference['bits'] - 1) * 100:+.3f} %"
        print(f"| {label(kind)} | {found['prompt']:.0f}{ratio(kind, 'prompt')} | "
              f"{found['decode1']:.1f}{ratio(kind, 'decode1')} | {found['decode4']:.1f}{ratio(kind, 'decode4')} | "
              f"{found['rss_mb']:.0f} | {weights} | {share} | {found['load_s']:.2f} | {delta} | "
              f"{'' if bits is None else f'{bits:.4f}'} | {cost} |")
    print("\n(ratio) = against the rwkv package in the same run. max |Δlogit|: over the logits after the prompt and "
          "after each decode step (one row); rwkv's against our float32. rwkv N=4: 4 candidates one after another.")
    if "trace" in reference:
        print(f"max |logit| of float32: {float(np.abs(reference['trace']).max()):.3g}")
    against_llama(kinds, results)
    def runtime(native: bool) -> str:
        found = [results[k]["runtime_mb"] for k in kinds if "runtime_mb" in results[k] and not k.startswith("llama")
                 and (parse(k)[0] == "native") == native]
        return f"{min(found):.0f}-{max(found):.0f} MB" if found else "—"

    print(f"weights MB: the weight arrays the engine holds (the step's matrices and float32 vectors; the float32 "
          f"tensors still in a torch model). Before any model, Python with numpy and torch imported holds "
          f"{runtime(False)} of that RSS; Python with numpy and the backends package (native rows: torch never "
          f"imported) {runtime(True)}; (in brackets) the peak RSS beyond it, over the weights.")
    imported = [label(k) for k in kinds if results[k].get("torch_imported")]
    if imported:
        print(f"torch was imported in: {', '.join(imported)}")
    for kind in kinds:
        if "info" in results[kind]:
            print(f"- {label(kind)}: {results[kind]['info']}; quiet runs counted:made, prompt/N=1/N=4: "
                  f"{results[kind]['runs']}")


CLASS_OF = {"float32": "f32", "float16": "f16", "bfloat16": "f16", "int8": "q8_0"}  # our dtype -> llama.cpp's


def against_llama(kinds, results) -> None:
    """Each of our rows over llama.cpp's of its precision class, measured in this run, with issue #17's targets:
    decode N=1 >= 1.2x, decode N=4 (one batch of 4) >= 2x, prompt >= 1.2x llama.cpp F32."""
    llama = {kind[6:]: results[kind] for kind in kinds if kind.startswith("llama:") and "error" not in results[kind]}
    if not llama:
        return
    print("\n| ours over llama.cpp (same run) | against | prompt (>= 1.2x F32) | N=1 (>= 1.2x) | N=4 (>= 2x) | "
          "peak RSS |")
    print("|---|---|---:|---:|---:|---:|")

    def cell(value, against, target):
        if not value or not against:
            return "—"
        ratio = value / against
        return f"{ratio:.2f}x" + (" met" if target and ratio >= target else " not met" if target else "")

    for kind in kinds:
        found, cls = results[kind], CLASS_OF.get(parse(kind)[1])
        if "error" in found or cls not in llama:
            continue
        other, f32 = llama[cls], llama.get("f32", {})
        print(f"| {label(kind)} | llama.cpp {cls.upper()} | {cell(found['prompt'], f32.get('prompt'), 1.2)} | "
              f"{cell(found['decode1'], other['decode1'], 1.2)} | {cell(found['decode4'], other['decode4'], 2.0)} | "
              f"{cell(found['rss_mb'], other['rss_mb'], None)} |")


if __name__ == "__main__":
    main()
