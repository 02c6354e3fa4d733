"""The recurrent step of RWKV-7 and RWKV-4 as an ONNX graph, and the cache of exported files.

    export_onnx("model.safetensors", "model.onnx")       # what `ai-writer export-onnx` runs
    path = cached_export("model.safetensors")            # made on first use, then reused

The graph advances B sequences by one token each. RWKV-7:

    inputs   tokens (B,) int64, att_x_prev (L, B, C), att_kv (L, B, H, N, N), ffn_x_prev (L, B, C)
    outputs  logits (B, V), new_att_x_prev, new_att_kv, new_ffn_x_prev (shaped as the inputs)

RWKV-4 (models.rwkv4's state; A = n_att, the time-mixing width):

    inputs   tokens (B,) int64, att_x_prev (L, B, C), aa, bb, pp (L, B, A), ffn_x_prev (L, B, C)
    outputs  logits (B, V), new_att_x_prev, new_aa, new_bb, new_pp, new_ffn_x_prev

B is dynamic; everything is float32. It is written node by node from the weights
(no tracing), in opset 17, the newest DirectML runs: GroupNorm is spelled out as
Reshape / ReduceMean / Sub / Mul / Sqrt / Div (opset 18's GroupNormalization is
never used), LayerNorm is opset 17's LayerNormalization, and the state update is
the plain step of models/wkv7.py, or for RWKV-4 the max-tracking WKV step of
models.rwkv4.wkv4_step (numerator and denominator kept divided by e^pp, so nothing
overflows; w = max(-exp(time_decay), MIN_DECAY) is computed here, once).
metadata_props carry what an engine needs (architecture, n_layer, n_embd,
vocab_size, format, and head_size for RWKV-7 or n_att for RWKV-4), so running an
exported file takes ONNX Runtime and numpy only; exporting takes torch and onnx,
imported only here and only when an export runs.

Cached files live in platformdirs' user_cache_dir("ai-writer-studio")/onnx/ (or
$AI_WRITER_ONNX_CACHE), named by the sha256 of the model file's bytes and this
exporter's FORMAT, so a changed model file or a changed exporter gets a new file.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np

from ai_writer.models.file_digest import file_sha256

FORMAT = "rwkv-step-2"  # changes whenever a graph does: cached files of another format are rebuilt
# Formats of earlier versions whose files still run, with the architectures they were written for:
# "rwkv7-step-1" is the RWKV-7 graph of this version under its old name (RWKV-4 was added in "rwkv-step-2").
READABLE_FORMATS = {FORMAT: ("rwkv7", "rwkv4"), "rwkv7-step-1": ("rwkv7",)}
OPSET = 17
IR_VERSION = 8  # opset 17's IR; lets older ONNX Runtime builds (onnxruntime-directml 1.17+) open the file
ARCHITECTURES = ("rwkv7", "rwkv4")  # what exports (and so what the onnx backend runs)
ARCHITECTURE_NAMES = {"rwkv7": "RWKV-7", "rwkv4": "RWKV-4"}
INPUTS = ("tokens", "att_x_prev", "att_kv", "ffn_x_prev")  # RWKV-7's
OUTPUTS = ("logits", "new_att_x_prev", "new_att_kv", "new_ffn_x_prev")
INPUTS4 = ("tokens", "att_x_prev", "aa", "bb", "pp", "ffn_x_prev")  # RWKV-4's
OUTPUTS4 = ("logits", "new_att_x_prev", "new_aa", "new_bb", "new_pp", "new_ffn_x_prev")
STEP_IO = {"rwkv7": (INPUTS, OUTPUTS), "rwkv4": (INPUTS4, OUTPUTS4)}
CACHE_ENV = "AI_WRITER_ONNX_CACHE"
APP_NAME = "ai-writer-studio"

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default
GROUP_NORM_EPS = 64e-5  # models.rwkv7.GROUP_NORM_EPS
DECAY_SCALE = math.exp(-0.5)  # models.rwkv7.DECAY_SCALE
NORMALIZE_EPS = 1e-12  # F.normalize's default
MIN_DECAY = -1e4  # models.rwkv4.MIN_DECAY: the floor of w = -exp(time_decay)
MAX_PROTO_BYTES = 2_000_000_000  # one protobuf file holds less than 2 GiB

exports = 0  # how many graphs this process has exported (tests read it)


class ExportError(ValueError):
    """A model that cannot be exported; one line naming the file and the problem."""


# -- the cache ------------------------------------------------------------------------


def default_cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP_NAME)) / "onnx"


def cache_path(model_path, cache_dir=None, sha256: str | None = None) -> Path:
    """Where the export of this model file is cached: keyed by its bytes and the export format."""
    sha256 = sha256 or file_sha256(model_path)
    key = hashlib.sha256(f"{FORMAT}\n{sha256}".encode()).hexdigest()[:32]
    return Path(cache_dir or default_cache_dir()) / f"{Path(model_path).stem}-{key}.onnx"


# -- export -----------------------------------------------------------------------------


def export_onnx(model_path, out_path, sha256: str | None = None) -> dict[str, str]:
    """Write the step graph of the RWKV-7 or RWKV-4 in `model_path` to `out_path`; returns its metadata.

    The file appears whole or not at all (written beside it, then renamed).
    ExportError (one line) for a model file that cannot be read or is of another architecture.
    """
    global exports
    architecture, weights = read_step_weights(model_path)
    sha256 = sha256 or file_sha256(model_path)
    model = step_graph(weights, source_sha256=sha256, source_name=Path(model_path).name, architecture=architecture)
    data = model.SerializeToString()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, out_path)
    finally:
        partial.unlink(missing_ok=True)
    exports += 1
    return {p.key: p.value for p in model.metadata_props}


def read_step_weights(model_path) -> tuple[str, dict[str, np.ndarray]]:
    """(architecture, float32 weights) of an RWKV-7 or RWKV-4 model file, checked against the architecture."""
    import torch

    from ai_writer.models.checkpoint import ModelFileError, _first_line, detect_architecture, read_weights

    try:
        weights = read_weights(model_path)
    except ModelFileError as exc:
        raise ExportError(str(exc)) from None
    arch = detect_architecture(weights)
    if arch not in ARCHITECTURES:
        raise ExportError(f"{model_path}: only RWKV-7 and RWKV-4 models export to ONNX (this one: {arch})")
    if arch == "rwkv4":
        from ai_writer.models.rwkv4 import RWKV4 as model_class, RWKV4Config as config_class
    else:
        from ai_writer.models.rwkv7 import RWKV7 as model_class, RWKV7Config as config_class
    try:
        with torch.device("meta"):
            model_class(config_class.from_state_dict(weights)).load_state_dict(weights, strict=True, assign=True)
    except (KeyError, ValueError, RuntimeError, IndexError) as exc:
        raise ExportError(f"{model_path}: {ARCHITECTURE_NAMES[arch]} weights with missing or misshapen tensors "
                          f"({_first_line(exc)})") from None
    return arch, {name: t.detach().to(torch.float32).cpu().contiguous().numpy() for name, t in weights.items()}


def read_rwkv7_weights(model_path) -> dict[str, np.ndarray]:
    """The float32 weights of an RWKV-7 model file (ExportError for any other architecture)."""
    arch, weights = read_step_weights(model_path)
    if arch != "rwkv7":
        raise ExportError(f"{model_path}: not an RWKV-7 model (this one: {arch})")
    return weights


def weights_architecture(weights) -> str:
    """'rwkv7' or 'rwkv4' from the key names of exportable weights (as models.checkpoint tells them)."""
    if "blocks.0.att.r_k" in weights:
        return "rwkv7"
    if "blocks.0.att.time_decay" in weights:
        return "rwkv4"
    raise ExportError("weights of neither an RWKV-7 nor an RWKV-4")


class _Graph:
    """Nodes and initializers, each value named once."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self._count, self._consts = [], [], 0, {}

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def weight(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.array(array, order="C"), name))  # 0-d stays 0-d
        return name

    def const(self, values, dtype=np.float32) -> str:
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            self._consts[key] = self.weight(f"const_{len(self._consts)}", array)
        return self._consts[key]

    def op(self, op_type: str, *inputs: str, name: str | None = None, **attrs) -> str:
        out = name or self.name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=f"n_{out}", **attrs))
        return out

    # The few ops both step graphs are written in.
    def mm(self, x: str, w: str) -> str:
        return self.op("MatMul", x, w)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def layer_norm(self, x: str, weight: str, bias: str) -> str:
        return self.op("LayerNormalization", x, weight, bias, axis=-1, epsilon=LAYER_NORM_EPS)


