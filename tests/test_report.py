"""The report renders from a small probe run; every number of its table is the probe table's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from eo_mmcl.cli import app
from eo_mmcl.probe.tasks import GROUPS
from eo_mmcl.report import depth_findings, depth_table, findings, main_table
from eo_mmcl.report.findings import instrument_findings


@pytest.fixture(scope="module")
def report_dir(probe_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(app, ["report", str(probe_run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _expected(table: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float, float, float]]:
    """Per objective and group, recomputed here from the tidy table.

    The cell (task, metric, probe, depth) with the best mean validation survival (ties: by
    name); its survival and score as mean and std over training seeds of the means over the
    probe seeds inside each.
    """
    joint = table[table["sensor"] == "joint"]
    cells = ["objective", "group", "task", "metric", "probe", "depth"]
    per_seed = joint.groupby([*cells, "train_seed"])[["survival", "score", "val_survival"]].mean()
    stats = per_seed.groupby(level=cells).agg(["mean", "std"])
    out = {}
    for (objective, group), rows in stats.groupby(level=[0, 1]):
        rows = rows.dropna(subset=[("val_survival", "mean"), ("survival", "mean")])
        if rows.empty:
            continue
        ranked = rows.reset_index().sort_values(
            [("val_survival", "mean"), "task", "metric", "probe", "depth"],
            ascending=[False, True, True, True, True],
        )
        best = ranked.iloc[0]
        values = [best[("survival", "mean")], best[("survival", "std")],
                  best[("score", "mean")], best[("score", "std")]]  # fmt: skip
        out[(objective, group)] = tuple(float(np.nan_to_num(v)) for v in values)
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
    # The tiny fixture's test splits leave some groups without a finite survival (a single
    # class, or a ceiling at chance): every cell that has one was compared above.
    assert checked == len(expected) >= 4


def test_best_trained_objective_is_bold_only_where_readable(
    report_dir: Path, probe_run: Path
) -> None:
    rows = _markdown_rows((report_dir / "report.md").read_text())
    main = main_table(pd.read_parquet(probe_run / "probes.parquet"))
    for group in main.groups:
        bold = [o for o, cells in rows.items() if cells[f"{group} survival"].startswith("**")]
        trained = main.survival.loc[["clip"], group]
        readable = main.status.loc["clip", group] == "readable"
        assert bold == (["clip"] if trained.notna().any() and readable else [])
        if not readable and trained.notna().any():
            assert f"({main.status.loc['clip', group]})" in rows["clip"][f"{group} survival"]


def test_report_is_self_contained_with_plots_and_settings(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert not re.search(r'src="(?!data:)', html)  # nothing outside the file
    markdown = (report_dir / "report.md").read_text()
    for figure in re.findall(r"\]\((figures/[^)]+)\)", markdown):
        assert (report_dir / figure).stat().st_size > 1000
    for name in ("survival.png", "pca.png", "errors_s1_unique.png", "errors_s2_unique.png"):
        assert (report_dir / "figures" / name).exists()
    assert "## Settings" in markdown and "probe seeds per training seed: 2" in markdown
    assert markdown.index("## Instrument") < markdown.index("## Main table")
    assert "## Findings" in markdown


def test_findings_follow_the_instrument(probe_run: Path, report_dir: Path) -> None:
    instrument = pd.read_parquet(probe_run / "instrument.parquet")
    markdown = (report_dir / "report.md").read_text()
    for sentence in instrument_findings(instrument):
        assert sentence in markdown
    table = pd.read_parquet(probe_run / "probes.parquet")
    # Making every task readable and separable lets the floor comparison speak: clip, trained
    # or not, does not rise above a floor boosted to the ceiling.
    boosted = table.copy()
    floor = boosted["objective"] == "random-init"
    boosted.loc[floor, "survival"] = 1.0
    open_instrument = instrument.assign(readable=True, separable=True)
    boosted_main = main_table(boosted, open_instrument)
    sentences = findings(boosted_main)
    measured = [g for g in boosted_main.groups if np.isfinite(boosted_main.survival.at["clip", g])]
    assert measured
    assert sum("does not rise above its untrained floor" in s for s in sentences) == len(measured)


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
    targets = [s for s in sentences if s.startswith("Target")]
    assert targets and all(": not assessable (" in s for s in targets)
    assert not any(": met" in s or ": missed" in s for s in targets)  # never both


def test_depth_table_keeps_backbone_and_projection_apart(probe_run: Path, report_dir: Path) -> None:
    table = pd.read_parquet(probe_run / "probes.parquet")
    depths = depth_table(table)
    assert "supervised" not in depths.index  # one depth only: nothing to compare
    for group in GROUPS:
        for depth in ("backbone", "projection"):
            rows = table[table["depth"] == depth]
            expected = _expected(rows).get(("clip", group), (np.nan,))[0]
            assert depths.loc["clip", f"{group} {depth}"] == pytest.approx(expected, nan_ok=True)
    assert "## Backbone and projection space" in (report_dir / "report.md").read_text()
    # A projection that keeps far less than the backbone, at every training seed, is named in
    # the findings; the fixture has one training seed, so a second is made by a small shift.
    second = table.assign(train_seed=1, survival=table["survival"] + 0.01)
    seeds = pd.concat([table, second], ignore_index=True)
    aligned = (seeds["objective"] == "clip") & (seeds["depth"] == "projection")
    # R is the group whose survival the tiny fixture measures at both depths.
    assert np.isfinite(depths.loc["clip", "R backbone"])
    assert np.isfinite(depths.loc["clip", "R projection"])
    dropped = seeds.copy()
    lowered = aligned & (dropped["group"] == "R")
    dropped.loc[lowered, "survival"] = depths.loc["clip", "R backbone"] - 0.5
    dropped.loc[lowered & (dropped["train_seed"] == 1), "survival"] -= 0.02
    sentences = depth_findings(dropped)
    assert any(s.startswith("R") and "`clip`'s projection" in s for s in sentences)
    # The same gap at one training seed only is within no known uncertainty: no claim.
    one_seed = dropped[dropped["train_seed"] == 0]
    assert not any(s.startswith("R") and "`clip`'s projection" in s
                   for s in depth_findings(one_seed))  # fmt: skip
    # A projection that keeps as much as the backbone is not named.
    raised = seeds.copy()
    raised.loc[aligned & (raised["group"] == "R"), "survival"] = depths.loc["clip", "R backbone"]
    sentences = depth_findings(raised)
    assert not any(s.startswith("R") and "`clip`'s projection" in s for s in sentences)


def test_confusion_matrices_name_every_class_even_absent_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eo_mmcl.report import plots

    kept: dict[str, object] = {}

    def keep(fig: object, path: Path) -> Path:
        kept["fig"] = fig
        return path

    monkeypatch.setattr(plots, "_save", keep)
    names = ["water", "forest", "cropland", "grassland", "built_up", "bare_soil"]
    predictions = pd.DataFrame(
        {"objective": ["clip"] * 4 + ["coral"] * 4, "task": "landcover", "probe": "linear",
         "depth": "backbone", "store_index": [0, 1, 2, 3] * 2,
         "y_true": [1, 2, 2, 3] * 2, "y_pred": [1, 2, 3, 3, 2, 2, 2, 3]}
    )  # fmt: skip
    plots.confusion_matrices(
        predictions, "landcover", "linear", "backbone", tmp_path / "c.png",
        num_classes=6, class_names=names,
    )  # fmt: skip
    axes = kept["fig"].axes  # type: ignore[attr-defined]
    for ax in axes:  # class 0 (absent from the test chips) included, by name, in every panel
        assert [t.get_text() for t in ax.get_xticklabels()] == names
        assert [t.get_text() for t in ax.get_yticklabels()] == names


def test_both_views_render_one_data_model_and_html_is_escaped(tmp_path: Path) -> None:
    from eo_mmcl.report.render import Block, _render

    blocks = [
        Block("h1", "Title"),
        Block("p", "a <script>alert(1)</script> and **bold** and `code`"),
        Block("list", ["one", "two"]),
        Block("table", pd.DataFrame({"col": ["x<y"]}, index=pd.Index(["row"], name="name"))),
    ]
    page = _render(blocks, tmp_path, "report.html.j2")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>bold</b>" in page and "<code>code</code>" in page and "x&lt;y" in page
    text = _render(blocks, tmp_path, "report.md.j2")
    assert text.startswith("# Title\n\na <script>") and "- one\n- two\n" in text
    assert "| name | col |" in text and text.endswith("\n")


def test_per_task_scores_carry_their_training_seed_count_and_spread() -> None:
    from eo_mmcl.report.render import score_table

    rows = [
        {"objective": "clip", "task": "landcover", "probe": "linear", "depth": "backbone",
         "sensor": "joint", "train_seed": t, "seed": s, "score": score}
        for t, pair in enumerate(([0.70, 0.80], [0.60, 0.70], [0.80, 0.90]))
        for s, score in enumerate(pair)
    ]  # fmt: skip
    cell = score_table(pd.DataFrame(rows)).loc["landcover / linear / backbone", "clip"]
    # Per training seed 0.75, 0.65, 0.85: mean 0.75, std 0.10 over 3 seeds (not over 6 rows).
    assert cell == "0.750 ± 0.100 (n=3)"
