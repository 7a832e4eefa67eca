import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import box

from eo_mmcl.geo import RasterGrid, footprint_to_crs


@given(
    width=st.integers(1, 700),
    height=st.integers(1, 700),
    rows=st.integers(1, 300),
)
def test_row_windows_tile_the_grid_exactly(width: int, height: int, rows: int) -> None:
    grid = RasterGrid.from_origin("EPSG:32633", 500_000, 5_300_000, 10, width, height)
    windows = grid.row_windows(rows)
    assert sum(w.height for w in windows) == height
    assert all(w.width == width and w.col_off == 0 for w in windows)
    assert [w.row_off for w in windows] == list(range(0, height, rows))


def test_pixel_centres_and_bounds() -> None:
    grid = RasterGrid.from_origin("EPSG:32633", 500_000, 5_300_000, 10, 4, 3)
    assert grid.bounds == (500_000, 5_299_970, 500_040, 5_300_000)
    x, y = grid.pixel_centres()
    np.testing.assert_array_equal(x[0], [500_005, 500_015, 500_025, 500_035])
    np.testing.assert_array_equal(y[:, 0], [5_299_995, 5_299_985, 5_299_975])


def test_footprint_round_trip_through_wgs84() -> None:
    utm = box(500_000, 5_290_000, 510_000, 5_300_000)
    back = footprint_to_crs(footprint_to_crs(utm, "EPSG:32633"), "EPSG:4326", "EPSG:32633")
    assert utm.symmetric_difference(back).area < 1.0  # m2, out of 1e8
