"""The few things eo_mmcl needs from torchgeo 0.8.1 that its public API does not offer.

Everything else goes through torchgeo's public API (``RasterDataset`` subclass attributes,
``IntersectionDataset``, the samplers, ``stack_samples``). What is here touches torchgeo's
private names, so a torchgeo upgrade is checked in this one module (``tests/test_onthefly.py``
exercises each of them):

* :func:`query_slices` wraps ``GeoDataset._disambiguate_slice``: a subclass that reads pixels
  itself (``_merge_files``, the one extension point torchgeo's ``RasterDataset`` has for
  that) needs the query's x/y/t slices, which torchgeo computes only privately.
* :func:`cached_file` and :func:`clear_file_cache_in_forked_workers` reach torchgeo's
  class-level LRU cache of open GDAL handles (``RasterDataset._cached_load_warp_file``).
* :func:`set_time_interval` and :func:`intersect` work around ``IntersectionDataset`` in 0.8.1: its
  ``spatial_only=True`` (torchgeo PR #2837, for issue #2571: intersecting rasters of different
  dates) leaves the overlay's ``datetime_1``/``datetime_2`` columns in place of the
  ``IntervalIndex``, so ``bounds`` and every sampler fail; and chaining more than three
  ``RasterDataset``s fails on the overlay's clashing ``filepath_1`` column.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from torchgeo.datasets import GeoDataset, IntersectionDataset, RasterDataset
from torchgeo.datasets.utils import GeoSlice


def query_slices(dataset: GeoDataset, query: GeoSlice) -> tuple[slice, slice, slice]:
    """The x, y and time slices of a query, with the dataset's resolution filled in.

    Args:
        dataset: The dataset queried.
        query: [xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres] coordinates.

    Returns:
        ``(x, y, t)`` slices.
    """
    x, y, t = dataset._disambiguate_slice(query)
    return x, y, t


def cached_file(dataset: RasterDataset, path: str) -> Any:
    """An open (and, where needed, warped) file handle, from torchgeo's cache if it caches.

    Args:
        dataset: The raster dataset (its CRS and resolution decide the warp).
        path: The file.

    Returns:
        torchgeo's rasterio dataset or ``WarpedVRT``.
    """
    if dataset.cache:
        return dataset._cached_load_warp_file(path)
    return dataset._load_warp_file(path)


def clear_file_cache_in_forked_workers() -> None:
    """Give every forked process (DataLoader workers) an empty cache of file handles.

    A worker forked after the parent read a sample inherits the parent's open GDAL handles, and
    parent and worker then share each file descriptor's offset: concurrent reads decode the wrong
    bytes ("ZIPDecode: Decoding error").
    """
    os.register_at_fork(after_in_child=RasterDataset._cached_load_warp_file.cache_clear)


def set_time_interval(dataset: GeoDataset, interval: tuple[pd.Timestamp, pd.Timestamp]) -> None:
    """Index every file of a dataset with one time interval (the pair's, not the file's).

    Args:
        dataset: The dataset (its ``index`` GeoDataFrame is public; its time index is set).
        interval: (start, end), tz-naive UTC, both ends included.
    """
    dataset.index.index = pd.IntervalIndex.from_tuples(
        [interval] * len(dataset.index), closed="both", name="datetime"
    )


def time_span(dataset: GeoDataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The earliest start and latest end of a dataset's time index.

    Args:
        dataset: The dataset.

    Returns:
        (start, end).
    """
    intervals = dataset.index.index
    return intervals.left.min(), intervals.right.max()


def intersect(dataset: GeoDataset, leaf: GeoDataset) -> GeoDataset:
    """``dataset & leaf``, keeping only the geometry (and time index) of the overlay.

    Each overlay suffixes clashing columns with ``_1``/``_2``: from the fourth dataset of a
    chain on, ``filepath`` becomes ``filepath_1`` a second time and pandas refuses the merge. An
    intersection reads through its children and samples from its geometry and time interval
    only, so its other columns are dropped. Leaves that carry one time interval
    (:func:`set_time_interval`) keep it whole through the temporal intersection.

    Args:
        dataset: A dataset or an earlier intersection.
        leaf: The dataset to intersect it with (same CRS and resolution).

    Returns:
        The intersection.

    Raises:
        RuntimeError: torchgeo's, if the two do not overlap in space and time.
    """
    joined = IntersectionDataset(dataset, leaf)
    joined.index = joined.index[[joined.index.geometry.name]]
    return joined
