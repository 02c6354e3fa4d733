"""Reading model files safely and telling the architecture from the weights.

`.safetensors` is preferred. `.pth` is read only with torch.load(weights_only=True),
whose unpickler admits tensors and plain containers and refuses everything else, so
a pickle that would run code is rejected before any of it runs. Every problem is a
ModelFileError whose message names the file.
"""

from __future__ import annotations

import pickle
import re
from contextlib import contextmanager
from pathlib import Path

import torch

from ai_writer.models.file_keys import detect_architecture, embedding_rows, peek_keys  # noqa: F401 - imported from here
from ai_writer.models.model_errors import ModelFileError  # noqa: F401 - raised here, imported from here by callers
from ai_writer.models.rwkv7 import RWKV7Config
from ai_writer.models.rwkv7_config import LAYER0_VALUE_MIX
from ai_writer.models.rwkv7_fused import FusedRWKV7, prepare_for_inference




def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors stored in a model file, by name."""
    path = Path(path)
    from ai_writer.models.aiwriter_v2 import read_bin_folder
    from ai_writer.models.file_keys import is_bin_folder

    if (path / "config.json").is_file():
        from ai_writer.models.hf_layout import is_hf_folder, read_hf_weights

        if is_hf_folder(path):
            return read_hf_weights(path)
    if path.suffix.lower() == ".gguf":
        from ai_writer.models.gguf_file import read_gguf_weights

        return read_gguf_weights(path)
    if path.exists() and is_bin_folder(path):
        try:
            return read_bin_folder(path)
        except (ValueError, OSError) as exc:
            raise ModelFileError(str(exc)) from None
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if path.suffix == ".safetensors":
        weights = _read_safetensors(path)
    elif path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
        weights = _read_pickled(path)
    else:
        raise ModelFileError(f"{path}: unknown model file type {path.suffix!r} (expected .safetensors or .pth)")
    if not weights or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise ModelFileError(f"{path}: holds no named tensors (expected a state dict)")
    return weights


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Views of the file mapped into memory (models.safetensors_map), or read by the safetensors package where the
    file cannot be mapped as it is (and for its wording of every error)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ai_writer.models.safetensors_map import map_safetensors

    try:
        mapped = map_safetensors(path)
    except (OSError, ValueError):
        mapped = None
    if mapped:
        return mapped
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None


# The original AI-Writer saved whole model objects. Their classes are never imported: each name
# below unpickles as an inert stand-in that only holds the module's attributes (its tensors).
WHOLE_MODULE_CLASSES = (
    "src.model.GPT", "src.model.GPTConfig", "src.model.Block", "src.model.RWKV_TimeMix",
    "src.model.RWKV_ChannelMix", "torch.nn.modules.sparse.Embedding", "torch.nn.modules.normalization.LayerNorm",
    "torch.nn.modules.linear.Linear", "torch.nn.modules.container.Sequential",
    "torch.nn.modules.container.ModuleList", "torch.nn.modules.padding.ZeroPad2d",
)


class InertModule:
    """Stands in for a pickled module class: holds its attributes, has no behaviour."""


def _module_tensors(module, prefix: str = "", found: dict | None = None) -> dict[str, torch.Tensor]:
    """The state dict of an unpickled module tree (its `_parameters` and `_buffers`, recursively)."""
    found = {} if found is None else found
    attributes = vars(module)
    non_persistent = attributes.get("_non_persistent_buffers_set") or set()
    for table in ("_parameters", "_buffers"):
        for name, tensor in (attributes.get(table) or {}).items():
            if isinstance(tensor, torch.Tensor) and name not in non_persistent:
                found[prefix + name] = tensor.detach()
    for name, child in (attributes.get("_modules") or {}).items():
        if isinstance(child, InertModule):
            _module_tensors(child, f"{prefix}{name}.", found)
    return found


# torch.save stores a .pth zip's members uncompressed, so they hold about as much as the file. A zip
# that unpacks to far more (a zip bomb: a few MB of deflated zeros claiming GiB) is refused unread:
# torch.load would allocate and inflate every member in full first.
ZIP_MAGIC = b"PK\x03\x04"
MAX_UNPACKED_RATIO = 8  # unpacked bytes per byte on disk, beyond the slack
UNPACKED_SLACK = 16 * 2**20
MAX_MODEL_BYTES = 64 * 2**30  # above the largest model this program could run (14B parameters in fp32: 56 GB)


def _check_zip_sizes(path: Path) -> None:
    """Refuse a zip .pth whose members claim more than the file could hold, from its central directory."""
    import zipfile

    try:
        with path.open("rb") as f:
            if f.read(4) != ZIP_MAGIC:
                return  # the legacy (pre-zip) format, or not a .pth at all: torch.load says which
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({exc.strerror or _first_line(exc)})") from None
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise ModelFileError(f"{path}: not a readable .pth file, truncated or corrupt ({_first_line(exc)})") from None
    on_disk = path.stat().st_size
    unpacked = sum(member.file_size for member in members)
    if unpacked > min(MAX_MODEL_BYTES, on_disk * MAX_UNPACKED_RATIO + UNPACKED_SLACK):
        largest = max(members, key=lambda member: member.file_size)
        raise ModelFileError(
            f"{path}: refused: its zip unpacks to {_size(unpacked)} from {_size(on_disk)} on disk "
            f"({largest.filename}: {_size(largest.file_size)}), a zip bomb or a damaged file; nothing was unpacked"
        )


def _size(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def _read_pickled(path: Path) -> dict[str, torch.Tensor]:
    _check_zip_sizes(path)
    try:
        with torch.serialization.safe_globals([(InertModule, name) for name in WHOLE_MODULE_CLASSES]):
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        wanted = _unsupported_global(exc)
        if wanted:
            raise ModelFileError(
                f"{path}: refused: its pickle asks for {wanted}, not just tensors; "
                "nothing in it was run (convert a trusted file to .safetensors)"
            ) from None
        raise ModelFileError(f"{path}: not a readable .pth file ({_first_line(exc)})") from None
    except (RuntimeError, OSError, EOFError, ValueError, AttributeError, KeyError, IndexError) as exc:
        raise ModelFileError(f"{path}: not a readable .pth file, truncated or corrupt ({_first_line(exc)})") from None
    if isinstance(loaded, InertModule):
        loaded = _module_tensors(loaded)
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ModelFileError(f"{path}: holds a {type(loaded).__name__}, not a state dict")
    return loaded


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "WeightsUnpickler error:" in text:  # skip torch's advice to turn the check off
        text = text.split("WeightsUnpickler error:", 1)[1].strip() or text
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):  # "Error(s) in loading state_dict for RWKV7:" + the detail
        return f"{lines[0]} {lines[1]}"[:200]
    return lines[0][:200]


def _unsupported_global(exc: BaseException) -> str:
    """The Python name a refused pickle wanted ('posix.system'), or ''."""
    match = re.search(r"unsupported GLOBAL ([\w.]+)", str(exc), flags=re.IGNORECASE)
    if match:
        return match.group(1)
    match = re.search(r"Unsupported (?:global|class)\W*(?:GLOBAL\s+)?([\w.]+)", str(exc), flags=re.IGNORECASE)
    return match.group(1) if match else ""


SUPPORTED = ("rwkv7", "rwkv6", "rwkv5", "rwkv4", "aiwriter-v1", "aiwriter-v2")
NAMES = {
    "rwkv7": "RWKV-7", "rwkv6": "RWKV-6", "rwkv5": "RWKV-5", "rwkv4": "RWKV-4",
    "aiwriter-v1": "AI-Writer v1", "aiwriter-v2": "AI-Writer v2 RNN",
}


def _architecture_classes(arch: str):
    """(model class, config class, prepare function) of a supported architecture."""
    if arch == "rwkv4":
        from ai_writer.models import rwkv4

        return rwkv4.RWKV4, rwkv4.RWKV4Config, rwkv4.prepare_for_inference
    if arch == "rwkv6":
        from ai_writer.models import rwkv6

        return rwkv6.RWKV6, rwkv6.RWKV6Config, rwkv6.prepare_for_inference
    if arch == "rwkv5":
        from ai_writer.models import rwkv5

        return rwkv5.RWKV5, rwkv5.RWKV5Config, rwkv5.prepare_for_inference
    if arch == "aiwriter-v1":
        from ai_writer.models import aiwriter_v1

        return aiwriter_v1.AIWriterV1, aiwriter_v1.AIWriterV1Config, _freeze
    if arch == "aiwriter-v2":
        from ai_writer.models import aiwriter_v2

        return aiwriter_v2.AIWriterV2, aiwriter_v2.AIWriterV2Config, _freeze
    return FusedRWKV7, RWKV7Config, prepare_for_inference


def _freeze(model):
    model.eval().requires_grad_(False)
    return model


def build_model(weights: dict[str, torch.Tensor], path: str | Path, dtype=torch.float32, device="cpu",
                script: bool = True):
    """An eval-mode model holding these weights; ModelFileError if they don't fit one."""
    arch = detect_architecture(weights)
    if arch == "unknown":
        sample = ", ".join(sorted(weights)[:4])
        raise ModelFileError(f"{path}: unknown model architecture (keys such as {sample})")
    if arch not in SUPPORTED:
        raise ModelFileError(f"{path}: {arch} models are not supported yet (supported: {', '.join(SUPPORTED)})")
    model_class, config_class, prepare = _architecture_classes(arch)
    # a state-tuning file merged into the model: its start, not a weight (backends.loading reads it as the start)
    weights = {k: v for k, v in weights.items() if not re.fullmatch(r"blocks\.\d+\.att\.time_state", k)}
    name = NAMES[arch]
    if arch == "aiwriter-v1":  # the causal masks are fixed lower triangles, not parameters
        weights = {k: v for k, v in weights.items() if k != "copy_mask" and not k.endswith(".attn.mask")}
    if arch == "aiwriter-v2":  # time_mix (1, 1, C), time_decay (C, 1) and the like, as vectors
        weights = {k: v.reshape(-1) if ".time_" in k else v for k, v in weights.items()}
    if arch == "rwkv7":
        weights = with_layer0_value_mix(weights)
    try:
        config = config_class.from_state_dict(weights)
        with torch.device("meta"), _without_random_init():
            model = model_class(config)
        model.load_state_dict({k: v.to(dtype) for k, v in weights.items()}, strict=True, assign=True)
    except (KeyError, ValueError, RuntimeError, IndexError) as exc:
        raise ModelFileError(f"{path}: {name} weights with missing or misshapen tensors ({_first_line(exc)})") from None
    # script=False (RWKV-7, RWKV-4): eager modules, which take an engine's scan (FusedRWKV7.use_sequence_wkv)
    return prepare(model.to(device)) if script else prepare(model.to(device), script=False)


