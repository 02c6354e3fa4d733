"""Which backend and device run a model: the `backend` and `device` settings, resolved.

    choice = select_backend("auto", "auto", "model.safetensors")
    choice.backend, choice.device, choice.auto      # e.g. (Backend.TORCH_NATIVE, "cpu", True)
    choice.reason.why, choice.reason.text()         # Why.CPU_NATIVE, "auto: no CUDA GPU and no DirectML: ..."

`auto` takes, in order: torch on a CUDA GPU, DirectML through ONNX Runtime for a
model whose architecture exports to ONNX (RWKV-7 and RWKV-4, told from the key
names, no weights loaded), else the CPU. On the CPU (device "auto" or "cpu") it
takes "torch+native" (backends.engines.hybrid_engine with native_step) for an
RWKV-7 where a C compiler is found: torch reads prompts in chunks and a step
compiled for this CPU decodes. Else "torch+onnx" for a model that exports when
ONNX Runtime is installed: torch reads prompts in chunks (the exported graph is the
single-token step and would read them token by token) and ONNX Runtime's step
decodes. Otherwise torch on the CPU, saying why. Both pairs can be asked for by
name; backend "torch" is always torch alone. An exported .onnx file always runs on
ONNX Runtime.

A choice that cannot be met (backend "directml" without DirectML, device "cuda"
without a CUDA GPU) is a LoadError with one line saying what is available.

The choice is a function of the settings and of what a Probe answers about this
machine and the model file. A Probe asks each question once, when the choice first
needs it: ONNX Runtime's providers through onnxruntime.get_available_providers()
(tests replace just that function), and torch only when a torch path is possible,
never for an .onnx file on the onnx backend.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, replace
from enum import Enum
from functools import cached_property
from pathlib import Path

from ai_writer.backends.engines import native_step
from ai_writer.backends.engines.names import CPU_PAIRS, NAMES, Backend
from ai_writer.backends.engines.providers import (CPU, DEVICE_PROVIDERS, DML, PROVIDER_DEVICES, PROVIDER_ORDER,
                                        available_providers, split_device)
from ai_writer.backends.errors import LoadError
from ai_writer.backends.files.onnx_export import ARCHITECTURES as ONNX_ARCHITECTURES

ONNX_STEP_TEXT = ("prompts on torch, decoding on ONNX Runtime; torch reads prompts in chunks, ONNX Runtime's "
                  "step decodes 1-4 candidates faster than torch's on a CPU")
# The `dtype` setting's values ("" = float32 on a CPU, float16 on CUDA). float16, bfloat16 and int8 on the CPU
# pair torch+native are the C step's weight types (backends.engines.native_step); int8 runs there only.
DTYPES = ("float32", "float16", "bfloat16", "int8")
NATIVE_ONLY_DTYPES = ("int8",)  # on torch+native or native
NARROW_DTYPES = ("float16", "bfloat16", "int8")  # auto runs these of an RWKV-7 .safetensors file on native
NATIVE_ALONE_TEXT = ("prompts and decoding on a step compiled for this CPU, without torch (dtype {dtype}, a "
                     ".safetensors file); it decodes 4 candidates in little more time than one")
NATIVE_ALONE_SMALL_TEXT = ("prompts and decoding on a step compiled for this CPU, without torch (a float32 .safetensors "
                           "file of {size} MB: torch's import would cost more than it saves); it decodes 4 candidates "
                           "in little more time than one")
# auto runs a float32 RWKV-7 .safetensors file at most this big on native, not torch+native. Measured on the bundled
# model (16 MB): load 0.16-0.19 against 1.14-1.37 s (torch's import), peak RSS 84 against 357-371 MB, a 4-row step
# 1.14-1.23 against 2.32-2.71 ms, prompts 0.87x. At 0.1B (729 MB) torch reads prompts 1.4x faster and the step's copy
# into blocks makes the load slower: torch+native stays there.
SMALL_FLOAT32_BYTES = 64 * 2**20
NATIVE_STEP_TEXT = ("prompts on torch, decoding on a step compiled for this CPU; torch reads prompts in chunks, the "
                    "native step decodes 4 candidates in little more time than one")


class Why(Enum):
    """What decided the choice; Reason's other fields are its particulars."""

    ASKED = "asked"  # backend (and device) named in the settings
    ONNX_FIRST_PROVIDER = "onnx first provider"  # onnx, device auto: DirectML, CUDA, CPU in that order
    TORCH_SEES_CUDA = "torch sees cuda"  # backend torch, device auto
    TORCH_NO_CUDA = "torch no cuda"
    AUTO_CUDA = "auto cuda"
    AUTO_DIRECTML = "auto directml"
    DIRECTML_CANNOT_RUN = "directml cannot run"  # DirectML is there, the model does not export
    CPU_NATIVE = "cpu native"  # the CPU choices of auto (cpu_asked: device "cpu" was set)
    CPU_NATIVE_ALONE = "cpu native alone"  # auto's torch+native for a narrow dtype of a .safetensors file: native
    CPU_ONNX_STEP = "cpu onnx step"
    CPU_NO_ONNXRUNTIME = "cpu no onnxruntime"
    CPU_ONNX_CANNOT_RUN = "cpu onnx cannot run"  # onnxruntime is there, the model does not export
    NATIVE_FAILED = "native failed"  # the C step did not build: error
    FLOAT32_ONLY = "float32 only"  # a pair was chosen, but dtype asks for other than float32


