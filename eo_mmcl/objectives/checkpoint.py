"""Load what ``eo-mmcl train`` wrote: any objective's checkpoint, with its bands and normalisation.

Export, probes, the pipeline and resumed training all start from a checkpoint; this is the one
place that reads one and checks that it is an eo_mmcl checkpoint.

Checkpoints are what researchers download and share, so a checkpoint must never be able to run
code. Every load uses ``torch.load(..., weights_only=True)``: the unpickler then builds tensors
and plain containers only (dict, list, tuple, str, numbers, bool, None) and refuses any other
global, such as a class whose ``__reduce__`` calls ``os.system``. eo_mmcl writes nothing else
(``Objective.on_save_checkpoint`` stores its metadata through
:func:`eo_mmcl.objectives.plain.plain`, and Lightning's own entries are plain), so no global is
allowlisted with ``torch.serialization.add_safe_globals``: :data:`SAFE_GLOBALS` is empty on
purpose, and the tests load Lightning-written checkpoints and every objective's under it.
Lightning's loaders (``load_from_checkpoint``, ``Trainer.fit(ckpt_path=...)``) are called with
``weights_only=True`` too.
"""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from eo_mmcl.aliases import importable_class_path, renamed_attributes
from eo_mmcl.errors import ConfigError, SourceError
from eo_mmcl.objectives import OBJECTIVES
from eo_mmcl.objectives.base import Objective

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