def with_layer0_value_mix(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """RWKV-7 weights with blocks.0.att.v0/v1/v2, zeros where the file lacks them: layer 0 never reads them
    (its values are v_first), and some released files leave them out (BlinkDL's demo loads with strict=False)."""
    names = LAYER0_VALUE_MIX
    if all(name in weights for name in names):
        return weights
    C = weights["emb.weight"].shape[1]
    width = weights["blocks.1.att.v1"].shape[1] if "blocks.1.att.v1" in weights else RWKV7Config(1, C, 1).d_value
    like = weights["emb.weight"]
    shapes = {names[0]: (1, 1, C), names[1]: (C, width), names[2]: (width, C)}
    return {**weights, **{n: torch.zeros(shapes[n], dtype=like.dtype) for n in names if n not in weights}}


@contextmanager
def _without_random_init():
    """Module constructors skip torch.nn.init's fills: every weight is assigned from the file right after.
    (On meta tensors the first random fill imports torch._dynamo: about a second of every model load.)"""
    names = [n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    try:
        for n in names:
            setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, fill in saved.items():
            setattr(torch.nn.init, n, fill)


def peek_pickled_keys(path: Path) -> list[str] | None:
    """The tensor names of a .pth memory-mapped where its format allows (models.file_keys.peek_keys for any file);
    None if unreadable."""
    try:
        _check_zip_sizes(path)  # even memory-mapped, torch.load inflates data.pkl in full
        with torch.serialization.safe_globals([(InertModule, name) for name in WHOLE_MODULE_CLASSES]):
            try:
                loaded = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # a legacy (non-zip) .pth cannot be memory-mapped
                loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # whatever is wrong with the file, loading it reports it
        return None
    if isinstance(loaded, InertModule):
        loaded = _module_tensors(loaded)
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    return [k for k in loaded if isinstance(k, str)] if isinstance(loaded, dict) else None


def pickled_embedding_rows(path: Path) -> int | None:
    """The token rows (emb.weight) of a .pth, memory-mapped; None if unknown (models.file_keys.embedding_rows)."""
    try:
        _check_zip_sizes(path)
        loaded = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
            loaded = loaded["state_dict"]
        emb = loaded.get("emb.weight") if isinstance(loaded, dict) else None
        return int(emb.shape[0]) if isinstance(emb, torch.Tensor) and emb.dim() == 2 else None
    except Exception:  # whatever is wrong with the file, load_model reports it
        return None


def load_model(path: str | Path, dtype=torch.float32, device="cpu", script: bool = True):
    """Read, check and build the model stored at `path` (script=False: no TorchScript, see build_model)."""
    return build_model(read_weights(path), path, dtype=dtype, device=device, script=script)


def save_safetensors(model_or_weights, path: str | Path, dtype=None) -> None:
    """Write a state dict (or a model's) as .safetensors, optionally cast to `dtype`."""
    from safetensors.torch import save_file

    weights = model_or_weights.state_dict() if hasattr(model_or_weights, "state_dict") else model_or_weights
    save_file({k: (v.to(dtype) if dtype else v).contiguous() for k, v in weights.items()}, str(path))
