"""Where a simulated scene's files go, and the codes its rasters use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eo_mmcl.simulate.config import SimulationConfig

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
