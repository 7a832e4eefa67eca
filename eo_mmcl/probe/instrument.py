"""The instrument table: can each task be read at all, and can it tell objectives apart?

A survival ratio means something only where its ceiling and floor do. Per task (and metric),
the table gives the chance level; the ceiling (the better reference, see
:mod:`eo_mmcl.probe.survival`) and which reference set it; each reference's own score; the
truth ceiling (how well noise-free chips can be read at this chip size, for simulated scenes);
the wrong-sensor score (the best reading, chosen on validation, from the sensor that must not
see the task); and the
random-init floor's survival at the cell the report shows. From these:

- ``readable``: the ceiling covers most of the range above chance,
  ``(ceiling - chance) / (1 - chance)`` at least :data:`MIN_COVERAGE` of the group (0.6 for R,
  U1 and U2, 0.5 for S; with the chance mIoU for segmentation), no reference scores above the
  ceiling, and the wrong sensor is within :data:`WRONG_SENSOR_TOLERANCE` of chance;
- ``separable``: the untrained network's survival leaves room, at most :data:`MAX_FLOOR`, so
  that keeping and losing the information look different.

A task that is not readable supports no claim; one that is readable but not separable cannot
rank objectives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eo_mmcl.probe.embeddings import BAND_STATISTICS
from eo_mmcl.probe.survival import (
    ORACLE,
    best_per_group,
    ceilings,
    is_floor,
    reference_scores,
    summarise,
)

#: Smallest share of the range above chance the ceiling must cover, per information group.
MIN_COVERAGE = {"R": 0.6, "U1": 0.6, "U2": 0.6, "S": 0.5}
#: How far above chance the sensor that must not see a task may score.
WRONG_SENSOR_TOLERANCE = 0.05
#: Largest random-init survival that still leaves room to tell keeping from losing.
MAX_FLOOR = 0.7
#: The sensor that must not see each group's information (S: both alone; R: none).
WRONG_SENSORS = {"R": (), "U1": ("s2",), "U2": ("s1",), "S": ("s1", "s2")}

#: Columns of the instrument table, in order.
INSTRUMENT_COLUMNS = (
    "task", "group", "metric", "chance", "ceiling", "ceiling_source", "oracle", "band_stats",
    "truth_ceiling", "wrong_sensor_score", "floor_survival", "coverage", "readable",
    "separable", "why",
)  # fmt: skip


def _wrong_sensor_scores(table: pd.DataFrame) -> pd.Series:
    """The references' best reading of each task from the sensor that must not see it.

    Among the references' single-sensor rows on the wrong sensor(s), the (reference, probe,
    sensor) with the best mean validation score is chosen, and its mean test score returned:
    chosen on validation like every other cell (the largest of several test scores at chance
    would sit above chance by selection alone).
    """
    rows = table[table["objective"].isin([ORACLE, BAND_STATISTICS]) & (table["sensor"] != "joint")]
    if rows.empty:
        return pd.Series(dtype=float)
    wrong = rows[
        [s in WRONG_SENSORS.get(g, ()) for s, g in zip(rows["sensor"], rows["group"], strict=True)]
    ]
    means = (
        wrong.groupby(["task", "metric", "objective", "probe", "sensor"])[["score", "val_score"]]
        .mean()
        .reset_index()
        .sort_values(
            ["val_score", "objective", "probe", "sensor"], ascending=[False, True, True, True]
        )
    )
    best = means.groupby(["task", "metric"], sort=False).head(1)
    return best.set_index(["task", "metric"])["score"]


def _floor_survival(summary: pd.DataFrame) -> pd.Series:
    """The random-init floors' survival per task and metric at the cell chosen on validation.

    Each floor's cell within the task (probe and depth) is its best mean validation survival,
    as for every row of the report; the largest over floors is returned.
    """
    floors = summary[is_floor(summary["objective"])]
    if floors.empty:
        return pd.Series(dtype=float)
    # Per task and metric, as if each were its own group: the same choice rule as the report's.
    per_task = floors.assign(group=floors["task"] + "|" + floors["metric"])
    best = best_per_group(per_task)
    return best.groupby(["task", "metric"])["survival_mean"].max()


def instrument_table(table: pd.DataFrame, truth: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per task and metric: what the instrument can read (module docstring).

    Args:
        table: The tidy probe table (after :func:`~eo_mmcl.probe.survival.add_survival`).
        truth: Truth ceiling per task (chip-level balanced accuracy), where known.

    Returns:
        The table, columns :data:`INSTRUMENT_COLUMNS` (``why`` says what failed, if anything).
    """
    truth = truth or {}
    top = ceilings(table)
    refs = reference_scores(table).set_index(["task", "metric", "objective"])["score"]
    wrong = _wrong_sensor_scores(table)
    floor = _floor_survival(summarise(table))
    groups = table.groupby("task")["group"].first()
    chance = table.groupby(["task", "metric"])["chance"].mean()
    rows = []
    for key, ceiling_row in top.iterrows():
        task, metric = str(key[0]), str(key[1])  # type: ignore[index]
        group = str(groups[task])
        base = float(chance[(task, metric)])
        ceiling = float(ceiling_row["oracle"])
        own = {o: float(refs.get((task, metric, o), np.nan)) for o in (ORACLE, BAND_STATISTICS)}
        coverage = (ceiling - base) / (1 - base) if base < 1 else np.nan
        wrong_score = float(wrong.get((task, metric), np.nan))
        floor_value = float(floor.get((task, metric), np.nan))
        why = []
        needed = MIN_COVERAGE.get(group, 0.6)
        if not coverage >= needed:
            # Three digits: 0.4925 shown as 0.49, not as a 0.50 that seems to meet a 0.5 bar.
            why.append(
                f"ceiling covers {coverage:.3f} of the range above chance (needs {needed:.2f})"
            )
        if any(v > ceiling + 1e-12 for v in own.values() if np.isfinite(v)):
            why.append("a reference scores above the ceiling")
        if WRONG_SENSORS.get(group, ()):
            if not np.isfinite(wrong_score):
                why.append("no wrong-sensor score")
            elif wrong_score > base + WRONG_SENSOR_TOLERANCE:
                why.append(f"the wrong sensor reads it ({wrong_score:.2f})")
        readable = not why
        separable = readable and bool(np.isfinite(floor_value) and floor_value <= MAX_FLOOR)
        if readable and not separable:
            why.append(
                f"an untrained network keeps {floor_value:.2f}"
                if np.isfinite(floor_value)
                else "no random-init floor"
            )
        rows.append(
            {
                "task": task,
                "group": group,
                "metric": metric,
                "chance": base,
                "ceiling": ceiling,
                "ceiling_source": ceiling_row["ceiling_source"],
                "oracle": own[ORACLE],
                "band_stats": own[BAND_STATISTICS],
                "truth_ceiling": float(truth.get(task, np.nan))
                if metric == "balanced_accuracy"
                else np.nan,
                "wrong_sensor_score": wrong_score,
                "floor_survival": floor_value,
                "coverage": coverage,
                "readable": readable,
                "separable": separable,
                "why": "; ".join(why),
            }
        )
    out = pd.DataFrame(rows, columns=list(INSTRUMENT_COLUMNS))
    order = {g: i for i, g in enumerate(MIN_COVERAGE)}
    return out.sort_values(
        ["group", "task", "metric"], key=lambda c: c.map(order) if c.name == "group" else c
    ).reset_index(drop=True)
