"""The ``eo-mmcl`` command line: one subcommand per pipeline stage.

The commands live by what they do (:mod:`~eo_mmcl.cli.prepare`, :mod:`~eo_mmcl.cli.learn`,
:mod:`~eo_mmcl.cli.measure`, :mod:`~eo_mmcl.cli.batch`); this module registers them in the
order of the flow.
"""

from __future__ import annotations

from typing import Annotated

import typer

from eo_mmcl import __version__
from eo_mmcl.cli.batch import run, study_app
from eo_mmcl.cli.learn import embed, train
from eo_mmcl.cli.measure import probe, report
from eo_mmcl.cli.prepare import catalog, simulate, tile
from eo_mmcl.console import console
from eo_mmcl.theory.cli import theory_app

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


app.command()(simulate)
app.command()(catalog)
app.command()(tile)
# LightningCLI parses train's arguments itself (`eo-mmcl train --help` is its help).
app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)(train)
app.command()(embed)
app.command("run")(run)
app.command()(probe)
app.command()(report)
app.add_typer(study_app, name="study")
