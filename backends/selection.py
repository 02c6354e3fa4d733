"""Which backend and device run a model: the `backend` and `device` settings, resolved.

    choice = select_backend("auto", "auto", "model.safetensors")
    choice.backend, choice.device, choice.reason    # e.g. ("torch", "cpu", "auto: no CUDA GPU and no DirectML; ...")

`auto` takes, in order: torch on a CUDA GPU (torch.cuda.is_available()), DirectML
through ONNX Runtime (DmlExecutionProvider available) for a model whose
architecture exports to ONNX (RWKV-7 and RWKV-4, told from the key names: a
safetensors header or a .pth's keys, no weights loaded), else torch on the CPU,
saying why when DirectML was there but the model cannot use it. On the CPU
(device "auto" or "cpu") it takes "torch+native" (backends.hybrid_engine with
backends.native_step) for an RWKV-7 where a C compiler is found: torch reads
prompts in chunks (with their state update scanned in C) and a step compiled for
this CPU decodes, 4 candidates in little more time than one. Else "torch+onnx" for
a model that exports (RWKV-7, RWKV-4) when ONNX Runtime is installed: torch reads
prompts in chunks of up to 256 tokens at once (the exported ONNX graph is the
single-token step and would read them token by token, about 12x slower at
12 x 768 on a 2-core machine), and ONNX Runtime's step decodes 1 to 4 candidates
faster than torch's (bench/bench_engine.py). Otherwise torch on the CPU, saying
why. Both pairs can be asked for by name. backend "torch" is always torch alone.
An exported .onnx file always runs on ONNX Runtime.

A choice that cannot be met (backend "directml" without DirectML, device "cuda"
without a CUDA GPU) is a LoadError with one line saying what is available.

ONNX Runtime's providers are read through `onnxruntime.get_available_providers()`
at each call (tests replace just that function); torch is imported only when a
torch path is possible, never for an .onnx file on the onnx backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from backends import LoadError
from backends.onnx_export import ARCHITECTURES as ONNX_ARCHITECTURES

DML = "DmlExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_ORDER = (DML, CUDA, CPU)  # what "auto" tries on the onnx backend
DEVICE_PROVIDERS = {"directml": DML, "dml": DML, "cuda": CUDA, "cpu": CPU}
PROVIDER_DEVICES = {DML: "directml", CUDA: "cuda", CPU: "cpu"}

HYBRID = "torch+onnx"  # backends.hybrid_engine
HYBRID_REASON = ("prompts on torch, decoding on ONNX Runtime; torch reads prompts in chunks, ONNX Runtime's "
                 "step decodes 1-4 candidates faster than torch's on a CPU")
NATIVE = "torch+native"  # backends.hybrid_engine with backends.native_step
NATIVE_REASON = ("prompts on torch, decoding on a step compiled for this CPU; torch reads prompts in chunks, the "
                 "native step decodes 4 candidates in little more time than one")
CPU_PAIRS = (HYBRID, NATIVE)  # backends that read prompts with torch and decode with a step of their own


class Selection(NamedTuple):
    backend: str  # "torch" | "onnx" | "torch+onnx" | "torch+native"
    device: str  # torch: "cpu" | "cuda" | "cuda:N"; onnx: "directml" | "cuda" | "cpu" (":N" for a GPU index)
    reason: str  # why, for the status line


def available_providers() -> list[str]:
    """ONNX Runtime's execution providers here ([] without onnxruntime)."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def torch_cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def model_architecture(model_path) -> str | None:
    """The architecture of a model file from its key names ('rwkv7', 'rwkv4', ...), or None if unreadable.
    No tensor is read (models.checkpoint.peek_keys)."""
    from models.checkpoint import detect_architecture, peek_keys

    keys = peek_keys(model_path)
    return detect_architecture(dict.fromkeys(keys)) if keys else None


def describe_available(providers, cuda: bool | None) -> str:
    """One clause: what torch (when cuda is not None) and ONNX Runtime can use here."""
    parts = []
    if cuda is not None:
        parts.append(("cpu, cuda" if cuda else "cpu") + " for torch")
    parts.append("ONNX Runtime providers " + (", ".join(providers) if providers else "none (onnxruntime is not installed)"))
    return "available: " + "; ".join(parts)


