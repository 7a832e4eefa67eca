"""Write simulated Sentinel-1/Sentinel-2 scene pairs, their label rasters and a truth sidecar."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.warp import calculate_default_transform
from rich.progress import Progress

from eo_mmcl import __version__
from eo_mmcl.errors import ConfigError
from eo_mmcl.geo.grid import RasterGrid
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.simulate.config import SimulationConfig
from eo_mmcl.simulate.fields import MapCoordinates
from eo_mmcl.simulate.landcover import LANDCOVER_CLASSES
from eo_mmcl.simulate.layout import (
    BLOCK,
    LABEL_NODATA,
    LABEL_TASKS,
    S2_PIXEL_M,
    SCENE_GAP_M,
    SimulatedScene,
    scene_files,
)
from eo_mmcl.simulate.rasters import SceneModel, write_s1_raster, write_s2_rasters
from eo_mmcl.simulate.sensors import S1Model, S2Model
from eo_mmcl.simulate.world import ParcelWorld

__all__ = ["LABEL_TASKS", "SimulatedScene", "scene_files", "simulate_scenes"]


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
    indices: Sequence[int] | None = None,
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
        indices: Only these scenes (``0 .. config.scenes - 1``; default: all), e.g. one job
            of the pipeline's simulate stage.

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
        for index in range(config.scenes) if indices is None else indices:
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
    scene = _scene_model(files, config, index)
    progress.update(
        task,
        total=len(scene.s2_grid.row_windows(BLOCK)) + len(scene.s1_grid.row_windows(BLOCK)),
    )
    cloud_pixels = write_s2_rasters(scene, progress, task)
    write_s1_raster(scene, progress, task)
    signatures = {
        "s2_reflectance": np.round(scene.s2_model.parcel_reflectance(), 5).tolist(),
        "s1_sigma0_db": np.round(scene.s1_model.parcel_sigma0_db(), 4).tolist(),
    }
    sidecar = _sidecar(
        files, config, scene.world, scene.s2_grid, scene.s1_grid, cloud_pixels, signatures
    )
    with atomic_output(files.sidecar) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=1, sort_keys=True))


def _scene_model(files: SimulatedScene, config: SimulationConfig, index: int) -> SceneModel:
    """Lay out a scene's grids and draw its parcel world and sensor models."""
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
    return SceneModel(files, config, index, world, s2_model, s1_model, s2_grid, s1_grid, s1_world)


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
