"""The recurrent state of the numpy engines (the ONNX step, the C step and the CPU pairs around them):
one state type per architecture, float32 numpy arrays with the layer on axis 0 and the batch row on
axis 1. Its arrays are in the order and layout of models.rwkv7.RWKV7State / models.rwkv4.RWKV4State,
so a state passes to and from torch through torch.from_numpy without a copy."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ai_writer.backends.engines import state_rows
from ai_writer.backends.errors import EngineError

NO_PAST = -1e30  # models.rwkv4.NO_PAST: pp of an empty RWKV-4 state


class RWKV7NumpyState(NamedTuple):
    att_x_prev: np.ndarray  # (L, B, C) float32
    att_kv: np.ndarray  # (L, B, H, N, N) float32, [value, key] order
    ffn_x_prev: np.ndarray  # (L, B, C) float32


class RWKV4NumpyState(NamedTuple):
    att_x_prev: np.ndarray  # (L, B, C) float32
    aa: np.ndarray  # (L, B, A) float32 WKV numerator / e^pp
    bb: np.ndarray  # (L, B, A) float32 WKV denominator / e^pp
    pp: np.ndarray  # (L, B, A) float32 the shared exponent; NO_PAST when empty
    ffn_x_prev: np.ndarray  # (L, B, C) float32


def state_layout(architecture: str, n_embd: int, size: int):
    """(state class, each state array's shape past the (L, B) axes, each one's empty value).

    size: head_size for RWKV-7, n_att for RWKV-4.
    """
    if architecture == "rwkv4":
        return RWKV4NumpyState, [(n_embd,), (size,), (size,), (size,), (n_embd,)], [0.0, 0.0, 0.0, NO_PAST, 0.0]
    return RWKV7NumpyState, [(n_embd,), (n_embd // size, size, size), (n_embd,)], [0.0, 0.0, 0.0]


class NumpyStateOps:
    """The state half of the Engine protocol for the numpy engines: checked, made empty, copied, forked.
    A user sets self.state_class, self._shapes, self._fills (from state_layout) and self.info."""

    def _checked(self, state, batch: int):
        """The state as contiguous float32 numpy arrays of this model's shapes (torch CPU tensors are
        taken without a copy), or EngineError."""
        try:
            arrays = [np.ascontiguousarray(a.numpy() if hasattr(a, "numpy") and not isinstance(a, np.ndarray)
                                           else np.asarray(a), dtype=np.float32) for a in state]
        except (TypeError, ValueError, RuntimeError):
            raise EngineError("the state is not a tuple of CPU float32 arrays") from None
        wanted = [(self.info.n_layer, batch, *shape) for shape in self._shapes]
        if len(arrays) != len(wanted) or [a.shape for a in arrays] != wanted:
            raise EngineError(f"the state's shapes {[a.shape for a in arrays]} do not fit {batch} rows of this model ({wanted})")
        return self.state_class(*arrays)

    def zero_state(self, batch: int = 1):
        """The empty state of `batch` rows."""
        L = self.info.n_layer
        return self.state_class(*(np.full((L, batch, *shape), fill, np.float32)
                                  for shape, fill in zip(self._shapes, self._fills)))

    copy_state = staticmethod(state_rows.copy_state)
    take_rows = staticmethod(state_rows.take_rows)
    repeat_rows = staticmethod(state_rows.repeat_rows)
