"""The ``eo-mmcl`` command line: one subcommand per pipeline stage."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from eo_mmcl import __version__
from eo_mmcl.console import ProgressSwitch, console, err_console, reports_errors
from eo_mmcl.errors import ConfigError
from eo_mmcl.export.config import EmbedConfig
from eo_mmcl.options import config_options
from eo_mmcl.simulate.config import SimulationConfig
from eo_mmcl.theory.cli import theory_app
from eo_mmcl.tiling.config import TileConfig

app = typer.Typer(
    name="eo-mmcl",
    help=(
        "Joint Sentinel-1/Sentinel-2 embeddings, and a measurement of how much shared, SAR-only, "
        "optical-only and synergistic information survives in them.\n\n"
        "Stages: simulate -> catalog -> tile -> train -> embed -> probe -> report."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(theory_app, name="theory")


def _version(value: bool) -> None:
    if value:
        console.print(f"eo-mmcl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Joint S1/S2 embeddings and the information that survives in them."""


def _output_folder(output: Path | None, positional: Path | None, command: str) -> Path:
    """The output folder of a command that once took it as a positional argument."""
    if positional is not None:
        err_console.print(
            f"[yellow]deprecated:[/yellow] `eo-mmcl {command} DIR` is now "
            f"`eo-mmcl {command} -o DIR`",
            highlight=False,
        )
        if output is not None and output != positional:
            raise ConfigError(f"{command}: two output folders given ({positional} and -o {output})")
    folder = output or positional
    if folder is None:
        raise ConfigError(f"{command}: give the output folder with -o OUT")
    return folder


@app.command()
@reports_errors
@config_options(
    SimulationConfig,
    # The shift is a pair (two options below); the grid's zone and origin are pipeline-file
    # settings; `--date` is the option's name since the first release.
    exclude=("coregistration_shift_m", "epsg", "origin", "extra"),
    rename={"s2_date": "date"},
)
def simulate(
    settings: dict[str, Any],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Folder for the simulated rasters.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Argument(hidden=True, help="Deprecated: the folder, use -o.")
    ] = None,
    shift_x_m: Annotated[float, typer.Option(help="S1/S2 co-registration error east (m).")] = 6.0,
    shift_y_m: Annotated[float, typer.Option(help="S1/S2 co-registration error north (m).")] = -4.0,
    force: Annotated[bool, typer.Option(help="Rewrite scenes that are already complete.")] = False,
    progress: ProgressSwitch = True,
) -> None:
    """Simulate co-registered S1/S2 scenes with known shared, unique and synergistic truth.

    Writes per scene: an S2 L2A-like GeoTIFF (12 bands, uint16 reflectance x 10000), an S1
    GRD-like GeoTIFF (VV/VH sigma0 in dB, float32, on its own grid), one label raster per task
    (landcover, s1_unique, s2_unique, synergy), a cloud mask, a parcel-id raster and a JSON
    sidecar with every latent parameter and knob.
    """
    from eo_mmcl.simulate import simulate_scenes

    out_dir = _output_folder(output, out_dir, "simulate")
    config = SimulationConfig(**settings, coregistration_shift_m=(shift_x_m, shift_y_m))
    start = time.perf_counter()
    written = simulate_scenes(out_dir, config, force=force, show_progress=progress)
    elapsed = time.perf_counter() - start
    table = Table(title=f"Simulated scenes in {out_dir}")
    for column in ("scene", "S2", "S1", "labels"):
        table.add_column(column)
    for scene in written:
        table.add_row(scene.scene_id, scene.s2.name, scene.s1.name, ", ".join(scene.labels))
    console.print(table)
    console.print(f"scenes={len(written)} size={config.size} seconds={elapsed:.2f}")


