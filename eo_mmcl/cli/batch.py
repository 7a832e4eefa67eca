"""Commands that run many stages: ``run`` (a pipeline file), ``study`` (sweeps of runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from eo_mmcl.console import ProgressSwitch, console, err_console, reports_errors


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


study_app = typer.Typer(
    help="Studies over sweeps of the simulator's misalignment knobs.", no_args_is_help=True
)


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
