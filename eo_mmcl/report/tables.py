"""The report's tables: instrument verdicts, the main table and its cells, paired comparisons.

Every number here comes from the tidy probe table. The cell shown per objective and group is
chosen on validation (:func:`eo_mmcl.probe.survival.best_per_group`); error bars are standard
deviations over training seeds; a comparison between two objectives is paired by training seed
and claimed only where the mean paired difference exceeds two standard errors. Nothing is
claimed on a group whose task the instrument table marks not readable, and no ranking on one
that is readable but not separable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from eo_mmcl.probe.embeddings import BAND_STATISTICS
from eo_mmcl.probe.instrument import instrument_table
from eo_mmcl.probe.survival import ORACLE, best_per_group, per_train_seed, summarise
from eo_mmcl.probe.tasks import GROUPS

#: Rows that are neither trained objectives nor floors: learning-free references.
REFERENCES = (BAND_STATISTICS,)

#: Objectives built to keep unique and synergistic information (what ``clip`` is held against).
PRESERVING = ("cross_self", "decur", "comm", "coral")

#: Multiple of the standard error a paired difference must exceed to be claimed.
SIGNIFICANCE_SE = 2.0


@dataclass
class MainTable:
    """The main comparison, as numbers and as formatted cells.

    Args:
        best: One row per (objective, group): the cell chosen on validation.
        survival: Objectives x groups, mean survival over training seeds at ``best``.
        survival_std: Same shape, standard deviation over training seeds.
        score: Objectives x groups, mean raw score of ``best``.
        score_std: Same shape.
        vs_random: Objectives x groups, mean survival_vs_random of ``best``.
        seeds: Objectives x groups, number of training seeds behind each cell.
        status: Objectives x groups: ``readable``, ``not separable`` or ``not readable`` (the
            instrument's verdict on the cell's task and metric).
        groups: Groups present, in report order.
        instrument: The instrument table the verdicts come from.
        table: The tidy probe table (for paired comparisons).
    """

    best: pd.DataFrame
    survival: pd.DataFrame
    survival_std: pd.DataFrame
    score: pd.DataFrame
    score_std: pd.DataFrame
    vs_random: pd.DataFrame
    seeds: pd.DataFrame
    status: pd.DataFrame
    groups: list[str]
    instrument: pd.DataFrame
    table: pd.DataFrame


def trained_objectives(objectives: Iterable[object]) -> list[str]:
    """The trained objectives among rows: not the oracle, a floor or a reference."""
    return [
        str(o)
        for o in objectives
        if o not in (ORACLE, *REFERENCES) and not str(o).startswith("random-init")
    ]


def objective_order(objectives: list[str]) -> list[str]:
    """Trained objectives first (as given), the oracle, the random-init floors, references."""
    trained = trained_objectives(objectives)
    floors = [o for o in objectives if o.startswith("random-init")]
    references = [o for o in REFERENCES if o in objectives]
    return trained + ([ORACLE] if ORACLE in objectives else []) + floors + references


def instrument_verdicts(instrument: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Each (task, metric) reading's verdict from the instrument table.

    Args:
        instrument: The instrument table.

    Returns:
        ``{(task, metric): verdict}``.
    """
    out = {}
    for row in instrument.itertuples():
        status = "readable" if row.separable else ("not separable" if row.readable else "")
        out[(str(row.task), str(row.metric))] = status or "not readable"
    return out


def measurable_cells(summary: pd.DataFrame, verdicts: dict[tuple[str, str], str]) -> pd.DataFrame:
    """The cells a group's column may show: those of its best-verdict readings.

    A task is read by several metrics (chip balanced accuracy, segmentation mIoU), and the
    instrument may find one reading separable and another not (an untrained network reads a
    level shift chip by chip, not pixel by pixel), or one readable and another not. Per group,
    the candidates are the cells of the (task, metric) readings with the best verdict there:
    readable and separable, else readable, else all. The rule is fixed in advance and the
    verdicts come from the references alone (ceilings, wrong sensor, floors), never from the
    objectives compared, so it chooses nothing in their favour; within the candidates the cell
    is chosen on validation as before.

    Args:
        summary: Output of :func:`~eo_mmcl.probe.survival.summarise`.
        verdicts: ``readable``, ``not separable`` or ``not readable`` per (task, metric).

    Returns:
        The rows of ``summary`` that the main table chooses from.
    """
    rank = {"readable": 0, "not separable": 1, "not readable": 2}
    level = pd.Series(
        [
            rank[verdicts.get((str(t), str(m)), "not readable")]
            for t, m in zip(summary["task"], summary["metric"], strict=True)
        ],
        index=summary.index,
    )
    best_level = level.groupby(summary["group"]).transform("min")
    return summary[level == best_level]


def main_table(
    table: pd.DataFrame, instrument: pd.DataFrame | None = None, depth: str | None = None
) -> MainTable:
    """Aggregate the tidy probe table into the main comparison.

    For each objective and group: among the cells of the group's best-verdict readings
    (:func:`measurable_cells`), the cell (task, metric, probe, depth) with the best mean
    validation survival, its mean and standard deviation over training seeds, its raw score,
    its change against the floor, and the instrument's verdict on its task.

    Args:
        table: The tidy probe table (``probes.parquet``).
        instrument: Its instrument table (computed from ``table`` when not given).
        depth: Only cells at this depth (``backbone`` or ``projection``); None: both.

    Returns:
        The main table.
    """
    instrument = instrument_table(table) if instrument is None else instrument
    summary = summarise(table)
    if depth is not None:
        summary = summary[summary["depth"] == depth]
    verdicts = instrument_verdicts(instrument)
    best = best_per_group(measurable_cells(summary, verdicts))
    best["status"] = [
        verdicts.get((str(t), str(m)), "not readable")
        for t, m in zip(best["task"], best["metric"], strict=True)
    ]
    order = objective_order(list(dict.fromkeys(table["objective"])))
    groups = [g for g in GROUPS if g in set(table["group"])]

    def pivot(column: str) -> pd.DataFrame:
        wide = best.pivot(index="objective", columns="group", values=column)
        return wide.reindex(index=[o for o in order if o in wide.index], columns=groups)

    return MainTable(
        best=best,
        survival=pivot("survival_mean"),
        survival_std=pivot("survival_std"),
        score=pivot("score_mean"),
        score_std=pivot("score_std"),
        vs_random=pivot("vs_random_mean"),
        seeds=pivot("n"),
        status=pivot("status"),
        groups=groups,
        instrument=instrument,
        table=table,
    )


