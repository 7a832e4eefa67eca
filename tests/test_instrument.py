"""The instrument table, cells chosen on validation, and comparisons paired by training seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from eo_mmcl.catalog import build_catalog, folder_source
from eo_mmcl.probe.instrument import MIN_COVERAGE, instrument_table
from eo_mmcl.probe.survival import add_survival
from eo_mmcl.probe.tasks import load_chip_labels
from eo_mmcl.probe.truth import truth_ceilings
from eo_mmcl.report.findings import comparison_sentences, findings, instrument_findings
from eo_mmcl.report.formatting import format_main
from eo_mmcl.report.tables import main_table, paired_difference
from eo_mmcl.simulate import SimulationConfig, simulate_scenes
from eo_mmcl.tile import TileConfig, tile_catalog

SEEDS = (0, 1, 2)
CHANCE = 0.5


def _row(objective: str, task: str, group: str, score: float, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "objective": objective, "floor": "", "task": task, "group": group, "probe": "linear",
        "depth": "backbone", "sensor": "joint", "seed": 0, "train_seed": 0,
        "metric": "balanced_accuracy", "score": score, "chance": CHANCE, "val_score": score,
        "val_chance": CHANCE,
    }  # fmt: skip
    base.update(extra)
    return base


def _table(
    objectives: dict[str, list[float]],
    group: str = "U2",
    task: str = "s2_unique",
    oracle: float = 0.95,
    wrong: float = 0.5,
    floor: float = 0.6,
) -> pd.DataFrame:
    """Seeded rows of one task: the references, a floor, and objectives (a score per seed)."""
    rows = []
    rng = np.random.default_rng(0)
    for t in SEEDS:
        noise = float(rng.normal(0, 0.002))
        rows.append(_row("supervised", task, group, oracle + noise, train_seed=t,
                         floor="random-init"))  # fmt: skip
        rows.append(_row("band-stats", task, group, oracle - 0.05, train_seed=t))
        for sensor in ("s1", "s2"):
            rows.append(_row("supervised", task, group, wrong, train_seed=t, sensor=sensor))
        rows.append(_row("random-init", task, group, floor, train_seed=t, floor="random-init"))
        for objective, scores in objectives.items():
            rows.append(_row(objective, task, group, scores[t], train_seed=t,
                             floor="random-init"))  # fmt: skip
    return add_survival(pd.DataFrame(rows))


def test_a_readable_task_and_an_unreadable_one() -> None:
    good = _table({"clip": [0.7, 0.7, 0.7]})
    row = instrument_table(good).iloc[0]
    assert row["readable"] and row["separable"]
    oracle = good[(good["objective"] == "supervised") & (good["sensor"] == "joint")]
    assert row["ceiling"] == pytest.approx(oracle["score"].mean())
    assert row["ceiling_source"] == "supervised (linear)"
    assert row["floor_survival"] == pytest.approx((0.6 - 0.5) / (row["ceiling"] - 0.5))
    # The wrong sensor reads the optical-only task: not readable, and the report says why.
    leaky = instrument_table(_table({"clip": [0.7] * 3}, wrong=0.62)).iloc[0]
    assert not leaky["readable"] and "wrong sensor" in leaky["why"]
    # A ceiling close to chance covers too little of the range.
    weak = instrument_table(_table({"clip": [0.6] * 3}, oracle=0.7, floor=0.55)).iloc[0]
    assert not weak["readable"]
    assert "covers 0.40" in weak["why"] and "of the range above chance (needs 0.60)" in weak["why"]
    # Readable, but an untrained network keeps nearly everything: not separable.
    high = instrument_table(_table({"clip": [0.9] * 3}, floor=0.9)).iloc[0]
    assert high["readable"] and not high["separable"]
    sentences = instrument_findings(instrument_table(_table({"clip": [0.7] * 3}, wrong=0.62)))
    assert "not readable" in sentences[0] and "no claim" in sentences[0]
    sentences = instrument_findings(instrument_table(_table({"clip": [0.9] * 3}, floor=0.9)))
    assert "cannot rank objectives" in sentences[0]


def test_the_report_makes_no_claim_on_an_unreadable_group() -> None:
    table = _table({"clip": [0.55] * 3, "coral": [0.9] * 3}, wrong=0.62)
    main = main_table(table)
    assert main.status.loc["coral", "U2"] == "not readable"
    assert "(not readable)" in format_main(main).loc["coral", "U2 survival"]
    sentences = comparison_sentences(main)
    assert sentences == ["U2 (optical-only): not readable, no claim."]
    assert not any("keeps more" in s for s in findings(main))


def test_paired_differences_consistent_and_noisy() -> None:
    consistent = main_table(_table({"clip": [0.60, 0.65, 0.70], "coral": [0.80, 0.86, 0.89]}))
    diff = paired_difference(consistent, "coral", "clip", "U2")
    assert diff.n == 3 and diff.mean > 0 and diff.significant
    sentence = comparison_sentences(consistent)[0]
    assert "`coral` keeps more than `clip`" in sentence and sentence.endswith(": as predicted.")
    # Same means, but the per-seed differences swing either way: not distinguishable.
    noisy = main_table(_table({"clip": [0.60, 0.90, 0.70], "coral": [0.92, 0.62, 0.89]}))
    diff = paired_difference(noisy, "coral", "clip", "U2")
    assert abs(diff.mean) < 2 * diff.se and not diff.significant
    sentence = comparison_sentences(noisy)[0]
    assert "not distinguishable" in sentence and "not resolved at this precision" in sentence
    assert "as predicted" not in sentence


def test_the_cell_shown_is_chosen_on_validation_not_test() -> None:
    table = _table({"clip": [0.7] * 3})
    extra = []
    for t in SEEDS:
        # The kNN cell is best on test but worse on validation: it must not be shown.
        extra.append(_row("clip", "s2_unique", "U2", 0.9, train_seed=t, probe="knn",
                          val_score=0.6, floor="random-init"))  # fmt: skip
    table = add_survival(pd.concat([table, pd.DataFrame(extra)], ignore_index=True))
    main = main_table(table)
    best = main.best.set_index("objective").loc["clip"]
    assert best["probe"] == "linear"
    assert main.survival.loc["clip", "U2"] == pytest.approx(
        (0.7 - 0.5) / (main.best.iloc[0]["oracle"] - 0.5)
    )


def test_a_group_is_read_through_its_separable_reading() -> None:
    """Two readings of one task: chips (not separable) and pixels (separable)."""
    chips = _table({"clip": [0.92] * 3, "coral": [0.93] * 3}, floor=0.9)
    pixels = _table({"clip": [0.6] * 3, "coral": [0.8] * 3}, floor=0.55)
    pixels = pixels.assign(metric="miou", probe="segmentation")
    table = add_survival(pd.concat([chips, pixels], ignore_index=True))
    verdicts = instrument_table(table).set_index("metric")
    assert not verdicts.loc["balanced_accuracy", "separable"]
    assert verdicts.loc["miou", "separable"]
    main = main_table(table)
    # clip's best validation cell is the chip reading (survival 0.93 against 0.22), but the
    # column reads the task through the pixel reading, where keeping and losing differ.
    assert set(main.best["metric"]) == {"miou"}
    assert main.status.loc["clip", "U2"] == "readable"
    assert "`coral` keeps more than `clip`" in comparison_sentences(main)[0]
    sentences = instrument_findings(instrument_table(table))
    assert "the main table reads `s2_unique` through miou instead" in sentences[0]
    assert "instead" not in sentences[1]
    # With only the chip reading, the same group cannot rank objectives.
    only_chips = main_table(chips)
    assert only_chips.status.loc["clip", "U2"] == "not separable"
    assert "cannot rank objectives" in comparison_sentences(only_chips)[0]


def test_error_bars_are_over_training_seeds_with_probe_seeds_inside() -> None:
    rows = []
    for t, per_seed in zip(SEEDS, ([0.7, 0.8], [0.6, 0.7], [0.8, 0.9]), strict=True):
        for s, score in enumerate(per_seed):
            rows.append(_row("clip", "s2_unique", "U2", score, train_seed=t, seed=s))
            rows.append(_row("supervised", "s2_unique", "U2", 1.0, train_seed=t, seed=s))
    main = main_table(add_survival(pd.DataFrame(rows)))
    per_train_seed = np.array([0.75, 0.65, 0.85])
    survival = (per_train_seed - 0.5) / 0.5
    assert main.survival.loc["clip", "U2"] == pytest.approx(survival.mean())
    assert main.survival_std.loc["clip", "U2"] == pytest.approx(survival.std(ddof=1))
    assert main.seeds.loc["clip", "U2"] == 3


def test_truth_ceiling_of_the_default_simulator_is_readable(tmp_path: Path) -> None:
    """At the simulator's defaults and the demo's chips, noise-free chips read every task.

    One 768 px scene (the demo's scene size) cut as the demo cuts it (32 px chips, 4-chip split
    blocks); the truth ceiling of the shared and unique tasks must cover the instrument's share
    of the range above chance. The synergy target is the XOR of the two unique attributes, so
    its noise-free reading inherits both of their errors (about the product of their
    accuracies): it is held to clearly above chance, 0.6 (measured 0.66 to 0.73 on one to four
    scenes; the instrument's readability rests on the oracle's ceiling, not on this estimate).
    """
    simulate_scenes(tmp_path / "scenes", SimulationConfig(size=768, seed=3))
    build_catalog([folder_source(tmp_path / "scenes")], tmp_path / "catalog")
    config = TileConfig(chip_size=32, split_block=4)
    tile_catalog(tmp_path / "catalog", tmp_path / "chips", config, workers=0)
    labels = load_chip_labels(tmp_path / "chips")
    truth = truth_ceilings(labels, tmp_path / "scenes")
    assert set(truth) == set(labels.tasks)
    for name, task in labels.tasks.items():
        chance = 1 / task.num_classes
        coverage = (truth[name] - chance) / (1 - chance)
        if task.group == "S":
            assert truth[name] >= 0.6, (name, truth[name])
        else:
            assert coverage >= MIN_COVERAGE[task.group], (name, truth[name])
    # Noise-free chips of a scene without signatures (an older sidecar) give no ceiling.
    for sidecar in (tmp_path / "scenes").glob("*_truth.json"):
        data = json.loads(sidecar.read_text())
        del data["parcels"]["s2_reflectance"]
        sidecar.write_text(json.dumps(data))
    assert truth_ceilings(labels, tmp_path / "scenes") == {}
