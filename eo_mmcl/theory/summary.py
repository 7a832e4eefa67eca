"""From the tidy results table to per-group summaries: mean R^2 of each factor group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from eo_mmcl.errors import ConfigError

#: Columns every results table has, in this order (experiment-specific ones follow).
BASE_COLUMNS: tuple[str, ...] = (
    "experiment",
    "objective",
    "embedding",
    "probe",
    "factor",
    "factor_group",
    "r2",
    "embedding_dim",
    "probe_input_dim",
    "shared_dim",
    "unique_dim",
    "temperature",
    "seed",
)

#: Columns that describe a training run rather than a setting. Wall times are left out (they
#: go to the manifest) so that the same settings give a byte-identical table.
RUN_COLUMNS: tuple[str, ...] = ("steps", "final_loss")


def probe_records(
    r2: np.ndarray,
    factor_names: Sequence[str],
    factor_groups: Sequence[str],
    **settings: Any,
) -> list[dict[str, Any]]:
    """Rows of the tidy table for one probe of one embedding: one row per factor.

    Args:
        r2: R^2 per factor, shape (F,).
        factor_names: Name of each factor.
        factor_groups: Group of each factor.
        **settings: Columns shared by the rows (objective, embedding, probe, dimensions...).

    Returns:
        One dict per factor.
    """
    return [
        {**settings, "factor": name, "factor_group": group, "r2": float(value)}
        for name, group, value in zip(factor_names, factor_groups, r2, strict=True)
    ]


def tidy_frame(records: list[dict[str, Any]], extra_columns: Sequence[str]) -> pd.DataFrame:
    """Assemble rows into the results table with a fixed column order.

    Args:
        records: Rows from :func:`probe_records`.
        extra_columns: Experiment-specific setting columns, placed after the base columns.

    Returns:
        The table; missing values (e.g. no temperature for a closed-form baseline) are NaN.
    """
    columns = [*BASE_COLUMNS, *extra_columns, *RUN_COLUMNS]
    return pd.DataFrame.from_records(records).reindex(columns=columns)


def group_means(results: pd.DataFrame, index: Sequence[str], groups: Sequence[str]) -> pd.DataFrame:
    """Mean R^2 of each factor group per setting, with its standard deviation over seeds.

    Factors are averaged within a group for each seed first, so the spread is the seed-to-seed
    variation of the group mean (0 with one seed).

    Args:
        results: The tidy results table.
        index: Setting columns that identify a row of the summary (without ``seed``).
        groups: Factor groups to show, as columns, in this order.

    Returns:
        One row per setting; columns ``<group>`` (mean) and ``<group>_std`` for every group
        present, and ``seeds``.
    """
    keys = [*index, "seed", "factor_group"]
    # NaN settings (e.g. no temperature for a baseline) must stay as groups of their own.
    per_seed = results.groupby(keys, dropna=False, sort=False)["r2"].mean().unstack()
    present = [g for g in groups if g in per_seed.columns]
    grouped = per_seed[present].groupby(level=list(range(len(index))), dropna=False, sort=False)
    means = grouped.mean()
    stds = grouped.std(ddof=0).add_suffix("_std")
    summary = pd.concat([means, stds], axis=1)
    summary["seeds"] = grouped.size()
    return summary.reset_index()


def format_r2(mean: float, std: float, seeds: int) -> str:
    """Format a group mean for a table: ``0.98`` or ``0.98 ± 0.01`` with several seeds.

    Args:
        mean: Mean R^2.
        std: Standard deviation over seeds.
        seeds: Number of seeds.

    Returns:
        The text; ``-`` for a missing value.
    """
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.2f}" if seeds <= 1 else f"{mean:.2f} ± {std:.2f}"


def format_setting(value: Any) -> str:
    """Format a setting value for a table (NaN as ``-``, floats without trailing zeros).

    Args:
        value: The value.

    Returns:
        The text.
    """
    if isinstance(value, float):
        return "-" if np.isnan(value) else f"{value:g}"
    return str(value)


def summary_rows(
    summary: pd.DataFrame, index: Sequence[str], groups: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of a summary table, for rich and Markdown alike.

    Args:
        summary: Output of :func:`group_means`.
        index: Its setting columns.
        groups: Factor groups, in column order (absent ones are shown as ``-``).

    Returns:
        The header and one list of cells per row.
    """
    header = [*index, *groups]

    def cell(row: pd.Series, group: str) -> str:
        if group not in row.index or pd.isna(row[group]):
            return "-"
        return format_r2(float(row[group]), float(row[f"{group}_std"]), int(row["seeds"]))

    rows = [
        [format_setting(row[c]) for c in index] + [cell(row, g) for g in groups]
        for _, row in summary.iterrows()
    ]
    return header, rows


def group_r2(
    results: pd.DataFrame, objective: str, embedding: str, group: str, **settings: Any
) -> float:
    """Mean R^2 of one factor group for one objective and embedding at given settings.

    A convenience for tests and notes; settings not given are averaged over.

    Args:
        results: The tidy results table.
        objective: Objective name.
        embedding: ``modality1``, ``modality2`` or ``joint``.
        group: Factor group.
        **settings: Column values to select, e.g. ``embedding_dim=5``.

    Returns:
        The mean R^2.

    Raises:
        ConfigError: If no row matches.
    """
    mask = (
        (results["objective"] == objective)
        & (results["embedding"] == embedding)
        & (results["factor_group"] == group)
    )
    for column, value in settings.items():
        mask &= results[column] == value
    if not mask.any():
        raise ConfigError(f"no results for {objective}/{embedding}/{group} at {settings}")
    return float(results.loc[mask, "r2"].mean())
