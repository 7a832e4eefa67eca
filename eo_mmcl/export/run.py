"""``eo-mmcl embed``: sliding-window embedding rasters of whole scenes, on Dask distributed.

Plan: every S1/S2 pair of the catalog (or every S2 image of an S2-only catalog) is one scene on
its S2 grid; its output grid (stride ``stride``) is cut into blocks of output pixels. A Dask task
reads the S2 (and S1, resampled onto the S2 grid by the tiling's GDAL warper in linear power)
pixels its windows need, embeds the windows, blends them onto the block (see
:mod:`eo_mmcl.export.windows`) and saves the block per embedding key under ``OUT_DIR/.embed``,
then a marker. The client then streams the blocks of each raster into a tiled GeoTIFF and
finishes it as a COG (one block in memory at a time), writes the STAC items, the previews, the
chip GeoParquet and the STAC catalog, and ``embed_manifest.json`` last.

Workers write only their own block files and the client writes every raster, so no two
processes ever write one file. Every final file appears by an atomic rename: a killed export
leaves no file that looks finished, and a rerun skips the blocks that have markers.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pystac
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from eo_mmcl import __version__
from eo_mmcl.catalog.build import (
    PAIRS_FILE,
    RASTERS_FILE,
    read_catalog,
    require_raster_files,
)
from eo_mmcl.errors import ConfigError, SourceError
from eo_mmcl.export.chips import chip_embeddings, footprints_path
from eo_mmcl.export.cog import UINT8_NODATA, Quantisation, resolve_dtype, write_embedding_cog
from eo_mmcl.export.config import EmbedConfig
from eo_mmcl.export.model import NEEDS, EmbeddingModel
from eo_mmcl.export.preview import pca_preview
from eo_mmcl.export.stac import COG_MEDIA_TYPE, embedding_item, footprint_wgs84, write_catalog
from eo_mmcl.export.windows import WindowGrid, blend, tent_weights, window_views
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.io.cluster import run_tasks
from eo_mmcl.io.digest import json_digest, sha256_file
from eo_mmcl.io.tables import read_table
from eo_mmcl.tasks.checkpoint import check_fits_data, check_fits_store
from eo_mmcl.tiling.reader import RasterReader, RasterSpec
from eo_mmcl.tiling.store import open_store, store_metadata

PROGRESS_DIR = ".embed"
MANIFEST_FILE = "embed_manifest.json"
#: Side of the S2 area one task covers (px): bounds a task's memory whatever the scene size.
BLOCK_S2_PX = 1024
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
class BlockTask:
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
    """

    scene: Scene
    grid: WindowGrid
    block: tuple[int, int, int, int]
    keys: tuple[str, ...]
    checkpoint: str
    block_dir: str
    batch_size: int
    torch_threads: int = 0

    @property
    def block_id(self) -> str:
        """File stem of the block."""
        return f"r{self.block[0]:06d}-c{self.block[1]:06d}"


@dataclass
class ExportResult:
    """What an export wrote.

    Args:
        out_dir: The export folder.
        rasters: COG paths.
        previews: PNG paths.
        chip_tables: GeoParquet paths.
        catalog: STAC catalog path.
        reused: A finished export with the same inputs was found and left alone.
        messages: Notes (skipped scenes, ...).
    """

    out_dir: Path
    rasters: list[Path] = field(default_factory=list)
    previews: list[Path] = field(default_factory=list)
    chip_tables: list[Path] = field(default_factory=list)
    catalog: Path | None = None
    reused: bool = False
    messages: list[str] = field(default_factory=list)


# -- worker side ----------------------------------------------------------------------------
_MODELS: dict[str, EmbeddingModel] = {}


def _model(path: str) -> EmbeddingModel:
    # One load per worker process: a checkpoint is read once, not once per block.
    if path not in _MODELS:
        _MODELS.clear()
        _MODELS[path] = EmbeddingModel.load(path)
    return _MODELS[path]


