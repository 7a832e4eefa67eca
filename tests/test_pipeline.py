"""The batch pipeline: config validation, manifests, skipping, forcing and kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from eo_mmcl.cli import app
from eo_mmcl.errors import ConfigError
from eo_mmcl.pipeline import (
    MANIFEST,
    PipelineConfig,
    StageManifest,
    load_pipeline_config,
    run_pipeline,
)
from eo_mmcl.pipeline.stages import StageContext

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "conf" / "pipeline_tiny.yaml"
runner = CliRunner()


def _write(path: Path, tree: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    return path


def _tiny_tree(run_dir: Path) -> dict[str, Any]:
    tree = yaml.safe_load(TINY.read_text())
    tree["run_dir"] = str(run_dir)
    tree["train"]["configs"] = str(REPO / "pipelines" / "configs")
    return tree


# --------------------------------------------------------------------------------------------
# Config validation: before any work, with the key's path
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"tile": {"config": {"chip_sise": 32}}}, "tile.config.chip_sise: Unexpected keyword"),
        ({"train": {"max_epochs": "many"}}, "train.max_epochs: Input should be a valid integer"),
        ({"train": {"objectives": ["clip", "byol"]}}, "train.objectives: unknown objective"),
        ({"tile": {"config": {"chip_size": 4}}}, "tile.config: chip_size must be >= 8"),
        ({"stages": ["simulate", "deploy"]}, "stages[1]: Input should be"),
        ({"bogus": 1}, "bogus: Extra inputs are not permitted"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, patch: dict[str, Any], message: str) -> None:
    tree = _tiny_tree(tmp_path / "run")
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            for sub, subvalue in value.items():
                if isinstance(subvalue, dict):
                    tree[key].setdefault(sub, {}).update(subvalue)
                else:
                    tree[key][sub] = subvalue
        else:
            tree[key] = value
    path = _write(tmp_path / "pipeline.yaml", tree)
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_paths_are_reported_before_any_work(tmp_path: Path) -> None:
    tree = _tiny_tree(tmp_path / "run")
    tree["catalog"] = {"sources": [str(tmp_path / "nowhere")]}
    path = _write(tmp_path / "pipeline.yaml", tree)
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "catalog.sources[0]" in result.output and "nowhere" in result.output
    assert not (tmp_path / "run").exists()
    result = runner.invoke(app, ["run", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 2 and "pipeline file not found" in result.output


def test_a_typo_in_train_args_is_refused_before_any_stage(tmp_path: Path) -> None:
    tree = _tiny_tree(tmp_path / "run")
    tree["train"]["args"] = ["--trainer.max_epocs", "3"]
    path = _write(tmp_path / "pipeline.yaml", tree)
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert "train.args (clip)" in line and "--trainer.max_epocs" in line
    assert not (tmp_path / "run" / "simulate").exists()  # refused before any work
    tree["train"]["args"] = []
    tree["train"]["objective_args"] = {"clip": ["--model.init_args.lr", "fast"]}
    result = runner.invoke(app, ["run", str(_write(path, tree))])
    assert result.exit_code == 2 and "train.objective_args.clip (clip)" in result.output
    assert not (tmp_path / "run" / "simulate").exists()
    tree["train"]["objective_args"] = {}
    tree["train"]["args"] = ["--data.batch_size", "0"]  # a value only the datamodule refuses
    result = runner.invoke(app, ["run", str(_write(path, tree))])
    assert result.exit_code == 2, result.output
    assert "train.args (clip): data.batch_size must be >= 1, got 0" in result.output
    assert not (tmp_path / "run" / "simulate").exists()


def test_unknown_stage_options_are_refused(tmp_path: Path) -> None:
    tree = _tiny_tree(tmp_path / "run")
    tree["stages"] = ["simulate", "catalog", "tile", "train"]
    config = load_pipeline_config(_write(tmp_path / "p.yaml", tree))
    for kwargs, message in (
        ({"force": ["embed"]}, "--force embed"),
        ({"start": "report"}, "--from report"),
        ({"start": "train", "until": "tile"}, "comes after"),
    ):
        with pytest.raises(ConfigError, match=message):
            run_pipeline(config, base=tmp_path, **kwargs)


def test_shipped_pipelines_validate() -> None:
    for path in sorted((REPO / "pipelines").glob("*.yaml")):
        config = load_pipeline_config(path)
        assert config.stages, path


# --------------------------------------------------------------------------------------------
# Runner logic on light stage functions (fast): skip, rerun on change, force, resume
# --------------------------------------------------------------------------------------------


class Recorder:
    """Stage functions that write a file from their config and record how they were called."""

    def __init__(self, fail_in: str | None = None) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.fail_in = fail_in

    def __call__(self, stage: str):
        def run(ctx: StageContext) -> dict[str, Any]:
            self.calls.append((stage, ctx.restart))
            # Output depends on the stage's config only, as real stages' outputs do.
            chip_size = ctx.config.tile.config.chip_size if stage in ("tile", "train") else 0
            (ctx.folder / "out.txt").write_text(f"{stage} {chip_size}")
            if stage == self.fail_in:
                self.fail_in = None
                raise KeyboardInterrupt  # a kill in the middle of the stage
            return {"stage": stage}

        return run

    def functions(self) -> dict[str, Any]:
        return {s: self(s) for s in ("simulate", "catalog", "tile", "train")}


def _config(tmp_path: Path, chip_size: int = 32) -> PipelineConfig:
    tree = _tiny_tree(tmp_path / "run")
    tree["stages"] = ["simulate", "catalog", "tile", "train"]
    tree["tile"]["config"]["chip_size"] = chip_size
    return load_pipeline_config(_write(tmp_path / "pipeline.yaml", tree))


def test_finished_stages_are_skipped_and_changes_rerun_downstream(tmp_path: Path) -> None:
    rec = Recorder()
    outcomes = run_pipeline(_config(tmp_path), base=tmp_path, stage_functions=rec.functions())
    assert [o.status for o in outcomes] == ["ran"] * 4
    manifest = StageManifest.read(tmp_path / "run" / "tile")
    assert manifest is not None and manifest.status == "complete"
    assert set(manifest.inputs) == {"catalog"} and "out.txt" in manifest.outputs
    assert manifest.versions["eo_mmcl"] and manifest.seconds is not None
    assert (tmp_path / "run" / "pipeline.log").read_text().count("tile: done") == 1

    rec.calls.clear()
    outcomes = run_pipeline(_config(tmp_path), base=tmp_path, stage_functions=rec.functions())
    assert [o.status for o in outcomes] == ["skipped"] * 4 and rec.calls == []

    # A tile option changed: tile starts over, train sees new inputs and runs again.
    outcomes = run_pipeline(_config(tmp_path, 48), base=tmp_path, stage_functions=rec.functions())
    assert [o.status for o in outcomes] == ["skipped", "skipped", "ran", "ran"]
    assert rec.calls == [("tile", True), ("train", True)]

    # Forcing a stage whose output does not change leaves downstream alone.
    rec.calls.clear()
    outcomes = run_pipeline(
        _config(tmp_path, 48), base=tmp_path, force=["catalog"], stage_functions=rec.functions()
    )
    assert [o.status for o in outcomes] == ["skipped", "ran", "skipped", "skipped"]

    # --from reruns a stage and everything after it; --until stops early.
    rec.calls.clear()
    outcomes = run_pipeline(
        _config(tmp_path, 48),
        base=tmp_path,
        start="tile",
        until="tile",
        stage_functions=rec.functions(),
    )
    assert [o.status for o in outcomes] == ["not selected"] * 2 + ["ran", "not selected"]


def test_a_killed_stage_resumes_and_finished_ones_are_kept(tmp_path: Path) -> None:
    rec = Recorder(fail_in="tile")
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(_config(tmp_path), base=tmp_path, stage_functions=rec.functions())
    half = StageManifest.read(tmp_path / "run" / "tile")
    assert half is not None and half.status == "running"
    assert StageManifest.read(tmp_path / "run" / "train") is None
    rec.calls.clear()
    outcomes = run_pipeline(_config(tmp_path), base=tmp_path, stage_functions=rec.functions())
    assert [o.status for o in outcomes] == ["skipped", "skipped", "resumed", "ran"]
    assert rec.calls[0] == ("tile", False)  # resumed, not restarted


def test_from_needs_the_earlier_stages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="simulate is not finished"):
        run_pipeline(
            _config(tmp_path), base=tmp_path, start="tile", stage_functions=Recorder().functions()
        )


# --------------------------------------------------------------------------------------------
# The real stages: a tiny run killed after tiling, then resumed
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def killed_and_resumed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The tiny pipeline killed (SIGKILL) while training, then run again in-process.

    Returns the run folder and the stage statuses of the second run.
    """
    root = tmp_path_factory.mktemp("pipeline")
    path = _write(root / "pipeline.yaml", _tiny_tree(root / "run"))
    run_dir = root / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "eo_mmcl.cli", "run", str(path), "--no-progress"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            manifest = StageManifest.read(run_dir / "train")
            if manifest is not None and manifest.status == "running":
                break
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    tile = StageManifest.read(run_dir / "tile")
    assert tile is not None and tile.status == "complete"
    assert not (run_dir / "train" / "clip" / "seed_0" / "objective_done.json").exists()
    outcomes = run_pipeline(load_pipeline_config(path), base=root, show_progress=False)
    return run_dir, [o.status for o in outcomes]


