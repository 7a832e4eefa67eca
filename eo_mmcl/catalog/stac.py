"""STAC as catalog input: Sentinel-1/2 items whose raster assets are local files.

A STAC SOURCE of ``eo-mmcl catalog`` is an item JSON, a STAC catalog or collection JSON (every
item below it), a stac-geoparquet file (one item per row), or a folder holding item JSON files
(beside the COGs they describe). Each item becomes one logical raster of the catalog:

- sensor from ``platform`` (``sentinel-2a``, ``sentinel-1b`` ...), else ``constellation``, else
  the collection id;
- date from ``datetime`` (else ``start_datetime``), scene from the item id, product from
  ``s2:product_type`` / ``sar:product_type``, else the collection id;
- bands from each raster asset's ``eo:bands`` (STAC 1.0) or ``bands`` (STAC 1.1) names, else
  from the asset key where it is a band name (``B04``, ``vv``): one file per band (as Earth
  Search and Planetary Computer ship Sentinel-2) and multi-band files alike.

Assets that are not rasters (thumbnails, metadata) are skipped; an asset file that is missing
or unreadable, and an item that is not Sentinel-1/2, land in ``rejected.parquet`` with the
reason, as files of a folder source do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pystac

from eo_mmcl.bands import S1_BANDS, S2_L1C_BANDS
from eo_mmcl.catalog.scan import (
    FileInfo,
    RejectedFile,
    Rejection,
    parse_datetime,
    raster_record,
    read_file_info,
)
from eo_mmcl.catalog.sources import SourceDefinition, SourceRule
from eo_mmcl.errors import ConfigError

#: The rule name that STAC records carry in the catalog (``rule`` column).
STAC_RULE = SourceRule(name="stac item", pattern=re.compile(".*"), bands=())
_RASTER_TYPES = ("image/tiff", "image/vnd.stac.geotiff", "application/x-geotiff")
_RASTER_SUFFIXES = (".tif", ".tiff", ".TIF", ".TIFF")


def is_stac_file(path: Path) -> bool:
    """Whether a file is STAC input: JSON with ``stac_version``, or stac-geoparquet.

    Args:
        path: A file.

    Returns:
        True for a STAC item, catalog or collection JSON, or a Parquet file with the columns
        stac-geoparquet writes (``id``, ``assets``).
    """
    if path.suffix == ".json":
        try:
            head = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return False
        return isinstance(head, dict) and "stac_version" in head
    if path.suffix in (".parquet", ".geoparquet"):
        try:
            names = set(pq.read_schema(path).names)
        except (OSError, ValueError):
            return False
        return {"id", "assets"} <= names
    return False


def stac_source(path: str | Path) -> SourceDefinition:
    """A source for STAC input (see the module docstring).

    Args:
        path: Item/catalog/collection JSON, stac-geoparquet file, or folder of item JSONs.

    Returns:
        The source definition (its ``stac`` field names the input).
    """
    path = Path(path).resolve()
    root = path if path.is_dir() else path.parent
    return SourceDefinition(name=path.stem or path.name, root=root, rules=(), stac=path)


def _item_files(folder: Path) -> list[Path]:
    """The STAC item JSON files under a folder (GeoJSON Features with ``stac_version``)."""
    found = []
    for path in sorted(folder.rglob("*.json")):
        if is_stac_file(path) and json.loads(path.read_text(encoding="utf-8")).get("type") == (
            "Feature"
        ):
            found.append(path)
    return found


def folder_has_stac_items(folder: Path) -> bool:
    """Whether a folder holds STAC item JSON files (then it is read as STAC input)."""
    return bool(_item_files(folder))


def load_items(path: Path) -> list[pystac.Item]:
    """The STAC items of an input, asset hrefs made absolute.

    Args:
        path: Item/catalog/collection JSON, stac-geoparquet file, or folder of item JSONs.

    Returns:
        The items, in input order.

    Raises:
        ConfigError: If the input is not STAC.
    """
    if path.is_dir():
        # Only the item files: a catalog.json beside them would list the same items again.
        found = [pystac.Item.from_file(str(p)) for p in _item_files(path)]
        for item in found:
            item.make_asset_hrefs_absolute()
        return found
    if not is_stac_file(path):
        raise ConfigError(f"{path}: not STAC input (an item, catalog or stac-geoparquet file)")
    if path.suffix != ".json":
        # stac-geoparquet's own reader turns the rows back into item dictionaries.
        from stac_geoparquet.arrow import stac_table_to_items

        items = [pystac.Item.from_dict(d) for d in stac_table_to_items(pq.read_table(path))]
        for item in items:
            for asset in item.assets.values():
                if not Path(asset.href).is_absolute() and "://" not in asset.href:
                    asset.href = str((path.parent / asset.href).resolve())
        return items
    stac = pystac.read_file(str(path))
    if isinstance(stac, pystac.Item):
        stac.make_asset_hrefs_absolute()
        return [stac]
    if isinstance(stac, pystac.Catalog):  # collections are catalogs too
        items = list(stac.get_items(recursive=True))
        for item in items:
            item.make_asset_hrefs_absolute()
        return items
    raise ConfigError(f"{path}: a STAC {type(stac).__name__} holds no items")


def _sensor(item: pystac.Item) -> str | None:
    """S1 or S2 from the item's platform, constellation or collection."""
    props = item.properties
    for value in (props.get("platform"), props.get("constellation"), item.collection_id):
        text = str(value or "").lower().replace("_", "-")
        if "sentinel-2" in text:
            return "S2"
        if "sentinel-1" in text:
            return "S1"
    return None


