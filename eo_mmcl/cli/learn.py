"""Commands that train encoders and write their embeddings: ``train``, ``embed``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from eo_mmcl.console import (
    ProgressSwitch,
    SchedulerOption,
    WorkersOption,
    console,
    err_console,
    reports_errors,
)
from eo_mmcl.embed.config import EmbedConfig
from eo_mmcl.options import config_options


@reports_errors
def train(ctx: typer.Context) -> None:
    """Train encoders under one objective (LightningCLI; `eo-mmcl train --help` lists all keys).

    Usage: eo-mmcl train --config pipelines/configs/<objective>.yaml --data.chips_dir CHIPS_DIR
    [--trainer.max_epochs N ...] [--ckpt_path last]. Objectives: clip, simclr, cross_self,
    decur, comm, coral, supervised. Checkpoints keep the config, the band lists and the
    normalisation statistics.
    """
    from eo_mmcl.objectives.callbacks import last_checkpoint
    from eo_mmcl.objectives.train import run_training

    cli = run_training(ctx.args)
    trainer = cli.trainer
    checkpoint = last_checkpoint(trainer)  # written at the end of the last epoch: this state
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith("loss")}
    console.print(
        f"objective={cli.model.objective} epochs={trainer.current_epoch} "
        f"steps={trainer.global_step} checkpoint={checkpoint} "
        + " ".join(f"{k.replace('/', '_')}={v:.4f}" for k, v in sorted(metrics.items()))
    )


@reports_errors
@config_options(EmbedConfig)
def embed(
    settings: dict[str, Any],
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint written by eo-mmcl train.")],
    catalog_dir: Annotated[Path, typer.Argument(help="Catalog folder (eo-mmcl catalog output).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Export folder.")],
    chips_dir: Annotated[
        Path | None,
        typer.Option(help="Chip store for per-chip GeoParquet (default: the training store)."),
    ] = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    force: Annotated[bool, typer.Option(help="Redo a finished export.")] = False,
    progress: ProgressSwitch = True,
) -> None:
    """Write embedding rasters (COG), STAC items, PCA previews and per-chip GeoParquet.

    Sliding windows over each whole scene on the S2 grid (S1 resampled onto it), blended with
    triangular weights between window centres; one COG per scene and embedding, a STAC catalog
    (OUT_DIR/catalog.json), chip tables and embed_manifest.json (written last). Resumable.
    """
    from eo_mmcl.embed import export_embeddings

    config = EmbedConfig(**settings)
    start = time.perf_counter()
    result = export_embeddings(
        checkpoint,
        catalog_dir,
        output,
        config,
        chips_dir=chips_dir,
        workers=workers,
        scheduler=scheduler,
        force=force,
        show_progress=progress,
    )
    elapsed = time.perf_counter() - start
    for message in result.messages:
        err_console.print(f"[yellow]note[/yellow] {message}")
    if result.reused:
        console.print(f"{output} is complete; nothing to do (use --force to redo)")
        return
    for path in result.rasters:
        console.print(f"wrote {path}")
    console.print(
        f"rasters={len(result.rasters)} previews={len(result.previews)} "
        f"chip_tables={len(result.chip_tables)} catalog={result.catalog} seconds={elapsed:.2f}"
    )
