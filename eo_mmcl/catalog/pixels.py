"""Cheap reads of a raster's pixels that show it decodes and holds data before it is catalogued.

Headers alone say nothing about the pixels: a GeoTIFF truncated to a third opens and reports
its full size, and an S1 raster that is all NaN has a perfectly good header. Both used to be
paired, then failed in ``tile`` or gave a store of zero chips. Decoding the first and the last
block catches truncation (the last block is the last data written), and a look for one valid
pixel catches empty rasters; both cost a few blocks for an ordinary raster.
"""

from __future__ import annotations

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window

#: GDAL drivers of the files the catalog accepts (a PNG renamed ``.tif`` is opened by GDAL's
#: PNG driver and must be refused as what it is).
GEOTIFF_DRIVERS = ("GTiff", "COG")
#: Largest side of the decimated read that looks for a valid pixel when the edge blocks hold
#: none (GDAL serves it from an overview where the file has one).
SAMPLE_SIDE = 256


def edge_blocks(ds: DatasetReader) -> tuple[Window, Window]:
    """The first and the last block of a raster's internal tiling (or strips).

    Args:
        ds: The open raster.

    Returns:
        ``(first, last)`` windows, clipped to the raster.
    """
    block_h, block_w = ds.block_shapes[0]
    first = Window(0, 0, min(block_w, ds.width), min(block_h, ds.height))
    row = (ds.height - 1) // block_h * block_h
    col = (ds.width - 1) // block_w * block_w
    return first, Window(col, row, ds.width - col, ds.height - row)


def valid_pixels(data: np.ndarray, nodata: tuple[float | None, ...]) -> np.ndarray:
    """Pixels where every band holds data: finite and not the band's nodata value.

    Args:
        data: Array of shape (bands, height, width).
        nodata: Nodata value per band (None: none).

    Returns:
        Boolean array of shape (height, width).
    """
    valid = np.ones(data.shape[1:], dtype=bool)
    for band, value in zip(data, nodata, strict=True):
        if np.issubdtype(band.dtype, np.floating):
            valid &= np.isfinite(band)
        if value is not None and not np.isnan(value):
            valid &= band != value
    return valid


def pixel_problem(ds: DatasetReader) -> str | None:
    """Why a raster's pixels cannot be used, or None when they can.

    Args:
        ds: The open raster.

    Returns:
        A reason in words a user can act on (not a GeoTIFF; a block that does not decode;
        no valid pixel anywhere), or None.
    """
    if ds.driver not in GEOTIFF_DRIVERS:
        return f"not a GeoTIFF (GDAL reads it as {ds.driver})"
    nodata = tuple(ds.nodatavals)
    blocks = []
    for window in edge_blocks(ds):
        try:
            blocks.append(ds.read(window=window))
        except RasterioError as err:
            # GDAL's own message (which offset, which codec) is the cause rasterio chains.
            return (
                f"unreadable or corrupt raster: the block at row {int(window.row_off)}, column "
                f"{int(window.col_off)} does not decode (truncated file?): {err.__cause__ or err}"
            )
    if any(valid_pixels(block, nodata).any() for block in blocks):
        return None
    scale = max(1.0, max(ds.height, ds.width) / SAMPLE_SIDE)
    shape = (ds.count, max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
    try:
        sample = ds.read(out_shape=shape, resampling=Resampling.nearest)
    except RasterioError as err:
        return f"unreadable or corrupt raster: {err}"
    if not valid_pixels(sample, nodata).any():
        return (
            f"no valid pixel: every pixel is nodata or NaN (read at {shape[1]} x {shape[2]} and "
            "in its first and last blocks)"
        )
    return None
