"""The studio's per-user data folder (recovery copies, new manuscripts)."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "ai-writer-studio"
# Overrides the per-user data folder; used by tests.
DATA_DIR_ENV = "AI_WRITER_STUDIO_DATA_DIR"


def user_data_path(base_dir=None) -> Path:
    """The studio's per-user data folder: base_dir, else $AI_WRITER_STUDIO_DATA_DIR, else platformdirs'."""
    if base_dir is not None:
        return Path(base_dir).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME))
