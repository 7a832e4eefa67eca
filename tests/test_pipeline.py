"""The batch pipeline: config validation, manifests, skipping, forcing and kill-and-resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from eo_mmcl.cli import app
from eo_mmcl.errors import ConfigError
from eo_mmcl.pipeline import (
    PipelineConfig,
    StageManifest,
    load_pipeline_config,
    run_pipeline,
    stages,
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
        ({"report": {"format": "pdf"}}, "report.format: Extra inputs are not permitted"),
        ({"catalog": {"config": {"max_days": -1}}}, "catalog.config: max_days must be a finite"),
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


def test_catalog_options_at_the_older_place_still_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = _tiny_tree(tmp_path / "run")
    tree["catalog"] = {"max_days": 3, "config": {"min_overlap_km2": 2}}
    with caplog.at_level("WARNING", logger="eo_mmcl.pipeline.config"):
        config = load_pipeline_config(_write(tmp_path / "pipeline.yaml", tree))
    assert (config.catalog.config.max_days, config.catalog.config.min_overlap_km2) == (3, 2)
    assert "catalog.max_days: deprecated place, write catalog.config.max_days" in caplog.text


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


def test_the_train_stage_gives_lightningcli_typed_layers(tmp_path: Path) -> None:
    """Config file, then the pipeline's typed settings, then ``train.args``, each over the last."""
    from eo_mmcl.objectives.train import check_training_args

    tree = _tiny_tree(tmp_path / "run")
    tree["train"].update(
        objectives=["clip"], batch_size=7, max_epochs=3, objective_args={}, accelerator="cpu"
    )
    tree["train"]["args"] = ["--trainer.max_epochs", "5", "--model.init_args.lr", "0.002"]
    config = PipelineConfig.model_validate(tree)
    ctx = StageContext(config, tmp_path / "run", tmp_path / "run" / "train", REPO, True, "f", False)
    run = stages.training_run(ctx, "clip", seed=4)
    assert all(isinstance(arg, str) for arg in run.overrides)  # only the user's strings
    parsed = check_training_args(run, "here")
    assert parsed.trainer.max_epochs == 5  # train.args over the pipeline's setting
    assert parsed.data.batch_size == 7  # the pipeline's setting over data.yaml's 64
    assert parsed.model.init_args.lr == 0.002
    assert parsed.model.init_args.temperature == 0.1  # clip.yaml itself
    assert parsed.trainer.deterministic == "warn"  # the shared trainer.yaml
    assert parsed.trainer.enable_progress_bar is False  # a bool, not the string "false"
    assert (parsed.seed_everything, parsed.data.seed) == (4, 4)
    assert parsed.trainer.default_root_dir == str(tmp_path / "run" / "train" / "clip" / "seed_4")
    assert parsed.data.chips_dir == str(tmp_path / "run" / "tile")
    with pytest.raises(ConfigError, match=r"here: .*max_epochs"):
        check_training_args(replace(run, settings={"trainer": {"max_epochs": "many"}}), "here")


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
    # Tiling reads the scenes' pixels, not only the catalog's description of them.
    assert set(manifest.inputs) == {"catalog", "simulate"} and "out.txt" in manifest.outputs
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
