"""Files the studio reads and writes: manuscripts, generation history, settings.

Pure Python (standard library and platformdirs); nothing here knows about the UI.
Every problem the user can cause or meet (a missing file, a full disk, a
read-only folder) is reported as one line naming the file, never a traceback.
"""

from ai_writer.studio.data.config_writer import ConfigWriteError, update_config_file
from ai_writer.studio.data.history import HistoryLog, history_path_for, new_request_id
from ai_writer.studio.data.manuscript_file import (
    NO_FILE,
    DiskFingerprint,
    Manuscript,
    ManuscriptConflict,
    ManuscriptEncodingError,
    ManuscriptError,
    ManuscriptLocked,
    ManuscriptNotEditable,
    changed_on_disk,
    convert_to_utf8_keeping_backup,
    discard_recovery_copy,
    load_manuscript,
    new_manuscript_path,
    newer_recovery_copy,
    read_manuscript,
    save_atomic,
    save_beside,
    save_recovery_copy,
    user_data_path,
)
from ai_writer.studio.data.manuscript_lock import ManuscriptLock

__all__ = [
    "NO_FILE",
    "ConfigWriteError",
    "DiskFingerprint",
    "HistoryLog",
    "Manuscript",
    "ManuscriptConflict",
    "ManuscriptEncodingError",
    "ManuscriptError",
    "ManuscriptLock",
    "ManuscriptLocked",
    "ManuscriptNotEditable",
    "changed_on_disk",
    "convert_to_utf8_keeping_backup",
    "discard_recovery_copy",
    "history_path_for",
    "load_manuscript",
    "new_manuscript_path",
    "new_request_id",
    "newer_recovery_copy",
    "read_manuscript",
    "save_atomic",
    "save_beside",
    "save_recovery_copy",
    "update_config_file",
    "user_data_path",
]
