"""Speed of our CPU engines against the `rwkv` PyPI package (0.8.32), on CPU, fp32.

Run from the repository root:

    .venv/bin/python bench/bench_engine.py            # AI-Writer's size: 12 layers x 768, vocab 8849 (about 2 min on 2 idle cores)
    .venv/bin/python bench/bench_engine.py --quick    # 4 layers x 256, shorter runs: a dry run of the script itself
    .venv/bin/python bench/bench_engine.py --profile  # also: the ops that dominate our single-row decode step

It builds one random RWKV-7 (models.rwkv7.init_weights), writes the same weights as
STEM.safetensors + STEM.json (the real AI-Writer vocabulary) for our engines and as
STEM.pth for the package, and measures three of ours: "torch" (backend torch: torch
alone), "torch+onnx" (backends.engines.hybrid_engine: torch reads prompts, ONNX Runtime's
exported step decodes; its export goes to a temporary cache, and the time it takes
is reported) and "torch+native" (what backend auto picks on a CPU where a C
compiler is found: torch reads prompts, backends.engines.native_step's C step decodes; it
is compiled into a temporary cache, and the load times are reported):

  1. prompt: 512 tokens in one forward (tokens/s)
  2. decode, one candidate: 100 single-token steps (tokens/s)
  3. decode, 4 candidates: ours as one 4-row batch (state forked by repeat_rows),
     the package one candidate after another (4 x 100 steps); total tokens/s
  4. the memory-bandwidth bound on decode: copy bandwidth / bytes of weights read per step
  5. time to the first new character through GenerationService and its prompt cache,
     on a 100,000-character manuscript (the first 100k characters of 红楼梦), after
     appending one character (n=1 and n=4)

It prints a Markdown table and never asserts anything about timings: the "target"
column says whether a number meets the goal on this machine. Each throughput is
the best of a few timed runs after warm-up runs (the fastest run is the one least
disturbed by other processes on a shared machine; the load average is printed at
the start and the end to judge that); our engines and the package alternate within
each repetition so that drift in the machine's speed hits all alike. Times to the
first character are medians. The "Met" column judges torch+native, the engine auto picks.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

# The package reads these when rwkv.model is first imported.
os.environ["RWKV_V7_ON"] = "1"
os.environ["RWKV_JIT_ON"] = "1"
os.environ["RWKV_CUDA_ON"] = "0"

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_common import cpu_name, load_average  # noqa: E402

from ai_writer.backends import load  # noqa: E402
from ai_writer.backends.writing.generation import Chunk, Failed, GenerationRequest, GenerationService  # noqa: E402
from ai_writer.backends.writing.sampling import SamplingSettings  # noqa: E402
from ai_writer.models.checkpoint import save_safetensors  # noqa: E402
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights  # noqa: E402

SHARED = REPO.parent / "shared"
VOCAB = SHARED / "aiwriter" / "wangwen-2022-02-15.json"
CORPUS = SHARED / "corpus" / "hongloumeng.txt"
VOCAB_SIZE = 8849

# reps: timed runs of the prompt, decode N=1 and ours N=4 (the package's 4 x `steps` decode, the
# slowest part, gets one run fewer); the best run counts.
FULL = dict(n_layer=12, n_embd=768, prompt=512, steps=100, reps=4, manuscript=100_000, ttfc_reps=5)
QUICK = dict(n_layer=4, n_embd=256, prompt=128, steps=20, reps=3, manuscript=20_000, ttfc_reps=3)

TARGETS = {  # ours / package, or an absolute limit
    "prompt": 2.0,
    "decode1": 1.0,
    "decode4": 4.0,
    "ttfc_ms": 100.0,
}


# -- helpers -------------------------------------------------------------------


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values) -> float:
    return statistics.median(values)



def machine_facts() -> list[str]:
    cpu = cpu_name()
    import rwkv  # noqa: F401  (the package; its version from metadata)
    from importlib.metadata import version

    return [
        f"- CPU: {cpu}; os.cpu_count() = {os.cpu_count()}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, rwkv {version('rwkv')}",
        f"- torch threads: {torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op; "
        f"MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()}",
    ]


def write_model(folder: Path, n_layer: int, n_embd: int) -> tuple[Path, Path, dict]:
    """The same random weights as STEM.safetensors + STEM.json (ours) and STEM.pth (the package)."""
    model = init_weights(RWKV7(RWKV7Config(n_layer, n_embd, VOCAB_SIZE)), seed=0)
    weights = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    stem = folder / "bench-rwkv7"
    save_safetensors(weights, stem.with_suffix(".safetensors"))
    shutil.copy(VOCAB, stem.with_suffix(".json"))
    torch.save(weights, stem.with_suffix(".pth"))
    return stem.with_suffix(".safetensors"), stem, weights


def random_auto_engine(folder: Path, n_layer: int, n_embd: int):
    """(model path, engine) of a random RWKV-7 in `folder`, on the backend auto picks here, its decode step ready."""
    path, _, _ = write_model(folder, n_layer, n_embd)
    engine = load(path, backend="auto", device="cpu")
    if hasattr(engine, "wait_for_decode_step"):
        engine.wait_for_decode_step(timeout=600)
    return path, engine


def bytes_per_decode_step(weights: dict) -> int:
    """fp32 bytes read per single-token step: every parameter once, the embedding one row.

    blocks.0.att.v0/v1/v2 exist in the file but neither engine reads them.
    """
    total = 0
    for name, tensor in weights.items():
        if name in ("blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"):
            continue
        if name == "emb.weight":
            total += tensor.shape[1] * 4
        else:
            total += tensor.numel() * 4
    return total


def copy_bandwidth(megabytes: int = 256, reps: int = 7) -> tuple[float, float]:
    """(copy GB/s counting bytes read + written, read-only GB/s from a sum), best of `reps`."""
    n = megabytes * 2**20 // 4
    src = torch.rand(n)
    dst = torch.empty_like(src)
    dst.copy_(src)
    copy = min(timed(lambda: dst.copy_(src)) for _ in range(reps))
    src.sum()
    read = min(timed(lambda: src.sum()) for _ in range(reps))
    nbytes = n * 4
    return 2 * nbytes / copy / 1e9, nbytes / read / 1e9


# -- the package ----------------------------------------------------------------


def load_package(stem: Path):
    import io
    from contextlib import redirect_stdout

    with redirect_stdout(io.StringIO()):  # it prints its loading chatter
        from rwkv.model import RWKV

        return RWKV(model=str(stem), strategy="cpu fp32")


def clone_state(state):
    return [t.clone() for t in state]


# -- the measurements ---------------------------------------------------------------


def bench_prompt(engines, package, tokens, reps):
    """({name: our tokens/s}, package tokens/s, {name: max |logit diff| against the package})."""
    diffs = {}
    for _ in range(2):  # warm-up (the package's TorchScript profiles its first runs)
        logits_pkg, _ = package.forward(list(tokens), None)
        for name, engine in engines.items():
            logits_ours, _ = engine.forward([tokens], None)
            diffs[name] = float(np.abs(logits_ours[0] - logits_pkg.float().numpy()).max())
    ours, theirs = {name: [] for name in engines}, []
    for _ in range(reps):
        for name, engine in engines.items():
            ours[name].append(timed(lambda: engine.forward([tokens], None)))
        theirs.append(timed(lambda: package.forward(list(tokens), None)))
    n = len(tokens)
    return {name: n / min(times) for name, times in ours.items()}, n / min(theirs), diffs


def bench_decode(engines, package, prime, steps, reps, rng, vocab):
    """({name: (N=1, N=4 total)}, package N=1, package N=4 total) tokens/s."""
    _, pkg_state = package.forward(list(prime), None)
    seqs = rng.integers(0, vocab, size=(4, steps)).tolist()

    def ours_one(engine, start, count=steps):
        state = start
        for t in seqs[0][:count]:
            _, state = engine.forward([[t]], state)

    def ours_four(engine, start, count=steps):
        state = engine.repeat_rows(start, 4)
        for i in range(count):
            _, state = engine.forward([[seqs[r][i]] for r in range(4)], state)

    def pkg_one(row=0):
        state = clone_state(pkg_state)
        for t in seqs[row]:
            _, state = package.forward([t], state)

    def pkg_four():
        for row in range(4):
            pkg_one(row)

    starts = {name: engine.forward([prime], None)[1] for name, engine in engines.items()}
    # warm-up: steps of each shape (the package's TorchScript needs a few calls to settle)
    for name, engine in engines.items():
        ours_one(engine, starts[name], 20)
        ours_four(engine, starts[name], min(steps, 20))
    state = clone_state(pkg_state)
    for t in seqs[0][:20] * 2:
        _, state = package.forward([t], state)

    o1, o4 = {name: [] for name in engines}, {name: [] for name in engines}
    p1, p4 = [], []
    for rep in range(reps):
        for name, engine in engines.items():
            o1[name].append(timed(lambda: ours_one(engine, starts[name])))
        p1.append(timed(pkg_one))
        for name, engine in engines.items():
            o4[name].append(timed(lambda: ours_four(engine, starts[name])))
        if rep < max(1, reps - 1):  # 4 x 100 package steps are the slowest part: one run fewer
            p4.append(timed(pkg_four))
    ours = {name: (steps / min(o1[name]), 4 * steps / min(o4[name])) for name in engines}
    return ours, steps / min(p1), 4 * steps / min(p4)


def load_hybrid_timed(path, cache_dir):
    """(the torch+onnx engine, [(seconds in load(), seconds more until its ONNX step is open)] for a cold
    cache (the export) and then for the cached file)."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        engine = load(path, backend="torch+onnx", device="cpu", cache_dir=cache_dir)
        loaded = time.perf_counter()
        if not engine.wait_for_decode_step(600):
            raise RuntimeError(f"no ONNX step: {engine.decode_step_error}")
        times.append((loaded - start, time.perf_counter() - loaded))
    return engine, times


