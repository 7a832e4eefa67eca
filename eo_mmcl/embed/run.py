"""``eo-mmcl embed``: sliding-window embedding rasters of whole scenes, on Dask distributed.

Plan: every S1/S2 pair of the catalog (or every S2 image of an S2-only catalog) is one scene on
its S2 grid; its output grid (stride ``stride``) is cut into blocks of output pixels. A Dask job
reads the S2 (and S1, resampled onto the S2 grid by the tiling's GDAL warper in linear power)
pixels its windows need, embeds the windows, blends them onto the block (see
:mod:`eo_mmcl.embed.windows`) and saves the block per embedding key under ``OUT_DIR/.embed``;
the job ledger (:mod:`eo_mmcl.io.jobs`) then writes its marker. The client streams the blocks
of each raster into a tiled GeoTIFF and finishes it as a COG (one block in memory at a time),
writes the STAC items, the previews, the chip GeoParquet and the STAC catalog, and
``embed_manifest.json`` last.

Workers write only their own block files and the client writes every raster, so no two
processes ever write one file. Every final file appears by an atomic rename: a killed export
leaves no file that looks finished, and a rerun skips the blocks that have markers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from eo_mmcl import __version__
from eo_mmcl.catalog.build import RASTERS_FILE, catalog_digest, read_catalog
from eo_mmcl.embed import blocks
from eo_mmcl.embed.blocks import BlockJob, share_model
from eo_mmcl.embed.chips import chip_embeddings
from eo_mmcl.embed.config import EmbedConfig, ensure_config, stored_type
from eo_mmcl.embed.model import EmbeddingModel
from eo_mmcl.embed.plan import default_window, plan_scenes
from eo_mmcl.embed.predict import check_accelerator
from eo_mmcl.embed.rasters import RasterContext, finish_raster
from eo_mmcl.embed.stac import (
    chip_item,
    write_catalog,
)
from eo_mmcl.embed.windows import WindowGrid
from eo_mmcl.errors import SourceError
from eo_mmcl.io.digest import json_digest, sha256_file
from eo_mmcl.io.jobs import JobLedger, read_record, write_record
from eo_mmcl.io.tables import read_table
from eo_mmcl.objectives.checkpoint import check_fits_store
from eo_mmcl.tile.store import open_store, store_metadata

PROGRESS_DIR = ".embed"
MANIFEST_FILE = "embed_manifest.json"
#: Side of the S2 area one job covers (px): bounds a job's memory whatever the scene size.
BLOCK_S2_PX = 1024


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


def _fingerprint(
    checkpoint_sha: str, catalog_dir: Path, config: EmbedConfig, keys: Sequence[str]
) -> str:
    payload = {
        "checkpoint": checkpoint_sha,
        "catalog": catalog_digest(catalog_dir),
        "config": asdict(config),
        "keys": list(keys),
        # Block files are named by position: another block size must not reuse them.
        "block": _block_side(config),
        "version": __version__,
    }
    return json_digest(payload)


def _job_id(job: BlockJob) -> str:
    return f"{job.scene.name}.{job.block_id}"


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
    check_accelerator(config.accelerator)
    messages: list[str] = []
    config = stored_type(config, messages)  # validates --dtype before any work
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
    if read_record(manifest_path, fingerprint) is not None and not force:
        return ExportResult(out, reused=True, messages=messages)
    ledger = JobLedger.open(out / PROGRESS_DIR, fingerprint, force=force, owner=out, what="export")
    if ledger.fresh:
        manifest_path.unlink(missing_ok=True)
    progress_dir = ledger.folder
    threads = max(1, (os.cpu_count() or 1) // max(1, workers or os.cpu_count() or 1))
    jobs = [
        BlockJob(
            scene,
            grids[scene.name],
            block,
            tuple(keys),
            str(checkpoint.resolve()),
            str(progress_dir / scene.name),
            config.batch_size,
            torch_threads=0 if workers == 0 and scheduler is None else threads,
            accelerator=config.accelerator,
        )
        for scene in scenes
        for block in grids[scene.name].blocks()
    ]
    for scene in scenes:
        (progress_dir / scene.name).mkdir(exist_ok=True)
    if workers == 0 and scheduler is None:
        share_model(str(checkpoint.resolve()), model)  # in-process: load the checkpoint once
    with Progress(disable=not show_progress) as progress:
        bar = progress.add_task("embed", total=len(jobs))
        # Looked up at call time, so that tests can wrap the job function.
        already = ledger.run(
            blocks.run_block, jobs, _job_id, workers, scheduler, lambda: progress.advance(bar)
        )
        progress.advance(bar, already)
        result = ExportResult(out, messages=messages)
        context = RasterContext(config, model, checkpoint_sha, fingerprint, out, progress_dir)
        items = []
        finish = progress.add_task("write COGs", total=len(scenes) * len(keys))
        for scene in scenes:
            for key in keys:
                done = finish_raster(context, scene, grids[scene.name], key)
                result.rasters.append(done.path)
                result.previews += [done.preview] if done.preview is not None else []
                items.append(done.item)
                progress.advance(finish)
    if chips is not None:
        paths = {k: out / f"chips_{model.objective}_{k}.parquet" for k in keys}
        result.chip_tables = list(
            chip_embeddings(model, chips, keys, paths, accelerator=config.accelerator).values()
        )
        # The chips come from the same scenes: their items carry the scenes' dates.
        dates = sorted({datetime.fromisoformat(d) for scene in scenes for d in scene.dates})
        chip_size = int(store_metadata(open_store(chips))["layout"]["chip_size"])
        items += [
            chip_item(model, checkpoint_sha, key, path, dates, chip_size)
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
    payload = {
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
    write_record(manifest_path, fingerprint, payload)
    ledger.discard()
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
