"""Read raster metadata from a source's files into catalog records, or reasons for rejection."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import rasterio
from pyproj import Geod
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from eo_mmcl.bands import unknown_bands
from eo_mmcl.catalog.pixels import pixel_problem
from eo_mmcl.catalog.sources import ROLES, SourceDefinition, SourceRule
from eo_mmcl.geo.footprint import footprint_to_crs

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Rejection:
    """A file (or group of files) left out of the catalog, and why.

    Args:
        path: The file.
        source: Source name.
        rule: Rule that matched, or empty.
        reason: What is wrong, in words a user can act on.
    """

    path: str
    source: str
    rule: str
    reason: str


@dataclass(frozen=True)
class FileInfo:
    """What the catalog reads of one raster file (georeferencing, bands, tags)."""

    path: Path
    crs: Any
    transform: Any
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    descriptions: tuple[str | None, ...]
    tags: dict[str, str]

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y), positive."""
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in the file's CRS."""
        west, north = self.transform.c, self.transform.f
        return (
            west,
            north + self.height * self.transform.e,
            west + self.width * self.transform.a,
            north,
        )


class RejectedFile(Exception):
    """Raised internally when a file cannot enter the catalog; becomes a :class:`Rejection`."""


def read_file_info(path: Path) -> FileInfo:
    """Open a raster, decode its first and last block, and check it is georeferenced.

    Args:
        path: The file.

    Returns:
        What the catalog needs of it.

    Raises:
        RejectedFile: If it is unreadable, corrupt, without valid pixels, not georeferenced or
            rotated (the message is the rejection's reason).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                info = FileInfo(
                    path=path,
                    crs=ds.crs,
                    transform=ds.transform,
                    width=ds.width,
                    height=ds.height,
                    count=ds.count,
                    dtype=ds.dtypes[0],
                    nodata=ds.nodata,
                    descriptions=tuple(ds.descriptions),
                    tags=ds.tags(),
                )
                # Before the CRS: a PNG renamed .tif has no CRS either, but is not a GeoTIFF.
                problem = pixel_problem(ds)
    except (RasterioIOError, rasterio.errors.RasterioError, OSError) as err:
        raise RejectedFile(f"unreadable or corrupt raster: {err}") from err
    if problem is not None:
        raise RejectedFile(problem)
    if info.crs is None:
        raise RejectedFile("raster has no CRS (not georeferenced)")
    if info.transform.b != 0 or info.transform.d != 0:
        raise RejectedFile("raster is rotated; only north-up rasters are supported")
    return info


def parse_datetime(value: Any) -> pd.Timestamp | None:
    """Parse an acquisition date or datetime (``YYYYMMDD``, ISO, or a timestamp) as UTC.

    Args:
        value: The value from a file name, a tag or a source definition.

    Returns:
        A tz-aware UTC timestamp, or None for a missing value.

    Raises:
        RejectedFile: If the value is present but not a date.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    try:
        if re.fullmatch(r"\d{8}", text):
            return pd.Timestamp(pd.to_datetime(text, format="%Y%m%d"), tz="UTC")
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError) as err:
        raise RejectedFile(f"cannot parse acquisition date {text!r}") from err
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _geodesic_area_km2(geom_4326: BaseGeometry) -> float:
    area, _ = _GEOD.geometry_area_perimeter(geom_4326)
    return abs(area) / 1e6


def _fields(rule: SourceRule, match: re.Match[str], info: FileInfo) -> dict[str, Any]:
    values = {
        name: rule.field_value(name, match, info.tags)
        for name in ("sensor", "role", "product", "task", "scene", "datetime", "nodata")
    }
    values["role"] = values["role"] or "image"
    if values["role"] not in ROLES:
        raise RejectedFile(f"unknown role {values['role']!r}; expected one of {ROLES}")
    sensor = values["sensor"]
    if sensor is None:
        raise RejectedFile(f"rule {rule.name!r} gives no sensor")
    values["sensor"] = str(sensor).upper()
    if values["sensor"] not in ("S1", "S2"):
        raise RejectedFile(f"unknown sensor {sensor!r}; expected S1 or S2")
    values["datetime"] = parse_datetime(values["datetime"])
    return values


def _bands_of_file(rule: SourceRule, info: FileInfo, role: str, task: str | None) -> list[str]:
    if isinstance(rule.bands, tuple):
        bands = list(rule.bands)
    elif role in ("label", "cloud_mask", "parcel_id") and info.count == 1:
        bands = [task or role] if role == "label" else [role]
    else:
        bands = [d or "" for d in info.descriptions]
        if not all(bands):
            raise RejectedFile(
                "band names unknown: the file has no band descriptions and the source rule "
                "gives no band list"
            )
    if len(bands) != info.count:
        raise RejectedFile(f"rule names {len(bands)} bands but the file has {info.count}")
    return bands