@app.command()
@reports_errors
def catalog(
    sources: Annotated[
        list[str],
        typer.Argument(help="Folders (scanned recursively) or source definition YAMLs."),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Catalog folder.")],
    min_overlap_km2: Annotated[
        float, typer.Option(help="Minimum shared footprint of an S1/S2 pair, km2.")
    ] = 1.0,
    max_days: Annotated[
        float, typer.Option(help="Maximum time gap of an S1/S2 pair, days.")
    ] = 12.0,
    allow_unpaired: Annotated[
        bool, typer.Option(help="Accept a catalog without S1/S2 pairs (S2-only sources).")
    ] = False,
    root: Annotated[
        Path | None, typer.Option(help="Override the root folder of YAML source definitions.")
    ] = None,
    progress: ProgressSwitch = True,
) -> None:
    """Catalogue S1/S2 rasters and find S1 x S2 pairs.

    Writes rasters.parquet (one row per logical raster, footprint in EPSG:4326), pairs.parquet
    (shared footprint, time gap) and rejected.parquet (files left out, with the reason), only
    when the run succeeds: a failed rerun leaves them as they were (its own tables go to
    OUTPUT/failed).
    """
    from eo_mmcl.catalog import build_catalog, resolve_source

    definitions = [resolve_source(s, root=root) for s in sources]
    # A run that finds no raster or no pair leaves the tables in OUTPUT as they were and writes
    # its own to OUTPUT/failed; the one-line error says so.
    result = build_catalog(
        definitions,
        output,
        min_overlap_km2=min_overlap_km2,
        max_days=max_days,
        allow_unpaired=allow_unpaired,
        show_progress=progress,
    )
    rasters = result.rasters
    table = Table(title=f"Catalog {output}")
    for column in ("sensor", "role", "rasters"):
        table.add_column(column)
    for (sensor, role), n in rasters.groupby(["sensor", "role"]).size().items():
        table.add_row(str(sensor), str(role), str(n))
    console.print(table)
    for row in result.rejected.itertuples():
        err_console.print(f"[yellow]rejected[/yellow] {row.path}: {row.reason}")
    console.print(
        f"rasters={len(rasters)} pairs={len(result.pairs)} rejected={len(result.rejected)}"
    )


@app.command()
@reports_errors
# The fractions are a triple (an option of its own below).
@config_options(TileConfig, exclude=("split_fractions",))
def tile(
    settings: dict[str, Any],
    catalog_dir: Annotated[
        Path | None, typer.Argument(help="Catalog folder (eo-mmcl catalog output).")
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Chip store folder.")] = Path(
        "chips"
    ),
    split_fractions: Annotated[
        tuple[float, float, float], typer.Option(help="Train, val and test fractions.")
    ] = (0.7, 0.15, 0.15),
    workers: Annotated[
        int | None,
        typer.Option(help="Dask LocalCluster workers (default: one per CPU; 0: in-process)."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of an existing Dask scheduler.")
    ] = None,
    from_bigearthnet_lmdb: Annotated[
        Path | None,
        typer.Option(help="Convert a BigEarthNet v2 LMDB folder instead of a catalog."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild a complete store.")] = False,
    progress: ProgressSwitch = True,
    verify: Annotated[
        Path | None,
        typer.Option(
            metavar="CHIPS_DIR",
            help="Check the chip store CHIPS_DIR against its manifest (every chunk's presence, "
            "size and SHA-256) and exit: 0 if intact, 2 if damaged. Nothing is tiled.",
        ),
    ] = None,
) -> None:
    """Cut paired S1/S2 chips over shared footprints into a Zarr chip store.

    Writes CHIPS_DIR/chips.zarr (arrays s1, s2, one per label task, valid, cloud; per-band
    normalisation statistics of the train split in its attributes), CHIPS_DIR/index.parquet
    (GeoParquet chip index) and CHIPS_DIR/tile_manifest.json (written last, with the size and
    SHA-256 of every chunk, which every reader checks). Resumable: a killed run continues where
    it stopped; a complete store is left alone unless --force.
    """
    if verify is not None:
        from eo_mmcl.tiling.integrity import check_store, raise_if_damaged

        check = check_store(verify, digests=True)
        console.print(check.summary())
        raise_if_damaged(check)
        return
    if from_bigearthnet_lmdb is not None:
        from eo_mmcl.tiling.bigearthnet import convert_bigearthnet

        result = convert_bigearthnet(from_bigearthnet_lmdb, output, force=force)
    else:
        from eo_mmcl.tiling import tile_catalog

        if catalog_dir is None:
            raise typer.BadParameter("give CATALOG_DIR or --from-bigearthnet-lmdb")
        config = TileConfig(**settings, split_fractions=split_fractions)
        start = time.perf_counter()
        result = tile_catalog(
            catalog_dir,
            output,
            config,
            workers=workers,
            scheduler=scheduler,
            force=force,
            show_progress=progress,
        )
        elapsed = time.perf_counter() - start
        if not result.reused:
            n = result.manifest["counts"]["candidates"]
            console.print(f"seconds={elapsed:.2f} chips_per_s={n / max(elapsed, 1e-9):.1f}")
    for message in result.manifest.get("messages", []):
        err_console.print(f"[yellow]note[/yellow] {message}")
    if result.reused:
        console.print(f"{output} is complete; nothing to do (use --force to rebuild)")
    counts = result.manifest["counts"]
    console.print(" ".join(f"{k}={v}" for k, v in counts.items()))


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
@reports_errors
def train(ctx: typer.Context) -> None:
    """Train encoders under one objective (LightningCLI; `eo-mmcl train --help` lists all keys).

    Usage: eo-mmcl train --config pipelines/configs/<objective>.yaml --data.chips_dir CHIPS_DIR
    [--trainer.max_epochs N ...] [--ckpt_path last]. Objectives: clip, simclr, cross_self,
    decur, comm, coral, supervised. Checkpoints keep the config, the band lists and the
    normalisation statistics.
    """
    from eo_mmcl.tasks.callbacks import last_checkpoint
    from eo_mmcl.tasks.train import run_training

    cli = run_training(ctx.args)
    trainer = cli.trainer
    checkpoint = last_checkpoint(trainer)  # written at the end of the last epoch: this state
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith("loss")}
    console.print(
        f"objective={cli.model.objective} epochs={trainer.current_epoch} "
        f"steps={trainer.global_step} checkpoint={checkpoint} "
        + " ".join(f"{k.replace('/', '_')}={v:.4f}" for k, v in sorted(metrics.items()))
    )


@app.command()
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
    workers: Annotated[
        int | None,
        typer.Option(help="Dask LocalCluster workers (default: one per CPU; 0: in-process)."),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of an existing Dask scheduler.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Redo a finished export.")] = False,
    progress: ProgressSwitch = True,
) -> None:
    """Write embedding rasters (COG), STAC items, PCA previews and per-chip GeoParquet.

    Sliding windows over each whole scene on the S2 grid (S1 resampled onto it), blended with
    triangular weights between window centres; one COG per scene and embedding, a STAC catalog
    (OUT_DIR/catalog.json), chip tables and embed_manifest.json (written last). Resumable.
    """
    from eo_mmcl.export import export_embeddings

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


@app.command("run")
@reports_errors
def run(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline file (e.g. pipelines/demo.yaml).")],
    force: Annotated[
        list[str] | None,
        typer.Option("--force", help="Run this stage again even if finished (repeatable)."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Run this stage and every later one again."),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Stop after this stage.")] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address for tiling and export (e.g. tcp://host:8786)."),
    ] = None,
    progress: ProgressSwitch = True,
) -> None:
    """Run the batch pipeline of a config file: simulate/catalog -> tile -> train -> ... .

    Each stage writes into RUN_DIR/<stage>/ with a stage_manifest.json (inputs and their
    digests, config, versions, timings, outputs). A finished stage whose inputs and config did
    not change is skipped; a killed run resumes where it stopped. Config errors are reported,
    with the key's path, before any work starts. Logs go to RUN_DIR/pipeline.log.
    """
    from eo_mmcl.pipeline import load_pipeline_config, run_pipeline

    config = load_pipeline_config(pipeline)
    if scheduler is not None:
        config.tile.scheduler = scheduler
        if "embed" in config.stages:
            config.embed.scheduler = scheduler
    start_time = time.perf_counter()
    outcomes = run_pipeline(
        config, force=force or (), start=start, until=until, show_progress=progress
    )
    table = Table(title=f"pipeline {config.name}: {config.run_dir}")
    for column in ("stage", "status", "seconds", "summary"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        figures = " ".join(
            f"{k}={v}" for k, v in outcome.summary.items() if not isinstance(v, dict)
        )
        table.add_row(outcome.stage, outcome.status, f"{outcome.seconds:.1f}", figures)
    console.print(table)
    for outcome in outcomes:
        console.print(
            f"stage={outcome.stage} status={outcome.status.replace(' ', '_')} "
            f"seconds={outcome.seconds:.1f}",
            markup=False,
        )
    console.print(
        f"run_dir={config.run_dir} seconds={time.perf_counter() - start_time:.1f}", markup=False
    )


@app.command()
@reports_errors
def probe(
    chips: Annotated[Path, typer.Option(help="Chip store folder (eo-mmcl tile output).")],
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(help="Checkpoint of eo-mmcl train (repeat; include a supervised one)."),
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Probe folder.")] = Path("probes"),
    embeddings: Annotated[
        Path | None,
        typer.Option(
            help="Folder of per-chip embedding tables to probe as extra rows: "
            "<objective>__<depth>.parquet (what probe writes), or the "
            "chips_<objective>_<key>.parquet that embed writes, anywhere below it "
            "(store_index and embedding columns)."
        ),
    ] = None,
    seeds: Annotated[
        int, typer.Option(help="Probe seeds per training seed (the probes' train subsample).")
    ] = 3,
    probes: Annotated[
        str,
        typer.Option(help="Comma-separated probes: linear, knn, segmentation, segmentation_knn."),
    ] = "linear,knn,segmentation,segmentation_knn",
    key: Annotated[
        list[str] | None,
        typer.Option(
            help="Embedding key: DEPTH=KEY or OBJECTIVE:DEPTH=KEY, DEPTH backbone|projection "
            "(default backbone=joint, projection=proj_joint)."
        ),
    ] = None,
    train_fraction: Annotated[
        float, typer.Option(help="Fraction of the train chips each seed's probes train on.")
    ] = 0.8,
    random_init: Annotated[
        bool, typer.Option(help="Probe untrained copies of the networks (the floor).")
    ] = True,
    reference: Annotated[
        bool, typer.Option(help="Probe per-chip band statistics too (band-stats, no learning).")
    ] = True,
    scenes: Annotated[
        Path | None, typer.Option(help="Simulator output folder: its knobs go into the report.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Probe again even if the run is complete.")] = False,
) -> None:
    """Probe frozen embeddings: how much R, U1, U2 and S information survives per objective.

    Embeds every chip under each checkpoint (and an untrained copy of each network), trains
    linear, kNN and segmentation probes per task on the train split (regularisation chosen on
    val) and scores them on test. Writes PROBE_DIR/probes.parquet and probes.csv (objective,
    train_seed, task, group, probe, depth, sensor, seed, score, chance, survival,
    survival_vs_random, val_survival, ...), instrument.parquet (per task: chance, ceiling,
    wrong-sensor score, floor, readable, separable), the settings in probe_meta.json and the
    inputs of the report's maps. Give one checkpoint per objective and training seed.
    """
    from eo_mmcl.probes import ProbeConfig, parse_keys, run_probes

    config = ProbeConfig(
        seeds=seeds,
        probes=tuple(p.strip() for p in probes.split(",") if p.strip()),
        train_fraction=train_fraction,
        keys=parse_keys(key or []),
        random_init=random_init,
        reference=reference,
    )
    result = run_probes(
        chips,
        checkpoint or [],
        output,
        config,
        embeddings_dir=embeddings,
        scenes_dir=scenes,
        force=force,
        log=lambda message: err_console.print(f"[dim]{message}[/dim]"),
    )
    if result.reused:
        console.print(f"{output} is complete; nothing to do (use --force to probe again)")
    import pandas as pd

    from eo_mmcl.probes.run import INSTRUMENT_TABLE

    table = result.table
    instrument = pd.read_parquet(output / INSTRUMENT_TABLE)
    rich_table = Table(title=f"Instrument ({output / INSTRUMENT_TABLE})")
    for column in ("task", "group", "metric", "chance", "ceiling", "wrong sensor", "floor"):
        rich_table.add_column(column)
    rich_table.add_column("readable")
    rich_table.add_column("separable")
    numbers = ["chance", "ceiling", "wrong_sensor_score", "floor_survival"]
    for _, row in instrument.iterrows():
        rich_table.add_row(
            *(str(row[c]) for c in ("task", "group", "metric")),
            *(f"{float(row[c]):.2f}" for c in numbers),
            *(str(bool(row[c])).lower() for c in ("readable", "separable")),
        )
    console.print(rich_table)
    chip = instrument[instrument["metric"] != "miou"]
    console.print(
        f"rows={len(table)} objectives={table['objective'].nunique()} "
        f"train_seeds={table['train_seed'].nunique()} seconds={result.seconds:.1f}"
    )
    console.print(
        "readable="
        + ",".join(chip.loc[chip["readable"], "task"].astype(str))
        + " separable="
        + ",".join(chip.loc[chip["separable"], "task"].astype(str))
        + " not_readable="
        + ",".join(chip.loc[~chip["readable"], "task"].astype(str))
    )


@app.command()
@reports_errors
def report(
    probe_dir: Annotated[Path, typer.Argument(help="Probe folder (eo-mmcl probe output).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Report folder.")] = Path("report"),
    embed_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--embed-dir",
            help="eo-mmcl embed folder whose PCA previews the map shows (repeatable).",
        ),
    ] = None,
) -> None:
    """Write report.md and a self-contained report.html (tables, findings, plots, a map)."""
    import pandas as pd

    from eo_mmcl.report import build_report, format_main, main_table

    path = build_report(probe_dir, output, embed_dirs=embed_dir or ())
    main = format_main(main_table(pd.read_parquet(probe_dir / "probes.parquet")), bold="")
    rich_table = Table(title="Survival (best probe, mean ± std over seeds)")
    rich_table.add_column("objective")
    columns = [c for c in main.columns if c.endswith("survival")]
    for column in columns:
        rich_table.add_column(column)
    for objective, row in main[columns].iterrows():
        rich_table.add_row(str(objective), *row.tolist())
    console.print(rich_table)
    console.print(f"report={path} markdown={path.with_name('report.md')}")


study_app = typer.Typer(
    help="Studies over sweeps of the simulator's misalignment knobs.", no_args_is_help=True
)
app.add_typer(study_app, name="study")


@study_app.command("misalignment")
@reports_errors
def study_misalignment(
    output: Annotated[Path, typer.Option("-o", "--output", help="Study folder.")] = Path(
        "runs/study"
    ),
    knob: Annotated[
        str,
        typer.Option(
            help="cloud-fraction (selection bias) or change-fraction (perturbation bias)."
        ),
    ] = "cloud-fraction",
    values: Annotated[str, typer.Option(help="Comma-separated knob values.")] = "0,0.3,0.6",
    pipeline: Annotated[
        Path, typer.Option(help="Base pipeline: every value runs it with the knob set.")
    ] = Path("pipelines/demo.yaml"),
    objectives: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated objectives (supervised is always added) [default: the "
            "pipeline's]."
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Training epochs per objective [default: the pipeline's].")
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="Scene size in pixels [default: the pipeline's].")
    ] = None,
    scenes: Annotated[
        int | None, typer.Option(help="Scene pairs per value [default: the pipeline's].")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(help="Probe seeds [default: the pipeline's].")
    ] = None,
    configs: Annotated[
        Path | None, typer.Option(help="Training configs folder [default: the pipeline's].")
    ] = None,
) -> None:
    """Run the pipeline over a sweep of one simulator knob; plot survival against it.

    Every value runs the base pipeline's simulate -> catalog -> tile -> train -> probe stages
    in OUTPUT/<knob>=<value>/ (manifests, resume), with the knob set. Writes
    OUTPUT/study.parquet and study.csv (best probe's survival per objective, group and value)
    and OUTPUT/study.png. Resumes where it stopped.
    """
    from eo_mmcl.pipeline.study import StudyConfig, parse_values, run_misalignment_study

    config = StudyConfig(
        knob=knob,
        values=tuple(parse_values(values)),
        pipeline=pipeline,
        objectives=(
            tuple(o.strip() for o in objectives.split(",") if o.strip()) if objectives else None
        ),
        epochs=epochs,
        size=size,
        scenes=scenes,
        seeds=seeds,
        configs_dir=configs,
    )
    table = run_misalignment_study(
        output, config, log=lambda message: err_console.print(f"[dim]{message}[/dim]")
    )
    wide = table.pivot_table(
        index=["objective", "value"], columns="group", values="survival_mean"
    ).round(2)
    console.print(wide.to_string())
    console.print(f"study={output / 'study.parquet'} plot={output / 'study.png'}")


if __name__ == "__main__":  # pragma: no cover
    app()
