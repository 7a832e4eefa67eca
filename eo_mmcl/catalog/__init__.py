"""The raster catalog: footprints, dates and bands of S1/S2 rasters, and their S1 x S2 pairs."""

from eo_mmcl.catalog.build import Catalog, build_catalog, read_catalog
from eo_mmcl.catalog.pairs import find_pairs
from eo_mmcl.catalog.sources import (
    SourceDefinition,
    SourceRule,
    folder_source,
    load_source_definition,
    resolve_source,
)

__all__ = [
    "Catalog",
    "SourceDefinition",
    "SourceRule",
    "build_catalog",
    "find_pairs",
    "folder_source",
    "load_source_definition",
    "read_catalog",
    "resolve_source",
]
