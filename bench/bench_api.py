"""Throughput of `ai-writer serve-api` against the same requests made in-process through GenerationService.

Run from the repository root (a random 12 x 768 RWKV-7, vocabulary 8849, on the backend auto picks here):

    .venv/bin/python bench/bench_api.py                  # 12 x 768
    .venv/bin/python bench/bench_api.py --quick          # 4 x 256, fewer requests: a dry run of the script
    .venv/bin/python bench/bench_api.py --corpus FILE    # prompts from this UTF-8 text (default: a built-in text)

For 1, 4 and 8 concurrent clients, the same requests (prompts of ~300 Chinese characters, max_tokens 64,
n=1, a distinct seed each) are made twice in the same run:

1. in-process: threads submit straight to a GenerationService, taking turns as the server's requests do
   (the service runs one job at a time; a new one would cancel the running one). Each request is the
   GenerationRequest the server builds for that body (ApiServer.generation_request), and it ends as the
   server's does: at max_tokens tokens (studio.api.candidates), the job then cancelled.
2. server: an ApiServer on 127.0.0.1 (port 0) in this process, its loop on a thread of its own as the tests
   run it, and one real `openai` client per thread; every request is streamed (stream_options.include_usage),
   so the time to first token (sending to the first SSE chunk with text) is measured on all of them.

Each run has a fresh service (an empty prompt cache), so both read the same prompts cold. Every reply is
checked: complete (64 tokens, or a stop) and its text the same as the in-process one for the same seed.
Clients, server and service share one Python process (and its GIL): the ratio counts that too.
It prints a Markdown table and asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_common import cpu_name, load_average  # noqa: E402
from bench_engine import random_auto_engine  # noqa: E402

from ai_writer.backends.writing.generation import Chunk, Failed, Finished, GenerationService  # noqa: E402
from ai_writer.backends.writing.sampling import SamplingSettings  # noqa: E402
from ai_writer.studio.api.candidates import Candidates  # noqa: E402
from ai_writer.studio.api.protocol import parse_completion, tokens_written  # noqa: E402
from ai_writer.studio.api.server import ApiServer, BackgroundServer  # noqa: E402

FULL = dict(n_layer=12, n_embd=768, requests=16)
QUICK = dict(n_layer=4, n_embd=256, requests=8)
CONCURRENCY = (1, 4, 8)
PROMPT_CHARS = 300
MAX_TOKENS = 64
MODEL_ID = "bench"
# Prompts are windows of this public-domain text (the opening of 红楼梦, chapter 1), taken in turn.
BUILT_IN = (
    "此开卷第一回也。作者自云：因曾历过一番梦幻之后，故将真事隐去，而借通灵之说，撰此石头记一书也。故曰甄士隐云云。"
    "但书中所记何事何人？自又云：今风尘碌碌，一事无成，忽念及当日所有之女子，一一细考较去，觉其行止见识，皆出于我之上。"
    "何我堂堂须眉，诚不若彼裙钗哉？实愧则有余，悔又无益之大无可如何之日也！当此，则自欲将已往所赖天恩祖德，锦衣纨绔之时，"
    "饫甘餍肥之日，背父兄教育之恩，负师友规谈之德，以至今日一技无成，半生潦倒之罪，编述一集，以告天下人：我之罪固不免，"
    "然闺阁中本自历历有人，万不可因我之不肖，自护己短，一并使其泯灭也。虽今日之茅椽蓬牖，瓦灶绳床，其晨夕风露，阶柳庭花，"
    "亦未有妨我之襟怀笔墨者。虽我未学，下笔无文，又何妨用假语村言，敷演出一段故事来，亦可使闺阁昭传，复可悦世之目，"
    "破人愁闷，不亦宜乎？故曰贾雨村云云。此回中凡用梦用幻等字，是提醒阅者眼目，亦是此书立意本旨。列位看官：你道此书从何而来？"
    "说起根由虽近荒唐，细按则深有趣味。待在下将此来历注明，方使阅者了然不惑。原来女娲氏炼石补天之时，于大荒山无稽崖练成高经十二丈、"
    "方经二十四丈顽石三万六千五百零一块。娲皇氏只用了三万六千五百块，只单单剩了一块未用，便弃在此山青埂峰下。谁知此石自经煅炼之后，"
    "灵性已通，因见众石俱得补天，独自己无材不堪入选，遂自怨自叹，日夜悲号惭愧。一日，正当嗟悼之际，俄见一僧一道远远而来，"
    "生得骨格不凡，丰神迥别，说说笑笑，来至峰下，坐于石边，高谈快论。先是说些云山雾海、神仙玄幻之事，后便说到红尘中荣华富贵。"
)


# -- requests ---------------------------------------------------------------------


def prompts(text: str, count: int) -> list[str]:
    """count distinct windows of ~PROMPT_CHARS characters of text (wrapping round), starting at spread offsets."""
    text = "".join(text.split())
    if len(text) < PROMPT_CHARS:
        raise SystemExit(f"the corpus has {len(text)} characters; prompts need at least {PROMPT_CHARS}")
    ring = text + text[:PROMPT_CHARS]
    step = max(1, len(text) // count)
    return [ring[i * step:i * step + PROMPT_CHARS] for i in range(count)]


def bodies(texts: list[str]) -> list[dict]:
    return [{"model": MODEL_ID, "prompt": p, "max_tokens": MAX_TOKENS, "n": 1, "seed": 1000 + i}
            for i, p in enumerate(texts)]


class Result:
    """One request's outcome: its text, finish reason, tokens written and timings (perf_counter seconds)."""

    def __init__(self, text="", finish=None, tokens=0, ttft=None, seconds=0.0, error=None):
        self.text, self.finish, self.tokens, self.ttft, self.seconds, self.error = \
            text, finish, tokens, ttft, seconds, error

    @property
    def complete(self) -> bool:
        return self.error is None and (self.finish == "stop" or (self.finish == "length" and self.tokens == MAX_TOKENS))


