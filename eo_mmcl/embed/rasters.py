"""The client side of an export: each scene's blocks streamed into a COG, a preview and an item."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine
from rasterio.crs import CRS

from eo_mmcl import __version__
from eo_mmcl.embed.blocks import (
    Scene,
    iter_blocks,
    value_range,
)
from eo_mmcl.embed.cog import Quantisation, write_embedding_cog
from eo_mmcl.embed.config import EmbedConfig
from eo_mmcl.embed.model import NEEDS, EmbeddingModel
from eo_mmcl.embed.preview import pca_preview
from eo_mmcl.embed.stac import (
    COG_MEDIA_TYPE,
    embedding_item,
    footprint_wgs84,
    link_provenance,
)
from eo_mmcl.embed.windows import WindowGrid
from eo_mmcl.io.atomic import atomic_output


def modality_of(key: str) -> str:
    """The modality an embedding key reads: ``s1``, ``s2`` or ``joint``."""
    needs = NEEDS.get(key, ("s1", "s2"))
    return needs[0] if len(needs) == 1 else "joint"


def is_finished(path: Path, fingerprint: str) -> bool:
    """Whether a COG was finished by this very export (its tags carry the fingerprint).

    Args:
        path: The COG.
        fingerprint: The export's fingerprint.

    Returns:
        True when the file exists, opens and carries it.
    """
    if not path.is_file():
        return False
    try:
        with rasterio.open(path) as ds:
            return ds.tags().get("EXPORT_FINGERPRINT") == fingerprint
    except rasterio.errors.RasterioIOError:
        return False


@dataclass(frozen=True)
class RasterContext:
    """What every raster of one export shares.

    Args:
        config: The export's options (window, stride and step resolved).
        model: The model that embeds.
        checkpoint_sha: Its checkpoint's SHA-256.
        fingerprint: The export's fingerprint (a finished raster carries it in its tags).
        out: The export folder.
        progress_dir: Folder of the block files.
    """

    config: EmbedConfig
    model: EmbeddingModel
    checkpoint_sha: str
    fingerprint: str
    out: Path
    progress_dir: Path


@dataclass(frozen=True)
class FinishedRaster:
    """One embedding raster written: its COG, its preview and its STAC item.

    Args:
        path: The COG.
        preview: The PCA preview PNG, or None.
        item: The STAC item.
    """

    path: Path
    preview: Path | None
    item: pystac.Item


def finish_raster(ctx: RasterContext, scene: Scene, grid: WindowGrid, key: str) -> FinishedRaster:
    """Stream a scene's blocks of one embedding key into its COG, preview and STAC item.

    A COG that already carries the export's fingerprint is kept as it is.

    Args:
        ctx: What the export's rasters share.
        scene: The scene.
        grid: Its window grid.
        key: Embedding key.

    Returns:
        What was written.
    """
    config, model, checkpoint_sha = ctx.config, ctx.model, ctx.checkpoint_sha
    fingerprint, out, progress_dir = ctx.fingerprint, ctx.out, ctx.progress_dir
    block_dir = progress_dir / scene.name
    stem = f"{scene.name}_{model.objective}_{key}"
    path = out / f"{stem}.tif"
    block_files = [block_dir / f"r{b[0]:06d}-c{b[1]:06d}.{key}.npy" for b in grid.blocks()]
    dims = int(np.load(block_files[0], mmap_mode="r").shape[0])
    if config.dtype == "uint8":
        quantisation = Quantisation.from_range("uint8", *value_range(block_files))
    else:
        quantisation = Quantisation("float16")
    dates = "/".join(sorted(scene.dates)) if scene.dates else "unknown"
    tags = {
        "OBJECTIVE": model.objective,
        "MODALITY": modality_of(key),
        "EMBEDDING_KEY": key,
        "CHECKPOINT_SHA256": checkpoint_sha,
        "EO_MMCL_VERSION": __version__,
        "DATE_RANGE": dates,
        "WINDOW_PX": str(config.window),
        "STRIDE_PX": str(config.stride),
        "STEP_PX": str(config.step),
        "BLENDING": "triangular (tent) weights between window centres, half-width STEP_PX",
        "QUANTIZATION": config.dtype,
        "QUANTIZATION_MAX_ERROR": repr(quantisation.max_error),
        "EXPORT_FINGERPRINT": fingerprint,
        "SOURCES": ",".join(scene.sources),
    }
    crs = CRS.from_wkt(scene.crs)
    transform = grid.out_transform(Affine(*scene.transform))
    shape = (dims, grid.out_height, grid.out_width)
    if not is_finished(path, fingerprint):
        with atomic_output(path) as tmp:
            write_embedding_cog(
                tmp,
                progress_dir / f"{stem}.scratch.tif",
                iter_blocks(grid, block_dir, key),
                shape,
                crs,
                transform,
                quantisation,
                tags,
            )
    assets = {
        "embedding": pystac.Asset(
            str(path.resolve()), media_type=COG_MEDIA_TYPE, roles=["data"], title=key
        )
    }
    png = pca_preview(path, out / f"{stem}_pca.png") if config.preview else None
    if png is not None:
        assets["preview"] = pystac.Asset(
            str(png.resolve()), media_type=pystac.MediaType.PNG, roles=["overview"]
        )
    with rasterio.open(path) as ds:
        bounds = tuple(ds.bounds)
    properties = {
        "emb:type": "pixel",
        "emb:dimensions": dims,
        "emb:data_type": config.dtype,
        "emb:quantization": {
            "method": "linear" if config.dtype == "uint8" else "none",
            "original_data_type": "float32",
            "quantized_data_type": config.dtype,
            # Per band: value = code * scale + offset.
            "scale": list(quantisation.scales),
            "offset": list(quantisation.offsets),
            "max_error": list(quantisation.max_errors),
            "nodata": None if config.dtype == "float16" else quantisation.nodata,
        },
        "emb:model": {"objective": model.objective, "checkpoint_sha256": checkpoint_sha},
        "eo_mmcl:modality": modality_of(key),
        "eo_mmcl:embedding_key": key,
        "eo_mmcl:window_px": config.window,
        "eo_mmcl:stride_px": config.stride,
        "eo_mmcl:step_px": config.step,
        "eo_mmcl:version": __version__,
        "proj:code": crs.to_string(),
        "proj:shape": [grid.out_height, grid.out_width],
        "proj:transform": list(transform)[:6],
        # How a pixel's embedding was made: sliding windows blended between their centres.
        "emb:chip_layout": {
            "type": "sliding_window",
            "window_px": config.window,
            "stride_px": config.stride,
            "step_px": config.step,
            "blending": "tent",
        },
    }
    when = [datetime.fromisoformat(d) for d in scene.dates]
    geometry = footprint_wgs84(crs, bounds)
    item = embedding_item(stem, geometry, when, properties, assets)
    link_provenance(item, model, checkpoint_sha, scene.sources)
    return FinishedRaster(path, png, item)