def run_block(task: BlockTask) -> str:
    """Embed one output block and save it per key, then its marker.

    Args:
        task: The block.

    Returns:
        The block id.
    """
    threads = torch.get_num_threads()
    try:
        if task.torch_threads:
            torch.set_num_threads(task.torch_threads)
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
            blocks = embed_block(task)
    finally:
        # A threaded Dask worker shares the client's process: leave torch as it was.
        torch.set_num_threads(threads)
    out = Path(task.block_dir)
    for key, values in blocks.items():
        with atomic_output(out / f"{task.block_id}.{key}.npy") as tmp:
            np.save(tmp, values)
    with atomic_output(out / f"{task.block_id}.done") as tmp:
        tmp.write_text("ok")
    return task.block_id


def embed_block(task: BlockTask) -> dict[str, np.ndarray]:
    """The blended embeddings of one output block.

    Args:
        task: The block.

    Returns:
        ``{key: (D, rows, cols) float32}``, NaN where the block's pixels lack data (fewer than
        half of the S2 pixels of an output pixel valid in the modalities the key needs).
    """
    model = _model(task.checkpoint)
    grid, scene = task.grid, task.scene
    row0, col0, rows, cols = task.block
    ri0, ri1 = grid.block_lattice(row0, rows, grid.out_height)
    ci0, ci1 = grid.block_lattice(col0, cols, grid.out_width)
    n_rows, n_cols = ri1 - ri0 + 1, ci1 - ci0 + 1
    y0, x0 = grid.window_origin(ri0), grid.window_origin(ci0)
    region = Window(
        x0, y0, (n_cols - 1) * grid.step + grid.window, (n_rows - 1) * grid.step + grid.window
    )
    crs, transform = CRS.from_wkt(scene.crs), Affine(*scene.transform)
    needs = {m for k in task.keys for m in NEEDS.get(k, ("s1", "s2"))}
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
    norm = model.transform()
    flat: dict[str, list[np.ndarray]] = {k: [] for k in task.keys}
    total = n_rows * n_cols
    for start in range(0, total, task.batch_size):
        ii, jj = np.divmod(np.arange(start, min(start + task.batch_size, total)), n_cols)
        batch = {m: np.ascontiguousarray(v[ii, jj]) for m, v in views.items()}
        out = model.embed(batch.get("s1"), batch["s2"], task.keys, norm)
        for key, value in out.items():
            flat[key].append(value)
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
    for key, parts in flat.items():
        lattice = np.concatenate(parts).reshape(n_rows, n_cols, -1).transpose(2, 0, 1)
        values = blend(lattice, row_w, col_w)
        ok = np.ones((rows, cols), dtype=bool)
        for modality in NEEDS.get(key, ("s1", "s2")):
            ok &= masks.get(modality, np.zeros_like(ok))
        values[:, ~ok] = np.nan
        result[key] = values
    return result


