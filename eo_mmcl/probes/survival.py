"""Survival ratios: ``(score - chance) / (oracle - chance)``, and the change against random init."""

from __future__ import annotations

import numpy as np
import pandas as pd

from eo_mmcl.errors import ConfigError
from eo_mmcl.probes.embeddings import RANDOM_INIT

#: The objective whose score is the ceiling of the survival ratio.
ORACLE = "supervised"

#: Columns of the tidy probe table, in order.
PROBE_COLUMNS = (
    "objective", "run", "architecture", "floor", "task", "group", "probe", "depth", "embedding",
    "seed", "metric", "score", "chance", "oracle", "random_score", "survival",
    "survival_vs_random", "param", "val_score", "n_train", "n_test", "checkpoint",
)  # fmt: skip


def survival_ratio(score: np.ndarray, chance: np.ndarray, oracle: np.ndarray) -> np.ndarray:
    """``(score - chance) / (oracle - chance)``; NaN where the oracle is not above chance.

    Args:
        score: Scores.
        chance: Chance levels.
        oracle: Oracle scores.

    Returns:
        The ratios (1 = as good as the oracle, 0 = chance; may leave [0, 1]).
    """
    score, chance, oracle = (np.asarray(a, dtype=float) for a in (score, chance, oracle))
    span = oracle - chance
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span > 1e-9, (score - chance) / span, np.nan)


def is_floor(objective: pd.Series) -> pd.Series:
    """Whether rows belong to a random-init floor."""
    return objective.astype(str).str.startswith(RANDOM_INIT)


def add_survival(raw: pd.DataFrame) -> pd.DataFrame:
    """Add oracle, random-init score, survival and survival_vs_random to raw probe rows.

    The oracle of a (task, probe) is the mean over seeds and runs of the ``supervised``
    objective's score at the backbone depth (the only depth it has), and serves both depths.
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
    oracle_rows = table[(table["objective"] == ORACLE) & (table["depth"] == "backbone")]
    if oracle_rows.empty:
        raise ConfigError(
            "no 'supervised' checkpoint among the probed ones: the survival ratio needs the "
            "supervised oracle (train it with pipelines/configs/supervised.yaml)"
        )
    oracle = oracle_rows.groupby(["task", "probe"])["score"].mean().rename("oracle")
    table = table.drop(columns=["oracle"], errors="ignore").join(oracle, on=["task", "probe"])
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

    Args:
        summary: Output of :func:`summarise`.

    Returns:
        One row per (objective, group), the columns of ``summary``.
    """
    ranked = summary.dropna(subset=["survival_mean"]).sort_values(
        "survival_mean", ascending=False, kind="stable"
    )
    best = ranked.groupby(["objective", "group"], sort=False).head(1)
    return best.reset_index(drop=True)