def _is_raster(key: str, asset: pystac.Asset) -> bool:
    media = (asset.media_type or "").lower()
    roles = asset.roles or []
    if "thumbnail" in roles or "overview" in roles or "metadata" in roles:
        return False
    return any(t in media for t in _RASTER_TYPES) or asset.href.endswith(_RASTER_SUFFIXES)


def _normalise_band(name: str, sensor: str) -> str:
    """A band name as the catalog spells it (``B4`` -> ``B04``, ``vv`` -> ``VV``)."""
    text = name.strip()
    if sensor == "S1":
        return text.upper()
    match = re.fullmatch(r"[Bb](\d{1,2})([Aa]?)", text)
    if match:
        number, narrow = int(match.group(1)), match.group(2)
        return f"B{number}A" if narrow else f"B{number:02d}"  # B8A keeps its one digit
    return text


def _asset_bands(key: str, asset: pystac.Asset, sensor: str) -> list[str] | None:
    """Band names of an asset: eo:bands / bands names, else the key if it names a band."""
    listed = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    names = [b.get("name") for b in listed if isinstance(b, dict)]
    if names and all(names):
        return [_normalise_band(str(n), sensor) for n in names]
    known = S1_BANDS if sensor == "S1" else S2_L1C_BANDS
    band = _normalise_band(key, sensor)
    return [band] if band in known else None


def _raster_assets(item: pystac.Item, sensor: str) -> Iterator[tuple[Path, list[str] | None, str]]:
    for key, asset in item.assets.items():
        if _is_raster(key, asset):
            yield (
                Path(asset.get_absolute_href() or asset.href),
                _asset_bands(key, asset, sensor),
                key,
            )


def scan_stac_source(
    source: SourceDefinition, on_file: Callable[[Path], None] | None = None
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Read every item of a STAC source into catalog records (one logical raster per item).

    Args:
        source: A source made by :func:`stac_source`.
        on_file: Called after each asset file (progress reporting).

    Returns:
        ``(records, rejections)``.
    """
    assert source.stac is not None
    records: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    for item in load_items(source.stac):
        where = f"stac item {item.id}"
        sensor = _sensor(item)
        if sensor is None:
            rejections.append(
                Rejection(item.id, source.name, where, "not a Sentinel-1 or Sentinel-2 item "
                          "(no sentinel-1/2 platform, constellation or collection)")
            )  # fmt: skip
            continue
        infos: list[FileInfo] = []
        bands: list[str] = []
        band_files: list[FileInfo] = []
        band_indexes: list[int] = []
        for path, names, key in _raster_assets(item, sensor):
            try:
                if names is None:
                    raise RejectedFile(
                        f"asset {key!r}: band names unknown (no eo:bands or bands names, and "
                        "the key is no band name)"
                    )
                info = read_file_info(path)
                if len(names) != info.count:
                    raise RejectedFile(
                        f"asset {key!r} names {len(names)} bands but the file has {info.count}"
                    )
            except RejectedFile as err:
                rejections.append(Rejection(str(path), source.name, where, str(err)))
                continue
            finally:
                if on_file is not None:
                    on_file(path)
            infos.append(info)
            bands += names
            band_files += [info] * len(names)
            band_indexes += list(range(1, len(names) + 1))
        if not infos:
            continue
        props = item.properties
        fields = {
            "sensor": sensor,
            "role": "image",
            "product": props.get("s2:product_type")
            or props.get("sar:product_type")
            or item.collection_id,
            "task": None,
            "scene": item.id,
            "datetime": parse_datetime(props.get("datetime") or props.get("start_datetime")),
            "nodata": None,
        }
        try:
            records.append(
                raster_record(
                    source, STAC_RULE, item.id, fields, infos, bands, band_files, band_indexes
                )
            )
        except RejectedFile as err:
            rejections.append(Rejection(item.id, source.name, where, str(err)))
    return records, rejections


def stac_asset_files(path: Path) -> list[Path]:
    """The local raster files of a STAC input's items (for progress and emptiness checks)."""
    files: list[Path] = []
    for item in load_items(path):
        sensor = _sensor(item) or "S2"
        files += [p for p, _, _ in _raster_assets(item, sensor)]
    return files
