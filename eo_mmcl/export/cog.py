"""Embedding rasters: blocks streamed into a tiled GeoTIFF, finished as a Cloud Optimized GeoTIFF.

The raster contract (DESIGN.md, "Embedding raster contract"): one band per dimension described
``E000``, ``E001``, ...; north-up, on the S2 grid at the output stride; nodata set; tags naming
the objective, modality, checkpoint hash, package version and dates; average overviews.

Data types:
- ``float16``: IEEE half floats, stored by GDAL's GTiff driver as Float32 with ``NBITS=16`` (the
  GDAL this package runs on has no Float16 data type; readers see float32). Nodata NaN.
- ``int8``: ``value = stored * scale + offset`` with one scale and offset shared by every band
  (xarray/rioxarray apply a scale only when all bands share it), from the raster's min and max:
  ``scale = (max - min) / 254``, stored values in -127..127, nodata -128. Quantisation error is
  at most ``scale / 2`` per value (the export checks and records it as ``QUANTIZATION_ERROR``).

GDAL's COG driver builds the overviews and the COG layout from the finished tiled GeoTIFF
(``rasterio.shutil.copy(..., driver="COG")``): no hand-written IFD ordering.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window

from eo_mmcl.errors import ConfigError

DTYPES = ("float16", "int8")
INT8_NODATA = -128
INT8_MAX = 127
#: Internal tile side of large rasters (and the COG's BLOCKSIZE); overviews are built until
#: the smallest fits one tile, so small rasters use :data:`SMALL_TILE_PX` to get overviews too.
TILE_PX = 256
SMALL_TILE_PX = 128  # the least GDAL's COG driver accepts


def tile_size(height: int, width: int) -> int:
    """Internal tile side for a raster of this size.

    Args:
        height: Rows.
        width: Columns.

    Returns:
        :data:`TILE_PX`, or :data:`SMALL_TILE_PX` below 1024 px.
    """
    return TILE_PX if max(height, width) >= 1024 else SMALL_TILE_PX


@dataclass(frozen=True)
class Quantisation:
    """How stored values map to embedding values.

    Args:
        dtype: ``float16`` or ``int8``.
        scale: ``value = stored * scale + offset`` (1 for floats).
        offset: See ``scale``.
    """

    dtype: str
    scale: float = 1.0
    offset: float = 0.0

    @property
    def nodata(self) -> float:
        """The nodata value of the stored type."""
        return float("nan") if self.dtype == "float16" else float(INT8_NODATA)

    @property
    def max_error(self) -> float:
        """Largest quantisation error of a value (float16: 0, rounding is relative)."""
        return self.scale / 2.0 if self.dtype == "int8" else 0.0

    @classmethod
    def from_range(cls, dtype: str, vmin: float, vmax: float) -> Quantisation:
        """The quantisation for values within ``[vmin, vmax]``.

        Args:
            dtype: ``float16`` or ``int8``.
            vmin: Smallest value.
            vmax: Largest value.

        Returns:
            The quantisation.

        Raises:
            ConfigError: If the dtype is unknown.
        """
        if dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {DTYPES}, got {dtype!r}")
        if dtype == "float16":
            return cls(dtype)
        if not np.isfinite(vmin) or not np.isfinite(vmax):
            vmin = vmax = 0.0  # an all-nodata raster
        scale = max((vmax - vmin) / (2 * INT8_MAX), 1e-12)
        return cls(dtype, scale=float(scale), offset=float((vmax + vmin) / 2.0))

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Embedding values (NaN = nodata) to stored values.

        Args:
            values: float32 array.

        Returns:
            float32 (rounded to half precision) or int8.
        """
        if self.dtype == "float16":
            return values.astype(np.float16).astype(np.float32)
        stored = np.rint((values - self.offset) / self.scale)
        stored = np.clip(np.nan_to_num(stored, nan=INT8_NODATA), INT8_NODATA, INT8_MAX)
        stored[np.isnan(values)] = INT8_NODATA
        return stored.astype(np.int8)

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored values back to embedding values (NaN at nodata).

        Args:
            stored: Stored array.

        Returns:
            float32.
        """
        if self.dtype == "float16":
            return stored.astype(np.float32)
        out = stored.astype(np.float32) * self.scale + self.offset
        out[stored == INT8_NODATA] = np.nan
        return out


def band_names(dims: int) -> tuple[str, ...]:
    """Band descriptions ``E000``, ``E001``, ...

    Args:
        dims: Embedding dimensions.

    Returns:
        The names.
    """
    return tuple(f"E{i:03d}" for i in range(dims))


def write_embedding_cog(
    path: Path,
    scratch: Path,
    blocks: Iterable[tuple[tuple[int, int, int, int], Callable[[], np.ndarray]]],
    shape: tuple[int, int, int],
    crs: CRS,
    transform: Affine,
    quantisation: Quantisation,
    tags: Mapping[str, str],
) -> None:
    """Stream blocks into a tiled GeoTIFF, then copy it into a COG with average overviews.

    Only one block is in memory at a time, so memory does not grow with the raster.

    Args:
        path: Where the COG goes (the caller makes this atomic).
        scratch: Path of the intermediate tiled GeoTIFF (removed afterwards).
        blocks: ``((row0, col0, rows, cols), load)`` where ``load()`` returns the
            ``(D, rows, cols)`` float32 block with NaN at nodata.
        shape: ``(D, height, width)``.
        crs: The output CRS.
        transform: The output transform (north-up).
        quantisation: How values are stored.
        tags: Dataset tags.
    """
    dims, height, width = shape
    tile = tile_size(height, width)
    is_float = quantisation.dtype == "float16"
    profile: dict[str, object] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": dims,
        "dtype": "float32" if is_float else "int8",
        "nodata": quantisation.nodata,
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": tile,
        "blockysize": tile,
        "interleave": "pixel",
        "BIGTIFF": "IF_SAFER",
        # The scratch file is read once by the COG copy: fast compression is enough.
        "compress": "zstd",
        "zstd_level": 1,
    }
    if is_float:
        profile["NBITS"] = 16
    try:
        with rasterio.open(scratch, "w", **profile) as dst:
            dst.descriptions = band_names(dims)
            if not is_float:
                dst.scales = (quantisation.scale,) * dims
                dst.offsets = (quantisation.offset,) * dims
            dst.update_tags(**tags)
            for (row0, col0, rows, cols), load in blocks:
                data = quantisation.encode(load())
                dst.write(data, window=Window(col0, row0, cols, rows))
        options: dict[str, object] = {
            # DEFLATE opens in every GIS; level 1 costs a third less time than the default 6
            # and compresses embeddings (noise-like mantissas) about as well.
            "COMPRESS": "DEFLATE",
            "LEVEL": 1,
            "PREDICTOR": "YES",
            "BLOCKSIZE": tile,
            "OVERVIEW_RESAMPLING": "AVERAGE",
            "BIGTIFF": "IF_SAFER",
            # GDAL compresses the COG's tiles on every core.
            "NUM_THREADS": "ALL_CPUS",
        }
        if is_float:
            options["NBITS"] = 16
        rio_copy(scratch, path, driver="COG", **options)
    finally:
        scratch.unlink(missing_ok=True)