# -- in-process -----------------------------------------------------------------------


def run_in_process(engine, reqs: list[dict], concurrency: int) -> tuple[list[Result], float]:
    """(results in request order, wall seconds) of the requests through a fresh GenerationService."""
    service = GenerationService(engine, state_store=None)
    builder = ApiServer(service, MODEL_ID, SamplingSettings())  # never started: it only builds the requests
    turn = threading.Lock()  # one job at a time, as the server's requests take turns

    def one(body: dict) -> Result:
        params = parse_completion(body, SamplingSettings(), MODEL_ID)
        generation = builder.generation_request(params)
        candidates = Candidates(params.n, params.max_tokens, params.stop)
        holder, seen = [], {}
        start = time.perf_counter()

        def on_event(event):  # the service's thread: what the server's on_event does, without the HTTP
            job = holder[0] if holder else None
            if isinstance(event, Chunk):
                seen.setdefault("first", time.perf_counter())
                if job is not None and job.choices is not None:
                    candidates.sync(job.choices)
                    if candidates.all_done:
                        job.cancel()
            elif isinstance(event, Finished):
                if job is not None and job.choices is not None:
                    candidates.sync(job.choices)
                candidates.end()
            elif isinstance(event, Failed):
                seen["failed"] = event.message

        with turn:
            job = service.submit(generation, on_event)
            holder.append(job)
            job.wait(timeout=3600)
        seconds = time.perf_counter() - start
        if "failed" in seen:
            return Result(error=seen["failed"], seconds=seconds)
        text, finish = candidates.texts[0], candidates.finish[0]
        tokens = tokens_written(job.choices, 0, text, finish, params.max_tokens) if job.choices is not None else 0
        ttft = seen["first"] - start if "first" in seen else None
        return Result(text, finish, tokens, ttft, seconds)

    try:
        return timed_threads(one, reqs, concurrency)
    finally:
        service.close(wait=True)


# -- through the server ------------------------------------------------------------------


def run_server(engine, reqs: list[dict], concurrency: int) -> tuple[list[Result], float]:
    """(results in request order, wall seconds) of the requests, streamed through a fresh server and service."""
    import openai

    service = GenerationService(engine, state_store=None)
    running = BackgroundServer(ApiServer(service, MODEL_ID, SamplingSettings(), queue_size=max(8, concurrency)))
    local = threading.local()

    def client():
        if not hasattr(local, "client"):  # one client per thread
            local.client = openai.OpenAI(base_url=running.base, api_key="none", max_retries=0, timeout=3600)
        return local.client

    def one(body: dict) -> Result:
        options = {k: v for k, v in body.items() if k not in ("model", "prompt")}
        text, finish, tokens, ttft = "", None, 0, None
        start = time.perf_counter()
        try:
            stream = client().completions.create(model=body["model"], prompt=body["prompt"], stream=True,
                                                 stream_options={"include_usage": True}, **options)
            for chunk in stream:
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.text and ttft is None:
                        ttft = time.perf_counter() - start
                    text += choice.text
                    finish = choice.finish_reason or finish
        except openai.OpenAIError as exc:
            return Result(error=f"{type(exc).__name__}: {exc}".splitlines()[0], seconds=time.perf_counter() - start)
        return Result(text, finish, tokens, ttft, time.perf_counter() - start)

    try:
        return timed_threads(one, reqs, concurrency)
    finally:
        running.close()
        service.close(wait=True)


def timed_threads(one, reqs: list[dict], concurrency: int) -> tuple[list[Result], float]:
    """Each of `concurrency` threads makes its share of the requests one after another (request i on thread
    i % concurrency); (results in request order, seconds from the first start to the last reply)."""
    def share(k: int) -> list[Result]:
        return [one(body) for body in reqs[k::concurrency]]

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        parts = list(pool.map(share, range(concurrency)))
    seconds = time.perf_counter() - start
    results: list[Result] = [None] * len(reqs)
    for k, part in enumerate(parts):
        results[k::concurrency] = part
    return results, seconds