# -- planning --------------------------------------------------------------------------------
def _date(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def plan_scenes(
    catalog_dir: Path, model: EmbeddingModel, messages: list[str]
) -> tuple[list[Scene], bool]:
    """The scenes of a catalog, with the bands the model reads (checked before any work).

    Args:
        catalog_dir: Catalog folder.
        model: The model.
        messages: Notes are appended here.

    Returns:
        ``(scenes, s2_only)``.

    Raises:
        SourceError: If the catalog has no S2 image.
        ConfigError: If a raster lacks a band of the checkpoint.
    """
    catalog = read_catalog(catalog_dir)
    rasters = catalog.rasters.set_index("raster_id", drop=False)
    s2_only = catalog.pairs.empty
    if s2_only:
        rows = rasters[(rasters["sensor"] == "S2") & (rasters["role"] == "image")]
        jobs: list[tuple[str, str, str | None]] = [
            (str(r.raster_id), str(r.raster_id), None) for r in rows.itertuples()
        ]
        if not jobs:
            raise SourceError(f"{catalog_dir}: the catalog has no Sentinel-2 image")
        messages.append(f"{catalog_dir}: no S1/S2 pairs; exporting S2 embeddings only")
    else:
        jobs = [(str(p.pair_id), str(p.s2_id), str(p.s1_id)) for p in catalog.pairs.itertuples()]
    require_raster_files(
        catalog, [r for _, s2, s1 in jobs for r in (s2, s1) if r is not None], catalog_dir
    )
    names = [str(rasters.loc[s2]["scene"]) for _, s2, _ in jobs]
    scenes = []
    for (pair_id, s2_id, s1_id), name in zip(jobs, names, strict=True):
        s2_row = rasters.loc[s2_id]
        unique = name != "None" and name != "nan" and names.count(name) == 1
        _check_raster(model, s2_row, "s2")
        s2 = RasterSpec.from_catalog_row(s2_row, model.bands["s2"], "bilinear")
        s1 = None
        dates = [_date(s2_row["datetime"])]
        sources = [*map(str, s2_row["paths"])]
        if s1_id is not None:
            s1_row = rasters.loc[s1_id]
            _check_raster(model, s1_row, "s1")
            s1 = RasterSpec.from_catalog_row(s1_row, model.bands["s1"], "bilinear", db=True)
            dates.append(_date(s1_row["datetime"]))
            sources += [*map(str, s1_row["paths"])]
        scenes.append(
            Scene(
                name=name if unique else pair_id,
                s2=s2,
                s1=s1,
                crs=CRS.from_user_input(s2_row["crs"]).to_wkt(),
                transform=tuple(float(v) for v in s2_row["transform"]),
                width=int(s2_row["width"]),
                height=int(s2_row["height"]),
                dates=tuple(d for d in dates if d is not None),
                sources=tuple(sources),
            )
        )
    return scenes, s2_only


def _check_raster(model: EmbeddingModel, row: pd.Series, sensor: str) -> None:
    """The raster of a catalog row offers the checkpoint's bands (read by name)."""
    bands = {sensor: list(row["band_names"])}
    check_fits_data(model.path, model.meta, row["paths"][0], bands, by_name=True)


def default_window(meta: dict[str, Any]) -> int:
    """The training chip size the checkpoint records (or its chip store does), else 64.

    Args:
        meta: The checkpoint's ``eo_mmcl`` dict.

    Returns:
        Window side in pixels.
    """
    if meta.get("chip_size"):
        return int(meta["chip_size"])
    chips = Path(str(meta.get("chips_dir") or ""))
    manifest = chips / "tile_manifest.json"
    if str(chips) not in ("", ".") and manifest.is_file():
        return int(json.loads(manifest.read_text())["config"]["chip_size"])
    return 64


def _fingerprint(
    checkpoint_sha: str, catalog_dir: Path, config: EmbedConfig, keys: Sequence[str]
) -> str:
    payload = {
        "checkpoint": checkpoint_sha,
        "rasters": sha256_file(catalog_dir / RASTERS_FILE),
        "pairs": sha256_file(catalog_dir / PAIRS_FILE),
        "config": asdict(config),
        "keys": list(keys),
        # Block files are named by position: another block size must not reuse them.
        "block": _block_side(config),
        "version": __version__,
    }
    return json_digest(payload)


# -- running ---------------------------------------------------------------------------------
def _run_tasks(
    tasks: Sequence[BlockTask],
    workers: int | None,
    scheduler: str | None,
    on_done: Callable[[], None],
) -> None:
    # Looked up at call time, so that tests can wrap the task function.
    run_tasks(run_block, tasks, workers, scheduler, on_done)


def _block_loader(path: Path) -> Callable[[], np.ndarray]:
    return lambda: np.load(path)


def _value_range(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
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


def _modality(key: str) -> str:
    needs = NEEDS.get(key, ("s1", "s2"))
    return needs[0] if len(needs) == 1 else "joint"


def export_embeddings(
    checkpoint: str | Path,
    catalog_dir: str | Path,
    out_dir: str | Path,
    config: EmbedConfig,
    chips_dir: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    show_progress: bool = False,
) -> ExportResult:
    """Export embedding COGs, STAC items, PCA previews and chip GeoParquet (resumable, atomic).

    Args:
        checkpoint: A checkpoint written by ``eo-mmcl train``.
        catalog_dir: Catalog folder (``eo-mmcl catalog`` output).
        out_dir: Export folder.
        config: Options.
        chips_dir: Chip store for the per-chip GeoParquet (default: the checkpoint's chip
            store when it exists and was cut from this catalog; otherwise no chip table).
        workers: LocalCluster worker processes (default: one per CPU; 0: in this process).
        scheduler: Address of an existing Dask scheduler (overrides ``workers``).
        force: Redo a finished export, or one started with other options.
        show_progress: Show a rich progress bar.

    Returns:
        What was written.

    Raises:
        SourceError: If the checkpoint or catalog is unusable, or an unfinished export was
            started with other options (and ``force`` is false).
        ConfigError: If the options are invalid or the rasters lack the checkpoint's bands.
    """
    from rich.progress import Progress

    checkpoint, catalog_dir, out = Path(checkpoint), Path(catalog_dir), Path(out_dir)
    if not (catalog_dir / RASTERS_FILE).is_file():
        raise SourceError(f"{catalog_dir}: no {RASTERS_FILE} (run eo-mmcl catalog first)")
    ensure_config(config)
    messages: list[str] = []
    config = _stored_type(config, messages)  # validates --dtype before any work
    model = EmbeddingModel.load(checkpoint)
    config = config.resolved(default_window(model.meta))
    scenes, s2_only = plan_scenes(catalog_dir, model, messages)
    # The chip store is checked before any work, not after the rasters are written.
    chips = _chips_dir(chips_dir, model, catalog_dir)
    keys = model.keys(config.modality, s2_only=s2_only)
    grids = {
        s.name: WindowGrid(
            s.width,
            s.height,
            int(config.window or 0),
            config.stride,
            int(config.step or 0),
            block=_block_side(config),
        )
        for s in scenes
    }
    checkpoint_sha = sha256_file(checkpoint)
    fingerprint = _fingerprint(checkpoint_sha, catalog_dir, config, keys)
    manifest_path = out / MANIFEST_FILE
    if manifest_path.is_file() and not force:
        done = json.loads(manifest_path.read_text())
        if done.get("fingerprint") == fingerprint:
            return ExportResult(out, reused=True, messages=messages)
    progress_dir = out / PROGRESS_DIR
    plan_path = progress_dir / "plan.json"
    started = json.loads(plan_path.read_text()) if plan_path.is_file() else None
    if started is not None and started.get("fingerprint") != fingerprint and not force:
        raise SourceError(
            f"{out}: an unfinished export was started with other options, checkpoint or "
            "catalog; rerun with --force to start over"
        )
    if started is None or force or started.get("fingerprint") != fingerprint:
        shutil.rmtree(progress_dir, ignore_errors=True)
        manifest_path.unlink(missing_ok=True)
        progress_dir.mkdir(parents=True)
        with atomic_output(plan_path) as tmp:
            tmp.write_text(json.dumps({"fingerprint": fingerprint}))
    threads = max(1, (os.cpu_count() or 1) // max(1, workers or os.cpu_count() or 1))
    tasks = [
        BlockTask(
            scene,
            grids[scene.name],
            block,
            tuple(keys),
            str(checkpoint.resolve()),
            str(progress_dir / scene.name),
            config.batch_size,
            torch_threads=0 if workers == 0 and scheduler is None else threads,
        )
        for scene in scenes
        for block in grids[scene.name].blocks()
    ]
    for scene in scenes:
        (progress_dir / scene.name).mkdir(exist_ok=True)
    if workers == 0 and scheduler is None:
        _MODELS.clear()
        _MODELS[str(checkpoint.resolve())] = model  # in-process: load the checkpoint once
    pending = [t for t in tasks if not (Path(t.block_dir) / f"{t.block_id}.done").exists()]
    with Progress(disable=not show_progress) as progress:
        bar = progress.add_task("embed", total=len(tasks), completed=len(tasks) - len(pending))
        _run_tasks(pending, workers, scheduler, lambda: progress.advance(bar))
        result = ExportResult(out, messages=messages)
        items = []
        finish = progress.add_task("write COGs", total=len(scenes) * len(keys))
        for scene in scenes:
            for key in keys:
                items.append(
                    _finish_raster(
                        scene, grids[scene.name], key, config, model, checkpoint_sha,
                        fingerprint, out, progress_dir, result,
                    )
                )  # fmt: skip
                progress.advance(finish)
    if chips is not None:
        paths = {k: out / f"chips_{model.objective}_{k}.parquet" for k in keys}
        result.chip_tables = list(chip_embeddings(model, chips, keys, paths).values())
        # The chips come from the same scenes: their items carry the scenes' dates.
        dates = sorted({datetime.fromisoformat(d) for scene in scenes for d in scene.dates})
        chip_size = int(store_metadata(open_store(chips))["layout"]["chip_size"])
        items += [
            _chip_item(model, checkpoint_sha, key, path, dates, chip_size)
            for key, path in paths.items()
        ]
    else:
        messages.append("no chip store found: no per-chip GeoParquet written")
    result.catalog = write_catalog(
        out,
        f"eo-mmcl-embed-{model.objective}",
        f"eo_mmcl {model.objective} embeddings of {catalog_dir}",
        items,
    )
    manifest = {
        "fingerprint": fingerprint,
        "version": __version__,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": checkpoint_sha,
        "objective": model.objective,
        "keys": keys,
        "config": asdict(config),
        "rasters": [p.name for p in result.rasters],
        "previews": [p.name for p in result.previews],
        "chip_tables": [p.name for p in result.chip_tables],
        "messages": messages,
    }
    with atomic_output(manifest_path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(progress_dir, ignore_errors=True)
    return result


def _block_side(config: EmbedConfig) -> int:
    k = int(config.step or config.stride) // config.stride
    side = max(1, BLOCK_S2_PX // config.stride)
    return max(k, side // k * k)


def _chips_dir(
    chips_dir: str | Path | None, model: EmbeddingModel, catalog_dir: Path
) -> Path | None:
    if chips_dir is not None:
        # Also refuses a folder that is not a finished, intact store. Its chips may be of
        # another size than the training chips: the per-chip tables embed whole chips.
        check_fits_store(model.path, model.meta, chips_dir, same_chip_size=False)
        return Path(chips_dir)
    stored = Path(str(model.meta.get("chips_dir") or ""))
    if str(stored) in ("", ".") or not (stored / "tile_manifest.json").is_file():
        return None
    # The training store only when it was cut from this catalog's rasters.
    chip_rasters = set(read_table(stored / "index.parquet", columns=["s2_id"])["s2_id"])
    catalog_rasters = set(read_catalog(catalog_dir).rasters["raster_id"])
    if not chip_rasters & catalog_rasters:
        return None
    check_fits_store(model.path, model.meta, stored)
    return stored


def _iter_blocks(
    grid: WindowGrid, block_dir: Path, key: str
) -> Iterator[tuple[tuple[int, int, int, int], Callable[[], np.ndarray]]]:
    for block in grid.blocks():
        stem = f"r{block[0]:06d}-c{block[1]:06d}"
        yield block, _block_loader(block_dir / f"{stem}.{key}.npy")


def _finish_raster(
    scene: Scene,
    grid: WindowGrid,
    key: str,
    config: EmbedConfig,
    model: EmbeddingModel,
    checkpoint_sha: str,
    fingerprint: str,
    out: Path,
    progress_dir: Path,
    result: ExportResult,
) -> pystac.Item:
    block_dir = progress_dir / scene.name
    stem = f"{scene.name}_{model.objective}_{key}"
    path = out / f"{stem}.tif"
    block_files = [block_dir / f"r{b[0]:06d}-c{b[1]:06d}.{key}.npy" for b in grid.blocks()]
    dims = int(np.load(block_files[0], mmap_mode="r").shape[0])
    if config.dtype == "uint8":
        quantisation = Quantisation.from_range("uint8", *_value_range(block_files))
    else:
        quantisation = Quantisation("float16")
    dates = "/".join(sorted(scene.dates)) if scene.dates else "unknown"
    tags = {
        "OBJECTIVE": model.objective,
        "MODALITY": _modality(key),
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
    if not _finished(path, fingerprint):
        with atomic_output(path) as tmp:
            write_embedding_cog(
                tmp,
                progress_dir / f"{stem}.scratch.tif",
                _iter_blocks(grid, block_dir, key),
                shape,
                crs,
                transform,
                quantisation,
                tags,
            )
    result.rasters.append(path)
    assets = {
        "embedding": pystac.Asset(
            str(path.resolve()), media_type=COG_MEDIA_TYPE, roles=["data"], title=key
        )
    }
    if config.preview:
        png = pca_preview(path, out / f"{stem}_pca.png")
        result.previews.append(png)
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
        "eo_mmcl:modality": _modality(key),
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
    _link_provenance(item, model, checkpoint_sha, scene.sources)
    return item


def _link_provenance(
    item: pystac.Item, model: EmbeddingModel, checkpoint_sha: str, sources: Sequence[str]
) -> None:
    """Links from an embedding item to the model and the rasters it was computed from.

    Absolute paths: they point outside the export folder, where the inputs stay when the
    export is copied.
    """
    item.add_link(
        pystac.Link(
            "derived_from",
            str(model.path.resolve()),
            media_type="application/octet-stream",
            title=f"model checkpoint ({model.objective}, sha256 {checkpoint_sha[:12]})",
        )
    )
    for source in sources:
        item.add_link(
            pystac.Link(
                "derived_from", str(Path(source).resolve()), media_type=COG_MEDIA_TYPE,
                title="source raster",
            )
        )  # fmt: skip


def _finished(path: Path, fingerprint: str) -> bool:
    if not path.is_file():
        return False
    try:
        with rasterio.open(path) as ds:
            return ds.tags().get("EXPORT_FINGERPRINT") == fingerprint
    except rasterio.errors.RasterioIOError:
        return False


def _chip_item(
    model: EmbeddingModel,
    checkpoint_sha: str,
    key: str,
    path: Path,
    dates: list[datetime],
    chip_size: int,
) -> pystac.Item:
    import geopandas as gpd

    frame = gpd.read_parquet(path)
    dims = len(frame["embedding"].iloc[0]) if len(frame) else 0
    hull = frame.geometry.union_all().envelope if len(frame) else None
    geometry = (
        json.loads(gpd.GeoSeries([hull], crs=frame.crs).to_json())["features"][0]["geometry"]
        if hull is not None
        else {"type": "Polygon", "coordinates": [[[0, 0], [0, 0], [0, 0], [0, 0]]]}
    )
    properties = {
        "emb:type": "chip",
        "emb:dimensions": dims,
        "emb:data_type": "float32",
        # One pooled embedding per chip of the chip store, the chip whole.
        "emb:chip_layout": {"type": "chip", "chip_size_px": chip_size},
        "emb:model": {"objective": model.objective, "checkpoint_sha256": checkpoint_sha},
        "eo_mmcl:embedding_key": key,
        "eo_mmcl:chips": len(frame),
    }
    assets = {
        "embedding": pystac.Asset(
            str(path.resolve()), media_type="application/vnd.apache.parquet", roles=["data"]
        )
    }
    footprints = footprints_path(path)
    if footprints.is_file():
        assets["footprints"] = pystac.Asset(
            str(footprints.resolve()),
            media_type="application/vnd.flatgeobuf",
            roles=["metadata"],
            title="chip footprints with their first three principal components",
        )
    item = embedding_item(path.stem, geometry, dates, properties, assets)
    _link_provenance(item, model, checkpoint_sha, [])
    return item


def _stored_type(config: EmbedConfig, messages: list[str]) -> EmbedConfig:
    """The config with ``dtype`` as stored: an alias (``int8``) becomes its type, with a note.

    Raises:
        ConfigError: If the dtype is unknown.
    """
    dtype = resolve_dtype(config.dtype)
    if dtype != config.dtype:
        messages.append(
            f"--dtype {config.dtype} writes {dtype} (codes 0..254, nodata {UINT8_NODATA}, a "
            "scale and offset per band): GDAL before 3.7 and QGIS 3.22 misread signed 8-bit"
        )
    return replace(config, dtype=dtype)


def ensure_config(config: EmbedConfig) -> None:
    """Validate options that need no input files.

    Args:
        config: Options.

    Raises:
        ConfigError: If an option is out of range.
    """
    if config.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {config.batch_size}")
    # Windows and steps are counted in strides (a division by zero otherwise).
    for option, value in (
        ("stride", config.stride),
        ("window", config.window),
        ("step", config.step),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"--{option} must be >= 1, got {value}")
