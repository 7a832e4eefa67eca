"""Tiling throughput and memory: chips/s with 1 and 2 Dask workers, peak RSS at two scene sizes.

Reference: the same tiling in-process (``--workers 0``). Peak RSS is that of an in-process
``eo-mmcl tile`` run (Dask workers are separate processes whose memory is bounded by one task),
measured at two scene sizes: it must not grow with the scene. The last line is
``chips_per_s_1w=X chips_per_s_2w=Y rss_growth=Z`` (Z = peak RSS at the larger scene / smaller).

Usage: python benchmarks/tile_throughput.py [--sizes 2048 4096] [--chip-size 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eo_mmcl.catalog import build_catalog, folder_source
from eo_mmcl.simulate import SimulationConfig, simulate_scenes


def _tile(catalog: Path, out: Path, chip_size: int, workers: int) -> tuple[float, int, float]:
    """Run ``eo-mmcl tile`` in a fresh process; return (seconds, candidates, peak RSS MB)."""
    code = (
        "import json, resource, sys, time\n"
        "from eo_mmcl.tile import TileConfig, tile_catalog\n"
        "t = time.perf_counter()\n"
        f"r = tile_catalog({str(catalog)!r}, {str(out)!r}, TileConfig(chip_size={chip_size}), "
        f"workers={workers})\n"
        "print(json.dumps({'s': time.perf_counter() - t, 'n': r.manifest['counts']['candidates'],"
        " 'rss': peak_rss_mb()}))\n"
    )
    # The child's own high-water mark: ru_maxrss survives fork+exec on Linux and would report
    # the parent's RSS (which grows with the scenes it simulated); VmHWM belongs to the new
    # address space alone.
    code = (
        "def peak_rss_mb():\n"
        "    try:\n"
        "        for line in open('/proc/self/status'):\n"
        "            if line.startswith('VmHWM:'):\n"
        "                return int(line.split()[1]) / 1024\n"
        "    except OSError:\n"
        "        pass\n"
        "    import resource\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
    ) + code
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["s"], result["n"], result["rss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs=2, default=[2048, 4096])
    parser.add_argument("--chip-size", type=int, default=64)
    args = parser.parse_args()
    small, large = sorted(args.sizes)
    rss: dict[int, float] = {}
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for size in (small, large):
            scenes, catalog = root / f"scenes{size}", root / f"catalog{size}"
            simulate_scenes(scenes, SimulationConfig(size=size, seed=0))
            build_catalog([folder_source(scenes)], catalog)
            seconds, n, peak = _tile(catalog, root / f"chips{size}-0", args.chip_size, 0)
            rss[size] = peak
            print(
                f"size={size} workers=0 chips={n} seconds={seconds:.1f} "
                f"chips_per_s={n / seconds:.1f} peak_rss_mb={peak:.0f}"
            )
            if size == large:
                for workers in (1, 2):
                    start = time.perf_counter()
                    seconds, n, _ = _tile(
                        catalog, root / f"chips{size}-{workers}", args.chip_size, workers
                    )
                    wall = time.perf_counter() - start
                    rates[f"{workers}w"] = n / seconds
                    print(
                        f"size={size} workers={workers} chips={n} seconds={seconds:.1f} "
                        f"wall_with_startup={wall:.1f} chips_per_s={n / seconds:.1f}"
                    )
    print(f"max_rss_self_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
    print(
        f"chips_per_s_1w={rates['1w']:.1f} chips_per_s_2w={rates['2w']:.1f} "
        f"rss_growth={rss[large] / rss[small]:.2f}"
    )


if __name__ == "__main__":
    main()
