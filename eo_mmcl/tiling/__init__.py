"""Tiling: chip windows over shared S1/S2 footprints, written to a Zarr chip store."""

from eo_mmcl.tiling.store import (
    CHIPS_ZARR,
    INDEX_FILE,
    MANIFEST_FILE,
    StoreLayout,
    TaskSpec,
    open_store,
    store_metadata,
)
from eo_mmcl.tiling.tile import TileConfig, TileResult, tile_catalog

__all__ = [
    "CHIPS_ZARR",
    "INDEX_FILE",
    "MANIFEST_FILE",
    "StoreLayout",
    "TaskSpec",
    "TileConfig",
    "TileResult",
    "open_store",
    "store_metadata",
    "tile_catalog",
]
