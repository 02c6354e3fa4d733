"""State-tuning files: a trained initial state (a style preset: genre, voice) for RWKV-5/6/7 models.

A file holds one tensor per layer, `blocks.N.att.time_state`, of shape (H, 64, 64): the matrix state of
that layer's time mixing in the trainer's [key, value] order. Runners start from its transpose, the
[value, key] order of the `rwkv` package's state (and of this project's models); the token-shift states
start at zero. Read from a .pth (torch.load with weights_only=True) or safetensors (.safetensors, or
RWKV-Runner's / web-rwkv's .st). A safetensors state is read with numpy alone (the native backend never imports
torch); a .pth one through torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ai_writer.models.file_digest import file_sha256
from ai_writer.models.model_errors import ModelFileError

KEY = re.compile(r"blocks\.(\d+)\.att\.time_state")


@dataclass(frozen=True)
class TunedState:
    path: Path
    sha256: str  # of the file: what prompt caches key on
    time_state: np.ndarray  # (L, H, N, N) float32, the file's [key, value] order

    @property
    def n_layer(self) -> int:
        return self.time_state.shape[0]

    @property
    def n_embd(self) -> int:
        return self.time_state.shape[1] * self.time_state.shape[2]

    def att_kv(self) -> np.ndarray:
        """(L, H, N, N) in the models' [value, key] order."""
        return np.ascontiguousarray(np.swapaxes(self.time_state, -1, -2))

    def problem_with(self, n_layer: int, n_embd: int, head_size: int, architecture: str) -> str:
        """'' when this state fits the model, else one line saying what it is for and what the model is."""
        if architecture not in ("rwkv7", "rwkv6", "rwkv5"):
            return f"{self.path}: state files are for RWKV-5, -6 and -7 models, not this {architecture} model"
        L, H, N, _ = self.time_state.shape
        if (L, H * N, N) != (n_layer, n_embd, head_size):
            return (f"{self.path}: this state is for a {L}-layer {H * N} model (heads of {N}); "
                    f"yours is {n_layer} x {n_embd}")
        return ""


def read_state_file(path: str | Path) -> TunedState:
    """The state file at `path`; ModelFileError (one line naming the file) if it is not one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelFileError(f"{path}: no such state file")
    tensors = _read_any(path)  # read lazily: a model file with a merged state holds far more than the state
    layers = {int(m.group(1)): np.array(tensors[k]) for k in tensors if (m := KEY.fullmatch(k))}  # copies
    if not layers:
        sample = ", ".join(sorted(tensors)[:3])
        raise ModelFileError(f"{path}: not a state file (no blocks.N.att.time_state; it holds {sample})")
    if sorted(layers) != list(range(len(layers))):
        missing = sorted(set(range(max(layers) + 1)) - set(layers))
        raise ModelFileError(f"{path}: a state file without layer {missing[0]} (blocks.{missing[0]}.att.time_state)")
    shapes = {tuple(t.shape) for t in layers.values()}
    first = next(iter(shapes))
    if len(shapes) != 1 or len(first) != 3 or first[1] != first[2]:
        raise ModelFileError(f"{path}: its time_state tensors are not all (heads, N, N) alike ({sorted(shapes)})")
    stacked = np.stack([layers[i] for i in range(len(layers))])  # float32, as read
    if not np.isfinite(stacked).all():
        raise ModelFileError(f"{path}: its state holds NaN or infinite values")
    return TunedState(path, file_sha256(path), stacked)


def _read_any(path: Path) -> Mapping[str, np.ndarray]:
    """The file's floating-point tensors by name, each read as a float32 array when looked up: a safetensors file
    mapped with numpy (through torch only where numpy cannot read it as it is, for the safetensors package's wording
    of what is wrong), a pickled one through torch."""
    from ai_writer.models.safetensors_numpy import Float32Arrays

    with path.open("rb") as f:
        head = f.read(8)
    safetensors = path.suffix.lower() in (".safetensors", ".st")
    if safetensors or not head.startswith(b"PK"):
        try:
            return Float32Arrays(path)
        except ModelFileError:
            pass
        from ai_writer.models.checkpoint import _read_safetensors

        try:
            return TensorArrays(_read_safetensors(path))
        except ModelFileError:
            if safetensors:
                raise
    from ai_writer.models.checkpoint import _read_pickled

    return TensorArrays(_read_pickled(path))


class TensorArrays(Mapping):
    """A torch state dict's floating-point tensors by name, each converted to a float32 array when looked up."""

    def __init__(self, tensors: dict):
        import torch

        self._tensors = {k: v for k, v in tensors.items() if isinstance(v, torch.Tensor) and v.is_floating_point()}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._tensors[name].float().numpy()

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)
