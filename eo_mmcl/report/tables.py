"""The report's tables: survival per objective and group (best probe), raw scores, findings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from eo_mmcl.probes.embeddings import BAND_STATISTICS
from eo_mmcl.probes.survival import ORACLE, best_per_group, summarise
from eo_mmcl.probes.tasks import GROUP_NAMES, GROUPS

#: Rows that are neither trained objectives nor floors: learning-free references.
REFERENCES = (BAND_STATISTICS,)

#: Survival of a random-init floor above which a group cannot tell objectives apart.
HIGH_FLOOR = 0.8


@dataclass
class MainTable:
    """The main comparison, as numbers and as formatted cells.

    Args:
        best: One row per (objective, group): the best (task, probe, depth) by mean survival.
        survival: Objectives x groups, mean survival of ``best``.
        survival_std: Same shape, standard deviation over seeds.
        score: Objectives x groups, mean raw score of ``best``.
        score_std: Same shape.
        vs_random: Objectives x groups, mean survival_vs_random of ``best``.
        groups: Groups present, in report order.
    """

    best: pd.DataFrame
    survival: pd.DataFrame
    survival_std: pd.DataFrame
    score: pd.DataFrame
    score_std: pd.DataFrame
    vs_random: pd.DataFrame
    groups: list[str]


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


def main_table(table: pd.DataFrame) -> MainTable:
    """Aggregate the tidy probe table into the main comparison.

    For each objective and group: the (task, probe, depth) whose mean survival over seeds is
    highest, its mean and standard deviation, its raw score and its change against the floor.

    Args:
        table: The tidy probe table (``probes.parquet``).

    Returns:
        The main table.
    """
    best = best_per_group(summarise(table))
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
        groups=groups,
    )


#: How much lower a group's survival in the projection space must be than in the backbone
#: (beyond seed noise) for the findings to say that the aligned space dropped it.
DEPTH_GAP = 0.1


def depth_table(table: pd.DataFrame) -> pd.DataFrame:
    """Best mean survival per objective, group and depth (backbone vs projection space).

    Alignment acts on the projection; the backbone below it may still hold what the
    projection dropped. The main table takes the best depth, this one keeps them apart.

    Args:
        table: The tidy probe table.

    Returns:
        Objectives (with both depths) in rows; columns ``"<group> backbone"`` and
        ``"<group> projection"``; cells the best mean survival over (task, probe) at that depth.
    """
    summary = summarise(table)
    best = (
        summary.dropna(subset=["survival_mean"])
        .groupby(["objective", "group", "depth"])["survival_mean"]
        .max()
        .unstack(["group", "depth"])
    )
    groups = [g for g in GROUPS if g in set(table["group"])]
    columns = [(g, d) for g in groups for d in ("backbone", "projection") if (g, d) in best]
    both = summary.groupby("objective")["depth"].nunique() > 1
    rows = [o for o in objective_order(list(dict.fromkeys(table["objective"]))) if both.get(o)]
    out = best.reindex(index=rows, columns=pd.MultiIndex.from_tuples(columns))
    out.columns = [f"{g} {d}" for g, d in columns]
    out.index.name = "objective"
    return out


def depth_findings(depths: pd.DataFrame) -> list[str]:
    """Sentences where a trained objective's projection keeps clearly less than its backbone.

    Args:
        depths: Output of :func:`depth_table`.

    Returns:
        Sentences.
    """
    sentences = []
    for objective in trained_objectives(depths.index):
        for group in GROUPS:
            low, high = f"{group} projection", f"{group} backbone"
            if low not in depths or high not in depths:
                continue
            proj, back = _num(depths, objective, low), _num(depths, objective, high)
            if np.isfinite(proj) and np.isfinite(back) and back - proj > DEPTH_GAP:
                sentences.append(
                    f"{group} ({GROUP_NAMES.get(group, group)}): `{objective}`'s projection "
                    f"(aligned) space keeps {proj:.2f}, its backbone {back:.2f}: the loss's "
                    "space dropped what the layers below it still hold."
                )
    return sentences


def _num(frame: pd.DataFrame, row: object, column: object) -> float:
    """One cell as a float (pandas' stubs type cells as any scalar)."""
    value: Any = frame.at[row, column]
    return float(value)


def _cell(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.2f} ± {std:.2f}"


def format_main(main: MainTable, bold: str = "**") -> pd.DataFrame:
    """Formatted main table: survival ``mean ± std`` per group, raw scores, change vs floor.

    The best trained objective of each survival column is in bold.

    Args:
        main: The main table.
        bold: Markup around the best cell of each survival column (Markdown ``**``).

    Returns:
        A table of strings, objectives in rows.
    """
    out = pd.DataFrame(index=main.survival.index)
    trained = trained_objectives(main.survival.index)
    for group in main.groups:
        column = {str(o): _num(main.survival, o, group) for o in main.survival.index}
        finite = {o: column[o] for o in trained if np.isfinite(column[o])}
        best = max(finite, key=finite.__getitem__) if finite else None
        cells = []
        for objective in column:
            text = _cell(column[objective], _num(main.survival_std, objective, group))
            cells.append(f"{bold}{text}{bold}" if objective == best else text)
        out[f"{group} survival"] = cells
    for group in main.groups:
        out[f"{group} score"] = [
            _cell(_num(main.score, o, group), _num(main.score_std, o, group)) for o in out.index
        ]
    for group in main.groups:
        out[f"{group} vs random"] = [
            f"{v:+.2f}" if np.isfinite(v) else "n/a" for v in main.vs_random[group]
        ]
    out.index.name = "objective"
    return out


def best_choice_table(main: MainTable) -> pd.DataFrame:
    """Which task, probe and depth gave each cell of the main table."""
    best = main.best.copy()
    best["choice"] = best["task"] + " / " + best["probe"] + " / " + best["depth"]
    wide = best.pivot(index="objective", columns="group", values="choice")
    return wide.reindex(index=main.survival.index, columns=main.groups).fillna("")


def to_markdown(frame: pd.DataFrame) -> str:
    """A pipe table (pandas' ``to_markdown`` needs the optional ``tabulate``)."""
    header = [str(frame.index.name or ""), *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join([str(index), *map(str, row.tolist())]) + " |")
    return "\n".join(lines)


def findings(main: MainTable) -> list[str]:
    """One sentence per finding, generated from the numbers of the main table.

    Args:
        main: The main table.

    Returns:
        Sentences.
    """
    sentences: list[str] = []
    survival = main.survival
    objectives = [str(o) for o in survival.index]
    trained = trained_objectives(objectives)
    floors = [o for o in objectives if o.startswith("random-init")]
    for group in main.groups:
        column = {o: _num(survival, o, group) for o in trained}
        column = {o: v for o, v in column.items() if np.isfinite(v)}
        floor_values = [_num(survival, o, group) for o in floors]
        high = max([v for v in floor_values if np.isfinite(v)], default=-np.inf)
        if high >= HIGH_FLOOR:
            sentences.append(
                f"{group}: an untrained encoder already reaches survival {high:.2f}, so this "
                "group cannot tell the objectives apart."
            )
        if not column:
            sentences.append(
                f"{group} ({GROUP_NAMES.get(group, group)}): the supervised oracle is not above "
                "chance for the trained objectives' best probes, so survival is undefined."
            )
            continue
        best, worst = max(column, key=column.__getitem__), min(column, key=column.__getitem__)
        sentences.append(
            f"{group} ({GROUP_NAMES.get(group, group)}): `{best}` keeps the most "
            f"(survival {column[best]:.2f}), `{worst}` the least ({column[worst]:.2f})."
        )
        change = {o: _num(main.vs_random, o, group) for o in column}
        below = [o for o, v in change.items() if v < -0.05]
        if below:
            listed = ", ".join(f"`{o}` ({change[o]:+.2f})" for o in below)
            sentences.append(f"{group}: below the random-init floor after training: {listed}.")
    weak = weak_oracle_groups(main)
    for group, (objective, value) in weak.items():
        sentences.append(
            f"{group}: `{objective}` scores above the supervised oracle (survival {value:.2f}), "
            "so the oracle is no ceiling here (under-trained, or too few chips to learn the "
            "task): this group's survival ratios cannot be read as fractions kept."
        )
    targets = _target_sentences(main, trained)
    if weak:
        groups = ", ".join(weak)
        targets = [
            f"(not assessable: the oracle is below other rows in {groups}) {t}" for t in targets
        ]
    return sentences + targets


#: Survival above which a row beats the oracle beyond seed noise: the oracle is no ceiling.
ABOVE_ORACLE = 1.2


def weak_oracle_groups(main: MainTable) -> dict[str, tuple[str, float]]:
    """Groups where some non-oracle row's survival exceeds :data:`ABOVE_ORACLE`.

    Args:
        main: The main table.

    Returns:
        Group -> (the row with the highest survival, its survival).
    """
    weak = {}
    others = [str(o) for o in main.survival.index if o != ORACLE]
    for group in main.groups:
        values = {o: _num(main.survival, o, group) for o in others}
        values = {o: v for o, v in values.items() if np.isfinite(v)}
        if values:
            top = max(values, key=values.__getitem__)
            if values[top] > ABOVE_ORACLE:
                weak[group] = (top, values[top])
    return weak


def _target_sentences(main: MainTable, trained: list[str]) -> list[str]:
    """The targets of the product's answer, each checked against the numbers."""
    frame = main.survival
    groups = set(main.groups)

    def value(objective: str, group: str) -> float:
        return _num(frame, objective, group)

    out: list[str] = []
    if "clip" in frame.index and "R" in groups:
        r = value("clip", "R")
        out.append(f"Target `clip` R >= 0.9: {'met' if r >= 0.9 else 'missed'} (R {r:.2f}).")
    preserving = [o for o in ("cross_self", "decur", "comm", "coral") if o in trained]
    needed = {"R": 0.9, "U1": 0.8, "U2": 0.8}
    checked = [g for g in needed if g in groups]
    if not preserving or not checked:
        return out
    # The best of them: the one whose weakest group is strongest.
    best = max(preserving, key=lambda o: np.nan_to_num(min(value(o, g) for g in checked), nan=-9))
    values = ", ".join(f"{g} {value(best, g):.2f}" for g in checked)
    met = all(value(best, g) >= needed[g] for g in checked)
    out.append(
        "Target best unique-preserving objective R >= 0.9, U1 and U2 >= 0.8: "
        f"{'met' if met else 'missed'} by `{best}` ({values})."
    )
    if "clip" in frame.index:
        for group in ("U1", "U2", "S"):
            if group not in groups:
                continue
            gap = max(value(o, group) for o in preserving) - value("clip", group)
            text = (
                f"Best unique-preserving {group} survival minus `clip`'s: {gap:+.2f}"
                if np.isfinite(gap)
                else f"{group}: no finite survival to compare with `clip`"
            )
            if group == "S" and np.isfinite(gap):
                text += f" (target >= +0.10: {'met' if gap >= 0.1 else 'missed'})"
            out.append(text + ".")
    return out
