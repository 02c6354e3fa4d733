"""Reading and saving manuscripts without ever losing the author's text (the public face of studio.data's files).

Reading (`load_manuscript`): UTF-8, UTF-16, GBK/GB18030 or Big5, detected as
studio/data/encodings.py says; binary files and other encodings are refused with one line
naming the file (and the line). With for_editing=True a file the editor could not give back
byte for byte (stray line breaks, mixed CRLF/LF, bytes that would encode differently) is
refused too, naming the line. The Manuscript carries its encoding, newline style, BOM and a
DiskFingerprint, so a save can write the same bytes back and notice changes by others.

Saving (`save_atomic`, studio/data/atomic_save.py): encoded first (a character the encoding
cannot hold raises ManuscriptEncodingError before anything is touched); with
expected=fingerprint a file changed or deleted since it was read raises ManuscriptConflict,
nothing written; then replaced all at once. On failure the old file is untouched and
ManuscriptError says why in one line; the UI keeps the text open and can save a recovery
copy (studio/data/recovery.py). `save_beside` and `convert_to_utf8_keeping_backup` keep both
versions when the author's text cannot simply replace the file.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from ai_writer.studio.data.atomic_save import (
    reason_of,
    remove_stale_temporaries,
    save_atomic,
    conflict_error,
    save_failed,
    write_bytes_atomic,
)
from ai_writer.studio.data.data_folder import APP_NAME, DATA_DIR_ENV, user_data_path
from ai_writer.studio.data.encodings import decode_manuscript, encode_manuscript
from ai_writer.studio.data.fingerprint import NO_FILE, DiskFingerprint, changed_on_disk, fingerprint_of, read_with_fingerprint
from ai_writer.studio.data.line_breaks import check_editable, newline_style
from ai_writer.studio.data.manuscript_errors import (
    ManuscriptConflict,
    ManuscriptEncodingError,
    ManuscriptError,
    ManuscriptLocked,
    ManuscriptNotEditable,
)
from ai_writer.studio.data.recovery import discard_recovery_copy, newer_recovery_copy, recovery_path_for, save_recovery_copy
from ai_writer.studio.i18n import tr

__all__ = [
    "APP_NAME", "DATA_DIR_ENV", "NO_FILE", "Conversion", "DiskFingerprint", "Manuscript", "ManuscriptConflict",
    "ManuscriptEncodingError", "ManuscriptError", "ManuscriptLocked", "ManuscriptNotEditable", "changed_on_disk",
    "convert_to_utf8_keeping_backup", "discard_recovery_copy", "fingerprint_of", "load_manuscript",
    "new_manuscript_path", "newer_recovery_copy", "read_manuscript", "recovery_path_for", "remove_stale_temporaries",
    "save_atomic", "save_beside", "save_recovery_copy", "user_data_path", "write_bytes_atomic",
]


@dataclass(frozen=True)
class Manuscript:
    """A manuscript as read: the text exactly as in the file (CRLF kept, BOM left out), and its style."""

    text: str
    newline: str = "\n"  # "\r\n" when the file mostly used CRLF line endings
    bom: bool = False  # the file started with its encoding's byte order mark (UTF-8 or UTF-16)
    encoding: str = "UTF-8"  # for the status line and for saving back: "UTF-8", "GBK", "Big5", "UTF-16LE", ...
    fingerprint: DiskFingerprint | None = None  # what was on disk (None for standard input)


def _display(path) -> str:
    return str(path)


def _read_bytes(path) -> tuple[bytes, str, DiskFingerprint | None]:
    if str(path) == "-":
        return sys.stdin.buffer.read(), tr("mf_stdin"), None
    name = _display(path)
    try:
        data, fingerprint = read_with_fingerprint(path)
        return data, name, fingerprint
    except FileNotFoundError:
        raise ManuscriptError(tr("mf_no_such_file", name=name)) from None
    except IsADirectoryError:
        raise ManuscriptError(tr("mf_is_folder", name=name)) from None
    except PermissionError:
        if Path(path).is_dir():  # Windows says "permission denied" for folders
            raise ManuscriptError(tr("mf_is_folder", name=name)) from None
        raise ManuscriptError(tr("mf_cannot_read", name=name, reason=tr("mf_reason_permission"))) from None
    except OSError as exc:
        raise ManuscriptError(tr("mf_cannot_read", name=name, reason=exc.strerror or exc)) from None


def _first_difference(a: bytes, b: bytes) -> int:
    """The offset of the first byte where a and b differ (only called when they do)."""
    low, high = 0, min(len(a), len(b))
    while low < high:  # bisect on equal prefixes: each comparison runs in C
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def load_manuscript(path, *, for_editing: bool = False) -> Manuscript:
    """Read a manuscript ("-" reads standard input); ManuscriptError says what is wrong.

    for_editing=True also refuses (ManuscriptNotEditable, one line naming the line) a file
    that the editor could not save back byte for byte: see studio/data/line_breaks.py.
    """
    data, name, fingerprint = _read_bytes(path)
    decoded = decode_manuscript(data, name)
    if for_editing:
        if not decoded.exact:
            try:
                again = encode_manuscript(decoded.text, decoded.encoding, bom=decoded.bom, newline="\n", name=name)
                line = data.count(b"\n", 0, _first_difference(data, again)) + 1
            except ManuscriptEncodingError as exc:  # a character read that cannot be written back at all
                line = exc.line
            raise ManuscriptNotEditable(tr("mf_not_exact", name=name, line=line, encoding=decoded.encoding), line=line)
        check_editable(decoded.text, name)
    return Manuscript(decoded.text, newline_style(decoded.text), decoded.bom, decoded.encoding, fingerprint)


def read_manuscript(path) -> str:
    """The manuscript's text, exactly as in the file (line endings kept)."""
    return load_manuscript(path).text