def test_real_pipeline_killed_midway_resumes_without_redoing_stages(
    killed_and_resumed_run: tuple[Path, list[str]],
) -> None:
    run_dir, statuses = killed_and_resumed_run
    assert statuses == ["skipped", "skipped", "skipped", "resumed", "ran"]
    assert (run_dir / "train" / "clip" / "seed_0" / "checkpoints" / "last.ckpt").is_file()
    manifest = json.loads((run_dir / "train" / MANIFEST).read_text())
    assert manifest["status"] == "complete"
    # Later stages get the epoch with the best validation loss, under a fixed name.
    best = run_dir / "train" / "clip" / "seed_0" / "checkpoints" / "best.ckpt"
    assert "clip/seed_0/checkpoints/best.ckpt" in manifest["outputs"]
    done = json.loads((run_dir / "train" / "clip" / "seed_0" / "objective_done.json").read_text())
    assert (best.parent / done["summary"]["best_epoch_file"]).read_bytes() == best.read_bytes()
    embed = json.loads((run_dir / "embed" / MANIFEST).read_text())
    assert any(name.endswith("_clip_joint.tif") for name in embed["outputs"])

    config = load_pipeline_config(run_dir.parent / "pipeline.yaml")
    outcomes = run_pipeline(config, base=run_dir.parent, show_progress=False)
    assert [o.status for o in outcomes] == ["skipped"] * 5


