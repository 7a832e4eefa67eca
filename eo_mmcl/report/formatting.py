"""The report's tables as text: cells with their error bars and sample counts, pipe tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from eo_mmcl.report.tables import MainTable, number_at, trained_objectives


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
        column = {str(o): number_at(main.survival, o, group) for o in main.survival.index}
        finite = {
            o: column[o]
            for o in trained
            if np.isfinite(column[o]) and main.status.at[o, group] == "readable"
        }
        best = max(finite, key=finite.__getitem__) if finite else None
        cells = []
        for objective in column:
            text = _cell(column[objective], number_at(main.survival_std, objective, group))
            status = main.status.at[objective, group]
            if text != "n/a" and isinstance(status, str) and status != "readable":
                text += f" ({status})"
            cells.append(f"{bold}{text}{bold}" if objective == best else text)
        out[f"{group} survival"] = cells
    for group in main.groups:
        out[f"{group} score"] = [
            _cell(number_at(main.score, o, group), number_at(main.score_std, o, group))
            for o in out.index
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


def to_markdown(frame: pd.DataFrame) -> str:
    """A pipe table (pandas' ``to_markdown`` needs the optional ``tabulate``)."""
    header = [str(frame.index.name or ""), *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join([str(index), *map(str, row.tolist())]) + " |")
    return "\n".join(lines)
