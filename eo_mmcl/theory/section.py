"""Summary tables and the Markdown section that the raster report includes.

The same summary feeds the command's rich table and the section's Markdown table, so both
show identical numbers. Statements in the section are computed from the results, not written
in advance: where the measurement contradicts the theory, the section says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from eo_mmcl.theory import linear
from eo_mmcl.theory.plots import OBJECTIVE_ORDER
from eo_mmcl.theory.probes import PROBES
from eo_mmcl.theory.summary import format_setting, group_means, summary_rows

#: Setting columns of the linear summary, before constant ones are dropped.
LINEAR_INDEX: tuple[str, ...] = (
    "variance_ratio",
    "noise_std",
    "objective",
    "temperature",
    "embedding_dim",
)


def varying_columns(frame: pd.DataFrame, columns: Sequence[str], keep: Sequence[str]) -> list[str]:
    """Columns that take more than one value (constant ones go into the caption instead)."""
    return [c for c in columns if c in keep or frame[c].nunique(dropna=False) > 1]


def sorted_summary(summary: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows in a reading order: baselines first, NaN temperatures first, linear probe first."""

    def key(column: str) -> pd.Series:
        values = summary[column]
        if column == "objective":
            return values.map(lambda o: OBJECTIVE_ORDER.index(o) if o in OBJECTIVE_ORDER else 99)
        if column == "probe":
            return values.map(lambda p: PROBES.index(p) if p in PROBES else 99)
        if column == "temperature":
            return values.fillna(-math.inf)
        return values

    order = pd.DataFrame({c: key(c) for c in columns}).sort_values(list(columns), kind="stable")
    return summary.loc[order.index].reset_index(drop=True)


