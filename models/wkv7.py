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
one triangular solve. Chunks are kept short (64) so that the decay factors, split
as e^{c_t} e^{-c_j}, stay well inside float32's range.
"""

from __future__ import annotations

import torch

DEFAULT_CHUNK = 64


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


def _wkv7_chunk(state, r, log_w, k, v, a, b):
    """One chunk of the closed form above. Inputs (B, H, L, N); state (B, H, N, N).

    Each decay e^{c_t - c_j} is split as e^{c_t} * e^{-c_j} so that every sum over
    the key dimension is a matrix product. Per step log w >= -e^-0.5, so over a chunk
    of 64 the factors stay within e^{+-39} (float32 reaches e^{+-88}): each product
    keeps full float32 relative precision.
    """
    c = torch.cumsum(log_w, dim=-2)  # c_t
    c_last = c[..., -1:, :]  # c_L, (B, H, 1, N)

    a_dec = a * torch.exp(c - log_w)  # a_t e^{c_{t-1}}
    r_dec = r * torch.exp(c)  # r_t e^{c_t}
    undo = torch.exp(-c)
    b_inv, k_inv = b * undo, k * undo  # b_j e^{-c_j}, k_j e^{-c_j}

    # Coefficients [t, j] of y_j and v_j in y_t (j < t) and in o_t (j <= t).
    a_b = torch.tril(a_dec @ b_inv.transpose(-1, -2), diagonal=-1)
    a_k = torch.tril(a_dec @ k_inv.transpose(-1, -2), diagonal=-1)
    r_b = torch.tril(r_dec @ b_inv.transpose(-1, -2))
    r_k = torch.tril(r_dec @ k_inv.transpose(-1, -2))

    state_t = state.transpose(-1, -2)  # (B, H, N_key, N_value): rows of "x @ state_t" are S_0 x
    rhs = a_dec @ state_t + a_k @ v
    # (I - a_b) y = rhs; unitriangular: the solve reads only the strictly lower part, of -a_b here
    y = torch.linalg.solve_triangular(-a_b, rhs, upper=False, unitriangular=True)

    out = r_dec @ state_t + r_b @ y + r_k @ v

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
    r, log_w, k, v, a, b = (t.transpose(1, 2) for t in (r, log_w, k, v, a, b))  # (B, H, T, N)
    outputs = []
    for start in range(0, r.shape[2], chunk):
        end = start + chunk
        out, state = _wkv7_chunk(
            state, r[:, :, start:end], log_w[:, :, start:end], k[:, :, start:end],
            v[:, :, start:end], a[:, :, start:end], b[:, :, start:end],
        )
        outputs.append(out)
    return torch.cat(outputs, dim=2).transpose(1, 2), state
