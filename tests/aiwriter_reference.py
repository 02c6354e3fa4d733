"""An independent, straightforward reading of the original AI-Writer's v1 and v2 model equations,
in float64 numpy, with no caching and no batching: the test oracle for models/aiwriter_v1.py and models/aiwriter_v2.py."""

from __future__ import annotations

import numpy as np


def _np(weights: dict) -> dict:
    return {k: v.detach().double().numpy() for k, v in weights.items()}


def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def mish(x):
    return x * np.tanh(np.log1p(np.exp(x)))


def v1_logits(weights: dict, idx: list[int]) -> np.ndarray:
    """Logits (V,) after the last character of idx, reading the last ctx_len characters from position 0
    (the original's method: the whole window, every time)."""
    w = _np(weights)
    H, T = w["blocks.0.attn.time_w"].shape
    idx = list(idx)[-T:]
    n = len(idx)
    x = w["tok_emb.weight"][idx]  # (n, C)
    C = x.shape[1]
    n_layer = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("blocks."))

    def lin(z, name, bias=True):
        out = z @ w[name + ".weight"].T
        return out + w[name + ".bias"] if bias else out

    def half_shift(z):
        shifted = z.copy()
        shifted[:, : C // 2] = 0
        shifted[1:, : C // 2] = z[:-1, : C // 2]
        return shifted

    for i in range(n_layer):
        p = f"blocks.{i}."
        z = half_shift(layer_norm(x, w[p + "ln1.weight"], w[p + "ln1.bias"]))
        k = np.exp(np.clip(lin(z, p + "attn.key"), -60, 30))
        v = lin(z, p + "attn.value")
        r = lin(z, p + "attn.receptance")
        kv = k * v
        att = np.zeros((n, C))
        for t in range(n):
            den = k[: t + 1].sum(0)
            for c in range(C):
                h = c // (C // H)
                num = 0.0
                for u in range(t + 1):
                    ww = (w[p + "attn.time_w"][h, T - 1 - (t - u)] * w[p + "attn.time_alpha"][h, 0, u]
                          * w[p + "attn.time_beta"][h, t, 0])
                    num += ww * kv[u, c]
                att[t, c] = sigmoid(r[t, c]) * num / den[c]
        x = x + lin(att, p + "attn.output") * w[p + "attn.time_gamma"][:n]
        z = half_shift(layer_norm(x, w[p + "ln2.weight"], w[p + "ln2.bias"]))
        ffn = lin(mish(lin(z, p + "mlp.key")) * lin(z, p + "mlp.value"), p + "mlp.weight")
        x = x + sigmoid(lin(z, p + "mlp.receptance")) * ffn
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"])
    t = n - 1
    logits = (x[t] * w["time_out"][0, t, 0]) @ w["head.weight"].T
    if "head_q.weight" in w:
        q = lin(x[t : t + 1], "head_q")[0]
        kk = lin(x, "head_k")
        for u in range(t + 1):
            logits[idx[u]] += q @ kk[u] / q.shape[0]
    return logits


def v2_logits_sequence(weights: dict, idx: list[int], ctx_len: int) -> list[np.ndarray]:
    """The v2 RNN run one character at a time over idx; the logits (V,) after each character.
    time_decay / time_first are in the stored form: w = exp(-exp(decay)), u = exp(first)."""
    w = _np(weights)
    n_layer = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("blocks."))
    C = w["emb.weight"].shape[1]
    prev = {}
    aa = {i: np.zeros(C) for i in range(n_layer)}
    bb = {i: np.zeros(C) for i in range(n_layer)}
    keys, ids, out = [], [], []

    def mix(xx, p, slot):
        mixed = xx * w[p + ".time_mix"].reshape(-1) + prev.get(slot, np.zeros(C)) * (1 - w[p + ".time_mix"].reshape(-1))
        prev[slot] = xx
        return mixed

    def ffn(xx, p, slot):
        xm = mix(xx, p, slot)
        r = sigmoid(w[p + ".receptance.weight"] @ xm)
        return r * (w[p + ".value.weight"] @ np.maximum(w[p + ".key.weight"] @ xm, 0) ** 2)

    for token in idx:
        x = w["emb.weight"][token]
        for i in range(n_layer):
            p = f"blocks.{i}."
            x = layer_norm(x, w[p + "ln1.weight"], w[p + "ln1.bias"])
            if i == 0 and p + "ffnPre.key.weight" in w:
                x = x + ffn(x, p + "ffnPre", f"att{i}")
            else:
                a = p + "att"
                xm = mix(x, a, f"att{i}")
                r = sigmoid(w[a + ".receptance.weight"] @ xm)
                k = np.exp(np.minimum(w[a + ".key.weight"] @ xm, 60))
                v = w[a + ".value.weight"] @ xm
                decay, first = w[a + ".time_decay"].reshape(-1), w[a + ".time_first"].reshape(-1)
                num = aa[i] + first * k * v
                den = bb[i] + first * k
                aa[i] = decay * aa[i] + k * v
                bb[i] = decay * bb[i] + k
                x = x + w[a + ".output.weight"] @ (r * num / (den + 1e-16))
            x = layer_norm(x, w[p + "ln2.weight"], w[p + "ln2.bias"])
            x = x + ffn(x, p + "ffn", f"ffn{i}")
        x = layer_norm(x, w["ln_out.weight"], w["ln_out.bias"])
        keys.append(w["head_k.weight"] @ x)
        ids.append(token)
        keys, ids = keys[-ctx_len:], ids[-ctx_len:]
        q = w["head_q.weight"] @ x
        logits = w["head.weight"] @ x
        for key, past in zip(keys, ids):
            logits[past] += key @ q / q.shape[0]
        out.append(logits)
    return out
