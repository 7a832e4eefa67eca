"""torchgeo ``RasterDataset``s over one catalogued file each: S2 and S1 images, labels, clouds.

Each reads exactly the file the catalog names (no glob over a folder) and indexes it with the
time interval of its pair (see :mod:`eo_mmcl.datamodules.onthefly`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import torch
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window
from torch import Tensor
from torchgeo.datasets import RasterDataset
from torchgeo.datasets.errors import DatasetNotFoundError
from torchgeo.datasets.utils import GeoSlice

from eo_mmcl.bands import S1_BANDS
from eo_mmcl.datamodules.torchgeo_compat import (
    clear_file_cache_in_forked_workers,
    query_slices,
    set_time_interval,
)
from eo_mmcl.tile.reader import RasterReader, RasterSpec

#: Polarisations in ``image_s1``, in order (as in the chip store).
S1_SAMPLE_BANDS: tuple[str, ...] = S1_BANDS[:2]
#: Label value meaning "no label" in ``mask_<task>`` (as in the chip store).
MASK_NODATA = 255
#: Value of a cloudy pixel in a cloud-mask raster.
CLOUD_VALUE = 1


# Every forked process (DataLoader worker) starts with an empty cache of GDAL handles.
clear_file_cache_in_forked_workers()


# Time interval (start, end) as tz-naive UTC timestamps, the convention of torchgeo's index.
TimeInterval = tuple[pd.Timestamp, pd.Timestamp]


class CatalogRasterDataset(RasterDataset):
    """A torchgeo ``RasterDataset`` over one catalogued single-file raster.

    The file's time interval is set by the caller (not parsed from its name), and the sample's
    ``image``/``mask`` key is renamed to :attr:`sample_key`, so that intersections of several
    such datasets yield every key without clashing (``concat_samples`` would otherwise
    concatenate same-named tensors along the channel axis).

    Args:
        path: The GeoTIFF.
        crs: CRS of the patches (the pair's S2 CRS); the file is warped to it where needed.
        res: Pixel size (x, y) of the patches, in CRS units.
        interval: (start, end) of the file's entry in the index, tz-naive UTC.
        all_bands: Names of the file's bands, in file order (for band selection).
        bands: Bands to return, in output order (default: all).
        sample_key: Key of the data in the sample (default: the class's).
        cache: Keep file handles open between samples (torchgeo's cache).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If a band is not in ``all_bands``, or rasterio cannot read the file.
    """

    #: Key of the data in the sample.
    sample_key = "image"

    def __init__(
        self,
        path: str | Path,
        crs: CRS,
        res: tuple[float, float],
        interval: TimeInterval,
        all_bands: Sequence[str] = (),
        bands: Sequence[str] | None = None,
        sample_key: str | None = None,
        cache: bool = True,
    ) -> None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"raster file {path} does not exist")
        # torchgeo reads band names from the class attribute; each catalogued file has its own.
        self.all_bands = tuple(all_bands)
        if bands is not None:
            missing = [b for b in bands if b not in self.all_bands]
            if missing:
                raise ValueError(f"{path}: bands {missing} missing (the file has {all_bands})")
        if sample_key is not None:
            self.sample_key = sample_key
        try:
            super().__init__(paths=[str(path)], crs=crs, res=res, bands=bands, cache=cache)
        except DatasetNotFoundError as err:
            # torchgeo skips files that rasterio cannot open, then finds "no dataset".
            raise ValueError(f"{path}: rasterio cannot read this file") from err
        set_time_interval(self, interval)

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        """Read the patch ``query`` (see ``RasterDataset.__getitem__``) under :attr:`sample_key`.

        Args:
            query: [xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres] coordinates to index.

        Returns:
            ``{'crs', 'bounds', sample_key}``.

        Raises:
            IndexError: If ``query`` is not in the index.
        """
        sample = super().__getitem__(query)
        sample[self.sample_key] = sample.pop("image" if self.is_image else "mask")
        return sample


class S2ImageDataset(CatalogRasterDataset):
    """Sentinel-2 reflectance x 10000 as float32 ``image_s2`` (bands as selected)."""

    sample_key = "image_s2"


class S1ImageDataset(CatalogRasterDataset):
    """Sentinel-1 sigma0 in dB as float32 ``image_s1``, resampled in linear power.

    Only the pixel read differs from torchgeo's: :meth:`_merge_files` reprojects with the chip
    store's :class:`~eo_mmcl.tile.reader.RasterReader` (GDAL warper, bilinear, in linear
    power, NaN for no data). The file's nodata must be NaN (dB has no spare finite value).
    """

    sample_key = "image_s1"

    def _merge_files(
        self,
        filepaths: Sequence[str],
        query: GeoSlice,
        band_indexes: Sequence[int] | None = None,
    ) -> Tensor:
        """Reproject the files onto the query's grid; the first finite value wins.

        Args:
            filepaths: Files that intersect the query.
            query: [xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres] coordinates to index.
            band_indexes: 1-based bands to read (default: all, as in the file).

        Returns:
            float32 tensor (bands, height, width) in dB.
        """
        x, y, _ = query_slices(self, query)
        width = round((x.stop - x.start) / x.step)
        height = round((y.stop - y.start) / y.step)
        transform = Affine(x.step, 0.0, x.start, 0.0, -y.step, y.stop)
        out: np.ndarray | None = None
        for filepath in filepaths:
            if band_indexes is None:
                with rasterio.open(filepath) as src:
                    band_indexes = tuple(range(1, src.count + 1))
            spec = RasterSpec(
                raster_id=filepath,
                band_names=tuple(str(i) for i in band_indexes),
                band_paths=(filepath,) * len(band_indexes),
                band_indexes=tuple(band_indexes),
                nodata=None,
                dtype="float32",
                resampling="bilinear",
                db=True,
            )
            # A reader per patch: opening a GeoTIFF costs far less than warping the patch, and
            # no GDAL handle is then shared across DataLoader worker processes.
            with RasterReader(spec, CRS.from_user_input(self.crs), transform) as reader:
                data = reader.read(Window(0, 0, width, height))
            if out is None:
                out = data
            else:
                np.copyto(out, data, where=~np.isfinite(out))
        assert out is not None  # torchgeo calls this only with files that hit the query
        return torch.from_numpy(out)


class LabelDataset(CatalogRasterDataset):
    """A class raster (nearest resampling) as int64 ``mask_<task>``, nodata mapped to 255.

    Args:
        path: The GeoTIFF.
        task: Task name (the key is ``mask_<task>``).
        nodata: The file's nodata value (None: none declared; pixels outside the file then
            read as 0, as in torchgeo).
        **kwargs: Passed to :class:`CatalogRasterDataset`.
    """

    is_image = False

    def __init__(self, path: str | Path, task: str, nodata: float | None, **kwargs: Any) -> None:
        self.task = task
        self.nodata = nodata
        super().__init__(path, sample_key=f"mask_{task}", **kwargs)

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        """Read the label patch, with the file's nodata (and pixels outside it) as 255.

        Args:
            query: [xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres] coordinates to index.

        Returns:
            ``{'crs', 'bounds', 'mask_<task>'}``.
        """
        sample = super().__getitem__(query)
        if self.nodata is not None and self.nodata != MASK_NODATA:
            mask = sample[self.sample_key]
            sample[self.sample_key] = torch.where(mask == self.nodata, MASK_NODATA, mask)
        return sample


class CloudMaskDataset(CatalogRasterDataset):
    """An S2 cloud mask (1 = cloud, nearest resampling) as uint8 ``cloud``."""

    is_image = False
    sample_key = "cloud"

    @property
    def dtype(self) -> torch.dtype:
        """uint8: the mask only ever holds small codes."""
        return torch.uint8