def linear_summary(results: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Mean linear-probe R^2 per factor group of the joint embedding, per setting.

    Args:
        results: The linear experiment's tidy table.

    Returns:
        Header and rows (settings that never vary are left out).
    """
    joint = results[results["embedding"] == "joint"]
    index = varying_columns(joint, LINEAR_INDEX, keep=("objective", "embedding_dim"))
    summary = sorted_summary(group_means(joint, index, linear.GROUPS), index)
    return summary_rows(summary, index, linear.GROUPS)


def linear_angle_summary(angles: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Largest and mean principal angle to CCA's aligned subspace, per setting.

    Args:
        angles: The linear experiment's angle table.

    Returns:
        Header and rows, angles in degrees (mean over seeds).
    """
    index = varying_columns(angles, LINEAR_INDEX, keep=("objective", "embedding_dim"))
    table = (
        angles.groupby(index, dropna=False, sort=False)[["max_angle_deg", "mean_angle_deg"]]
        .mean()
        .reset_index()
    )
    table = sorted_summary(table, index)
    header = [*index, "max_angle_deg", "mean_angle_deg"]
    rows = [
        [format_setting(row[c]) for c in index]
        + [f"{row['max_angle_deg']:.1f}", f"{row['mean_angle_deg']:.1f}"]
        for _, row in table.iterrows()
    ]
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table.

    Args:
        header: Column names.
        rows: Cell texts.

    Returns:
        The table, newline-terminated.
    """
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines) + "\n"


def settings_text(settings: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The fixed settings of a sweep as ``key=value`` text (lists comma-joined).

    Args:
        settings: The sweep's settings.
        keys: Which to show, in order.

    Returns:
        ``"k1=v1, k2=a,b"``.
    """

    def text(value: Any) -> str:
        if isinstance(value, list | tuple):
            return ",".join(str(v) for v in value)
        return str(value)

    return ", ".join(f"{k}={text(settings[k])}" for k in keys)


def mean_r2(results: pd.DataFrame, **where: Any) -> float:
    """Mean probe R² of the rows matching every ``column=value`` given.

    Args:
        results: A tidy results table with an ``r2`` column.
        **where: Column values the rows must have.

    Returns:
        The mean, NaN where no row matches.
    """
    mask = np.ones(len(results), dtype=bool)
    for column, value in where.items():
        mask &= (results[column] == value).to_numpy()
    return float(results.loc[mask, "r2"].mean()) if mask.any() else math.nan


def linear_checks(
    results: pd.DataFrame, angles: pd.DataFrame, shared_dim: int, unique_dim: int
) -> pd.DataFrame:
    """The issue's three checks at every (variance ratio, noise, temperature) of the grid.

    Read from the modality-1 embedding: R^2 of s and u1 from ``clip`` at embedding dimension
    dim(s); R^2 of u1 from ``clip`` and ``cross_self`` at dim(s) + dim(u1); the largest
    principal angle between ``clip`` at dim(s) and CCA's aligned subspace. NaN where the grid
    lacks the objective or the dimension.

    Args:
        results: The linear tidy table.
        angles: The angle table.
        shared_dim: ``dim(s)``.
        unique_dim: ``dim(u1)``.

    Returns:
        One row per setting.
    """
    m1 = results[results["embedding"] == "modality1"]
    trained = m1[m1["temperature"].notna()]
    k_s, k_su = shared_dim, shared_dim + unique_dim
    rows: list[dict[str, float]] = []
    for key, at in trained.groupby(["variance_ratio", "noise_std", "temperature"]):
        # pandas types group keys as Hashable; these columns hold floats.
        ratio, noise, temperature = cast(tuple[float, float, float], key)
        angle = angles[
            (angles["objective"] == "clip")
            & (angles["embedding_dim"] == k_s)
            & (angles["variance_ratio"] == ratio)
            & (angles["noise_std"] == noise)
            & (angles["temperature"] == temperature)
        ]["max_angle_deg"]
        rows.append(
            {
                "variance_ratio": ratio,
                "noise_std": noise,
                "temperature": temperature,
                "clip_r2_s_at_dim_s": mean_r2(
                    at, objective="clip", embedding_dim=k_s, factor_group="shared"
                ),
                "clip_r2_u1_at_dim_s": mean_r2(
                    at, objective="clip", embedding_dim=k_s, factor_group="unique1"
                ),
                "clip_r2_u1_at_dim_s_plus_u": mean_r2(
                    at, objective="clip", embedding_dim=k_su, factor_group="unique1"
                ),
                "cross_self_r2_u1_at_dim_s_plus_u": mean_r2(
                    at, objective="cross_self", embedding_dim=k_su, factor_group="unique1"
                ),
                "clip_cca_max_angle_deg_at_dim_s": float(angle.mean()) if len(angle) else math.nan,
            }
        )
    return pd.DataFrame.from_records(rows)


def linear_findings(checks: pd.DataFrame, shared_dim: int, unique_dim: int) -> list[str]:
    """Markdown bullets stating the checks of :func:`linear_checks`.

    Args:
        checks: Output of :func:`linear_checks`.
        shared_dim: ``dim(s)``.
        unique_dim: ``dim(u1)``.

    Returns:
        One bullet per check and setting that the grid contains.
    """
    k_s, k_su = shared_dim, shared_dim + unique_dim
    bullets: list[str] = []
    for _, row in checks.iterrows():
        where = (
            f"ratio={row['variance_ratio']:g}, noise={row['noise_std']:g}, T={row['temperature']:g}"
        )
        if not math.isnan(row["clip_r2_s_at_dim_s"]):
            bullets.append(
                f"{where}: at embedding dim = dim(s) = {k_s}, `clip` keeps "
                f"R²(s) = {row['clip_r2_s_at_dim_s']:.2f} and "
                f"R²(u1) = {row['clip_r2_u1_at_dim_s']:.2f} (modality-1 embedding)."
            )
        u_clip, u_cs = row["clip_r2_u1_at_dim_s_plus_u"], row["cross_self_r2_u1_at_dim_s_plus_u"]
        if not (math.isnan(u_clip) or math.isnan(u_cs)):
            bullets.append(
                f"{where}: at embedding dim = dim(s) + dim(u1) = {k_su}, R²(u1) is "
                f"{u_clip:.2f} for `clip` against {u_cs:.2f} for `cross_self`."
            )
        if not math.isnan(row["clip_cca_max_angle_deg_at_dim_s"]):
            bullets.append(
                f"{where}: the trained `clip` encoder at dim {k_s} lies within "
                f"{row['clip_cca_max_angle_deg_at_dim_s']:.1f}° of CCA's aligned subspace "
                "(largest principal angle)."
            )
    return [f"- {b}" for b in bullets]


def linear_section(
    results: pd.DataFrame,
    angles: pd.DataFrame,
    settings: Mapping[str, Any],
    figures: Sequence[Path],
) -> str:
    """The Markdown section of the linear experiment.

    Args:
        results: The tidy table.
        angles: The angle table.
        settings: The sweep's settings (``LinearSweep.settings()``).
        figures: Figure files, linked by name (the section sits beside them).

    Returns:
        The section text.
    """
    header, rows = linear_summary(results)
    a_header, a_rows = linear_angle_summary(angles)
    checks = linear_checks(results, angles, settings["shared_dim"], settings["unique_dim"])
    train = settings["train"]
    views = settings["views"]
    fixed = settings_text(
        settings, ["shared_dim", "unique_dim", "observation_dim", "n_train", "n_test", "seeds"]
    )
    constant = [
        f"{c}={format_setting(float(results[c].iloc[0]))}"
        for c in ("variance_ratio", "noise_std", "temperature")
        if c not in header and results[c].notna().any()
    ]
    parts = [
        "## Theory lab: what linear alignment keeps\n",
        "Two modalities share a latent s and each has a unique latent u_i; "
        "x_i = A_i [s; u_i] + noise with random mixing matrices A_i. Linear encoders are trained "
        "with the project's losses: `clip` (symmetric InfoNCE between the modalities), "
        "`cross_self` (clip plus NT-Xent between two views of each modality, views by additive "
        "noise and feature dropout) and `coral` (a masked shared path over both modalities, a "
        "unique path per modality and an orthogonality penalty). `cca` is the closed-form limit "
        "of linear alignment (its aligned subspace, min(k, dim s) canonical directions per "
        "modality) and `random` the untrained floor. Theory (Thoreau, Levillain and Derksen, "
        "2025): alignment keeps the aligned subspace and discards u_i when the embedding has "
        "no room beyond it.\n",
        f"Settings: {fixed}; {', '.join(constant) + '; ' if constant else ''}"
        f"training: {train['steps']} Adam steps, batch {train['batch_size']}, "
        f"lr {train['lr']}; views: noise_std={views['noise_std']}, dropout={views['dropout']}.\n",
        "Mean held-out linear-probe R² per factor group, read from the joint embedding "
        "(both modalities' embeddings concatenated; `coral`: concat[z, u1, u2], three times "
        "the embedding dimension):\n",
        markdown_table(header, rows),
        "Checks:\n",
        "\n".join(linear_findings(checks, settings["shared_dim"], settings["unique_dim"])) + "\n",
        "Principal angles between each modality-1 embedding and CCA's aligned subspace "
        "(angles between the two embeddings' spans over the test samples; 0° = the aligned "
        "subspace is contained in the embedding):\n",
        markdown_table(a_header, a_rows),
        *(f"![{f.stem}]({f.name})\n" for f in figures),
    ]
    return "\n".join(parts)
