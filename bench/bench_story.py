"""The story layer's cost: time to the first character with memory, lore and an author's note, and
reopening a long book with whole-book context (state checkpoints on disk).

Run from the repository root (a random 12 x 768 RWKV-7, vocabulary 8849, on this CPU):

    .venv/bin/python bench/bench_story.py                    # the book is 1,000,000 characters: its cold read takes minutes
    .venv/bin/python bench/bench_story.py --quick            # 4 x 256 and a 100,000-character book: a dry run
    .venv/bin/python bench/bench_story.py --corpus DIR       # where the public-domain novels are (default ../shared/corpus)

1. Story layer: a 100,000-character manuscript, a story with a memory of 500 characters, 5 lore
   entries of 200 (their keys are in the text near the cursor) and an author's note at depth 300.
   After a first request (which fills the cache), one character is appended and the time to the
   first character of one candidate is measured (median of several), for the same request with and
   without the story, in the same run. Also: the worst case of appending, the character after which
   the note moves on (the note and the text after it are read again), and editing one lore entry
   (it, the entries after it and the story are read again).
2. Whole-book context (context_chars = 0): cold, a service with empty caches reads the book to the
   end and writes its checkpoints to a temporary state folder; warm, a new service (as after
   reopening the studio) on the same folder; then warm again after 200 new characters.

It prints a Markdown table and asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_common import cpu_name, first_character, load_average  # noqa: E402
from bench_engine import random_auto_engine  # noqa: E402

from ai_writer.backends.writing.generation import GenerationRequest, GenerationService  # noqa: E402
from ai_writer.backends.writing.sampling import SamplingSettings  # noqa: E402
from ai_writer.backends.writing.context import assemble  # noqa: E402
from ai_writer.backends.writing.state_store import StateStore  # noqa: E402
from ai_writer.backends.writing.story import AuthorsNote, ContextBudgets, LoreEntry, Story  # noqa: E402

FULL = dict(n_layer=12, n_embd=768, book=1_000_000, reps=7)
QUICK = dict(n_layer=4, n_embd=256, book=100_000, reps=3)
MANUSCRIPT_CHARS = 100_000
BOOKS = ["hongloumeng.txt", "xiyouji.txt", "shuihuzhuan.txt"]


def request_for(text: str, story: Story, budgets: ContextBudgets) -> GenerationRequest:
    return GenerationRequest(text, n=1, length=1, sampling=SamplingSettings(seed=0), story=story, budgets=budgets)


def names_in(text: str, count: int) -> list[str]:
    """Two-character words that occur in the last 1,500 characters of the text (keys that will fire)."""
    tail = text[-1500:]
    found = []
    for i in range(len(tail) - 1):
        word = tail[i:i + 2]
        if all("\u4e00" <= c <= "\u9fff" for c in word) and word not in found and tail.count(word) >= 2:
            found.append(word)
        if len(found) == count:
            break
    return found


def note_moves(text: str, extra, story: Story, budgets: ContextBudgets) -> str:
    """The text with characters appended up to the first one that moves the author's note on."""
    before = assemble(text, story, budgets).parts[:-1]
    for _ in range(20_000):
        text += next(extra)
        parts = assemble(text, story, budgets).parts[:-1]
        if parts != before:
            return text
    raise RuntimeError("the note never moved")


