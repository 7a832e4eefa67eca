"""Content digests of files, shared by the stages that record or check what they wrote."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's content, read in blocks (memory does not grow with the file).

    Args:
        path: The file.

    Returns:
        Hex digest (64 hex characters).
    """
    with Path(path).open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def json_digest(value: Any) -> str:
    """SHA-256 of a JSON-serialisable value, written with sorted keys (same value, same digest).

    Args:
        value: What to digest (a config with its inputs' digests, typically); values JSON
            cannot write are digested by their ``str``.

    Returns:
        Hex digest (64 hex characters).
    """
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
