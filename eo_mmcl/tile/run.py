"""``eo-mmcl tile``: cut co-registered S1/S2 chips over shared footprints into a chip store.

The work is planned up front (windows, splits, store slots: all decided by geometry and seed)
and split into jobs that own whole Zarr chunks. Jobs run on Dask distributed (a LocalCluster
by default, or an existing scheduler) through the stage's job ledger (:mod:`eo_mmcl.io.jobs`);
each writes its chunks, then its marker. A killed run resumes from the markers; the index, the
normalisation statistics and the manifest (the completion record) are written last, so a store
that looks finished is finished.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import zarr
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from eo_mmcl import __version__
from eo_mmcl.catalog.build import RASTERS_FILE, catalog_digest
from eo_mmcl.errors import SourceError
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.io.digest import json_digest
from eo_mmcl.io.jobs import JobLedger, write_record
from eo_mmcl.tile import worker
from eo_mmcl.tile.config import TileConfig
from eo_mmcl.tile.integrity import INTEGRITY_KEY, describe_store, reusable
from eo_mmcl.tile.pairs import PairSources, plan_tiling
from eo_mmcl.tile.plan import ChipWindow
from eo_mmcl.tile.store import (
    ATTRS_KEY,
    CHIPS_ZARR,
    INDEX_COLUMNS,
    INDEX_FILE,
    MANIFEST_FILE,
    SPLITS,
    StoreLayout,
    create_store,
    read_manifest,
    store_metadata,
)
from eo_mmcl.tile.worker import TileJob, empty_stats

PROGRESS_DIR = ".tile"


@dataclass
class TileResult:
    """Summary of a tiling run.

    Args:
        chips_dir: The store folder.
        manifest: The manifest written (counts, skipped pairs, options).
        reused: Whether a complete store was found and left as it was.
    """

    chips_dir: Path
    manifest: dict[str, Any]
    reused: bool = False


def _fingerprint(catalog_dir: Path, config: TileConfig) -> str:
    payload = {
        "config": asdict(config),
        "version": __version__,
        "catalog": catalog_digest(catalog_dir),
    }
    return json_digest(payload)


def _make_tasks(
    layout: StoreLayout,
    windows: Sequence[ChipWindow],
    slots: np.ndarray,
    pairs: dict[str, PairSources],
    store: Path,
    config: TileConfig,
) -> list[TileJob]:
    per_job = config.chunk_length * config.chunks_per_task
    by_job: dict[int, list[tuple[int, str, int, int, str]]] = {}
    for window, slot in zip(windows, slots, strict=True):
        by_job.setdefault(int(slot) // per_job, []).append(
            (int(slot), window.pair_id, window.col_off, window.row_off, window.split)
        )
    jobs = []
    for number, chips in sorted(by_job.items()):
        start = number * per_job
        stop = min(start + per_job, layout.n_slots)
        used = {c[1] for c in chips}
        jobs.append(
            TileJob(
                number,
                start,
                stop,
                tuple(sorted(chips)),
                {p: pairs[p] for p in used},
                str(store),
                layout,
                config,
            )
        )
    return jobs


def _job_id(job: TileJob) -> str:
    # "task-": the marker name of stores tiled before jobs were called so (resume keeps working).
    return f"task-{job.number:06d}"


def tile_catalog(
    catalog_dir: str | Path,
    chips_dir: str | Path,
    config: TileConfig,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    show_progress: bool = False,
) -> TileResult:
    """Tile every pair of a catalog into a chip store (resumable, atomic, on Dask).

    Args:
        catalog_dir: Catalog folder (``eo-mmcl catalog`` output).
        chips_dir: Output folder.
        config: Tiling options.
        workers: LocalCluster worker processes (default: one per CPU); 0 runs in this process.
        scheduler: Address of an existing Dask scheduler (overrides ``workers``).
        force: Rebuild a complete store, or one started with other options.
        show_progress: Show a rich progress bar.

    Returns:
        The result with the manifest.

    Raises:
        SourceError: If the catalog is missing or yields no chip, or if an unfinished store
            was started with other options (and ``force`` is false).
    """
    from rich.progress import Progress

    catalog_dir, out = Path(catalog_dir), Path(chips_dir)
    fingerprint = _fingerprint(catalog_dir, config) if (catalog_dir / RASTERS_FILE).exists() else ""
    manifest = read_manifest(out)
    if reusable(manifest, fingerprint) and not force:
        assert manifest is not None
        return TileResult(out, manifest, reused=True)
    layout, windows, slots, pairs, messages = plan_tiling(catalog_dir, config)
    # After planning: a plan that fails leaves nothing that looks started.
    ledger = JobLedger.open(out / PROGRESS_DIR, fingerprint, force=force, owner=out, what="store")
    # The new store is cut beside the finished one and replaces it only once complete, so a
    # rebuild that fails (or is killed) leaves the earlier store readable and unchanged.
    store = ledger.folder / CHIPS_ZARR
    if not ledger.fresh and not store.is_dir():
        ledger.restart()  # markers without their chunks are worth nothing
    if ledger.fresh:
        create_store(store, layout)
    tasks = _make_tasks(layout, windows, slots, pairs, store, config)
    with Progress(disable=not show_progress) as progress:
        bar = progress.add_task("tile", total=len(tasks))
        # Looked up at call time, so that tests can wrap the job function.
        already = ledger.run(
            worker.run_tile_job, tasks, _job_id, workers, scheduler, lambda: progress.advance(bar)
        )
        progress.advance(bar, already)
    manifest = _finalize(ledger, out, layout, windows, slots, pairs, tasks, config, messages)
    return TileResult(out, manifest)


def _finalize(
    ledger: JobLedger,
    out: Path,
    layout: StoreLayout,
    windows: Sequence[ChipWindow],
    slots: np.ndarray,
    pairs: dict[str, PairSources],
    tasks: Sequence[TileJob],
    config: TileConfig,
    messages: list[str],
) -> dict[str, Any]:
    results: dict[int, dict[str, Any]] = {}
    totals = {
        k: empty_stats(len(b)) for k, b in (("s2", layout.s2_bands), ("s1", layout.s1_bands)) if b
    }
    for task in tasks:
        marker = ledger.result(_job_id(task))
        results.update({r["slot"]: r for r in marker["results"]})
        for key, stats in marker["stats"].items():
            for name, values in stats.items():
                totals[key][name] += np.asarray(values)
    normalisation = {}
    for key, stats in totals.items():
        count = np.maximum(stats["count"], 1)
        mean = stats["sum"] / count
        std = np.sqrt(np.maximum(stats["sumsq"] / count - mean**2, 0.0))
        bands = layout.s2_bands if key == "s2" else layout.s1_bands
        normalisation[key] = {
            "bands": list(bands),
            "mean": mean.tolist(),
            "std": np.maximum(std, 1e-6).tolist(),
            "pixels": stats["count"].tolist(),
        }
    index = _index_frame(windows, slots, pairs, results, layout.chip_size)
    counts = {
        "candidates": len(windows),
        "chips": len(index),
        "rejected_nodata": sum(r["reason"] == "nodata" for r in results.values()),
        "rejected_cloud": sum(r["reason"] == "cloud" for r in results.values()),
        **{f"chips_{s}": int((index["split"] == s).sum()) for s in SPLITS},
    }
    emptied = [
        split
        for split, fraction in zip(SPLITS, config.split_fractions, strict=True)
        if fraction > 0 and counts[f"chips_{split}"] == 0
    ]
    if emptied:
        # Before the store replaces an earlier one: the cut chips stay in .tile/ for a rerun.
        found = ", ".join(f"{s}={counts['chips_' + s]}" for s in SPLITS)
        raise SourceError(
            f"{out}: no {' and '.join(emptied)} chip is left once chips with clouds or nodata "
            f"are dropped ({found}; "
            f"rejected for clouds {counts['rejected_cloud']}, for nodata "
            f"{counts['rejected_nodata']}): raise --max-cloud or --max-nodata, or use a "
            "smaller --split-block"
        )
    group = zarr.open_group(str(ledger.folder / CHIPS_ZARR), mode="r+")
    attrs = store_metadata(group)
    attrs.update(normalisation=normalisation, tile_config=asdict(config), counts=counts)
    group.attrs[ATTRS_KEY] = attrs
    _replace_store(out, ledger.folder / CHIPS_ZARR)
    with atomic_output(out / INDEX_FILE) as tmp:
        index.to_parquet(tmp, index=False)
    payload = {
        "counts": counts,
        "messages": messages,
        "config": asdict(config),
        INTEGRITY_KEY: describe_store(out),
    }
    return write_record(out / MANIFEST_FILE, ledger.fingerprint, payload)


def _replace_store(out: Path, staged: Path) -> None:
    """Move a finished store in place of the earlier one (if any).

    The manifest goes first: from then on readers refuse the folder as unfinished, until the
    new index and manifest are written.

    Args:
        out: The chip store folder.
        staged: The new, complete ``chips.zarr``.
    """
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    final = out / CHIPS_ZARR
    if final.exists():
        replaced = staged.with_name("replaced.zarr")
        shutil.rmtree(replaced, ignore_errors=True)
        final.rename(replaced)
        staged.rename(final)
        shutil.rmtree(replaced)
    else:
        staged.rename(final)


def _index_frame(
    windows: Sequence[ChipWindow],
    slots: np.ndarray,
    pairs: dict[str, PairSources],
    results: dict[int, dict[str, Any]],
    size: int,
) -> gpd.GeoDataFrame:
    rows = []
    for window, slot in zip(windows, slots, strict=True):
        result = results[int(slot)]
        if result["reason"]:
            continue
        sources = pairs[window.pair_id]
        transform = Affine(*sources.transform) * Affine.translation(window.col_off, window.row_off)
        x0, y0 = transform * (0, 0)
        x1, y1 = transform * (size, size)
        rows.append(
            {
                "chip_id": window.chip_id,
                "store_index": int(slot),
                "split": window.split,
                "pair_id": window.pair_id,
                "scene": sources.scene,
                "s2_id": sources.s2_id,
                "s1_id": sources.s1_id,
                "crs": sources.crs,
                "transform": list(transform)[:6],
                "col_off": window.col_off,
                "row_off": window.row_off,
                "nodata_fraction": result["nodata_fraction"],
                "cloud_fraction": result["cloud_fraction"],
                "footprint_native": shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)),
            }
        )
    frame = pd.DataFrame(rows, columns=[c for c in INDEX_COLUMNS if c != "geometry"])
    footprints = frame["footprint_native"].to_numpy()
    geometry = np.empty(len(frame), dtype=object)
    for crs, positions in frame.groupby("crs", sort=False).indices.items():
        # Chips are small: their four corners reprojected are their footprint to well under a
        # metre, and one vectorised transform per CRS is far cheaper than densifying each.
        to_wgs84 = Transformer.from_crs(CRS.from_wkt(crs), "EPSG:4326", always_xy=True)
        geometry[positions] = shapely.transform(
            footprints[positions], to_wgs84.transform, interleaved=False
        )
    frame["crs"] = [CRS.from_wkt(c).to_string() for c in frame["crs"]]
    frame["footprint_native"] = shapely.to_wkt(footprints) if len(frame) else []
    gdf = gpd.GeoDataFrame(frame, geometry=list(geometry), crs="EPSG:4326")
    return gdf.sort_values("store_index", ignore_index=True)
