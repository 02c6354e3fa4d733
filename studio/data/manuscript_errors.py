"""The errors the manuscript layer raises: each is one line for the user, with details as data.

ManuscriptError is the base (str() is the line to show; `reason` is why, without the
file name). The subclasses let the app branch without parsing text.
"""

from __future__ import annotations


class ManuscriptError(Exception):
    """One line for the user: the file, and what went wrong."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason  # for a failed save: why, without the file name


class ManuscriptEncodingError(ManuscriptError):
    """Saving: the text holds a character the file's encoding cannot store; nothing was written."""

    def __init__(self, message: str, reason: str, *, encoding: str, char: str, line: int, column: int):
        super().__init__(message, reason)
        self.encoding = encoding  # the encoding asked for, e.g. "GBK"
        self.char = char  # the first character it cannot hold
        self.line = line  # 1-based
        self.column = column  # 1-based, in characters


class ManuscriptConflict(ManuscriptError):
    """Saving: the file changed on disk (or was deleted) since it was read; nothing was written."""

    def __init__(self, message: str, reason: str, *, deleted: bool, disk=None):
        super().__init__(message, reason)
        self.deleted = deleted  # True: there is no file at the path now
        self.disk = disk  # DiskFingerprint of what is on disk now (None when deleted)


class ManuscriptNotEditable(ManuscriptError):
    """Opening for editing: the editor could not give back the file byte for byte."""

    def __init__(self, message: str, *, line: int, char: str | None = None):
        super().__init__(message)
        self.line = line  # 1-based: where the first problem is
        self.char = char  # the character at fault, when there is one


class ManuscriptLocked(ManuscriptError):
    """Another studio has the manuscript open."""

    def __init__(self, message: str, *, pid: int | None):
        super().__init__(message)
        self.pid = pid  # the other process, when its lock file says
