"""Blocks of an export: embedded and blended by the workers (picklable), read back by the client."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from eo_mmcl.embed.model import NEEDS, EmbeddingModel
from eo_mmcl.embed.predict import predict_embeddings, window_loader
from eo_mmcl.embed.windows import WindowGrid, blend, tent_weights, window_views
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.objectives.base import PredictOutputs
from eo_mmcl.tile.reader import RasterReader, RasterSpec

#: GDAL block cache per export process, in MB (the default, 5% of RAM, grows with the scene).
GDAL_CACHE_MB = 128


@dataclass(frozen=True)
class Scene:
    """One scene to export (picklable).

    Args:
        name: Output name stem.
        s2: S2 bands to read.
        s1: S1 bands to read, or None.
        crs: WKT of the S2 grid.
        transform: The S2 grid's transform (6 coefficients).
        width: S2 width.
        height: S2 height.
        dates: ISO dates of the inputs.
        sources: Paths of the inputs.
    """

    name: str
    s2: RasterSpec
    s1: RasterSpec | None
    crs: str
    transform: tuple[float, ...]
    width: int
    height: int
    dates: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class BlockJob:
    """One output block of one scene (picklable).

    Args:
        scene: The scene.
        grid: Its window grid.
        block: ``(row0, col0, rows, cols)`` in output pixels.
        keys: Embedding keys.
        checkpoint: Checkpoint path.
        block_dir: Folder of this scene's block files.
        batch_size: Windows per forward pass.
        torch_threads: Torch intra-op threads (0: leave as is).
        accelerator: Lightning accelerator of the predict loop.
    """

    scene: Scene
    grid: WindowGrid
    block: tuple[int, int, int, int]
    keys: tuple[str, ...]
    checkpoint: str
    block_dir: str
    batch_size: int
    torch_threads: int = 0
    accelerator: str = "auto"

    @property
    def block_id(self) -> str:
        """File stem of the block."""
        return f"r{self.block[0]:06d}-c{self.block[1]:06d}"


_MODELS: dict[str, EmbeddingModel] = {}


def _model(path: str) -> EmbeddingModel:
    # One load per worker process: a checkpoint is read once, not once per block.
    if path not in _MODELS:
        _MODELS.clear()
        _MODELS[path] = EmbeddingModel.load(path)
    return _MODELS[path]


def share_model(checkpoint: str, model: EmbeddingModel) -> None:
    """Hand the blocks of an in-process export the model already loaded (not loaded again).

    Args:
        checkpoint: The checkpoint path the blocks name (resolved).
        model: Its loaded model.
    """
    _MODELS.clear()
    _MODELS[checkpoint] = model


def run_block(job: BlockJob) -> str:
    """Embed one output block and save it per key (its marker is the ledger's).

    Args:
        job: The block.

    Returns:
        The block id.
    """
    threads = torch.get_num_threads()
    try:
        if job.torch_threads:
            torch.set_num_threads(job.torch_threads)
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
            blocks = embed_block(job)
    finally:
        # A threaded Dask worker shares the client's process: leave torch as it was.
        torch.set_num_threads(threads)
    out = Path(job.block_dir)
    for key, values in blocks.items():
        with atomic_output(out / f"{job.block_id}.{key}.npy") as tmp:
            np.save(tmp, values)
    return job.block_id


def embed_block(job: BlockJob) -> dict[str, np.ndarray]:
    """The blended embeddings of one output block.

    Args:
        job: The block.

    Returns:
        ``{key: (D, rows, cols) float32}``, NaN where the block's pixels lack data (fewer than
        half of the S2 pixels of an output pixel valid in the modalities the key needs).
    """
    model = _model(job.checkpoint)
    grid, scene = job.grid, job.scene
    row0, col0, rows, cols = job.block
    ri0, ri1 = grid.block_lattice(row0, rows, grid.out_height)
    ci0, ci1 = grid.block_lattice(col0, cols, grid.out_width)
    n_rows, n_cols = ri1 - ri0 + 1, ci1 - ci0 + 1
    y0, x0 = grid.window_origin(ri0), grid.window_origin(ci0)
    region = Window(
        x0, y0, (n_cols - 1) * grid.step + grid.window, (n_rows - 1) * grid.step + grid.window
    )
    crs, transform = CRS.from_wkt(scene.crs), Affine(*scene.transform)
    needs = {m for k in job.keys for m in NEEDS.get(k, ("s1", "s2"))}
    pixels: dict[str, np.ndarray] = {}
    valid: dict[str, np.ndarray] = {}
    with RasterReader(scene.s2, crs, transform) as reader:
        s2 = reader.read(region).astype(np.float32)
    if scene.s2.nodata is not None:
        s2[s2 == scene.s2.nodata] = np.nan
    pixels["s2"], valid["s2"] = s2, np.all(np.isfinite(s2), axis=0)
    if scene.s1 is not None and "s1" in needs:
        with RasterReader(scene.s1, crs, transform) as reader:
            s1 = reader.read(region)
        pixels["s1"], valid["s1"] = s1, np.all(np.isfinite(s1), axis=0)
    views = {m: window_views(a, grid.window, grid.step, n_rows, n_cols) for m, a in pixels.items()}
    loader = window_loader(views, model.normaliser(job.keys, "s1" in views), job.batch_size)
    lattices = predict_embeddings(
        model.module, loader, PredictOutputs(keys=job.keys), accelerator=job.accelerator
    )
    row_w = tent_weights(row0, rows, ri0, ri1, grid.k)
    col_w = tent_weights(col0, cols, ci0, ci1, grid.k)
    s = grid.stride
    # Output pixel validity: the share of valid S2 pixels in its stride x stride block.
    masks = {
        m: v[row0 * s - y0 : (row0 + rows) * s - y0, col0 * s - x0 : (col0 + cols) * s - x0]
        .reshape(rows, s, cols, s)
        .mean(axis=(1, 3))
        >= 0.5
        for m, v in valid.items()
    }
    result = {}
    for key in job.keys:
        lattice = lattices[key].reshape(n_rows, n_cols, -1).transpose(2, 0, 1)
        values = blend(lattice, row_w, col_w)
        ok = np.ones((rows, cols), dtype=bool)
        for modality in NEEDS.get(key, ("s1", "s2")):
            ok &= masks.get(modality, np.zeros_like(ok))
        values[:, ~ok] = np.nan
        result[key] = values
    return result


# -- reading the blocks back (client side) -------------------------------------------------
def iter_blocks(
    grid: WindowGrid, block_dir: Path, key: str
) -> Iterator[tuple[tuple[int, int, int, int], Callable[[], np.ndarray]]]:
    """Each output block of one raster with a loader of its saved values (one in memory at a time).

    Args:
        grid: The scene's window grid.
        block_dir: Folder of the scene's block files.
        key: Embedding key.

    Yields:
        ``((row0, col0, rows, cols), load)``.
    """
    for block in grid.blocks():
        stem = f"r{block[0]:06d}-c{block[1]:06d}"
        yield block, block_loader(block_dir / f"{stem}.{key}.npy")


def block_loader(path: Path) -> Callable[[], np.ndarray]:
    """A function that loads one saved block when called.

    Args:
        path: The block's ``.npy`` file.

    Returns:
        The loader.
    """
    return lambda: np.load(path)


def value_range(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Per band, the smallest and largest value over every block (inf where a band is empty)."""
    vmin: np.ndarray | None = None
    vmax: np.ndarray | None = None
    for path in paths:
        values = np.load(path)  # (D, rows, cols), NaN at nodata
        flat = values.reshape(values.shape[0], -1)
        low = np.min(np.where(np.isnan(flat), np.inf, flat), axis=1)
        high = np.max(np.where(np.isnan(flat), -np.inf, flat), axis=1)
        vmin = low if vmin is None else np.minimum(vmin, low)
        vmax = high if vmax is None else np.maximum(vmax, high)
    assert vmin is not None and vmax is not None, "a raster has at least one block"
    return vmin, vmax