def load_native_timed(path, cache_dir):
    """(the torch+native engine auto picks, [seconds in load() with the step compiled, then from its cache])."""
    from ai_writer.backends.engines.native_step import CACHE_ENV

    os.environ[CACHE_ENV] = str(cache_dir)  # a cold cache: the first load compiles
    times = []
    for _ in range(2):
        start = time.perf_counter()
        engine = load(path, backend="auto", device="cpu")
        times.append(time.perf_counter() - start)
        if engine.info.backend != "torch+native":
            raise RuntimeError(f"auto picked {engine.info.backend}: {engine.selection.reason}")
    return engine, times


def time_to_first_chunk(service, text: str, n: int) -> float:
    """Seconds from submit until the first Chunk event arrives on the worker thread."""
    first = {}
    arrived = threading.Event()
    problems = []

    def on_event(event):
        if isinstance(event, Chunk) and "t" not in first:
            first["t"] = time.perf_counter()
            arrived.set()
        elif isinstance(event, Failed):
            problems.append(event.message)
            arrived.set()

    request = GenerationRequest(text, n=n, length=1, sampling=SamplingSettings(seed=0))
    start = time.perf_counter()
    job = service.submit(request, on_event)
    arrived.wait(timeout=300)
    job.wait(timeout=300)
    if problems:
        raise RuntimeError(f"generation failed: {problems[0]}")
    return first["t"] - start


