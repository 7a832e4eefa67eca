"""Worker side of tiling: the chips of one chunk-aligned range of store slots (picklable)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
import zarr
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from eo_mmcl.tile.config import TileConfig
from eo_mmcl.tile.pairs import PairSources
from eo_mmcl.tile.reader import RasterReader, RasterSpec
from eo_mmcl.tile.store import (
    LABEL_NODATA,
    StoreLayout,
    write_chunk,
)

#: GDAL block cache per tiling process, in MB.
GDAL_CACHE_MB = 128


@dataclass(frozen=True)
class TileJob:
    """One unit of work: the chips of a chunk-aligned range of store slots.

    Args:
        number: Job number (the ledger's marker is ``task-<number>``).
        start: First slot.
        stop: One past the last slot.
        chips: (slot, pair_id, col_off, row_off, split) of each chip to cut.
        pairs: Sources of the pairs those chips come from.
        store: Path of ``chips.zarr``.
        layout: The store layout.
        config: Tiling options.
    """

    number: int
    start: int
    stop: int
    chips: tuple[tuple[int, str, int, int, str], ...]
    pairs: dict[str, PairSources]
    store: str
    layout: StoreLayout
    config: TileConfig


def run_tile_job(job: TileJob) -> dict[str, Any]:
    """Cut, check and write the chips of one job (its marker is the ledger's).

    Args:
        job: The job.

    Returns:
        The job's result: per-chip results and its train statistics.
    """
    # GDAL's block cache defaults to 5% of RAM and fills up with every block a job reads, so
    # the process would grow with the scene; a bounded cache keeps memory flat.
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        return _run_tile_job(job)


def _run_tile_job(job: TileJob) -> dict[str, Any]:
    layout, config = job.layout, job.config
    n, size = job.stop - job.start, layout.chip_size
    arrays: dict[str, np.ndarray] = {
        "s2": np.zeros((n, len(layout.s2_bands), size, size), dtype=np.uint16),
        "valid": np.zeros((n, size, size), dtype=np.uint8),
        "cloud": np.zeros((n, size, size), dtype=np.uint8),
    }
    if layout.s1_bands:
        arrays["s1"] = np.full((n, len(layout.s1_bands), size, size), np.nan, dtype=np.float32)
    for spec in layout.tasks:
        arrays[spec.name] = np.full((n, size, size), LABEL_NODATA, dtype=np.uint8)
    stats = {
        k: empty_stats(len(b)) for k, b in (("s2", layout.s2_bands), ("s1", layout.s1_bands)) if b
    }
    results = []
    readers: dict[str, dict[str, RasterReader]] = {}
    try:
        for slot, pair_id, col_off, row_off, split in job.chips:
            sources = job.pairs[pair_id]
            if pair_id not in readers:
                readers[pair_id] = _open_readers(sources)
            chip = _cut_chip(readers[pair_id], sources, Window(col_off, row_off, size, size))
            i = slot - job.start
            reason = ""
            if chip["nodata_fraction"] > config.max_nodata:
                reason = "nodata"
            elif chip["cloud_fraction"] > config.max_cloud:
                reason = "cloud"
            results.append(
                {
                    "slot": slot,
                    "reason": reason,
                    "nodata_fraction": chip["nodata_fraction"],
                    "cloud_fraction": chip["cloud_fraction"],
                }
            )
            if reason:
                continue
            for name in arrays:
                if name in chip:
                    arrays[name][i] = chip[name]
            if split == "train":
                valid = chip["valid"].astype(bool)
                for key in stats:
                    _accumulate(stats[key], chip[key], valid)
    finally:
        for group in readers.values():
            for reader in group.values():
                reader.close()
    store = zarr.open_group(job.store, mode="r+")
    write_chunk(store, job.start, arrays)
    marker = {
        "task_id": job.number,  # the key that markers of earlier runs hold
        "results": results,
        "stats": {k: {s: v.tolist() for s, v in d.items()} for k, d in stats.items()},
    }
    return marker


def empty_stats(bands: int) -> dict[str, np.ndarray]:
    """Zeroed per-band running sums (sum, sum of squares, count) of the train chips.

    Args:
        bands: Number of bands.

    Returns:
        The three accumulators.
    """
    return {"sum": np.zeros(bands), "sumsq": np.zeros(bands), "count": np.zeros(bands)}


def _accumulate(stats: dict[str, np.ndarray], data: np.ndarray, valid: np.ndarray) -> None:
    values = data[:, valid].astype(np.float64)  # (bands, n_valid)
    stats["sum"] += values.sum(axis=1)
    stats["sumsq"] += (values**2).sum(axis=1)
    stats["count"] += values.shape[1]


def _open_readers(sources: PairSources) -> dict[str, RasterReader]:
    crs = CRS.from_wkt(sources.crs)
    transform = Affine(*sources.transform)
    specs: dict[str, RasterSpec] = {"s2": sources.s2, **sources.labels}
    if sources.s1 is not None:
        specs["s1"] = sources.s1
    if sources.cloud is not None:
        specs["cloud"] = sources.cloud
    return {name: RasterReader(spec, crs, transform) for name, spec in specs.items()}


def _cut_chip(
    readers: dict[str, RasterReader], sources: PairSources, window: Window
) -> dict[str, Any]:
    s2 = readers["s2"].read(window)
    nodata = sources.s2.nodata
    valid = np.ones(s2.shape[1:], dtype=bool) if nodata is None else np.all(s2 != nodata, axis=0)
    chip: dict[str, Any] = {"s2": s2}
    if "s1" in readers:
        s1 = readers["s1"].read(window)
        valid &= np.all(np.isfinite(s1), axis=0)
        chip["s1"] = s1
    nodata_fraction = 1.0 - float(valid.mean())
    cloud = np.zeros_like(valid)
    if "cloud" in readers:
        cloud = readers["cloud"].read(window)[0] == 1
    chip["cloud"] = cloud.astype(np.uint8)
    chip["cloud_fraction"] = float((cloud & valid).mean())
    chip["nodata_fraction"] = nodata_fraction
    chip["valid"] = (valid & ~cloud).astype(np.uint8)
    for task, spec in sources.labels.items():
        label = readers[task].read(window)[0]
        if spec.nodata is not None and spec.nodata != LABEL_NODATA:
            label = np.where(label == spec.nodata, LABEL_NODATA, label)
        chip[task] = label.astype(np.uint8)
    return chip
