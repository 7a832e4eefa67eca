"""Write simulated Sentinel-1/Sentinel-2 scene pairs, their label rasters and a truth sidecar."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.warp import calculate_default_transform
from rich.progress import Progress

from eo_mmcl import __version__
from eo_mmcl.bands import S2_L2A_BANDS
from eo_mmcl.errors import ConfigError
from eo_mmcl.geo.grid import RasterGrid
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.simulate.config import SimulationConfig
from eo_mmcl.simulate.fields import MapCoordinates
from eo_mmcl.simulate.landcover import LANDCOVER_CLASSES
from eo_mmcl.simulate.sensors import S1Model, S2Model
from eo_mmcl.simulate.world import ParcelWorld

#: Label tasks written as rasters on the S2 grid, with the information group each one needs.
LABEL_TASKS: dict[str, str] = {
    "landcover": "R",
    "s1_unique": "U1",
    "s2_unique": "U2",
    "synergy": "S",
}
LABEL_NODATA = 255
CLOUD_NODATA = 255
PARCEL_NODATA = -1
S2_NODATA = 0
BLOCK = 256
#: Across-track heading of the simulated S1 swath: its edges cut the raster's corners (NaN).
S1_SWATH_HEADING_DEG = 12.0
S2_PIXEL_M = 10.0
SCENE_GAP_M = 5_000.0
ACQUISITION_TIME = "T10:00:00Z"


@dataclass(frozen=True)
class SimulatedScene:
    """Paths of one simulated scene pair.

    Args:
        scene_id: Scene identifier (file name prefix).
        s2: S2 L2A GeoTIFF.
        s1: S1 GRD GeoTIFF.
        labels: Label raster per task.
        cloud_mask: S2 cloud mask raster.
        parcel_ids: Parcel id raster on the S2 grid.
        sidecar: JSON with every latent parameter and knob.
    """

    scene_id: str
    s2: Path
    s1: Path
    labels: dict[str, Path]
    cloud_mask: Path
    parcel_ids: Path
    sidecar: Path


def scene_files(out_dir: Path, scene_id: str, config: SimulationConfig) -> SimulatedScene:
    """Names of a scene's files: sensor and acquisition date are in every raster's name.

    Args:
        out_dir: Output folder.
        scene_id: Scene identifier (no underscores).
        config: Simulation config (for the dates).

    Returns:
        The scene's paths.
    """
    d2 = config.s2_datetime.strftime("%Y%m%d")
    d1 = config.s1_datetime.strftime("%Y%m%d")
    return SimulatedScene(
        scene_id=scene_id,
        s2=out_dir / f"{scene_id}_S2_{d2}.tif",
        s1=out_dir / f"{scene_id}_S1_{d1}.tif",
        labels={t: out_dir / f"{scene_id}_label-{t}_{d2}.tif" for t in LABEL_TASKS},
        cloud_mask=out_dir / f"{scene_id}_cloudmask_{d2}.tif",
        parcel_ids=out_dir / f"{scene_id}_parcelid_{d2}.tif",
        sidecar=out_dir / f"{scene_id}_truth.json",
    )


def _profile(grid: RasterGrid, count: int, dtype: str, nodata: float | int) -> dict[str, Any]:
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


def _block_rng(seed: int, scene: int, stream: int, block: int) -> np.random.Generator:
    # One independent stream per (scene, sensor, block): blocks can be rendered in any order.
    return np.random.default_rng(np.random.SeedSequence([seed, scene, stream, block]))


def _s1_world_grid(config: SimulationConfig, s2: RasterGrid) -> tuple[RasterGrid, RasterGrid]:
    """S1 grid in its own CRS, and the same footprint expressed on the world (S2) CRS.

    S1 covers a shifted square so that only ``overlap`` of the S2 footprint is shared, and its
    origin is off the S2 grid by a fraction of a pixel, so resampling is never a no-op.
    """
    side = s2.width * S2_PIXEL_M
    shift = side * (1.0 - math.sqrt(config.overlap))
    west = s2.bounds[0] + shift + 3.7
    north = s2.bounds[3] - shift - 6.1
    n = math.ceil(side / config.s1_resolution)
    world = RasterGrid.from_origin(s2.crs, west, north, config.s1_resolution, n, n)
    dst_crs = config.s1_crs_resolved
    if dst_crs == s2.crs:
        return world, world
    transform, width, height = calculate_default_transform(s2.crs, dst_crs, n, n, *world.bounds)
    return RasterGrid(dst_crs, transform, int(width), int(height)), world


def _s1_valid(x: np.ndarray, y: np.ndarray, footprint: RasterGrid) -> np.ndarray:
    """Pixels inside the simulated S1 swath (a rotated strip whose edges cut two corners)."""
    west, south, east, north = footprint.bounds
    cx, cy = (west + east) / 2, (south + north) / 2
    theta = np.deg2rad(S1_SWATH_HEADING_DEG)
    across = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
    return np.abs(across) <= 0.48 * (east - west)


def _scene_is_current(files: SimulatedScene, meta: dict[str, Any]) -> bool:
    if not files.sidecar.exists():
        return False
    paths = [files.s2, files.s1, files.cloud_mask, files.parcel_ids, *files.labels.values()]
    if not all(p.exists() for p in paths):
        return False
    try:
        old = json.loads(files.sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return bool(old.get("config") == meta["config"] and old.get("version") == meta["version"])


def simulate_scenes(
    out_dir: str | Path,
    config: SimulationConfig,
    force: bool = False,
    show_progress: bool = False,
) -> list[SimulatedScene]:
    """Simulate ``config.scenes`` co-located S1/S2 scene pairs and write them to ``out_dir``.

    Rendering goes block by block (256 rows), so memory does not grow with the scene size.
    Every file is written under a temporary name and renamed when complete; the sidecar is
    written last and marks a finished scene, which a re-run with the same config skips.

    Args:
        out_dir: Output folder (created).
        config: Simulation knobs.
        force: Rewrite scenes that are already complete.
        show_progress: Show a rich progress bar.

    Returns:
        The written (or already present) scenes.

    Raises:
        ConfigError: If ``out_dir`` (or a folder above it) is a file.
    """
    out = Path(out_dir)
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"{blocking}: is a file, not a folder for simulated scenes")
    out.mkdir(parents=True, exist_ok=True)
    scenes: list[SimulatedScene] = []
    with Progress(disable=not show_progress, transient=False) as progress:
        for index in range(config.scenes):
            scene_id = f"sim-s{config.seed}-{index:02d}"
            files = scene_files(out, scene_id, config)
            task = progress.add_task(f"simulate {scene_id}", total=None)
            meta = {"config": config.to_dict(), "version": __version__}
            if force or not _scene_is_current(files, meta):
                _simulate_one(files, config, index, progress, task)
            progress.update(task, completed=1, total=1)
            scenes.append(files)
    return scenes


def _simulate_one(
    files: SimulatedScene, config: SimulationConfig, index: int, progress: Progress, task: Any
) -> None:
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, index]))
    west = config.origin[0] + index * (config.size * S2_PIXEL_M + SCENE_GAP_M)
    s2_grid = RasterGrid.from_origin(
        config.s2_crs, west, config.origin[1], S2_PIXEL_M, config.size, config.size
    )
    s1_grid, s1_world = _s1_world_grid(config, s2_grid)
    spacing = config.parcel_size * S2_PIXEL_M
    margin = 3 * spacing + max(abs(v) for v in config.coregistration_shift_m)
    b2, b1 = s2_grid.bounds, s1_world.bounds
    world_bounds = (
        min(b2[0], b1[0]) - margin,
        min(b2[1], b1[1]) - margin,
        max(b2[2], b1[2]) + margin,
        max(b2[3], b1[3]) + margin,
    )
    world = ParcelWorld(rng, world_bounds, spacing, config.unique_classes, config.change_fraction)
    s2_model = S2Model(
        world, rng, config.optical_unique_strength, config.optical_noise, config.cloud_fraction
    )
    s1_model = S1Model(world, rng, config.sar_unique_strength_db, config.enl)
    # The cloud threshold is a quantile over the scene: a grid decimated 8x is plenty.
    s2_model.calibrate_clouds(MapCoordinates(*s2_grid.pixel_centre_axes(step=8), is_grid=True))

    s2_windows = s2_grid.row_windows(BLOCK)
    s1_windows = s1_grid.row_windows(BLOCK)
    progress.update(task, total=len(s2_windows) + len(s1_windows))
    attrs = world.attributes
    label_sources = {
        "landcover": attrs.landcover_s2,
        "s1_unique": attrs.s1_unique,
        "s2_unique": attrs.s2_unique,
        "synergy": attrs.synergy,
    }
    s2_date = config.s2_datetime.isoformat() + ACQUISITION_TIME
    s1_date = config.s1_datetime.isoformat() + ACQUISITION_TIME
    k = config.unique_classes
    common_tags = {"SCENE_ID": files.scene_id, "SIMULATED": "true", "GENERATOR": "eo_mmcl"}
    cloud_pixels = 0

    # All S2-grid rasters are written together, block by block, so each block is rendered once.
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
        s2_ds = rasterio.open(s2_tmp, "w", **_profile(s2_grid, 12, "uint16", S2_NODATA))
        cloud_ds = rasterio.open(cloud_tmp, "w", **_profile(s2_grid, 1, "uint8", CLOUD_NODATA))
        parcel_ds = rasterio.open(parcel_tmp, "w", **_profile(s2_grid, 1, "int32", PARCEL_NODATA))
        label_ds = {
            t: rasterio.open(p, "w", **_profile(s2_grid, 1, "uint8", LABEL_NODATA))
            for t, p in label_tmps.items()
        }
        try:
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
            for b, window in enumerate(s2_windows):
                coords = MapCoordinates(*s2_grid.pixel_centre_axes(window), is_grid=True)
                dn, ids, cloud = s2_model.render(coords, _block_rng(config.seed, index, 2, b))
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

    to_world = (
        None
        if s1_grid.crs == s2_grid.crs
        else Transformer.from_crs(s1_grid.crs, s2_grid.crs, always_xy=True)
    )
    dx, dy = config.coregistration_shift_m
    s1_profile = _profile(s1_grid, 2, "float32", float("nan"))
    with atomic_output(files.s1) as s1_tmp, rasterio.open(s1_tmp, "w", **s1_profile) as ds:
        ds.descriptions = ("VV", "VH")
        ds.update_tags(
            SENSOR="S1",
            PRODUCT="GRD",
            ROLE="image",
            ACQUISITION_DATETIME=s1_date,
            UNITS="dB",
            QUANTITY="sigma0",
            ENL=str(config.enl),
            **common_tags,
        )
        for b, window in enumerate(s1_windows):
            if to_world is None:
                coords = MapCoordinates(*s1_grid.pixel_centre_axes(window), is_grid=True)
            else:
                px, py = to_world.transform(*s1_grid.pixel_centres(window))
                coords = MapCoordinates(np.asarray(px), np.asarray(py), is_grid=False)
            # A geolocation error of (dx, dy): the pixel labelled at p sees the ground at p-d.
            ground = coords.shifted(-dx, -dy)
            sigma0 = s1_model.render(ground, _block_rng(config.seed, index, 1, b))
            sigma0[:, ~_s1_valid(*coords.mesh(), s1_world)] = np.nan
            ds.write(sigma0, window=window)
            progress.advance(task)

    signatures = {
        "s2_reflectance": np.round(s2_model.parcel_reflectance(), 5).tolist(),
        "s1_sigma0_db": np.round(s1_model.parcel_sigma0_db(), 4).tolist(),
    }
    sidecar = _sidecar(files, config, world, s2_grid, s1_grid, cloud_pixels, signatures)
    with atomic_output(files.sidecar) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=1, sort_keys=True))


def _grid_dict(grid: RasterGrid) -> dict[str, Any]:
    return {
        "crs": grid.crs.to_string(),
        "transform": list(grid.transform)[:6],
        "width": grid.width,
        "height": grid.height,
        "bounds": list(grid.bounds),
    }


def _sidecar(
    files: SimulatedScene,
    config: SimulationConfig,
    world: ParcelWorld,
    s2_grid: RasterGrid,
    s1_grid: RasterGrid,
    cloud_pixels: int,
    signatures: dict[str, Any],
) -> dict[str, Any]:
    attrs = world.attributes
    k = config.unique_classes
    return {
        "version": __version__,
        "scene_id": files.scene_id,
        "config": config.to_dict(),
        "files": {
            "s2": files.s2.name,
            "s1": files.s1.name,
            "cloud_mask": files.cloud_mask.name,
            "parcel_ids": files.parcel_ids.name,
            "labels": {t: p.name for t, p in files.labels.items()},
        },
        "dates": {"s2": config.s2_datetime.isoformat(), "s1": config.s1_datetime.isoformat()},
        "grids": {"s2": _grid_dict(s2_grid), "s1": _grid_dict(s1_grid)},
        "tasks": {
            t: {
                "information_group": g,
                "classes": list(LANDCOVER_CLASSES) if t == "landcover" else list(range(k)),
                "nodata": LABEL_NODATA,
            }
            for t, g in LABEL_TASKS.items()
        },
        "semantics": {
            "s2_unique": "optical-only attribute (canopy pigment / water turbidity): moves "
            "B01-B03 and B05 reflectance, never the backscatter",
            "s1_unique": "SAR-only attribute (soil moisture): raises VV (and VH less), never "
            "the optical spectrum",
            "synergy": f"(s1_unique + s2_unique) mod {k}: independent of each alone"
            + (" (XOR of two binary attributes, as in Trifeatures)" if k == 2 else ""),
            "landcover": "shared: changes both the spectrum and the backscatter",
        },
        "scale": {
            "parcel_size_px": config.parcel_size,
            "parcel_size_m": world.parcel_spacing,
            "recommended_max_chip_px": int(config.parcel_size // 2),
            "note": "chip-level (majority) labels are meaningful for chips up to about half "
            "the parcel diameter; pixel-level probes need no such assumption",
        },
        "realised": {
            "n_parcels": world.n_parcels,
            "cloud_fraction": cloud_pixels / (s2_grid.width * s2_grid.height),
            "changed_fraction": float(attrs.changed.mean()),
        },
        "parcels": {
            "x": np.round(world.seeds[:, 0], 2).tolist(),
            "y": np.round(world.seeds[:, 1], 2).tolist(),
            "landcover_s2": attrs.landcover_s2.tolist(),
            "landcover_s1": attrs.landcover_s1.tolist(),
            "changed": attrs.changed.tolist(),
            "s2_unique": attrs.s2_unique.tolist(),
            "s1_unique": attrs.s1_unique.tolist(),
            "synergy": attrs.synergy.tolist(),
            "brightness": np.round(attrs.brightness, 5).tolist(),
            "vigour": np.round(attrs.vigour, 5).tolist(),
            # Noise-free signatures (no texture, noise, speckle or cloud): the probe stage's
            # truth ceiling reads chips built from them.
            **signatures,
        },
    }
