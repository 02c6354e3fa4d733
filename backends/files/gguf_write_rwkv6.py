"""The RWKV-6 part of write_gguf (backends/files/gguf_write.py): llama.cpp's "rwkv6" metadata and tensors.

Names, shapes and keys as llama.cpp's converter (convert_hf_to_gguf.py, class Rwkv6Model) writes them
from a Hugging Face RWKV-6 World folder; models/gguf_rwkv6.py lists the layout and reads it back.
rescale_every R (the Hugging Face config's rescale_every, 6 in the World models; 0 for none) is stored as
rwkv6.rescale_every_n_layers, and layer i's time_mix_output and channel_mix_value are divided by
2^(i // R), as there: llama.cpp halves the residual stream after every R-th layer to match.
"""

from __future__ import annotations

import torch

from ai_writer.backends.errors import LoadError
from ai_writer.models.gguf_rwkv6 import LERP_ORDER, rescale_factor

RESCALE_EVERY = 6  # the RWKV-6 World models' rescale_every, which llama.cpp's converter copies
CONTEXT_LENGTH = 1048576  # as llama.cpp's converter: RWKV has no context limit
# what the converter keeps F32 in an F16/BF16/Q8_0 file besides the vectors and norms
KEEP_F32 = ("time_mix_first.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_decay_w1.weight",
            "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight")


def rwkv6_config(weights: dict, path, rescale_every: int):
    """The model's RWKV6Config; LoadError (one line) for what llama.cpp's rwkv6 cannot hold."""
    from ai_writer.models.rwkv6 import RWKV6Config

    try:
        config = RWKV6Config.from_state_dict(weights)
    except (KeyError, ValueError, IndexError) as exc:
        raise LoadError(f"{path}: RWKV-6 weights with missing or misshapen tensors ({exc})") from None
    if config.n_att != config.n_embd:
        raise LoadError(f"{path}: attention width {config.n_att} is not n_embd {config.n_embd}, "
                        "which llama.cpp's rwkv6 takes it to be")
    if not isinstance(rescale_every, int) or rescale_every < 0:
        raise LoadError(f"{path}: rescale_every {rescale_every!r} is not a whole number >= 0")
    return config


def add_rwkv6_parameters(writer, config, rescale_every: int) -> None:
    """The converter's set_gguf_parameters, up to the file type (which write_gguf adds, with the rest)."""
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_layer_norm_eps(1e-5)  # torch's LayerNorm default, which BlinkDL's model uses
    writer.add_rescale_every_n_layers(rescale_every)
    writer.add_wkv_head_size(config.head_size)
    writer.add_time_mix_extra_dim(config.d_mix)
    writer.add_time_decay_extra_dim(config.d_decay)
    writer.add_feed_forward_length(config.n_ffn)


def rwkv6_gguf_tensors(weights: dict, n_layer: int, rescale_every: int):
    """(GGUF name, float32 numpy array) in llama.cpp's rwkv6 layout."""

    def f(t):
        return t.detach().to(torch.float32).contiguous().numpy()

    yield "token_embd.weight", f(weights["emb.weight"])
    yield "token_embd_norm.weight", f(weights["blocks.0.ln0.weight"])
    yield "token_embd_norm.bias", f(weights["blocks.0.ln0.bias"])
    for i in range(n_layer):
        b, g = f"blocks.{i}.", f"blk.{i}."
        a, c = b + "att.", b + "ffn."
        factor = rescale_factor(i, rescale_every)
        for part in ("weight", "bias"):
            yield f"{g}attn_norm.{part}", f(weights[f"{b}ln1.{part}"])
        for part in ("weight", "bias"):
            yield f"{g}attn_norm_2.{part}", f(weights[f"{b}ln2.{part}"])
        yield g + "time_mix_lerp_x.weight", f(weights[a + "time_maa_x"].reshape(-1))
        yield g + "time_mix_lerp_fused.weight", f(torch.stack([weights[f"{a}time_maa_{x}"].reshape(1, 1, -1)
                                                               for x in LERP_ORDER]))
        yield g + "time_mix_w1.weight", f(weights[a + "time_maa_w1"].t())
        yield g + "time_mix_w2.weight", f(weights[a + "time_maa_w2"].transpose(1, 2))
        yield g + "time_mix_decay.weight", f(weights[a + "time_decay"].reshape(-1))
        yield g + "time_mix_decay_w1.weight", f(weights[a + "time_decay_w1"].t())
        yield g + "time_mix_decay_w2.weight", f(weights[a + "time_decay_w2"].t())
        yield g + "time_mix_first.weight", f(weights[a + "time_faaaa"])
        for m in ("receptance", "key", "value", "gate"):
            yield f"{g}time_mix_{m}.weight", f(weights[f"{a}{m}.weight"])
        yield g + "time_mix_output.weight", f(weights[a + "output.weight"]) / factor
        yield g + "time_mix_ln.weight", f(weights[a + "ln_x.weight"])
        yield g + "time_mix_ln.bias", f(weights[a + "ln_x.bias"])
        yield g + "channel_mix_lerp_k.weight", f(weights[c + "time_maa_k"].reshape(-1))
        yield g + "channel_mix_lerp_r.weight", f(weights[c + "time_maa_r"].reshape(-1))
        yield g + "channel_mix_key.weight", f(weights[c + "key.weight"])
        yield g + "channel_mix_receptance.weight", f(weights[c + "receptance.weight"])
        yield g + "channel_mix_value.weight", f(weights[c + "value.weight"]) / factor
    yield "output_norm.weight", f(weights["ln_out.weight"])
    yield "output_norm.bias", f(weights["ln_out.bias"])
    yield "output.weight", f(weights["head.weight"])
