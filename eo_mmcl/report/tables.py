"""The report's tables and generated sentences: instrument, main table, paired comparisons.

Every number here comes from the tidy probe table. The cell shown per objective and group is
chosen on validation (:func:`eo_mmcl.probes.survival.best_per_group`); error bars are standard
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

from eo_mmcl.probes.embeddings import BAND_STATISTICS
from eo_mmcl.probes.instrument import instrument_table
from eo_mmcl.probes.survival import ORACLE, best_per_group, per_train_seed, summarise
from eo_mmcl.probes.tasks import GROUP_NAMES, GROUPS

#: Rows that are neither trained objectives nor floors: learning-free references.
REFERENCES = (BAND_STATISTICS,)

#: Objectives built to keep unique and synergistic information (what ``clip`` is held against).
PRESERVING = ("cross_self", "decur", "comm", "coral")

#: What the theory predicts alignment (``clip``) does to each group, and the sources.
THEORY = {
    "R": "alignment keeps what both sensors share",
    "U1": "alignment drops what only the radar sees (Thoreau et al. 2025; Cai et al. 2025)",
    "U2": "alignment drops what only the optical sensor sees (Thoreau et al. 2025; Cai et al. "
    "2025)",
    "S": "alignment drops what only the two sensors together reveal (CoMM; COrAL)",
}

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


def _verdicts(instrument: pd.DataFrame) -> dict[tuple[str, str], str]:
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
        summary: Output of :func:`~eo_mmcl.probes.survival.summarise`.
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
    verdicts = _verdicts(instrument)
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

    The best trained objective of each survival column is in bold where the group is readable
    and separable; cells of a group that is not are marked ``(not readable)`` or
    ``(not separable)``. ``seeds`` is the number of training seeds behind the row's cells.

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
        finite = {
            o: column[o]
            for o in trained
            if np.isfinite(column[o]) and main.status.at[o, group] == "readable"
        }
        best = max(finite, key=finite.__getitem__) if finite else None
        cells = []
        for objective in column:
            text = _cell(column[objective], _num(main.survival_std, objective, group))
            status = main.status.at[objective, group]
            if text != "n/a" and isinstance(status, str) and status != "readable":
                text += f" ({status})"
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
    out["seeds"] = [
        str(int(np.nanmax(v))) if np.isfinite(v).any() else "0"
        for v in main.seeds.to_numpy(dtype=float)
    ]
    out.index.name = "objective"
    return out


def best_choice_table(main: MainTable) -> pd.DataFrame:
    """Which task, probe and depth each cell of the main table shows (chosen on validation)."""
    best = main.best.copy()
    best["choice"] = best["task"] + " / " + best["probe"] + " / " + best["depth"]
    wide = best.pivot(index="objective", columns="group", values="choice")
    return wide.reindex(index=main.survival.index, columns=main.groups).fillna("")


def format_instrument(instrument: pd.DataFrame) -> pd.DataFrame:
    """The instrument table as strings, one row per task and metric."""

    def number(value: object) -> str:
        return f"{float(value):.2f}" if np.isfinite(float(value)) else "n/a"  # type: ignore[arg-type]

    out = pd.DataFrame(
        {
            "group": instrument["group"],
            "metric": instrument["metric"],
            "chance": instrument["chance"].map(number),
            "ceiling": instrument["ceiling"].map(number),
            "set by": instrument["ceiling_source"],
            "oracle": instrument["oracle"].map(number),
            "band stats": instrument["band_stats"].map(number),
            "truth ceiling": instrument["truth_ceiling"].map(number),
            "wrong sensor": instrument["wrong_sensor_score"].map(number),
            "floor survival": instrument["floor_survival"].map(number),
            "readable": instrument["readable"].map({True: "yes", False: "**no**"}),
            "separable": instrument["separable"].map({True: "yes", False: "**no**"}),
            "why not": instrument["why"],
        }
    )
    out.index = instrument["task"].to_numpy()
    out.index.name = "task"
    return out


def instrument_findings(instrument: pd.DataFrame) -> list[str]:
    """One sentence per task and metric on what the instrument can read.

    Where a task's reading falls short but another reading of it does better, the sentence
    says which reading the main table uses instead (:func:`measurable_cells`).
    """
    rank = {"readable": 0, "not separable": 1, "not readable": 2}
    verdicts = _verdicts(instrument)
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
        values = {o: _num(main.survival, o, group) for o in others}
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
            a, b = _num(main.survival, other, group), _num(main.survival, "clip", group)
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
        return _num(frame, objective, group)

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


def _depth_mains(table: pd.DataFrame, instrument: pd.DataFrame | None) -> dict[str, MainTable]:
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
    per_depth = _depth_mains(table, instrument)
    summary = summarise(table)
    both = summary.groupby("objective")["depth"].nunique() > 1
    rows = [o for o in objective_order(list(dict.fromkeys(table["objective"]))) if both.get(o)]
    groups = [g for g in GROUPS if g in set(table["group"])]
    out = pd.DataFrame(index=pd.Index(rows, name="objective"))
    for group in groups:
        for depth, main in per_depth.items():
            out[f"{group} {depth}"] = [
                _num(main.survival, o, group)
                if o in main.survival.index and group in main.survival
                else np.nan
                for o in rows
            ]
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
    per_depth = _depth_mains(table, instrument)
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
                b, p = _num(back.survival, objective, group), _num(proj.survival, objective, group)
                sentences.append(
                    f"{group} ({GROUP_NAMES.get(group, group)}): `{objective}`'s projection "
                    f"(aligned) space keeps {p:.2f}, its backbone {b:.2f} (paired difference "
                    f"{diff.describe()}): the loss's space dropped what the layers below it "
                    "still hold."
                )
    return sentences


def to_markdown(frame: pd.DataFrame) -> str:
    """A pipe table (pandas' ``to_markdown`` needs the optional ``tabulate``)."""
    header = [str(frame.index.name or ""), *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join([str(index), *map(str, row.tolist())]) + " |")
    return "\n".join(lines)