def test_landcover_notebook_runs_on_a_run(
    killed_and_resumed_run: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    run_dir, _ = killed_and_resumed_run
    path = REPO / "notebooks" / "landcover_probes.ipynb"
    notebook = nbformat.read(path, as_version=4)
    monkeypatch.setenv("EO_MMCL_RUN_DIR", str(run_dir))
    monkeypatch.setenv("EO_MMCL_OBJECTIVE", "clip")
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": REPO}}
    )
    client.execute()
    text = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "balanced accuracy on the eastern test part" in text
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(images) >= 3  # PCA false colour, confusion matrix, prediction maps


def test_notebooks_are_stored_without_outputs() -> None:
    nbformat = pytest.importorskip("nbformat")
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path


def test_probe_stage_needs_the_supervised_oracle(tmp_path: Path) -> None:
    tree = _tiny_tree(tmp_path / "run")
    tree["stages"] = ["simulate", "catalog", "tile", "train", "embed", "probe", "report"]
    config = load_pipeline_config(_write(tmp_path / "p.yaml", tree))
    with pytest.raises(ConfigError, match="supervised"):
        config.check_paths(tmp_path)
    tree["train"]["objectives"] = ["supervised", "clip"]
    load_pipeline_config(_write(tmp_path / "p.yaml", tree)).check_paths(tmp_path)


def test_training_seeds_give_one_checkpoint_each_and_a_train_seed_column(tmp_path: Path) -> None:
    tree = _tiny_tree(tmp_path / "run")
    tree["train"]["objectives"] = ["supervised", "clip"]
    tree["train"]["seeds"] = [0, 1]
    tree["probe"] = {"config": {"seeds": 1, "probes": ["linear"]}}
    tree["stages"] = ["simulate", "catalog", "tile", "train", "embed", "probe"]
    path = _write(tmp_path / "pipeline.yaml", tree)
    outcomes = run_pipeline(load_pipeline_config(path), base=tmp_path, show_progress=False)
    assert [o.status for o in outcomes] == ["ran"] * 6
    train = tmp_path / "run" / "train"
    for objective in ("supervised", "clip"):
        weights = []
        for seed in (0, 1):
            best = train / objective / f"seed_{seed}" / "checkpoints" / "best.ckpt"
            checkpoint = torch.load(best, map_location="cpu", weights_only=True)
            assert checkpoint["eo_mmcl"]["train_seed"] == seed
            weights.append(next(iter(checkpoint["state_dict"].values())))
        assert not torch.equal(*weights)  # a second seed is a second draw, not a copy
    table = pd.read_parquet(tmp_path / "run" / "probe" / "probes.parquet")
    for objective in ("supervised", "clip", "random-init"):
        seeds = set(table.loc[table["objective"].str.startswith(objective), "train_seed"])
        assert seeds == {0, 1}, objective
    assert (tmp_path / "run" / "probe" / "instrument.parquet").is_file()
    again = run_pipeline(load_pipeline_config(path), base=tmp_path, show_progress=False)
    assert [o.status for o in again] == ["skipped"] * 6
