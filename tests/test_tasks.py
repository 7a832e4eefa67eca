"""Lightning objectives: every config fits on CPU, training learns, checkpoints are complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from eo_mmcl.datamodules import PairedS1S2DataModule
from eo_mmcl.errors import ConfigError
from eo_mmcl.losses import LossOutput
from eo_mmcl.objectives import (
    OBJECTIVES,
    CLIPObjective,
    PairedViews,
    SupervisedObjective,
    majority_labels,
)
from eo_mmcl.objectives.train import run_training
from tests.conftest import _checkpoint, small_chip_store

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "pipelines" / "configs"
TINY = [
    "--model.init_args.proj_dim",
    "16",
    "--model.init_args.proj_hidden_dim",
    "32",
    "--data.batch_size",
    "8",
    "--data.num_workers",
    "0",
]


@pytest.fixture(scope="module")
def chips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 384 px and 4-chip split blocks leave about 40 training chips (2-chip blocks leave a
    # handful once chips that touch another split are dropped): enough for InfoNCE negatives.
    return small_chip_store(tmp_path_factory.mktemp("train"), seed=3, size=384, split_block=4)


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_every_objective_fits_from_its_config(
    objective: str, chips_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shipped configs write under runs/train/<objective>: keep that out of the repository.
    monkeypatch.chdir(tmp_path)
    assert (CONFIGS / f"{objective}.yaml").exists()
    extra = (
        ["--model.init_args.fusion_dim", "16", "--model.init_args.fusion_depth", "1"]
        if objective in ("comm", "coral")
        else []
    )
    cli = run_training(
        [
            "--config",
            str(CONFIGS / f"{objective}.yaml"),
            "--data.chips_dir",
            str(chips_dir),
            "--trainer.fast_dev_run",
            "true",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.logger",
            "false",
            "--trainer.accelerator",
            "cpu",
            *TINY,
            *extra,
        ]
    )
    assert cli.model.objective == objective
    assert cli.trainer.global_step == 1
    loss = cli.trainer.callback_metrics["train/loss"]
    assert torch.isfinite(loss)
    assert any(k.startswith("train/embedding_std") for k in cli.trainer.callback_metrics)


def _train_clip(chips_dir: Path, root: Path, epochs: int, *extra: str):
    return run_training(
        [
            "--config",
            str(REPO / "tests" / "conf" / "clip_tiny.yaml"),
            "--data.chips_dir",
            str(chips_dir),
            "--trainer.max_epochs",
            str(epochs),
            "--trainer.default_root_dir",
            str(root),
            "--trainer.logger",
            "lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.save_dir",
            str(root),
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            "--trainer.callbacks.dirpath",
            str(root / "checkpoints"),
            "--trainer.callbacks.save_last",
            "true",
            "--trainer.log_every_n_steps",
            "1",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def trained(chips_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("clip")
    cli = _train_clip(chips_dir, root, 8)
    return cli, root


def test_short_clip_training_lowers_the_loss(trained) -> None:
    _, root = trained
    metrics = pd.read_csv(next(root.rglob("metrics.csv")))
    per_epoch = metrics.dropna(subset=["train/loss"]).groupby("epoch")["train/loss"].mean()
    assert per_epoch.iloc[-1] < 0.8 * per_epoch.iloc[0], per_epoch.to_dict()


def test_checkpoint_keeps_config_bands_and_normalisation(trained, chips_dir: Path) -> None:
    _, root = trained
    checkpoint = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    meta = checkpoint["eo_mmcl"]
    assert meta["objective"] == "clip"
    assert meta["bands"]["s2"][:2] == ["B01", "B02"] and meta["bands"]["s1"] == ["VV", "VH"]
    dm = PairedS1S2DataModule(chips_dir)
    assert meta["normalisation"]["s2"]["mean"] == dm.normalisation["s2"]["mean"]
    assert checkpoint["hyper_parameters"]["proj_dim"] == 16


def test_checkpoint_reloads_in_a_fresh_process(trained, chips_dir: Path, tmp_path: Path) -> None:
    _, root = trained
    torch.manual_seed(0)
    batch = {"image_s1": torch.randn(4, 2, 32, 32), "image_s2": torch.randn(4, 12, 32, 32)}
    torch.save(batch, tmp_path / "batch.pt")
    last = root / "checkpoints" / "last.ckpt"
    model = CLIPObjective.load_from_checkpoint(last, weights_only=True).eval()
    with torch.no_grad():
        expected = model.embed(batch)["proj_joint"].numpy()
    code = (
        "import numpy as np, torch\n"
        "from eo_mmcl.objectives import CLIPObjective\n"
        f"m = CLIPObjective.load_from_checkpoint({str(last)!r}, weights_only=True).eval()\n"
        f"b = torch.load({str(tmp_path / 'batch.pt')!r})\n"
        "with torch.no_grad():\n"
        f"    np.save({str(tmp_path / 'out.npy')!r}, m.embed(b)['proj_joint'].numpy())\n"
        "print(m.data_meta['bands']['s1'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "VV" in done.stdout
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-5, atol=1e-6)


def test_resume_from_the_last_checkpoint(trained, chips_dir: Path) -> None:
    cli, root = trained
    steps = cli.trainer.global_step
    resumed = _train_clip(chips_dir, root, 9, "--ckpt_path", "last")
    assert resumed.trainer.current_epoch == 9
    assert resumed.trainer.global_step == steps + steps // 8


def _best_epoch_run(chips_dir: Path, root: Path, epochs: int) -> list[str]:
    """Arguments of a run whose top-k callback keeps epoch 0 and asks for ``save_last``.

    Monitoring ``epoch`` (mode min) makes the first epoch the best one whatever the losses do:
    Lightning's own ``save_last`` would then leave epoch 0 in ``last.ckpt``.
    """
    return [
        "--config", str(REPO / "tests" / "conf" / "clip_tiny.yaml"),
        "--data.chips_dir", str(chips_dir),
        "--trainer.max_epochs", str(epochs),
        "--trainer.default_root_dir", str(root),
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        "--trainer.callbacks.dirpath", str(root / "checkpoints"),
        "--trainer.callbacks.monitor", "epoch",
        "--trainer.callbacks.mode", "min",
        "--trainer.callbacks.save_last", "true",
        "--trainer.callbacks.enable_version_counter", "false",  # as the shipped configs
    ]  # fmt: skip


def test_last_checkpoint_is_the_final_state_of_this_run(chips_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from eo_mmcl.cli import app

    cli = run_training(_best_epoch_run(chips_dir, tmp_path, 3))
    folder = tmp_path / "checkpoints"
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, cli.trainer.global_step)
    for name, value in cli.model.state_dict().items():
        torch.testing.assert_close(last["state_dict"][name], value, rtol=0, atol=0)
    assert torch.load(folder / "epoch=0-step=2.ckpt", weights_only=True)["epoch"] == 0

    # A second run into the same folder replaces last.ckpt (no last-v1.ckpt), and the
    # checkpoint the CLI prints holds the steps it prints.
    result = CliRunner().invoke(app, ["train", *_best_epoch_run(chips_dir, tmp_path, 1)])
    assert result.exit_code == 0, result.output
    assert not [p.name for p in folder.iterdir() if "-v" in p.name]
    line = next(x for x in result.output.splitlines() if x.startswith("objective=clip"))
    printed = dict(field.split("=", 1) for field in line.split() if "=" in field)
    assert Path(printed["checkpoint"]) == folder / "last.ckpt"
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (0, int(printed["steps"]))
    assert int(printed["epochs"]) == last["epoch"] + 1


def test_resume_after_a_crash_reproduces_the_uninterrupted_run(
    chips_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed in the middle of epoch 2, resumed from last.ckpt: the same weights, bit for bit."""

    def fit(root: Path, *extra: str) -> Any:
        return run_training(
            [
                "--config", str(REPO / "tests" / "conf" / "clip_tiny.yaml"),
                "--data.chips_dir", str(chips_dir),
                "--data.batch_size", "8",
                "--data.augment", "true",  # random views: the generators must be restored
                "--trainer.max_epochs", "3",
                "--trainer.default_root_dir", str(root),
                *extra,
            ]
        )  # fmt: skip

    uninterrupted = fit(tmp_path / "a").model.state_dict()
    step = CLIPObjective.training_step

    def crash(self: CLIPObjective, batch: Any, batch_idx: int) -> Any:
        if self.current_epoch == 2 and batch_idx == 2:
            raise RuntimeError("killed")
        return step(self, batch, batch_idx)

    monkeypatch.setattr(CLIPObjective, "training_step", crash)
    with pytest.raises(RuntimeError, match="killed"):
        fit(tmp_path / "b")
    monkeypatch.undo()
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1
    # Another --data.seed too: the sampler's seed is the checkpoint's on resume.
    resumed = fit(tmp_path / "b", "--ckpt_path", str(last), "--data.seed", "9")
    assert resumed.datamodule.seed == 0
    assert resumed.trainer.current_epoch == 3
    weights = resumed.model.state_dict()
    assert weights.keys() == uninterrupted.keys()
    for name, value in uninterrupted.items():
        assert torch.equal(weights[name], value), name