def _split_device(device: str) -> tuple[str, int | None]:
    name, _, index = device.partition(":")
    if index:
        if not index.isdigit():
            raise LoadError(f"unknown device {device!r} (a GPU index is a number: cuda:0, directml:1)")
        return name, int(index)
    return name, None


def providers_for(device: str) -> tuple[list[str], list[dict]]:
    """The provider list and options for an onnx device: the chosen one, then CPU for what it lacks."""
    name, index = _split_device(device)
    provider = DEVICE_PROVIDERS[name]
    options = {"device_id": index} if index is not None else {}
    if provider == CPU:
        return [CPU], [{}]
    return [provider, CPU], [options, {}]


def select_onnx_device(device: str, providers=None, asked: str = "onnx") -> Selection:
    providers = available_providers() if providers is None else list(providers)
    if not providers:
        raise LoadError("the onnx backend needs ONNX Runtime: pip install onnxruntime "
                        "(onnxruntime-directml on Windows)")
    name, _ = _split_device(device)
    if name == "auto":
        for provider in PROVIDER_ORDER:
            if provider in providers:
                return Selection("onnx", PROVIDER_DEVICES[provider],
                                 f"{asked} backend: the first of DirectML, CUDA, CPU that ONNX Runtime offers")
        raise LoadError(f"ONNX Runtime offers none of {', '.join(PROVIDER_ORDER)} ({describe_available(providers, None)})")
    if name not in DEVICE_PROVIDERS:
        raise LoadError(f"unknown device {device!r} for the onnx backend (available: auto, "
                        + ", ".join(PROVIDER_DEVICES[p] for p in PROVIDER_ORDER if p in providers) + ")")
    provider = DEVICE_PROVIDERS[name]
    if provider not in providers:
        raise LoadError(f"device {device!r} asked for, but ONNX Runtime has no {provider} "
                        f"({describe_available(providers, None)})")
    device = "directml" + device[len(name):] if provider == DML else device  # "dml:1" -> "directml:1"
    return Selection("onnx", device, f"{asked} backend, device {device} asked for")


def select_backend(backend: str = "auto", device: str = "auto", model_path=None, providers=None,
                   cuda_available: bool | None = None) -> Selection:
    """(backend, device, reason) for these settings and this model file, or LoadError (one line).

    providers / cuda_available stand in for ONNX Runtime's and torch's answers when given.
    """
    device = (device or "auto").strip().lower()
    is_onnx_file = model_path is not None and Path(model_path).suffix.lower() == ".onnx"

    def cuda() -> bool:
        nonlocal cuda_available
        if cuda_available is None:
            cuda_available = torch_cuda_available()
        return cuda_available

    def provider_list():
        nonlocal providers
        if providers is None:
            providers = available_providers()
        return providers

    if backend == "directml":
        name, _ = _split_device(device)
        if name not in ("auto", "directml", "dml"):
            raise LoadError(f"the directml backend runs on DirectML, not on device {device!r} (use device \"auto\")")
        if DML not in provider_list():
            raise LoadError(f"backend 'directml' asked for, but ONNX Runtime has no {DML} "
                            f"(DirectML needs Windows and the onnxruntime-directml package; "
                            f"{describe_available(provider_list(), None if is_onnx_file else cuda())})")
        return select_onnx_device("directml" + device[len(name):], provider_list(), asked="directml")
    if backend == "onnx":
        return select_onnx_device(device, provider_list())
    if is_onnx_file:
        if backend == "torch":
            raise LoadError(f"{model_path}: an exported ONNX file runs on the onnx or directml backend, not torch")
        return select_onnx_device(device, provider_list(), asked="auto (an .onnx file)")

    name, _ = _split_device(device)
    if backend in CPU_PAIRS:
        return _cpu_pair(backend, name, device, model_path, provider_list)
    if backend == "auto" and name == "cpu":
        return _cpu_choice(model_path, provider_list(), "auto, device cpu asked for")
    if backend == "torch" or name in ("cpu", "cuda"):
        if name == "cuda" and not cuda():
            raise LoadError(f"device {device!r} asked for, but torch sees no CUDA GPU "
                            f"({describe_available(provider_list(), False)})")
        if name not in ("auto", "cpu", "cuda"):
            raise LoadError(f"unknown device {device!r} for the torch backend (available: auto, cpu"
                            + (", cuda" if cuda() else "") + ")")
        if name == "auto":
            return Selection("torch", "cuda" if cuda() else "cpu",
                             "torch backend; " + ("torch sees a CUDA GPU" if cuda() else "no CUDA GPU, so the CPU"))
        return Selection("torch", device, f"{backend} backend, device {device} asked for")
    if backend != "auto":
        raise LoadError(f"unknown backend {backend!r} (available: auto, torch, onnx, directml, {', '.join(CPU_PAIRS)})")
    if name in ("directml", "dml"):
        return select_backend("directml", device, model_path, providers, cuda_available)
    if name != "auto":
        raise LoadError(f"unknown device {device!r} (available: auto, cpu, cuda, directml)")
    if cuda():
        return Selection("torch", "cuda", "auto: torch sees a CUDA GPU")
    if DML in provider_list():
        arch = model_architecture(model_path) if model_path is not None else None
        if model_path is None or arch in ONNX_ARCHITECTURES:
            return Selection("onnx", "directml", "auto: no CUDA GPU for torch; DirectML GPU through ONNX Runtime")
        why = f"this {arch} model" if arch and arch != "unknown" else "a model of unrecognised architecture"
        return Selection("torch", "cpu", f"auto: no CUDA GPU; DirectML is there, but the onnx backend runs "
                                         f"{' and '.join(ONNX_ARCHITECTURES)} only, not {why}; so torch on the CPU")
    return _cpu_choice(model_path, provider_list(), "auto: no CUDA GPU and no DirectML")


