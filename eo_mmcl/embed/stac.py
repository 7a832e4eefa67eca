"""STAC metadata of an export: one item per embedding raster, one catalog per run (pystac).

Items carry the fields of the draft STAC embeddings extension where they fit, under its ``emb:``
prefix: ``emb:type`` (``pixel`` for rasters, ``chip`` for the GeoParquet tables),
``emb:dimensions``, ``emb:data_type``, ``emb:quantization`` (scale, offset, maximum error),
``emb:model`` (objective and checkpoint hash). The draft publishes no schema URL that can be
resolved offline, so the fields are plain item properties and the items validate against the core
STAC schemas that ship with pystac.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pystac
import shapely
from rasterio.crs import CRS
from rasterio.warp import transform_geom

from eo_mmcl.io.atomic import atomic_output

if TYPE_CHECKING:
    from eo_mmcl.embed.model import EmbeddingModel

COG_MEDIA_TYPE = pystac.MediaType.COG


#: The projection extension, whose fields (``proj:code``, ``proj:shape`` ...) the items use.
PROJECTION_EXTENSION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"


def footprint_wgs84(crs: CRS, bounds: Sequence[float]) -> dict[str, Any]:
    """A raster's footprint in EPSG:4326, densified so that reprojected edges stay true.

    Args:
        crs: The raster CRS.
        bounds: ``(left, bottom, right, top)`` in that CRS.

    Returns:
        A GeoJSON polygon.
    """
    box = shapely.segmentize(shapely.box(*bounds), max_segment_length=(bounds[2] - bounds[0]) / 16)
    geometry: dict[str, Any] = transform_geom(crs, "EPSG:4326", shapely.geometry.mapping(box))
    return geometry


def embedding_item(
    item_id: str,
    geometry: dict[str, Any],
    dates: Sequence[datetime],
    properties: Mapping[str, Any],
    assets: Mapping[str, pystac.Asset],
) -> pystac.Item:
    """A STAC item for one embedding product.

    Args:
        item_id: The id.
        geometry: GeoJSON footprint in EPSG:4326.
        dates: Acquisition dates of the inputs (empty: unknown, the export time is used and
            ``eo_mmcl:date_unknown`` is set).
        properties: Extra properties (``emb:*``, ``eo_mmcl:*``).
        assets: Assets by key.

    Returns:
        The item.
    """
    shape = shapely.geometry.shape(geometry)
    props = dict(properties)
    if dates:
        start, end = min(dates), max(dates)
        props["start_datetime"] = start.isoformat()
        props["end_datetime"] = end.isoformat()
        when: datetime | None = None if start != end else start
        if when is None:
            props["datetime"] = None
    else:
        when = datetime.now(UTC)
        props["eo_mmcl:date_unknown"] = True
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=list(shape.bounds),
        datetime=when,
        properties=props,
        start_datetime=min(dates) if dates and when is None else None,
        end_datetime=max(dates) if dates and when is None else None,
    )
    if any(key.startswith("proj:") for key in props):
        item.stac_extensions.append(PROJECTION_EXTENSION)
    for key, asset in assets.items():
        item.add_asset(key, asset)
    return item


def write_catalog(
    out_dir: Path, catalog_id: str, description: str, items: Sequence[pystac.Item]
) -> Path:
    """Write a self-contained STAC catalog; every file atomically, ``catalog.json`` last.

    Args:
        out_dir: The export folder (the catalog goes to ``out_dir/catalog.json``, items to
            ``out_dir/stac/<id>.json``).
        catalog_id: Catalog id.
        description: Catalog description.
        items: Items whose asset hrefs are absolute paths inside ``out_dir``.

    Returns:
        The catalog path.
    """
    # Self-contained: every link and asset href relative, no self links, so that a copied or
    # moved export folder still resolves inside the copy. Written by hand (not catalog.save)
    # so that each file appears atomically.
    catalog = pystac.Catalog(
        id=catalog_id, description=description, catalog_type=pystac.CatalogType.SELF_CONTAINED
    )
    for item in items:
        catalog.add_item(item)
    root = out_dir / "catalog.json"
    catalog.normalize_hrefs(str(out_dir), strategy=_FlatLayout(out_dir))
    catalog.make_all_asset_hrefs_relative()
    for item in catalog.get_items():
        path = Path(item.get_self_href() or "")
        _write_json(path, item.to_dict(include_self_link=False, transform_hrefs=True))
    _write_json(root, catalog.to_dict(include_self_link=False, transform_hrefs=True))
    return root


class _FlatLayout(pystac.layout.CustomLayoutStrategy):
    """Items in ``stac/<id>.json`` beside the catalog (pystac's default nests one folder each)."""

    def __init__(self, out_dir: Path) -> None:
        super().__init__(
            item_func=lambda item, parent_dir: str(out_dir / "stac" / f"{item.id}.json")
        )


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1))


