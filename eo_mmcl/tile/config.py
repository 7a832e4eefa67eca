"""Options of the tile stage (``eo-mmcl tile`` and the pipeline file's ``tile.config``).

Kept apart from the tiler so that the command line can build its options from
:class:`TileConfig` without loading Zarr, Dask and GeoPandas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eo_mmcl.bands import S2_L2A_BANDS
from eo_mmcl.errors import ConfigError

#: Target size of one S2 chunk. Zarr v3 costs about a millisecond per chunk read whatever its
#: size, so chunks must be large for chip reads to approach memory-map speed; 32 MiB keeps the
#: datamodule's cache of a few chunks per array well under a gigabyte.
TARGET_CHUNK_BYTES = 32 * 2**20


def auto_chips_per_chunk(chip_size: int, bands: int = len(S2_L2A_BANDS)) -> int:
    """Chips per chunk so that an S2 chunk holds about ``TARGET_CHUNK_BYTES``.

    Args:
        chip_size: Chip size in pixels.
        bands: S2 bands (uint16).

    Returns:
        A power of two in 8..256 (64 for 128 px chips, 256 for 64 px chips).
    """
    per_chip = bands * chip_size * chip_size * 2
    n = max(1, TARGET_CHUNK_BYTES // per_chip)
    return int(min(256, max(8, 2 ** int(np.log2(n)))))


@dataclass(frozen=True)
class TileConfig:
    """Options of ``eo-mmcl tile``.

    Args:
        chip_size: Chip size in S2 pixels.
        stride: Step between chips (default: ``chip_size``, no overlap).
        max_nodata: Largest fraction of pixels without S1 or S2 data in a kept chip.
        max_cloud: Largest fraction of clouded pixels in a kept chip.
        split_block: Side of a split block, in chips.
        split_fractions: Train, val and test fractions.
        seed: Seed of the split draws and of the store order.
        chips_per_chunk: Chips per Zarr chunk (default: about 32 MiB of S2 per chunk, see
            :func:`auto_chips_per_chunk`).
        chunks_per_task: Zarr chunks written by one Dask task.
        s2_only: Tile S2 images alone (no S1), e.g. a real S2 scene.
    """

    chip_size: int = 64
    stride: int | None = None
    max_nodata: float = 0.05
    max_cloud: float = 0.1
    split_block: int = 8
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    chips_per_chunk: int | None = None
    chunks_per_task: int = 1
    s2_only: bool = False

    def __post_init__(self) -> None:
        if self.chip_size < 8:
            raise ConfigError(f"chip_size must be >= 8, got {self.chip_size}")
        if self.stride is not None and not 1 <= self.stride <= self.chip_size:
            raise ConfigError(f"stride must be in 1..chip_size, got {self.stride}")
        for name in ("max_nodata", "max_cloud"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.split_block < 1:
            raise ConfigError(f"split_block must be >= 1, got {self.split_block}")
        fractions = self.split_fractions
        if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
            raise ConfigError(f"split_fractions must be 3 values >= 0 summing to 1: {fractions}")
        if (self.chips_per_chunk is not None and self.chips_per_chunk < 1) or (
            self.chunks_per_task < 1
        ):
            raise ConfigError("chips_per_chunk and chunks_per_task must be >= 1")

    @property
    def chunk_length(self) -> int:
        """Chips per Zarr chunk: the option, or the size-based default."""
        return self.chips_per_chunk or auto_chips_per_chunk(self.chip_size)

    @property
    def step(self) -> int:
        """The stride in pixels."""
        return self.stride or self.chip_size
