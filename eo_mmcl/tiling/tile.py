"""``eo-mmcl tile``: cut co-registered S1/S2 chips over shared footprints into a chip store.

The work is planned up front (windows, splits, store slots: all decided by geometry and seed)
and split into tasks that own whole Zarr chunks. Tasks run on Dask distributed (a LocalCluster
by default, or an existing scheduler); each writes its chunks, then a small JSON marker. A killed
run resumes from the markers; the index, the normalisation statistics and the manifest are
written last, so a store that looks finished is finished.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
import zarr
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely import wkt

from eo_mmcl import __version__
from eo_mmcl.bands import S1_BANDS, S2_L2A_BANDS
from eo_mmcl.catalog.build import PAIRS_FILE, RASTERS_FILE, read_catalog, require_raster_files
from eo_mmcl.errors import SourceError
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.io.cluster import run_tasks
from eo_mmcl.io.digest import json_digest, sha256_file
from eo_mmcl.tiling.config import TileConfig
from eo_mmcl.tiling.integrity import INTEGRITY_KEY, describe_store, reusable
from eo_mmcl.tiling.plan import ChipWindow, assign_splits, lattice_windows, store_order
from eo_mmcl.tiling.reader import RasterReader, RasterSpec
from eo_mmcl.tiling.store import (
    ATTRS_KEY,
    CHIPS_ZARR,
    INDEX_COLUMNS,
    INDEX_FILE,
    LABEL_NODATA,
    MANIFEST_FILE,
    SPLITS,
    StoreLayout,
    TaskSpec,
    create_store,
    read_manifest,
    store_metadata,
    write_chunk,
)

PROGRESS_DIR = ".tile"
#: GDAL block cache per tiling process, in MB.
GDAL_CACHE_MB = 128
S1_STORE_BANDS = S1_BANDS[:2]  # VV, VH
#: Information group of the simulator's tasks, used when a label raster carries no tag.
DEFAULT_GROUPS = {"landcover": "R", "s1_unique": "U1", "s2_unique": "U2", "synergy": "S"}


@dataclass(frozen=True)
class PairSources:
    """Everything a worker needs to read one pair (picklable).

    Args:
        pair_id: Pair id (S2-only: the S2 raster id's hash).
        scene: Scene key.
        s2_id: S2 raster id.
        s1_id: S1 raster id, or None in S2-only mode.
        crs: WKT of the S2 grid's CRS.
        transform: The S2 grid's transform (6 coefficients).
        s2: S2 bands to read.
        s1: S1 bands to read.
        labels: Label raster per task.
        cloud: Cloud mask raster.
    """

    pair_id: str
    scene: str | None
    s2_id: str
    s1_id: str | None
    crs: str
    transform: tuple[float, ...]
    s2: RasterSpec
    s1: RasterSpec | None
    labels: dict[str, RasterSpec] = field(default_factory=dict)
    cloud: RasterSpec | None = None


@dataclass(frozen=True)
class TileTask:
    """One unit of work: the chips of a chunk-aligned range of store slots.

    Args:
        task_id: Task number.
        start: First slot.
        stop: One past the last slot.
        chips: (slot, pair_id, col_off, row_off, split) of each chip to cut.
        pairs: Sources of the pairs those chips come from.
        store: Path of ``chips.zarr``.
        progress_dir: Folder of the task markers.
        layout: The store layout.
        config: Tiling options.
    """

    task_id: int
    start: int
    stop: int
    chips: tuple[tuple[int, str, int, int, str], ...]
    pairs: dict[str, PairSources]
    store: str
    progress_dir: str
    layout: StoreLayout
    config: TileConfig


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


def _pair_sources(
    catalog_dir: Path, config: TileConfig, messages: list[str]
) -> tuple[list[tuple[PairSources, Any]], list[TaskSpec]]:
    catalog = read_catalog(catalog_dir)
    rasters = catalog.rasters.set_index("raster_id", drop=False)
    if config.s2_only:
        s2_rows = rasters[(rasters["sensor"] == "S2") & (rasters["role"] == "image")]
        jobs = [
            (hashlib.sha1(rid.encode()).hexdigest()[:12], rid, None, None)
            for rid in s2_rows["raster_id"]
        ]
    else:
        if catalog.pairs.empty:
            raise SourceError(f"{catalog_dir}: the catalog has no S1/S2 pairs (use --s2-only?)")
        jobs = [
            (p.pair_id, p.s2_id, p.s1_id, p.shared_footprint_native)
            for p in catalog.pairs.itertuples()
        ]
    scenes = set(rasters.loc[[s2 for _, s2, _, _ in jobs], "scene"].dropna())
    needed = [s2 for _, s2, _, _ in jobs] + [s1 for _, _, s1, _ in jobs if s1 is not None]
    needed += list(rasters.loc[rasters["scene"].isin(scenes), "raster_id"])
    require_raster_files(catalog, needed, catalog_dir)
    tasks: dict[str, TaskSpec] = {}
    out: list[tuple[PairSources, Any]] = []
    for pair_id, s2_id, s1_id, shared_wkt in jobs:
        s2_row = rasters.loc[s2_id]
        try:
            s2 = RasterSpec.from_catalog_row(s2_row, S2_L2A_BANDS, "bilinear")
            s1 = None
            if s1_id is not None:
                s1 = RasterSpec.from_catalog_row(
                    rasters.loc[s1_id], S1_STORE_BANDS, "bilinear", db=True
                )
        except KeyError as err:
            messages.append(f"pair {pair_id} skipped: {err.args[0]}")
            continue
        same_scene = rasters[(rasters["scene"] == s2_row["scene"]) & (rasters["sensor"] == "S2")]
        labels = {}
        for _, label in same_scene[same_scene["role"] == "label"].iterrows():
            task = str(label["task"])
            if (label["crs"], list(label["transform"])) != (
                s2_row["crs"],
                list(s2_row["transform"]),
            ):
                messages.append(
                    f"label raster {label['paths'][0]} is not on the S2 grid of {s2_id}: "
                    "resampled with nearest neighbour"
                )
            labels[task] = RasterSpec.from_catalog_row(label, None, "nearest")
            if task not in tasks:
                tasks[task] = _task_spec(task, label)
        clouds = same_scene[same_scene["role"] == "cloud_mask"]
        cloud = (
            RasterSpec.from_catalog_row(clouds.iloc[0], None, "nearest") if len(clouds) else None
        )
        footprint = (
            wkt.loads(shared_wkt)
            if shared_wkt is not None
            else wkt.loads(s2_row["footprint_native"])
        )
        crs = CRS.from_user_input(s2_row["crs"])
        sources = PairSources(
            pair_id=pair_id,
            scene=None if pd.isna(s2_row["scene"]) else str(s2_row["scene"]),
            s2_id=s2_id,
            s1_id=s1_id,
            crs=crs.to_wkt(),
            transform=tuple(float(v) for v in s2_row["transform"]),
            s2=s2,
            s1=s1,
            labels=labels,
            cloud=cloud,
        )
        out.append((sources, (footprint, int(s2_row["width"]), int(s2_row["height"]))))
    # Every pair must offer the same tasks, or the store would hold holes that look like labels.
    for sources, _ in out:
        missing = sorted(set(tasks) - set(sources.labels))
        if missing:
            messages.append(
                f"pair {sources.pair_id}: no label raster for {missing} (stored as nodata)"
            )
    return out, sorted(tasks.values(), key=lambda t: t.name)


def _task_spec(task: str, label_row: Any) -> TaskSpec:
    with rasterio.open(label_row["band_paths"][0]) as ds:
        tags = ds.tags()
    group = tags.get("INFORMATION_GROUP", DEFAULT_GROUPS.get(task, "R"))
    num_classes = int(tags.get("NUM_CLASSES", "0"))
    names = tuple(n for n in tags.get("CLASS_NAMES", "").split(",") if n)
    return TaskSpec(name=task, group=group, num_classes=num_classes, class_names=names)


def plan_tiling(
    catalog_dir: str | Path, config: TileConfig
) -> tuple[StoreLayout, list[ChipWindow], np.ndarray, dict[str, PairSources], list[str]]:
    """Decide every chip window, its split and its store slot (no pixel is read).

    Args:
        catalog_dir: Catalog folder.
        config: Tiling options.

    Returns:
        ``(layout, windows, slots, pairs, messages)``.

    Raises:
        SourceError: If the catalog yields no chip at all.
    """
    messages: list[str] = []
    pairs, tasks = _pair_sources(Path(catalog_dir), config, messages)
    windows: list[ChipWindow] = []
    for sources, (footprint, width, height) in pairs:
        transform = Affine(*sources.transform)
        offsets = lattice_windows(
            transform, footprint, config.chip_size, config.step, width, height
        )
        if len(offsets) == 0:
            messages.append(
                f"pair {sources.pair_id} skipped: its shared footprint holds no whole "
                f"{config.chip_size} px chip ({sources.s2_id} x {sources.s1_id})"
            )
            continue
        splits = assign_splits(
            offsets,
            sources.s2_id,
            config.chip_size,
            config.step,
            config.split_block,
            config.split_fractions,
            config.seed,
        )
        windows += [
            ChipWindow(sources.pair_id, int(c), int(r), str(s))
            for (r, c), s in zip(offsets, splits, strict=True)
            if s
        ]
    if not windows:
        raise SourceError(f"{catalog_dir}: no chip window fits any pair; " + "; ".join(messages))
    _require_every_split(windows, config, catalog_dir)
    slots, n_slots = store_order(
        np.array([w.split for w in windows], dtype=object), config.chunk_length, config.seed
    )
    layout = StoreLayout(
        n_slots=n_slots,
        chip_size=config.chip_size,
        s2_bands=S2_L2A_BANDS,
        s1_bands=() if config.s2_only else S1_STORE_BANDS,
        tasks=tuple(tasks),
        chips_per_chunk=config.chunk_length,
        has_cloud=True,
    )
    return layout, windows, slots, {p.pair_id: p for p, _ in pairs}, messages


def _require_every_split(
    windows: Sequence[ChipWindow], config: TileConfig, catalog_dir: str | Path
) -> None:
    """Refuse a plan in which a split that should hold chips holds none.

    Split blocks larger than the scene put it whole into one split; training then has no
    validation chips (or probes no test chips), which is found only stages later.

    Raises:
        SourceError: If a split with a positive fraction gets no chip window.
    """
    counts = Counter(w.split for w in windows)
    empty = [
        split
        for split, fraction in zip(SPLITS, config.split_fractions, strict=True)
        if fraction > 0 and counts[split] == 0
    ]
    if empty:
        found = ", ".join(f"{s}={counts[s]}" for s in SPLITS)
        advice = (
            "use a smaller --split-block"
            if config.split_block > 1
            # Chips beside a chip of another split are dropped, so single-chip blocks keep few.
            else "use larger scenes, or a split fraction of 0 for a split you do not need"
        )
        raise SourceError(
            f"{catalog_dir}: no chip windows for the {' and '.join(empty)} split ({found}) with "
            f"--split-block {config.split_block} (chips per block side); the scenes are too "
            f"small for it: {advice}"
        )


def run_tile_task(task: TileTask) -> dict[str, Any]:
    """Cut, check and write the chips of one task, then write its marker.

    Args:
        task: The task.

    Returns:
        The marker: per-chip results and the task's train statistics.
    """
    # GDAL's block cache defaults to 5% of RAM and fills up with every block a task reads, so
    # the process would grow with the scene; a bounded cache keeps memory flat.
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        return _run_tile_task(task)


def _run_tile_task(task: TileTask) -> dict[str, Any]:
    layout, config = task.layout, task.config
    n, size = task.stop - task.start, layout.chip_size
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
        k: _empty_stats(len(b)) for k, b in (("s2", layout.s2_bands), ("s1", layout.s1_bands)) if b
    }
    results = []
    readers: dict[str, dict[str, RasterReader]] = {}
    try:
        for slot, pair_id, col_off, row_off, split in task.chips:
            sources = task.pairs[pair_id]
            if pair_id not in readers:
                readers[pair_id] = _open_readers(sources)
            chip = _cut_chip(readers[pair_id], sources, Window(col_off, row_off, size, size))
            i = slot - task.start
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
    store = zarr.open_group(task.store, mode="r+")
    write_chunk(store, task.start, arrays)
    marker = {
        "task_id": task.task_id,
        "results": results,
        "stats": {k: {s: v.tolist() for s, v in d.items()} for k, d in stats.items()},
    }
    with atomic_output(Path(task.progress_dir) / f"task-{task.task_id:06d}.json") as tmp:
        tmp.write_text(json.dumps(marker))
    return marker


def _empty_stats(bands: int) -> dict[str, np.ndarray]:
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


def _fingerprint(catalog_dir: Path, config: TileConfig) -> str:
    payload = {
        "config": asdict(config),
        "version": __version__,
        "rasters": sha256_file(catalog_dir / RASTERS_FILE),
        "pairs": sha256_file(catalog_dir / PAIRS_FILE),
    }
    return json_digest(payload)


def _make_tasks(
    layout: StoreLayout,
    windows: Sequence[ChipWindow],
    slots: np.ndarray,
    pairs: dict[str, PairSources],
    store: Path,
    progress_dir: Path,
    config: TileConfig,
) -> list[TileTask]:
    per_task = config.chunk_length * config.chunks_per_task
    by_task: dict[int, list[tuple[int, str, int, int, str]]] = {}
    for window, slot in zip(windows, slots, strict=True):
        by_task.setdefault(int(slot) // per_task, []).append(
            (int(slot), window.pair_id, window.col_off, window.row_off, window.split)
        )
    tasks = []
    for task_id, chips in sorted(by_task.items()):
        start = task_id * per_task
        stop = min(start + per_task, layout.n_slots)
        used = {c[1] for c in chips}
        tasks.append(
            TileTask(
                task_id,
                start,
                stop,
                tuple(sorted(chips)),
                {p: pairs[p] for p in used},
                str(store),
                str(progress_dir),
                layout,
                config,
            )
        )
    return tasks


def _run_tasks(
    tasks: Sequence[TileTask],
    workers: int | None,
    scheduler: str | None,
    on_done: Callable[[], None],
) -> None:
    # Looked up at call time, so that tests can wrap the task function.
    run_tasks(run_tile_task, tasks, workers, scheduler, on_done)


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
    progress_dir = out / PROGRESS_DIR
    plan_path = progress_dir / "plan.json"
    started = json.loads(plan_path.read_text()) if plan_path.exists() else None
    if started is not None and started.get("fingerprint") != fingerprint and not force:
        raise SourceError(
            f"{out}: an unfinished store was started with other options or another catalog; "
            "rerun with --force to start over"
        )
    layout, windows, slots, pairs, messages = plan_tiling(catalog_dir, config)
    # The new store is cut beside the finished one and replaces it only once complete, so a
    # rebuild that fails (or is killed) leaves the earlier store readable and unchanged.
    store = progress_dir / CHIPS_ZARR
    if force or started is None or not store.is_dir():
        shutil.rmtree(progress_dir, ignore_errors=True)
        progress_dir.mkdir(parents=True)
        create_store(store, layout)
        with atomic_output(plan_path) as tmp:
            tmp.write_text(json.dumps({"fingerprint": fingerprint, "n_slots": layout.n_slots}))
    tasks = _make_tasks(layout, windows, slots, pairs, store, progress_dir, config)
    pending = [t for t in tasks if not (progress_dir / f"task-{t.task_id:06d}.json").exists()]
    with Progress(disable=not show_progress) as progress:
        bar = progress.add_task("tile", total=len(tasks), completed=len(tasks) - len(pending))
        _run_tasks(pending, workers, scheduler, lambda: progress.advance(bar))
    manifest = _finalize(out, layout, windows, slots, pairs, tasks, config, fingerprint, messages)
    return TileResult(out, manifest)


def _finalize(
    out: Path,
    layout: StoreLayout,
    windows: Sequence[ChipWindow],
    slots: np.ndarray,
    pairs: dict[str, PairSources],
    tasks: Sequence[TileTask],
    config: TileConfig,
    fingerprint: str,
    messages: list[str],
) -> dict[str, Any]:
    progress_dir = out / PROGRESS_DIR
    results: dict[int, dict[str, Any]] = {}
    totals = {
        k: _empty_stats(len(b)) for k, b in (("s2", layout.s2_bands), ("s1", layout.s1_bands)) if b
    }
    for task in tasks:
        marker = json.loads((progress_dir / f"task-{task.task_id:06d}.json").read_text())
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
    group = zarr.open_group(str(progress_dir / CHIPS_ZARR), mode="r+")
    attrs = store_metadata(group)
    attrs.update(normalisation=normalisation, tile_config=asdict(config), counts=counts)
    group.attrs[ATTRS_KEY] = attrs
    _replace_store(out, progress_dir / CHIPS_ZARR)
    with atomic_output(out / INDEX_FILE) as tmp:
        index.to_parquet(tmp, index=False)
    manifest = {
        "fingerprint": fingerprint,
        "version": __version__,
        "counts": counts,
        "messages": messages,
        "config": asdict(config),
        INTEGRITY_KEY: describe_store(out),
    }
    with atomic_output(out / MANIFEST_FILE) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return manifest


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
