"""The report renders from a small probe run; every number of its table is the probe table's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from eo_mmcl.cli import app
from eo_mmcl.probes.tasks import GROUPS
from eo_mmcl.report import depth_findings, depth_table, findings, main_table


@pytest.fixture(scope="module")
def report_dir(probe_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(app, ["report", str(probe_run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _expected(table: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float, float, float]]:
    """Per objective and group, recomputed here from the tidy table.

    The best (task, probe, depth) by mean survival over seeds (ties: smaller std, then by name),
    and its survival mean and std,
    score mean and std.
    """
    stats = table.groupby(["objective", "group", "task", "probe", "depth"]).agg(
        s_mean=("survival", "mean"),
        s_std=("survival", "std"),
        c_mean=("score", "mean"),
        c_std=("score", "std"),
    )
    out = {}
    for (objective, group), rows in stats.dropna(subset=["s_mean"]).groupby(level=[0, 1]):
        ranked = rows.reset_index().sort_values(
            ["s_mean", "s_std", "task", "probe", "depth"],
            ascending=[False, True, True, True, True],
        )
        best = ranked.set_index(["objective", "group", "task", "probe", "depth"]).iloc[0]
        out[(objective, group)] = tuple(float(v) for v in best.fillna(0.0))
    return out


def _markdown_rows(text: str) -> dict[str, dict[str, str]]:
    lines = text.split("## Main table", 1)[1].strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
    return rows


def test_every_number_of_the_main_table_is_the_probe_tables(
    report_dir: Path, probe_run: Path
) -> None:
    table = pd.read_parquet(probe_run / "probes.parquet")
    rows = _markdown_rows((report_dir / "report.md").read_text())
    expected = _expected(table)
    assert set(rows) == set(table["objective"])
    checked = 0
    for objective, cells in rows.items():
        for group in GROUPS:
            survival, score = cells[f"{group} survival"], cells[f"{group} score"]
            if (objective, group) not in expected:
                assert survival == "n/a"
                continue
            s_mean, s_std, c_mean, c_std = expected[(objective, group)]
            numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", survival)]
            assert numbers == pytest.approx([round(s_mean, 2), round(s_std, 2)], abs=1e-9)
            numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", score)]
            assert numbers == pytest.approx([round(c_mean, 2), round(c_std, 2)], abs=1e-9)
            checked += 1
    assert checked >= 8


def test_best_trained_objective_is_bold(report_dir: Path, probe_run: Path) -> None:
    rows = _markdown_rows((report_dir / "report.md").read_text())
    main = main_table(pd.read_parquet(probe_run / "probes.parquet"))
    for group in main.groups:
        bold = [o for o, cells in rows.items() if cells[f"{group} survival"].startswith("**")]
        trained = main.survival.loc[["clip"], group]
        if trained.notna().any():
            assert bold == ["clip"]


def test_report_is_self_contained_with_plots_and_settings(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert not re.search(r'src="(?!data:)', html)  # nothing outside the file
    markdown = (report_dir / "report.md").read_text()
    for figure in re.findall(r"\]\((figures/[^)]+)\)", markdown):
        assert (report_dir / figure).stat().st_size > 1000
    for name in ("survival.png", "pca.png", "errors_s1_unique.png", "errors_s2_unique.png"):
        assert (report_dir / "figures" / name).exists()
    assert "## Settings" in markdown and "seeds: 2" in markdown
    assert "## Findings" in markdown


def test_findings_follow_the_numbers(probe_run: Path) -> None:
    table = pd.read_parquet(probe_run / "probes.parquet")
    main = main_table(table)
    sentences = findings(main)
    value = main.survival.loc["random-init", "R"]
    floor_sentence = any(
        "untrained encoder already reaches" in s and s.startswith("R:") for s in sentences
    )
    assert floor_sentence == (np.isfinite(value) and value >= 0.8)
    # Raising the floor's scores to the oracle's makes every group "cannot tell apart".
    boosted = table.copy()
    floor = boosted["objective"] == "random-init"
    boosted.loc[floor, "survival"] = 1.0
    assert sum("cannot tell" in s for s in findings(main_table(boosted))) == len(main.groups)


def test_report_of_a_missing_run_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "probes.parquet" in result.output


def test_targets_are_not_assessable_when_rows_beat_the_oracle(probe_run: Path) -> None:
    table = pd.read_parquet(probe_run / "probes.parquet")
    boosted = table.copy()
    boosted.loc[boosted["objective"] == "clip", "survival"] = 3.0
    sentences = findings(main_table(boosted))
    assert any("no ceiling" in s and "`clip`" in s for s in sentences)
    assert all(s.startswith("(not assessable") for s in sentences if "Target" in s)


def test_depth_table_keeps_backbone_and_projection_apart(probe_run: Path, report_dir: Path) -> None:
    table = pd.read_parquet(probe_run / "probes.parquet")
    depths = depth_table(table)
    assert "supervised" not in depths.index  # one depth only: nothing to compare
    clip = table[(table["objective"] == "clip") & (table["group"] == "U1")]
    per_cell = clip.groupby(["task", "probe", "depth"])["survival"].mean()
    for depth in ("backbone", "projection"):
        expected = per_cell.xs(depth, level="depth").max()
        assert depths.loc["clip", f"U1 {depth}"] == pytest.approx(expected)
    assert "## Backbone and projection space" in (report_dir / "report.md").read_text()
    # A projection that keeps far less than the backbone is named in the findings.
    dropped = table.copy()
    aligned = (dropped["objective"] == "clip") & (dropped["depth"] == "projection")
    lowered = depths.loc["clip", "U1 backbone"] - 0.5
    dropped.loc[aligned & (dropped["group"] == "U1"), "survival"] = lowered
    sentences = depth_findings(depth_table(dropped))
    assert any(s.startswith("U1") and "`clip`'s projection" in s for s in sentences)
