"""Train a character-level RWKV-7 on UTF-8 text files, with the inference model code.

    python -m ai_writer.models.train --data ../shared/corpus/*.txt --out runs/zh --minutes 60
    python -m ai_writer.models.train --out runs/zh --resume --minutes 30      # go on from its checkpoint
    python -m ai_writer.models.train --out runs/zh --export models/bundled/zh-novel-rwkv7.safetensors

The vocabulary is built from the training text in AI-Writer's JSON format: the most
frequent characters that together cover at least 99.99% of it, plus UNKNOWN_CHAR for
the rest. Text is prepared as for generation (indents stripped, empty lines
dropped). Every `--save-every` steps the run writes OUT/checkpoint.pt (weights,
optimizer, step, random state: enough to resume) and appends to OUT/log.jsonl; the
recipe (arguments, data hashes, vocab size) is OUT/recipe.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from ai_writer.models.checkpoint import save_safetensors
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config
from ai_writer.models.rwkv7_fused import FusedRWKV7
from ai_writer.models.textprep import TextPrep
from ai_writer.models.tokenizer import DEFAULT_UNKNOWN_CHAR, CharTokenizer

COVERAGE = 0.9999


def prepare_corpus(paths) -> tuple[str, list[dict]]:
    """All files prepared like generation input and joined by '\\n'; plus their names and hashes."""
    prep = TextPrep(leading_newline=False)
    texts, sources = [], []
    for path in sorted(Path(p) for p in paths):
        raw = path.read_bytes()
        sources.append({"file": path.name, "sha256": hashlib.sha256(raw).hexdigest(), "chars": len(raw.decode("utf-8"))})
        texts.append(prep.prepare(raw.decode("utf-8")))
    return "\n".join(texts), sources


def build_vocab(text: str, coverage: float = COVERAGE, unknown_char: str = DEFAULT_UNKNOWN_CHAR) -> CharTokenizer:
    """The most frequent characters covering `coverage` of the text, then UNKNOWN_CHAR."""
    counts = Counter(text)
    total = sum(counts.values())
    chars, covered = [], 0
    for char, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if covered >= coverage * total:
            break
        chars.append(char)
        covered += count
    if "\n" not in chars:
        chars.append("\n")
    chars = [c for c in chars if c != unknown_char] + [unknown_char]
    return CharTokenizer(chars, unknown_char)


def init_for_training(model: RWKV7, seed: int) -> RWKV7:
    """BlinkDL's RWKV-7 initialisation: staggered token-shift and decay per channel and layer."""
    torch.manual_seed(seed)
    c = model.config
    C, L = c.n_embd, c.n_layer
    ddd = torch.arange(C, dtype=torch.float32) / C
    with torch.no_grad():
        model.emb.weight.uniform_(-1e-4, 1e-4)
        nn_init_orthogonal(model.head.weight, 0.5 * math.sqrt(c.vocab_size / C) if c.vocab_size > C else 0.5)
        for i, block in enumerate(model.blocks):
            r01 = i / max(1, L - 1)
            r10 = 1.0 - i / L
            att, ffn = block.att, block.ffn
            for name, power in (("x_r", 0.2), ("x_w", 0.9), ("x_k", 0.7), ("x_v", 0.7), ("x_a", 0.9), ("x_g", 0.2)):
                getattr(att, name).copy_((1.0 - ddd ** (power * r10)).view(1, 1, C))
            n = torch.arange(C, dtype=torch.float32)
            decay = -7 + 5 * (n / (C - 1)) ** (0.85 + 1.0 * r01**0.5)
            att.w0.copy_((decay + 0.5).view(1, 1, C))
            att.a0.zero_()
            att.v0.fill_(1.0)
            for lora_in, lora_out in ((att.w1, att.w2), (att.a1, att.a2), (att.v1, att.v2), (att.g1, att.g2)):
                lora_in.zero_()
                nn_init_orthogonal(lora_out, 0.1)
            att.k_k.fill_(0.85)
            att.k_a.fill_(1.0)
            att.r_k.fill_(-0.04)
            bound = 0.5 / math.sqrt(C)
            att.receptance.weight.uniform_(-bound, bound)
            att.key.weight.uniform_(-0.1 * bound, 0.1 * bound)
            att.value.weight.uniform_(-bound, bound)
            att.output.weight.zero_()
            att.ln_x.weight.fill_(((1 + i) / L) ** 0.7)
            att.ln_x.bias.zero_()
            ffn.x_k.copy_((1.0 - ddd ** (r10**4)).view(1, 1, C))
            ffn.key.weight.uniform_(-bound, bound)
            ffn.value.weight.zero_()
    return model


