"""Options of the catalog stage (``eo-mmcl catalog`` and the pipeline file's ``catalog.config``).

Kept apart from the scanner so that the command line can build its options from
:class:`CatalogConfig` without loading GeoPandas and rasterio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eo_mmcl.errors import ConfigError


@dataclass(frozen=True)
class CatalogConfig:
    """Options of ``eo-mmcl catalog``: which S1 and S2 images make a pair.

    Args:
        min_overlap_km2: Minimum shared footprint of an S1/S2 pair, km2.
        max_days: Maximum time gap of an S1/S2 pair, days.
        allow_unpaired: Accept a catalog without S1/S2 pairs (S2-only sources).
    """

    min_overlap_km2: float = 1.0
    max_days: float = 12.0
    allow_unpaired: bool = False

    def __post_init__(self) -> None:
        for name in ("min_overlap_km2", "max_days"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")
