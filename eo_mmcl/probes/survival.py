"""Survival ratios: ``(score - chance) / (oracle - chance)``, and the change against random init."""

from __future__ import annotations

import numpy as np
import pandas as pd

from eo_mmcl.errors import ConfigError
from eo_mmcl.probes.embeddings import RANDOM_INIT

#: The objective whose score is the ceiling of the survival ratio.
ORACLE = "supervised"

#: How far above chance the oracle must score for a ratio against it to mean anything. Below
#: this the denominator is noise (a probe on which even the supervised encoder is at chance)
#: and the ratio is left NaN instead of reporting noise divided by noise.
MIN_ORACLE_MARGIN = 0.05

#: Columns of the tidy probe table, in order.
PROBE_COLUMNS = (
    "objective", "run", "architecture", "floor", "task", "group", "probe", "depth", "embedding",
    "seed", "metric", "score", "chance", "oracle", "random_score", "survival",
    "survival_vs_random", "param", "val_score", "n_train", "n_test", "checkpoint",
)  # fmt: skip


def survival_ratio(
    score: np.ndarray,
    chance: np.ndarray,
    oracle: np.ndarray,
    min_margin: float = MIN_ORACLE_MARGIN,
) -> np.ndarray:
    """``(score - chance) / (oracle - chance)``; NaN where the oracle is not clearly above chance.

    Args:
        score: Scores.
        chance: Chance levels.
        oracle: Oracle scores.
        min_margin: Smallest ``oracle - chance`` for which a ratio is returned.

    Returns:
        The ratios (1 = as good as the oracle, 0 = chance; may leave [0, 1]).
    """
    score, chance, oracle = (np.asarray(a, dtype=float) for a in (score, chance, oracle))
    span = oracle - chance
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span >= max(min_margin, 1e-9), (score - chance) / span, np.nan)


def is_floor(objective: pd.Series) -> pd.Series:
    """Whether rows belong to a random-init floor."""
    return objective.astype(str).str.startswith(RANDOM_INIT)


def add_survival(raw: pd.DataFrame) -> pd.DataFrame:
    """Add oracle, random-init score, survival and survival_vs_random to raw probe rows.

    The oracle (ceiling) of a task is what the ``supervised`` objective reaches on it: the best,
    over the probes that share the task's metric, of its mean score over seeds and runs at the
    backbone depth (the only depth it has). One ceiling per (task, metric) serves every probe
    and depth with that metric, so a weak probe (say kNN where the linear probe does better)
    cannot inflate the ratio by dividing by a weak ceiling; segmentation (mIoU) has its own.
    Where that ceiling is less than :data:`MIN_ORACLE_MARGIN` above chance, survival is NaN.
    The floor of a row is the random-init encoder named in its ``floor`` column, at the same
    task, probe, depth and seed; ``survival_vs_random`` is the row's survival minus the floor's.

    Args:
        raw: Rows with objective, floor, task, probe, depth, seed, score, chance.

    Returns:
        The table with every column of :data:`PROBE_COLUMNS` that the rows allow.

    Raises:
        ConfigError: If the rows hold no ``supervised`` objective (no ceiling).
    """
    table = raw.copy()
    if "metric" not in table:  # rows built by hand: every probe of a task shares one metric
        table["metric"] = ""
    oracle_rows = table[(table["objective"] == ORACLE) & (table["depth"] == "backbone")]
    if oracle_rows.empty:
        raise ConfigError(
            "no 'supervised' checkpoint among the probed ones: the survival ratio needs the "
            "supervised oracle (train it with pipelines/configs/supervised.yaml)"
        )
    per_probe = oracle_rows.groupby(["task", "metric", "probe"])["score"].mean()
    oracle = per_probe.groupby(["task", "metric"]).max().rename("oracle")
    table = table.drop(columns=["oracle"], errors="ignore").join(oracle, on=["task", "metric"])
    table["survival"] = survival_ratio(
        table["score"].to_numpy(), table["chance"].to_numpy(), table["oracle"].to_numpy()
    )
    floors = table[is_floor(table["objective"])]
    floor_score = floors.set_index(["objective", "task", "probe", "depth", "seed"])
    keys = ["floor", "task", "probe", "depth", "seed"]
    lookup = floor_score[["score", "survival"]].rename(
        columns={"score": "random_score", "survival": "random_survival"}
    )
    lookup.index = lookup.index.set_names(keys)
    table = table.drop(columns=["random_score"], errors="ignore").join(lookup, on=keys)
    table["survival_vs_random"] = table["survival"] - table["random_survival"]
    table = table.drop(columns=["random_survival"])
    columns = [c for c in PROBE_COLUMNS if c in table] + [
        c for c in table if c not in PROBE_COLUMNS
    ]
    return table[columns]


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds (and runs) per objective, task, probe and depth.

    Args:
        table: The tidy probe table.

    Returns:
        One row per (objective, group, task, probe, depth) with ``*_mean`` and ``*_std`` of
        score, survival and survival_vs_random, and the mean chance and oracle.
    """
    keys = ["objective", "group", "task", "probe", "depth"]
    grouped = table.groupby(keys, sort=False)
    out = grouped.agg(
        score_mean=("score", "mean"),
        score_std=("score", "std"),
        survival_mean=("survival", "mean"),
        survival_std=("survival", "std"),
        vs_random_mean=("survival_vs_random", "mean"),
        vs_random_std=("survival_vs_random", "std"),
        chance=("chance", "mean"),
        oracle=("oracle", "mean"),
        n=("seed", "size"),
    ).reset_index()
    return out.fillna({"score_std": 0.0, "survival_std": 0.0, "vs_random_std": 0.0})


def best_per_group(summary: pd.DataFrame) -> pd.DataFrame:
    """For each objective and group, the (task, probe, depth) with the best mean survival.

    Ties go to the smaller standard deviation, then to the alphabetical (task, probe, depth).

    Args:
        summary: Output of :func:`summarise`.

    Returns:
        One row per (objective, group), the columns of ``summary``.
    """
    # Ties (a shared ceiling makes equal scores equal survivals) go to the steadier cell, then
    # to the alphabetical (task, probe, depth), so the choice never depends on row order.
    ranked = summary.dropna(subset=["survival_mean"]).sort_values(
        ["survival_mean", "survival_std", "task", "probe", "depth"],
        ascending=[False, True, True, True, True],
        kind="stable",
    )
    best = ranked.groupby(["objective", "group"], sort=False).head(1)
    return best.reset_index(drop=True)
