"""An engine that starts every text from a tuned state (models.state_file.TunedState) instead of zeros.

    engine = with_start_state(engine, read_state_file("style.pth"))

Everything else is the wrapped engine's: forward() with state None starts from the tuned state, and
zero_state() returns it, so prompt reading, forking and scans all begin there. `start_key` (the state
file's sha256) goes into every prompt-cache and disk-state key, so texts read from different starts are
never taken for one another.
"""

from __future__ import annotations

import numpy as np

from ai_writer.backends.errors import LoadError


class StartStateEngine:
    def __init__(self, engine, tuned):
        self.__dict__["inner"] = engine
        self.__dict__["tuned"] = tuned
        self.__dict__["start_key"] = tuned.sha256
        self.__dict__["_att_kv"] = tuned.att_kv()  # (L, H, N, N) float32

    def __getattr__(self, name):  # everything but the start is the wrapped engine's
        return getattr(self.inner, name)

    def __setattr__(self, name, value):
        setattr(self.inner, name, value)

    def zero_state(self, batch: int = 1):
        empty = self.inner.zero_state(batch)
        like = empty.att_kv
        rows = np.broadcast_to(self._att_kv[:, None], (self._att_kv.shape[0], batch, *self._att_kv.shape[1:]))
        if hasattr(like, "detach"):  # torch
            import torch

            start = torch.from_numpy(np.array(rows)).to(device=like.device, dtype=like.dtype)
        else:
            start = np.array(rows, dtype=like.dtype)
        return empty._replace(att_kv=start)

    def forward(self, token_lists, state=None, full_output: bool = False):
        if state is None:
            state = self.zero_state(len(token_lists))
        return self.inner.forward(token_lists, state, full_output)


def with_start_state(engine, tuned):
    """`engine` starting from `tuned`; LoadError (one line) when the state does not fit its model."""
    info = engine.info
    head_size = tuned.time_state.shape[-1]
    problem = tuned.problem_with(info.n_layer, info.n_embd, head_size, info.architecture)
    if not problem and not hasattr(engine.zero_state(1), "att_kv"):
        problem = f"{tuned.path}: the {info.backend} backend cannot start from a state file"
    if not problem:
        like = engine.zero_state(1).att_kv
        if tuple(like.shape[2:]) != tuple(tuned.att_kv().shape[1:]):
            problem = (f"{tuned.path}: this state's heads {tuple(tuned.att_kv().shape[1:])} do not fit the "
                       f"model's {tuple(like.shape[2:])}")
    if problem:
        raise LoadError(problem)
    return StartStateEngine(engine, tuned)