def step_graph(weights: dict[str, np.ndarray], source_sha256: str = "", source_name: str = "",
               architecture: str | None = None):
    """The onnx.ModelProto of one recurrent step of this RWKV-7 or RWKV-4 (weights as float32 numpy)."""
    architecture = architecture or weights_architecture(weights)
    if architecture == "rwkv4":
        return rwkv4_step_graph(weights, source_sha256, source_name)
    return rwkv7_step_graph(weights, source_sha256, source_name)


def _check_size(weights, source_name: str, skip: str | None = None) -> None:
    nbytes = sum(a.nbytes for k, a in weights.items() if not (skip and k.startswith(skip)))
    if nbytes > MAX_PROTO_BYTES:
        raise ExportError(f"{source_name}: {nbytes / 2**30:.1f} GiB of float32 weights; one ONNX file holds under 2 GiB")


def _finish(g: "_Graph", architecture: str, batch_shapes, vocab_size: int, props: dict[str, str]):
    """The checked ModelProto of graph g: its inputs and outputs (the state's shapes, 'batch' for B) and metadata."""
    from onnx import TensorProto, checker, helper

    names_in, names_out = STEP_IO[architecture]
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch"])] + [
        helper.make_tensor_value_info(name, f32, shape) for name, shape in zip(names_in[1:], batch_shapes)
    ]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", vocab_size])] + [
        helper.make_tensor_value_info(name, f32, shape) for name, shape in zip(names_out[1:], batch_shapes)
    ]
    graph = helper.make_graph(g.nodes, f"{architecture}_step", inputs, outputs, initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=APP_NAME)
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"format": FORMAT, "architecture": architecture, **props, "dtype": "float32"})
    checker.check_model(model)
    return model


