"""Paths as the author reads them on the status line and in messages."""

from __future__ import annotations

from pathlib import Path


def short_path(path: Path) -> str:
    """The path as an author would type it: relative to the working folder or ~ where shorter."""
    path = Path(path).absolute()
    candidates = [str(path)]
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            candidates.append(prefix + str(path.relative_to(base)))
        except ValueError:
            pass
    return min(candidates, key=len)
