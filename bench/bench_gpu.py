"""Decoding on a CUDA GPU: our torch backend eagerly and through recorded CUDA graphs, against the `rwkv` package.

Run from the repository root, on a machine with an NVIDIA GPU:

    .venv/bin/python bench/bench_gpu.py                    # 24 x 2048, vocabulary 65536 (1.5B shape), float16
    .venv/bin/python bench/bench_gpu.py --quick            # 2 x 128, vocabulary 1000: a dry run (a CPU will do)

Random RWKV-7 weights (models.rwkv7.init_weights) in float16, written once as a .safetensors file (ours) and a
.pth (the package's). Measured in this one process, each engine after a warm-up, the best of --reps:

  ours, eager      backend torch, float16, AI_WRITER_CUDA_GRAPHS=0: every kernel of a step launched from Python
  ours, graphs     backend torch, float16: the step recorded once per batch size and replayed
                   (backends/engines/graph_step.py)
  rwkv package     0.8.32, strategy "cuda fp16", its CUDA kernel where it compiles (RWKV_CUDA_ON=1; else the
                   package's own torch code, said in the table); one stream

for N = 1 and N = 8 rows (one batch; the package one row), --steps single-token steps after a 64-token
prompt; ms per step and total tokens per second, and against the package's single stream (issue #17's target:
N=8 through graphs >= 10x). max |Δlogit| of ours against the package after the prompt and each step (N=1).
Nothing is asserted. Without CUDA the script runs on the CPU (the graphs rows then say why they are eager).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

FULL = dict(shape="24x2048", vocab=65536, steps=64, reps=3)
QUICK = dict(shape="2x128", vocab=1000, steps=16, reps=2)


def write_weights(folder: Path, n_layer: int, n_embd: int, vocab: int) -> tuple[Path, Path]:
    """The float16 weights as STEM.safetensors (ours) and STEM.pth (the package's)."""
    import torch

    from bench_sizes import write_model

    ours = write_model(folder, n_layer, n_embd, vocab, dtype=torch.float16, stem="bench-gpu")
    return ours, ours.with_suffix(".pth")


def timed(step, steps: int, reps: int, sync) -> float:
    """The best seconds per step over reps runs of `steps` calls of step(i)."""
    best = float("inf")
    for _ in range(reps):
        sync()
        start = time.perf_counter()
        for i in range(steps):
            step(i)
        sync()
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def ours(path: Path, device: str, graphs: bool, prompt, tokens, args, sync) -> dict:
    from ai_writer.backends import load

    os.environ["AI_WRITER_CUDA_GRAPHS"] = "1" if graphs else "0"
    engine = load(path, backend="torch", device=device, dtype="float16")
    logits, primed = engine.forward([prompt])
    trace = [logits[0]]
    state = primed
    for token in tokens[0]:
        logits, state = engine.forward([[token]], state)
        trace.append(logits[0])
    if engine.graphed is None:  # not recorded: asked so, or no CUDA device
        why = "eager" + ("" if graphs else " (AI_WRITER_CUDA_GRAPHS=0)") + ("" if device == "cuda" else ": no CUDA")
    else:
        why = engine.graphed.why_eager  # None: recorded
    result = {"trace": trace, "why": why}
    for n in (1, 8):
        state = engine.repeat_rows(primed, n)
        holder = [state]

        def step(i, n=n, holder=holder):
            _, holder[0] = engine.forward([[tokens[r][i]] for r in range(n)], holder[0])

        step(0)  # records the graph of this batch size
        result[n] = timed(step, args.steps, args.reps, sync)
    result["replays"] = engine.graphed.replays if engine.graphed else 0
    return result


def package(path: Path, device: str, prompt, tokens, args, sync) -> dict:
    os.environ.update(RWKV_V7_ON="1", RWKV_JIT_ON="1")
    os.environ.setdefault("RWKV_CUDA_ON", "1" if device == "cuda" else "0")
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from rwkv.model import RWKV

            model = RWKV(model=str(path.with_suffix("")), strategy="cuda fp16" if device == "cuda" else "cpu fp32")
    except ImportError:
        return {"error": "the rwkv package is not installed"}
    except Exception as exc:  # e.g. its CUDA kernel does not compile here: RWKV_CUDA_ON=0 runs its torch code
        return {"error": f"the rwkv package did not load ({str(exc).splitlines()[0][:120]}); try RWKV_CUDA_ON=0"}
    kernel = "its CUDA kernel" if os.environ["RWKV_CUDA_ON"] == "1" else "its torch code"
    logits, primed = model.forward(list(prompt), None)
    trace = [logits.float().cpu().numpy()]
    state = primed
    for token in tokens[0]:
        logits, state = model.forward([token], state)
        trace.append(logits.float().cpu().numpy())
    holder = [[t.clone() for t in primed]]

    def step(i):
        _, holder[0] = model.forward([tokens[0][i]], holder[0])

    return {"trace": trace, 1: timed(step, args.steps, args.reps, sync), "why": kernel}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 x 128, vocabulary 1000: a dry run")
    parser.add_argument("--shape")
    parser.add_argument("--vocab", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--reps", type=int)
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    import numpy as np
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    n_layer, n_embd = (int(x) for x in args.shape.lower().split("x"))
    name = torch.cuda.get_device_name() if device == "cuda" else "no CUDA device: the CPU"
    print(f"# RWKV-7 {n_layer} x {n_embd}, vocabulary {args.vocab}, float16: decoding on {name}")
    print(f"\n- torch {torch.__version__}; prompt 64 tokens, then {args.steps} steps, the best of {args.reps}")
    rng = np.random.default_rng(0)
    prompt = rng.integers(1, args.vocab, size=64).tolist()
    tokens = rng.integers(1, args.vocab, size=(8, args.steps)).tolist()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        started = time.perf_counter()
        path, pth = write_weights(Path(tmp), n_layer, n_embd, args.vocab)
        print(f"- weights written in {time.perf_counter() - started:.0f} s")
        with torch.inference_mode():
            rows = {"ours, eager": ours(path, device, False, prompt, tokens, args, sync),
                    "ours, graphs": ours(path, device, True, prompt, tokens, args, sync)}
        rows["rwkv package"] = package(pth, device, prompt, tokens, args, sync)
    base = rows["rwkv package"].get(1)
    reference = rows["rwkv package"].get("trace")
    print("\n| engine | N=1 ms/step | N=1 tok/s | N=8 ms/step | N=8 total tok/s | N=8 over the package's N=1 "
          "(target >= 10x) | max \\|Δlogit\\| vs the package | how it ran |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for label, row in rows.items():
        if "error" in row:
            print(f"| {label} | | | | | | | {row['error']} |")
            continue
        one, eight = row.get(1), row.get(8)
        cells = [f"{one * 1e3:.2f}", f"{1 / one:.1f}"]
        cells += [f"{eight * 1e3:.2f}", f"{8 / eight:.1f}"] if eight else ["", ""]
        if eight and base:
            ratio = base * 8 / eight
            cells.append(f"{ratio:.1f}x {'met' if ratio >= 10 else 'not met'}")
        else:
            cells.append("")
        if reference is not None and label != "rwkv package":
            cells.append(f"{max(float(np.abs(a - b).max()) for a, b in zip(row['trace'], reference)):.3g}")
        else:
            cells.append("")
        why = row["why"] or f"graphs ({row['replays']} replays)"
        print(f"| {label} | " + " | ".join(cells) + f" | {why} |")


if __name__ == "__main__":
    main()