def rwkv7_step_graph(weights: dict[str, np.ndarray], source_sha256: str = "", source_name: str = ""):
    """The onnx.ModelProto of one recurrent step of this RWKV-7 (weights as float32 numpy)."""
    vocab_size, C = weights["emb.weight"].shape
    H, N = weights["blocks.0.att.r_k"].shape
    L = 1 + max(int(k.split(".")[1]) for k in weights if k.startswith("blocks."))
    _check_size(weights, source_name, skip="blocks.0.att.v")

    g = _Graph()
    vec = lambda key: g.weight(key, weights[key].reshape(-1))  # noqa: E731  (1, 1, C) -> (C,)
    mat = lambda key: g.weight(key, weights[key])  # noqa: E731  used as stored: x @ W
    lin = lambda key: g.weight(key + ".T", weights[key].T)  # noqa: E731  nn.Linear (out, in): x @ W.T

    def layer_norm(x, prefix):
        return g.layer_norm(x, vec(prefix + ".weight"), vec(prefix + ".bias"))

    mm, mul, add, sub = g.mm, g.mul, g.add, g.sub

    def sigmoid(x):
        return g.op("Sigmoid", x)

    def heads(x):  # (B, C) -> (B, H, N)
        return g.op("Reshape", x, g.const([-1, H, N], np.int64))

    def rows(x):  # (B, H, N) -> (B, C)
        return g.op("Reshape", x, g.const([-1, C], np.int64))

    def unsqueeze(x, axis):
        return g.op("Unsqueeze", x, g.const([axis], np.int64))

    one = g.const(1.0)
    x = g.op("Gather", g.weight("emb.weight", weights["emb.weight"]), "tokens", axis=0)  # (B, C)
    x = layer_norm(x, "blocks.0.ln0")
    v_first = None
    new_att_x, new_kv, new_ffn_x = [], [], []
    for i in range(L):
        p = f"blocks.{i}."
        index = g.const(i, np.int64)
        att_prev = g.op("Gather", "att_x_prev", index, axis=0)  # (B, C)
        kv = g.op("Gather", "att_kv", index, axis=0)  # (B, H, N, N)
        ffn_prev = g.op("Gather", "ffn_x_prev", index, axis=0)

        # -- time mixing
        xa = layer_norm(x, p + "ln1")
        new_att_x.append(xa)
        xx = sub(att_prev, xa)
        xr, xw, xk, xv, xi, xg = (add(xa, mul(xx, vec(p + f"att.x_{m}"))) for m in "rwkvag")
        r = mm(xr, lin(p + "att.receptance.weight"))
        decay = sigmoid(add(vec(p + "att.w0"), mm(g.op("Tanh", mm(xw, mat(p + "att.w1"))), mat(p + "att.w2"))))
        w = g.op("Exp", mul(decay, g.const(-DECAY_SCALE)))
        k = mm(xk, lin(p + "att.key.weight"))
        v = mm(xv, lin(p + "att.value.weight"))
        iclr = sigmoid(add(vec(p + "att.a0"), mm(mm(xi, mat(p + "att.a1")), mat(p + "att.a2"))))
        gate = mm(sigmoid(mm(xg, mat(p + "att.g1"))), mat(p + "att.g2"))

        kk = heads(mul(k, vec(p + "att.k_k")))  # F.normalize over each head: x / max(|x|, eps)
        norm = g.op("Max", g.op("ReduceL2", kk, axes=[-1], keepdims=1), g.const(NORMALIZE_EPS))
        kk = g.op("Div", kk, norm)  # (B, H, N)
        k = mul(k, add(one, mul(sub(iclr, one), vec(p + "att.k_a"))))
        if i == 0:
            v_first = v
        else:
            mix = sigmoid(add(vec(p + "att.v0"), mm(mm(xv, mat(p + "att.v1")), mat(p + "att.v2"))))
            v = add(v, mul(sub(v_first, v), mix))

        # -- the state update (models.wkv7.wkv7_step), [value, key] order
        r_h, w_h, k_h, v_h = heads(r), heads(w), heads(k), heads(v)
        a_h = g.op("Neg", kk)
        b_h = mul(kk, heads(iclr))
        sa = mm(kv, unsqueeze(a_h, 3))  # (B, H, N, 1)
        kv = add(add(mul(kv, unsqueeze(w_h, 2)), mul(sa, unsqueeze(b_h, 2))), mul(unsqueeze(v_h, 3), unsqueeze(k_h, 2)))
        new_kv.append(kv)
        o = g.op("Reshape", mm(kv, unsqueeze(r_h, 3)), g.const([-1, H, N], np.int64))  # (B, H, N)

        # -- GroupNorm(H groups) spelled out: no GroupNormalization op before opset 18
        centred = sub(o, g.op("ReduceMean", o, axes=[-1], keepdims=1))
        var = g.op("ReduceMean", mul(centred, centred), axes=[-1], keepdims=1)
        o = g.op("Div", centred, g.op("Sqrt", add(var, g.const(GROUP_NORM_EPS))))
        o = add(mul(rows(o), vec(p + "att.ln_x.weight")), vec(p + "att.ln_x.bias"))
        rk = heads(mul(mul(r, k), g.weight(p + "att.r_k.flat", weights[p + "att.r_k"].reshape(-1))))
        bonus = mul(g.op("ReduceSum", rk, g.const([-1], np.int64), keepdims=1), v_h)  # (B, H, N)
        o = add(o, rows(bonus))
        x = add(x, mm(mul(o, gate), lin(p + "att.output.weight")))

        # -- channel mixing
        xf = layer_norm(x, p + "ln2")
        new_ffn_x.append(xf)
        shifted = add(xf, mul(sub(ffn_prev, xf), vec(p + "ffn.x_k")))
        hidden = g.op("Relu", mm(shifted, lin(p + "ffn.key.weight")))
        x = add(x, mm(mul(hidden, hidden), lin(p + "ffn.value.weight")))

    g.op("MatMul", layer_norm(x, "ln_out"), lin("head.weight"), name="logits")
    for out, parts in zip(OUTPUTS[1:], (new_att_x, new_kv, new_ffn_x)):
        g.op("Concat", *(unsqueeze(part, 0) for part in parts), axis=0, name=out)

    batch = "batch"
    state_shapes = ([L, batch, C], [L, batch, H, N, N], [L, batch, C])
    return _finish(g, "rwkv7", state_shapes, vocab_size, {
        "n_layer": str(L),
        "n_embd": str(C),
        "head_size": str(N),
        "n_head": str(H),
        "vocab_size": str(vocab_size),
        "source_sha256": source_sha256,
        "source_name": source_name,
    })