@dataclass(frozen=True)
class PairedDifference:
    """``a`` minus ``b`` in survival, paired by training seed, each at its own shown cell.

    Args:
        a: First objective.
        b: Second objective.
        group: The group.
        mean: Mean paired difference.
        se: Its standard error (std of the differences / sqrt(n)).
        n: Training seeds both have.
    """

    a: str
    b: str
    group: str
    mean: float
    se: float
    n: int

    @property
    def significant(self) -> bool:
        """Whether the difference exceeds :data:`SIGNIFICANCE_SE` standard errors (n >= 2)."""
        return self.n >= 2 and np.isfinite(self.mean) and abs(self.mean) > SIGNIFICANCE_SE * self.se

    def describe(self) -> str:
        """``+0.31 ± 0.04 (SE, 3 training seeds)``."""
        se = f"{self.se:.2f}" if np.isfinite(self.se) else "n/a"
        return f"{self.mean:+.2f} ± {se} (SE, {self.n} training seeds)"


def shown_cell_per_seed(main: MainTable, objective: str, group: str) -> pd.Series:
    """Survival per training seed of the cell the main table shows for an objective and group.

    Args:
        main: The main table (its chosen cells and probe table).
        objective: The objective.
        group: The group.

    Returns:
        Survival indexed by ``train_seed`` (empty where the table shows no cell).
    """
    cells = main.best.set_index(["objective", "group"])
    if (objective, group) not in cells.index:
        return pd.Series(dtype=float)
    cell: Any = cells.loc[(objective, group)]
    seeds = per_train_seed(main.table)
    rows = seeds[
        (seeds["objective"] == objective)
        & (seeds["task"] == cell["task"])
        & (seeds["metric"] == cell["metric"])
        & (seeds["probe"] == cell["probe"])
        & (seeds["depth"] == cell["depth"])
    ]
    return rows.set_index("train_seed")["survival"]


def paired(a: pd.Series, b: pd.Series, names: tuple[str, str], group: str) -> PairedDifference:
    """``a - b`` over the training seeds both have.

    Args:
        a: Survival per training seed.
        b: Survival per training seed.
        names: What ``a`` and ``b`` are (objectives, or an objective at two depths).
        group: The group.

    Returns:
        The paired difference.
    """
    both = pd.concat([a, b], axis=1, join="inner").dropna()
    diff = (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy(dtype=float)
    n = int(diff.size)
    if n == 0:
        return PairedDifference(*names, group, float("nan"), float("nan"), 0)
    se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return PairedDifference(*names, group, float(diff.mean()), se, n)


def paired_difference(main: MainTable, a: str, b: str, group: str) -> PairedDifference:
    """The paired difference of two objectives' survival in one group of the main table.

    Args:
        main: The main table (its chosen cells and probe table).
        a: First objective.
        b: Second objective.
        group: The group.

    Returns:
        The difference ``a - b``.
    """
    return paired(
        shown_cell_per_seed(main, a, group), shown_cell_per_seed(main, b, group), (a, b), group
    )


def number_at(frame: pd.DataFrame, row: object, column: object) -> float:
    """One cell as a float (pandas' stubs type cells as any scalar)."""
    value: Any = frame.at[row, column]
    return float(value)


def depth_mains(table: pd.DataFrame, instrument: pd.DataFrame | None) -> dict[str, MainTable]:
    """The main table at each depth (backbone, projection).

    Args:
        table: The tidy probe table.
        instrument: Its instrument table (None: computed from ``table``).

    Returns:
        ``{depth: MainTable}``.
    """
    instrument = instrument_table(table) if instrument is None else instrument
    return {d: main_table(table, instrument, depth=d) for d in ("backbone", "projection")}


def depth_table(table: pd.DataFrame, instrument: pd.DataFrame | None = None) -> pd.DataFrame:
    """Survival per objective, group and depth (backbone vs projection space).

    Alignment acts on the projection; the backbone below it may still hold what the
    projection dropped. Each depth's cell is chosen on validation among that depth's cells.

    Args:
        table: The tidy probe table.
        instrument: Its instrument table (computed when not given).

    Returns:
        Objectives (with both depths) in rows; columns ``"<group> backbone"`` and
        ``"<group> projection"``; cells the mean survival over training seeds.
    """
    per_depth = depth_mains(table, instrument)
    summary = summarise(table)
    both = summary.groupby("objective")["depth"].nunique() > 1
    rows = [o for o in objective_order(list(dict.fromkeys(table["objective"]))) if both.get(o)]
    groups = [g for g in GROUPS if g in set(table["group"])]
    out = pd.DataFrame(index=pd.Index(rows, name="objective"))
    for group in groups:
        for depth, main in per_depth.items():
            out[f"{group} {depth}"] = [
                number_at(main.survival, o, group)
                if o in main.survival.index and group in main.survival
                else np.nan
                for o in rows
            ]
    return out
