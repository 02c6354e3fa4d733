"""Whether a model about to be opened fits in memory beside the one that is running.

Switching models loads the new one while the old keeps writing; when both would not fit, the studio asks
to release the old one first (backends cannot share weights between two models)."""

from __future__ import annotations

import os
from pathlib import Path

# Bytes per weight while it runs. On the CPU pair a narrow type's C step holds its matrices and embedding alone
# (torch's float32 tensors are freed as they are converted, backends/engines/native_step.py; on a GPU the model is
# in that type); int8 also holds a float32 scale and an int32 sum per row, which the headroom covers.
DTYPE_BYTES = {"": 4, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
HEADROOM = 1.2  # activations, the state cache and the allocator's slack on top of the weights


def needed_bytes(model) -> int | None:
    """About what opening the [model] section `model` takes in memory, or None if unknown."""
    from ai_writer.models.model_file import weight_elements

    elements = weight_elements(model.path) if model.path else None
    if elements is None:
        return None
    return int(elements * DTYPE_BYTES.get(model.dtype, 4) * HEADROOM)


def available_bytes() -> int | None:
    """Memory the system can give without swapping (Linux MemAvailable, else free pages), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def too_tight(model, free: int | None = None) -> tuple[int, int] | None:
    """(needed, available) when the model would not fit in what is free now, else None."""
    need = needed_bytes(model)
    free = available_bytes() if free is None else free
    if need is None or free is None or need <= free:
        return None
    return need, free
