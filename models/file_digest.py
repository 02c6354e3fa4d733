"""A model file's sha256: what cached exports and states on disk are keyed by."""

from __future__ import annotations

import hashlib


def file_sha256(path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()
