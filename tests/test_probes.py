"""Probes: known answers on synthetic embeddings, split hygiene, survival, the probe command."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

from eo_mmcl.cli import app
from eo_mmcl.errors import ConfigError, SourceError
from eo_mmcl.objectives import CLIPObjective, SupervisedObjective
from eo_mmcl.pipeline import load_pipeline_config
from eo_mmcl.probe import (
    ProbeConfig,
    add_survival,
    knn_probe,
    linear_probe,
    load_chip_labels,
    miou,
    miou_chance,
    parse_keys,
    run_probes,
    segmentation_knn_probe,
    segmentation_probe,
    survival_ratio,
)
from eo_mmcl.probe.embeddings import find_embedding_tables
from eo_mmcl.probe.segmentation import _pixel_features

SPLIT = np.array(["train"] * 120 + ["val"] * 40 + ["test"] * 40)


def _encoded(seed: int = 0, classes: int = 4, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings where the class is linearly encoded (well-separated class means)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=SPLIT.size)
    means = rng.normal(size=(classes, dim)) * 4
    return means[y] + rng.normal(size=(SPLIT.size, dim)), y


@pytest.mark.parametrize("probe", [linear_probe, knn_probe])
def test_probe_recovers_an_encoded_task_and_not_shuffled_labels(probe) -> None:
    x, y = _encoded()
    result = probe(x, y, SPLIT)
    assert result.score > 0.95
    assert result.chance == pytest.approx(0.25)
    shuffled = np.random.default_rng(1).permutation(y)
    scores = [
        probe(x, np.random.default_rng(s).permutation(shuffled), SPLIT).score for s in range(4)
    ]
    assert abs(np.mean(scores) - 0.25) < 0.1


def test_constant_embedding_scores_chance_and_survives_zero() -> None:
    _, y = _encoded()
    result = linear_probe(np.ones((SPLIT.size, 8)), y, SPLIT)
    assert result.score == pytest.approx(result.chance)
    assert survival_ratio(result.score, result.chance, 0.9) == pytest.approx(0.0)


def test_survival_of_the_oracle_is_one_and_floor_is_compared() -> None:
    rows = []
    for seed in range(3):
        for objective, score in (
            ("supervised", 0.8 + 0.01 * seed),
            ("clip", 0.5),
            ("random-init", 0.4),
        ):
            rows.append(
                dict(objective=objective, floor="random-init", task="t", group="R", probe="linear",
                     depth="backbone", seed=seed, score=score, chance=0.25)
            )  # fmt: skip
    table = add_survival(pd.DataFrame(rows))
    oracle = table[table["objective"] == "supervised"]
    assert oracle["survival"].mean() == pytest.approx(1.0)
    clip = table[table["objective"] == "clip"].iloc[0]
    assert clip["survival"] == pytest.approx((0.5 - 0.25) / (0.81 - 0.25))
    assert clip["survival_vs_random"] == pytest.approx((0.5 - 0.4) / (0.81 - 0.25))
    with pytest.raises(ConfigError, match="supervised"):
        add_survival(pd.DataFrame([r for r in rows if r["objective"] != "supervised"]))


def test_ceiling_is_the_oracles_best_probe_and_noise_is_not_divided() -> None:
    rows = []
    for seed in range(2):
        for objective, probe, metric, task, score in (
            ("supervised", "linear", "balanced_accuracy", "t", 0.8),
            ("supervised", "knn", "balanced_accuracy", "t", 0.5),
            ("clip", "knn", "balanced_accuracy", "t", 0.5),
            ("supervised", "segmentation", "miou", "t", 0.27),  # 0.02 above chance: noise
            ("clip", "segmentation", "miou", "t", 0.30),
        ):
            rows.append(
                dict(objective=objective, floor="", task=task, group="R", probe=probe,
                     depth="backbone", seed=seed, metric=metric, score=score, chance=0.25)
            )  # fmt: skip
    table = add_survival(pd.DataFrame(rows))
    knn = table[(table["objective"] == "clip") & (table["probe"] == "knn")]
    # Against the oracle's best balanced accuracy (linear, 0.8), not its weak kNN (0.5).
    assert knn["survival"].iloc[0] == pytest.approx((0.5 - 0.25) / (0.8 - 0.25))
    assert knn["oracle"].iloc[0] == pytest.approx(0.8)
    segmentation = table[table["probe"] == "segmentation"]
    assert segmentation["survival"].isna().all()


def test_multilabel_probe_scores_map_against_prevalence() -> None:
    x, y = _encoded()
    multi = np.stack([y == 0, y == 1, (y == 2) | (y == 3)], axis=1).astype(np.uint8)
    result = linear_probe(x, multi, SPLIT)
    assert result.metric == "map"
    assert result.score > 0.95
    assert 0.2 < result.chance < 0.6


def test_probes_never_fit_on_test_chips_and_choose_on_validation(monkeypatch) -> None:
    x, y = _encoded()
    x = np.concatenate([x, np.where(SPLIT == "test", 1000.0, 0.0)[:, None]], axis=1)
    fitted: list[np.ndarray] = []
    original = Pipeline.fit

    def spy(self, data, *args, **kwargs):
        fitted.append(np.asarray(data))
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "fit", spy)
    first = linear_probe(x, y, SPLIT)
    knn = knn_probe(x, y, SPLIT)
    assert fitted and all(f[:, -1].max() < 1000 for f in fitted)
    # Test labels cannot move the choice: same C / k and validation score with scrambled ones.
    scrambled = y.copy()
    scrambled[SPLIT == "test"] = np.random.default_rng(3).permutation(y[SPLIT == "test"])
    assert linear_probe(x, scrambled, SPLIT).param == first.param
    assert knn_probe(x, scrambled, SPLIT).val_score == knn.val_score
    # Validation labels do: a validation split of pure noise picks by noise, not by signal.
    noisy = y.copy()
    noisy[SPLIT == "val"] = np.random.default_rng(4).permutation(y[SPLIT == "val"])
    assert linear_probe(x, noisy, SPLIT).val_score < first.val_score


def test_pixel_features_match_bilinear_upsampling() -> None:
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(3, 5, 2, 2)).astype(np.float32)
    labels = rng.integers(0, 3, size=(3, 16, 16)).astype(np.uint8)
    feats, classes, weights = _pixel_features(dense, labels, 256, rng)
    up = F.interpolate(torch.from_numpy(dense), size=(16, 16), mode="bilinear", align_corners=False)
    pixels = up.permute(0, 2, 3, 1).reshape(-1, 5).numpy()
    # Every sampled feature is one of the upsampled pixels' features; weights count pixels.
    distance = ((feats[:, None, :] - pixels[None]) ** 2).sum(-1).min(1)
    assert distance.max() < 1e-8
    assert weights.sum() == labels.size
    assert set(classes) <= {0, 1, 2}


def test_segmentation_head_recovers_pixel_classes_from_feature_maps() -> None:
    rng = np.random.default_rng(0)
    n, classes = SPLIT.size, 3
    # Each chip's left and right halves have their own class; the 1x2 feature map encodes them.
    left, right = rng.integers(0, classes, n), rng.integers(0, classes, n)
    labels = np.zeros((n, 8, 8), dtype=np.uint8)
    labels[:, :, :4] = left[:, None, None]
    labels[:, :, 4:] = right[:, None, None]
    labels[:, 0, 0] = 255  # unlabelled pixels are ignored
    eye = np.eye(classes, dtype=np.float32) * 3
    dense = np.stack([eye[left], eye[right]], axis=-1)[:, :, None, :]  # (N, C, 1, 2)
    dense += rng.normal(scale=0.1, size=dense.shape).astype(np.float32)
    result = segmentation_probe(dense, labels, SPLIT, classes)
    assert result.metric == "miou"
    assert result.score > 0.6
    assert result.y_pred.shape == (40, 8, 8)
    shuffled = segmentation_probe(dense[rng.permutation(n)], labels, SPLIT, classes)
    assert shuffled.score < result.chance + 0.15


def test_segmentation_knn_head_reads_a_per_pixel_xor_that_no_linear_head_can() -> None:
    rng = np.random.default_rng(0)
    n = SPLIT.size
    # Per chip, one binary attribute per "sensor" in its own channels (a dual encoder's
    # concatenated map); the pixel class is their XOR, as in the synergy task.
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    labels = np.repeat((a ^ b).astype(np.uint8), 64).reshape(n, 8, 8)
    labels[:, 0, 0] = 255
    dense = np.stack([a, 1 - a, b, 1 - b], axis=1).astype(np.float32)[:, :, None, None] * 3
    dense += rng.normal(scale=0.3, size=dense.shape).astype(np.float32)  # (N, 4, 1, 1)
    knn = segmentation_knn_probe(dense, labels, SPLIT, 2)
    linear = segmentation_probe(dense, labels, SPLIT, 2)
    assert knn.metric == "miou" and knn.y_pred.shape == (40, 8, 8)
    assert knn.score > 0.7
    assert linear.score < linear.chance + 0.15
    shuffled = segmentation_knn_probe(dense[rng.permutation(n)], labels, SPLIT, 2)
    assert shuffled.score < shuffled.chance + 0.15


def test_miou_and_its_chance() -> None:
    truth = np.array([0, 0, 1, 1, 255])
    assert miou(truth, np.array([0, 0, 1, 1, 0]), 2) == pytest.approx(1.0)
    assert miou(truth, np.array([0, 1, 1, 1, 0]), 2) == pytest.approx((0.5 + 2 / 3) / 2)
    rng = np.random.default_rng(0)
    big = rng.integers(0, 3, 60000)
    random_pred = rng.integers(0, 3, 60000)
    assert miou(big, random_pred, 3) == pytest.approx(miou_chance(big, 3), abs=0.01)


def test_parse_keys() -> None:
    assert parse_keys(["projection=proj_s1", "coral:backbone=shared"]) == {
        "*": {"projection": "proj_s1"},
        "coral": {"backbone": "shared"},
    }
    with pytest.raises(ConfigError, match="DEPTH"):
        parse_keys(["middle=x"])


# -- on a chip store, from checkpoints (fixtures probe_chips_dir and probe_run: conftest.py) ----


def test_probe_command_writes_the_tidy_table(probe_run: Path, probe_chips_dir: Path) -> None:
    table = pd.read_parquet(probe_run / "probes.parquet")
    csv = pd.read_csv(probe_run / "probes.csv")
    assert len(csv) == len(table)
    for column in ("objective", "train_seed", "task", "group", "probe", "depth", "sensor", "seed",
                   "score", "chance", "survival", "survival_vs_random", "ceiling_source",
                   "val_score", "val_chance", "val_survival"):  # fmt: skip
        assert column in table
    assert set(table["objective"]) == {"supervised", "clip", "random-init", "band-stats"}
    assert set(table["group"]) == {"R", "U1", "U2", "S"}
    assert set(table["probe"]) == {"linear", "knn", "segmentation", "segmentation_knn"}
    assert set(table[table["objective"] == "clip"]["depth"]) == {"backbone", "projection"}
    assert set(table["seed"]) == {0, 1}
    # The reference (and probe) named by `ceiling_source` scores the ceiling: survival 1 there.
    joint = table[table["sensor"] == "joint"]
    for (task, metric), rows in joint.dropna(subset=["survival"]).groupby(["task", "metric"]):
        source = rows["ceiling_source"].iloc[0]
        objective, probe = source.split(" (")[0], source.split(" (")[1].rstrip(")")
        own = rows[(rows["objective"] == objective) & (rows["probe"] == probe)]
        own = own[own["depth"] == "backbone"]
        assert own["survival"].mean() == pytest.approx(1.0), (task, metric, source)
    # The references are also probed on each sensor alone (the wrong-sensor check).
    single = table[table["sensor"] != "joint"]
    assert set(single["objective"]) == {"supervised", "band-stats"}
    assert set(single["sensor"]) == {"s1", "s2"}
    instrument = pd.read_parquet(probe_run / "instrument.parquet")
    assert set(instrument["task"]) == set(table["task"])
    for column in ("task", "group", "chance", "ceiling", "ceiling_source", "oracle",
                   "band_stats", "truth_ceiling", "wrong_sensor_score", "floor_survival",
                   "readable", "separable"):  # fmt: skip
        assert column in instrument
    floor = table[table["objective"] == "random-init"]
    assert np.allclose(floor["survival_vs_random"].dropna(), 0.0)
    labels = load_chip_labels(probe_chips_dir)
    assert (table["n_test"] == (labels.split == "test").sum()).all()
    # Embedding tables of the per-chip GeoParquet kind come back in through --embeddings.
    assert (probe_run / "embeddings" / "clip__projection.parquet").exists()


def test_probe_fingerprint_follows_contents_not_times(tmp_path: Path) -> None:
    from eo_mmcl.probe.run import _fingerprint

    chips = tmp_path / "chips"
    chips.mkdir()
    (chips / "tile_manifest.json").write_text("{}")
    ckpt = tmp_path / "a.ckpt"
    ckpt.write_bytes(b"weights")
    config = ProbeConfig(seeds=1, probes=("linear",))
    first = _fingerprint(chips, [ckpt], None, config)
    os.utime(ckpt, ns=(1, 1))
    assert _fingerprint(chips, [ckpt], None, config) == first
    ckpt.write_bytes(b"other weights")
    assert _fingerprint(chips, [ckpt], None, config) != first


def test_probe_rerun_is_a_no_op_and_embeddings_round_trip(
    probe_run: Path, probe_chips_dir: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    ckpts = pd.read_parquet(probe_run / "probes.parquet")["checkpoint"].unique()
    ckpts = [c for c in ckpts if c.endswith(".ckpt")]
    # A touched checkpoint (new modification time, same bytes) is not a changed input.
    for c in ckpts:
        os.utime(c, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = runner.invoke(
        app,
        ["probe", "--chips", str(probe_chips_dir), "-o", str(probe_run), "--seeds", "2",
         *[a for c in ckpts for a in ("--checkpoint", c)]],
    )  # fmt: skip
    assert again.exit_code == 0 and "nothing to do" in again.output
    emb = tmp_path / "emb"
    emb.mkdir()
    source = probe_run / "embeddings" / "clip__backbone.parquet"
    (emb / "exported__backbone.parquet").write_bytes(source.read_bytes())
    # The name `eo-mmcl embed` gives its chip tables, one folder down (the embed stage's layout).
    (emb / "cross_self").mkdir()
    (emb / "cross_self" / "chips_cross_self_joint.parquet").write_bytes(source.read_bytes())
    sup = [c for c in ckpts if "supervised" in c]
    run = run_probes(
        probe_chips_dir,
        sup,
        tmp_path / "p",
        ProbeConfig(seeds=1, probes=("linear",)),
        embeddings_dir=emb,
    )
    exported = run.table[run.table["objective"] == "exported (table)"]
    original = pd.read_parquet(probe_run / "probes.parquet")
    original = original[
        (original["objective"] == "clip")
        & (original["probe"] == "linear")
        & (original["depth"] == "backbone")
        & (original["seed"] == 0)
    ]
    assert np.allclose(
        exported.sort_values("task")["score"].to_numpy(),
        original.sort_values("task")["score"].to_numpy(),
    )
    from_embed = run.table[run.table["objective"] == "cross_self:joint (table)"]
    assert set(from_embed["depth"]) == {"backbone"}
    assert np.allclose(
        from_embed.sort_values("task")["score"].to_numpy(),
        original.sort_values("task")["score"].to_numpy(),
    )


def test_export_and_probes_embed_chips_through_one_loop_into_one_table_format(
    probe_run: Path, probe_chips_dir: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from eo_mmcl.embed.chips import chip_embeddings
    from eo_mmcl.embed.model import EmbeddingModel

    clip = next(
        c
        for c in pd.read_parquet(probe_run / "probes.parquet")["checkpoint"].unique()
        if c.endswith("clip.ckpt")
    )
    exported = tmp_path / "chips_clip_joint.parquet"
    chip_embeddings(EmbeddingModel.load(clip), probe_chips_dir, ["joint"], {"joint": exported})
    probed = probe_run / "embeddings" / "clip__backbone.parquet"  # the probes' key: joint
    assert pq.read_schema(exported).remove_metadata() == pq.read_schema(probed).remove_metadata()
    a, b = (pd.read_parquet(p).set_index("store_index") for p in (exported, probed))
    assert len(a) == len(b) > 0 and set(a.index) == set(b.index)
    # The same weights on the same chips through the same predict loop: equal to the bit.
    assert np.array_equal(np.stack(a["embedding"]), np.stack(b.loc[a.index, "embedding"]))


def test_embeddings_folder_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        find_embedding_tables(tmp_path / "missing")
    with pytest.raises(SourceError, match="no embedding table"):
        find_embedding_tables(tmp_path)
    (tmp_path / "clip__deep.parquet").write_bytes(b"")
    with pytest.raises(SourceError, match=r"clip__deep\.parquet.*depth"):
        find_embedding_tables(tmp_path)


def test_probe_bad_input_exits_2_with_one_line(probe_chips_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        app, ["probe", "--chips", str(probe_chips_dir), "--checkpoint", str(tmp_path / "x.ckpt")]
    )
    assert missing.exit_code == 2
    assert "x.ckpt" in missing.output and "not found" in missing.output
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    bad = runner.invoke(app, ["probe", "--chips", str(probe_chips_dir), "--checkpoint", str(bogus)])
    assert bad.exit_code == 2 and "bogus.ckpt" in bad.output
    nostore = runner.invoke(app, ["probe", "--chips", str(tmp_path), "--checkpoint", str(bogus)])
    assert nostore.exit_code == 2 and "chip store" in nostore.output


def test_study_rejects_bad_knobs_and_values(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_knob = runner.invoke(app, ["study", "misalignment", "-o", str(tmp_path), "--knob", "fog"])
    assert bad_knob.exit_code == 2 and "fog" in bad_knob.output
    bad_values = runner.invoke(app, ["study", "misalignment", "-o", str(tmp_path), "--values", "2"])
    assert bad_values.exit_code == 2 and "[0, 1]" in bad_values.output


def test_study_builds_each_value_from_the_base_pipeline(tmp_path: Path) -> None:
    from eo_mmcl.pipeline.study import StudyConfig

    repo = Path(__file__).resolve().parents[1]
    config = StudyConfig(knob="change-fraction", values=(0.2,), epochs=3, seeds=2, scenes=1)
    pipeline = config.pipeline_for(0.2, tmp_path / "v")
    demo = load_pipeline_config(repo / "pipelines" / "demo.yaml")
    assert pipeline.simulate is not None and demo.simulate is not None
    assert pipeline.simulate.change_fraction == 0.2 and pipeline.simulate.scenes == 1
    assert pipeline.simulate.size == demo.simulate.size  # not overridden: the base's
    assert pipeline.train.max_epochs == 3 and pipeline.probe.config.seeds == 2
    assert pipeline.train.args == demo.train.args  # the demo's backbone, unchanged
    assert pipeline.train.objectives[0] == "supervised"
    assert pipeline.stages == ["simulate", "catalog", "tile", "train", "probe"]
    assert pipeline.run_dir == tmp_path / "v"
    with pytest.raises(ConfigError, match=r"train\.max_epochs"):
        StudyConfig(epochs=0).pipeline_for(0.0, tmp_path / "w")


@pytest.mark.slow
def test_misalignment_study_sweeps_a_knob(tmp_path: Path) -> None:
    from eo_mmcl.pipeline.study import StudyConfig, run_misalignment_study

    repo = Path(__file__).resolve().parents[1]
    tree = yaml.safe_load((repo / "tests" / "conf" / "pipeline_tiny.yaml").read_text())
    tree["train"]["configs"] = str(repo / "pipelines" / "configs")
    tree["probe"] = {"config": {"probes": ["linear"]}}
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(tree))
    config = StudyConfig(
        knob="cloud-fraction", values=(0.0, 0.4), pipeline=base, objectives=("clip",), seeds=1
    )
    table = run_misalignment_study(tmp_path / "study", config)
    assert set(table["value"]) == {0.0, 0.4}
    assert {"supervised", "clip", "random-init"} <= set(table["objective"])
    assert (tmp_path / "study" / "study.png").stat().st_size > 1000
    assert (tmp_path / "study" / "study.parquet").exists()
    # Each value is a pipeline run folder with manifests: a second study call redoes nothing.
    manifest = tmp_path / "study" / "cloud-fraction=0.4" / "train" / "stage_manifest.json"
    before = manifest.stat().st_mtime_ns
    run_misalignment_study(tmp_path / "study", config)
    assert manifest.stat().st_mtime_ns == before


@pytest.mark.realdata
def test_bigearthnet_multilabel_task_is_probed_with_map(realdata: Path, tmp_path: Path) -> None:
    from eo_mmcl.tile.bigearthnet import convert_bigearthnet
    from tests.conftest import _checkpoint

    chips = tmp_path / "ben"
    convert_bigearthnet(realdata / "bigearthnet_v2_sample", chips)
    labels = load_chip_labels(chips)
    assert labels.tasks["bigearthnet19"].group == "R"
    assert labels.tasks["bigearthnet19"].kind == "multilabel"
    tiny = {"proj_dim": 8, "proj_hidden_dim": 16}
    sup = SupervisedObjective(
        num_classes={"bigearthnet19": 19}, multilabel=["bigearthnet19"], **tiny
    )
    paths = [
        _checkpoint(sup, tmp_path / "sup.ckpt", chips),
        _checkpoint(CLIPObjective(**tiny), tmp_path / "clip.ckpt", chips),
    ]
    run = run_probes(chips, paths, tmp_path / "p", ProbeConfig(seeds=1, probes=("linear", "knn")))
    table = run.table
    assert set(table["metric"]) == {"map"}
    assert set(table["group"]) == {"R"}
    # The chance of mAP is the mean test prevalence of the scored classes.
    test = labels.chip["bigearthnet19"][labels.split == "test"]
    scored = test.sum(0) > 0
    assert np.allclose(table["chance"], test[:, scored].mean())
    assert table["score"].between(0, 1).all()


def test_a_single_train_class_gives_the_constant_prediction() -> None:
    x, y = _encoded()
    y = y.copy()
    y[SPLIT == "train"] = 2
    result = linear_probe(x, y, SPLIT)
    assert (result.y_pred == 2).all()
    assert result.score == pytest.approx(result.chance)
    labels = np.full((SPLIT.size, 4, 4), 1, dtype=np.uint8)
    labels[SPLIT == "test", :, :2] = 0
    seg = segmentation_probe(np.ones((SPLIT.size, 3, 1, 1), np.float32), labels, SPLIT, 2)
    assert (seg.y_pred == 1).all() and seg.score == pytest.approx(0.5 * 0.5)


PROBE_KILLER = """
import os, signal, sys
from eo_mmcl.io import jobs
from eo_mmcl.cli import app