# -- the report -------------------------------------------------------------------------


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the nearest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.0f}" if values else "-"


def summary(results: list[Result], seconds: float) -> dict:
    ttfts = [r.ttft for r in results if r.ttft is not None]
    return dict(rps=len(results) / seconds, tps=sum(r.tokens for r in results) / seconds, ttfts=ttfts,
                incomplete=sum(not r.complete for r in results), errors=[r.error for r in results if r.error])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 layers x 256 and fewer requests (a dry run)")
    parser.add_argument("--corpus", type=Path, metavar="FILE",
                        help="a UTF-8 text to take the prompts from (e.g. ../shared/corpus/hongloumeng.txt)")
    parser.add_argument("--requests", type=int, metavar="N", help="requests per run (default 16; --quick 8)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    count = args.requests or cfg["requests"]
    if count < max(CONCURRENCY):
        raise SystemExit(f"--requests {count}: at least {max(CONCURRENCY)} are needed (one per client)")
    if args.corpus is not None:
        try:
            source = args.corpus.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SystemExit(f"{args.corpus}: cannot read it as UTF-8 text ({exc})") from None
    else:
        source = BUILT_IN
    reqs = bodies(prompts(source, count))
    started = time.perf_counter()
    load_before = load_average()

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        _, engine = random_auto_engine(Path(tmp), cfg["n_layer"], cfg["n_embd"])
        print(f"# serve-api benchmark: random RWKV-7 {cfg['n_layer']} x {cfg['n_embd']}, backend "
              f"{engine.info.backend}" + (" (--quick)" if args.quick else ""))
        print()
        print(f"- CPU: {cpu_name()}; load average at start: {load_before}")
        print(f"- {count} requests per run: prompts of {PROMPT_CHARS} characters "
              f"({args.corpus or 'built-in text'}), max_tokens {MAX_TOKENS}, n=1, seeds 1000..{999 + count}; "
              "server requests streamed")
        run_in_process(engine, reqs[:2], 1)  # warm-up: the engine's first calls
        run_server(engine, reqs[:2], 1)
        measured = {}
        for concurrency in CONCURRENCY:  # in-process and server alternate, so drift in the machine hits both
            local, local_s = run_in_process(engine, reqs, concurrency)
            served, served_s = run_server(engine, reqs, concurrency)
            measured[concurrency] = (local, local_s, served, served_s)

    lines = [
        row("Clients", "In-process req/s", "Server req/s", "Ratio", "In-process tok/s", "Server tok/s", "Ratio",
            "In-process TTFT p50 / p95 (ms)", "Server TTFT p50 / p95 (ms)", "Incomplete", "Mismatches"),
        row("---:", *(["---:"] * 10)),
    ]
    problems = []
    total_mismatches = 0
    distinct = len({r.text for m in measured.values() for r in m[0]})  # in-process texts of all runs
    for concurrency, (local, local_s, served, served_s) in measured.items():
        a, b = summary(local, local_s), summary(served, served_s)
        mismatches = sum(x.text != y.text or x.error is not None or y.error is not None
                         for x, y in zip(local, served))
        total_mismatches += mismatches
        problems += [f"{concurrency} clients, in-process: {e}" for e in a["errors"][:2]]
        problems += [f"{concurrency} clients, server: {e}" for e in b["errors"][:2]]
        lines.append(row(concurrency, f"{a['rps']:.2f}", f"{b['rps']:.2f}", f"{b['rps'] / a['rps']:.2f}",
                         f"{a['tps']:.1f}", f"{b['tps']:.1f}", f"{b['tps'] / a['tps']:.2f}" if a["tps"] else "-",
                         f"{ms(a['ttfts'], 50)} / {ms(a['ttfts'], 95)}", f"{ms(b['ttfts'], 50)} / {ms(b['ttfts'], 95)}",
                         f"{a['incomplete']} / {b['incomplete']}", mismatches))
    print()
    print("\n".join(lines))
    print()
    print("Ratio: server / in-process. TTFT: from sending a request (in-process: from the thread's turn request, "
          "waiting included) to its first text (the first SSE chunk with text; in-process, the first Chunk event). "
          "Incomplete: replies in-process / through the server that neither wrote "
          f"{MAX_TOKENS} tokens nor stopped. Mismatches: server texts unlike the in-process one for the same "
          f"prompt and seed (expected 0; total {total_mismatches}). Distinct in-process texts: {distinct} of "
          f"{count} requests (the same requests in every run).")
    for problem in problems:
        print(f"- {problem}")
    print(f"Load average at start / end: {load_before} / {load_average()}. "
          f"Total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