def load_trained(path: str | Path) -> tuple[Objective, dict[str, Any]]:
    """Load a trained objective, whichever it is, on the CPU in eval mode.

    Args:
        path: The checkpoint.

    Returns:
        ``(objective, meta)``: the objective (with its ``data_meta``) and the checkpoint's
        ``eo_mmcl`` dict.

    Raises:
        SourceError: As :func:`checkpoint_meta`, or if the weights do not fit the objective.
    """
    meta = checkpoint_meta(path)
    # The class path LightningCLI stored may name a package before its rename (eo_mmcl.tasks);
    # Lightning rebuilds only classes whose module is imported. Memory-mapped: no weights read.
    class_path = (read_checkpoint(path).get("hyper_parameters") or {}).get("_class_path")
    if isinstance(class_path, str):
        importable_class_path(class_path)
    try:
        with refusing_code(path):
            objective = OBJECTIVES[meta["objective"]].load_from_checkpoint(
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
    return objective.eval(), meta


def check_fits_data(
    checkpoint: str | Path,
    meta: Mapping[str, Any],
    source: str | Path,
    bands: Mapping[str, Sequence[str]],
    chip_size: int | None = None,
    by_name: bool = False,
    normalisation: Mapping[str, Any] | None = None,
) -> None:
    """Check that a checkpoint can read the data it is given: bands, chip size, normalisation.

    The one check between a checkpoint and data, used by resumed training, ``embed``,
    ``probe`` and the pipeline's stages before any work. A chip store's arrays are read by
    position, so its band lists must be the checkpoint's, in order; rasters are read by band
    name (``by_name``), so they must offer the checkpoint's bands. A sensor the data does not
    have at all (an S2-only store) is left to the caller. The chip size is compared where the
    caller gives one and the checkpoint records one (checkpoints written before it was
    recorded carry none).

    Args:
        checkpoint: The checkpoint (for the message).
        meta: Its ``eo_mmcl`` dict (:func:`checkpoint_meta`).
        source: The chip store or raster (for the message).
        bands: Band names per sensor (``s1``, ``s2``) of the data, in array order.
        chip_size: The data's chip side in pixels, or None: not compared (rasters, whose
            windows are an option of their own).
        by_name: The data is read by band name (rasters) rather than by position.
        normalisation: The statistics the data will be normalised with where they are not
            the checkpoint's (resumed training normalises with the store's): they must be the
            checkpoint's, or the resumed weights would see other inputs.

    Raises:
        ConfigError: If the bands, the chip size or the checkpoint's normalisation do not fit.
    """
    kind = "raster" if by_name else "chip store"
    for sensor, wanted in sorted(dict(meta.get("bands") or {}).items()):
        wanted, offered = list(wanted or []), list(bands.get(sensor) or [])
        if not wanted or not offered:
            continue
        missing = [b for b in wanted if b not in offered]
        if bool(missing) if by_name else wanted != offered:
            raise ConfigError(
                f"{source}: the {kind} has {sensor.upper()} bands {offered}, but checkpoint "
                f"{checkpoint} reads {wanted}" + (f" ({missing} missing)" if missing else "")
            )
        _check_normalisation(checkpoint, meta, sensor, wanted)
        if normalisation is not None:
            _check_same_statistics(checkpoint, meta, source, sensor, normalisation)
    trained = meta.get("chip_size")
    if chip_size is not None and trained is not None and int(trained) != int(chip_size):
        raise ConfigError(
            f"{source}: the {kind} has {chip_size} px chips, but checkpoint {checkpoint} was "
            f"trained on {trained} px chips"
        )


def _check_normalisation(
    checkpoint: str | Path, meta: Mapping[str, Any], sensor: str, bands: list[str]
) -> None:
    """The statistics the encoder normalises with: one finite mean and positive std per band."""
    stats = dict(meta.get("normalisation") or {}).get(sensor) or {}
    mean, std = list(stats.get("mean") or []), list(stats.get("std") or [])
    named = list(stats.get("bands") or bands)
    usable = len(mean) == len(std) == len(bands) and named == bands
    if not usable or not all(
        math.isfinite(m) and math.isfinite(s) and s > 0 for m, s in zip(mean, std, strict=True)
    ):
        raise ConfigError(
            f"{checkpoint}: its {sensor.upper()} normalisation does not fit its bands {bands} "
            f"(bands {named}, {len(mean)} means, {len(std)} stds; each finite, stds > 0)"
        )


def _check_same_statistics(
    checkpoint: str | Path,
    meta: Mapping[str, Any],
    source: str | Path,
    sensor: str,
    normalisation: Mapping[str, Any],
) -> None:
    """The data's statistics are the checkpoint's (up to float32 rounding)."""
    ours = dict(meta.get("normalisation") or {}).get(sensor) or {}
    theirs = dict(normalisation).get(sensor) or {}
    for key in ("mean", "std"):
        a, b = list(ours.get(key) or []), list(theirs.get(key) or [])
        same = len(a) == len(b) and all(
            math.isclose(x, y, rel_tol=1e-6) for x, y in zip(a, b, strict=True)
        )
        if not same:
            raise ConfigError(
                f"{source}: its {sensor.upper()} normalisation {key} {b} is not that of "
                f"checkpoint {checkpoint} ({a}): resuming would train on other inputs"
            )


def check_fits_store(
    checkpoint: str | Path,
    meta: Mapping[str, Any],
    chips_dir: str | Path,
    normalisation: Mapping[str, Any] | None = None,
    same_chip_size: bool = True,
) -> None:
    """:func:`check_fits_data` against a chip store (its band lists and chip size).

    Args:
        checkpoint: The checkpoint (for the message).
        meta: Its ``eo_mmcl`` dict.
        chips_dir: The chip store.
        normalisation: As :func:`check_fits_data`.
        same_chip_size: The store's chips must be of the training size (resuming, probing);
            False where any size is a choice (``embed``'s per-chip tables of another store).

    Raises:
        ConfigError: As :func:`check_fits_data`.
        SourceError: If the folder is not an intact chip store.
    """
    from eo_mmcl.tile.store import open_store, store_metadata  # zarr: only when needed

    layout = store_metadata(open_store(chips_dir))["layout"]
    bands = {"s1": layout.get("s1_bands") or [], "s2": layout.get("s2_bands") or []}
    chip_size = int(layout["chip_size"]) if same_chip_size else None
    check_fits_data(checkpoint, meta, chips_dir, bands, chip_size, normalisation=normalisation)


if not TYPE_CHECKING:
    # The old names (before the objectives were named so), with a deprecation: eo_mmcl.aliases.
    __getattr__ = renamed_attributes(__name__)
