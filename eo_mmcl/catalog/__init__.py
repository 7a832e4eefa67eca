"""The raster catalog: footprints, dates and bands of S1/S2 rasters, and their S1 x S2 pairs.

The names below load on first use (PEP 562), so that ``eo_mmcl.catalog.config`` (what the
command line reads for its options) comes without GeoPandas and rasterio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eo_mmcl.lazy import lazy_attributes

if TYPE_CHECKING:
    from eo_mmcl.catalog.build import Catalog, build_catalog, read_catalog
    from eo_mmcl.catalog.config import CatalogConfig
    from eo_mmcl.catalog.pairs import find_pairs
    from eo_mmcl.catalog.sources import (
        SourceDefinition,
        SourceRule,
        folder_source,
        load_source_definition,
        resolve_source,
    )

#: Where each public name lives.
_HOMES = {
    "Catalog": "build",
    "CatalogConfig": "config",
    "SourceDefinition": "sources",
    "SourceRule": "sources",
    "build_catalog": "build",
    "find_pairs": "pairs",
    "folder_source": "sources",
    "load_source_definition": "sources",
    "read_catalog": "build",
    "resolve_source": "sources",
}

__all__ = [
    "Catalog",
    "CatalogConfig",
    "SourceDefinition",
    "SourceRule",
    "build_catalog",
    "find_pairs",
    "folder_source",
    "load_source_definition",
    "read_catalog",
    "resolve_source",
]

__getattr__ = lazy_attributes(__name__, _HOMES)