def link_provenance(
    item: pystac.Item, model: EmbeddingModel, checkpoint_sha: str, sources: Sequence[str]
) -> None:
    """Links from an embedding item to the model and the rasters it was computed from.

    Absolute paths: they point outside the export folder, where the inputs stay when the
    export is copied.
    """
    item.add_link(
        pystac.Link(
            "derived_from",
            str(model.path.resolve()),
            media_type="application/octet-stream",
            title=f"model checkpoint ({model.objective}, sha256 {checkpoint_sha[:12]})",
        )
    )
    for source in sources:
        item.add_link(
            pystac.Link(
                "derived_from", str(Path(source).resolve()), media_type=COG_MEDIA_TYPE,
                title="source raster",
            )
        )  # fmt: skip


def chip_item(
    model: EmbeddingModel,
    checkpoint_sha: str,
    key: str,
    path: Path,
    dates: list[datetime],
    chip_size: int,
) -> pystac.Item:
    """The STAC item of one chip-embedding table (and its FlatGeobuf footprints).

    Args:
        model: The model that embedded the chips.
        checkpoint_sha: Its checkpoint's SHA-256.
        key: Embedding key.
        path: The GeoParquet table.
        dates: The scenes' dates (the item's dates).
        chip_size: Chip side in pixels.

    Returns:
        The item, linked to the model.
    """
    import geopandas as gpd

    from eo_mmcl.embed.chips import footprints_path

    frame = gpd.read_parquet(path)
    dims = len(frame["embedding"].iloc[0]) if len(frame) else 0
    hull = frame.geometry.union_all().envelope if len(frame) else None
    geometry = (
        json.loads(gpd.GeoSeries([hull], crs=frame.crs).to_json())["features"][0]["geometry"]
        if hull is not None
        else {"type": "Polygon", "coordinates": [[[0, 0], [0, 0], [0, 0], [0, 0]]]}
    )
    properties = {
        "emb:type": "chip",
        "emb:dimensions": dims,
        "emb:data_type": "float32",
        # One pooled embedding per chip of the chip store, the chip whole.
        "emb:chip_layout": {"type": "chip", "chip_size_px": chip_size},
        "emb:model": {"objective": model.objective, "checkpoint_sha256": checkpoint_sha},
        "eo_mmcl:embedding_key": key,
        "eo_mmcl:chips": len(frame),
    }
    assets = {
        "embedding": pystac.Asset(
            str(path.resolve()), media_type="application/vnd.apache.parquet", roles=["data"]
        )
    }
    footprints = footprints_path(path)
    if footprints.is_file():
        assets["footprints"] = pystac.Asset(
            str(footprints.resolve()),
            media_type="application/vnd.flatgeobuf",
            roles=["metadata"],
            title="chip footprints with their first three principal components",
        )
    item = embedding_item(path.stem, geometry, dates, properties, assets)
    link_provenance(item, model, checkpoint_sha, [])
    return item
