"""Commands that prepare the data: ``simulate``, ``catalog``, ``tile``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from eo_mmcl.catalog.config import CatalogConfig
from eo_mmcl.console import (
    ProgressSwitch,
    SchedulerOption,
    WorkersOption,
    console,
    err_console,
    reports_errors,
)
from eo_mmcl.errors import ConfigError
from eo_mmcl.options import config_options
from eo_mmcl.simulate.config import SimulationConfig
from eo_mmcl.tile.config import TileConfig


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


@reports_errors
@config_options(CatalogConfig)
def catalog(
    settings: dict[str, Any],
    sources: Annotated[
        list[str],
        typer.Argument(help="Folders (scanned recursively) or source definition YAMLs."),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Catalog folder.")],
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
    result = build_catalog(definitions, output, CatalogConfig(**settings), show_progress=progress)
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
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
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
        from eo_mmcl.tile.integrity import check_store, raise_if_damaged

        check = check_store(verify, digests=True)
        console.print(check.summary())
        raise_if_damaged(check)
        return
    if from_bigearthnet_lmdb is not None:
        from eo_mmcl.tile.bigearthnet import convert_bigearthnet

        result = convert_bigearthnet(from_bigearthnet_lmdb, output, force=force)
    else:
        from eo_mmcl.tile import tile_catalog

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