def raster_record(
    source: SourceDefinition,
    rule: SourceRule,
    key: str,
    fields: dict[str, Any],
    files: list[FileInfo],
    bands: list[str],
    band_files: list[FileInfo],
    band_indexes: list[int],
) -> dict[str, Any]:
    """One catalog row: a logical raster made of one or more files.

    Args:
        source: Its source.
        rule: The rule that read it.
        key: Its id within the source (the raster id is ``<source>/<key>``).
        fields: Sensor, role, product, task, scene, datetime, nodata.
        files: Its files.
        bands: Its band names, in order.
        band_files: The file of each band.
        band_indexes: Each band's 1-based index within its file.

    Returns:
        The record (the columns of ``rasters.parquet``).

    Raises:
        RejectedFile: If the files disagree (CRS, data type), the bands are unknown or
            duplicated, or the files do not overlap.
    """
    crs = files[0].crs
    if any(f.crs != crs for f in files):
        raise RejectedFile("the files of this raster are in different CRSs")
    dtypes = {f.dtype for f in files}
    if len(dtypes) > 1:
        raise RejectedFile(f"the files of this raster have different data types {sorted(dtypes)}")
    if fields["role"] == "image":
        unknown = unknown_bands(fields["sensor"], bands)
        if unknown:
            raise RejectedFile(f"unknown band names for {fields['sensor']}: {unknown}")
    if len(set(bands)) != len(bands):
        raise RejectedFile(f"duplicate band names {bands}")
    finest = min(files, key=lambda f: f.res[0] * f.res[1])
    # The footprint is where every band has pixels: multi-resolution products (S2 60 m bands)
    # can extend tens of metres beyond the 10 m bands.
    footprint = box(*finest.bounds)
    for f in files:
        footprint = footprint.intersection(box(*f.bounds))
    if footprint.is_empty:
        raise RejectedFile("the files of this raster do not overlap")
    geometry = footprint_to_crs(footprint, crs, "EPSG:4326")
    nodata = fields["nodata"] if fields["nodata"] is not None else finest.nodata
    epsg = crs.to_epsg()
    return {
        "raster_id": f"{source.name}/{key}",
        "source": source.name,
        "rule": rule.name,
        "sensor": fields["sensor"],
        "product": fields["product"],
        "role": fields["role"],
        "task": fields["task"],
        "scene": fields["scene"],
        "datetime": fields["datetime"],
        "paths": sorted({str(f.path) for f in files}),
        "band_names": bands,
        "band_paths": [str(f.path) for f in band_files],
        "band_indexes": band_indexes,
        "band_resolutions": [float(f.res[0]) for f in band_files],
        "crs": f"EPSG:{epsg}" if epsg else crs.to_wkt(),
        "epsg": epsg,
        "res_x": float(finest.res[0]),
        "res_y": float(finest.res[1]),
        "width": int(finest.width),
        "height": int(finest.height),
        "transform": [float(v) for v in list(finest.transform)[:6]],
        "dtype": finest.dtype,
        "nodata": float(nodata) if nodata is not None else None,
        "bounds_native": [float(v) for v in footprint.bounds],
        "footprint_native": footprint.wkt,
        "area_km2": _geodesic_area_km2(geometry),
        "geometry": geometry,
    }


def scan_source(
    source: SourceDefinition,
    on_file: Callable[[Path], None] | None = None,
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Read every raster of a source into catalog records.

    Args:
        source: The source.
        on_file: Called after each file (progress reporting).

    Returns:
        ``(records, rejections)``: one record per logical raster, one rejection per bad file.
    """
    records: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    groups: dict[tuple[str, str], list[tuple[SourceRule, dict[str, Any], FileInfo, str]]] = {}
    rejections += [Rejection(str(p), source.name, "", why) for p, why in source.dead_links()]
    for path in source.files():
        relative = path.relative_to(source.root).as_posix()
        rule_name = ""
        try:
            info = read_file_info(path)
            rule, match = _first_rule(source, relative, info)
            rule_name = rule.name
            fields = _fields(rule, match, info)
            if rule.grouped:
                if info.count != 1:
                    raise RejectedFile(
                        f"'bands: pattern' expects single-band files, got {info.count}"
                    )
                # Files whose paths differ only in the band name form one logical raster.
                stem = relative[: match.start("band")] + relative[match.end("band") :]
                key = (rule.name, Path(stem).with_suffix("").as_posix().rstrip("_-."))
                groups.setdefault(key, []).append((rule, fields, info, match.group("band")))
            else:
                bands = _bands_of_file(rule, info, fields["role"], fields["task"])
                records.append(
                    raster_record(
                        source,
                        rule,
                        Path(relative).with_suffix("").as_posix(),
                        fields,
                        [info],
                        bands,
                        [info] * len(bands),
                        list(range(1, len(bands) + 1)),
                    )
                )
        except RejectedFile as err:
            rejections.append(Rejection(str(path), source.name, rule_name, str(err)))
        if on_file is not None:
            on_file(path)
    for key, members in sorted(groups.items()):
        rule, fields, _, _ = members[0]
        order = {b: i for i, b in enumerate(rule.band_order)}
        members = sorted(members, key=lambda m: (order.get(m[3], len(order)), m[3]))
        infos = [m[2] for m in members]
        bands = [m[3] for m in members]
        try:
            missing = [b for b in rule.band_order if b not in bands]
            if missing:
                raise RejectedFile(f"bands missing from the file set: {missing}")
            records.append(
                raster_record(source, rule, key[1], fields, infos, bands, infos, [1] * len(infos))
            )
        except RejectedFile as err:
            for info in infos:
                rejections.append(Rejection(str(info.path), source.name, rule.name, str(err)))
    return records, rejections


def _first_rule(
    source: SourceDefinition, relative: str, info: FileInfo
) -> tuple[SourceRule, re.Match[str]]:
    for rule in source.rules:
        match = rule.match(relative, info.tags)
        if match is not None:
            return rule, match
    raise RejectedFile(
        f"no rule of source {source.name!r} matches this file: cannot tell its sensor and date"
    )


#: Columns of the rasters table, in order.
RASTER_COLUMNS = (
    "raster_id", "source", "rule", "sensor", "product", "role", "task", "scene", "datetime",
    "paths", "band_names", "band_paths", "band_indexes", "band_resolutions", "crs", "epsg",
    "res_x", "res_y", "width", "height", "transform", "dtype", "nodata", "bounds_native",
    "footprint_native", "area_km2", "geometry",
)  # fmt: skip
