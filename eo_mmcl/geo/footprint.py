"""Footprint geometries reprojected between CRSs with edge densification."""

from __future__ import annotations

from rasterio.crs import CRS
from rasterio.warp import transform_geom
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry


def footprint_to_crs(
    geometry: BaseGeometry, src_crs: CRS | str, dst_crs: CRS | str = "EPSG:4326"
) -> BaseGeometry:
    """Reproject a footprint polygon, densifying its edges so that curved edges stay curved.

    A UTM rectangle is not a rectangle in EPSG:4326; reprojecting only its four corners would
    misplace its edges by metres to tens of metres. GDAL's ``transform_geom`` densifies first.

    Args:
        geometry: The footprint in ``src_crs`` coordinates.
        src_crs: The CRS of ``geometry``.
        dst_crs: The target CRS (geographic WGS84 by default).

    Returns:
        The footprint in ``dst_crs`` coordinates.
    """
    src = CRS.from_user_input(src_crs)
    dst = CRS.from_user_input(dst_crs)
    if src == dst:
        return geometry
    out = transform_geom(src, dst, mapping(geometry), antimeridian_cutting=True, precision=-1)
    return shape(out)
