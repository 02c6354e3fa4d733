"""Character n-gram baseline for the language model: interpolated modified Kneser-Ney.

Run from the repository root:

    .venv/bin/python bench/ngram_baseline.py                 # orders 3, 4, 5: Markdown table
    .venv/bin/python bench/ngram_baseline.py --orders 3 4    # only these orders
    .venv/bin/python bench/ngram_baseline.py --json          # one JSON object instead of the table
    .venv/bin/python bench/ngram_baseline.py --plain         # plain interpolated KN, D = n1/(n1+2 n2) per level

About 25 s and 1.3 GB peak for all three orders on one core.

Data: trained on every /work/shared/corpus/*.txt (never the heldout/ folder), prepared
and joined by '\\n' with models.train.prepare_corpus, vocabulary from
models.train.build_vocab (characters outside it become tokenizer.unknown_char, in
training and evaluation alike). Evaluated on every /work/shared/corpus/heldout/*.txt,
each prepared with TextPrep(leading_newline=False) and read as "\\n" + text, as the
model reads it: len(prepared) predictions per file, the first with only "\\n" as
context. Result: bits per character (log2) per file and overall (total bits / total
characters).

Method: interpolated *modified* Kneser-Ney (Chen & Goodman 1998), three absolute
discounts per level, D1 (count 1), D2 (count 2), D3+ (count >= 3), estimated from
the count-of-counts n1..n4 of that level's counts:

    Y = n1 / (n1 + 2 n2),  D1 = 1 - 2Y n2/n1,  D2 = 2 - 3Y n3/n2,  D3+ = 3 - 4Y n4/n3

    P_k(w | h) = max(c(hw) - D(c(hw)), 0) / c(h.)
                 + (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / c(h.) * P_{k-1}(w | h')

The top level (the model's order) uses raw counts; lower levels use continuation
counts N1+(.hw) (the number of distinct characters seen before hw). A context never
seen with a continuation backs off entirely (P_k = P_{k-1}); so does a context
shorter than k-1 characters (the first predictions of a file). The unigram level
interpolates with the uniform distribution over the whole vocabulary (unknown
character included), so every symbol gets a probability and each distribution sums
to 1 (checked on a few contexts at every run).

Discounts on this split (D1 D2 D3+ per level, level 1 first; the top level uses raw
counts, the others continuation counts, so a level's discounts depend on the order):
    order 3: L1 0.251 1.544 2.244 | L2 0.651 1.073 1.472 | L3 0.760 1.139 1.429
    order 4: L1, L2 as above | L3 0.789 1.161 1.473 | L4 0.861 1.236 1.442
    order 5: L1-L3 as order 4 | L4 0.885 1.276 1.528 | L5 0.927 1.327 1.449
(`--json` prints them for every order.)

Counting is integer-encoded in numpy: a k-gram is (rank of its (k-1)-gram prefix) *
V + last character, so codes stay small whatever the vocabulary size.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ai_writer.models.textprep import TextPrep  # noqa: E402
from ai_writer.models.train import build_vocab, prepare_corpus  # noqa: E402

CORPUS = Path("/work/shared/corpus")


def discounts(counts: np.ndarray, plain: bool = False) -> np.ndarray:
    """Modified KN discounts [0, D1, D2, D3+] from the count-of-counts of `counts`.

    With plain=True, one discount D = Y = n1 / (n1 + 2 n2) for every count (plain interpolated KN).
    """
    n = [int(np.count_nonzero(counts == i)) for i in range(1, 5)]
    y = n[0] / (n[0] + 2 * n[1]) if n[0] + n[1] > 0 else 0.5
    if plain or 0 in n[:3]:  # (too few distinct counts for three estimates: tiny data only)
        return np.array([0.0, y, y, y])
    d = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]]
    d = [min(max(v, 0.0), float(i + 1)) for i, v in enumerate(d)]
    return np.array([0.0] + d)


class Level:
    """The distinct k-grams of the training stream: codes, raw and continuation counts."""

    def __init__(self, codes, raw, n_prefixes):
        self.codes = codes  # sorted; code = prefix rank * V + last char
        self.raw = raw
        self.cont = None  # distinct left extensions, set by the next level
        self.n_prefixes = n_prefixes


class KneserNey:
    def __init__(self, ids: np.ndarray, vocab_size: int, max_order: int, plain: bool = False):
        self.V = V = vocab_size
        self.plain = plain
        self.levels: list[Level] = []
        N = len(ids)
        prev_rank = np.zeros(N, dtype=np.int64)  # rank of the (k-1)-gram ending at t; -1 if none
        n_prev = 1
        for k in range(1, max_order + 1):
            t = np.arange(k - 1, N)
            prefix = prev_rank[t - 1] if k > 1 else np.zeros(len(t), dtype=np.int64)
            code = prefix * V + ids[t]
            uniq, first, inv, raw = np.unique(code, return_index=True, return_inverse=True, return_counts=True)
            rank = np.full(N, -1, dtype=np.int64)
            rank[t] = inv
            if k > 1:  # continuation counts of (k-1)-grams: one per distinct k-gram, by its suffix
                suffix = prev_rank[t[first]]
                self.levels[-1].cont = np.bincount(suffix, minlength=n_prev).astype(np.int64)
            self.levels.append(Level(uniq, raw.astype(np.int64), n_prev))
            prev_rank, n_prev = rank, len(uniq)
            del code, first, inv, t, prefix
        self.models: dict[int, list[dict]] = {}

    def model(self, order: int) -> list[dict]:
        """Per level 1..order: counts, discounts and per-context totals and backoff weights."""
        if order in self.models:
            return self.models[order]
        out = []
        for k in range(1, order + 1):
            lv = self.levels[k - 1]
            counts = lv.raw if k == order else lv.cont
            D = discounts(counts[counts > 0], self.plain)
            prefix = lv.codes // self.V
            total = np.bincount(prefix, weights=counts, minlength=lv.n_prefixes)
            bucket = np.minimum(counts, 3)
            back = np.bincount(prefix, weights=D[bucket] * (counts > 0), minlength=lv.n_prefixes)
            num = np.maximum(counts - D[bucket], 0.0)
            out.append({"codes": lv.codes, "num": num, "total": total, "back": back, "D": D[1:]})
        self.models[order] = out
        return out

    def probs(self, order: int, ids: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """P(ids[t] | ids[..t-1]) for each t in `targets` (t >= 1), under the given order."""
        levels = self.model(order)
        V = self.V
        p = None
        hist = np.zeros(len(targets), dtype=np.int64)  # rank of the (k-1)-gram ending at t-1
        prev_ranks = {0: np.zeros(len(ids), dtype=np.int64)}
        for k, lv in enumerate(levels, start=1):
            # ranks of the k-grams ending at every position of the stream (for the next level's history)
            pr = prev_ranks[k - 1]
            rank = np.full(len(ids), -1, dtype=np.int64)
            pos = np.arange(k - 1, len(ids))
            prefix = pr[pos - 1] if k > 1 else np.zeros(len(pos), dtype=np.int64)
            ok = prefix >= 0
            code = prefix * V + ids[pos]
            idx = np.searchsorted(lv["codes"], code)
            idx[idx >= len(lv["codes"])] = 0
            found = ok & (lv["codes"][idx] == code)
            rank[pos[found]] = idx[found]
            prev_ranks[k] = rank
            # probability at this level for the targets
            h = pr[targets - 1] if k > 1 else np.zeros(len(targets), dtype=np.int64)
            h[targets - 1 < k - 2] = -1  # fewer than k-1 characters of context
            own = rank[targets]
            num = np.where(own >= 0, lv["num"][np.maximum(own, 0)], 0.0)
            hs = np.maximum(h, 0)
            total = np.where(h >= 0, lv["total"][hs], 0.0)
            back = lv["back"][hs]
            lower = np.full(len(targets), 1.0 / V) if p is None else p
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            p = np.where(seen, (num + back * lower) / safe, lower)
        return p

    def check_normalisation(self, order: int, contexts: list[np.ndarray]) -> float:
        """Largest |sum_w P(w | h) - 1| over the given contexts (each a 1-d id array)."""
        worst = 0.0
        for ctx in contexts:
            n = len(ctx)
            streams = np.concatenate([np.tile(ctx, (self.V, 1)), np.arange(self.V)[:, None]], axis=1)
            flat = streams.reshape(-1)
            targets = np.arange(self.V) * (n + 1) + n
            # each row is scored separately: context shorter than the row is impossible here,
            # since levels only look back k-1 <= n positions and rows are n+1 long
            p = self.probs(order, flat, targets)
            worst = max(worst, abs(float(p.sum()) - 1.0))
        return worst


def encode(tok, text: str) -> np.ndarray:
    return np.array(tok.encode(text), dtype=np.int64)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, nargs="+", default=[3, 4, 5])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--plain", action="store_true", help="plain interpolated KN: one discount per level instead of three")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="training *.txt here, evaluation in heldout/")
    args = ap.parse_args(argv)
    start = time.perf_counter()

    train_paths = sorted(args.corpus.glob("*.txt"))
    heldout_paths = sorted((args.corpus / "heldout").glob("*.txt"))
    text, _ = prepare_corpus(train_paths)
    tok = build_vocab(text)
    assert tok.unknown_id is not None
    train = encode(tok, text)
    del text
    lm = KneserNey(train, tok.vocab_size, max(args.orders), plain=args.plain)

    prep = TextPrep(leading_newline=False)
    held = {}
    for path in heldout_paths:
        body = prep.prepare(path.read_text(encoding="utf-8"))
        held[path.name] = encode(tok, "\n" + body)
        assert len(held[path.name]) == len(body) + 1

    rng = np.random.default_rng(0)
    results = {}
    for order in args.orders:
        # self-check: distributions sum to 1 on a few training and unseen contexts
        ctxs = [train[s : s + order - 1] for s in rng.integers(0, len(train) - order, 3)]
        ctxs.append(np.full(order - 1, tok.unknown_id, dtype=np.int64))
        err = lm.check_normalisation(order, ctxs)
        if err > 1e-6:
            raise SystemExit(f"order {order}: probabilities sum to 1 +- {err:.2e} on a checked context")
        files, bits_all, n_all = {}, 0.0, 0
        for name, ids in held.items():
            targets = np.arange(1, len(ids))
            p = lm.probs(order, ids, targets)
            bits = float(-np.log2(p).sum())
            files[name] = bits / len(targets)
            bits_all += bits
            n_all += len(targets)
        results[order] = {
            "bits_per_char": bits_all / n_all,
            "files": files,
            "chars": {name: len(ids) - 1 for name, ids in held.items()},
            "discounts": [lv["D"].round(4).tolist() for lv in lm.model(order)],
        }

    elapsed = time.perf_counter() - start
    if args.json:
        print(json.dumps({"orders": {str(o): {k: r[k] for k in ("bits_per_char", "files", "discounts")} for o, r in results.items()}}, ensure_ascii=False))
        return 0
    orders = list(results)
    first = results[orders[0]]
    kind = "plain" if args.plain else "modified"
    print(f"Interpolated {kind} Kneser-Ney, character level: bits/char on held-out "
          f"(train {len(train):,} chars, vocab {tok.vocab_size}, {elapsed:.0f} s)\n")
    print("| file | chars | " + " | ".join(f"order {o}" for o in orders) + " |")
    print("|---|---:|" + "---:|" * len(orders))
    for name in first["files"]:
        print(f"| {name} | {first['chars'][name]:,} | " + " | ".join(f"{results[o]['files'][name]:.3f}" for o in orders) + " |")
    total_chars = sum(first["chars"].values())
    print(f"| **overall** | {total_chars:,} | " + " | ".join(f"**{results[o]['bits_per_char']:.3f}**" for o in orders) + " |")
    print()
    for o in orders:
        ds = " | ".join(f"L{i} " + " ".join(f"{d:.3f}" for d in D) for i, D in enumerate(results[o]["discounts"], start=1))
        print(f"order {o} discounts (D1 D2 D3+): {ds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
