"""A north-up raster grid: CRS, affine transform and size, with the coordinates of its pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import Polygon, box


@dataclass(frozen=True)
class RasterGrid:
    """A north-up raster grid.

    Args:
        crs: Coordinate reference system of the grid.
        transform: Affine transform from pixel (col, row) to map (x, y) of pixel corners.
        width: Number of columns.
        height: Number of rows.
    """

    crs: CRS
    transform: Affine
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"grid size must be positive, got {self.width}x{self.height}")
        if self.transform.b != 0 or self.transform.d != 0 or self.transform.e >= 0:
            raise ValueError(f"only north-up grids are supported, got transform {self.transform}")

    @classmethod
    def from_origin(
        cls, crs: CRS | str, west: float, north: float, res: float, width: int, height: int
    ) -> RasterGrid:
        """Build a grid from its upper-left corner and square pixel size.

        Args:
            crs: Coordinate reference system.
            west: x of the upper-left corner.
            north: y of the upper-left corner.
            res: Pixel size in CRS units.
            width: Number of columns.
            height: Number of rows.

        Returns:
            The grid.
        """
        return cls(
            CRS.from_user_input(crs), Affine(res, 0.0, west, 0.0, -res, north), width, height
        )

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return (self.transform.a, -self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Bounds as (west, south, east, north)."""
        west, north = self.transform.c, self.transform.f
        east = west + self.width * self.transform.a
        south = north + self.height * self.transform.e
        return (west, south, east, north)

    @property
    def footprint(self) -> Polygon:
        """The grid's extent as a polygon in its own CRS."""
        return box(*self.bounds)

    def pixel_centre_axes(
        self, window: Window | None = None, step: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates of the pixel centres' columns and rows (the grid is north-up).

        Args:
            window: Restrict to this window (whole grid by default).
            step: Take every ``step``-th column and row.

        Returns:
            ``x`` of shape (cols,) and ``y`` of shape (rows,), float64.
        """
        if window is None:
            window = Window(0, 0, self.width, self.height)
        c0, r0 = int(window.col_off), int(window.row_off)
        cols = np.arange(c0, c0 + int(window.width), step, dtype=np.float64) + 0.5
        rows = np.arange(r0, r0 + int(window.height), step, dtype=np.float64) + 0.5
        return (
            self.transform.c + cols * self.transform.a,
            self.transform.f + rows * self.transform.e,
        )

    def pixel_centres(self, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates of every pixel centre.

        Args:
            window: Restrict to this window (whole grid by default).

        Returns:
            Arrays ``x`` and ``y`` of shape (rows, cols), float64.
        """
        xx, yy = np.meshgrid(*self.pixel_centre_axes(window))
        return xx, yy

    def row_windows(self, rows_per_block: int) -> list[Window]:
        """Split the grid into full-width windows of at most ``rows_per_block`` rows.

        Args:
            rows_per_block: Rows per window.

        Returns:
            Windows covering the grid from top to bottom.
        """
        return [
            Window(0, r, self.width, min(rows_per_block, self.height - r))
            for r in range(0, self.height, rows_per_block)
        ]
