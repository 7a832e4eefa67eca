"""Tiling: chip windows over shared S1/S2 footprints, written to a Zarr chip store.

The names below load on first use (PEP 562), so that ``eo_mmcl.tile.config`` (what the
command line reads for its options) comes without Zarr, Dask and GeoPandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eo_mmcl.lazy import lazy_attributes

if TYPE_CHECKING:
    from eo_mmcl.tile.config import TileConfig
    from eo_mmcl.tile.run import TileResult, tile_catalog
    from eo_mmcl.tile.store import (
        CHIPS_ZARR,
        INDEX_FILE,
        MANIFEST_FILE,
        StoreLayout,
        TaskSpec,
        open_store,
        store_metadata,
    )

#: Where each public name lives.
_HOMES = {
    "CHIPS_ZARR": "store",
    "INDEX_FILE": "store",
    "MANIFEST_FILE": "store",
    "StoreLayout": "store",
    "TaskSpec": "store",
    "open_store": "store",
    "store_metadata": "store",
    "TileConfig": "config",
    "TileResult": "run",
    "tile_catalog": "run",
}

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

__getattr__ = lazy_attributes(__name__, _HOMES)
