"""The report's generated sentences: what the instrument, the main table and the depths say.

Each sentence states only what a table supports: nothing on a group whose task is not readable,
no ranking on one that is not separable, and a difference between two objectives only where its
paired mean exceeds two standard errors ("not distinguishable" otherwise), with the theory's
prediction beside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eo_mmcl.probe.survival import ORACLE
from eo_mmcl.probe.tasks import GROUP_NAMES
from eo_mmcl.report.tables import (
    PRESERVING,
    REFERENCES,
    MainTable,
    PairedDifference,
    depth_mains,
    instrument_verdicts,
    number_at,
    paired,
    paired_difference,
    shown_cell_per_seed,
    trained_objectives,
)

#: What the theory predicts alignment (``clip``) does to each group, and the sources.
THEORY = {
    "R": "alignment keeps what both sensors share",
    "U1": "alignment drops what only the radar sees (Thoreau et al. 2025; Cai et al. 2025)",
    "U2": "alignment drops what only the optical sensor sees (Thoreau et al. 2025; Cai et al. "
    "2025)",
    "S": "alignment drops what only the two sensors together reveal (CoMM; COrAL)",
}


def instrument_findings(instrument: pd.DataFrame) -> list[str]:
    """One sentence per task and metric on what the instrument can read.

    Where a task's reading falls short but another reading of it does better, the sentence
    says which reading the main table uses instead (:func:`measurable_cells`).
    """
    rank = {"readable": 0, "not separable": 1, "not readable": 2}
    verdicts = instrument_verdicts(instrument)
    best: dict[str, list[str]] = {}
    for task in dict.fromkeys(instrument["task"].astype(str)):
        levels = {m: rank[v] for (t, m), v in verdicts.items() if t == task}
        best[task] = [m for m, level in levels.items() if level == min(levels.values())]
    sentences = []
    for row in instrument.itertuples():
        task, metric = str(row.task), str(row.metric)
        name = f"`{task}` ({row.group}, {GROUP_NAMES.get(str(row.group), row.group)}, {metric})"
        instead = (
            f"; the main table reads `{task}` through {' and '.join(best[task])} instead"
            if metric not in best[task]
            else ""
        )
        if not row.readable:
            sentences.append(
                f"{name}: not readable ({row.why})"
                + (instead or "; the report makes no claim on it")
                + "."
            )
        elif not row.separable:
            sentences.append(
                f"{name}: readable (ceiling {row.ceiling:.2f} against chance {row.chance:.2f}) "
                f"but not separable ({row.why}): it cannot rank objectives{instead}."
            )
        else:
            sentences.append(
                f"{name}: readable and separable (ceiling {row.ceiling:.2f}, set by "
                f"{row.ceiling_source}; chance {row.chance:.2f}; untrained network "
                f"{row.floor_survival:.2f})."
            )
    return sentences


#: Survival above which a row beats the ceiling beyond seed noise: the ceiling is no ceiling.
ABOVE_ORACLE = 1.2


def weak_oracle_groups(main: MainTable) -> dict[str, tuple[str, float]]:
    """Groups where some non-oracle row's survival exceeds :data:`ABOVE_ORACLE`.

    Args:
        main: The main table.

    Returns:
        Group -> (the row with the highest survival, its survival).
    """
    weak = {}
    others = [str(o) for o in main.survival.index if o not in (ORACLE, *REFERENCES)]
    for group in main.groups:
        values = {o: number_at(main.survival, o, group) for o in others}
        values = {o: v for o, v in values.items() if np.isfinite(v)}
        if values:
            top = max(values, key=values.__getitem__)
            if values[top] > ABOVE_ORACLE:
                weak[group] = (top, values[top])
    return weak


def _group_status(main: MainTable, group: str, objectives: list[str]) -> str:
    """The weakest verdict over the cells of ``objectives`` in ``group``."""
    values = [main.status.at[o, group] for o in objectives if o in main.status.index]
    statuses = [v for v in values if isinstance(v, str)]
    for status in ("not readable", "not separable"):
        if status in statuses:
            return status
    return "readable" if statuses else "not readable"


def comparison_sentences(main: MainTable, where: str = "") -> list[str]:
    """Per group: what ``clip`` kept and lost against each unique-preserving objective.

    Args:
        main: The main table (of both depths, or of one: ``where`` then names it).
        where: Words that say which cells are compared, e.g. ``" in the projection space"``.

    Returns:
        Sentences, with the theory's prediction beside each comparison.
    """
    sentences: list[str] = []
    objectives = [str(o) for o in main.survival.index]
    preserving = [o for o in PRESERVING if o in objectives]
    if "clip" not in objectives or not preserving:
        return sentences
    for group in main.groups:
        label = f"{group} ({GROUP_NAMES.get(group, group)}){where}"
        status = _group_status(main, group, ["clip", *preserving])
        if status == "not readable":
            sentences.append(f"{label}: not readable, no claim.")
            continue
        if status == "not separable":
            sentences.append(
                f"{label}: readable but not separable (an untrained network keeps nearly as "
                "much), so it cannot rank objectives."
            )
            continue
        for other in preserving:
            diff = paired_difference(main, other, "clip", group)
            if not np.isfinite(diff.mean):
                continue
            a, b = number_at(main.survival, other, group), number_at(main.survival, "clip", group)
            if not diff.significant:
                verdict = f"`{other}` and `clip` are not distinguishable ({a:.2f} against {b:.2f}"
            elif diff.mean > 0:
                verdict = f"`{other}` keeps more than `clip` ({a:.2f} against {b:.2f}"
            else:
                verdict = f"`clip` keeps more than `{other}` ({b:.2f} against {a:.2f}"
            sentences.append(
                f"{label}: {verdict}; paired difference {diff.describe()}). Theory: "
                f"{THEORY.get(group, '')}: {_against_theory(group, diff)}."
            )
    return sentences


def _against_theory(group: str, diff: PairedDifference) -> str:
    """How a paired difference (unique-preserving objective minus ``clip``) meets the theory.

    The theory predicts no difference on the shared group and a positive one elsewhere; a
    difference within its uncertainty neither confirms nor contradicts a predicted gap.
    """
    if group == "R":
        return "not as predicted" if diff.significant else "consistent with the prediction"
    if not diff.significant:
        return "not resolved at this precision (neither confirmed nor contradicted)"
    return "as predicted" if diff.mean > 0 else "against the prediction"


def floor_sentences(main: MainTable) -> list[str]:
    """Trained objectives that do not rise above their untrained floor, paired by seed."""
    sentences = []
    for objective in trained_objectives(main.survival.index):
        for group in main.groups:
            if main.status.at[objective, group] != "readable":
                continue
            floor_rows = main.table[main.table["objective"] == objective]["floor"]
            floor = str(floor_rows.iloc[0]) if len(floor_rows) else ""
            if not floor or floor not in main.survival.index:
                continue
            diff = paired_difference(main, objective, floor, group)
            if np.isfinite(diff.mean) and not (diff.significant and diff.mean > 0):
                sentences.append(
                    f"{group}: `{objective}` does not rise above its untrained floor "
                    f"`{floor}` (paired difference {diff.describe()})."
                )
    return sentences


def findings(main: MainTable) -> list[str]:
    """The generated findings: instrument, comparisons, floors, ceiling warnings, targets.

    Args:
        main: The main table.

    Returns:
        Sentences.
    """
    sentences = comparison_sentences(main) + floor_sentences(main)
    weak = weak_oracle_groups(main)
    for group, (objective, value) in weak.items():
        sentences.append(
            f"{group}: `{objective}` scores above the ceiling (survival {value:.2f}), "
            "so the ceiling is no ceiling here: this group's survival ratios cannot be read as "
            "fractions kept."
        )
    blocked = {g: "its ceiling is no ceiling" for g in weak}
    for group in main.groups:
        status = _group_status(main, group, list(main.survival.index))
        if status != "readable" and group not in blocked:
            blocked[group] = status
    return sentences + _target_sentences(main, trained_objectives(main.survival.index), blocked)


def _target_sentences(
    main: MainTable, trained: list[str], blocked: dict[str, str] | None = None
) -> list[str]:
    """The targets of the product's answer, each checked against the numbers.

    A target that involves a group the instrument cannot rank (``blocked``: group -> why) is
    "not assessable", with its numbers for reference only: never "met" or "missed".
    """
    frame = main.survival
    groups = set(main.groups)
    blocked = blocked or {}

    def value(objective: str, group: str) -> float:
        return number_at(frame, objective, group)

    def verdict(target: str, met: bool, involved: list[str], numbers: str) -> str:
        stopped = [g for g in involved if g in blocked]
        if stopped:
            why = "; ".join(f"{g} {blocked[g]}" for g in stopped)
            return f"Target {target}: not assessable ({why}); for reference {numbers}."
        return f"Target {target}: {'met' if met else 'missed'} ({numbers})."

    out: list[str] = []
    if "clip" in frame.index and "R" in groups:
        r = value("clip", "R")
        out.append(verdict("`clip` R >= 0.9", r >= 0.9, ["R"], f"`clip` R {r:.2f}"))
    preserving = [o for o in PRESERVING if o in trained]
    needed = {"R": 0.9, "U1": 0.8, "U2": 0.8}
    checked = [g for g in needed if g in groups]
    if not preserving or not checked:
        return out
    # The best of them: the one whose weakest group is strongest.
    best = max(preserving, key=lambda o: np.nan_to_num(min(value(o, g) for g in checked), nan=-9))
    values = ", ".join(f"{g} {value(best, g):.2f}" for g in checked)
    met = all(value(best, g) >= needed[g] for g in checked)
    out.append(
        verdict(
            "best unique-preserving objective R >= 0.9, U1 and U2 >= 0.8",
            met,
            checked,
            f"`{best}` {values}",
        )
    )
    return out


#: How much lower a group's survival in the projection space must be than in the backbone for
#: the findings to say that the aligned space dropped it (and beyond two paired standard
#: errors over the training seeds).
DEPTH_GAP = 0.1


def depth_findings(table: pd.DataFrame, instrument: pd.DataFrame | None = None) -> list[str]:
    """Sentences where a trained objective's projection keeps clearly less than its backbone.

    Clearly: the mean gap exceeds :data:`DEPTH_GAP` and the difference, paired by training
    seed (each depth at its own cell chosen on validation), exceeds two standard errors.

    Args:
        table: The tidy probe table.
        instrument: Its instrument table (computed when not given).

    Returns:
        Sentences.
    """
    per_depth = depth_mains(table, instrument)
    back, proj = per_depth["backbone"], per_depth["projection"]
    sentences = []
    objectives = set(back.survival.index) & set(proj.survival.index)
    for objective in trained_objectives(o for o in back.survival.index if o in objectives):
        for group in back.groups:
            diff = paired(
                shown_cell_per_seed(back, objective, group),
                shown_cell_per_seed(proj, objective, group),
                (f"{objective} backbone", f"{objective} projection"),
                group,
            )
            if diff.significant and diff.mean > DEPTH_GAP:
                b, p = (
                    number_at(back.survival, objective, group),
                    number_at(proj.survival, objective, group),
                )
                sentences.append(
                    f"{group} ({GROUP_NAMES.get(group, group)}): `{objective}`'s projection "
                    f"(aligned) space keeps {p:.2f}, its backbone {b:.2f} (paired difference "
                    f"{diff.describe()}): the loss's space dropped what the layers below it "
                    "still hold."
                )
    return sentences
