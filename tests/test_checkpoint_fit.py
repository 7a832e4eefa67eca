"""A checkpoint is checked against the data it reads (bands, chip size, normalisation) first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from eo_mmcl.catalog import build_catalog, folder_source
from eo_mmcl.cli import app
from eo_mmcl.errors import ConfigError
from eo_mmcl.objectives import SupervisedObjective
from eo_mmcl.objectives.checkpoint import check_fits_data, check_fits_store, checkpoint_meta
from tests.conftest import _checkpoint

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _rewrite(source: Path, target: Path, **meta: Any) -> Path:
    checkpoint = torch.load(source, weights_only=True)
    checkpoint["eo_mmcl"].update(meta)
    torch.save(checkpoint, target)
    return target


@pytest.fixture(scope="module")
def good(probe_chips_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    task = SupervisedObjective(
        num_classes={"landcover": 6, "s1_unique": 4, "s2_unique": 4, "synergy": 4},
        proj_dim=8,
        proj_hidden_dim=16,
    )
    return _checkpoint(task, tmp_path_factory.mktemp("fit") / "good.ckpt", probe_chips_dir)


@pytest.fixture(scope="module")
def b10(good: Path) -> Path:
    """The same checkpoint, as if trained on B10 where the store has B11."""
    meta = checkpoint_meta(good)
    bands = [("B10" if b == "B11" else b) for b in meta["bands"]["s2"]]
    normalisation = {**meta["normalisation"], "s2": {**meta["normalisation"]["s2"], "bands": bands}}
    return _rewrite(
        good,
        good.with_name("b10.ckpt"),
        bands={**meta["bands"], "s2": bands},
        normalisation=normalisation,
    )


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_probe_refuses_a_checkpoint_of_other_bands(
    b10: Path, probe_chips_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p"
    result = runner.invoke(
        app, ["probe", "--chips", str(probe_chips_dir), "-o", str(out), "--checkpoint", str(b10)]
    )
    assert result.exit_code == 2, result.output
    line = _one_line(result.output)
    assert str(b10) in line and str(probe_chips_dir) in line
    assert "'B10'" in line and "'B11'" in line
    assert not out.exists()  # refused before any work


@pytest.fixture(scope="module")
def catalog_dir(small_scene_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("catalog")
    build_catalog([folder_source(small_scene_dir)], out)
    return out


def test_embed_refuses_a_checkpoint_of_other_bands(
    b10: Path, good: Path, catalog_dir: Path, probe_chips_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "e"
    result = runner.invoke(app, ["embed", str(b10), str(catalog_dir), "-o", str(out)])
    assert result.exit_code == 2, result.output
    line = _one_line(result.output)
    assert str(b10) in line and "['B10'] missing" in line
    assert not out.exists()
    # The chip store given for per-chip tables is checked too, before any raster is written.
    result = runner.invoke(
        app,
        ["embed", str(b10), str(catalog_dir), "-o", str(out), "--chips-dir", str(probe_chips_dir)],
    )
    assert result.exit_code == 2 and str(b10) in _one_line(result.output)
    assert not out.exists()


def test_training_refuses_to_resume_on_a_store_of_other_bands(
    b10: Path, probe_chips_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        app,
        ["train", "--config", str(REPO / "tests" / "conf" / "clip_tiny.yaml"),
         "--data.chips_dir", str(probe_chips_dir), "--trainer.default_root_dir", str(tmp_path),
         "--ckpt_path", str(b10)],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    line = _one_line(result.output)
    assert str(b10) in line and "'B10'" in line


def test_chip_size_and_normalisation_are_checked(good: Path, probe_chips_dir: Path) -> None:
    meta = checkpoint_meta(good)
    check_fits_store(good, meta, probe_chips_dir)  # the store it was made from fits
    with pytest.raises(ConfigError, match=r"has 32 px chips, but checkpoint .* on 64 px"):
        check_fits_store(good, {**meta, "chip_size": 64}, probe_chips_dir)
    broken = {**meta["normalisation"]["s1"], "std": [1.0, 0.0]}
    with pytest.raises(ConfigError, match="S1 normalisation does not fit"):
        check_fits_store(good, {**meta, "normalisation": {**meta["normalisation"], "s1": broken}},
                         probe_chips_dir)  # fmt: skip
    # Resuming normalises with the store's statistics: they must be the checkpoint's.
    other = {**meta["normalisation"], "s1": {**meta["normalisation"]["s1"], "mean": [0.0, 0.0]}}
    with pytest.raises(ConfigError, match="resuming would train on other inputs"):
        check_fits_store(good, meta, probe_chips_dir, normalisation=other)
    # Rasters are read by band name: a superset in another order fits.
    raster = {"s2": [*reversed(meta["bands"]["s2"]), "B10"], "s1": ["VH", "VV"]}
    check_fits_data(good, meta, "scene.tif", raster, by_name=True)