@dataclass(frozen=True)
class Reason:
    """Why a backend was chosen, as data; text() says it in one line for the status details."""

    why: Why
    asked: Backend = Backend.AUTO  # the backend setting
    device: str = ""  # the device setting, where it was named
    onnx_file: bool = False  # the model is an exported .onnx file
    cpu_asked: bool = False  # auto on the CPU because device "cpu" was set (else: no GPU found)
    architecture: str | None = None  # the model's, where it decided
    error: str = ""  # NATIVE_FAILED: why the C step did not build
    dtype: str = ""  # FLOAT32_ONLY; or the torch+native step's weight type other than float32
    file_mb: int = 0  # CPU_NATIVE_ALONE for a small float32 file: its size (dtype stays "")

    def text(self) -> str:
        text = self._text()
        if self.dtype and self.why not in (Why.FLOAT32_ONLY, Why.CPU_NATIVE_ALONE):
            text += f"; the decode step's weights in {self.dtype}"
        return text

    def _text(self) -> str:
        why = self.why
        asked = f"{self.asked} (an .onnx file)" if self.onnx_file else str(self.asked)
        start = "auto, device cpu asked for" if self.cpu_asked else "auto: no CUDA GPU and no DirectML"
        if why == Why.ASKED:
            return f"{asked} backend, device {self.device} asked for" if self.device else f"{asked} backend asked for"
        if why == Why.ONNX_FIRST_PROVIDER:
            return f"{asked} backend: the first of DirectML, CUDA, CPU that ONNX Runtime offers"
        if why == Why.TORCH_SEES_CUDA:
            return "torch backend; torch sees a CUDA GPU"
        if why == Why.TORCH_NO_CUDA:
            return "torch backend; no CUDA GPU, so the CPU"
        if why == Why.AUTO_CUDA:
            return "auto: torch sees a CUDA GPU"
        if why == Why.AUTO_DIRECTML:
            return "auto: no CUDA GPU for torch; DirectML GPU through ONNX Runtime"
        if why == Why.DIRECTML_CANNOT_RUN:
            return (f"auto: no CUDA GPU; DirectML is there, but the onnx backend runs {' and '.join(ONNX_ARCHITECTURES)} "
                    f"only, not {_this_model(self.architecture)}; so torch on the CPU")
        if why == Why.CPU_NATIVE:
            return f"{start}: {NATIVE_STEP_TEXT}"
        if why == Why.CPU_NATIVE_ALONE:
            if self.file_mb:
                return f"{start}: {NATIVE_ALONE_SMALL_TEXT.format(size=self.file_mb)}"
            return f"{start}: {NATIVE_ALONE_TEXT.format(dtype=self.dtype)}"
        if why == Why.CPU_ONNX_STEP:
            return f"{start}: {ONNX_STEP_TEXT}"
        if why == Why.CPU_NO_ONNXRUNTIME:
            return f"{start}; torch on the CPU (with onnxruntime installed, ONNX Runtime would run the decode steps, faster)"
        if why == Why.CPU_ONNX_CANNOT_RUN:
            return (f"{start}; torch on the CPU: the ONNX step runs {' and '.join(ONNX_ARCHITECTURES)} only, "
                    f"not {_this_model(self.architecture)}")
        if why == Why.NATIVE_FAILED:
            return f"{start}: {self.error}; so ONNX Runtime decodes"
        return f"auto: torch on the CPU, as dtype {self.dtype} asks (ONNX Runtime's decode step is float32 only)"


