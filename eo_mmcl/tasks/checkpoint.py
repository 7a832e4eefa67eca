"""Load what ``eo-mmcl train`` wrote: any objective's checkpoint, with its bands and normalisation.

Export, probes, the pipeline and resumed training all start from a checkpoint; this is the one
place that reads one and checks that it is an eo_mmcl checkpoint.

Checkpoints are what researchers download and share, so a checkpoint must never be able to run
code. Every load uses ``torch.load(..., weights_only=True)``: the unpickler then builds tensors
and plain containers only (dict, list, tuple, str, numbers, bool, None) and refuses any other
global, such as a class whose ``__reduce__`` calls ``os.system``. eo_mmcl writes nothing else
(``ObjectiveTask.on_save_checkpoint`` stores its metadata through
:func:`eo_mmcl.tasks.plain.plain`, and Lightning's own entries are plain), so no global is
allowlisted with ``torch.serialization.add_safe_globals``: :data:`SAFE_GLOBALS` is empty on
purpose, and the tests load Lightning-written checkpoints and every objective's under it.
Lightning's loaders (``load_from_checkpoint``, ``Trainer.fit(ckpt_path=...)``) are called with
``weights_only=True`` too.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from eo_mmcl.errors import SourceError
from eo_mmcl.tasks import OBJECTIVES
from eo_mmcl.tasks.base import ObjectiveTask

#: Globals beyond torch's weights-only defaults that eo_mmcl's checkpoints need: none (see above).
SAFE_GLOBALS: tuple[Any, ...] = ()

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def refusal(path: str | Path, error: pickle.UnpicklingError) -> SourceError:
    """The one-line error for a checkpoint that the weights-only unpickler refused.

    Args:
        path: The checkpoint.
        error: What ``torch.load(..., weights_only=True)`` raised.

    Returns:
        An error naming the file and the type it holds.
    """
    found = _GLOBAL.search(str(error))
    what = f"a {found.group(1)} object" if found else "content other than tensors and plain types"
    return SourceError(
        f"{path}: refused: the checkpoint holds {what}, which eo_mmcl never writes; loading it "
        "could run code from the file"
    )


@contextmanager
def refusing_code(path: str | Path) -> Iterator[None]:
    """Turn a weights-only refusal raised inside the block into :func:`refusal`'s error.

    Args:
        path: The checkpoint being loaded (for the message).

    Yields:
        Nothing.

    Raises:
        SourceError: If the block's weights-only load refused the file.
    """
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            yield
    except pickle.UnpicklingError as err:
        raise refusal(path, err) from err


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file with the weights-only unpickler (tensors memory-mapped).

    Args:
        path: The checkpoint.

    Returns:
        Its top-level dict.

    Raises:
        SourceError: If the file is missing, unreadable, not a dict, or holds anything but
            tensors and plain types.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: checkpoint not found")
    try:
        with refusing_code(path):
            # mmap: callers mostly need the small metadata, not the weights.
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except SourceError:
        raise
    except Exception as err:  # torch raises many kinds for a corrupt file
        raise SourceError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(checkpoint, dict):
        raise SourceError(f"{path}: not a checkpoint (holds a {type(checkpoint).__name__})")
    return checkpoint


def checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint's ``eo_mmcl`` dict and check that later stages can use it.

    Args:
        path: The checkpoint.

    Returns:
        The dict (objective, version, bands, normalisation, chips_dir).

    Raises:
        SourceError: As :func:`read_checkpoint`; also if it is not an eo_mmcl checkpoint, or
            holds no band lists or normalisation.
    """
    checkpoint = read_checkpoint(path)
    meta = checkpoint.get("eo_mmcl")
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
        SourceError: As :func:`checkpoint_meta`, or if the weights do not fit the objective.
    """
    meta = checkpoint_meta(path)
    try:
        with refusing_code(path):
            task = OBJECTIVES[meta["objective"]].load_from_checkpoint(
                path, map_location="cpu", weights_only=True
            )
    except SourceError:
        raise
    except (RuntimeError, TypeError, ValueError, KeyError) as err:
        # Lightning's messages for weights of another shape, unknown hyperparameters or a
        # blocked instantiator: the file is an eo_mmcl checkpoint that cannot be rebuilt.
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SourceError(
            f"{path}: the {meta['objective']} model cannot be rebuilt from it ({first})"
        ) from err
    return task.eval(), meta
