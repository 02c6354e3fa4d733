"""RWKV-7's shape: what a model of this architecture holds, read from its weights' names and shapes.

Without torch: the C step (backends/engines/native_step.py) reads a model file's arrays with numpy alone.
"""

from __future__ import annotations

from dataclasses import dataclass

HEAD_SIZE = 64


def _lora_width(n_embd: int, factor: float, power: float) -> int:
    return max(32, int(round(factor * n_embd**power / 32)) * 32)


@dataclass(frozen=True)
class RWKV7Config:
    n_layer: int
    n_embd: int
    vocab_size: int
    head_size: int = HEAD_SIZE
    d_decay: int = 0  # LoRA widths; 0 = BlinkDL's suggestion for n_embd
    d_iclr: int = 0
    d_value: int = 0
    d_gate: int = 0

    def __post_init__(self):
        if self.n_embd % self.head_size:
            raise ValueError(f"n_embd {self.n_embd} is not a multiple of head size {self.head_size}")
        suggested = {
            "d_decay": _lora_width(self.n_embd, 2.5, 0.5),
            "d_iclr": _lora_width(self.n_embd, 2.5, 0.5),
            "d_value": _lora_width(self.n_embd, 1.7, 0.5),
            "d_gate": _lora_width(self.n_embd, 0.6, 0.8),
        }
        for name, width in suggested.items():
            if getattr(self, name) == 0:
                object.__setattr__(self, name, width)

    @property
    def n_head(self) -> int:
        return self.n_embd // self.head_size

    @classmethod
    def from_state_dict(cls, weights: dict) -> "RWKV7Config":
        n_layer = 1 + max(int(key.split(".")[1]) for key in weights if key.startswith("blocks."))
        vocab_size, n_embd = weights["emb.weight"].shape
        n_head, head_size = weights["blocks.0.att.r_k"].shape
        return cls(
            n_layer=n_layer,
            n_embd=n_embd,
            vocab_size=vocab_size,
            head_size=head_size,
            d_decay=weights["blocks.0.att.w1"].shape[1],
            d_iclr=weights["blocks.0.att.a1"].shape[1],
            d_value=weights["blocks.1.att.v1"].shape[1] if n_layer > 1 else 0,
            d_gate=weights["blocks.0.att.g1"].shape[1],
        )


LAYER0_VALUE_MIX = ("blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2")  # never read: a file may leave them out


def parameter_shapes(config: RWKV7Config) -> dict[str, tuple[int, ...]]:
    """Every parameter of models.rwkv7.RWKV7(config) by name, with its shape (BlinkDL's names and layout)."""
    C, V, H, N = config.n_embd, config.vocab_size, config.n_head, config.head_size
    vector, mix = (C,), (1, 1, C)
    shapes = {"emb.weight": (V, C), "blocks.0.ln0.weight": vector, "blocks.0.ln0.bias": vector}
    for i in range(config.n_layer):
        at = f"blocks.{i}."
        for name in ("ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "att.ln_x.weight", "att.ln_x.bias"):
            shapes[at + name] = vector
        for name in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "a0", "v0", "k_k", "k_a"):
            shapes[f"{at}att.{name}"] = mix
        for name, width in (("w", config.d_decay), ("a", config.d_iclr), ("v", config.d_value), ("g", config.d_gate)):
            shapes[f"{at}att.{name}1"], shapes[f"{at}att.{name}2"] = (C, width), (width, C)
        shapes[at + "att.r_k"] = (H, N)
        for name in ("receptance", "key", "value", "output"):
            shapes[f"{at}att.{name}.weight"] = (C, C)
        shapes[at + "ffn.x_k"], shapes[at + "ffn.key.weight"], shapes[at + "ffn.value.weight"] = mix, (4 * C, C), (C, 4 * C)
    shapes.update({"ln_out.weight": vector, "ln_out.bias": vector, "head.weight": (V, C)})
    return shapes


def misfit(config: RWKV7Config, shapes: dict) -> str | None:
    """The first way weights of these shapes (name -> shape) do not fit RWKV7(config), in a few words, or None.
    Layer 0's value mix may be missing (LAYER0_VALUE_MIX); names of no parameter are not looked at."""
    for name, wanted in parameter_shapes(config).items():
        if name not in shapes:
            if name not in LAYER0_VALUE_MIX:
                return f"no {name}"
        elif tuple(shapes[name]) != wanted:
            return f"{name} is {tuple(shapes[name])}, not {wanted}"
    return None