def grown_layer_sources(old_layers: int, new_layers: int) -> list[int]:
    """Which trained layer each layer of a deeper model starts from: the first and last stay
    first and last, the inner ones are spread over the old inner layers, each old inner layer
    taken by consecutive new ones ([0, 1, 1, 2, 2, 3] for 4 -> 6)."""
    if old_layers < 2 or new_layers < old_layers:
        raise SystemExit(f"--grow-from: cannot grow {old_layers} layers to {new_layers}")
    inner_old, inner_new = old_layers - 2, new_layers - 2
    inner = [1 + (j * inner_old) // inner_new for j in range(inner_new)] if inner_old else [0] * inner_new
    return [0] + inner + [old_layers - 1]


def grow_from(model: RWKV7, weights: dict[str, torch.Tensor]) -> list[int]:
    """Start a deeper model from a trained one's weights so that it computes the same function:
    each new layer copies a trained layer (grown_layer_sources), and every copy after the first
    of a layer has its two output projections zeroed, so it adds nothing until training moves it."""
    old_layers = 1 + max(int(name.split(".")[1]) for name in weights if name.startswith("blocks."))
    sources = grown_layer_sources(old_layers, model.config.n_layer)
    state = {name: value for name, value in weights.items() if not name.startswith("blocks.")}
    for new, old in enumerate(sources):
        prefix = f"blocks.{old}."
        for name, value in weights.items():
            if name.startswith(prefix) and not (new and ".ln0." in name):  # only layer 0 has the input norm
                state[f"blocks.{new}." + name[len(prefix):]] = value.clone()
        if new and sources[new - 1] == old:  # a repeat: silent until trained
            state[f"blocks.{new}.att.output.weight"].zero_()
            state[f"blocks.{new}.ffn.value.weight"].zero_()
    model.load_state_dict(state)
    return sources


def nn_init_orthogonal(tensor, gain):
    torch.nn.init.orthogonal_(tensor, gain=gain)


def sample_batch(data: torch.Tensor, batch: int, ctx: int, gen: torch.Generator):
    """`batch` random windows of ctx + 1 tokens (the start positions drawn on the CPU by `gen`,
    so a run draws the same windows on any device): (inputs, targets), each (batch, ctx)."""
    starts = torch.randint(0, len(data) - ctx - 1, (batch,), generator=gen)
    rows = data[starts.to(data.device)[:, None] + torch.arange(ctx + 1, device=data.device)]
    return rows[:, :-1], rows[:, 1:]


def mixed_precision(device: torch.device):
    """bf16 matrix products on a GPU (the WKV state update stays fp32: FusedTimeMix turns autocast
    off around it); plain fp32 on the CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def bits_per_char(model: RWKV7, data: torch.Tensor, ctx: int, windows: int, gen: torch.Generator) -> float:
    model.eval()
    with torch.no_grad(), mixed_precision(data.device):
        x, y = sample_batch(data, windows, ctx, gen)
        logits, _ = model(x, full_output=True)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
    model.train()
    return loss.item() / math.log(2)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: this torch sees no CUDA device")
    return device


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m ai_writer.models.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="*", default=[], help="UTF-8 training text files")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.jsonl, recipe.json, vocab.json")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--embd", type=int, default=256)
    p.add_argument("--ctx", type=int, default=256, help="characters per training window")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-final", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=20000,
                   help="schedule length (the cosine decay's end); 0: the schedule runs over --minutes instead")
    p.add_argument("--minutes", type=float, default=0, help="stop after this long (0 = run all steps)")
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (bf16 products on a GPU)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--grow-from", metavar="RUN", help="start from another run's checkpoint and vocabulary, "
                   "grown to --layers (same width): the new layers are silent copies of trained ones")
    p.add_argument("--export", metavar="PATH", help="write the weights as fp16 .safetensors with the vocab beside it, then stop")
    return p.parse_args(argv)


def learning_rate(args, step: int, minutes: float = 0.0) -> float:
    """Linear warm-up over 100 steps, then a cosine from --lr to --lr-final over the schedule:
    steps (--steps), or, with --steps 0, this run's minutes (--minutes)."""
    warmup = 100
    if step < warmup:
        return args.lr * (step + 1) / warmup
    if args.steps:
        progress = min(1.0, (step - warmup) / max(1, args.steps - warmup))
    else:
        progress = min(1.0, minutes / args.minutes)
    return args.lr_final + 0.5 * (args.lr - args.lr_final) * (1 + math.cos(math.pi * progress))


def run_file(run: Path | str, name: str) -> Path:
    """A file of a run folder, or one line saying it is not there."""
    path = Path(run) / name
    if not path.is_file():
        raise SystemExit(f"{path}: no such file ({run} is not a training run folder, or its run never saved)")
    return path


def export(out: Path, target: Path) -> None:
    checkpoint = torch.load(run_file(out, "checkpoint.pt"), map_location="cpu", weights_only=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(checkpoint["model"], target, dtype=torch.float16)
    CharTokenizer.from_file(run_file(out, "vocab.json")).save(target.with_suffix(".json"))
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB) and {target.with_suffix('.json').name}")


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    if args.export:
        export(out, Path(args.export))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.steps and not args.minutes:
        raise SystemExit("--steps 0 needs --minutes (the schedule then runs over that time)")
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 products left outside autocast
    out.mkdir(parents=True, exist_ok=True)
    if args.resume:
        recipe = json.loads(run_file(out, "recipe.json").read_text())
        data_files = recipe["data_files"]
        for key in ("layers", "embd", "ctx", "batch", "lr", "lr_final", "seed"):  # the run's shape stays
            setattr(args, key, recipe["args"][key])
    else:
        # as given relative to where training runs (resume from the same folder), so the recipe
        # names no machine's absolute paths
        data_files = [os.path.relpath(Path(p).resolve()) for p in args.data]
        if not data_files:
            raise SystemExit("--data names no files")
    text, sources = prepare_corpus(data_files)
    if args.resume:
        tokenizer = CharTokenizer.from_file(run_file(out, "vocab.json"))
    elif args.grow_from:
        tokenizer = CharTokenizer.from_file(run_file(args.grow_from, "vocab.json"))
        tokenizer.save(out / "vocab.json")
    else:
        tokenizer = build_vocab(text)
        tokenizer.save(out / "vocab.json")
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long, device=device)
    # a sliver of the training text, held back to watch for overfitting
    split = len(data) - max(int(len(data) * 0.002), 8 * (args.ctx + 1) + 1)
    train_data, watch_data = data[:split], data[split:]

    config = RWKV7Config(n_layer=args.layers, n_embd=args.embd, vocab_size=tokenizer.vocab_size)
    model = init_for_training(FusedRWKV7(config), args.seed)  # the fast form of the same parameters
    grown = None
    if args.grow_from and not args.resume:
        source = torch.load(run_file(args.grow_from, "checkpoint.pt"), map_location="cpu", weights_only=True)
        grown = {"run": args.grow_from, "step": source["step"], "layer_sources": grow_from(model, source["model"])}
    model.to(device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim == 2 and ("weight" in name and "ln" not in name) else no_decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.99), eps=1e-8,
    )
    gen = torch.Generator().manual_seed(args.seed)
    step = 0
    if args.resume:
        checkpoint = torch.load(run_file(out, "checkpoint.pt"), map_location="cpu", weights_only=True)
        model.load_state_dict(checkpoint["model"])  # copied onto the model's device
        optimizer.load_state_dict(checkpoint["optimizer"])
        gen.set_state(checkpoint["generator"])
        step = checkpoint["step"]
    else:
        (out / "recipe.json").write_text(json.dumps({
            "command": "python -m ai_writer.models.train " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                                         if k not in ("data", "out", "resume", "export") and v not in (None, False)),
            "args": {k: v for k, v in vars(args).items() if k != "data"},
            "data_files": data_files,
            "sources": sources,
            "prepared_chars": len(text),
            "vocab_size": tokenizer.vocab_size,
            "coverage": COVERAGE,
            "grown_from": grown,
            "parameters": sum(p.numel() for p in model.parameters()),
        }, ensure_ascii=False, indent=1))

    print(f"{config}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
          f"{len(train_data) / 1e6:.2f}M training characters, vocab {tokenizer.vocab_size}, on {device}", flush=True)
    started = time.time()
    log = (out / "log.jsonl").open("a")
    model.train()
    while step < args.steps or not args.steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(args, step, (time.time() - started) / 60)
        x, y = sample_batch(train_data, args.batch, args.ctx, gen)
        with mixed_precision(device):
            logits, _ = model(x, full_output=True)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        out_of_time = args.minutes and time.time() - started > args.minutes * 60
        if step % 20 == 0:
            elapsed = time.time() - started
            print(f"step {step} loss {loss.item():.4f} ({loss.item() / math.log(2):.3f} bits/char) "
                  f"lr {optimizer.param_groups[0]['lr']:.2e} {elapsed / 60:.1f} min", flush=True)
        if step % args.save_every == 0 or step == args.steps or out_of_time:
            watch = bits_per_char(model, watch_data, args.ctx, 8, torch.Generator().manual_seed(1))
            log.write(json.dumps({"step": step, "train_bits_per_char": loss.item() / math.log(2),
                                  "watch_bits_per_char": watch, "minutes": (time.time() - started) / 60}) + "\n")
            log.flush()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "generator": gen.get_state(), "step": step}, out / "checkpoint.pt.tmp")
            (out / "checkpoint.pt.tmp").replace(out / "checkpoint.pt")
        if out_of_time:
            break
    print(f"stopped at step {step}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
