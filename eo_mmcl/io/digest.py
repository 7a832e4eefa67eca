"""Content digests of files, shared by the stages that record or check what they wrote."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's content, read in blocks (memory does not grow with the file).

    Args:
        path: The file.

    Returns:
        Hex digest (64 hex characters).
    """
    with Path(path).open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()
