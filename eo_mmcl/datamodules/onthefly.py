"""On-the-fly paired S1/S2 samples read straight from the catalogued rasters through torchgeo.

The slow but storage-free alternative to the chip store: torchgeo ``RasterDataset``s over the
files of each catalogued S1/S2 pair, intersected with ``&``, sampled with torchgeo's
``RandomGeoSampler`` / ``GridGeoSampler`` (:func:`onthefly_samplers`) and collated with
``stack_samples``. Samples follow the chip store's contract: ``image_s1`` (2, H, W) float32
sigma0 in dB (NaN = no data), ``image_s2`` (12, H, W) float32 raw reflectance x 10000,
``mask_<task>`` (H, W) int64 (255 = nodata), ``valid`` (H, W) bool (S2 has data in every band,
S1 is finite, no cloud), plus torchgeo's ``crs`` and ``bounds``; patches lie on the S2 grid.

Four choices differ from a plain ``s2 & s1`` over folders, each for a reason:

* **Time intervals come from the pairs table.** torchgeo 0.8.1's ``IntersectionDataset``
  intersects the files' time intervals, and an S1 scene acquired two days after its S2 scene
  shares no instant with it ("no temporal intersection"). ``spatial_only=True`` is broken in
  0.8.1: it leaves the overlay's ``datetime_1``/``datetime_2`` columns in place of the
  ``IntervalIndex``, so ``bounds`` and every sampler fail (``'RangeIndex' object has no
  attribute 'left'``). Instead, every file of a pair (S2, S1, labels, cloud mask) is indexed
  with the same interval: the whole UTC days from the earlier to the later acquisition of the
  pair. The temporal intersection is then that interval, and files of other dates stay out.
  The catalog already resolved each raster's date (from tags or names, per source rule), so
  ``filename_regex``/``date_format`` are not used to parse dates a second time.
* **One intersection per pair.** A single ``s2 & s1`` over all files would mosaic every S1
  scene that overlaps a query in space and time (first file wins), so an S2 scene paired with
  two S1 dates would get S1 pixels from either. :class:`PairedRasterDataset` keeps one
  intersection per catalogued pair and sends each query to the pair whose index row it came
  from (samplers yield that row's time interval). torchgeo 0.8.1 also cannot chain more than
  three ``RasterDataset``s with ``&`` (the overlay's ``filepath_1`` column clashes), so each
  intersection step keeps only its geometry (see :func:`_intersect_all`).
* **Footprints are snapped to the S2 grid.** Samplers place patches at whole multiples of the
  resolution from the lower-left corner of an index footprint. The shared S1/S2 footprint
  starts on the S1 grid, so it is shrunk to whole S2 pixels: S2, label and cloud patches are
  then read without any resampling (bit-identical to a direct read of the file).
* **S1 is resampled in linear power.** S1 is read with :class:`eo_mmcl.tile.reader.RasterReader`
  (the chip store's reader): the GDAL warper reprojects sigma0 from the S1 grid onto the patch
  bilinearly in linear power, ``10 ** (dB / 10)``, and converts back to dB, so both modes give
  the same S1 values for the same window. torchgeo's own path (``WarpedVRT`` + ``rasterio.merge``)
  would average dB values (biased towards dark targets) and, across CRSs, warp nearest-neighbour
  before resampling bilinearly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
import torch
from affine import Affine
from pyproj import CRS
from torchgeo.datasets import GeoDataset
from torchgeo.samplers import GeoSampler, GridGeoSampler, RandomGeoSampler

from eo_mmcl.bands import S2_L2A_BANDS
from eo_mmcl.catalog.build import PAIRS_FILE, RASTERS_FILE, read_catalog
from eo_mmcl.datamodules.catalog_rasters import (
    MASK_NODATA,
    S1_SAMPLE_BANDS,
    CatalogRasterDataset,
    CloudMaskDataset,
    LabelDataset,
    S1ImageDataset,
    S2ImageDataset,
    TimeInterval,
)
from eo_mmcl.datamodules.paired_dataset import PairedRasterDataset, PairRasters
from eo_mmcl.datamodules.torchgeo_compat import intersect
from eo_mmcl.errors import SourceError
from eo_mmcl.io.tables import read_table
from eo_mmcl.tile.store import INDEX_FILE, SPLITS


def _utc_naive(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def _pair_interval(*datetimes: Any) -> TimeInterval:
    """Whole UTC days from the earliest to the latest acquisition, as torchgeo dates a day."""
    stamps = [_utc_naive(d) for d in datetimes]
    start = min(stamps).normalize()
    end = max(stamps).normalize() + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return start, end


def _single_file(row: Mapping[str, Any], what: str) -> str:
    paths = sorted({str(p) for p in row["band_paths"]})
    if len(paths) != 1:
        raise ValueError(
            f"{what} raster {row['raster_id']} is split over {len(paths)} files "
            f"({paths[0]}, ...): the on-the-fly mode reads single-file rasters; use the chip store"
        )
    if not Path(paths[0]).is_file():
        raise FileNotFoundError(
            f"{what} raster {row['raster_id']}: file {paths[0]} does not exist (moved since the "
            "catalog was built? rebuild it with `eo-mmcl catalog`)"
        )
    return paths[0]


def _nodata(row: Mapping[str, Any]) -> float | None:
    value = row["nodata"]
    return None if value is None or pd.isna(value) else float(value)


def _companions(
    rasters: pd.DataFrame, s2_row: Mapping[str, Any], role: str
) -> dict[str, Mapping[str, Any]]:
    """Label (per task) or cloud-mask rows of the pair's S2 scene, as the chip store finds them.

    Rasters of the same scene and sensor S2 belong to the S2 image; where a scene holds several
    per task (several dates), the one dated like the S2 image is taken.

    Raises:
        ValueError: If a task still has several candidate rasters.
    """
    if pd.isna(s2_row["scene"]):
        return {}
    rows = rasters[
        (rasters["role"] == role)
        & (rasters["sensor"] == "S2")
        & (rasters["scene"] == s2_row["scene"])
    ]
    keys = rows["task"].fillna(role) if role == "label" else pd.Series(role, index=rows.index)
    found: dict[str, Mapping[str, Any]] = {}
    for key in sorted(set(keys)):
        group = rows[keys == key]
        if len(group) > 1:
            group = group[group["datetime"] == s2_row["datetime"]]
        if len(group) != 1:
            files = [p for paths in rows[keys == key]["paths"] for p in paths]
            raise ValueError(
                f"{role} rasters of scene {s2_row['scene']!r} ({key}) are ambiguous for "
                f"{s2_row['raster_id']}: {files}"
            )
        found[str(key)] = group.iloc[0]
    return found


def _intersect_all(leaves: Sequence[CatalogRasterDataset], pair_id: str) -> GeoDataset:
    """``leaves[0] & leaves[1] & ...``, as torchgeo 0.8.1 allows (see :func:`intersect`)."""
    dataset: GeoDataset = leaves[0]
    for leaf in leaves[1:]:
        try:
            dataset = intersect(dataset, leaf)
        except RuntimeError as err:  # torchgeo: "Datasets have no spatial/temporal intersection"
            raise ValueError(f"pair {pair_id}: {leaf.files[0]} does not overlap the pair") from err
    return dataset


def _pair_rasters(
    pair: Any,
    rows: Mapping[str, Mapping[str, Any]],
    tasks: Sequence[str],
    crs: CRS,
    res: tuple[float, float],
    cache: bool,
) -> PairRasters:
    """Build one pair's intersection from its catalog rows (``s2``, ``s1``, tasks, ``cloud``)."""
    s2_row, s1_row = rows["s2"], rows["s1"]
    s1_nodata = _nodata(s1_row)
    if s1_nodata is not None and not math.isnan(s1_nodata):
        raise ValueError(
            f"S1 raster {_single_file(s1_row, 'S1')} declares nodata {s1_nodata}; the "
            "on-the-fly mode reads dB with NaN as nodata"
        )
    interval = _pair_interval(pair.s2_datetime, pair.s1_datetime)
    common: dict[str, Any] = {"crs": crs, "res": res, "interval": interval, "cache": cache}
    leaves: list[CatalogRasterDataset] = [
        S2ImageDataset(
            _single_file(s2_row, "S2"),
            all_bands=list(s2_row["band_names"]),
            bands=S2_L2A_BANDS,
            **common,
        ),
        S1ImageDataset(
            _single_file(s1_row, "S1"),
            all_bands=list(s1_row["band_names"]),
            bands=S1_SAMPLE_BANDS,
            **common,
        ),
    ]
    for task in tasks:
        if task not in rows:
            warnings.warn(
                f"pair {pair.pair_id} ({s2_row['raster_id']}) has no {task} label raster: "
                f"mask_{task} is {MASK_NODATA} (nodata) there",
                stacklevel=3,
            )
            continue
        path = _single_file(rows[task], "label")
        leaves.append(LabelDataset(path, task, _nodata(rows[task]), **common))
    if "cloud" in rows:
        leaves.append(CloudMaskDataset(_single_file(rows["cloud"], "cloud mask"), **common))
    return PairRasters(
        pair_id=pair.pair_id,
        dataset=_intersect_all(leaves, pair.pair_id),
        files=tuple(leaf.files[0] for leaf in leaves),
        s2_transform=Affine(*s2_row["transform"][:6]),
        s2_nodata=_nodata(s2_row),
    )


