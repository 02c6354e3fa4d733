"""Decode speed of the onnx backend (ONNX Runtime, CPU) against the torch backend (CPU) and the `rwkv` package.

Run from the repository root:

    .venv/bin/python bench/bench_onnx.py            # AI-Writer's size: 12 layers x 768, vocab 8849 (a few minutes on 2 idle cores)
    .venv/bin/python bench/bench_onnx.py --quick    # 4 layers x 256, shorter runs: a dry run of the script itself

It builds one random RWKV-7 (models.rwkv7.init_weights), writes it as
STEM.safetensors + STEM.json for our engines (the ONNX export goes to a temporary
cache) and as STEM.pth for the package (0.8.32, strategy "cpu fp32", run as
bench/bench_engine.py runs it), and measures, all fp32 on the CPU:

  1. decode, one candidate: `steps` single-token steps (tokens/s)
  2. decode, 4 candidates: ours as one 4-row batch (state forked by repeat_rows),
     the package one candidate after another (4 x `steps` steps); total tokens/s
  3. a prompt of `prompt` tokens in one forward call: torch reads it in chunks,
     the onnx backend steps through it token by token (its graph is the step)

Each throughput is the best of a few timed runs after warm-up runs, the three
engines alternating within each repetition. It prints a Markdown table and never
asserts anything.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
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
from ai_writer.models.checkpoint import save_safetensors  # noqa: E402
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights  # noqa: E402

VOCAB_SIZE = 8849
FULL = dict(n_layer=12, n_embd=768, prompt=128, steps=64, reps=3)
QUICK = dict(n_layer=4, n_embd=256, prompt=32, steps=16, reps=2)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start



def machine_facts() -> list[str]:
    import onnxruntime
    from importlib.metadata import version

    cpu = cpu_name()
    return [
        f"- CPU: {cpu}; os.cpu_count() = {os.cpu_count()}",
        f"- Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"onnxruntime {onnxruntime.__version__}, numpy {np.__version__}, rwkv {version('rwkv')}",
    ]


def write_model(folder: Path, n_layer: int, n_embd: int) -> tuple[Path, Path]:
    """The same random weights as STEM.safetensors + STEM.json (ours) and STEM.pth (the package)."""
    model = init_weights(RWKV7(RWKV7Config(n_layer, n_embd, VOCAB_SIZE)), seed=0)
    weights = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    stem = folder / "bench-rwkv7"
    save_safetensors(weights, stem.with_suffix(".safetensors"))
    chars = ["\n"] + [chr(0x4E00 + i) for i in range(VOCAB_SIZE - 1)]
    import json

    stem.with_suffix(".json").write_text(json.dumps(dict(enumerate(chars)), ensure_ascii=False), encoding="utf-8")
    torch.save(weights, stem.with_suffix(".pth"))
    return stem.with_suffix(".safetensors"), stem


def load_package(stem: Path):
    import io
    from contextlib import redirect_stdout

    with redirect_stdout(io.StringIO()):  # it prints its loading chatter
        from rwkv.model import RWKV

        return RWKV(model=str(stem), strategy="cpu fp32")


class Package:
    """The rwkv package behind the engines' forward / repeat_rows (one row at a time)."""

    def __init__(self, model):
        self.model = model

    def forward(self, token_lists, state=None):
        if len(token_lists) != 1:
            raise ValueError("the package runs one row at a time")
        logits, state = self.model.forward(list(token_lists[0]), None if state is None else [t.clone() for t in state])
        return logits.float().numpy()[None], state


def make_runs(engine, prime, seqs, steps, prompt, batched: bool) -> dict:
    """The timed closures of one engine: decode N=1, decode N=4, the prompt."""
    _, start = engine.forward([prime], None)

    def one(row=0):
        state = start
        for t in seqs[row][:steps]:
            _, state = engine.forward([[t]], state)

    def four():
        if not batched:
            for row in range(4):
                one(row)
            return
        state = engine.repeat_rows(start, 4)
        for i in range(steps):
            _, state = engine.forward([[seqs[r][i]] for r in range(4)], state)

    return {"one": one, "four": four, "prompt": lambda: engine.forward([prompt], None)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 layers x 256 and shorter runs (a dry run)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    L, C, S, P, reps = cfg["n_layer"], cfg["n_embd"], cfg["steps"], cfg["prompt"], cfg["reps"]

    print(f"# ONNX backend benchmark: random RWKV-7 {L} x {C}, vocab {VOCAB_SIZE}, fp32 CPU"
          + (" (--quick)" if args.quick else ""))
    print()
    print("\n".join(machine_facts()))
    load_before = load_average()

    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp, torch.inference_mode():
        path, stem = write_model(Path(tmp), L, C)
        export_start = time.perf_counter()
        onnx_engine = load(path, backend="onnx", device="cpu", cache_dir=Path(tmp) / "cache")
        export_seconds = time.perf_counter() - export_start
        engines = {
            "onnx (ONNX Runtime CPU)": (onnx_engine, True),
            "torch CPU": (load(path, backend="torch", device="cpu"), True),
            "rwkv package": (Package(load_package(stem)), False),
        }
        prime = rng.integers(0, VOCAB_SIZE, size=16).tolist()
        seqs = rng.integers(0, VOCAB_SIZE, size=(4, S)).tolist()
        prompt = rng.integers(0, VOCAB_SIZE, size=P).tolist()

        runs = {}
        for name, (engine, batched) in engines.items():
            runs[name] = make_runs(engine, prime, seqs, S, prompt, batched)
            for fn in runs[name].values():  # warm-up (TorchScript profiles its first runs)
                fn()
        best = {name: {"one": [], "four": [], "prompt": []} for name in runs}
        for _ in range(reps):
            for name, fns in runs.items():
                for key, fn in fns.items():
                    best[name][key].append(timed(fn))

        logits_onnx = onnx_engine.forward([prompt], None)[0]
        logits_torch = engines["torch CPU"][0].forward([prompt], None)[0]
        logit_diff = float(np.abs(logits_onnx - logits_torch).max())

    rates = {name: {"one": S / min(t["one"]), "four": 4 * S / min(t["four"]), "prompt": P / min(t["prompt"])}
             for name, t in best.items()}
    torch_rates = rates["torch CPU"]
    lines = [
        "| Engine | Decode N=1 (tok/s) | Decode N=4, total (tok/s) | Prompt of "
        f"{P} tokens (tok/s) | N=1 vs torch | N=4 vs torch |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rates.items():
        lines.append(f"| {name} | {r['one']:.1f} | {r['four']:.1f} | {r['prompt']:.0f} | "
                     f"{r['one'] / torch_rates['one']:.2f}x | {r['four'] / torch_rates['four']:.2f}x |")
    print()
    print("\n".join(lines))
    print()
    print(f"Decode: {S} steps per candidate, best of {reps} runs after warm-up; N=4 is one batch of 4 rows for "
          f"onnx and torch, 4 candidates one after another for the package. Prompt: torch reads it in chunks, "
          f"onnx token by token (the exported graph is the single-token step), the package in its own sequence form. "
          f"Export to ONNX (first use, cached after): {export_seconds:.1f} s. "
          f"Prompt logits, onnx vs torch: max |diff| {logit_diff:.1e}. "
          f"Load average before / after: {load_before} / {load_average()}. Total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
