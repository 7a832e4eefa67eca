"""Probe tasks of a chip store: information group, chip-level and pixel-level labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import zarr

from eo_mmcl.errors import SourceError
from eo_mmcl.io.tables import read_table
from eo_mmcl.objectives.labels import IGNORE_INDEX, majority_labels
from eo_mmcl.tile.store import CHIPS_ZARR, INDEX_FILE, SPLITS, open_store, store_metadata

#: Information groups in the order the report shows them.
GROUPS = ("R", "U1", "U2", "S")
GROUP_NAMES = {"R": "shared", "U1": "SAR-only", "U2": "optical-only", "S": "synergy"}


@dataclass(frozen=True)
class ProbeTask:
    """A label task of a chip store, as the probes see it.

    Args:
        name: Array name (``landcover``, ``s1_unique``, ``bigearthnet19`` ...).
        group: Information group: ``R``, ``U1``, ``U2`` or ``S``.
        num_classes: Number of classes.
        kind: ``pixel`` (class per pixel: chip classification and segmentation) or
            ``multilabel`` (multi-hot per chip, scored with mAP).
        class_names: Class names, where the store has them.
    """

    name: str
    group: str
    num_classes: int
    kind: str = "pixel"
    class_names: tuple[str, ...] = ()


@dataclass
class ChipLabels:
    """Labels of every chip of a store, in store-index order.

    Args:
        chips_dir: The chip store.
        tasks: Probe tasks, by name.
        index: The chip index (GeoParquet rows), sorted by ``store_index``.
        chip: Per task: (N,) int64 majority class over labelled valid pixels (-1 = none) or,
            for multi-label tasks, (N, K) uint8 multi-hot.
        pixel: Per pixel task: (N, H, W) uint8 labels, 255 where unlabelled or invalid.
        metadata: The store's ``eo_mmcl`` attributes.
    """

    chips_dir: Path
    tasks: dict[str, ProbeTask]
    index: pd.DataFrame
    chip: dict[str, np.ndarray] = field(default_factory=dict)
    pixel: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def split(self) -> np.ndarray:
        """(N,) split name of each chip."""
        return self.index["split"].to_numpy()

    @property
    def store_index(self) -> np.ndarray:
        """(N,) row of each chip in the store's arrays."""
        return self.index["store_index"].to_numpy(dtype=np.int64)

    def split_counts(self) -> dict[str, int]:
        """Chips per split."""
        return {s: int((self.split == s).sum()) for s in SPLITS}


def probe_tasks(metadata: dict[str, object], chips_dir: Path) -> dict[str, ProbeTask]:
    """The probe tasks a chip store declares, with their information groups.

    Args:
        metadata: The store's ``eo_mmcl`` attributes.
        chips_dir: The store (for messages).

    Returns:
        Tasks by name.

    Raises:
        SourceError: If the store declares no task, or a task has an unknown group.
    """
    layout = metadata.get("layout")
    stored = dict(layout.get("tasks", {})) if isinstance(layout, dict) else {}
    if not stored:
        raise SourceError(f"{chips_dir}: the chip store declares no label task to probe")
    tasks = {}
    for name, spec in stored.items():
        if spec["group"] not in GROUPS:
            raise SourceError(
                f"{chips_dir}: task {name!r} has information group {spec['group']!r}, "
                f"expected one of {GROUPS}"
            )
        tasks[name] = ProbeTask(
            name=name,
            group=spec["group"],
            num_classes=int(spec["num_classes"]),
            kind=spec.get("kind", "pixel"),
            class_names=tuple(spec.get("class_names") or ()),
        )
    return tasks


def _array(group: zarr.Group, name: str) -> np.ndarray:
    array = group[name]
    assert isinstance(array, zarr.Array)
    return np.asarray(array[:])


def load_chip_labels(chips_dir: str | Path) -> ChipLabels:
    """Read every task's labels of a chip store (chip-level majority and pixel labels).

    Chip labels are the majority class over pixels that are labelled and valid (both
    modalities present, no cloud), as the ``supervised`` oracle is trained on.

    Args:
        chips_dir: Chip store folder (``eo-mmcl tile`` output).

    Returns:
        The labels of every indexed chip.

    Raises:
        SourceError: If the folder is not a complete chip store or has nothing to probe.
    """
    folder = Path(chips_dir)
    group = open_store(folder)
    metadata = store_metadata(group)
    tasks = probe_tasks(metadata, folder)
    index = read_table(folder / INDEX_FILE, geo=True, writer="eo-mmcl tile")
    index = pd.DataFrame(index.sort_values("store_index").reset_index(drop=True))
    if index.empty:
        raise SourceError(f"{folder}: the chip index is empty")
    rows = index["store_index"].to_numpy(dtype=np.int64)
    arrays = zarr.open_group(str(folder / CHIPS_ZARR), mode="r")
    valid = np.asarray(_array(arrays, "valid"))[rows].astype(bool)
    labels = ChipLabels(folder, tasks, index, metadata=metadata)
    for name, task in tasks.items():
        data = np.asarray(_array(arrays, name))[rows]
        if task.kind == "multilabel":
            labels.chip[name] = data.astype(np.uint8)
            continue
        pixel = np.where(valid, data, IGNORE_INDEX).astype(np.uint8)
        labels.pixel[name] = pixel
        labels.chip[name] = majority_labels(
            torch.from_numpy(pixel.astype(np.int64)), task.num_classes
        ).numpy()
    return labels
