"""Load what ``eo-mmcl train`` wrote: any objective's checkpoint, with its bands and normalisation.

Export and probes both start from a checkpoint; this is the one place that checks it is an
eo_mmcl checkpoint and picks the task class from the objective it names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from eo_mmcl.errors import SourceError
from eo_mmcl.tasks import OBJECTIVES
from eo_mmcl.tasks.base import ObjectiveTask


def checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint's ``eo_mmcl`` dict and check that later stages can use it.

    Args:
        path: The checkpoint.

    Returns:
        The dict (objective, version, bands, normalisation, chips_dir).

    Raises:
        SourceError: If the file is missing, unreadable, not an eo_mmcl checkpoint, or holds
            no band lists or normalisation.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: checkpoint not found")
    try:
        # mmap: only the small metadata dict is needed here, not the weights.
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # torch raises many kinds for a corrupt file
        raise SourceError(f"{path}: not a readable checkpoint ({err})") from err
    meta = checkpoint.get("eo_mmcl") if isinstance(checkpoint, dict) else None
    objective = meta.get("objective") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or objective not in OBJECTIVES:
        raise SourceError(
            f"{path}: not an eo_mmcl checkpoint (objective {objective!r}; expected one of "
            f"{sorted(OBJECTIVES)})"
        )
    if "normalisation" not in meta or "bands" not in meta:
        raise SourceError(f"{path}: the checkpoint holds no band lists or normalisation")
    return dict(meta)


def load_task(path: str | Path) -> tuple[ObjectiveTask, dict[str, Any]]:
    """Load a trained task, whatever its objective, on the CPU in eval mode.

    Args:
        path: The checkpoint.

    Returns:
        ``(task, meta)``: the task (with its ``data_meta``) and the checkpoint's ``eo_mmcl`` dict.

    Raises:
        SourceError: As :func:`checkpoint_meta`.
    """
    meta = checkpoint_meta(path)
    task = OBJECTIVES[meta["objective"]].load_from_checkpoint(path, map_location="cpu")
    return task.eval(), meta
