"""Prompt states on disk, so that reopening a long book does not read it all again.

    store = StateStore(None, model_path, max_bytes=1 << 30)   # None: the user's cache folder
    store.put(prefix_hash, n_tokens, state, logits)            # atomic; False if it could not write
    store.get(prefix_hash, n_tokens, like_state)               # (state, logits) or None

A file holds the state (and logits) after the first n_tokens ids of a prompt whose
prefix hash (backends.writing.prompt_cache.prefix_hashes) is given, for one model
file: folder/<model sha256 prefix>/<prefix hash>-<n_tokens>.npz. The model is known
by its file's sha256, hashed once and remembered in folder/models.json by resolved
path, size and mtime. A file's header (format, model hash, prefix hash, n_tokens,
shapes, dtypes) and a sha1 of its array bytes are checked on every read: a corrupt,
truncated or foreign file is deleted and is a miss, never trusted. Files are saved
without pickle and read with allow_pickle=False. Past max_bytes the least recently
used files go (a read touches its file's mtime). A write that fails (disk full, a
read-only folder) stops writes for this store and is noted once in `problem`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from ai_writer.backends.engines.state_rows import state_from_numpy, state_to_numpy
from ai_writer.models.file_digest import file_sha256

CACHE_ENV = "AI_WRITER_STATE_CACHE"  # overrides the default folder (the tests point it at a temporary one)
FORMAT = 1
MODEL_INDEX = "models.json"
MODEL_INDEX_MAX = 64  # model files remembered
STALE_TEMP_SECONDS = 600  # a temporary file this old was left by a write that never finished


def default_state_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ai-writer-studio")) / "states"


def _array_digest(arrays) -> str:
    digest = hashlib.sha1()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


class StateStore:
    def __init__(self, folder, model_path, max_bytes: int):
        self.folder = Path(folder) if folder is not None else default_state_dir()
        self.model_path = Path(model_path)
        self.max_bytes = int(max_bytes)
        self.problem = ""  # the first write failure, one line; writes stop after it
        self._model_hash: str | None = None
        self._lock = threading.Lock()

    def for_model(self, model_path) -> StateStore:
        """A store in the same folder, with the same bound, for another model file."""
        return StateStore(self.folder, model_path, self.max_bytes)

    # -- the model's hash ----------------------------------------------------------------

    def _model_key(self):
        resolved = self.model_path.resolve()
        stat = resolved.stat()
        return str(resolved), stat.st_size, stat.st_mtime_ns

    def _read_index(self) -> dict:
        try:
            index = json.loads((self.folder / MODEL_INDEX).read_text(encoding="utf-8"))
            return index if isinstance(index, dict) else {}
        except (OSError, ValueError):
            return {}

    def known_model_hash(self) -> str | None:
        """The model file's sha256 if it is known without reading the file (this store or the index), else None."""
        if self._model_hash is not None:
            return self._model_hash
        try:
            path, size, mtime_ns = self._model_key()
        except OSError:
            return None
        entry = self._read_index().get(path)
        if isinstance(entry, dict) and entry.get("size") == size and entry.get("mtime_ns") == mtime_ns:
            sha = entry.get("sha256")
            if isinstance(sha, str) and len(sha) == 64:
                self._model_hash = sha
        return self._model_hash

    @property
    def model_hash(self) -> str:
        """The model file's sha256, hashed once (then remembered in the folder's index)."""
        with self._lock:
            if self.known_model_hash() is None:
                path, size, mtime_ns = self._model_key()
                sha = file_sha256(path)
                index = self._read_index()
                index.pop(path, None)
                index[path] = {"size": size, "mtime_ns": mtime_ns, "sha256": sha}
                while len(index) > MODEL_INDEX_MAX:
                    index.pop(next(iter(index)))
                try:
                    self._write_atomic(self.folder / MODEL_INDEX, json.dumps(index, indent=1).encode())
                except OSError:
                    pass  # not remembered: hashed again next time
                self._model_hash = sha
            return self._model_hash

    # -- files ----------------------------------------------------------------------------

    def _model_dir(self, model_hash: str) -> Path:
        return self.folder / model_hash[:16]

    def path_for(self, prefix_hash: str, n_tokens: int, model_hash: str | None = None) -> Path:
        return self._model_dir(model_hash or self.model_hash) / f"{prefix_hash}-{int(n_tokens)}.npz"

    def has(self, prefix_hash: str, n_tokens: int, model_hash: str | None = None) -> bool:
        """A file is there (not checked: get() checks)."""
        return self.path_for(prefix_hash, n_tokens, model_hash).is_file()

    def lengths(self, model_hash: str | None = None) -> set[int]:
        """The n_tokens of this model's files."""
        found = set()
        try:
            names = os.listdir(self._model_dir(model_hash or self.model_hash))
        except OSError:
            return found
        for name in names:
            stem, _, count = name.removesuffix(".npz").rpartition("-")
            if name.endswith(".npz") and stem and count.isdigit():
                found.add(int(count))
        return found

    def get(self, prefix_hash: str, n_tokens: int, like_state):
        """(state in like_state's type, device and dtype; float32 logits) or None: missing, or not to be trusted
        (then the file is deleted)."""
        try:
            path = self.path_for(prefix_hash, n_tokens)
        except OSError:  # the model file went away: nothing can be checked
            return None
        if not path.is_file():
            return None
        loaded = self._load(path, prefix_hash, n_tokens, like_state)
        if loaded is None:
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # recently used
        except OSError:
            pass
        arrays, logits = loaded
        return state_from_numpy(like_state, arrays), logits

    def _load(self, path: Path, prefix_hash: str, n_tokens: int, like_state):
        """(arrays, logits) if the file is whole and is the state asked for, in like_state's shapes; else None."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode("utf-8"))
                arrays = [data[f"a{i}"] for i in range(len(header["shapes"]))]
                logits = data["logits"]
        except Exception:  # noqa: BLE001 - whatever is wrong with the file, it is not used
            return None
        wanted = [(list(a.shape), _is_floating(a)) for a in like_state]
        held = [(list(a.shape), a.dtype == np.float32) for a in arrays]
        if (
            header.get("format") != FORMAT
            or header.get("model") != self.model_hash
            or header.get("prefix") != prefix_hash
            or header.get("n_tokens") != n_tokens
            or header.get("shapes") != [shape for shape, _ in wanted]
            or held != wanted
            or not all(a.dtype == np.float32 or np.issubdtype(a.dtype, np.integer) for a in arrays)
            or logits.ndim != 1
            or logits.dtype != np.float32
            or header.get("sha1") != _array_digest([*arrays, logits])
        ):
            return None
        return arrays, logits

    def put(self, prefix_hash: str, n_tokens: int, state, logits) -> bool:
        """Write the state after n_tokens ids (atomically); False when it was not written."""
        if self.problem:
            return False
        try:
            arrays = state_to_numpy(state)
            logits = np.ascontiguousarray(logits, dtype=np.float32).reshape(-1)
            header = {
                "format": FORMAT, "model": self.model_hash, "prefix": prefix_hash, "n_tokens": int(n_tokens),
                "shapes": [list(a.shape) for a in arrays], "dtypes": [str(a.dtype) for a in arrays],
                "sha1": _array_digest([*arrays, logits]),
            }
            size = sum(a.nbytes for a in arrays) + logits.nbytes
            if size > self.max_bytes:
                return False
            buffer = io.BytesIO()
            np.savez(buffer, header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
                     logits=logits, **{f"a{i}": a for i, a in enumerate(arrays)})
            path = self.path_for(prefix_hash, n_tokens)
            self._write_atomic(path, buffer.getbuffer())
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.problem = f"states are not kept on disk in {self.folder}: {reason}".splitlines()[0]
            return False
        self.evict()
        return True

    def _write_atomic(self, path: Path, data) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(temp, "wb") as f:
                f.write(data)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def evict(self) -> None:
        """Delete the least recently used files (all models') until they take at most max_bytes."""
        files, now = [], time.time()
        for path in self.folder.glob("*/*"):
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.name.endswith(".tmp"):
                if now - stat.st_mtime > STALE_TEMP_SECONDS:
                    path.unlink(missing_ok=True)
                continue
            if path.name.endswith(".npz"):
                files.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= self.max_bytes:
                break
            try:
                path.unlink()
                total -= size
            except OSError:
                pass

    def size(self) -> int:
        """Bytes of state files in the folder (all models)."""
        return sum(p.stat().st_size for p in self.folder.glob("*/*.npz"))


def _is_floating(array) -> bool:
    if hasattr(array, "is_floating_point"):
        return bool(array.is_floating_point())
    return bool(np.issubdtype(np.asarray(array).dtype, np.floating))
