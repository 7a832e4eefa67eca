"""Survival ratios: ``(score - chance) / (ceiling - chance)``, the ceiling, and the cells shown.

Honest-measurement rules (DESIGN.md) that this module implements:

- The ceiling of a task (per metric) is the best of the references, the ``supervised`` oracle
  (backbone depth) and band statistics; each reference is read at the probe its *validation*
  score chooses, never its test score, and the ceiling is the better reference's mean test
  score. ``ceiling_source`` names it.
- The cell (task, probe, depth) a report shows per objective and group is the one with the best
  mean *validation* survival.
- Error bars come from the training seeds: scores are first averaged over the probe seeds
  nested inside a training seed, then their mean and standard deviation over training seeds
  are taken. Comparisons between objectives are paired by training seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from eo_mmcl.errors import ConfigError
from eo_mmcl.probe.embeddings import BAND_STATISTICS, RANDOM_INIT

#: The objective whose score is the ceiling of the survival ratio (with band statistics).
ORACLE = "supervised"

#: The references whose best score is a task's ceiling.
REFERENCES = (ORACLE, BAND_STATISTICS)

#: How far above chance the ceiling must score for a ratio against it to mean anything. Below
#: this the denominator is noise (a task that even the references read at chance) and the
#: ratio is left NaN instead of reporting noise divided by noise.
MIN_ORACLE_MARGIN = 0.05

#: How ``probe_meta.json`` describes the ceiling.
CEILING_NOTE = (
    "ceiling (column `oracle`) of a task and metric: the better of the supervised oracle "
    "(backbone depth) and band statistics, each at the probe its mean validation score "
    "chooses, as mean test score over training and probe seeds (`ceiling_source` names "
    f"it); survival is NaN where the ceiling is less than {MIN_ORACLE_MARGIN} above chance"
)

#: Columns of the tidy probe table, in order.
PROBE_COLUMNS = (
    "objective", "run", "train_seed", "architecture", "floor", "task", "group", "probe",
    "depth", "sensor", "embedding", "seed", "metric", "score", "chance", "oracle",
    "ceiling_source", "random_score", "survival", "survival_vs_random", "val_score",
    "val_chance", "val_survival", "param", "n_train", "n_test", "checkpoint",
)  # fmt: skip

#: A summary row's identity: one cell of one objective.
CELL = ["objective", "group", "task", "metric", "probe", "depth"]


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
        oracle: Ceiling scores.
        min_margin: Smallest ``oracle - chance`` for which a ratio is returned.

    Returns:
        The ratios (1 = as good as the ceiling, 0 = chance; may leave [0, 1]).
    """
    score, chance, oracle = (np.asarray(a, dtype=float) for a in (score, chance, oracle))
    span = oracle - chance
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span >= max(min_margin, 1e-9), (score - chance) / span, np.nan)


def is_floor(objective: pd.Series) -> pd.Series:
    """Whether rows belong to a random-init floor."""
    return objective.astype(str).str.startswith(RANDOM_INIT)


def _with_defaults(raw: pd.DataFrame) -> pd.DataFrame:
    """Columns that rows built by hand may lack, with the values the probe stage writes."""
    table = raw.copy()
    defaults: dict[str, Any] = {"metric": "", "sensor": "joint", "train_seed": 0}
    for column, value in defaults.items():
        if column not in table:
            table[column] = value
    for column in ("val_score", "val_chance"):
        if column not in table:
            table[column] = np.nan
    return table


