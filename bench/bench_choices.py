"""What recording the model's choices costs, and how fast choosing an alternative continues.

Run from the repository root (a random 12 x 768 RWKV-7, vocabulary 8849, on this CPU):

    .venv/bin/python bench/bench_choices.py            # 12 x 768, candidates of 200 characters
    .venv/bin/python bench/bench_choices.py --quick    # 4 x 256, candidates of 64: a dry run

1. Streaming: 4 candidates decode with alternatives = 10 (the top 10 recorded at every token and
   states kept along each candidate) and with alternatives = 0, alternately in the same run; the
   decode rate of each (characters per second, all candidates together), median of several.
2. Choosing an alternative: after a request of 4 candidates, a position in one of them is picked and
   the request an editor sends (the text + the candidate up to there + the alternative, 1 candidate)
   is submitted; the time from that submit to its first new character and the tokens it re-read,
   median over several positions. The same with no states kept (branch_state_bytes = 0), where the
   re-read starts at the prompt's end.

It prints a Markdown table and asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_common import cpu_name, first_character, load_average  # noqa: E402
from bench_engine import random_auto_engine  # noqa: E402

from ai_writer.backends.writing.generation import (  # noqa: E402
    Failed, Finished, GenerationRequest, GenerationService, Started,
)
from ai_writer.backends.writing.sampling import SamplingSettings  # noqa: E402
from ai_writer.models.textprep import INDENT_CHARS  # noqa: E402

FULL = dict(n_layer=12, n_embd=768, length=200, reps=5, choices=7)
QUICK = dict(n_layer=4, n_embd=256, length=64, reps=3, choices=3)
CORPUS = REPO.parent / "shared" / "corpus" / "hongloumeng.txt"
FALLBACK = "　　那少年抬头望向远方，只见山峦起伏，云雾缭绕。他心中暗想：“此去不知何日才能回来。”\n" * 40


def manuscript() -> str:
    """About 1,500 characters of a novel (the public-domain corpus when it is there)."""
    try:
        return CORPUS.read_text(encoding="utf-8")[5000:6500]
    except OSError:
        return FALLBACK[:1500]


def run(service, request):
    """(Finished, Job, prompt tokens read) of one request."""
    events: queue.Queue = queue.Queue()
    job = service.submit(request, events.put)
    read = None
    while True:
        event = events.get(timeout=3600)
        if isinstance(event, Failed):
            raise RuntimeError(f"generation failed: {event.message}")
        if isinstance(event, Started):
            read = event.prompt_tokens
        if isinstance(event, Finished):
            return event, job, read


def request(text: str, n: int, length: int, alternatives: int, seed: int) -> GenerationRequest:
    return GenerationRequest(text, n=n, length=length, sampling=SamplingSettings(seed=seed), alternatives=alternatives)


def bench_streaming(engine, text: str, length: int, reps: int) -> dict:
    service = GenerationService(engine)
    rates = {10: [], 0: []}
    try:
        run(service, request(text, 4, 8, 0, 0))  # the prompt read once, the engine warmed
        for rep in range(reps):
            for alternatives in (10, 0) if rep % 2 == 0 else (0, 10):
                finished, _, _ = run(service, request(text, 4, length, alternatives, seed=rep))
                rates[alternatives].append(finished.tokens_per_second)  # this vocabulary: a character a token
    finally:
        service.close()
    return {k: statistics.median(v) for k, v in rates.items()}


def branch_points(job, finished, count: int) -> list[tuple[int, str]]:
    """(characters of candidate 0 kept, the alternative's text) at `count` positions spread over it, where the
    text reads back as the same ids (no indent or line break before)."""
    log, text = job.choices, finished.texts[0]
    plain = next((i for i, c in enumerate(text) if c in INDENT_CHARS or c == "\n"), len(text))
    points = []
    for i in range(count):
        step = log.step_at_char(0, max(1, (plain - 2) * (i + 1) // (count + 1)))
        if step is None:
            continue
        choice = log.choice(0, step)
        others = [a.text for a in choice.alternatives if a.text != choice.text and a.text not in INDENT_CHARS + "\n"]
        if others:
            points.append((choice.char_start, others[0]))
    return points


def bench_choosing(engine, text: str, length: int, count: int, branch_bytes: int | None) -> dict:
    kwargs = {} if branch_bytes is None else {"branch_state_bytes": branch_bytes}
    service = GenerationService(engine, **kwargs)
    try:
        finished, job, _ = run(service, request(text, 4, length, 10, seed=1))
        times, reads = [], []
        for kept, alternative in branch_points(job, finished, count):
            seconds, read = first_character(service, request(text + finished.texts[0][:kept] + alternative, 1, 20, 10, 2))
            times.append(seconds)
            reads.append(read)
        return {"median": statistics.median(times), "max read": max(reads), "every": job.branch_every,
                "pool": service.branches.nbytes, "points": len(times)}
    finally:
        service.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 x 256, candidates of 64 characters (a dry run)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    text = manuscript()
    print(f"- CPU: {cpu_name()}; load average at the start: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        path, engine = random_auto_engine(Path(tmp), cfg["n_layer"], cfg["n_embd"])
        shape = f"{cfg['n_layer']}x{cfg['n_embd']}"
        print(f"- model: random RWKV-7 {shape}, vocabulary 8849, backend {engine.info.backend}; "
              f"manuscript {len(text):,} characters, candidates of {cfg['length']}\n")
        rates = bench_streaming(engine, text, cfg["length"], cfg["reps"])
        kept = bench_choosing(engine, text, cfg["length"], cfg["choices"], None)
        none = bench_choosing(engine, text, cfg["length"], cfg["choices"], 0)
    slower = rates[0] / rates[10] - 1 if rates[10] else float("nan")
    print(f"| {shape}: 4 candidates streaming | chars/s | vs alternatives = 0 | target | met |")
    print("|---|---|---|---|---|")
    print(f"| alternatives = 0 | {rates[0]:.1f} | | | |")
    print(f"| alternatives = 10 | {rates[10]:.1f} | {slower:+.1%} slower | <= 10% slower | "
          f"{'yes' if slower <= 0.10 else 'no'} |")
    print(f"\n| {shape}: choose an alternative -> its first new character | ms (median of {kept['points']}) "
          f"| most tokens re-read | target | met |")
    print("|---|---|---|---|---|")
    print(f"| states kept every {kept['every']} tokens ({kept['pool'] / 1e6:.1f} MB held) | {kept['median'] * 1000:.1f} "
          f"| {kept['max read']} | <= 150 ms | {'yes' if kept['median'] <= 0.150 else 'no'} |")
    print(f"| no states kept (branch_state_mb = 0) | {none['median'] * 1000:.1f} | {none['max read']} | | |")
    print(f"\n(load average at the end: {load_average()})")


if __name__ == "__main__":
    main()
