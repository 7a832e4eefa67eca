"""Build a catalog folder: ``rasters.parquet``, ``pairs.parquet`` and ``rejected.parquet``."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import geopandas as gpd
import pandas as pd
from rich.progress import Progress, TaskID

from eo_mmcl.catalog.config import CatalogConfig
from eo_mmcl.catalog.pairs import find_pairs
from eo_mmcl.catalog.scan import RASTER_COLUMNS, Rejection, scan_source
from eo_mmcl.catalog.sources import SourceDefinition
from eo_mmcl.catalog.stac import scan_stac_source
from eo_mmcl.errors import NoPairsError, SourceError
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.io.digest import json_digest, sha256_file
from eo_mmcl.io.tables import read_table

RASTERS_FILE = "rasters.parquet"
PAIRS_FILE = "pairs.parquet"
REJECTED_FILE = "rejected.parquet"
#: Sub-folder for the tables of a run that failed (no raster, no pair), for reading the reasons.
FAILED_DIR = "failed"


@dataclass(frozen=True)
class Catalog:
    """The three tables of a catalog.

    Args:
        rasters: One row per logical raster (GeoParquet, geometry = footprint in EPSG:4326).
        pairs: One row per S1 x S2 pair (GeoParquet, geometry = shared footprint).
        rejected: One row per file left out, with the reason.
    """

    rasters: gpd.GeoDataFrame
    pairs: gpd.GeoDataFrame
    rejected: pd.DataFrame


def _advance(progress: Progress, task: TaskID, _path: Path) -> None:
    progress.advance(task)


def _rasters_frame(records: list[dict[str, Any]]) -> gpd.GeoDataFrame:
    frame = pd.DataFrame(records, columns=list(RASTER_COLUMNS))
    frame["datetime"] = pd.to_datetime(frame["datetime"], utc=True)
    frame["epsg"] = frame["epsg"].astype("Int64")
    for column in ("width", "height"):
        frame[column] = frame[column].astype("Int64")
    gdf = gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:4326")
    return gdf.sort_values("raster_id", ignore_index=True)


def _rejected_frame(rejections: list[Rejection]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [r.__dict__ for r in rejections], columns=["path", "source", "rule", "reason"]
    )
    return frame.sort_values("path", ignore_index=True)


def build_catalog(
    sources: Sequence[SourceDefinition],
    out_dir: str | Path,
    config: CatalogConfig | None = None,
    show_progress: bool = False,
) -> Catalog:
    """Scan sources, pair S1 with S2, and write the catalog tables.

    Bad files do not stop the scan: they go to ``rejected.parquet`` with their reason. The three
    tables are written atomically and only by a run that succeeds, so a catalog folder always
    holds a consistent set, and a failed rerun leaves the earlier one byte for byte; a failed
    run's own tables go to ``FAILED_DIR`` inside the folder, so that its reasons can be read.

    Args:
        sources: Sources to scan.
        out_dir: Catalog folder (created).
        config: Which images make a pair (default: :class:`CatalogConfig`'s defaults).
        show_progress: Show a rich progress bar.

    Returns:
        The catalog.

    Raises:
        SourceError: If a source's root is missing or holds no raster file, or if no file at
            all could be catalogued (this run's tables are written to ``FAILED_DIR``).
        NoPairsError: If no pair is found and ``config.allow_unpaired`` is false (this run's tables
            are written to ``FAILED_DIR``, so the reasons can be inspected).
    """
    if not sources:
        raise SourceError("no source given")
    config = config or CatalogConfig()
    out = Path(out_dir)
    records: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    for source in sources:
        if not source.root.is_dir():
            raise SourceError(f"source {source.name!r}: root folder {source.root} does not exist")
        files = source.files()
        if not files:
            raise SourceError(
                f"source {source.name!r}: no raster files (*.tif, *.tiff) under {source.root}"
            )
        with Progress(disable=not show_progress, transient=True) as progress:
            task = progress.add_task(f"catalog {source.name}", total=len(files))
            scan = scan_stac_source if source.stac is not None else scan_source
            found, bad = scan(source, on_file=partial(_advance, progress, task))
        records.extend(found)
        rejections.extend(bad)

    ids = [r["raster_id"] for r in records]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SourceError(f"raster ids occur in more than one source: {duplicates[:5]}")
    rasters = _rasters_frame(records)
    rejected = _rejected_frame(rejections)
    pairs = find_pairs(rasters, min_overlap_km2=config.min_overlap_km2, max_days=config.max_days)
    catalog = Catalog(rasters=rasters, pairs=pairs, rejected=rejected)
    # A failed run's tables go beside the catalog, never over it: a rerun that finds nothing
    # (a source folder emptied, a window too narrow) must not destroy the good tables there.
    failed = out / FAILED_DIR
    if rasters.empty:
        write_catalog(catalog, failed)
        raise SourceError(
            f"no raster could be catalogued ({len(rejected)} rejected; see "
            f"{failed / REJECTED_FILE}); the tables in {out} were left as they were"
        )
    if pairs.empty and not config.allow_unpaired:
        write_catalog(catalog, failed)
        n1 = int(((rasters["sensor"] == "S1") & (rasters["role"] == "image")).sum())
        n2 = int(((rasters["sensor"] == "S2") & (rasters["role"] == "image")).sum())
        raise NoPairsError(
            f"no S1/S2 pair found among {n1} S1 and {n2} S2 images (minimum overlap "
            f"{config.min_overlap_km2} km2, maximum gap {config.max_days} days; this run's "
            f"tables are in {failed}, the tables in {out} were left as they were); pass "
            "--allow-unpaired for an S2-only catalog"
        )
    write_catalog(catalog, out)
    shutil.rmtree(failed, ignore_errors=True)  # an earlier failure's tables no longer apply
    return catalog


def write_catalog(catalog: Catalog, out_dir: str | Path) -> None:
    """Write the catalog tables: all three under temporary names, then renamed into place.

    No table is replaced unless all three were written, so a write that fails (full disk,
    read-only folder) leaves the earlier set as it was.

    Args:
        catalog: The tables.
        out_dir: Catalog folder (created).
    """
    out = Path(out_dir)
    tables = {
        RASTERS_FILE: catalog.rasters,
        PAIRS_FILE: catalog.pairs,
        REJECTED_FILE: catalog.rejected,
    }
    with contextlib.ExitStack() as stack:
        for name, table in tables.items():
            table.to_parquet(stack.enter_context(atomic_output(out / name)), index=False)


def read_catalog(catalog_dir: str | Path) -> Catalog:
    """Read a catalog folder written by :func:`build_catalog`.

    Args:
        catalog_dir: The catalog folder.

    Returns:
        The catalog.

    Raises:
        SourceError: If a table is missing or damaged (truncated, not Parquet).
    """
    folder = Path(catalog_dir)
    missing = [f for f in (RASTERS_FILE, PAIRS_FILE, REJECTED_FILE) if not (folder / f).exists()]
    if missing:
        raise SourceError(f"{folder}: not a catalog folder (missing {', '.join(missing)})")
    read = partial(read_table, writer="eo-mmcl catalog")
    return Catalog(
        rasters=cast(gpd.GeoDataFrame, read(folder / RASTERS_FILE, geo=True)),
        pairs=cast(gpd.GeoDataFrame, read(folder / PAIRS_FILE, geo=True)),
        rejected=read(folder / REJECTED_FILE),
    )


def require_raster_files(catalog: Catalog, raster_ids: Iterable[str], catalog_dir: Path) -> None:
    """Check that the files of catalogued rasters are still there, before any work uses them.

    Args:
        catalog: The catalog.
        raster_ids: The rasters a stage will read.
        catalog_dir: The catalog folder (named in the error).

    Raises:
        SourceError: If a file was deleted or moved since cataloguing, naming the first ones.
    """
    rows = catalog.rasters.set_index("raster_id")
    paths = {
        str(path)
        for raster_id in dict.fromkeys(raster_ids)
        for path in rows.loc[raster_id, "band_paths"]
    }
    gone = sorted(p for p in paths if not Path(p).is_file())
    if gone:
        more = f" and {len(gone) - 3} more" if len(gone) > 3 else ""
        raise SourceError(
            f"{', '.join(gone[:3])}{more}: catalogued in {catalog_dir} but no longer there "
            "(deleted or moved); restore the files or rerun eo-mmcl catalog"
        )


def catalog_digest(catalog_dir: str | Path) -> str:
    """The digest of a catalog and of the contents of every raster file it names.

    The tables alone describe rasters by metadata; a raster rewritten with other pixels but the
    same metadata leaves them unchanged. Stages that read the pixels (tiling, export)
    fingerprint with this digest, so that such a change reruns them.

    Args:
        catalog_dir: The catalog folder.

    Returns:
        Hex digest of the tables' bytes and each band file's path and SHA-256.

    Raises:
        SourceError: If a table is missing or damaged.
    """
    folder = Path(catalog_dir)
    catalog = read_catalog(folder)
    files = sorted({str(p) for paths in catalog.rasters["band_paths"] for p in paths})
    return json_digest(
        {
            "tables": {name: sha256_file(folder / name) for name in (RASTERS_FILE, PAIRS_FILE)},
            "files": {path: sha256_file(Path(path)) for path in files if Path(path).is_file()},
        }
    )
