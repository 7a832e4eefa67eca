"""Read a catalogued raster (one or several files) onto windows of the S2 grid.

Files already on the S2 grid (same CRS, pixel size and pixel-aligned origin) are read directly.
Others are read around the window in their own grid and resampled with GDAL's warper
(``rasterio.warp.reproject``): bilinear for continuous values, nearest for classes. Backscatter
in dB is resampled in linear power (averaging dB would bias dark targets) and converted back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.windows import Window, from_bounds

MARGIN_PX = 2


@dataclass(frozen=True)
class RasterSpec:
    """What to read of a catalogued raster (a picklable view of a catalog row).

    Args:
        raster_id: Catalog id.
        band_names: Bands to read, in output order.
        band_paths: File of each band.
        band_indexes: 1-based band index in its file.
        nodata: Nodata value (None: none declared).
        dtype: Output dtype.
        resampling: ``bilinear`` or ``nearest``.
        db: Values are decibels (resampled in linear power).
    """

    raster_id: str
    band_names: tuple[str, ...]
    band_paths: tuple[str, ...]
    band_indexes: tuple[int, ...]
    nodata: float | None
    dtype: str
    resampling: str = "bilinear"
    db: bool = False

    @classmethod
    def from_catalog_row(
        cls,
        row: Any,
        bands: Sequence[str] | None = None,
        resampling: str = "bilinear",
        db: bool = False,
    ) -> RasterSpec:
        """Build from a row of ``rasters.parquet``, selecting ``bands`` (all by default).

        Args:
            row: The catalog row (mapping-like).
            bands: Band names to read, in order.
            resampling: ``bilinear`` or ``nearest``.
            db: Whether the values are decibels.

        Returns:
            The spec.

        Raises:
            KeyError: If a requested band is not in the raster (message names the bands).
        """
        names = list(row["band_names"])
        wanted = list(bands) if bands is not None else names
        missing = [b for b in wanted if b not in names]
        if missing:
            raise KeyError(f"bands {missing} missing from {list(row['paths'])}")
        pos = [names.index(b) for b in wanted]
        nodata = row["nodata"]
        return cls(
            raster_id=str(row["raster_id"]),
            band_names=tuple(wanted),
            band_paths=tuple(str(row["band_paths"][i]) for i in pos),
            band_indexes=tuple(int(row["band_indexes"][i]) for i in pos),
            nodata=None if pd.isna(nodata) else float(nodata),
            dtype=str(row["dtype"]),
            resampling=resampling,
            db=db,
        )


def _aligned(src: rasterio.DatasetReader, crs: CRS, transform: Affine) -> bool:
    if src.crs != crs:
        return False
    a, b = src.transform, transform
    if not (np.isclose(a.a, b.a) and np.isclose(a.e, b.e) and a.b == 0 and a.d == 0):
        return False
    dc, dr = (a.c - b.c) / b.a, (a.f - b.f) / b.e
    return bool(np.isclose(dc, round(dc), atol=1e-6) and np.isclose(dr, round(dr), atol=1e-6))


class RasterReader:
    """Reads windows of the target (S2) grid from one catalogued raster; opens files once.

    Args:
        spec: What to read.
        crs: Target CRS.
        transform: Target grid transform.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, spec: RasterSpec, crs: CRS, transform: Affine) -> None:
        self.spec = spec
        self.crs = crs
        self.transform = transform
        self._files: dict[str, rasterio.DatasetReader] = {}
        self._aligned: dict[str, bool] = {}
        for path in dict.fromkeys(spec.band_paths):
            self._files[path] = ds = rasterio.open(path)
            self._aligned[path] = _aligned(ds, crs, transform)

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the files."""
        for ds in self._files.values():
            ds.close()
        self._files.clear()

    @property
    def fill(self) -> float:
        """Value of pixels without data in the output."""
        if self.spec.db or np.dtype(self.spec.dtype).kind == "f":
            return float("nan")
        return float(self.spec.nodata) if self.spec.nodata is not None else 0.0

    def read(self, window: Window) -> np.ndarray:
        """Read all bands of the spec on ``window`` of the target grid.

        Args:
            window: Window of the target grid.

        Returns:
            Array (bands, height, width); pixels without data hold :attr:`fill`.
        """
        h, w = int(window.height), int(window.width)
        out_dtype = np.dtype(np.float32) if self.spec.db else np.dtype(self.spec.dtype)
        out = np.empty((len(self.spec.band_names), h, w), dtype=out_dtype)
        by_file: dict[str, list[int]] = {}
        for i, path in enumerate(self.spec.band_paths):
            by_file.setdefault(path, []).append(i)
        for path, positions in by_file.items():
            ds = self._files[path]
            indexes = [self.spec.band_indexes[i] for i in positions]
            out[positions] = self._read_file(ds, indexes, window, out_dtype, self._aligned[path])
        return out

    def _read_file(
        self,
        ds: rasterio.DatasetReader,
        indexes: list[int],
        window: Window,
        dtype: np.dtype,
        aligned: bool,
    ) -> np.ndarray:
        h, w = int(window.height), int(window.width)
        fill = self.fill
        if aligned:
            dc = round((self.transform.c - ds.transform.c) / ds.transform.a)
            dr = round((self.transform.f - ds.transform.f) / ds.transform.e)
            src_window = Window(window.col_off + dc, window.row_off + dr, w, h)
            inside = (
                src_window.col_off >= 0
                and src_window.row_off >= 0
                and src_window.col_off + w <= ds.width
                and src_window.row_off + h <= ds.height
            )
            # Boundless reads go through a VRT and cost ~10x more: only for edge windows.
            data = ds.read(indexes, window=src_window, boundless=not inside, fill_value=fill)
            return data.astype(dtype, copy=False)
        dst_transform = self.transform * Affine.translation(window.col_off, window.row_off)
        left, top = dst_transform * (0, 0)
        right, bottom = dst_transform * (w, h)
        bounds = transform_bounds(self.crs, ds.crs, left, bottom, right, top, densify_pts=21)
        src_win = from_bounds(*bounds, transform=ds.transform)
        dest = np.full((len(indexes), h, w), fill, dtype=np.float32 if self.spec.db else dtype)
        padded = Window(
            int(np.floor(src_win.col_off)) - MARGIN_PX,
            int(np.floor(src_win.row_off)) - MARGIN_PX,
            int(np.ceil(src_win.width)) + 2 * MARGIN_PX + 1,
            int(np.ceil(src_win.height)) + 2 * MARGIN_PX + 1,
        )
        if not _overlaps(padded, ds):
            return dest  # the window lies outside this raster
        src_win = padded.intersection(Window(0, 0, ds.width, ds.height))
        src = ds.read(indexes, window=src_win, masked=False)
        src_nodata: float | None = self.spec.nodata
        if self.spec.db:
            # Resample backscatter in linear power; NaN marks nodata throughout.
            src = np.power(10.0, src.astype(np.float32) / 10.0)
            src_nodata = float("nan")
        reproject(
            src,
            dest,
            src_transform=ds.window_transform(src_win),
            src_crs=ds.crs,
            src_nodata=src_nodata,
            dst_transform=dst_transform,
            dst_crs=self.crs,
            dst_nodata=fill if not self.spec.db else float("nan"),
            resampling=Resampling[self.spec.resampling],
        )
        if self.spec.db:
            with np.errstate(divide="ignore", invalid="ignore"):
                dest = (10.0 * np.log10(dest)).astype(np.float32)
        return dest.astype(dtype, copy=False)


def _overlaps(window: Window, ds: rasterio.DatasetReader) -> bool:
    return bool(
        window.col_off < ds.width
        and window.row_off < ds.height
        and window.col_off + window.width > 0
        and window.row_off + window.height > 0
    )
