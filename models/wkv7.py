"""The RWKV-7 state update ("WKV"), stepwise and chunked over time.

Per head the state S is an (N_value x N_key) matrix. One step with inputs
r, w, k, v, a, b (each a length-N vector) is

    S_t = S_{t-1} diag(w_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T        (1)
    o_t = S_t r_t

RWKV-7 uses a = -kk and b = kk * iclr (kk: the normalised key, iclr: the
in-context learning rate), so that S a b^T removes part of the old value stored
under the key direction kk before v k^T writes the new one (a "delta rule").

`wkv7_chunked` computes the same outputs and final state for T steps without a
Python loop over tokens: time is cut into chunks of L steps and each chunk is
solved at once. Inside a chunk, write y_t = S_{t-1} a_t. Unrolling (1) from the
chunk's start state S_0 with cumulative log-decay c_t = sum_{s<=t} log w_s gives

    y_t = S_0 (e^{c_{t-1}} * a_t) + sum_{j<t} [ y_j (b_j . e^{c_{t-1}-c_j} * a_t)
                                               + v_j (k_j . e^{c_{t-1}-c_j} * a_t) ]
    o_t = S_0 (e^{c_t} * r_t)     + sum_{j<=t} [ y_j (b_j . e^{c_t-c_j} * r_t)
                                               + v_j (k_j . e^{c_t-c_j} * r_t) ]
    S_L = S_0 diag(e^{c_L}) + sum_j [ y_j (e^{c_L-c_j} * b_j)^T + v_j (e^{c_L-c_j} * k_j)^T ]

The first line is a unit lower-triangular linear system in the y's, solved with
one triangular solve. Every decay factor is formed as exp of a difference c_t - c_j
with j <= t, so it lies in (0, 1]: nothing overflows however long the chunk.
"""

from __future__ import annotations

import torch

DEFAULT_CHUNK = 32


def wkv7_step(state, r, w, k, v, a, b):
    """One step of (1) for every batch row and head.

    state: (B, H, N, N) float32, [value, key] order. r, w, k, v, a, b: (B, H, N).
    Returns (o (B, H, N), new state).
    """
    state = (
        state * w.unsqueeze(-2)
        + (state @ a.unsqueeze(-1)) @ b.unsqueeze(-2)
        + v.unsqueeze(-1) @ k.unsqueeze(-2)
    )
    return (state @ r.unsqueeze(-1)).squeeze(-1), state


def wkv7_loop(state, r, log_w, k, v, a, b):
    """(1) stepped token by token: the plain definition, used to check the chunked form.

    Inputs (B, T, H, N) and state (B, H, N, N); returns (o (B, T, H, N), state).
    """
    outputs = []
    w = torch.exp(log_w)
    for t in range(r.shape[1]):
        o, state = wkv7_step(state, r[:, t], w[:, t], k[:, t], v[:, t], a[:, t], b[:, t])
        outputs.append(o)
    return torch.stack(outputs, dim=1), state


def _decay_pairs(c_query, c_key, inclusive: bool):
    """exp(c_query[t] - c_key[j]) for j < t (or j <= t), else 0: (B, H, L, L, N)."""
    length = c_query.shape[-2]
    diff = c_query.unsqueeze(-2) - c_key.unsqueeze(-3)  # [t, j]
    keep = torch.ones(length, length, dtype=torch.bool, device=diff.device)
    keep = torch.tril(keep, diagonal=0 if inclusive else -1)
    diff = diff.masked_fill(~keep.unsqueeze(-1), float("-inf"))
    return torch.exp(diff)


def _wkv7_chunk(state, r, log_w, k, v, a, b):
    """One chunk of the closed form above. Inputs (B, H, L, N); state (B, H, N, N)."""
    c = torch.cumsum(log_w, dim=-2)  # c_t
    c_prev = c - log_w  # c_{t-1}
    c_last = c[..., -1:, :]  # c_L, (B, H, 1, N)

    decay_before = _decay_pairs(c_prev, c, inclusive=False)  # e^{c_{t-1} - c_j}, j < t
    decay_upto = _decay_pairs(c, c, inclusive=True)  # e^{c_t - c_j}, j <= t

    # Coefficients [t, j] of y_j and v_j in y_t and in o_t.
    a_b = torch.einsum("bhtn,bhjn,bhtjn->bhtj", a, b, decay_before)
    a_k = torch.einsum("bhtn,bhjn,bhtjn->bhtj", a, k, decay_before)
    r_b = torch.einsum("bhtn,bhjn,bhtjn->bhtj", r, b, decay_upto)
    r_k = torch.einsum("bhtn,bhjn,bhtjn->bhtj", r, k, decay_upto)

    state_t = state.transpose(-1, -2)  # (B, H, N_key, N_value): rows of "x @ state_t" are S_0 x
    rhs = (torch.exp(c_prev) * a) @ state_t + a_k @ v
    eye = torch.eye(r.shape[-2], dtype=r.dtype, device=r.device)
    y = torch.linalg.solve_triangular(eye - a_b, rhs, upper=False, unitriangular=True)

    out = (torch.exp(c) * r) @ state_t + r_b @ y + r_k @ v

    to_end = torch.exp(c_last - c)  # e^{c_L - c_j}, (B, H, L, N)
    new_state = (
        state * torch.exp(c_last)
        + y.transpose(-1, -2) @ (to_end * b)
        + v.transpose(-1, -2) @ (to_end * k)
    )
    return out, new_state


def wkv7_chunked(state, r, log_w, k, v, a, b, chunk: int = DEFAULT_CHUNK):
    """(1) over T steps, solved chunk by chunk.

    Inputs (B, T, H, N) with log_w = log(w) < 0; state (B, H, N, N) float32.
    Returns (o (B, T, H, N), final state).
    """
    inputs = [t.transpose(1, 2) for t in (r, log_w, k, v, a, b)]  # (B, H, T, N)
    total = r.shape[1]
    outputs = []
    for start in range(0, total, chunk):
        piece = [t[:, :, start : start + chunk] for t in inputs]
        out, state = _wkv7_chunk(state, *piece)
        outputs.append(out)
    return torch.cat(outputs, dim=2).transpose(1, 2), state
