"""Speed of the models AI-Writer's users already have, on CPU, fp32, random weights of the real shapes.

Run from the repository root:

    .venv/bin/python bench/bench_old_models.py           # the real shapes (a few minutes on 2 idle cores)
    .venv/bin/python bench/bench_old_models.py --quick   # small shapes: a dry run of the script itself

One table:

  - RWKV-4 of the 169M shape (12 x 768, vocabulary 50277): our batched torch step and
    what backend "auto" runs on a CPU (torch+onnx: the ONNX Runtime step decodes), one
    candidate and 4 candidates as one batch, against the `rwkv` package (0.8.32,
    strategy "cpu fp32") decoding one candidate, measured in the same run.
  - RWKV-6 ("Finch") of a 12 x 768 shape, vocabulary 65536 (the World vocabulary's size;
    the released 1.6B, 24 x 2048, is too big for a 2-core machine): our torch engine
    (backend "auto" runs it on torch on a CPU) decoding one candidate and 4 candidates as
    one batch, and reading a 256-token prompt, against the `rwkv` package decoding one
    sequence and reading the same prompt, measured in the same run.
  - AI-Writer v1 at its size (12 x 768, 12 heads, ctx_len 512, FFN 1920, vocabulary
    8849, with the copy head): decoding with the window cache while the text is
    shorter than ctx_len (N = 1 and N = 4 as one batch), decoding once the window
    is full (every character re-reads the last 512 from position 0, exactly as the
    original did), the same with `window_refill = T/2` (a pass of T/2 characters, then
    cached steps until the window is full again; averaged over one cycle), and the original's own method as the baseline: every new
    character runs the whole text so far (up to 512 characters) from position 0.

Each figure is the best of a few timed runs after a warm-up. Nothing here asserts
anything about timings.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

os.environ.pop("RWKV_V7_ON", None)  # the package's RWKV-4 path
os.environ["RWKV_JIT_ON"] = "1"
os.environ["RWKV_CUDA_ON"] = "0"

import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_common import cpu_name, load_average  # noqa: E402

from ai_writer.backends import load  # noqa: E402
from ai_writer.backends.engines.base import EngineInfo  # noqa: E402
from ai_writer.backends.engines.torch_engine import TorchEngine  # noqa: E402
from ai_writer.models.aiwriter_v1 import AIWriterV1, AIWriterV1Config  # noqa: E402
from ai_writer.models.checkpoint import build_model, save_safetensors  # noqa: E402
from ai_writer.models.rwkv4 import RWKV4, RWKV4Config, init_weights  # noqa: E402
from ai_writer.models.rwkv6 import RWKV6, RWKV6Config  # noqa: E402
from ai_writer.models.rwkv6 import init_weights as init_rwkv6  # noqa: E402


def best_rate(fn, tokens: int, reps: int) -> float:
    fn()  # warm-up
    best = min(_timed(fn) for _ in range(reps))
    return tokens / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def engine_for(model, architecture: str) -> TorchEngine:
    c = model.config
    return TorchEngine(model, None, EngineInfo(architecture, "torch", "cpu", "(random)", c.n_layer, c.n_embd, c.vocab_size))


def decode(engine, state, steps: int, rows: int):
    def run():
        s = state
        for i in range(steps):
            _, s = engine.forward([[3 + (i * 7 + r) % 50] for r in range(rows)], s)
    return run


# -- RWKV-4 ---------------------------------------------------------------------------


def bench_rwkv4(n_layer, n_embd, vocab, steps, reps, folder: Path):
    weights = {k: v.detach().clone().contiguous()
               for k, v in init_weights(RWKV4(RWKV4Config(n_layer, n_embd, vocab)), seed=0).state_dict().items()}
    torch.save(weights, folder / "rwkv4.pth")
    engine = engine_for(build_model(weights, "(random RWKV-4)"), "rwkv4")
    prompt = [3 + i % 50 for i in range(64)]
    _, state = engine.forward([prompt], None)
    ours_1 = best_rate(decode(engine, state, steps, 1), steps, reps)
    ours_4 = best_rate(decode(engine, engine.repeat_rows(state, 4), steps, 4), 4 * steps, reps)
    # what backend "auto" runs on a CPU: torch for prompts, the exported ONNX Runtime step for decoding
    save_safetensors(weights, folder / "rwkv4.safetensors")
    characters = [chr(c) for c in range(0x3400, 0x3400 + vocab + 2048) if not 0xD800 <= c <= 0xDFFF][:vocab]
    (folder / "rwkv4.json").write_text(json.dumps(dict(enumerate(characters)), ensure_ascii=False), encoding="utf-8")
    auto = load(folder / "rwkv4.safetensors", backend="auto", device="cpu", cache_dir=folder)
    auto.wait_for_decode_step(600) if hasattr(auto, "wait_for_decode_step") else None
    _, state = auto.forward([prompt], None)
    auto_1 = best_rate(decode(auto, state, steps, 1), steps, reps)
    auto_4 = best_rate(decode(auto, auto.repeat_rows(state, 4), steps, 4), 4 * steps, reps)
    auto_name = auto.info.backend
    del auto
    with redirect_stdout(io.StringIO()):
        from rwkv.model import RWKV

        package = RWKV(model=str(folder / "rwkv4"), strategy="cpu fp32", verbose=False)
    _, pkg_state = package.forward(prompt, None)

    def package_run():
        s = [t.clone() for t in pkg_state]
        for i in range(steps):
            _, s = package.forward([3 + i % 50], s)

    pkg_1 = best_rate(package_run, steps, reps)
    return ours_1, ours_4, auto_1, auto_4, auto_name, pkg_1


# -- RWKV-6 ---------------------------------------------------------------------------


def bench_rwkv6(n_layer, n_embd, vocab, steps, prompt_length, reps, folder: Path):
    weights = {k: v.detach().clone().contiguous()
               for k, v in init_rwkv6(RWKV6(RWKV6Config(n_layer, n_embd, vocab)), seed=0).state_dict().items()}
    torch.save(weights, folder / "rwkv6.pth")
    engine = engine_for(build_model(weights, "(random RWKV-6)"), "rwkv6")
    prompt = [3 + (i * 7) % 50 for i in range(prompt_length)]
    ours_prompt = best_rate(lambda: engine.forward([prompt], None), prompt_length, max(1, reps - 1))
    _, state = engine.forward([prompt[:64]], None)
    ours_1 = best_rate(decode(engine, state, steps, 1), steps, reps)
    ours_4 = best_rate(decode(engine, engine.repeat_rows(state, 4), steps, 4), 4 * steps, reps)
    with redirect_stdout(io.StringIO()):
        from rwkv.model import RWKV

        package = RWKV(model=str(folder / "rwkv6"), strategy="cpu fp32", verbose=False)
    assert package.version == 6, f"the package read the RWKV-6 file as v{package.version}"
    pkg_prompt = best_rate(lambda: package.forward(prompt, None), prompt_length, max(1, reps - 1))
    _, pkg_state = package.forward(prompt[:64], None)

    def package_run():
        s = [t.clone() for t in pkg_state]
        for i in range(steps):
            _, s = package.forward([3 + i % 50], s)

    pkg_1 = best_rate(package_run, steps, reps)
    return ours_1, ours_4, ours_prompt, pkg_1, pkg_prompt


# -- AI-Writer v1 -----------------------------------------------------------------------


def v1_model(n_layer, n_embd, n_head, ctx_len, vocab, n_ffn) -> AIWriterV1:
    config = AIWriterV1Config(n_layer, n_embd, n_head, ctx_len, vocab, n_ffn, head_qk=256)
    model = AIWriterV1(config)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(0.5 + torch.rand(p.shape, generator=g) if name.split(".")[-1].startswith("time_")
                    else (torch.rand(p.shape, generator=g) - 0.5) / p.shape[-1] ** 0.5)
    return model.eval().requires_grad_(False)


def bench_v1(shape, steps, full_steps, reps):
    n_layer, n_embd, n_head, ctx_len, vocab, n_ffn = shape
    engine = engine_for(v1_model(*shape), "aiwriter-v1")
    text = [3 + (i * 13) % 50 for i in range(ctx_len)]
    start = ctx_len // 4  # a prompt of a quarter window, then `steps` characters
    _, state = engine.forward([text[:start]], None)
    cached_1 = best_rate(decode(engine, state, steps, 1), steps, reps)
    cached_4 = best_rate(decode(engine, engine.repeat_rows(state, 4), steps, 4), 4 * steps, reps)
    _, full = engine.forward([text], None)  # the window is full from here on
    sliding_1 = best_rate(decode(engine, full, full_steps, 1), full_steps, reps)
    sliding_4 = best_rate(decode(engine, engine.repeat_rows(full, 4), full_steps, 4), 4 * full_steps, reps)

    refill = ctx_len // 2  # load(..., window_refill=T/2): one full cycle of it from a full window
    engine.model.set_refill(refill)
    cycle = ctx_len - refill + 1
    refill_1 = best_rate(decode(engine, full, cycle, 1), cycle, max(1, reps - 1))
    refill_4 = best_rate(decode(engine, engine.repeat_rows(full, 4), cycle, 4), 4 * cycle, max(1, reps - 1))
    engine.model.set_refill(0)

    def original(length, count):  # the old tool: each character runs the whole text from position 0
        def run():
            for i in range(count):
                engine.forward([text[: length + i]], None)
        return run

    original_short = best_rate(original(start, steps), steps, reps)
    original_full = best_rate(original(ctx_len, full_steps), full_steps, reps)
    return cached_1, cached_4, sliding_1, sliding_4, refill_1, refill_4, original_short, original_full


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, few steps (a dry run)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.quick:
        rwkv4_shape, v1_shape, steps, full_steps, reps = (2, 128, 1000), (2, 128, 2, 64, 300, 320), 8, 3, 2
        rwkv6_shape, prompt_length = (2, 128, 1000), 32
    else:
        rwkv4_shape, v1_shape, steps, full_steps, reps = (12, 768, 50277), (12, 768, 12, 512, 8849, 1920), 64, 6, 3
        rwkv6_shape, prompt_length = (12, 768, 65536), 256
    print(f"- CPU: {cpu_name()}; os.cpu_count() = {os.cpu_count()}; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); load average at start: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        r4 = bench_rwkv4(*rwkv4_shape, steps, reps, Path(tmp))
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        r6 = bench_rwkv6(*rwkv6_shape, steps, prompt_length, reps, Path(tmp))
    with torch.inference_mode():
        v1 = bench_v1(v1_shape, steps, full_steps, reps)
    ours_1, ours_4, auto_1, auto_4, auto_name, pkg_1 = r4
    r6_1, r6_4, r6_prompt, r6_pkg_1, r6_pkg_prompt = r6
    cached_1, cached_4, sliding_1, sliding_4, refill_1, refill_4, original_short, original_full = v1
    L, C, H, T, V, F = v1_shape
    print(f"- load average at the end: {load_average()}\n")
    print("| model | how | N | tokens/s (all candidates) | ratio to the baseline |")
    print("|---|---|---|---|---|")
    print(f"| RWKV-4 {rwkv4_shape[0]}x{rwkv4_shape[1]}, V {rwkv4_shape[2]} | `rwkv` package, one stream (baseline) | 1 | {pkg_1:.1f} | 1.00x |")
    print(f"| | ours, batched step | 1 | {ours_1:.1f} | {ours_1 / pkg_1:.2f}x |")
    print(f"| | ours, batched step | 4 | {ours_4:.1f} | {ours_4 / pkg_1:.2f}x |")
    print(f"| | ours, `auto` ({auto_name}) | 1 | {auto_1:.1f} | {auto_1 / pkg_1:.2f}x |")
    print(f"| | ours, `auto` ({auto_name}) | 4 | {auto_4:.1f} | {auto_4 / pkg_1:.2f}x |")
    print(f"| RWKV-6 {rwkv6_shape[0]}x{rwkv6_shape[1]}, V {rwkv6_shape[2]} | `rwkv` package, one stream (baseline) | 1 | {r6_pkg_1:.1f} | 1.00x |")
    print(f"| | ours, batched step (torch; what `auto` runs on a CPU) | 1 | {r6_1:.1f} | {r6_1 / r6_pkg_1:.2f}x |")
    print(f"| | ours, batched step (torch; what `auto` runs on a CPU) | 4 | {r6_4:.1f} | {r6_4 / r6_pkg_1:.2f}x |")
    print(f"| | `rwkv` package, reading a {prompt_length}-token prompt (baseline) | 1 | {r6_pkg_prompt:.1f} | 1.00x |")
    print(f"| | ours, reading the same prompt | 1 | {r6_prompt:.1f} | {r6_prompt / r6_pkg_prompt:.2f}x |")
    print(f"| AI-Writer v1 {L}x{C}, T {T}, V {V} | original method: whole text from position 0 per character, text at {T // 4} (baseline) | 1 | {original_short:.1f} | 1.00x |")
    print(f"| | ours, window cache, text shorter than T | 1 | {cached_1:.1f} | {cached_1 / original_short:.2f}x |")
    print(f"| | ours, window cache, text shorter than T | 4 | {cached_4:.1f} | {cached_4 / original_short:.2f}x |")
    print(f"| | original method, window full ({T} characters per pass) (baseline) | 1 | {original_full:.2f} | 1.00x |")
    print(f"| | ours, window full (exact: each character re-reads the window) | 1 | {sliding_1:.2f} | {sliding_1 / original_full:.2f}x |")
    print(f"| | ours, window full, one batch | 4 | {sliding_4:.2f} | {sliding_4 / original_full:.2f}x |")
    print(f"| | ours, window full, `window_refill = {T // 2}` (a pass of {T // 2}, then cached steps; averaged over a cycle) | 1 | {refill_1:.2f} | {refill_1 / original_full:.2f}x |")
    print(f"| | ours, window full, `window_refill = {T // 2}`, one batch | 4 | {refill_4:.2f} | {refill_4 / original_full:.2f}x |")


if __name__ == "__main__":
    main()
