"""Render a simulated scene block by block into its GeoTIFFs (S2 grid rasters and the S1 raster)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from pyproj import Transformer
from rich.progress import Progress

from eo_mmcl.bands import S2_L2A_BANDS
from eo_mmcl.geo.grid import RasterGrid
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.simulate.config import SimulationConfig
from eo_mmcl.simulate.fields import MapCoordinates
from eo_mmcl.simulate.landcover import LANDCOVER_CLASSES
from eo_mmcl.simulate.layout import (
    ACQUISITION_TIME,
    BLOCK,
    CLOUD_NODATA,
    LABEL_NODATA,
    LABEL_TASKS,
    PARCEL_NODATA,
    S1_SWATH_HEADING_DEG,
    S2_NODATA,
    SimulatedScene,
)
from eo_mmcl.simulate.sensors import S1Model, S2Model
from eo_mmcl.simulate.world import ParcelWorld


@dataclass(frozen=True)
class SceneModel:
    """Everything a scene's rasters are rendered from.

    Args:
        files: Where the scene's files go.
        config: The simulation config.
        index: Scene index (seeds the per-block random streams).
        world: The parcels and their attributes.
        s2_model: Optical sensor model.
        s1_model: SAR sensor model.
        s2_grid: The S2 (world) grid.
        s1_grid: The S1 grid in its own CRS.
        s1_world: The S1 footprint on the world CRS.
    """

    files: SimulatedScene
    config: SimulationConfig
    index: int
    world: ParcelWorld
    s2_model: S2Model
    s1_model: S1Model
    s2_grid: RasterGrid
    s1_grid: RasterGrid
    s1_world: RasterGrid

    @property
    def common_tags(self) -> dict[str, str]:
        """Tags every raster of the scene carries."""
        return {"SCENE_ID": self.files.scene_id, "SIMULATED": "true", "GENERATOR": "eo_mmcl"}


def raster_profile(grid: RasterGrid, count: int, dtype: str, nodata: float | int) -> dict[str, Any]:
    """GeoTIFF creation options for a simulated raster: deflate, 256 px tiles where they fit.

    Args:
        grid: The raster's grid.
        count: Number of bands.
        dtype: Pixel type.
        nodata: Nodata value.

    Returns:
        A rasterio profile.
    """
    tiled = grid.width >= BLOCK and grid.height >= BLOCK
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": count,
        "dtype": dtype,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
        "compress": "deflate",
        "predictor": 3 if dtype.startswith("float") else 2,
        "interleave": "band",
        "BIGTIFF": "IF_SAFER",
    }
    if tiled:
        profile.update(tiled=True, blockxsize=BLOCK, blockysize=BLOCK)
    return profile


def block_rng(seed: int, scene: int, stream: int, block: int) -> np.random.Generator:
    """The random stream of one rendered block.

    Args:
        seed: Simulation seed.
        scene: Scene index.
        stream: 1 for S1, 2 for S2.
        block: Block index in the raster's row-window order.

    Returns:
        A generator seeded from all four.
    """
    # One independent stream per (scene, sensor, block): blocks can be rendered in any order.
    return np.random.default_rng(np.random.SeedSequence([seed, scene, stream, block]))


def s1_valid(x: np.ndarray, y: np.ndarray, footprint: RasterGrid) -> np.ndarray:
    """Pixels inside the simulated S1 swath (a rotated strip whose edges cut two corners).

    Args:
        x: Map x of the pixels (world CRS).
        y: Map y of the pixels.
        footprint: The S1 footprint on the world CRS.

    Returns:
        A boolean mask of the pixels' shape.
    """
    west, south, east, north = footprint.bounds
    cx, cy = (west + east) / 2, (south + north) / 2
    theta = np.deg2rad(S1_SWATH_HEADING_DEG)
    across = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
    return np.abs(across) <= 0.48 * (east - west)


def _tag_s2_rasters(
    scene: SceneModel,
    s2_ds: Any,
    cloud_ds: Any,
    parcel_ds: Any,
    label_ds: dict[str, Any],
) -> None:
    """Band names and tags of the S2-grid rasters (sensor, role, date, task and classes)."""
    s2_date = scene.config.s2_datetime.isoformat() + ACQUISITION_TIME
    common_tags = scene.common_tags
    k = scene.config.unique_classes
    s2_ds.descriptions = S2_L2A_BANDS
    s2_ds.update_tags(
        SENSOR="S2",
        PRODUCT="L2A",
        ROLE="image",
        ACQUISITION_DATETIME=s2_date,
        BOA_QUANTIFICATION_VALUE="10000",
        **common_tags,
    )
    cloud_ds.descriptions = ("cloud",)
    cloud_ds.update_tags(
        SENSOR="S2",
        ROLE="cloud_mask",
        ACQUISITION_DATETIME=s2_date,
        VALUES="0=clear 1=cloud",
        **common_tags,
    )
    parcel_ds.descriptions = ("parcel_id",)
    parcel_ds.update_tags(
        SENSOR="S2", ROLE="parcel_id", ACQUISITION_DATETIME=s2_date, **common_tags
    )
    for t, ds in label_ds.items():
        ds.descriptions = (t,)
        ds.update_tags(
            SENSOR="S2",
            ROLE="label",
            TASK=t,
            INFORMATION_GROUP=LABEL_TASKS[t],
            NUM_CLASSES=str(len(LANDCOVER_CLASSES) if t == "landcover" else k),
            CLASS_NAMES=",".join(LANDCOVER_CLASSES) if t == "landcover" else "",
            ACQUISITION_DATETIME=s2_date,
            **common_tags,
        )


def write_s2_rasters(scene: SceneModel, progress: Progress, task: Any) -> int:
    """Write the S2 image, cloud mask, parcel ids and label rasters, block by block.

    All S2-grid rasters are written together so that each block is rendered once; every file
    appears only when complete.

    Args:
        scene: What to render.
        progress: Progress display.
        task: The scene's progress-bar task (advanced once per block).

    Returns:
        The number of cloudy pixels.
    """
    files, grid, config = scene.files, scene.s2_grid, scene.config
    attrs = scene.world.attributes
    label_sources = {
        "landcover": attrs.landcover_s2,
        "s1_unique": attrs.s1_unique,
        "s2_unique": attrs.s2_unique,
        "synergy": attrs.synergy,
    }
    cloud_pixels = 0
    with (
        atomic_output(files.s2) as s2_tmp,
        atomic_output(files.cloud_mask) as cloud_tmp,
        atomic_output(files.parcel_ids) as parcel_tmp,
        atomic_output(files.labels["landcover"]) as lc_tmp,
        atomic_output(files.labels["s1_unique"]) as u1_tmp,
        atomic_output(files.labels["s2_unique"]) as u2_tmp,
        atomic_output(files.labels["synergy"]) as syn_tmp,
    ):
        label_tmps = {"landcover": lc_tmp, "s1_unique": u1_tmp, "s2_unique": u2_tmp}
        label_tmps["synergy"] = syn_tmp
        s2_ds = rasterio.open(s2_tmp, "w", **raster_profile(grid, 12, "uint16", S2_NODATA))
        cloud_ds = rasterio.open(cloud_tmp, "w", **raster_profile(grid, 1, "uint8", CLOUD_NODATA))
        parcel_ds = rasterio.open(
            parcel_tmp, "w", **raster_profile(grid, 1, "int32", PARCEL_NODATA)
        )
        label_ds = {
            t: rasterio.open(p, "w", **raster_profile(grid, 1, "uint8", LABEL_NODATA))
            for t, p in label_tmps.items()
        }
        try:
            _tag_s2_rasters(scene, s2_ds, cloud_ds, parcel_ds, label_ds)
            for b, window in enumerate(grid.row_windows(BLOCK)):
                coords = MapCoordinates(*grid.pixel_centre_axes(window), is_grid=True)
                rng = block_rng(config.seed, scene.index, 2, b)
                dn, ids, cloud = scene.s2_model.render(coords, rng)
                s2_ds.write(dn, window=window)
                cloud_ds.write(cloud.astype(np.uint8), 1, window=window)
                cloud_pixels += int(cloud.sum())
                parcel_ds.write(ids, 1, window=window)
                for t, ds in label_ds.items():
                    ds.write(label_sources[t][ids].astype(np.uint8), 1, window=window)
                progress.advance(task)
        finally:
            for ds in [s2_ds, cloud_ds, parcel_ds, *label_ds.values()]:
                ds.close()
    return cloud_pixels


def write_s1_raster(scene: SceneModel, progress: Progress, task: Any) -> None:
    """Write the S1 sigma0 raster (VV, VH in dB) on its own grid, block by block.

    Args:
        scene: What to render.
        progress: Progress display.
        task: The scene's progress-bar task (advanced once per block).
    """
    config, s1_grid, s2_grid = scene.config, scene.s1_grid, scene.s2_grid
    to_world = (
        None
        if s1_grid.crs == s2_grid.crs
        else Transformer.from_crs(s1_grid.crs, s2_grid.crs, always_xy=True)
    )
    dx, dy = config.coregistration_shift_m
    profile = raster_profile(s1_grid, 2, "float32", float("nan"))
    with atomic_output(scene.files.s1) as s1_tmp, rasterio.open(s1_tmp, "w", **profile) as ds:
        ds.descriptions = ("VV", "VH")
        ds.update_tags(
            SENSOR="S1",
            PRODUCT="GRD",
            ROLE="image",
            ACQUISITION_DATETIME=config.s1_datetime.isoformat() + ACQUISITION_TIME,
            UNITS="dB",
            QUANTITY="sigma0",
            ENL=str(config.enl),
            **scene.common_tags,
        )
        for b, window in enumerate(s1_grid.row_windows(BLOCK)):
            if to_world is None:
                coords = MapCoordinates(*s1_grid.pixel_centre_axes(window), is_grid=True)
            else:
                px, py = to_world.transform(*s1_grid.pixel_centres(window))
                coords = MapCoordinates(np.asarray(px), np.asarray(py), is_grid=False)
            # A geolocation error of (dx, dy): the pixel labelled at p sees the ground at p-d.
            ground = coords.shifted(-dx, -dy)
            sigma0 = scene.s1_model.render(ground, block_rng(config.seed, scene.index, 1, b))
            sigma0[:, ~s1_valid(*coords.mesh(), scene.s1_world)] = np.nan
            ds.write(sigma0, window=window)
            progress.advance(task)
