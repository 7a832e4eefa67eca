"""Figures of the theory lab (matplotlib, drawn off-screen with the Agg canvas).

Figures are built with `matplotlib.figure.Figure` rather than pyplot, so that no global backend
or figure registry is touched: the lab can run inside a notebook or a headless job alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from eo_mmcl.io import atomic_output
from eo_mmcl.theory.summary import format_setting, group_means

#: Order and style of the objectives and baselines in the plots.
OBJECTIVE_ORDER: Final[tuple[str, ...]] = ("cca", "random", "clip", "cross_self", "coral")
LINE_STYLES: Final[dict[str, str]] = {"cca": "--", "random": ":"}
COLOURS: Final[dict[str, str]] = {
    "cca": "black",
    "random": "grey",
    "clip": "tab:blue",
    "cross_self": "tab:orange",
    "coral": "tab:green",
}

#: Size of one panel, in inches (width, height).
PANEL_SIZE: Final[tuple[float, float]] = (3.6, 2.8)


def save_figure(figure: Figure, path: Path) -> Path:
    """Write a figure as PNG atomically.

    Args:
        figure: The figure.
        path: Destination (``.png``).

    Returns:
        The path.
    """
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


def _objective_rank(name: str) -> int:
    return OBJECTIVE_ORDER.index(name) if name in OBJECTIVE_ORDER else len(OBJECTIVE_ORDER)


def _panels(n_rows: int, n_cols: int) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=(PANEL_SIZE[0] * n_cols, PANEL_SIZE[1] * n_rows), layout="constrained")
    axes = np.atleast_2d(np.asarray(figure.subplots(n_rows, n_cols, squeeze=False)))
    return figure, axes


def _setting_label(keys: Sequence[str], values: Sequence[object]) -> str:
    return ", ".join(f"{k}={format_setting(v)}" for k, v in zip(keys, values, strict=True))


def plot_linear_r2(results: pd.DataFrame, groups: Sequence[str], path: Path) -> Path:
    """Probe R^2 of each factor group against embedding dimension, one line per objective.

    One row of panels per (variance ratio, noise, temperature), one column per group; the
    joint embedding is probed. Baselines (``cca``, ``random``) have no temperature and are
    drawn in every row.

    Args:
        results: The linear experiment's tidy table.
        groups: Factor groups (columns of panels).
        path: Destination PNG.

    Returns:
        The path.
    """
    joint = results[results["embedding"] == "joint"]
    index = ["objective", "variance_ratio", "noise_std", "temperature", "embedding_dim"]
    summary = group_means(joint, index, groups)
    temperatures = sorted(summary["temperature"].dropna().unique())
    rows = list(
        itertools.product(
            sorted(summary["variance_ratio"].unique()),
            sorted(summary["noise_std"].unique()),
            temperatures,
        )
    )
    figure, axes = _panels(len(rows), len(groups))
    for r, (ratio, noise, temperature) in enumerate(rows):
        at = summary[(summary["variance_ratio"] == ratio) & (summary["noise_std"] == noise)]
        at = at[(at["temperature"] == temperature) | at["temperature"].isna()]
        for c, group in enumerate(groups):
            ax: Axes = axes[r, c]
            for objective in sorted(at["objective"].unique(), key=_objective_rank):
                line = at[at["objective"] == objective].sort_values("embedding_dim")
                ax.errorbar(
                    line["embedding_dim"],
                    line[group],
                    yerr=line[f"{group}_std"],
                    label=objective,
                    marker="o",
                    linestyle=LINE_STYLES.get(objective, "-"),
                    color=COLOURS.get(objective),
                    capsize=2,
                )
            ax.set_ylim(-0.05, 1.05)
            ax.set_xticks(sorted(summary["embedding_dim"].unique()))
            ax.set_title(
                f"{group}\n"
                + _setting_label(
                    ["ratio", "noise", "T"], [float(ratio), float(noise), float(temperature)]
                ),
                fontsize=9,
            )
            ax.set_xlabel("embedding dimension")
            if c == 0:
                ax.set_ylabel("linear-probe R² (joint)")
    axes[0, -1].legend(fontsize=8, loc="best")
    return save_figure(figure, path)


def plot_linear_angles(angles: pd.DataFrame, path: Path) -> Path:
    """Largest principal angle between each modality-1 embedding and CCA's aligned subspace.

    Args:
        angles: The linear experiment's angle table.
        path: Destination PNG.

    Returns:
        The path.
    """
    settings = sorted(
        angles[["variance_ratio", "noise_std"]].drop_duplicates().itertuples(index=False, name=None)
    )
    figure, axes = _panels(1, len(settings))
    for c, (ratio, noise) in enumerate(settings):
        ax: Axes = axes[0, c]
        at = angles[(angles["variance_ratio"] == ratio) & (angles["noise_std"] == noise)]
        runs = at[["objective", "temperature"]].drop_duplicates()
        runs = runs.assign(rank=runs["objective"].map(_objective_rank)).sort_values(
            ["rank", "temperature"], na_position="first"
        )
        for objective, temperature in runs[["objective", "temperature"]].itertuples(
            index=False, name=None
        ):
            line = at[at["objective"] == objective]
            line = line[
                line["temperature"].isna()
                if pd.isna(temperature)
                else line["temperature"] == temperature
            ]
            mean = line.groupby("embedding_dim")["max_angle_deg"].agg(["mean", "std"])
            label = objective + ("" if pd.isna(temperature) else f" T={temperature:g}")
            ax.errorbar(
                mean.index,
                mean["mean"],
                yerr=mean["std"].fillna(0.0),
                label=label,
                marker="o",
                linestyle=LINE_STYLES.get(objective, "-"),
                color=COLOURS.get(objective),
                capsize=2,
            )
        ax.set_ylim(0, 90)
        ax.set_xticks(sorted(angles["embedding_dim"].unique()))
        ax.set_xlabel("embedding dimension")
        ax.set_ylabel("largest principal angle to CCA (deg)")
        ax.set_title(_setting_label(["ratio", "noise"], [ratio, noise]), fontsize=9)
    axes[0, -1].legend(fontsize=7, loc="best")
    return save_figure(figure, path)


def plot_misalignment_r2(results: pd.DataFrame, groups: Sequence[str], path: Path) -> Path:
    """Probe R^2 of each factor group, as grouped bars per grid point and probe.

    One row of panels per probe, one column per ``(theta, rho, p)`` grid point; bars are the
    (objective, embedding dimension, temperature) runs.

    Args:
        results: The misalignment experiment's tidy table.
        groups: Factor groups (bar positions).
        path: Destination PNG.

    Returns:
        The path.
    """
    point_keys = ["theta_size", "rho_size", "perturb_prob"]
    run_keys = ["objective", "embedding_dim", "temperature"]
    summary = group_means(results, ["probe", *point_keys, *run_keys], groups)
    probes = list(dict.fromkeys(summary["probe"]))
    points = list(dict.fromkeys(summary[point_keys].itertuples(index=False, name=None)))
    figure, axes = _panels(len(probes), len(points))
    for r, probe in enumerate(probes):
        for c, point in enumerate(points):
            ax: Axes = axes[r, c]
            at = summary[summary["probe"] == probe]
            for key, value in zip(point_keys, point, strict=True):
                at = at[at[key] == value]
            at = at.sort_values(
                ["objective", "embedding_dim", "temperature"],
                key=lambda s: s.map(_objective_rank) if s.name == "objective" else s,
            )
            width = 0.8 / max(len(at), 1)
            for i, (_, run) in enumerate(at.iterrows()):
                values = [run.get(g, np.nan) for g in groups]
                errors = [run.get(f"{g}_std", 0.0) for g in groups]
                label = f"{run['objective']} k={int(run['embedding_dim'])}" + (
                    "" if pd.isna(run["temperature"]) else f" T={run['temperature']:g}"
                )
                ax.bar(
                    np.arange(len(groups)) + (i - (len(at) - 1) / 2) * width,
                    # A group absent from this grid point stays NaN: no bar, not a zero bar.
                    np.asarray(values, dtype=float),
                    width,
                    yerr=np.nan_to_num(np.asarray(errors, dtype=float)),
                    label=label,
                    color="lightgrey" if run["objective"] == "random" else None,
                    edgecolor="black",
                    linewidth=0.3,
                )
            ax.set_xticks(np.arange(len(groups)), [g.replace("_", "\n") for g in groups])
            ax.tick_params(axis="x", labelsize=7)
            ax.set_ylim(-0.05, 1.05)
            ax.set_title(
                f"{probe} probe\n" + _setting_label(["|Iθ|", "|Iρ|", "p"], list(point)),
                fontsize=9,
            )
            if c == 0:
                ax.set_ylabel("R² (modality-1 embedding)")
            ax.legend(fontsize=6, loc="upper right")
    return save_figure(figure, path)