@dataclass(frozen=True)
class Selection:
    backend: Backend  # TORCH, ONNX, TORCH_NATIVE, TORCH_ONNX or NATIVE (never AUTO or DIRECTML)
    device: str  # torch: "cpu" | "cuda" | "cuda:N"; onnx: "directml" | "cuda" | "cpu" (":N" for a GPU index)
    auto: bool  # the backend setting was "auto": a choice that cannot be met may fall back
    reason: Reason


def without_native(choice: Selection, error: str) -> Selection:
    """auto's torch+native whose C step did not build (error): torch+onnx instead, saying why."""
    return Selection(Backend.TORCH_ONNX, "cpu", choice.auto, replace(choice.reason, why=Why.NATIVE_FAILED, error=error))


def float32_only(choice: Selection, dtype: str) -> Selection:
    """torch+onnx for a dtype other than float32: torch alone on the CPU (ONNX Runtime's step is float32 only)."""
    return Selection(Backend.TORCH, "cpu", choice.auto, replace(choice.reason, why=Why.FLOAT32_ONLY, dtype=dtype))


def native_alone(choice: Selection, dtype: str, file_mb: int = 0) -> Selection:
    """auto's torch+native for a narrow dtype of a .safetensors file, or for a small float32 one (file_mb: its size):
    the native backend (no torch) instead."""
    reason = replace(choice.reason, why=Why.CPU_NATIVE_ALONE, dtype=dtype, file_mb=file_mb)
    return Selection(Backend.NATIVE, "cpu", choice.auto, reason)


def with_dtype(choice: Selection, dtype: str) -> Selection:
    """torch+native whose C step holds its weights in dtype (other than float32): said in the reason."""
    return replace(choice, reason=replace(choice.reason, dtype=dtype))


def _this_model(architecture: str | None) -> str:
    return f"this {architecture} model" if architecture and architecture != "unknown" else "a model of unrecognised architecture"


def torch_cuda_available() -> bool:
    """Whether torch sees a CUDA (or ROCm) GPU. A torch built for the CPU alone is told by its files, without
    importing it (~190 MB and a second or more: the native backend runs without it)."""
    if "torch" not in sys.modules and not torch_has_gpu_build():
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


GPU_LIBRARIES = ("torch_cuda", "torch_hip", "c10_cuda", "c10_hip")  # in torch/lib of a CUDA or ROCm build


