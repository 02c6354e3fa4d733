"""ONNX Runtime's execution providers: their names, the device each runs, and which are installed here."""

from __future__ import annotations

from ai_writer.backends.errors import LoadError

DML = "DmlExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_ORDER = (DML, CUDA, CPU)  # what device "auto" tries on the onnx backend
DEVICE_PROVIDERS = {"directml": DML, "dml": DML, "cuda": CUDA, "cpu": CPU}
PROVIDER_DEVICES = {DML: "directml", CUDA: "cuda", CPU: "cpu"}


def available_providers() -> list[str]:
    """ONNX Runtime's execution providers here ([] without onnxruntime), asked at each call."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def split_device(device: str) -> tuple[str, int | None]:
    """'cuda:1' -> ('cuda', 1), 'cpu' -> ('cpu', None); LoadError for an index that is not a number."""
    name, _, index = device.partition(":")
    if index:
        if not index.isdigit():
            raise LoadError(f"unknown device {device!r} (a GPU index is a number: cuda:0, directml:1)")
        return name, int(index)
    return name, None


def providers_for(device: str) -> tuple[list[str], list[dict]]:
    """The provider list and options for an onnx device: the chosen one, then CPU for what it lacks."""
    name, index = split_device(device)
    provider = DEVICE_PROVIDERS[name]
    options = {"device_id": index} if index is not None else {}
    if provider == CPU:
        return [CPU], [{}]
    return [provider, CPU], [options, {}]
