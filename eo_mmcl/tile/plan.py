"""Chip windows on the S2 grid over shared footprints, spatial-block splits and store slots."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from scipy.ndimage import maximum_filter
from shapely.geometry.base import BaseGeometry

from eo_mmcl.tile.store import SPLITS

#: When chips of two splits would touch, the chip of the lower-priority split is dropped:
#: evaluation splits keep their chips, training gives up the border.
SPLIT_PRIORITY = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class ChipWindow:
    """One candidate chip: a window of the S2 raster's grid.

    Args:
        pair_id: Pair (or, S2-only, S2 raster) it belongs to.
        col_off: Column offset on the S2 raster's grid.
        row_off: Row offset on the S2 raster's grid.
        split: ``train``, ``val`` or ``test``.
    """

    pair_id: str
    col_off: int
    row_off: int
    split: str

    @property
    def chip_id(self) -> str:
        """Stable chip identifier."""
        return f"{self.pair_id}-r{self.row_off}-c{self.col_off}"


def lattice_windows(
    transform: Affine,
    footprint: BaseGeometry,
    chip_size: int,
    stride: int,
    width: int,
    height: int,
) -> np.ndarray:
    """Chip offsets on the raster's own lattice whose chips lie inside ``footprint``.

    The lattice is anchored at the raster's origin (offsets are multiples of ``stride``), so
    every pair that shares an S2 raster cuts the same chips and gets the same splits.

    Args:
        transform: The S2 raster's affine transform.
        footprint: Area to cover, in the S2 raster's CRS.
        chip_size: Chip size in pixels.
        stride: Step between chips in pixels.
        width: Raster width.
        height: Raster height.

    Returns:
        Array of (row_off, col_off), shape (n, 2), int64, in row-major order.
    """
    inv = ~transform
    minx, miny, maxx, maxy = footprint.bounds
    corner_cols, corner_rows = zip(
        *(inv * (x, y) for x in (minx, maxx) for y in (miny, maxy)), strict=True
    )
    c0 = max(0, int(np.ceil(min(corner_cols) / stride)) * stride)
    r0 = max(0, int(np.ceil(min(corner_rows) / stride)) * stride)
    c1 = min(width, int(np.floor(max(corner_cols)))) - chip_size
    r1 = min(height, int(np.floor(max(corner_rows)))) - chip_size
    if c1 < c0 or r1 < r0:
        return np.zeros((0, 2), dtype=np.int64)
    rr, cc = np.meshgrid(
        np.arange(r0, r1 + 1, stride), np.arange(c0, c1 + 1, stride), indexing="ij"
    )
    rows, cols = rr.ravel(), cc.ravel()
    # North-up grid: x depends on the column only, y on the row only.
    x0, y0 = transform.c + cols * transform.a, transform.f + rows * transform.e
    x1, y1 = x0 + chip_size * transform.a, y0 + chip_size * transform.e
    boxes = shapely.box(
        np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)
    )
    inside = shapely.within(boxes, shapely.buffer(footprint, 1e-6 * abs(transform.a)))
    return np.column_stack([rows[inside], cols[inside]]).astype(np.int64)


def _block_priority(
    key: str, seed: int, blocks_r: np.ndarray, blocks_c: np.ndarray, fractions: tuple[float, ...]
) -> np.ndarray:
    # One seeded draw per block, keyed by the raster: same seed, same blocks, same splits.
    salt = zlib.crc32(key.encode())
    edges = np.cumsum(fractions)[:-1]
    out = np.empty(blocks_r.shape, dtype=np.int8)
    for idx in np.ndindex(blocks_r.shape):
        u = np.random.default_rng(
            [seed, salt, int(blocks_r[idx]) + 2**20, int(blocks_c[idx]) + 2**20]
        ).random()
        out[idx] = int(np.searchsorted(edges, u, side="right"))
    return out


def assign_splits(
    offsets: np.ndarray,
    key: str,
    chip_size: int,
    stride: int,
    split_block: int,
    fractions: tuple[float, float, float],
    seed: int,
) -> np.ndarray:
    """Spatial-block split of chips, with chips dropped where two splits would touch.

    Blocks are ``split_block`` x ``split_block`` lattice steps; each block draws its split. A chip
    whose footprint touches or overlaps a chip position of a block with a higher-priority split
    (test > val > train) is dropped, so that no two kept chips of different splits share a
    border or overlap.

    Args:
        offsets: (n, 2) row/col offsets on the lattice (multiples of ``stride``).
        key: Identifier of the raster the lattice belongs to (salts the draws).
        chip_size: Chip size in pixels.
        stride: Lattice step in pixels.
        split_block: Block size in lattice steps.
        fractions: Train, val and test fractions (summing to 1).
        seed: Random seed.

    Returns:
        Split name per chip, or ``""`` for dropped chips, shape (n,).
    """
    if len(offsets) == 0:
        return np.zeros(0, dtype=object)
    idx = offsets // stride  # lattice indices
    reach = chip_size // stride  # lattice steps within which two chips touch or overlap
    lo = idx.min(axis=0) - reach
    hi = idx.max(axis=0) + reach
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    bi, bj = ii // split_block, jj // split_block
    ub, inverse = np.unique(np.stack([bi.ravel(), bj.ravel()], axis=1), axis=0, return_inverse=True)
    block_prio = _block_priority(key, seed, ub[:, 0], ub[:, 1], fractions)
    prio = block_prio[inverse.ravel()].reshape(ii.shape)
    neighbourhood_max = maximum_filter(prio, size=2 * reach + 1, mode="nearest")
    local = idx - lo
    own = prio[local[:, 0], local[:, 1]]
    keep = neighbourhood_max[local[:, 0], local[:, 1]] <= own
    return np.where(keep, np.array(SPLITS, dtype=object)[own], "")


def store_order(splits: np.ndarray, chips_per_chunk: int, seed: int) -> tuple[np.ndarray, int]:
    """Slots for chips: grouped by split, shuffled within the split, splits chunk-aligned.

    Args:
        splits: Split name per chip (kept chips only).
        chips_per_chunk: Chips per Zarr chunk.
        seed: Random seed of the shuffle.

    Returns:
        ``(slots, n_slots)``: the slot of each chip, and the total number of slots (with the
        padding that starts each split on a fresh chunk).
    """
    rng = np.random.default_rng([seed, 7919])
    slots = np.empty(len(splits), dtype=np.int64)
    start = 0
    for name in SPLITS:
        members = np.flatnonzero(splits == name)
        slots[rng.permutation(members)] = start + np.arange(len(members))
        start += -(-len(members) // chips_per_chunk) * chips_per_chunk
    return slots, max(start, chips_per_chunk)
