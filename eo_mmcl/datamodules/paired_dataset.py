"""One torchgeo dataset over every catalogued pair, each query sent to its own pair's rasters.

See :mod:`eo_mmcl.datamodules.onthefly` for why one intersection per pair.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import torch
from affine import Affine
from pyproj import CRS
from torchgeo.datasets import GeoDataset
from torchgeo.datasets.utils import GeoSlice

from eo_mmcl.datamodules.catalog_rasters import CLOUD_VALUE, MASK_NODATA
from eo_mmcl.datamodules.torchgeo_compat import query_slices, time_span


@dataclass(frozen=True)
class PairRasters:
    """The torchgeo intersection of one catalogued pair and what is needed to finish samples.

    Args:
        pair_id: Catalog pair id.
        dataset: ``S2 & S1 & labels & cloud`` of the pair (keys ``image_s2``, ``image_s1``,
            ``mask_<task>``, ``cloud``).
        files: The files read.
        s2_transform: The S2 grid (footprints are snapped to its pixels).
        s2_nodata: S2 nodata value (None: every S2 pixel is data).
    """

    pair_id: str
    dataset: GeoDataset
    files: tuple[str, ...]
    s2_transform: Affine
    s2_nodata: float | None


def _snap_inward(bounds: Sequence[float], grid: Affine) -> tuple[float, float, float, float]:
    """Shrink ``bounds`` to whole pixels of the north-up ``grid``."""
    xmin, ymin, xmax, ymax = bounds
    tol = 1e-6  # pixels: footprints that already lie on the grid must not lose a pixel
    col0 = math.ceil((xmin - grid.c) / grid.a - tol)
    col1 = math.floor((xmax - grid.c) / grid.a + tol)
    row0 = math.ceil((grid.f - ymax) / -grid.e - tol)
    row1 = math.floor((grid.f - ymin) / -grid.e + tol)
    if col1 <= col0 or row1 <= row0:
        raise ValueError(f"footprint {tuple(bounds)} holds no whole pixel of the S2 grid")
    return (
        grid.c + col0 * grid.a,
        grid.f + row1 * grid.e,
        grid.c + col1 * grid.a,
        grid.f + row0 * grid.e,
    )


class PairedRasterDataset(GeoDataset):
    """Paired S1/S2 patches from per-pair torchgeo intersections (see the module docstring).

    The index holds one row per pair: its shared footprint snapped to the S2 grid, and the
    pair's time interval. A query goes to the pair whose interval equals the query's (what
    samplers yield) and that covers most of the query's box.

    Args:
        pairs: The pairs; all in one CRS and resolution.
        crs: CRS of every pair's S2 grid.
        res: Pixel size (x, y) of the S2 grids.
        tasks: Tasks of every sample; a pair without a label raster for a task gets 255.
        transforms: Applied to each finished sample.

    Raises:
        ValueError: If ``pairs`` is empty or a pair's footprint holds no whole S2 pixel.
    """

    def __init__(
        self,
        pairs: Sequence[PairRasters],
        crs: CRS,
        res: tuple[float, float],
        tasks: Sequence[str],
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if not pairs:
            raise ValueError("no pair given")
        self.pairs = list(pairs)
        self.tasks = tuple(tasks)
        self.transforms = transforms
        self._res = (float(res[0]), float(res[1]))
        self.paths = sorted({f for p in self.pairs for f in p.files})
        boxes, intervals = [], []
        for pair in self.pairs:
            intervals.append(time_span(pair.dataset))
            boxes.append(
                shapely.box(*_snap_inward(pair.dataset.index.total_bounds, pair.s2_transform))
            )
        self.index = gpd.GeoDataFrame(
            {"pair_id": [p.pair_id for p in self.pairs]},
            index=pd.IntervalIndex.from_tuples(intervals, closed="both", name="datetime"),
            geometry=boxes,
            crs=crs,
        )
        self._by_id = {p.pair_id: p for p in self.pairs}

    def within(self, regions: gpd.GeoDataFrame) -> PairedRasterDataset:
        """The same pairs, sampled only inside ``regions`` (one index row per region).

        What a split's dataset is: the chip footprints of one split of the chip store, so that
        train, validation and test patches come from the spatial blocks the store gave each
        split (and never from the buffer between them).

        Args:
            regions: ``pair_id`` and polygon ``geometry`` in the dataset's CRS; each region is
                clipped to its pair's footprint.

        Returns:
            A dataset with the same pairs, transforms and tasks.

        Raises:
            ValueError: If a region names a pair the dataset does not hold, or no region
                overlaps its pair's footprint.
        """
        unknown = sorted(set(regions["pair_id"]) - set(self._by_id))
        if unknown:
            raise ValueError(f"regions of pairs {unknown[:3]} that this dataset does not hold")
        rows = self.index.reset_index().set_index("pair_id").loc[list(regions["pair_id"])]
        clipped = shapely.intersection(regions.geometry.to_numpy(), rows.geometry.to_numpy())
        keep = ~shapely.is_empty(clipped) & (shapely.area(clipped) > 0)
        if not keep.any():
            raise ValueError("no region overlaps the footprint of its pair")
        subset = copy.copy(self)
        subset.index = gpd.GeoDataFrame(
            {"pair_id": list(regions["pair_id"][keep])},
            index=pd.IntervalIndex(rows["datetime"].to_numpy()[keep], name="datetime"),
            geometry=list(clipped[keep]),
            crs=self.index.crs,
        )
        return subset

    @property
    def crs(self) -> CRS:
        """CRS of the patches (the S2 CRS); fixed, because the S2 grid is."""
        crs: CRS = self.index.crs
        return crs

    @crs.setter
    def crs(self, new_crs: CRS) -> None:
        if new_crs != self.crs:
            raise ValueError(
                f"PairedRasterDataset is fixed to the S2 grid ({self.crs}); cannot change to "
                f"{new_crs} (intersect it with datasets in its CRS)"
            )

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) of the patches (the S2 resolution); fixed, as :attr:`crs`."""
        return self._res

    @res.setter
    def res(self, new_res: float | tuple[float, float]) -> None:
        pair = (new_res, new_res) if isinstance(new_res, int | float) else new_res
        if tuple(float(v) for v in pair) != self._res:
            raise ValueError(
                f"PairedRasterDataset is fixed to the S2 resolution {self._res}; cannot change "
                f"to {new_res}"
            )

    def pair_for(self, query: GeoSlice) -> PairRasters:
        """The pair that serves ``query``.

        Args:
            query: [xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres] coordinates to index.

        Returns:
            The pair whose interval equals the query's, else overlaps it, and whose footprint
            covers most of the query's box (first in catalog order on ties).

        Raises:
            IndexError: If no pair intersects the query in space and time.
        """
        x, y, t = query_slices(self, query)
        intervals = self.index.index
        box = shapely.box(x.start, y.start, x.stop, y.stop)
        area = self.index.geometry.intersection(box).area.to_numpy()
        hit = intervals.overlaps(pd.Interval(t.start, t.stop)) & self.index.intersects(box)
        if not hit.any():
            raise IndexError(f"query: {query} not found in index with bounds: {self.bounds}")
        exact = (intervals.left == t.start) & (intervals.right == t.stop)
        # Lexicographic (exact interval, area) among hits; argmax keeps the first on ties.
        score = np.where(hit, exact * (area.max() + 1.0) + area, -1.0)
        return self._by_id[str(self.index["pair_id"].iloc[int(np.argmax(score))])]

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        """Read one paired patch.

        Args:
            query: [xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres] coordinates to index.

        Returns:
            ``{'image_s1', 'image_s2', 'mask_<task>'..., 'valid', 'crs', 'bounds'}`` (see the
            module docstring).

        Raises:
            IndexError: If no pair intersects the query.
        """
        pair = self.pair_for(query)
        raw = pair.dataset[query]
        s1 = raw["image_s1"].to(torch.float32)
        s2 = raw["image_s2"].to(torch.float32)
        valid = torch.isfinite(s1).all(dim=0)
        if pair.s2_nodata is not None:
            valid &= (s2 != pair.s2_nodata).all(dim=0)
        if "cloud" in raw:
            valid &= raw["cloud"] != CLOUD_VALUE
        sample: dict[str, Any] = {"image_s1": s1, "image_s2": s2}
        for task in self.tasks:
            key = f"mask_{task}"
            mask = raw.get(key)
            if mask is None:
                mask = torch.full(valid.shape, MASK_NODATA, dtype=torch.int64)
            sample[key] = mask.to(torch.int64)
        sample.update(valid=valid, crs=raw["crs"], bounds=raw["bounds"])
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample
