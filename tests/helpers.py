"""Shared test helpers: random RWKV-7 checkpoints with BlinkDL's key names, waiting."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from ai_writer.models.checkpoint import save_safetensors
from ai_writer.models.rwkv7 import RWKV7, RWKV7Config, init_weights
from tests.greedy import greedy_texts  # noqa: F401 - imported from here by the tests

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
REAL_VOCAB = FIXTURES / "wangwen-2022-02-15.json"  # AI-Writer's own vocabulary (UTF-16), see fixtures/README.md


def random_rwkv7_weights(n_layer=2, n_embd=64, vocab_size=300, seed=0, spread=1.0) -> dict:
    """A random state dict with BlinkDL's exact key names and shapes (never a model to ship)."""
    model = init_weights(RWKV7(RWKV7Config(n_layer, n_embd, vocab_size)), seed=seed, spread=spread)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def write_checkpoint(path: Path, weights: dict) -> Path:
    path = Path(path)
    if path.suffix == ".safetensors":
        save_safetensors(weights, path)
    else:
        torch.save(weights, path)
    return path


def write_model_with_vocab(folder: Path, stem="tiny", n_layer=2, n_embd=64, seed=0, vocab=REAL_VOCAB) -> Path:
    """A random RWKV-7 sized for `vocab` (the real AI-Writer vocabulary by default), vocab beside it."""
    from ai_writer.models.tokenizer import CharTokenizer

    size = CharTokenizer.from_file(vocab).vocab_size
    path = write_checkpoint(Path(folder) / f"{stem}.safetensors", random_rwkv7_weights(n_layer, n_embd, size, seed))
    shutil.copy(vocab, path.with_suffix(".json"))
    return path


def cjk_chars(vocab_size: int) -> list[str]:
    """A vocabulary of `vocab_size` characters: newline, two punctuation marks, then CJK ideographs."""
    return ["\n", "。", "，"] + [chr(0x4E00 + i) for i in range(vocab_size - 3)]


def write_model_with_chars(folder: Path, weights: dict, chars: list[str], stem="m") -> Path:
    """STEM.safetensors holding `weights`, with a vocabulary JSON of `chars` beside it."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = write_checkpoint(folder / f"{stem}.safetensors", weights)
    path.with_suffix(".json").write_text(json.dumps(dict(enumerate(chars)), ensure_ascii=False), encoding="utf-8")
    return path


def rwkv7_logits(weights: dict, prompt_len=64, steps=16, seed=0) -> torch.Tensor:
    """Logits of the plain RWKV-7 (models.rwkv7) over a random prompt, then `steps` single steps on given
    tokens: (1 + steps, V). Layer 0's unused v0/v1/v2 may be absent (the model keeps its zeros there)."""
    model = RWKV7(RWKV7Config.from_state_dict(weights))
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
    assert not unexpected and set(missing) <= {"blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"}, missing
    vocab = weights["emb.weight"].shape[0]
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (1, prompt_len + steps), generator=generator)
    with torch.no_grad():
        logits, state = model(tokens[:, :prompt_len])
        rows = [logits[0]]
        for t in range(prompt_len, prompt_len + steps):
            logits, state = model.step(tokens[:, t], state)
            rows.append(logits[0])
    return torch.stack(rows)


def cpu_auto_backend() -> str:
    """What backend auto picks for an RWKV-7 on this CPU: the native step where a C compiler builds it."""
    from ai_writer.backends.engines.native_step import native_possible

    return "torch+native" if native_possible() else "torch+onnx"


def small_model_auto_backend() -> str:
    """What auto picks on this CPU for a small float32 RWKV-7 .safetensors file (the test models): the native step
    alone where a C compiler builds it (backends.selection.SMALL_FLOAT32_BYTES)."""
    from ai_writer.backends.engines.native_step import native_possible

    return "native" if native_possible() else "torch+onnx"


def wait_until(condition, timeout=10.0, interval=0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
