"""Sliding windows over a scene, the output grid at a stride, and the blending weights.

The export assigns the pooled embedding of a ``window`` x ``window`` px window to the output
pixel (a ``stride`` x ``stride`` block of the S2 grid) at the window's centre. Windows run on a
lattice of centres every ``step`` px (a multiple of ``stride``); between lattice centres the
output is blended with separable triangular (tent, Bartlett) weights: a window contributes to an
output pixel at ``d`` output pixels from its centre (per axis) with weight ``max(0, 1 - |d| / k)``,
``k = step / stride``. These weights sum to exactly 1 at every output pixel (a partition of unity),
so the output is a weighted mean of overlapping windows, continuous across window borders (no
seams), and at a lattice centre it equals that window's embedding exactly. With ``step ==
stride`` every output pixel is the embedding of the window centred on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine

from eo_mmcl.errors import ConfigError


@dataclass(frozen=True)
class WindowGrid:
    """Geometry of a sliding-window export of one scene.

    Args:
        width: S2 raster width (px).
        height: S2 raster height (px).
        window: Window side (S2 px).
        stride: Output pixel side (S2 px).
        step: Spacing of the window centres (S2 px), a multiple of ``stride``.
        block: Output block side (output px) processed by one job, a multiple of ``step/stride``.
    """

    width: int
    height: int
    window: int
    stride: int
    step: int
    block: int

    def __post_init__(self) -> None:
        if self.stride < 1 or self.window < self.stride:
            raise ConfigError(
                f"need 1 <= stride <= window, got stride={self.stride} window={self.window}"
            )
        if (self.window - self.stride) % 2:
            # The window must sit centred on its output block on the pixel lattice.
            raise ConfigError(
                f"window - stride must be even (window={self.window}, stride={self.stride})"
            )
        if self.step < self.stride or self.step % self.stride:
            raise ConfigError(
                f"step must be a positive multiple of stride (step={self.step}, "
                f"stride={self.stride})"
            )
        if self.block < 1 or self.block % self.k:
            raise ConfigError(f"block must be a multiple of step/stride={self.k}")

    @property
    def k(self) -> int:
        """Window spacing in output pixels."""
        return self.step // self.stride

    @property
    def out_width(self) -> int:
        """Output raster width (px)."""
        return math.ceil(self.width / self.stride)

    @property
    def out_height(self) -> int:
        """Output raster height (px)."""
        return math.ceil(self.height / self.stride)

    def out_transform(self, transform: Affine) -> Affine:
        """The output grid's transform: the S2 grid's, at ``stride`` px per output pixel.

        Args:
            transform: The S2 grid's transform.

        Returns:
            The output transform.
        """
        return transform * Affine.scale(self.stride)

    def lattice_size(self, out_size: int) -> int:
        """Number of window centres along an axis (the last one at or past the last pixel).

        Args:
            out_size: Output pixels along the axis.

        Returns:
            Lattice points along the axis.
        """
        return (out_size - 1 + self.k - 1) // self.k + 1

    def window_origin(self, lattice_index: int) -> int:
        """S2 pixel offset of the first pixel of the window at a lattice index (one axis).

        Args:
            lattice_index: Index of the window centre on the lattice.

        Returns:
            The offset (negative near the scene's top/left edge: those reads are boundless).
        """
        return lattice_index * self.step + (self.stride - self.window) // 2

    def blocks(self) -> list[tuple[int, int, int, int]]:
        """Output blocks as ``(row0, col0, rows, cols)`` in output pixels, row-major.

        Returns:
            The blocks.
        """
        out = []
        for r in range(0, self.out_height, self.block):
            for c in range(0, self.out_width, self.block):
                rows = min(self.block, self.out_height - r)
                cols = min(self.block, self.out_width - c)
                out.append((r, c, rows, cols))
        return out

    def block_lattice(self, start: int, size: int, out_size: int) -> tuple[int, int]:
        """Lattice indices ``[first, last]`` whose windows reach an output range (one axis).

        Args:
            start: First output pixel of the block.
            size: Output pixels in the block.
            out_size: Output pixels along the axis.

        Returns:
            ``(first, last)`` lattice indices, inclusive.
        """
        first = start // self.k
        last = min(self.lattice_size(out_size) - 1, -(-(start + size - 1) // self.k))
        return first, last


def tent_weights(start: int, size: int, first: int, last: int, k: int) -> np.ndarray:
    """Triangular blending weights of lattice windows onto output pixels (one axis).

    Args:
        start: First output pixel.
        size: Output pixels.
        first: First lattice index.
        last: Last lattice index (inclusive).
        k: Lattice spacing in output pixels.

    Returns:
        ``(size, last - first + 1)`` weights; every row sums to 1.
    """
    pixels = np.arange(start, start + size, dtype=np.float64)[:, None]
    centres = (np.arange(first, last + 1, dtype=np.float64) * k)[None, :]
    weights = np.clip(1.0 - np.abs(pixels - centres) / k, 0.0, None)
    # Exactly 1 already inside the lattice; the division guards rounding only.
    return weights / weights.sum(axis=1, keepdims=True)


def blend(embeddings: np.ndarray, row_weights: np.ndarray, col_weights: np.ndarray) -> np.ndarray:
    """Blend lattice embeddings onto output pixels with separable weights.

    Args:
        embeddings: ``(D, n_rows, n_cols)`` embeddings of the lattice windows.
        row_weights: ``(rows, n_rows)`` weights.
        col_weights: ``(cols, n_cols)`` weights.

    Returns:
        ``(D, rows, cols)`` float32.
    """
    # Two batched matrix products (rows, then columns): BLAS, several times faster than einsum.
    rows = np.matmul(row_weights.astype(np.float32), embeddings.astype(np.float32, copy=False))
    return np.matmul(rows, col_weights.T.astype(np.float32))


def window_views(
    region: np.ndarray, window: int, step: int, n_rows: int, n_cols: int
) -> np.ndarray:
    """The lattice windows of a read region, as a view (no copy).

    Args:
        region: ``(C, H, W)`` pixels whose top-left is the first window's top-left.
        window: Window side.
        step: Spacing of the windows.
        n_rows: Windows along y.
        n_cols: Windows along x.

    Returns:
        ``(n_rows, n_cols, C, window, window)`` view.
    """
    views = np.lib.stride_tricks.sliding_window_view(region, (window, window), axis=(1, 2))
    # (C, H', W', win, win) -> every step-th position -> (rows, cols, C, win, win)
    picked = views[:, : (n_rows - 1) * step + 1 : step, : (n_cols - 1) * step + 1 : step]
    return np.moveaxis(picked, 0, 2)
