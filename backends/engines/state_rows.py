"""Operations on recurrent states, whatever the backend.

A state is a tuple of arrays (torch tensors or numpy arrays) whose axis 1 is the
batch row; axis 0 is the layer. These helpers fork one prompt's state into N
candidates, keep some rows, or copy a state so that two branches never share
memory.
"""

from __future__ import annotations


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


def batch_size(state) -> int:
    return state[0].shape[1]