def rwkv4_step_graph(weights: dict[str, np.ndarray], source_sha256: str = "", source_name: str = ""):
    """The onnx.ModelProto of one recurrent step of this RWKV-4 (weights as float32 numpy).

    The equations of models.rwkv4 at T == 1 (the rwkv package's att_one / ffn_one):
    token shift from the state, sigmoid receptance, the max-tracking WKV step on
    (aa, bb, pp), squared-ReLU channel mixing gated by its own receptance.
    """
    vocab_size, C = weights["emb.weight"].shape
    A = weights["blocks.0.att.key.weight"].shape[0]
    F = weights["blocks.0.ffn.key.weight"].shape[0]
    L = 1 + max(int(k.split(".")[1]) for k in weights if k.startswith("blocks."))
    _check_size(weights, source_name)

    g = _Graph()
    vec = lambda key: g.weight(key, weights[key].reshape(-1))  # noqa: E731  (1, 1, C) -> (C,)
    lin = lambda key: g.weight(key + ".T", weights[key].T)  # noqa: E731  nn.Linear (out, in): x @ W.T

    def mix(x, shifted, key):  # x * m + shifted * (1 - m), 1 - m computed here in float32 as torch does
        m = weights[key].reshape(-1).astype(np.float32)
        return add(mul(x, vec(key)), mul(shifted, g.weight(key + ".one_minus", np.float32(1.0) - m)))

    def layer_norm(x, prefix):
        return g.layer_norm(x, vec(prefix + ".weight"), vec(prefix + ".bias"))

    mm, mul, add, sub = g.mm, g.mul, g.add, g.sub

    def unsqueeze(x, axis):
        return g.op("Unsqueeze", x, g.const([axis], np.int64))

    x = g.op("Gather", g.weight("emb.weight", weights["emb.weight"]), "tokens", axis=0)  # (B, C)
    x = layer_norm(x, "blocks.0.ln0")
    new = {name: [] for name in OUTPUTS4[1:]}
    for i in range(L):
        p = f"blocks.{i}."
        index = g.const(i, np.int64)
        att_prev, aa, bb, pp, ffn_prev = (g.op("Gather", name, index, axis=0) for name in INPUTS4[1:])

        # -- time mixing
        xa = layer_norm(x, p + "ln1")
        new["new_att_x_prev"].append(xa)
        kx, vx, rx = (mix(xa, att_prev, p + f"att.time_mix_{m}") for m in "kvr")
        r = g.op("Sigmoid", mm(rx, lin(p + "att.receptance.weight")))
        k = mm(kx, lin(p + "att.key.weight"))  # (B, A)
        v = mm(vx, lin(p + "att.value.weight"))
        w = g.weight(p + "att.w", _rwkv4_decay(weights[p + "att.time_decay"]))  # (A,), <= 0
        u = vec(p + "att.time_first")

        # -- the WKV step (models.rwkv4.wkv4_step): sums kept divided by e^pp
        ww = add(u, k)
        top = g.op("Max", pp, ww)
        e1 = g.op("Exp", sub(pp, top))
        e2 = g.op("Exp", sub(ww, top))
        out = g.op("Div", add(mul(e1, aa), mul(e2, v)), add(mul(e1, bb), e2))
        ww = add(w, pp)
        top = g.op("Max", ww, k)
        e1 = g.op("Exp", sub(ww, top))
        e2 = g.op("Exp", sub(k, top))
        new["new_aa"].append(add(mul(e1, aa), mul(e2, v)))
        new["new_bb"].append(add(mul(e1, bb), e2))
        new["new_pp"].append(top)
        x = add(x, mm(mul(r, out), lin(p + "att.output.weight")))

        # -- channel mixing
        xf = layer_norm(x, p + "ln2")
        new["new_ffn_x_prev"].append(xf)
        kx, rx = (mix(xf, ffn_prev, p + f"ffn.time_mix_{m}") for m in "kr")
        r = g.op("Sigmoid", mm(rx, lin(p + "ffn.receptance.weight")))
        hidden = g.op("Relu", mm(kx, lin(p + "ffn.key.weight")))
        x = add(x, mul(r, mm(mul(hidden, hidden), lin(p + "ffn.value.weight"))))

    g.op("MatMul", layer_norm(x, "ln_out"), lin("head.weight"), name="logits")
    for out, parts in new.items():
        g.op("Concat", *(unsqueeze(part, 0) for part in parts), axis=0, name=out)

    batch = "batch"
    state_shapes = ([L, batch, C], [L, batch, A], [L, batch, A], [L, batch, A], [L, batch, C])
    return _finish(g, "rwkv4", state_shapes, vocab_size, {
        "n_layer": str(L),
        "n_embd": str(C),
        "n_att": str(A),
        "n_ffn": str(F),
        "vocab_size": str(vocab_size),
        "source_sha256": source_sha256,
        "source_name": source_name,
    })


def _rwkv4_decay(time_decay: np.ndarray) -> np.ndarray:
    """w = max(-exp(time_decay), MIN_DECAY) in float32, computed by torch as models.rwkv4.TimeMix does."""
    import torch

    w = (-torch.exp(torch.from_numpy(np.ascontiguousarray(time_decay, np.float32)))).clamp(min=MIN_DECAY)
    return w.numpy().reshape(-1)


def cached_export(model_path, cache_dir=None) -> tuple[Path, str]:
    """(path of this model's cached export, made now if missing; the model file's sha256).

    Only makes the file; whoever opens it checks it (see backends.engines.onnx_engine) and
    calls export_onnx again over a stale or corrupt one.
    """
    sha256 = file_sha256(model_path)
    path = cache_path(model_path, cache_dir, sha256)
    if not path.is_file():
        export_onnx(model_path, path, sha256=sha256)
    return path, sha256
