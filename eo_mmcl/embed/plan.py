"""Planning an export: the scenes of a catalog that a checkpoint can embed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from rasterio.crs import CRS

from eo_mmcl.catalog.build import (
    read_catalog,
    require_raster_files,
)
from eo_mmcl.embed.blocks import Scene
from eo_mmcl.embed.model import EmbeddingModel
from eo_mmcl.errors import SourceError
from eo_mmcl.objectives.checkpoint import check_fits_data
from eo_mmcl.tile.reader import RasterSpec


def _date(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def plan_scenes(
    catalog_dir: Path, model: EmbeddingModel, messages: list[str]
) -> tuple[list[Scene], bool]:
    """The scenes of a catalog, with the bands the model reads (checked before any work).

    Args:
        catalog_dir: Catalog folder.
        model: The model.
        messages: Notes are appended here.

    Returns:
        ``(scenes, s2_only)``.

    Raises:
        SourceError: If the catalog has no S2 image.
        ConfigError: If a raster lacks a band of the checkpoint.
    """
    catalog = read_catalog(catalog_dir)
    rasters = catalog.rasters.set_index("raster_id", drop=False)
    s2_only = catalog.pairs.empty
    if s2_only:
        rows = rasters[(rasters["sensor"] == "S2") & (rasters["role"] == "image")]
        jobs: list[tuple[str, str, str | None]] = [
            (str(r.raster_id), str(r.raster_id), None) for r in rows.itertuples()
        ]
        if not jobs:
            raise SourceError(f"{catalog_dir}: the catalog has no Sentinel-2 image")
        messages.append(f"{catalog_dir}: no S1/S2 pairs; exporting S2 embeddings only")
    else:
        jobs = [(str(p.pair_id), str(p.s2_id), str(p.s1_id)) for p in catalog.pairs.itertuples()]
    require_raster_files(
        catalog, [r for _, s2, s1 in jobs for r in (s2, s1) if r is not None], catalog_dir
    )
    names = [str(rasters.loc[s2]["scene"]) for _, s2, _ in jobs]
    scenes = []
    for (pair_id, s2_id, s1_id), name in zip(jobs, names, strict=True):
        s2_row = rasters.loc[s2_id]
        unique = name != "None" and name != "nan" and names.count(name) == 1
        _check_raster(model, s2_row, "s2")
        s2 = RasterSpec.from_catalog_row(s2_row, model.bands["s2"], "bilinear")
        s1 = None
        dates = [_date(s2_row["datetime"])]
        sources = [*map(str, s2_row["paths"])]
        if s1_id is not None:
            s1_row = rasters.loc[s1_id]
            _check_raster(model, s1_row, "s1")
            s1 = RasterSpec.from_catalog_row(s1_row, model.bands["s1"], "bilinear", db=True)
            dates.append(_date(s1_row["datetime"]))
            sources += [*map(str, s1_row["paths"])]
        scenes.append(
            Scene(
                name=name if unique else pair_id,
                s2=s2,
                s1=s1,
                crs=CRS.from_user_input(s2_row["crs"]).to_wkt(),
                transform=tuple(float(v) for v in s2_row["transform"]),
                width=int(s2_row["width"]),
                height=int(s2_row["height"]),
                dates=tuple(d for d in dates if d is not None),
                sources=tuple(sources),
            )
        )
    return scenes, s2_only


def _check_raster(model: EmbeddingModel, row: pd.Series, sensor: str) -> None:
    """The raster of a catalog row offers the checkpoint's bands (read by name)."""
    bands = {sensor: list(row["band_names"])}
    check_fits_data(model.path, model.meta, row["paths"][0], bands, by_name=True)


def default_window(meta: dict[str, Any]) -> int:
    """The training chip size the checkpoint records (or its chip store does), else 64.

    Args:
        meta: The checkpoint's ``eo_mmcl`` dict.

    Returns:
        Window side in pixels.
    """
    if meta.get("chip_size"):
        return int(meta["chip_size"])
    chips = Path(str(meta.get("chips_dir") or ""))
    manifest = chips / "tile_manifest.json"
    if str(chips) not in ("", ".") and manifest.is_file():
        return int(json.loads(manifest.read_text())["config"]["chip_size"])
    return 64
