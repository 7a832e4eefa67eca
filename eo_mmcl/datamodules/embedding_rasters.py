"""Embedding rasters of ``eo-mmcl embed`` as a torchgeo dataset that yields values, not codes.

A plain torchgeo ``RasterDataset`` returns what the file stores: for ``uint8`` rasters the
codes 0..254 with 255 at nodata, for float16 rasters the values. :class:`EmbeddingRasterDataset`
decodes every file through its own per-band scale, offset and nodata (uint8, float16, and the
int8 files of earlier versions alike), so a sample holds embedding values with NaN at nodata.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import rasterio
import rasterio.merge
import torch
from torch import Tensor
from torchgeo.datasets import RasterDataset
from torchgeo.datasets.utils import GeoSlice

from eo_mmcl.datamodules.torchgeo_compat import cached_file, query_slices


@functools.lru_cache(maxsize=256)
def _band_codecs(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Per band of a file: (scales, offsets), as rasterio reads them from its metadata."""
    with rasterio.open(path) as ds:
        return np.asarray(ds.scales, dtype=np.float64), np.asarray(ds.offsets, dtype=np.float64)


class EmbeddingRasterDataset(RasterDataset):
    """Embedding rasters (COGs of ``eo-mmcl embed``) read as float32 values, NaN at nodata.

    Args:
        paths: Folders or files of embedding rasters.
        filename_glob: Which rasters, e.g. ``"*_coral_joint.tif"`` (one embedding per dataset:
            torchgeo merges the files a query touches).
        crs: Output CRS (default: the first file's).
        res: Output resolution (default: the first file's).
        transforms: Applied to each sample.
        cache: Keep file handles open (torchgeo's cache).
    """

    is_image = True

    def __init__(
        self,
        paths: str | Sequence[str] = "data",
        filename_glob: str = "*.tif",
        crs: Any = None,
        res: float | tuple[float, float] | None = None,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache: bool = True,
    ) -> None:
        self.filename_glob = filename_glob
        super().__init__(paths, crs=crs, res=res, transforms=transforms, cache=cache)

    @property
    def dtype(self) -> torch.dtype:
        """Samples are decoded values: float32."""
        return torch.float32

    # torchgeo 0.8.1 offers no public hook between reading a file and merging it with its
    # neighbours: its _merge_files merges the stored codes of all files a query touches,
    # though each file has its own scales. This override (signature as in 0.8.1; the other
    # private names it needs come through eo_mmcl.datamodules.torchgeo_compat) merges with
    # rasterio's public merge and a copy method that decodes each source through its own
    # scale, offset and nodata.
    def _merge_files(
        self,
        filepaths: Sequence[str],
        query: GeoSlice,
        band_indexes: Sequence[int] | None = None,
    ) -> Tensor:
        paths = list(filepaths)
        handles = [cached_file(self, p) for p in paths]
        x, y, _ = query_slices(self, query)
        codecs = [_band_codecs(str(p)) for p in paths]
        bands = None if band_indexes is None else np.asarray(band_indexes) - 1

        def decode_first(
            merged: np.ndarray,
            new: np.ma.MaskedArray,
            merged_mask: np.ndarray,
            new_mask: np.ndarray,
            index: int | None = None,
            roff: int | None = None,
            coff: int | None = None,
        ) -> None:
            assert index is not None  # rasterio passes the source's position
            scales, offsets = codecs[index]
            if bands is not None:
                scales, offsets = scales[bands], offsets[bands]
            values = np.asarray(new.data, dtype=np.float64) * scales[:, None, None]
            values += offsets[:, None, None]
            take = merged_mask & ~np.ma.getmaskarray(new)  # the first file with data wins
            merged[take] = values[take]

        dest, _ = rasterio.merge.merge(
            handles,
            bounds=(x.start, y.start, x.stop, y.stop),
            res=(x.step, y.step),
            indexes=band_indexes,
            resampling=self.resampling,
            dtype="float32",
            nodata=np.nan,
            method=decode_first,
        )
        return torch.from_numpy(np.ascontiguousarray(dest, dtype=np.float32))
