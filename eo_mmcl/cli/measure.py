"""Commands that measure what survived: ``probe``, ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from eo_mmcl.console import ProgressSwitch, console, err_console, reports_errors
from eo_mmcl.options import config_options
from eo_mmcl.probe.config import PROBES, ProbeConfig, parse_keys


@reports_errors
@config_options(ProbeConfig, exclude=("probes", "keys"))
def probe(
    chips: Annotated[Path, typer.Option(help="Chip store folder (eo-mmcl tile output).")],
    settings: dict[str, Any],
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
    probes: Annotated[
        str,
        typer.Option(help="Comma-separated probes: linear, knn, segmentation, segmentation_knn."),
    ] = ",".join(PROBES),
    key: Annotated[
        list[str] | None,
        typer.Option(
            help="Embedding key: DEPTH=KEY or OBJECTIVE:DEPTH=KEY, DEPTH backbone|projection "
            "(default backbone=joint, projection=proj_joint)."
        ),
    ] = None,
    scenes: Annotated[
        Path | None, typer.Option(help="Simulator output folder: its knobs go into the report.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Probe again even if the run is complete.")] = False,
    progress: ProgressSwitch = True,
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
    from eo_mmcl.probe import run_probes

    config = ProbeConfig(
        probes=tuple(p.strip() for p in probes.split(",") if p.strip()),
        keys=parse_keys(key or []),
        **settings,
    )
    result = run_probes(
        chips,
        checkpoint or [],
        output,
        config,
        embeddings_dir=embeddings,
        scenes_dir=scenes,
        force=force,
        log=(lambda message: err_console.print(f"[dim]{message}[/dim]"))
        if progress
        else (lambda message: None),
    )
    if result.reused:
        console.print(f"{output} is complete; nothing to do (use --force to probe again)")
    import pandas as pd

    from eo_mmcl.probe.run import INSTRUMENT_TABLE

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
