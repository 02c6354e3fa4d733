"""Operations on recurrent states, whatever the backend.

A state is a tuple of arrays (torch tensors or numpy arrays) whose axis 1 is the
batch row; axis 0 is the layer. These helpers fork one prompt's state into N
candidates, keep some rows, or copy a state so that two branches never share
memory; state_to_numpy and state_from_numpy carry a state to and from disk.
"""

from __future__ import annotations

import numpy as np


def _copy(array):
    return array.clone() if hasattr(array, "clone") else array.copy()


def _rebuild(state, arrays):
    arrays = list(arrays)
    return type(state)(*arrays) if hasattr(state, "_fields") else type(state)(arrays)


def copy_state(state):
    """An independent copy."""
    return _rebuild(state, (_copy(a) for a in state))


def take_rows(state, rows):
    """The state of the listed batch rows, in that order (rows may repeat)."""
    rows = list(rows)
    return _rebuild(state, (_copy(a[:, rows]) for a in state))


def repeat_rows(state, times: int):
    """Each row repeated `times` times, consecutively: one prompt forked into N candidates."""
    batch = state[0].shape[1]
    return take_rows(state, [row for row in range(batch) for _ in range(times)])


def concat_rows(first, second):
    """The rows of `first`, then those of `second` (two states of one model)."""
    if hasattr(first[0], "detach"):
        import torch

        return _rebuild(first, (torch.cat((a, b), dim=1) for a, b in zip(first, second, strict=True)))
    return _rebuild(first, (np.concatenate((a, b), axis=1) for a, b in zip(first, second, strict=True)))


def batch_size(state) -> int:
    return state[0].shape[1]


def state_to_numpy(state) -> list:
    """The state's arrays as numpy on the CPU: floating ones as float32, integer ones (ids, lengths) as they are."""
    arrays = []
    for array in state:
        if hasattr(array, "detach"):  # a torch tensor
            array = array.detach()
            array = (array.float() if array.is_floating_point() else array).cpu().numpy()
        array = np.asarray(array)
        arrays.append(array.astype(np.float32) if np.issubdtype(array.dtype, np.floating) else array)
    return arrays


def state_from_numpy(like_state, arrays):
    """A state of like_state's type from numpy arrays: torch tensors on its arrays' device and dtype, numpy
    arrays in its arrays' dtype."""
    rebuilt = []
    for like, array in zip(like_state, arrays, strict=True):
        if hasattr(like, "detach"):
            import torch

            rebuilt.append(torch.from_numpy(np.ascontiguousarray(array)).to(device=like.device, dtype=like.dtype))
        else:
            rebuilt.append(np.array(array, dtype=like.dtype))
    return _rebuild(like_state, rebuilt)