def paired_raster_dataset(
    catalog_dir: str | Path,
    tasks: Sequence[str] | None = None,
    pair_ids: Sequence[str] | None = None,
    transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    cache: bool = True,
) -> PairedRasterDataset:
    """Build the on-the-fly paired dataset ``S1 & S2 & labels & cloud`` from a catalog.

    Args:
        catalog_dir: Catalog folder (``eo-mmcl catalog`` output).
        tasks: Label tasks to return as ``mask_<task>`` (default: every task of the selected
            pairs' scenes; ``[]`` for none).
        pair_ids: Pairs to use (default: all pairs of the catalog).
        transforms: Applied to each finished sample.
        cache: Keep file handles open between samples (torchgeo's cache).

    Returns:
        The dataset, on the S2 CRS and resolution of the pairs.

    Raises:
        FileNotFoundError: If the catalog tables or a raster file are missing.
        ValueError: If the catalog has no pairs, a pair id or task is unknown, the pairs are in
            several CRSs or resolutions, a raster lacks the bands needed, is split over several
            files, has a finite S1 nodata value, or does not overlap its pair.
    """
    folder = Path(catalog_dir)
    missing = [f for f in (RASTERS_FILE, PAIRS_FILE) if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: not a catalog folder (missing {', '.join(missing)})")
    catalog = read_catalog(folder)
    pairs = catalog.pairs
    if pairs.empty:
        raise ValueError(
            f"{folder / PAIRS_FILE} holds no S1/S2 pair: the on-the-fly mode needs paired "
            "rasters (see the catalog's rejected.parquet and its --max-days/--min-overlap)"
        )
    if pair_ids is not None:
        unknown = sorted(set(pair_ids) - set(pairs["pair_id"]))
        if unknown or not pair_ids:
            raise ValueError(
                f"unknown pair ids {unknown} in {folder / PAIRS_FILE} "
                f"(it has {sorted(pairs['pair_id'])[:10]}...)"
                if unknown
                else "pair_ids is empty"
            )
        pairs = pairs[pairs["pair_id"].isin(list(pair_ids))]
    rasters = catalog.rasters.set_index("raster_id", drop=False)

    s2_rows = [rasters.loc[s2_id] for s2_id in pairs["s2_id"]]
    crss = {str(r["crs"]) for r in s2_rows}
    if len(crss) > 1:
        raise ValueError(
            f"the selected pairs are in several S2 CRSs {sorted(crss)}: select pairs of one CRS "
            "with pair_ids (patches of one dataset share one grid)"
        )
    resolutions = {(float(r["res_x"]), float(r["res_y"])) for r in s2_rows}
    if len(resolutions) > 1:
        raise ValueError(f"the selected pairs' S2 rasters have several resolutions {resolutions}")
    crs = CRS.from_user_input(crss.pop())
    res = resolutions.pop()

    labels_of = [_companions(rasters, r, "label") for r in s2_rows]
    available = sorted({t for found in labels_of for t in found})
    if tasks is None:
        tasks = available
    unknown_tasks = sorted(set(tasks) - set(available))
    if unknown_tasks:
        raise ValueError(
            f"no label raster for tasks {unknown_tasks} in {folder / RASTERS_FILE} for the "
            f"selected pairs (available: {available})"
        )

    built: list[PairRasters] = []
    for pair, s2_row, labels in zip(pairs.itertuples(), s2_rows, labels_of, strict=True):
        rows = {"s2": s2_row, "s1": rasters.loc[pair.s1_id], **labels}
        clouds = _companions(rasters, s2_row, "cloud_mask")
        if clouds:
            rows["cloud"] = clouds["cloud_mask"]
        built.append(_pair_rasters(pair, rows, tasks, crs, res, cache))
    return PairedRasterDataset(built, crs=crs, res=res, tasks=tasks, transforms=transforms)


def onthefly_samplers(
    dataset: PairedRasterDataset,
    patch_size: int,
    length: int,
    train: bool = True,
    stride: int | None = None,
    seed: int | None = None,
) -> GeoSampler:
    """The torchgeo sampler of a split: random patches to train, a regular grid to evaluate.

    Batch the samples with torchgeo's ``stack_samples`` (it stacks the tensors and lists
    ``crs`` and ``bounds``). Patch positions are whole S2 pixels from the snapped footprints,
    so patches stay on the S2 grid. Near footprint edges, and in the grid's last row and column
    (which torchgeo 0.8.1 lets run past the footprint), patches hold nodata: use ``valid``.

    Args:
        dataset: The paired dataset.
        patch_size: Patch height and width in S2 pixels.
        length: Number of random patches per epoch (training only).
        train: ``RandomGeoSampler(dataset, size=patch_size, length=length)`` if true, else
            ``GridGeoSampler(dataset, size=patch_size, stride=stride)``.
        stride: Step of the evaluation grid in S2 pixels (default: ``patch_size``).
        seed: Seed of the random patch positions. torchgeo draws which pair a patch comes from
            with torch's global generator, so seed that too for reproducible multi-pair epochs.

    Returns:
        The sampler.

    Raises:
        ValueError: If a size is not positive, or no pair's footprint fits one patch.
    """
    for name, value in (("patch_size", patch_size), ("length", length), ("stride", stride)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    xres, yres = dataset.res
    bounds = dataset.index.geometry.bounds
    width = (bounds["maxx"] - bounds["minx"]) / xres
    height = (bounds["maxy"] - bounds["miny"]) / yres
    if not ((width >= patch_size) & (height >= patch_size)).any():
        sizes = [(round(w), round(h)) for w, h in zip(width, height, strict=True)]
        raise ValueError(
            f"no pair's shared footprint fits a {patch_size} px patch (footprints, px: {sizes})"
        )
    if not train:
        return GridGeoSampler(dataset, size=patch_size, stride=stride or patch_size)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return RandomGeoSampler(dataset, size=patch_size, length=length, generator=generator)


def split_regions(chips_dir: Path) -> dict[str, gpd.GeoDataFrame]:
    """Where each split of a chip store lies: its chips' footprints, per pair.

    The store's spatial blocks gave each chip its split and dropped the chips where two splits
    would touch, so chips of different splits never overlap: patches drawn inside a split's
    chips (one region per chip) keep the store's split, buffer included.

    Args:
        chips_dir: A chip store cut from the same catalog.

    Returns:
        ``{split: GeoDataFrame(pair_id, geometry)}`` in the pairs' S2 CRS (``footprint_native``).

    Raises:
        SourceError: If the index is unreadable or a split has no chip.
    """
    index = read_table(
        Path(chips_dir) / INDEX_FILE, columns=["split", "pair_id", "footprint_native"]
    )
    regions: dict[str, gpd.GeoDataFrame] = {}
    for split in SPLITS:
        rows = index[index["split"] == split]
        if rows.empty:
            raise SourceError(f"{chips_dir}: no {split} chip to draw on-the-fly patches in")
        regions[split] = gpd.GeoDataFrame(
            {"pair_id": rows["pair_id"].to_numpy()},
            geometry=shapely.from_wkt(rows["footprint_native"].to_numpy()),
        )
    return regions
