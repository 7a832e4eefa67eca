"""Checkpoints cannot run code: every command loads them with the weights-only unpickler."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from eo_mmcl.catalog import build_catalog, folder_source
from eo_mmcl.cli import app
from eo_mmcl.errors import SourceError
from eo_mmcl.objectives import OBJECTIVES
from eo_mmcl.objectives.checkpoint import (
    SAFE_GLOBALS,
    checkpoint_meta,
    load_trained,
    read_checkpoint,
)
from eo_mmcl.objectives.plain import plain
from tests.conftest import _checkpoint

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


class _RunsCommand:
    """An object whose unpickling runs a shell command: what a hostile checkpoint carries."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "MARKER"


@pytest.fixture()
def hostile(tmp_path: Path, marker: Path, probe_chips_dir: Path) -> dict[str, Path]:
    """Both forms: a bare pickle of the object, and a real checkpoint whose metadata holds it."""
    payload = _RunsCommand(f"touch {marker}")
    bare = tmp_path / "evil.ckpt"
    torch.save({"x": payload}, bare)
    real = _checkpoint(OBJECTIVES["clip"](proj_dim=8, proj_hidden_dim=16), tmp_path / "real.ckpt",
                       probe_chips_dir)  # fmt: skip
    checkpoint = torch.load(real, weights_only=True)
    checkpoint["eo_mmcl"]["bands"] = payload
    meta = tmp_path / "evil_meta.ckpt"
    torch.save(checkpoint, meta)
    return {"bare": bare, "meta": meta, "real": real}


def test_the_hostile_files_would_run_their_command_if_unpickled(
    hostile: dict[str, Path], marker: Path
) -> None:
    # The fixture is what it claims: the full unpickler runs the command.
    torch.load(hostile["bare"], weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("form", ["bare", "meta"])
def test_loaders_refuse_code_and_name_the_file_and_type(
    hostile: dict[str, Path], marker: Path, form: str
) -> None:
    for load in (read_checkpoint, checkpoint_meta, load_trained):
        with pytest.raises(SourceError) as info:
            load(hostile[form])
        message = str(info.value)
        assert str(hostile[form]) in message and "refused" in message
        assert "system" in message  # the global it asked for
        assert "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("form", ["bare", "meta"])
def test_probe_refuses_a_hostile_checkpoint(
    hostile: dict[str, Path], marker: Path, form: str, probe_chips_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        app,
        ["probe", "--chips", str(probe_chips_dir), "-o", str(tmp_path / "p"), "--seeds", "1",
         "--checkpoint", str(hostile[form])],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{hostile[form]}: refused" in " ".join(result.output.split())
    assert not marker.exists()
    assert not (tmp_path / "p" / "probes.parquet").exists()


@pytest.fixture(scope="module")
def catalog_dir(small_scene_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("catalog")
    build_catalog([folder_source(small_scene_dir)], out)
    return out


@pytest.mark.parametrize("form", ["bare", "meta"])
def test_embed_refuses_a_hostile_checkpoint(
    hostile: dict[str, Path], marker: Path, form: str, catalog_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "e"
    result = runner.invoke(app, ["embed", str(hostile[form]), str(catalog_dir), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert f"{hostile[form]}: refused" in " ".join(result.output.split())
    assert not marker.exists()
    assert not out.exists()


def test_pipeline_refuses_a_hostile_checkpoint_before_any_stage(
    hostile: dict[str, Path], marker: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    tree = {
        "run_dir": str(run_dir),
        "simulate": {"size": 128, "seed": 3, "parcel_size": 32},
        "embed": {"checkpoints": {"clip": str(hostile["meta"])}, "workers": 0},
        "stages": ["simulate", "catalog", "embed"],
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{hostile['meta']}: refused" in " ".join(result.output.split())
    assert not marker.exists()
    assert not (run_dir / "simulate").exists()  # refused before any work


def test_training_refuses_to_resume_from_a_hostile_checkpoint(
    hostile: dict[str, Path], marker: Path, probe_chips_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        app,
        ["train", "--config", str(REPO / "tests" / "conf" / "clip_tiny.yaml"),
         "--data.chips_dir", str(probe_chips_dir), "--trainer.default_root_dir", str(tmp_path),
         "--ckpt_path", str(hostile["bare"])],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{hostile['bare']}: refused" in " ".join(result.output.split())
    assert not marker.exists()


def test_real_checkpoints_need_no_allowlisted_type(hostile: dict[str, Path]) -> None:
    assert SAFE_GLOBALS == ()
    task, meta = load_trained(hostile["real"])
    assert meta["objective"] == "clip" and meta["bands"]["s1"] == ["VV", "VH"]
    assert task.data_meta["normalisation"] == meta["normalisation"]


def test_metadata_is_saved_as_plain_types() -> None:
    import numpy as np

    value = {"a": (np.float32(1.5), Path("/x")), 3: np.arange(2)}
    assert plain(value) == {"a": [1.5, "/x"], "3": [0, 1]}
    with pytest.raises(TypeError, match="_RunsCommand"):
        plain({"x": _RunsCommand("true")})


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_every_objectives_checkpoint_loads_weights_only(
    objective: str, probe_chips_dir: Path, tmp_path: Path
) -> None:
    tiny: dict[str, Any] = {"proj_dim": 8, "proj_hidden_dim": 16}
    if objective in ("comm", "coral"):
        tiny |= {"fusion_dim": 16, "fusion_depth": 1}
    if objective == "supervised":
        tiny["num_classes"] = {"landcover": 6}
    task = OBJECTIVES[objective](**tiny)
    loaded, meta = load_trained(_checkpoint(task, tmp_path / "c.ckpt", probe_chips_dir))
    assert meta["objective"] == objective and type(loaded) is type(task)
    for name, value in task.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