def native_possible() -> bool:
    """Whether the native step may be built here: not turned off, and a C compiler on PATH."""
    from backends import native_step

    return native_step.enabled() and native_step.find_compiler() is not None


def _cpu_pair(backend, name, device, model_path, provider_list) -> Selection:
    """torch+onnx or torch+native, asked for by name: on the CPU, for a model whose step they run."""
    if name not in ("auto", "cpu"):
        raise LoadError(f"the {backend} backend runs on the CPU, not on device {device!r} (use device \"cpu\")")
    arch = model_architecture(model_path) if model_path is not None else None
    runs = ("rwkv7",) if backend == NATIVE else ONNX_ARCHITECTURES
    if model_path is not None and arch not in runs:
        what = f"this {arch} model" if arch and arch != "unknown" else "a model of unrecognised architecture"
        raise LoadError(f"the {backend} backend runs {' and '.join(runs)} only, not {what}")
    if backend == HYBRID and CPU not in provider_list():
        raise LoadError("the torch+onnx backend needs ONNX Runtime: pip install onnxruntime")
    return Selection(backend, "cpu", f"{backend} backend asked for")


def _cpu_choice(model_path, providers, why: str) -> Selection:
    """On the CPU: torch+native for an RWKV-7 where a C compiler builds its step, else torch+onnx for a
    model that exports when ONNX Runtime runs on the CPU here, else torch."""
    arch = model_architecture(model_path) if model_path is not None else None
    if arch == "rwkv7" and native_possible():
        return Selection(NATIVE, "cpu", f"{why}: {NATIVE_REASON}")
    if CPU not in providers:
        return Selection("torch", "cpu", f"{why}; torch on the CPU (with onnxruntime installed, ONNX Runtime "
                                         "would run the decode steps, faster)")
    if model_path is not None and arch not in ONNX_ARCHITECTURES:
        what = f"this {arch} model" if arch and arch != "unknown" else "a model of unrecognised architecture"
        return Selection("torch", "cpu", f"{why}; torch on the CPU: the ONNX step runs "
                                         f"{' and '.join(ONNX_ARCHITECTURES)} only, not {what}")
    return Selection(HYBRID, "cpu", f"{why}: {HYBRID_REASON}")
