"""The torch backend: an RWKV model on a CPU or CUDA device."""

from __future__ import annotations

from pathlib import Path

import torch

from ai_writer.backends.engines import graph_step, state_rows
from ai_writer.backends.engines.base import EngineInfo, check_batch, check_vocab_rows
from ai_writer.backends.engines.names import Backend
from ai_writer.backends.errors import LoadError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class TorchEngine:
    def __init__(self, model, tokenizer, info: EngineInfo):
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.device = torch.device(info.device)
        self.tokens_processed = 0  # positions run through the model, all rows counted once per row
        # models that read only the last `window` ids (AI-Writer v1): their state after any text is
        # their state after its last `window` ids
        self.window = getattr(model, "window", None)
        # on a GPU, single-token steps replay a recorded CUDA graph (backends/engines/graph_step.py)
        self.graphed = graph_step.GraphedStep(model) if graph_step.wanted(self.device, info.architecture) else None

    def forward(self, token_lists, state=None, full_output: bool = False):
        """B equal-length id lists (and a state of B rows, or None) -> (logits, new state).

        logits: float32 numpy (B, V) for each last position, or (B, T, V) for every
        position with full_output. One token each runs the recurrent step; more run
        the chunked sequence form. The given state is not modified.
        """
        batch = check_batch(token_lists, self.info.vocab_size)
        tokens = torch.from_numpy(batch).to(self.device)
        with torch.inference_mode():
            if self.graphed is not None and batch.shape[1] == 1 and not full_output:
                state = self.model.zero_state(batch.shape[0]) if state is None else state
                logits, new_state = self.graphed.step(tokens, state)
            else:
                logits, new_state = self.model(tokens, state, full_output=full_output)
        self.tokens_processed += batch.size
        return logits.float().cpu().numpy(), new_state

    def zero_state(self, batch: int = 1):
        return self.model.zero_state(batch)

    copy_state = staticmethod(state_rows.copy_state)
    take_rows = staticmethod(state_rows.take_rows)
    repeat_rows = staticmethod(state_rows.repeat_rows)


def pick_torch_device(device: str) -> str:
    """'cpu', 'cuda', 'cuda:N' or 'auto' -> a device torch can use, or ValueError naming what is available."""
    available = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU (available: {', '.join(available)})")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r} for the torch backend (available: {', '.join(available)})")
    return device


def load_torch(path: Path, tokenizer, device: str, dtype: str | None, script: bool = True) -> TorchEngine:
    """A TorchEngine of this model file; LoadError (one line) for a device, dtype or file it cannot use.
    script=False keeps eager layers (the C step hands them its prompt scan)."""
    from ai_writer.models.checkpoint import ModelFileError, load_model

    try:
        device = pick_torch_device(device)
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    dtype = dtype or ("float32" if device == "cpu" else "float16")
    if dtype not in DTYPES:
        raise LoadError(f"unknown dtype {dtype!r} (available: {', '.join(DTYPES)})")
    try:
        model = load_model(path, dtype=DTYPES[dtype], device=device, script=script)
    except ModelFileError as exc:
        raise LoadError(str(exc)) from None
    config = model.config
    check_vocab_rows(path, config.vocab_size, tokenizer)
    architecture = getattr(model, "architecture", "rwkv7")  # models.rwkv4.RWKV4 says "rwkv4"
    info = EngineInfo(architecture, Backend.TORCH, device, str(path), config.n_layer, config.n_embd, config.vocab_size)
    return TorchEngine(model, tokenizer, info)
