"""Simulator throughput: seconds per scene pair and the ratio against writing the same rasters.

Reference: writing arrays of the same shapes, dtypes and GeoTIFF profile with rasterio (the I/O
floor of any simulator). Prints one line per size and, last, ``ratio_vs_write=...`` for the
largest size.

Usage: python benchmarks/simulate_throughput.py [--sizes 1024 2048]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

from eo_mmcl.geo import RasterGrid
from eo_mmcl.simulate import SimulationConfig, simulate_scenes
from eo_mmcl.simulate.rasters import raster_profile


def _write_only(folder: Path, size: int) -> float:
    rng = np.random.default_rng(0)
    grid = RasterGrid.from_origin("EPSG:32633", 500_000, 5_300_000, 10, size, size)
    s1_grid = RasterGrid.from_origin("EPSG:32633", 500_000, 5_300_000, 20, size // 2, size // 2)
    start = time.perf_counter()
    specs = [(grid, 12, "uint16", 0), (s1_grid, 2, "float32", float("nan"))]
    specs += [(grid, 1, "uint8", 255)] * 5 + [(grid, 1, "int32", -1)]
    for i, (g, count, dtype, nodata) in enumerate(specs):
        if dtype == "uint16":
            data = rng.integers(200, 4000, size=(count, g.height, g.width)).astype(dtype)
        elif dtype == "float32":
            data = rng.normal(-12, 3, size=(count, g.height, g.width)).astype(dtype)
        else:
            data = rng.integers(0, 6, size=(count, g.height, g.width)).astype(dtype)
        with rasterio.open(
            folder / f"ref{i}.tif", "w", **raster_profile(g, count, dtype, nodata)
        ) as ds:
            ds.write(data)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    sim_s: dict[int, float] = {}
    rss_mb: dict[int, float] = {}
    # Simulations first, smallest first: ru_maxrss only grows, so each reading is that size's
    # peak before the reference (which holds whole arrays in memory) runs.
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            simulate_scenes(Path(tmp) / "sim", SimulationConfig(size=size, seed=0))
            sim_s[size] = time.perf_counter() - start
        rss_mb[size] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ratio = float("nan")
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            write_s = _write_only(Path(tmp), size)
        ratio = sim_s[size] / write_s
        print(
            f"size={size} simulate_s={sim_s[size]:.2f} write_only_s={write_s:.2f} "
            f"mpx_per_s={size * size / sim_s[size] / 1e6:.2f} peak_rss_mb={rss_mb[size]:.0f}"
        )
    print(f"ratio_vs_write={ratio:.2f}")


if __name__ == "__main__":
    main()
