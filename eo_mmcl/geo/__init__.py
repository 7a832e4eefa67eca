"""Georeferencing helpers: raster grids and footprints in native and geographic coordinates."""

from eo_mmcl.geo.footprint import footprint_to_crs
from eo_mmcl.geo.grid import RasterGrid

__all__ = ["RasterGrid", "footprint_to_crs"]