real, written = jobs.mark_done, []

def mark_then_die(folder, job_id, result):
    real(folder, job_id, result)
    written.append(job_id)
    if len(written) == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all, as a real kill

jobs.mark_done = mark_then_die
app(args=sys.argv[2:])
"""


def test_a_probe_run_killed_after_its_checkpoints_resumes_to_the_same_bytes(
    probe_run: Path, probe_chips_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed once both checkpoints are probed, a rerun replays them and probes the rest."""
    import json
    import signal
    import subprocess
    import sys

    out = tmp_path / "probes"
    args = ["probe", "--chips", str(probe_chips_dir), "-o", str(out), "--seeds", "2",
            "--checkpoint", str(probe_run.parent / "supervised.ckpt"),
            "--checkpoint", str(probe_run.parent / "clip.ckpt")]  # fmt: skip
    killed = subprocess.run([sys.executable, "-c", PROBE_KILLER, "2", *args], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert not (out / "probes.parquet").exists()
    done = sorted(p.name for p in (out / ".probe" / "jobs").glob("*.json"))
    assert done == ["checkpoint-000.json", "checkpoint-001.json"]
    from eo_mmcl.probe import run as probe_module

    embedded: list[str] = []
    real = probe_module.extract_embeddings

    def counted(task, *rest, **kwargs):  # type: ignore[no-untyped-def]
        embedded.append(task.objective)
        return real(task, *rest, **kwargs)

    monkeypatch.setattr(probe_module, "extract_embeddings", counted)
    resumed = CliRunner().invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert embedded == []  # both checkpoints replayed from their markers, not embedded again
    assert not (out / ".probe").exists()
    files = sorted(p.relative_to(probe_run) for p in probe_run.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    for name in files:
        if name.name == "probe_meta.json":
            meta = [json.loads(p.read_text()) for p in (probe_run / name, out / name)]
            assert {**meta[0], "seconds": 0} == {**meta[1], "seconds": 0}
            continue
        assert (probe_run / name).read_bytes() == (out / name).read_bytes(), name
