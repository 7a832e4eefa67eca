"""Planning a tiling run: each pair's sources, its chip windows, the splits and the layout.

A pair's sources are its S2 and S1 rasters, its label rasters and its cloud mask; its windows
lie on the S2 grid over the shared footprint.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from rasterio.crs import CRS
from shapely import wkt

from eo_mmcl.bands import S1_BANDS, S2_L2A_BANDS
from eo_mmcl.catalog.build import read_catalog, require_raster_files
from eo_mmcl.errors import SourceError
from eo_mmcl.tile.config import TileConfig
from eo_mmcl.tile.plan import ChipWindow, assign_splits, lattice_windows, store_order
from eo_mmcl.tile.reader import RasterSpec
from eo_mmcl.tile.store import (
    SPLITS,
    StoreLayout,
    TaskSpec,
)

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
