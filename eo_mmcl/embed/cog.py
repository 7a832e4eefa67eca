"""Embedding rasters: blocks streamed into a tiled GeoTIFF, finished as a Cloud Optimized GeoTIFF.

The raster contract (DESIGN.md, "Embedding raster contract"): one band per dimension described
``E000``, ``E001``, ...; north-up, on the S2 grid at the output stride; nodata set; tags naming
the objective, modality, checkpoint hash, package version and dates; average overviews.

Data types:
- ``float16``: IEEE half floats, stored by GDAL's GTiff driver as Float32 with ``NBITS=16`` (the
  GDAL this package runs on has no Float16 data type; readers see float32). Nodata NaN.
- ``uint8``: unsigned 8-bit codes, ``value = code * scale + offset`` with a scale and offset per
  band from that band's min and max: ``scale = (max - min) / 254``, ``offset = min``, codes
  0..254, nodata 255. Unsigned because GDAL before 3.7 (and so the QGIS of Debian 12 and Ubuntu
  LTS) has no signed 8-bit type: it reads int8 codes as bytes, so they wrap and the -128 nodata
  is lost. Per band, because embedding dimensions differ in spread by orders of magnitude: one
  scale for all left low-variance dimensions a handful of levels. Rasterio (``ds.scales``,
  ``ds.offsets``), rioxarray (``mask_and_scale=True``), GDAL and QGIS all apply per-band scale
  and offset. Quantisation error is at most ``scale / 2`` per value, per band (recorded as the
  band tag ``QUANTIZATION_MAX_ERROR``; the dataset tag holds the largest).
- ``int8`` is accepted as ``--dtype`` and writes ``uint8``. Files written as int8 by earlier
  versions (one shared scale, nodata -128) are still read: every reader here decodes through
  the file's own scales, offsets and nodata.

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

DTYPES = ("float16", "uint8")
#: Names ``--dtype`` also accepts, and the type each writes.
DTYPE_ALIASES = {"int8": "uint8"}
UINT8_NODATA = 255
UINT8_MAX_CODE = 254
#: Internal tile side of large rasters (and the COG's BLOCKSIZE); overviews are built until
#: the smallest fits one tile, so small rasters use :data:`SMALL_TILE_PX` to get overviews too.
TILE_PX = 256
SMALL_TILE_PX = 128  # the least GDAL's COG driver accepts


#: Overviews of small rasters halve until their longer side is at most this many pixels.
SMALLEST_OVERVIEW_PX = 16


def overview_count(height: int, width: int) -> int | None:
    """Overview levels for a raster that fits in one tile (None: GDAL's own choice).

    GDAL's COG driver builds overviews until the smallest fits one tile, so a raster smaller
    than a tile (the demo's are) would get none; these get levels that halve down to
    :data:`SMALLEST_OVERVIEW_PX` instead (a raster at most that size has none).

    Args:
        height: Rows.
        width: Columns.

    Returns:
        The number of levels, or None where GDAL's rule already builds some.
    """
    side = max(height, width)
    if side > tile_size(height, width):
        return None
    levels = 0
    while side > SMALLEST_OVERVIEW_PX:
        side = -(-side // 2)
        levels += 1
    return levels


def tile_size(height: int, width: int) -> int:
    """Internal tile side for a raster of this size.

    Args:
        height: Rows.
        width: Columns.

    Returns:
        :data:`TILE_PX`, or :data:`SMALL_TILE_PX` below 1024 px.
    """
    return TILE_PX if max(height, width) >= 1024 else SMALL_TILE_PX


def resolve_dtype(name: str) -> str:
    """The stored type that ``--dtype name`` writes.

    Args:
        name: ``float16``, ``uint8`` or an alias (``int8``).

    Returns:
        ``float16`` or ``uint8``.

    Raises:
        ConfigError: If the name is unknown.
    """
    resolved = DTYPE_ALIASES.get(name, name)
    if resolved not in DTYPES:
        choices = (*DTYPES, *DTYPE_ALIASES)
        raise ConfigError(f"--dtype must be one of {choices}, got {name!r}")
    return resolved


@dataclass(frozen=True)
class Quantisation:
    """How stored values map to embedding values, per band.

    Args:
        dtype: ``float16`` or ``uint8``.
        scales: Per band: ``value = code * scale + offset`` (empty for floats).
        offsets: Per band, see ``scales``.
    """

    dtype: str
    scales: tuple[float, ...] = ()
    offsets: tuple[float, ...] = ()

    @property
    def nodata(self) -> float:
        """The nodata value of the stored type."""
        return float("nan") if self.dtype == "float16" else float(UINT8_NODATA)

    @property
    def max_errors(self) -> tuple[float, ...]:
        """Largest quantisation error of a value, per band (float16: 0, rounding is relative)."""
        return tuple(s / 2.0 for s in self.scales) if self.dtype == "uint8" else ()

    @property
    def max_error(self) -> float:
        """The largest of :attr:`max_errors` (0 for float16)."""
        return max(self.max_errors, default=0.0)

    @classmethod
    def from_range(cls, dtype: str, vmin: np.ndarray, vmax: np.ndarray) -> Quantisation:
        """The quantisation for values of band ``b`` within ``[vmin[b], vmax[b]]``.

        Args:
            dtype: ``float16``, ``uint8`` or an alias.
            vmin: Smallest value per band (NaN or inf for a band without data).
            vmax: Largest value per band.

        Returns:
            The quantisation.

        Raises:
            ConfigError: If the dtype is unknown.
        """
        dtype = resolve_dtype(dtype)
        if dtype == "float16":
            return cls(dtype)
        low = np.asarray(vmin, dtype=np.float64).reshape(-1)
        high = np.asarray(vmax, dtype=np.float64).reshape(-1)
        empty = ~(np.isfinite(low) & np.isfinite(high))  # a band that is nodata throughout
        low, high = np.where(empty, 0.0, low), np.where(empty, 0.0, high)
        scales = np.maximum((high - low) / UINT8_MAX_CODE, 1e-12)
        return cls(dtype, scales=tuple(map(float, scales)), offsets=tuple(map(float, low)))

    def _per_band(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shape = (-1,) + (1,) * (values.ndim - 1)
        scales = np.asarray(self.scales, dtype=np.float64).reshape(shape)
        offsets = np.asarray(self.offsets, dtype=np.float64).reshape(shape)
        return scales, offsets

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Embedding values (NaN = nodata), bands first, to stored values.

        Args:
            values: ``(D, ...)`` float32 array.

        Returns:
            float32 (rounded to half precision) or uint8 codes.
        """
        if self.dtype == "float16":
            return values.astype(np.float16).astype(np.float32)
        scales, offsets = self._per_band(values)
        missing = np.isnan(values)
        codes = np.rint((np.where(missing, 0.0, values) - offsets) / scales)
        codes = np.clip(codes, 0, UINT8_MAX_CODE)
        codes[missing] = UINT8_NODATA
        return codes.astype(np.uint8)

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Stored values, bands first, back to embedding values (NaN at nodata).

        Args:
            stored: ``(D, ...)`` stored array.

        Returns:
            float32.
        """
        if self.dtype == "float16":
            return stored.astype(np.float32)
        scales, offsets = self._per_band(stored)
        out = (stored.astype(np.float64) * scales + offsets).astype(np.float32)
        out[stored == UINT8_NODATA] = np.nan
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
        "dtype": "float32" if is_float else "uint8",
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
                dst.scales = quantisation.scales
                dst.offsets = quantisation.offsets
                for band, error in enumerate(quantisation.max_errors, start=1):
                    dst.update_tags(band, QUANTIZATION_MAX_ERROR=repr(error))
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
        levels = overview_count(height, width)
        if levels is not None:
            options["OVERVIEW_COUNT"] = levels  # GDAL >= 3.6
        rio_copy(scratch, path, driver="COG", **options)
    finally:
        scratch.unlink(missing_ok=True)
