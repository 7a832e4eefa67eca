"""eo_mmcl: joint Sentinel-1/Sentinel-2 embeddings and what information survives in them."""

import os
from importlib.metadata import PackageNotFoundError, version

from eo_mmcl import aliases

#: How long an idle OpenMP thread of torch's CPU kernels busy-waits before it sleeps (libgomp
#: iterations). libgomp's default (300,000) keeps every waiting thread spinning on its core:
#: on a shared machine (four training processes on 2 cores) a step then took 16x its quiet time
#: instead of the 2x its share explains; 10,000 keeps the quiet speed and brings that to 11x
#: (`benchmarks/train_contention.py`). Fewer threads would do better still under load but change
#: the floating-point results (same seed, same result needs the same thread count), so the thread
#: count stays torch's. It must be set before torch loads libgomp, hence here; a value the user
#: set wins.
OPENMP_SPIN_COUNT = "10000"
os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN_COUNT)

# Old package names (eo_mmcl.tiling, .export, .probes, .tasks) keep importing, for users'
# scripts, their configs' class paths and the class path each checkpoint stores.
aliases.install()

try:
    __version__ = version("eo_mmcl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["OPENMP_SPIN_COUNT", "__version__"]
