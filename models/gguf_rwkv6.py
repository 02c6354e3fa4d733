"""llama.cpp's RWKV-6 GGUF layout (architecture "rwkv6") mapped to BlinkDL's x060 names and shapes.

llama.cpp's converter (convert_hf_to_gguf.py, class Rwkv6Model) reads the Hugging Face RWKV-6 folder,
whose tensors have BlinkDL's shapes, and its loader (src/models/rwkv6.cpp) wants, in numpy shapes:

    token_embd (V, C), token_embd_norm, output_norm, output   emb, blocks.0.ln0, ln_out, head
    blk.i.attn_norm, attn_norm_2                               blocks.i.ln1, ln2
    blk.i.time_mix_lerp_x (C,)                                 att.time_maa_x (1, 1, C)
    blk.i.time_mix_lerp_fused (5, 1, 1, C)                     att.time_maa_w, k, v, r, g, in that order
        (older files: time_mix_lerp_w/k/v/r/g (C,) each)
    blk.i.time_mix_w1 (5 D, C), time_mix_w2 (5, C, D)          att.time_maa_w1 (C, 5 D) transposed,
                                                               time_maa_w2 (5, D, C) with its last two axes swapped
    blk.i.time_mix_decay (A,)                                  att.time_decay (1, 1, A)
    blk.i.time_mix_decay_w1 (D', C), decay_w2 (A, D')          att.time_decay_w1 (C, D'), w2 (D', A): transposed
    blk.i.time_mix_first (H, N)                                att.time_faaaa as it is
    blk.i.time_mix_{receptance,key,value,gate,output}          att.{...}.weight as they are
    blk.i.time_mix_ln                                          att.ln_x (GroupNorm; llama.cpp fixes eps 64e-5)
    blk.i.channel_mix_lerp_k, lerp_r (C,)                      ffn.time_maa_k, time_maa_r (1, 1, C)
    blk.i.channel_mix_{key,receptance,value}                   ffn.{...}.weight as they are

rwkv6.rescale_every_n_layers R > 0 (6 in the World models' Hugging Face config): the converter divides
layer i's time_mix_output and channel_mix_value by 2^(i // R) and llama.cpp halves the residual stream
after every R-th layer, the same function (LayerNorm ignores the scale). BlinkDL's model does neither, so
those two matrices are multiplied back here: a power of two, exact in every type read.
"""

from __future__ import annotations

LERP_ORDER = ("w", "k", "v", "r", "g")  # the five views of time_mix_lerp_fused, in llama.cpp's order
RESCALED = ("att.output.weight", "ffn.value.weight")  # the matrices the converter divides by 2^(i // R)


def rescale_factor(layer: int, rescale_every: int) -> int:
    """What the converter divides layer `layer`'s RESCALED matrices by."""
    return 2 ** (layer // rescale_every) if rescale_every > 0 else 1


def outer_weights(take) -> dict:
    """The tensors around the layers, named alike in llama.cpp's RWKV-6 and RWKV-7 layouts."""
    return {
        "emb.weight": take("token_embd.weight"),
        "blocks.0.ln0.weight": take("token_embd_norm.weight"),
        "blocks.0.ln0.bias": take("token_embd_norm.bias"),
        "ln_out.weight": take("output_norm.weight"),
        "ln_out.bias": take("output_norm.bias"),
        "head.weight": take("output.weight"),
    }


def block_norms(take, i: int) -> dict:
    """Layer i's two layer norms, named alike in llama.cpp's RWKV-6 and RWKV-7 layouts."""
    g, b = f"blk.{i}.", f"blocks.{i}."
    return {f"{b}{ln}.{part}": take(f"{g}{norm}.{part}")
            for ln, norm in (("ln1", "attn_norm"), ("ln2", "attn_norm_2")) for part in ("weight", "bias")}


def shapers(take):
    """(vec, transposed): a (C,) tensor as (1, 1, C); a matrix transposed into its own memory."""
    return (lambda name: take(name).reshape(1, 1, -1)), (lambda name: take(name).t().contiguous())


def read_rwkv6_layout(take, tensors: dict, n_layer: int, rescale_every: int) -> dict:
    """BlinkDL's RWKV-6 state dict from llama.cpp's tensors: take(gguf_name) returns one as torch in its numpy
    shape (and removes it from `tensors`, whose names are checked here only for the lerp form)."""

    vec, transposed = shapers(take)
    w = outer_weights(take)
    for i in range(n_layer):
        g, b = f"blk.{i}.", f"blocks.{i}."
        a, f = b + "att.", b + "ffn."
        w.update(block_norms(take, i))
        w[a + "time_maa_x"] = vec(g + "time_mix_lerp_x.weight")
        if f"{g}time_mix_lerp_fused.weight" in tensors or f"{g}time_mix_lerp_w.weight" not in tensors:
            lerp = take(g + "time_mix_lerp_fused.weight").reshape(len(LERP_ORDER), -1)
            for j, x in enumerate(LERP_ORDER):
                w[f"{a}time_maa_{x}"] = lerp[j].reshape(1, 1, -1).clone()
        else:
            for x in LERP_ORDER:
                w[f"{a}time_maa_{x}"] = vec(f"{g}time_mix_lerp_{x}.weight")
        w[a + "time_maa_w1"] = transposed(g + "time_mix_w1.weight")
        w[a + "time_maa_w2"] = take(g + "time_mix_w2.weight").transpose(1, 2).contiguous()
        w[a + "time_decay"] = vec(g + "time_mix_decay.weight")
        w[a + "time_decay_w1"] = transposed(g + "time_mix_decay_w1.weight")
        w[a + "time_decay_w2"] = transposed(g + "time_mix_decay_w2.weight")
        w[a + "time_faaaa"] = take(g + "time_mix_first.weight")
        for m in ("receptance", "key", "value", "gate", "output"):
            w[f"{a}{m}.weight"] = take(f"{g}time_mix_{m}.weight")
        w[a + "ln_x.weight"] = take(g + "time_mix_ln.weight")
        w[a + "ln_x.bias"] = take(g + "time_mix_ln.bias")
        w[f + "time_maa_k"] = vec(g + "channel_mix_lerp_k.weight")
        w[f + "time_maa_r"] = vec(g + "channel_mix_lerp_r.weight")
        for m in ("key", "receptance", "value"):
            w[f"{f}{m}.weight"] = take(f"{g}channel_mix_{m}.weight")
        factor = rescale_factor(i, rescale_every)
        if factor > 1:
            for name in RESCALED:
                w[b + name] = w[b + name] * factor
    return w

