"""The chip store: a Zarr group of paired S1/S2 chips, labels and masks, plus a GeoParquet index.

Layout of ``CHIPS_DIR``::

    chips.zarr/            Zarr v3 group
      s2      (N, C2, H, W) uint16   fill 0 (S2 nodata)
      s1      (N, C1, H, W) float32  fill NaN, sigma0 in dB (absent in S2-only stores)
      valid   (N, H, W)     uint8    1 = every modality valid and not under cloud
      cloud   (N, H, W)     uint8    1 = cloud (S2 cloud mask), when the source has one
      <task>  (N, H, W)     uint8    one per pixel-label task, fill/nodata 255
      <task>  (N, K)        uint8    multi-hot labels (e.g. BigEarthNet's 19 classes)
      .attrs["eo_mmcl"]     bands, tasks, chip size, normalisation statistics, provenance
    index.parquet          GeoParquet, one row per stored chip (see ``INDEX_COLUMNS``)
    tile_manifest.json     written last: the store is complete; size and SHA-256 of every
                           file above (see ``integrity``), checked by every reader

Chips are stored ``chips_per_chunk`` to a chunk (about 32 MiB of S2 by default), in a seeded
random order within each split, so that reading a whole chunk yields a random sample of that
split: Zarr v3 costs about a millisecond per chunk read whatever its size, and large chunks read
whole are what bring the store close to raw memory-map speed.
Slots of rejected windows stay at the fill value and are absent
from the index.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr

from eo_mmcl import __version__

CHIPS_ZARR = "chips.zarr"
INDEX_FILE = "index.parquet"
MANIFEST_FILE = "tile_manifest.json"
LABEL_NODATA = 255
ATTRS_KEY = "eo_mmcl"

INDEX_COLUMNS = (
    "chip_id", "store_index", "split", "pair_id", "scene", "s2_id", "s1_id", "crs",
    "transform", "col_off", "row_off", "nodata_fraction", "cloud_fraction",
    "footprint_native", "geometry",
)  # fmt: skip
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TaskSpec:
    """A label task stored with the chips.

    Args:
        name: Array name (``landcover``, ``s1_unique``, ...).
        group: Information group: ``R`` shared, ``U1`` SAR-only, ``U2`` optical-only,
            ``S`` synergy.
        num_classes: Number of classes.
        kind: ``pixel`` (one class per pixel, nodata 255) or ``multilabel`` (multi-hot).
        class_names: Optional class names.
    """

    name: str
    group: str
    num_classes: int
    kind: str = "pixel"
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoreLayout:
    """Shapes and contents of a chip store.

    Args:
        n_slots: Number of chip slots (candidate windows).
        chip_size: Chip height and width in pixels.
        s2_bands: S2 band names, in array order.
        s1_bands: S1 band names (empty for an S2-only store).
        tasks: Label tasks.
        chips_per_chunk: Chips per Zarr chunk.
        has_cloud: Whether a cloud mask array is stored.
    """

    n_slots: int
    chip_size: int
    s2_bands: tuple[str, ...]
    s1_bands: tuple[str, ...] = ()
    tasks: tuple[TaskSpec, ...] = ()
    chips_per_chunk: int = 32
    has_cloud: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_attrs(self) -> dict[str, Any]:
        """JSON-ready description for the Zarr attributes."""
        data = asdict(self)
        data["tasks"] = {t.name: asdict(t) for t in self.tasks}
        return data


def create_store(path: str | Path, layout: StoreLayout) -> zarr.Group:
    """Create the Zarr group and its (empty) arrays.

    Args:
        path: The ``chips.zarr`` folder (overwritten).
        layout: What to store.

    Returns:
        The open group.
    """
    group = zarr.open_group(str(path), mode="w")
    n, size, per = layout.n_slots, layout.chip_size, layout.chips_per_chunk
    image = (size, size)

    def array(name: str, shape: tuple[int, ...], dtype: str, fill: float | int) -> None:
        # Uncompressed: a chip store is a training cache read many times. Decoding zstd costs
        # ~5x the read (12 ms vs 2.4 ms per 16-chip chunk of 128 px S2) while reflectance and
        # backscatter compress by less than 1.6x; raw chunks can also be memory-mapped
        # (see ChunkReader). Masks are 1 byte per pixel, a sixth of S2's bytes.
        group.create_array(
            name,
            shape=shape,
            chunks=(per, *shape[1:]),
            dtype=dtype,
            fill_value=fill,
            compressors=None,
        )

    array("s2", (n, len(layout.s2_bands), *image), "uint16", 0)
    if layout.s1_bands:
        array("s1", (n, len(layout.s1_bands), *image), "float32", float("nan"))
    array("valid", (n, *image), "uint8", 0)
    if layout.has_cloud:
        array("cloud", (n, *image), "uint8", 0)
    for task in layout.tasks:
        if task.kind == "multilabel":
            array(task.name, (n, task.num_classes), "uint8", 0)
        else:
            array(task.name, (n, *image), "uint8", LABEL_NODATA)
    group.attrs[ATTRS_KEY] = {"layout": layout.to_attrs(), "version": __version__}
    return group


def write_chunk(group: zarr.Group, start: int, arrays: dict[str, np.ndarray]) -> None:
    """Write whole chunks of every array, starting at slot ``start``.

    Writers own whole chunks, so that parallel writers never read-modify-write the same chunk.

    Args:
        group: The store.
        start: First slot; a multiple of the chunk length.
        arrays: Array name to data whose first axis is the slots ``start:start+len``.

    Raises:
        ValueError: If the write is not chunk-aligned.
    """
    for name, data in arrays.items():
        target = group[name]
        if not isinstance(target, zarr.Array):
            raise ValueError(f"{name!r} is not an array of the chip store")
        per = target.chunks[0]
        stop = start + data.shape[0]
        if start % per or (stop % per and stop != target.shape[0]):
            raise ValueError(f"write of slots {start}:{stop} to {name!r} is not chunk-aligned")
        target[start:stop] = data


def store_metadata(group: zarr.Group) -> dict[str, Any]:
    """The eo_mmcl attributes of a chip store (layout, normalisation, provenance)."""
    return cast(dict[str, Any], dict(group.attrs[ATTRS_KEY]))  # type: ignore[arg-type]


def open_store(chips_dir: str | Path) -> zarr.Group:
    """Open a complete chip store read-only.

    Args:
        chips_dir: The folder holding ``chips.zarr``, ``index.parquet`` and the manifest.

    Returns:
        The Zarr group.

    Raises:
        SourceError: If the folder is not a complete chip store (no manifest).
        StoreIntegrityError: If a chunk (or the index) is missing, altered or unexpected.
    """
    # Imported here: the integrity check names the files this module defines.
    from eo_mmcl.tile.integrity import ensure_intact

    folder = Path(chips_dir)
    # Zarr reads an absent chunk as its fill value: without this check a store that lost a
    # chunk trains on zeros.
    ensure_intact(folder)
    return zarr.open_group(str(folder / CHIPS_ZARR), mode="r")


def read_manifest(chips_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of a complete store, or None."""
    path = Path(chips_dir) / MANIFEST_FILE
    if not path.exists():
        return None
    result: dict[str, Any] = json.loads(path.read_text())
    return result