def reference_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Each reference's score per task and metric, at the probe its validation score chooses.

    Args:
        table: Probe rows (with ``sensor``; only both-sensor rows count here).

    Returns:
        One row per (task, metric, reference): ``probe``, mean ``score``, ``val_score`` and
        ``chance`` over training and probe seeds.
    """
    joint = table[table["sensor"] == "joint"]
    ref = joint[
        ((joint["objective"] == ORACLE) & (joint["depth"] == "backbone"))
        | (joint["objective"] == BAND_STATISTICS)
    ]
    means = (
        ref.groupby(["task", "metric", "objective", "probe"], sort=True)[
            ["score", "val_score", "chance", "val_chance"]
        ]
        .mean()
        .reset_index()
    )
    # NaN validation scores (rows built by hand) fall back to the test score's order.
    means["choice"] = means["val_score"].fillna(means["score"])
    ranked = means.sort_values(
        ["task", "metric", "objective", "choice", "probe"],
        ascending=[True, True, True, False, True],
        kind="stable",
    )
    best = ranked.groupby(["task", "metric", "objective"], sort=False).head(1)
    return best.drop(columns="choice").reset_index(drop=True)


def ceilings(table: pd.DataFrame) -> pd.DataFrame:
    """The ceiling of each task and metric: the better reference, and which one it is.

    Args:
        table: Probe rows.

    Returns:
        Indexed by (task, metric): ``oracle`` (the ceiling's test score), ``val_oracle`` (the
        validation score of the better reference on validation), ``ceiling_source``
        (``<reference> (<probe>)``).
    """
    refs = reference_scores(table)
    if refs.empty:
        return pd.DataFrame(columns=["oracle", "val_oracle", "ceiling_source"])
    rows = {}
    for key, group in refs.groupby(["task", "metric"], sort=True):
        top = group.sort_values(["score", "objective"], ascending=[False, True]).iloc[0]
        val = group["val_score"].max()
        rows[key] = {
            "oracle": float(top["score"]),
            "val_oracle": float(val) if np.isfinite(val) else float(top["score"]),
            "ceiling_source": f"{top['objective']} ({top['probe']})",
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index = out.index.set_names(["task", "metric"])
    return out


def add_survival(raw: pd.DataFrame) -> pd.DataFrame:
    """Add the ceiling, random-init score, survival (test and validation) to raw probe rows.

    One ceiling per (task, metric) (:func:`ceilings`) serves every probe and depth with that
    metric, so a weak probe cannot inflate the ratio by dividing by a weak ceiling;
    segmentation (mIoU) has its own. The floor of a row is the random-init encoder named in its
    ``floor`` column, at the same task, probe, depth, sensor, training seed and probe seed;
    ``survival_vs_random`` is the row's survival minus the floor's.

    Args:
        raw: Rows with objective, floor, task, probe, depth, seed, score, chance (and, as the
            probe stage writes them, metric, sensor, train_seed, val_score, val_chance).

    Returns:
        The table with every column of :data:`PROBE_COLUMNS` that the rows allow.

    Raises:
        ConfigError: If the rows hold no ``supervised`` objective (no ceiling).
    """
    table = _with_defaults(raw)
    if not ((table["objective"] == ORACLE) & (table["depth"] == "backbone")).any():
        raise ConfigError(
            "no 'supervised' checkpoint among the probed ones: the survival ratio needs the "
            "supervised oracle (train it with pipelines/configs/supervised.yaml)"
        )
    top = ceilings(table)
    table = table.drop(columns=["oracle", "ceiling_source"], errors="ignore").join(
        top, on=["task", "metric"]
    )
    table["survival"] = survival_ratio(
        table["score"].to_numpy(), table["chance"].to_numpy(), table["oracle"].to_numpy()
    )
    table["val_survival"] = survival_ratio(
        table["val_score"].to_numpy(),
        table["val_chance"].to_numpy(),
        table["val_oracle"].to_numpy(),
    )
    table = table.drop(columns=["val_oracle"])
    floors = table[is_floor(table["objective"])]
    keys = ["floor", "task", "probe", "depth", "sensor", "train_seed", "seed"]
    lookup = floors.set_index(["objective", *keys[1:]])[["score", "survival"]].rename(
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


def per_train_seed(table: pd.DataFrame) -> pd.DataFrame:
    """Each cell's mean over the probe seeds inside each training seed (both-sensor rows).

    Args:
        table: The tidy probe table.

    Returns:
        One row per (cell, train_seed): mean score, survival, survival_vs_random,
        val_survival, chance and oracle.
    """
    rows = _with_defaults(table)
    rows = rows[rows["sensor"] == "joint"]
    if "val_survival" not in rows:
        rows = rows.assign(val_survival=np.nan)
    values = ["score", "survival", "survival_vs_random", "val_survival", "chance", "oracle"]
    present = [v for v in values if v in rows]
    return rows.groupby([*CELL, "train_seed"], sort=False)[present].mean().reset_index()


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over training seeds per objective and cell.

    Args:
        table: The tidy probe table.

    Returns:
        One row per (objective, group, task, metric, probe, depth) with ``*_mean`` and
        ``*_std`` (over training seeds, probe seeds averaged inside each) of score, survival and
        survival_vs_random, the mean validation survival, chance and oracle, and ``n`` (the
        number of training seeds).
    """
    seeds = per_train_seed(table)
    out = (
        seeds.groupby(CELL, sort=False)
        .agg(
            score_mean=("score", "mean"),
            score_std=("score", "std"),
            survival_mean=("survival", "mean"),
            survival_std=("survival", "std"),
            vs_random_mean=("survival_vs_random", "mean"),
            vs_random_std=("survival_vs_random", "std"),
            val_survival_mean=("val_survival", "mean"),
            chance=("chance", "mean"),
            oracle=("oracle", "mean"),
            n=("train_seed", "nunique"),
        )
        .reset_index()
    )
    return out.fillna({"score_std": 0.0, "survival_std": 0.0, "vs_random_std": 0.0})


def best_per_group(summary: pd.DataFrame) -> pd.DataFrame:
    """For each objective and group, the cell with the best mean *validation* survival.

    The test survival never enters the choice. Ties go to the alphabetical (task, metric,
    probe, depth); cells without a validation survival are chosen by nothing else.

    Args:
        summary: Output of :func:`summarise`.

    Returns:
        One row per (objective, group), the columns of ``summary``.
    """
    ranked = summary.dropna(subset=["val_survival_mean", "survival_mean"]).sort_values(
        ["val_survival_mean", "task", "metric", "probe", "depth"],
        ascending=[False, True, True, True, True],
        kind="stable",
    )
    best = ranked.groupby(["objective", "group"], sort=False).head(1)
    return best.reset_index(drop=True)
