"""File-level helpers shared by every stage: atomic writes and deterministic GeoTIFF profiles."""

from eo_mmcl.io.atomic import atomic_output

__all__ = ["atomic_output"]