def bench_ttfc(engine, manuscript_chars: int, reps: int):
    corpus = CORPUS.read_text(encoding="utf-8")
    text = corpus[:manuscript_chars]
    extra = iter(c for c in corpus[manuscript_chars:] if not c.isspace())
    service = GenerationService(engine)
    try:
        results = {}
        for n in (1, 4):
            service.cache.clear()
            cold = time_to_first_chunk(service, text, n)  # reads ~context_chars into the cache
            warm = []
            for _ in range(reps):
                text += next(extra)
                warm.append(time_to_first_chunk(service, text, n))
            results[n] = (cold, median(warm))
        return results
    finally:
        service.close()


def profile_decode(engine, prime, steps=30):
    from torch.profiler import ProfilerActivity, profile

    _, state = engine.forward([prime], None)
    for t in range(5):
        _, state = engine.forward([[t]], state)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for t in range(steps):
            _, state = engine.forward([[t + 10]], state)
    print(f"\nProfile of our decode, one row, {steps} steps (self CPU time):\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))


# -- the report -------------------------------------------------------------------


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 layers x 256 and shorter runs (a dry run)")
    parser.add_argument("--profile", action="store_true", help="also profile torch's single-row decode step")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    rng = np.random.default_rng(0)
    started = time.perf_counter()

    print(f"# Engine benchmark: random RWKV-7 {cfg['n_layer']} x {cfg['n_embd']}, vocab {VOCAB_SIZE}, fp32 CPU"
          + (" (--quick)" if args.quick else ""))
    print()
    print("\n".join(machine_facts()))
    load_before = load_average()

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp, torch.inference_mode():
        path, stem, weights = write_model(Path(tmp), cfg["n_layer"], cfg["n_embd"])
        hybrid, load_times = load_hybrid_timed(path, Path(tmp) / "onnx-cache")
        native, native_times = load_native_timed(path, Path(tmp) / "native-cache")
        engines = {"torch": load(path, backend="torch", device="cpu"), "torch+onnx": hybrid, "torch+native": native}
        package = load_package(stem)

        prompt = rng.integers(0, VOCAB_SIZE, size=cfg["prompt"]).tolist()
        prompt_ours, prompt_pkg, logit_diffs = bench_prompt(engines, package, prompt, cfg["reps"])
        decode_ours, d1_pkg, d4_pkg = bench_decode(engines, package, prompt[:16], cfg["steps"], cfg["reps"], rng, VOCAB_SIZE)
        copy_gbs, read_gbs = copy_bandwidth()
        step_bytes = bytes_per_decode_step(weights)
        bound = copy_gbs * 1e9 / step_bytes
        ttfc = {name: bench_ttfc(engine, cfg["manuscript"], cfg["ttfc_reps"]) for name, engine in engines.items()}
        report(cfg, list(engines), prompt_ours, prompt_pkg, logit_diffs, decode_ours, d1_pkg, d4_pkg,
               copy_gbs, read_gbs, step_bytes, bound, ttfc, load_times, native_times, load_before, started)
        if args.profile:
            profile_decode(engines["torch"], prompt[:16])


def report(cfg, names, prompt_ours, prompt_pkg, logit_diffs, decode_ours, d1_pkg, d4_pkg,
           copy_gbs, read_gbs, step_bytes, bound, ttfc, load_times, native_times, load_before, started) -> None:
    P, S = cfg["prompt"], cfg["steps"]
    judged = names[-1]  # torch+native: what auto picks on a CPU with a C compiler

    def measured(label, ours, pkg, target=None, fmt="{:.1f}"):
        cells = [label] + [fmt.format(ours[n]) for n in names] + [fmt.format(pkg)]
        cells += [f"{ours[n] / pkg:.2f}x" for n in names]
        if target is None:
            return row(*cells, "", "")
        return row(*cells, f">= {target:g}x", verdict(ours[judged] / pkg >= target))

    def single(label, values, target_ms=None):
        cells = [label] + [values[n] for n in names] + [""] * (1 + len(names))
        if target_ms is None:
            return row(*cells, "", "")
        return row(*cells, f"<= {target_ms:.0f} ms", verdict(float(values[judged]) <= target_ms))

    lines = [
        row("Measure", *names, "Package", *(f"{n} / package" for n in names), "Target", "Met"),
        row("---", *(["---:"] * (2 * len(names) + 1)), "---", "---"),
        measured(f"Prompt, {P} tokens in one forward (tok/s)", prompt_ours, prompt_pkg, TARGETS["prompt"], "{:.0f}"),
        measured(f"Decode N=1, {S} steps (tok/s)", {n: decode_ours[n][0] for n in names}, d1_pkg, TARGETS["decode1"]),
        measured(f"Decode N=4, total tok/s (ours 1 batch of 4; package 4 x {S} steps)",
                 {n: decode_ours[n][1] for n in names}, d4_pkg, TARGETS["decode4"]),
        single(f"Bandwidth bound on decode N=1: {copy_gbs:.1f} GB/s copy / {step_bytes / 1e6:.1f} MB per step (tok/s)",
               {n: f"{bound:.1f}" if n == names[0] else "" for n in names}),
        row("Decode N=1 as a fraction of that bound", *(f"{decode_ours[n][0] / bound:.0%}" for n in names),
            f"{d1_pkg / bound:.0%}", *([""] * (len(names) + 2))),
    ]
    for n in (1, 4):
        lines.append(single(f"Time to first character, n={n}: cold cache, {cfg['manuscript']:,}-char manuscript (ms)",
                            {name: f"{ttfc[name][n][0] * 1000:.0f}" for name in names}))
        lines.append(single(f"Time to first character, n={n}: after appending one character (ms)",
                            {name: f"{ttfc[name][n][1] * 1000:.0f}" for name in names}, TARGETS["ttfc_ms"]))
    print()
    print("\n".join(lines))
    print()
    (cold_load, cold_step), (warm_load, warm_step) = load_times
    print(f"Throughputs: best of {cfg['reps']} runs after warm-up (package N=4: {max(1, cfg['reps'] - 1)}); "
          f"times to first character: median of {cfg['ttfc_reps']} appends, each a new request. "
          f"Bandwidth: best of 7 copies of 256 MB (read + written bytes); read-only (sum): {read_gbs:.1f} GB/s. "
          f"Prompt logits against the package: max |diff| "
          + ", ".join(f"{n} {logit_diffs[n]:.1e}" for n in names) + ". "
          f"torch+onnx: load() returned in {cold_load:.2f} s and its ONNX step (exported in the background) was "
          f"open {cold_step:.2f} s later; from the cache, {warm_load:.2f} s and {warm_step:.2f} s. "
          f"torch+native: load() took {native_times[0]:.2f} s with its step compiled, {native_times[1]:.2f} s "
          f"with it cached. "
          f"Load average before / after: {load_before} / {load_average()}. Total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
