"""``eo-mmcl theory {linear,identifiability}``: the theory lab's command line.

The main CLI mounts :data:`theory_app` with ``app.add_typer(theory_app, name="theory")``.
Sweep options take comma-separated lists, repeated options, or both
(``--embedding-dims 5,10 --embedding-dims 20``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import pandas as pd
import typer
from rich.table import Table

from eo_mmcl.console import ProgressSwitch, console, deprecated_alias, err_console, reports_errors

if TYPE_CHECKING:
    from eo_mmcl.theory.lab import LabOutput

T = TypeVar("T")

theory_app = typer.Typer(
    help=(
        "Latent-variable experiments on vectors, with the project's losses: when alignment "
        "loses modality-unique information (linear), and which factors it keeps when pairs "
        "are misaligned (identifiability; the EO sweep of the same question is `eo-mmcl study "
        "misalignment`)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Value of ``--embedding-dims`` meaning "the number of unbiased factors".
AUTO = "auto"


def parse_list(
    values: Sequence[str] | None, convert: Callable[[str], T], default: Sequence[T], option: str
) -> tuple[T, ...]:
    """Parse a list option given as comma-separated values, repeated options, or both.

    Args:
        values: The raw option values (None when the option was not given).
        convert: Converts one item.
        default: Used when the option was not given.
        option: Option name, for error messages.

    Returns:
        The items, in order.

    Raises:
        typer.BadParameter: If an item does not convert or the list is empty.
    """
    if not values:
        return tuple(default)
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    if not items:
        raise typer.BadParameter(f"{option} needs at least one value")
    try:
        return tuple(convert(item) for item in items)
    except ValueError as err:
        raise typer.BadParameter(f"{option}: {err}") from err


def _dim_or_auto(item: str) -> int | None:
    return None if item.lower() == AUTO else int(item)


def _print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = Table(title=title)
    for column in header:
        # Fold long headers rather than cutting them to an ellipsis in narrow terminals.
        if column in ("objective", "probe"):
            table.add_column(column, justify="left", overflow="fold")
        else:
            table.add_column(column, justify="right", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _list_help(what: str, default: Sequence[object]) -> str:
    shown = ",".join(AUTO if d is None else f"{d}" for d in default)
    return f"{what} (comma-separated or repeated) [default: {shown}]"


def _report(output: LabOutput, n_runs: int) -> None:
    from eo_mmcl.theory import lab

    if output.reused:
        console.print(
            f"{output.out_dir} is complete; nothing to do (use --force to rerun)", markup=False
        )
    console.print(
        f"runs={n_runs} rows={len(output.results)} seconds={output.seconds:.1f} "
        f"reused={str(output.reused).lower()} "
        f"results={output.out_dir / lab.RESULTS} section={output.out_dir / lab.SECTION}",
        markup=False,  # paths may hold brackets
    )


def _print_pairs(frame: pd.DataFrame) -> None:
    """Print each row as key=value pairs (NaN left out), for scripts to grep."""
    for _, row in frame.iterrows():
        pairs = []
        for key, value in row.items():
            if isinstance(value, float):
                if math.isnan(value):
                    continue
                text = f"{value:.4g}"
            else:
                text = str(value).lower() if isinstance(value, bool) else str(value)
            pairs.append(f"{key}={text}")
        console.print(" ".join(pairs), markup=False)


@theory_app.command("linear")
@reports_errors
def linear_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    embedding_dims: Annotated[
        list[str] | None,
        typer.Option(help=_list_help("Encoder output dimensions", (5, 10, 20))),
    ] = None,
    variance_ratios: Annotated[
        list[str] | None,
        typer.Option(help=_list_help("Unique-to-shared variance ratios", (1.0, 4.0))),
    ] = None,
    noise_stds: Annotated[
        list[str] | None, typer.Option(help=_list_help("Observation noise levels", (0.1,)))
    ] = None,
    temperatures: Annotated[
        list[str] | None, typer.Option(help=_list_help("Loss temperatures", (0.1, 1.0)))
    ] = None,
    objectives: Annotated[
        list[str] | None,
        typer.Option(help=_list_help("Objectives", ("clip", "cross_self", "coral"))),
    ] = None,
    seeds: Annotated[list[str] | None, typer.Option(help=_list_help("Seeds", (0,)))] = None,
    shared_dim: Annotated[int, typer.Option(help="Dimension of the shared latent s.")] = 5,
    unique_dim: Annotated[int, typer.Option(help="Dimension of each unique latent u_i.")] = 5,
    observation_dim: Annotated[int, typer.Option(help="Dimension of each observation.")] = 20,
    n_train: Annotated[int, typer.Option(help="Training pairs.")] = 4096,
    n_test: Annotated[int, typer.Option(help="Held-out pairs (probes score on them).")] = 2048,
    steps: Annotated[int, typer.Option(help="Adam steps per training.")] = 400,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-2,
    view_noise: Annotated[
        float, typer.Option(help="Additive noise std of the views (cross_self, coral).")
    ] = 0.3,
    view_dropout: Annotated[
        float, typer.Option(help="Feature dropout probability of the views.")
    ] = 0.2,
    force: Annotated[bool, typer.Option(help="Rerun into a complete folder.")] = False,
    progress: ProgressSwitch = True,
) -> None:
    """Linear-Gaussian setting: alignment discards what only one modality carries.

    x_i = A_i [s; u_i] + noise; linear encoders trained with clip, cross_self and coral,
    compared with the closed-form CCA limit and untrained encoders; linear-probe R^2 of s, u1
    and u2, swept over embedding dimension, variance ratio, noise and temperature. Writes
    OUT_DIR/results.csv, cca_angles.csv, linear_r2.png, linear_cca_angles.png and section.md.
    """
    # The lab (and torch) load only when a theory command runs, not for `eo-mmcl --help`.
    from eo_mmcl.theory import lab, linear, section
    from eo_mmcl.theory.training import TrainConfig
    from eo_mmcl.theory.views import ViewConfig

    defaults = linear.LinearSweep()
    sweep = linear.LinearSweep(
        embedding_dims=parse_list(embedding_dims, int, defaults.embedding_dims, "--embedding-dims"),
        variance_ratios=parse_list(
            variance_ratios, float, defaults.variance_ratios, "--variance-ratios"
        ),
        noise_stds=parse_list(noise_stds, float, defaults.noise_stds, "--noise-stds"),
        temperatures=parse_list(temperatures, float, defaults.temperatures, "--temperatures"),
        objectives=parse_list(objectives, str, defaults.objectives, "--objectives"),
        seeds=parse_list(seeds, int, defaults.seeds, "--seeds"),
        shared_dim=shared_dim,
        unique_dim=unique_dim,
        observation_dim=observation_dim,
        n_train=n_train,
        n_test=n_test,
        train=TrainConfig(steps=steps, batch_size=batch_size, lr=lr),
        views=ViewConfig(noise_std=view_noise, dropout=view_dropout),
    )
    out = lab.run_linear_lab(
        output, sweep, force=force, on_run=err_console.print if progress else None
    )
    header, rows = section.linear_summary(out.results)
    _print_table("Linear setting: mean linear-probe R² of the joint embedding", header, rows)
    _report(out, sweep.n_runs)
    _print_pairs(
        section.linear_checks(
            out.results, out.tables.get(lab.ANGLES, pd.DataFrame()), shared_dim, unique_dim
        )
    )


@theory_app.command("identifiability")
@reports_errors
def identifiability_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    theta_sizes: Annotated[
        list[str] | None,
        typer.Option(help=_list_help("|I_theta|: semantic factors modality 2 sees", (10, 7))),
    ] = None,
    rho_sizes: Annotated[
        list[str] | None,
        typer.Option(help=_list_help("|I_rho|: of those, factors perturbed", (0, 2))),
    ] = None,
    perturb_probs: Annotated[
        list[str] | None,
        typer.Option(help=_list_help("Probability a factor of I_rho is perturbed", (0.5,))),
    ] = None,
    embedding_dims: Annotated[
        list[str] | None,
        typer.Option(
            help=_list_help(
                "Encoder output dimensions; 'auto' = number of unbiased factors", (None, 10)
            )
        ),
    ] = None,
    temperatures: Annotated[
        list[str] | None, typer.Option(help=_list_help("InfoNCE temperatures", (0.1, 1.0)))
    ] = None,
    probes: Annotated[
        list[str] | None, typer.Option(help=_list_help("Probes", ("linear", "kernel")))
    ] = None,
    seeds: Annotated[list[str] | None, typer.Option(help=_list_help("Seeds", (0,)))] = None,
    semantic_dim: Annotated[int, typer.Option(help="Dimension of the semantic latent s.")] = 10,
    specific_dim: Annotated[
        int, typer.Option(help="Dimension of each modality-specific latent.")
    ] = 5,
    n_train: Annotated[int, typer.Option(help="Training pairs.")] = 8192,
    n_test: Annotated[int, typer.Option(help="Held-out pairs (probes score on them).")] = 2048,
    hidden_dim: Annotated[int, typer.Option(help="Width of the MLP encoders.")] = 128,
    steps: Annotated[int, typer.Option(help="Adam steps per training.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = 256,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    force: Annotated[bool, typer.Option(help="Rerun into a complete folder.")] = False,
    progress: ProgressSwitch = True,
) -> None:
    """Misalignment setting: clip identifies the factors free of selection and perturbation bias.

    Modality 2 sees only I_theta of the semantic factors, and I_rho of those perturbed;
    invertible random MLP mixing; MLP encoders trained with clip; linear and kernel probe
    R^2 of every factor from the modality-1 embedding. Writes OUT_DIR/results.csv,
    misalignment_r2.png and section.md.
    """
    from eo_mmcl.theory import lab, misalignment, misalignment_section
    from eo_mmcl.theory.training import TrainConfig

    defaults = misalignment.MisalignmentSweep()
    sweep = misalignment.MisalignmentSweep(
        theta_sizes=parse_list(theta_sizes, int, defaults.theta_sizes, "--theta-sizes"),
        rho_sizes=parse_list(rho_sizes, int, defaults.rho_sizes, "--rho-sizes"),
        perturb_probs=parse_list(perturb_probs, float, defaults.perturb_probs, "--perturb-probs"),
        embedding_dims=parse_list(
            embedding_dims, _dim_or_auto, defaults.embedding_dims, "--embedding-dims"
        ),
        temperatures=parse_list(temperatures, float, defaults.temperatures, "--temperatures"),
        probes=parse_list(probes, str, defaults.probes, "--probes"),
        seeds=parse_list(seeds, int, defaults.seeds, "--seeds"),
        semantic_dim=semantic_dim,
        specific_dim=specific_dim,
        n_train=n_train,
        n_test=n_test,
        hidden_dim=hidden_dim,
        train=TrainConfig(steps=steps, batch_size=batch_size, lr=lr),
    )
    for theta, rho in sweep.skipped():
        err_console.print(f"[yellow]note[/yellow] skipped theta_size={theta} rho_size={rho}")
    out = lab.run_misalignment_lab(
        output, sweep, force=force, on_run=err_console.print if progress else None
    )
    header, rows = misalignment_section.misalignment_summary(out.results)
    _print_table("Misalignment setting: mean probe R² of the modality-1 embedding", header, rows)
    _report(out, sweep.n_runs)
    _print_pairs(misalignment_section.misalignment_ranking(out.results))


# `theory misalignment` shared its name with the EO sweep `study misalignment`.
deprecated_alias(theory_app, "misalignment", "theory identifiability", identifiability_command)