def bench_story_layer(engine, corpus: str, reps: int) -> dict:
    text = corpus[:MANUSCRIPT_CHARS]
    extra = iter(c for c in corpus[MANUSCRIPT_CHARS:] if not c.isspace())
    keys = names_in(text, 5)
    filler = corpus[MANUSCRIPT_CHARS + 10_000:]
    story = Story(
        memory=filler[:500],
        authors_note=AuthorsNote(text="（作者注：接下来写主角在园中遇到旧友，语气轻快。）", depth=300),
        lore=tuple(LoreEntry(name=f"entry {i}", keys=(key,), text=filler[1000 + 200 * i:1200 + 200 * i])
                   for i, key in enumerate(keys)),
    )
    budgets = ContextBudgets(context_chars=1024)
    results = {}
    for label, used in (("without the story layer", Story()), ("with memory + 5 lore + note", story)):
        service = GenerationService(engine)
        try:
            first_character(service, request_for(text, used, budgets))  # fills the cache
            times, reads = [], []
            current = text
            for _ in range(reps):
                current += next(extra)
                seconds, read = first_character(service, request_for(current, used, budgets))
                times.append(seconds)
                reads.append(read)
            results[label] = (statistics.median(times), max(reads))
            if used is story:
                plan = service.plan(request_for(current, used, budgets))
                results["active lore"] = sum(p.kind == "lore" for p in plan.context.parts)
                # the worst case: the character after which the note moves on (it and what follows are read again)
                moved = note_moves(current, extra, used, budgets)
                first_character(service, request_for(moved[:-1], used, budgets))
                seconds, read = first_character(service, request_for(moved, used, budgets))
                results["the note moves on"] = (seconds, read)
                edited = Story(story.memory, story.authors_note,
                               story.lore[:2] + (LoreEntry(story.lore[2].name, story.lore[2].keys, story.lore[2].text + "。"),) + story.lore[3:])
                seconds, read = first_character(service, request_for(moved, edited, budgets))
                results["one lore entry (of 5) edited"] = (seconds, read)
        finally:
            service.close()
    return results


def bench_whole_book(engine, model_path: Path, book: str) -> dict:
    budgets = ContextBudgets(context_chars=0)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        def service():
            return GenerationService(engine, state_store=StateStore(Path(folder), model_path, 4 << 30))

        cold = service()
        try:
            results["cold: the first read of the book"] = first_character(cold, request_for(book, Story(), budgets))
        finally:
            cold.close()
        warm = service()
        try:
            results["warm: reopened, the same book"] = first_character(warm, request_for(book, Story(), budgets))
        finally:
            warm.close()
        more = book + "宝玉听了，笑道：“这话说得也是。”" * 12
        again = service()
        try:
            results["warm: reopened after 200 new characters"] = first_character(again, request_for(more[:len(book) + 200], Story(), budgets))
        finally:
            again.close()
        results["disk"] = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 x 256 and a 100,000-character book (a dry run)")
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--book", type=int, help="characters in the whole-book test")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.book:
        cfg["book"] = args.book
    corpus = "".join((args.corpus / name).read_text(encoding="utf-8") for name in BOOKS)
    print(f"- CPU: {cpu_name()}; load average at the start: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        path, engine = random_auto_engine(Path(tmp), cfg["n_layer"], cfg["n_embd"])
        shape = f"{cfg['n_layer']}x{cfg['n_embd']}"
        print(f"- model: random RWKV-7 {shape}, vocabulary 8849, backend {engine.info.backend}\n")
        story = bench_story_layer(engine, corpus, cfg["reps"])
        book = bench_whole_book(engine, path, corpus[:cfg["book"]])
    base = story["without the story layer"][0]
    print(f"| {shape}: time to the first character | ms | prompt tokens read | vs without the story | target | met |")
    print("|---|---|---|---|---|---|")
    for label in ("without the story layer", "with memory + 5 lore + note", "the note moves on",
                  "one lore entry (of 5) edited"):
        seconds, read = story[label]
        target, met = ("<= 150 ms", "yes" if seconds <= 0.150 else "no") if label.startswith("with ") else ("", "")
        print(f"| after appending one character, {label} | {seconds * 1000:.1f} | {read} | {seconds / base:.2f}x | {target} | {met} |")
    print(f"\n(active lore entries in the story request: {story['active lore']})\n")
    print(f"| {shape}: whole-book context, {cfg['book']:,} characters | s to the first character | prompt tokens read | target | met |")
    print("|---|---|---|---|---|")
    for label in ("cold: the first read of the book", "warm: reopened, the same book", "warm: reopened after 200 new characters"):
        seconds, read = book[label]
        target, met = ("<= 1 s", "yes" if seconds <= 1.0 else "no") if label.startswith("warm") else ("", "")
        print(f"| {label} | {seconds:.2f} | {read:,} | {target} | {met} |")
    print(f"\n(state checkpoints on disk after the three: {book['disk'] / 1e6:.0f} MB; load average at the end: {load_average()})")


if __name__ == "__main__":
    main()
