"""Recovery copies: the author's text kept in the data folder when the manuscript cannot be saved.

One copy per manuscript, replaced each time: DATA/recovery/STEM-HASH.txt, where HASH is a
short hash of the manuscript's absolute path (two chapter1.txt in different folders get
different copies). Always UTF-8, whatever the manuscript's own encoding, since the copy must
hold any text (even a lone surrogate, written as-is); written atomically. At open the app
asks `newer_recovery_copy` whether one should be offered back; after a successful save it
calls `discard_recovery_copy`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ai_writer.studio.data.atomic_save import save_atomic, write_bytes_atomic
from ai_writer.studio.data.data_folder import user_data_path
from ai_writer.studio.data.encodings import decode_manuscript
from ai_writer.studio.data.fingerprint import DiskFingerprint
from ai_writer.studio.data.manuscript_errors import ManuscriptEncodingError, ManuscriptError
from ai_writer.studio.i18n import tr


def _untitled(path) -> bool:
    return path is None or str(path) in ("", "-")


def recovery_path_for(path, base_dir=None) -> Path:
    """Where the recovery copy of the manuscript at `path` lives (None: an unnamed text)."""
    folder = user_data_path(base_dir) / "recovery"
    if _untitled(path):
        return folder / "untitled.txt"
    absolute = os.path.realpath(os.path.expanduser(str(path)))
    digest = hashlib.sha1(absolute.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()[:10]
    return folder / f"{Path(absolute).stem or 'untitled'}-{digest}.txt"


def save_recovery_copy(path, text: str, base_dir=None) -> Path:
    """Save `text` as the recovery copy of `path` (replacing the last one) and return its path.

    For when the manuscript itself cannot be saved; raises ManuscriptError only if the
    recovery copy cannot be written either.
    """
    copy = recovery_path_for(path, base_dir)
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).rstrip(".").lower()
        raise ManuscriptError(tr("mf_recovery_failed", name=copy.parent, reason=reason), reason) from None
    try:
        try:
            save_atomic(copy, text)
        except ManuscriptEncodingError:  # a lone surrogate: keep it as its bytes rather than lose the text
            write_bytes_atomic(copy, text.encode("utf-8", "surrogatepass"))
    except ManuscriptError as exc:
        raise ManuscriptError(tr("mf_recovery_failed", name=copy, reason=exc.reason), exc.reason) from None
    return copy


def _mtime_ns(path, reference) -> int | None:
    """The manuscript's mtime in ns: from a fingerprint, an int (ns), a float (s), or the file now."""
    if isinstance(reference, DiskFingerprint):
        return reference.mtime_ns if reference.size >= 0 else None
    if isinstance(reference, int):
        return reference
    if isinstance(reference, float):
        return int(reference * 1e9)
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def newer_recovery_copy(path, fingerprint_or_mtime=None, base_dir=None) -> Path | None:
    """The recovery copy of `path` if there is one, newer than the manuscript and with other text.

    fingerprint_or_mtime: the manuscript's DiskFingerprint as loaded, its st_mtime_ns (int) or
    st_mtime (float); None stats the file now. A missing manuscript makes any copy newer.
    """
    copy = recovery_path_for(path, base_dir)
    try:
        copy_mtime = os.stat(copy).st_mtime_ns
        saved = copy.read_bytes().decode("utf-8", "surrogatepass")
    except (OSError, UnicodeDecodeError):
        return None
    if _untitled(path):
        return copy
    reference = _mtime_ns(path, fingerprint_or_mtime)
    if reference is not None and copy_mtime <= reference:
        return None
    try:
        text = decode_manuscript(Path(path).read_bytes(), str(path)).text
    except (OSError, ManuscriptError):
        return copy  # gone or unreadable: the copy is the version the author can still get
    return None if saved in (text, text.replace("\r\n", "\n")) else copy


def discard_recovery_copy(path, base_dir=None) -> bool:
    """Delete the recovery copy of `path` (after a successful save). True if one was deleted."""
    try:
        recovery_path_for(path, base_dir).unlink()
        return True
    except OSError:
        return False