def torch_has_gpu_build() -> bool:
    """Whether the installed torch (if any) holds CUDA or ROCm libraries: False for a CPU build or none."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    for folder in spec.submodule_search_locations:
        try:
            names = os.listdir(Path(folder) / "lib")
        except OSError:
            return True  # a layout not known here: ask torch itself
        if any(name.split(".")[0].removeprefix("lib") in GPU_LIBRARIES for name in names):
            return True
    return False


def model_architecture(model_path) -> str | None:
    """The architecture of a model file or folder from its key names or header ('rwkv7', 'rwkv4', ...), or None
    if unreadable. No tensor is read (models.model_file.identify)."""
    from ai_writer.models.model_errors import ModelFileError
    from ai_writer.models.model_file import identify

    try:
        facts = identify(model_path)
    except (ModelFileError, OSError):
        return None
    return None if facts.format == "onnx" else facts.architecture


class Probe:
    """What the choice asks of this machine and the model file, each answered once on first question;
    an answer given here (tests) is taken as it is."""

    def __init__(self, model_path=None, providers=None, cuda: bool | None = None, native: bool | None = None):
        self.model_path = model_path
        given = {"providers": None if providers is None else tuple(providers), "cuda": cuda, "native": native}
        self.__dict__.update({name: value for name, value in given.items() if value is not None})

    @cached_property
    def providers(self) -> tuple[str, ...]:
        return tuple(available_providers())

    @cached_property
    def cuda(self) -> bool:
        return torch_cuda_available()

    @cached_property
    def native(self) -> bool:
        return native_step.native_possible()

    @cached_property
    def architecture(self) -> str | None:
        return model_architecture(self.model_path) if self.model_path is not None else None


def describe_available(providers, cuda: bool | None) -> str:
    """One clause: what torch (when cuda is not None) and ONNX Runtime can use here."""
    parts = []
    if cuda is not None:
        parts.append(("cpu, cuda" if cuda else "cpu") + " for torch")
    parts.append("ONNX Runtime providers " + (", ".join(providers) if providers else "none (onnxruntime is not installed)"))
    return "available: " + "; ".join(parts)


def select_backend(backend: str = Backend.AUTO, device: str = "auto", model_path=None, providers=None,
                   cuda_available: bool | None = None, probe: Probe | None = None) -> Selection:
    """The Selection for these settings and this model file, or LoadError (one line).

    providers / cuda_available stand in for ONNX Runtime's and torch's answers when given (or a whole probe).
    """
    try:
        asked = Backend(backend)
    except ValueError:
        raise LoadError(f"unknown backend {backend!r} (available: {', '.join(NAMES)})") from None
    probe = probe or Probe(model_path, providers, cuda_available)
    device = (device or "auto").strip().lower()
    is_onnx_file = model_path is not None and Path(model_path).suffix.lower() == ".onnx"
    auto = asked == Backend.AUTO

    if asked == Backend.DIRECTML:
        name, _ = split_device(device)
        if name not in ("auto", "directml", "dml"):
            raise LoadError(f"the directml backend runs on DirectML, not on device {device!r} (use device \"auto\")")
        if DML not in probe.providers:
            raise LoadError(f"backend 'directml' asked for, but ONNX Runtime has no {DML} "
                            f"(DirectML needs Windows and the onnxruntime-directml package; "
                            f"{describe_available(probe.providers, None if is_onnx_file else probe.cuda)})")
        return _onnx_device("directml" + device[len(name):], probe.providers, asked, False)
    if asked == Backend.ONNX:
        return _onnx_device(device, probe.providers, asked, False)
    if is_onnx_file:
        if asked == Backend.TORCH:
            raise LoadError(f"{model_path}: an exported ONNX file runs on the onnx or directml backend, not torch")
        return _onnx_device(device, probe.providers, asked, True)
    name, _ = split_device(device)
    if asked in (*CPU_PAIRS, Backend.NATIVE):
        return _cpu_pair(asked, name, device, model_path, probe)
    if auto and name == "cpu":
        return _cpu_choice(model_path, probe, cpu_asked=True)
    if asked == Backend.TORCH or name in ("cpu", "cuda"):
        if name == "cuda" and not probe.cuda:
            raise LoadError(f"device {device!r} asked for, but torch sees no CUDA GPU "
                            f"({describe_available(probe.providers, False)})")
        if name not in ("auto", "cpu", "cuda"):
            raise LoadError(f"unknown device {device!r} for the torch backend (available: auto, cpu"
                            + (", cuda" if probe.cuda else "") + ")")
        if name == "auto":
            return Selection(Backend.TORCH, "cuda" if probe.cuda else "cpu", auto,
                             Reason(Why.TORCH_SEES_CUDA if probe.cuda else Why.TORCH_NO_CUDA, asked))
        return Selection(Backend.TORCH, device, auto, Reason(Why.ASKED, asked, device))
    if name in ("directml", "dml"):
        return replace(select_backend(Backend.DIRECTML, device, model_path, probe=probe), auto=True)
    if name != "auto":
        raise LoadError(f"unknown device {device!r} (available: auto, cpu, cuda, directml)")
    if probe.cuda:
        return Selection(Backend.TORCH, "cuda", True, Reason(Why.AUTO_CUDA))
    if DML in probe.providers:
        if model_path is None or probe.architecture in ONNX_ARCHITECTURES:
            return Selection(Backend.ONNX, "directml", True, Reason(Why.AUTO_DIRECTML))
        return Selection(Backend.TORCH, "cpu", True, Reason(Why.DIRECTML_CANNOT_RUN, architecture=probe.architecture))
    return _cpu_choice(model_path, probe, cpu_asked=False)


def _onnx_device(device: str, providers, asked: Backend, onnx_file: bool) -> Selection:
    """The onnx backend on this device setting: the first provider ONNX Runtime offers for "auto"."""
    if not providers:
        raise LoadError("the onnx backend needs ONNX Runtime: pip install onnxruntime "
                        "(onnxruntime-directml on Windows)")
    name, _ = split_device(device)
    auto = asked == Backend.AUTO
    if name == "auto":
        for provider in PROVIDER_ORDER:
            if provider in providers:
                return Selection(Backend.ONNX, PROVIDER_DEVICES[provider], auto,
                                 Reason(Why.ONNX_FIRST_PROVIDER, asked, onnx_file=onnx_file))
        raise LoadError(f"ONNX Runtime offers none of {', '.join(PROVIDER_ORDER)} ({describe_available(providers, None)})")
    if name not in DEVICE_PROVIDERS:
        raise LoadError(f"unknown device {device!r} for the onnx backend (available: auto, "
                        + ", ".join(PROVIDER_DEVICES[p] for p in PROVIDER_ORDER if p in providers) + ")")
    provider = DEVICE_PROVIDERS[name]
    if provider not in providers:
        raise LoadError(f"device {device!r} asked for, but ONNX Runtime has no {provider} "
                        f"({describe_available(providers, None)})")
    device = "directml" + device[len(name):] if provider == DML else device  # "dml:1" -> "directml:1"
    return Selection(Backend.ONNX, device, auto, Reason(Why.ASKED, asked, device, onnx_file=onnx_file))


def _cpu_pair(backend: Backend, name: str, device: str, model_path, probe: Probe) -> Selection:
    """torch+onnx, torch+native or native, asked for by name: on the CPU, for a model whose step they run."""
    if name not in ("auto", "cpu"):
        raise LoadError(f"the {backend} backend runs on the CPU, not on device {device!r} (use device \"cpu\")")
    runs = ONNX_ARCHITECTURES if backend == Backend.TORCH_ONNX else ("rwkv7",)
    if model_path is not None and probe.architecture not in runs:
        unread = " (its header or key names could not be read)" if probe.architecture is None else ""
        raise LoadError(f"{model_path}: the {backend} backend runs {' and '.join(runs)} only, not "
                        f"{_this_model(probe.architecture)}{unread}")
    if backend == Backend.TORCH_ONNX and CPU not in probe.providers:
        raise LoadError("the torch+onnx backend needs ONNX Runtime: pip install onnxruntime")
    return Selection(backend, "cpu", False, Reason(Why.ASKED, backend))


def _cpu_choice(model_path, probe: Probe, cpu_asked: bool) -> Selection:
    """auto on the CPU: torch+native for an RWKV-7 where a C compiler builds its step, else torch+onnx for a
    model that exports when ONNX Runtime runs on the CPU here, else torch."""
    def chosen(backend: Backend, why: Why, **details) -> Selection:
        return Selection(backend, "cpu", True, Reason(why, cpu_asked=cpu_asked, **details))

    if probe.architecture == "rwkv7" and probe.native:
        return chosen(Backend.TORCH_NATIVE, Why.CPU_NATIVE)
    if CPU not in probe.providers:
        return chosen(Backend.TORCH, Why.CPU_NO_ONNXRUNTIME)
    if model_path is not None and probe.architecture not in ONNX_ARCHITECTURES:
        return chosen(Backend.TORCH, Why.CPU_ONNX_CANNOT_RUN, architecture=probe.architecture)
    return chosen(Backend.TORCH_ONNX, Why.CPU_ONNX_STEP)
