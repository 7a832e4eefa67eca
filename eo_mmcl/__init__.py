"""eo_mmcl: joint Sentinel-1/Sentinel-2 embeddings and what information survives in them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eo_mmcl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