# --- keeping both versions ----------------------------------------------------


def _free_name(folder: Path, stem: str, suffix: str) -> Path:
    candidate, number = folder / f"{stem}{suffix}", 2
    while os.path.lexists(candidate):
        candidate = folder / f"{stem}-{number}{suffix}"
        number += 1
    return candidate


def save_beside(path, text: str, newline: str = "\n", *, bom: bool = False, encoding: str = "UTF-8",
                now: datetime | None = None) -> Path:
    """Save the author's text next to the manuscript as NAME.mine-YYYYmmdd-HHMMSS.SUFFIX (atomically,
    never over an existing file) and return that path: for a conflict, to keep both versions."""
    target = Path(path)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    suffix = target.suffix or ".txt"
    beside = _free_name(target.parent, f"{target.stem}.mine-{stamp}", suffix)
    save_atomic(beside, text, newline, bom=bom, encoding=encoding, expected=NO_FILE)
    return beside


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


@dataclass(frozen=True)
class Conversion:
    backup: Path  # the original bytes, as NAME.orig-ENCODING.SUFFIX beside the manuscript
    fingerprint: DiskFingerprint  # the manuscript, now in UTF-8


def convert_to_utf8_keeping_backup(path, text: str | None = None, *, newline: str | None = None,
                                   expected: DiskFingerprint | None = None) -> Conversion:
    """Keep the file's bytes as NAME.orig-ENC.SUFFIX, then save it as UTF-8 (no BOM).

    text: what to save (default: the file's own text, so only the encoding changes);
    newline: default the file's own style. expected: ManuscriptConflict (nothing written) if
    the file changed since it was read. An existing backup with the same bytes is reused;
    one with other bytes is never overwritten (-2, -3, ... is added to the name).
    """
    name = _display(path)
    target = Path(path)
    try:
        data, disk = read_with_fingerprint(target)
    except FileNotFoundError:
        if expected is not None and expected.size >= 0:
            raise conflict_error(name, target) from None
        raise ManuscriptError(tr("mf_no_such_file", name=name)) from None
    except OSError as exc:
        raise save_failed(name, reason_of(exc, target)) from None
    if expected is not None and (expected.size < 0 or disk.digest != expected.digest):
        raise conflict_error(name, target)
    decoded = decode_manuscript(data, name)
    if text is None:
        text = decoded.text
    if newline is None:
        newline = newline_style(decoded.text)
    # Encode before anything is written: a surrogate would fail here, with no backup left behind.
    utf8 = encode_manuscript(text, "UTF-8", bom=False, newline=newline, name=name)
    suffix = target.suffix or ".txt"
    stem = f"{target.stem}.orig-{decoded.encoding}"
    for number in itertools.count(1):
        backup = target.parent / (f"{stem}{suffix}" if number == 1 else f"{stem}-{number}{suffix}")
        if not os.path.lexists(backup):
            write_bytes_atomic(backup, data, expected=NO_FILE)
            break
        if _holds(backup, data):  # a conversion that failed after its backup: keep that one
            break
    return Conversion(backup, write_bytes_atomic(target, utf8, expected=disk, name=name))


def new_manuscript_path(base_dir=None, *, today: date | None = None, create: bool = False) -> Path:
    """A new manuscript file in DATA/manuscripts/, named by date: 2026-11-26-1.txt, -2, ...

    The number is one more than the highest already used that day (by any file,
    history files included). The folder is created; with create=True the file is
    too (empty, exclusively), so two studios started at once never share it.
    """
    folder = user_data_path(base_dir) / "manuscripts"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ManuscriptError(tr("mf_cannot_create_folder", folder=folder, reason=reason_of(exc, folder))) from None
    day = (today or date.today()).isoformat()
    pattern = re.compile(rf"^{re.escape(day)}-(\d+)(\.|$)")
    used = [int(m.group(1)) for entry in os.listdir(folder) if (m := pattern.match(entry))]
    number = max(used, default=0) + 1
    while True:
        candidate = folder / f"{day}-{number}.txt"
        if not create:
            return candidate
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            number += 1
        except OSError as exc:
            raise ManuscriptError(tr("mf_cannot_create", name=candidate, reason=reason_of(exc, candidate))) from None
