"""The torch backend: an RWKV model on a CPU or CUDA device."""

from __future__ import annotations

import torch

from backends import state as state_ops
from backends.engine import EngineInfo, check_batch


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

    def forward(self, token_lists, state=None, full_output: bool = False):
        """B equal-length id lists (and a state of B rows, or None) -> (logits, new state).

        logits: float32 numpy (B, V) for each last position, or (B, T, V) for every
        position with full_output. One token each runs the recurrent step; more run
        the chunked sequence form. The given state is not modified.
        """
        batch = check_batch(token_lists, self.info.vocab_size)
        tokens = torch.from_numpy(batch).to(self.device)
        with torch.inference_mode():
            logits, new_state = self.model(tokens, state, full_output=full_output)
        self.tokens_processed += batch.size
        return logits.float().cpu().numpy(), new_state

    def zero_state(self, batch: int = 1):
        return self.model.zero_state(batch)

    copy_state = staticmethod(state_ops.copy_state)
    take_rows = staticmethod(state_ops.take_rows)
    repeat_rows = staticmethod(state_ops.repeat_rows)


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