def test_training_killed_in_a_subprocess_resumes_to_the_same_weights_and_probe_table(
    chips_dir: Path, tmp_path: Path
) -> None:
    """``eo-mmcl train`` SIGKILLed during epoch 1, resumed: the same weights and probe scores."""
    from eo_mmcl.probe import ProbeConfig, run_probes

    def args(root: Path) -> list[str]:
        return [
            "--config", str(REPO / "tests" / "conf" / "clip_tiny.yaml"),
            "--data.chips_dir", str(chips_dir),
            "--data.batch_size", "8",
            "--data.augment", "true",
            "--trainer.max_epochs", "4",
            "--trainer.default_root_dir", str(root),
        ]  # fmt: skip

    uninterrupted = run_training(args(tmp_path / "a")).model.state_dict()
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(
        [sys.executable, "-m", "eo_mmcl.cli", "train", *args(tmp_path / "b")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        # last.ckpt appears (atomically) when epoch 0 ends: the kill lands early in epoch 1.
        while time.monotonic() < deadline and process.poll() is None and not last.exists():
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert torch.load(last, weights_only=True)["epoch"] < 3

    resumed = run_training([*args(tmp_path / "b"), "--ckpt_path", str(last)])
    assert resumed.trainer.current_epoch == 4
    weights = resumed.model.state_dict()
    for name, value in uninterrupted.items():
        assert torch.equal(weights[name], value), name

    # The probe table of each run (an untrained oracle gives the ceilings of both).
    oracle = _untrained_oracle(chips_dir, tmp_path / "supervised.ckpt")
    config = ProbeConfig(seeds=2, probes=("linear", "knn"), random_init=False, reference=False)
    tables = []
    for root in (tmp_path / "a", tmp_path / "b"):
        run = run_probes(
            chips_dir, [oracle, root / "checkpoints" / "last.ckpt"], root / "probes", config
        )
        tables.append(run.table.drop(columns="checkpoint"))
    assert (tables[0]["objective"] == "clip").sum() > 0
    pd.testing.assert_frame_equal(tables[0], tables[1])


def _untrained_oracle(chips_dir: Path, path: Path) -> Path:
    """An untrained oracle's checkpoint: the probes need one for their ceilings."""
    torch.manual_seed(0)
    classes = {"landcover": 6, "s1_unique": 2, "s2_unique": 2, "synergy": 2}
    oracle = SupervisedObjective(num_classes=classes, proj_dim=16, proj_hidden_dim=32)
    return _checkpoint(oracle, path, chips_dir)


def test_ddp_on_two_cpu_processes(chips_dir: Path, tmp_path: Path) -> None:
    """Lightning DDP (gloo) with negatives gathered across the two processes."""
    args = [
        sys.executable, "-m", "eo_mmcl.cli", "train",
        "--config", str(REPO / "tests" / "conf" / "clip_tiny.yaml"),
        "--data.chips_dir", str(chips_dir),
        "--trainer.strategy", "ddp",
        "--trainer.devices", "2",
        "--trainer.accelerator", "cpu",
        "--trainer.max_steps", "2",
        "--trainer.default_root_dir", str(tmp_path),
        "--model.init_args.gather_distributed", "true",
    ]  # fmt: skip
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Starting with 2 processes" in done.stdout + done.stderr
    # Each rank reports its own finite losses.
    lines = [line for line in done.stdout.splitlines() if line.startswith("objective=clip")]
    assert len(lines) == 2 and all("train_loss=nan" not in line for line in lines), lines


def _quiet_trainer(**limits: Any) -> Any:
    """A CPU Trainer without logger, checkpoints, progress bar or summary."""
    from lightning import Trainer

    return Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        **limits,
    )


def test_nan_loss_stops_training_with_a_clear_message(chips_dir: Path) -> None:
    model = CLIPObjective(proj_dim=8, proj_hidden_dim=16)

    def nan_loss(batch):
        z = torch.zeros(2, 8, requires_grad=True)
        return LossOutput(z.sum() * float("nan"), {"clip": torch.tensor(float("nan"))}), {}

    model.compute_loss = nan_loss  # type: ignore[method-assign]
    trainer = _quiet_trainer(max_epochs=1)
    with pytest.raises(FloatingPointError, match=r"objective 'clip'.*step 0"):
        trainer.fit(model, PairedS1S2DataModule(chips_dir, batch_size=8))


def test_majority_labels() -> None:
    mask = torch.full((3, 4, 4), 255)
    mask[0, :3] = 2
    mask[0, 3] = 1
    mask[1, :1] = 0
    labels = majority_labels(mask, num_classes=3)
    assert labels.tolist() == [2, 0, -1]
    valid = torch.ones(3, 4, 4, dtype=torch.bool)
    valid[0, :3] = False
    assert majority_labels(mask, 3, valid).tolist() == [1, 0, -1]
    with pytest.raises(ValueError, match="out of range"):
        majority_labels(mask, num_classes=2)


@pytest.mark.parametrize(("hidden", "reaches"), [(0, False), (32, True)])
def test_oracle_head_learns_a_cross_sensor_xor_only_with_a_hidden_layer(
    hidden: int, reaches: bool
) -> None:
    torch.manual_seed(0)
    task = SupervisedObjective(
        num_classes={"synergy": 2},
        head_hidden_dim=hidden,
        backbone="resnet10t",
        backbone_kwargs={"channels": [8, 8, 8, 16], "stem_width": 8},
        proj_dim=8,
        proj_hidden_dim=16,
    )
    head = task.heads["synergy"]
    dim = sum(task.encoder.num_features.values())
    # Pooled joint features: one binary attribute in the S1 half, one in the S2 half; the
    # target is their XOR. A linear head can get at most 3 of the 4 combinations right.
    a, b = torch.randint(0, 2, (2, 1024))
    joint = torch.randn(1024, dim) * 0.1
    joint[:, 0] += 2 * a - 1
    joint[:, dim // 2] += 2 * b - 1
    target = a ^ b
    train, test = slice(0, 512), slice(512, None)  # scored on held-out chips
    optimiser = torch.optim.Adam(head.parameters(), lr=0.01)
    for _ in range(300):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(head(joint[train]), target[train]).backward()
        optimiser.step()
    accuracy = float((head(joint[test]).argmax(1) == target[test]).float().mean())
    assert (accuracy > 0.95) == reaches, accuracy
    with pytest.raises(ConfigError, match="head_hidden_dim"):
        SupervisedObjective(num_classes={"synergy": 2}, head_hidden_dim=-1)


def test_oracle_pixel_heads_learn_from_pixel_labels_and_skip_unlabelled_ones() -> None:
    torch.manual_seed(0)
    tiny = {"backbone": "resnet10t", "proj_dim": 8, "proj_hidden_dim": 16,
            "backbone_kwargs": {"channels": [8, 8, 8, 16], "stem_width": 8}}  # fmt: skip
    task = SupervisedObjective(
        num_classes={"landcover": 3}, head_hidden_dim=8, pixel_heads=True, **tiny
    )
    batch = {
        "image_s1": torch.randn(4, task.hparams["s1_channels"], 32, 32),
        "image_s2": torch.randn(4, task.hparams["s2_channels"], 32, 32),
        "mask_landcover": torch.randint(0, 3, (4, 32, 32)),
    }
    loss, _ = task.compute_loss(batch)
    assert set(loss.terms) == {"landcover", "pixel_landcover"}
    assert float(loss.terms["pixel_landcover"]) > 0
    loss.total.backward()
    head = task.pixel_head["landcover"]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    unlabelled = {**batch, "mask_landcover": torch.full((4, 32, 32), 255)}
    assert float(task.compute_loss(unlabelled)[0].terms["pixel_landcover"]) == 0.0
    # Chip heads only, as before, unless asked: old checkpoints load unchanged.
    assert not hasattr(SupervisedObjective(num_classes={"landcover": 3}, **tiny), "pixel_head")


def test_views_share_geometry_across_modalities() -> None:
    torch.manual_seed(0)
    views = PairedViews(noise_std=0.0, gain_std=0.0)
    s2 = torch.randn(4, 12, 16, 16)
    a, b = views({"image_s1": s2[:, :2].clone(), "image_s2": s2})
    for view in (a, b):
        torch.testing.assert_close(view["image_s1"], view["image_s2"][:, :2])
    assert not torch.allclose(a["image_s2"], b["image_s2"])


@pytest.mark.parametrize("objective", ["clip", "coral", "decur"])
def test_the_predict_step_returns_what_it_is_asked_from_one_backbone_pass(objective: str) -> None:
    from eo_mmcl.objectives.base import PredictOutputs

    torch.manual_seed(0)
    task = OBJECTIVES[objective](proj_dim=8, proj_hidden_dim=16).eval()
    batch = {"image_s1": torch.randn(3, 2, 32, 32), "image_s2": torch.randn(3, 12, 32, 32)}
    batch["index"] = torch.tensor([7, 3, 5])
    with torch.no_grad():
        every = task.embed(batch)
        features = task.encoder.encode(batch)
        got = task.predict_step(batch, 0)  # default: every key of embed
        assert set(got) == {*every, "index"}
        for key, value in every.items():
            assert torch.equal(got[key], value), key
        assert torch.equal(got["index"], batch["index"])
        task.predict_outputs = PredictOutputs(keys=("joint", "proj_none", "s1"), dense=True)
        got = task.predict_step(batch, 0)
        assert set(got) == {"joint", "s1", "dense_s1", "dense_s2", "index"}  # unknown left out
        assert torch.equal(got["joint"], every["joint"])
        assert torch.equal(got["dense_s2"], features["s2"].dense)
        task.predict_outputs = PredictOutputs(keys=("s2",))
        only_s2 = {k: v for k, v in batch.items() if k != "image_s1"}  # S1's backbone is skipped
        assert torch.equal(task.predict_step(only_s2, 0)["s2"], every["s2"])


def test_data_wait_monitor_accounts_wait_and_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from eo_mmcl.objectives import callbacks

    clock = iter([0.0, 1.0, 1.5, 4.0, 4.5, 10.0, 10.5, 11.0])  # start/end of four batches
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    module = SimpleNamespace(device=torch.device("cpu"), log=lambda *a, **k: None)
    monitor = callbacks.DataWaitMonitor(skip=1)
    batch = {"image_s2": torch.zeros(4, 12, 8, 8)}
    monitor.on_train_epoch_start(None, module)
    for i in range(2):  # batches 0-1: [0, 1] skipped, wait 0.5, compute [1.5, 4] = 2.5
        monitor.on_train_batch_start(None, module, batch, i)
        monitor.on_train_batch_end(None, module, None, batch, i)
    monitor.on_train_epoch_start(None, module)  # the gap [4, 4.5] is not a data wait
    for i in range(2):  # compute [4.5, 10] = 5.5, wait 0.5, compute 0.5
        monitor.on_train_batch_start(None, module, batch, i)
        monitor.on_train_batch_end(None, module, None, batch, i)
    assert monitor.samples == 12
    assert monitor.wait == pytest.approx(1.0)
    assert monitor.compute == pytest.approx(2.5 + 5.5 + 0.5)
    assert monitor.data_wait_fraction == pytest.approx(1.0 / 9.5)
    assert monitor.samples_per_s == pytest.approx(12 / 9.5)


def test_channels_last_training_keeps_the_numbers(chips_dir: Path) -> None:
    """Channels-last is a memory layout: the same seed gives the same losses up to rounding."""
    from lightning import seed_everything

    losses, layouts = {}, {}
    for channels_last in (True, False):
        seed_everything(0)
        model = CLIPObjective(proj_dim=8, proj_hidden_dim=16, channels_last=channels_last)
        trainer = _quiet_trainer(max_steps=3, limit_val_batches=0)
        dm = PairedS1S2DataModule(chips_dir, batch_size=8, augment=False)
        trainer.fit(model, dm)
        losses[channels_last] = float(trainer.callback_metrics["train/loss"])
        stem = next(p for p in model.encoder.s2.parameters() if p.ndim == 4)
        layouts[channels_last] = stem.is_contiguous(memory_format=torch.channels_last)
    assert layouts == {True: True, False: False}
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)


def test_the_oracle_reads_its_heads_from_the_chip_store(tmp_path: Path) -> None:
    from tests.conftest import small_chip_store

    chips = small_chip_store(tmp_path / "three", seed=4, unique_classes=3)
    cli = run_training(
        [
            "--config", str(REPO / "tests" / "conf" / "clip_tiny.yaml"),
            "--model", "eo_mmcl.objectives.SupervisedObjective",
            "--model.init_args.proj_dim", "8",
            "--model.init_args.proj_hidden_dim", "16",
            "--data.chips_dir", str(chips),
            "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1",
            "--trainer.default_root_dir", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    assert isinstance(cli.model, SupervisedObjective)
    # No config names the classes: three per unique attribute come from the store itself.
    assert cli.model.num_classes == {"landcover": 6, "s1_unique": 3, "s2_unique": 3, "synergy": 3}
    assert cli.trainer.global_step >= 1  # and it trains on them


def test_the_shipped_configs_write_everything_under_default_root_dir(
    chips_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "elsewhere"
    cli = run_training(
        [
            "--config", str(REPO / "pipelines" / "configs" / "clip.yaml"),
            "--model.init_args.backbone_kwargs", '{"channels": [8, 8, 16, 16]}',
            "--model.init_args.backbone", "resnet10t",
            "--data.chips_dir", str(chips_dir),
            "--data.num_workers", "0",
            "--trainer.default_root_dir", str(root),
            "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1",
            "--trainer.enable_progress_bar", "false",
        ]
    )  # fmt: skip
    # The trainer block comes from the shared trainer.yaml (its checkpoint callback, loggers).
    assert cli.trainer.log_every_n_steps == 10
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert any((root / "checkpoints").glob("epoch=0-step=*.ckpt"))
    assert (root / "logs" / "version_0" / "metrics.csv").is_file()
    assert any((root / "tensorboard").rglob("events.out.tfevents.*"))
    # Nothing under the default runs/train/clip of the working directory.
    assert not (tmp_path / "runs").exists()
