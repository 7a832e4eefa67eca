"""S1 x S2 pairs: rasters whose footprints overlap enough and whose dates are close enough."""

from __future__ import annotations

import hashlib
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import Geod
from shapely import wkt

from eo_mmcl.geo.footprint import footprint_to_crs

_GEOD = Geod(ellps="WGS84")

PAIR_COLUMNS = (
    "pair_id", "s2_id", "s1_id", "scene", "s2_datetime", "s1_datetime", "time_gap_days",
    "overlap_km2", "overlap_fraction_s2", "crs", "shared_footprint_native", "geometry",
)  # fmt: skip


def _pair_id(s2_id: str, s1_id: str) -> str:
    # Content-derived ids stay the same when the catalog is rebuilt or sources are reordered.
    return hashlib.sha1(f"{s2_id}\n{s1_id}".encode()).hexdigest()[:12]


def find_pairs(
    rasters: gpd.GeoDataFrame, min_overlap_km2: float = 1.0, max_days: float = 12.0
) -> gpd.GeoDataFrame:
    """Pair S1 and S2 images whose footprints intersect and whose dates are close.

    Candidates come from a spatial join of the EPSG:4326 footprints; the shared footprint is
    then computed exactly in the S2 raster's CRS (the grid that tiling uses), its area
    geodesically.

    Args:
        rasters: The catalog's rasters table.
        min_overlap_km2: Minimum shared area.
        max_days: Maximum absolute time gap between the acquisitions, in days.

    Returns:
        One row per pair (columns ``PAIR_COLUMNS``), geometry = shared footprint in EPSG:4326,
        sorted by S2 then S1 id.
    """
    images = rasters[(rasters["role"] == "image") & rasters["datetime"].notna()]
    s1 = images[images["sensor"] == "S1"]
    s2 = images[images["sensor"] == "S2"]
    rows: list[dict[str, Any]] = []
    if len(s1) and len(s2):
        candidates = gpd.sjoin(
            s2[["raster_id", "geometry"]], s1[["raster_id", "geometry"]], predicate="intersects"
        )
        s1_by_id = s1.set_index("raster_id")
        s2_by_id = s2.set_index("raster_id")
        for s2_id, s1_id in zip(
            candidates["raster_id_left"], candidates["raster_id_right"], strict=True
        ):
            a, b = s2_by_id.loc[s2_id], s1_by_id.loc[s1_id]
            gap = (b["datetime"] - a["datetime"]) / pd.Timedelta(days=1)
            if abs(gap) > max_days:
                continue
            s2_fp = wkt.loads(a["footprint_native"])
            s1_fp = footprint_to_crs(wkt.loads(b["footprint_native"]), b["crs"], a["crs"])
            shared = s2_fp.intersection(s1_fp)
            if shared.is_empty:
                continue
            shared_4326 = footprint_to_crs(shared, a["crs"], "EPSG:4326")
            area_km2 = abs(_GEOD.geometry_area_perimeter(shared_4326)[0]) / 1e6
            if area_km2 < min_overlap_km2:
                continue
            rows.append(
                {
                    "pair_id": _pair_id(s2_id, s1_id),
                    "s2_id": s2_id,
                    "s1_id": s1_id,
                    "scene": a["scene"],
                    "s2_datetime": a["datetime"],
                    "s1_datetime": b["datetime"],
                    "time_gap_days": float(gap),
                    "overlap_km2": area_km2,
                    "overlap_fraction_s2": area_km2 / a["area_km2"],
                    "crs": a["crs"],
                    "shared_footprint_native": shared.wkt,
                    "geometry": shared_4326,
                }
            )
    frame = pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
    pairs = gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:4326")
    return pairs.sort_values(["s2_id", "s1_id"], ignore_index=True)
