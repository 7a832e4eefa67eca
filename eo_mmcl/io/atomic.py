"""Atomic file outputs: write under a temporary name, rename into place only on success.

Every stage writes through :func:`atomic_output` so that a killed run never leaves a file that
looks finished: the final name appears only once its content is complete (``os.replace`` is atomic
on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` and move it onto ``path`` when the block succeeds.

    The temporary file keeps the final suffix, so that drivers that choose a format by extension
    (GDAL, pyarrow) behave as for the final name.

    Args:
        path: The final destination.

    Yields:
        The temporary path to write to. It is removed if the block raises.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.tmp-{uuid.uuid4().hex[:8]}{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        # Only left over when the block raised (or the replace failed).
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        for aux in tmp.parent.glob(tmp.name + ".*"):  # GDAL side files (.aux.xml, .ovr)
            with contextlib.suppress(FileNotFoundError):
                aux.unlink()
