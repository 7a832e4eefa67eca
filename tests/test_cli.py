"""The eo-mmcl command line: help texts, the two stages, clear errors with non-zero exits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from typer.testing import CliRunner

from eo_mmcl.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_help_lists_stages() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "simulate" in result.output and "catalog" in result.output


@pytest.mark.parametrize("command", ["simulate", "catalog"])
def test_subcommand_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_simulate_then_catalog(tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    result = runner.invoke(
        app, ["simulate", str(scenes), "--size", "128", "--seed", "2", "--scenes", "2", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "scenes=2" in result.output
    assert len(list(scenes.glob("*_S2_*.tif"))) == 2
    result = runner.invoke(
        app,
        [
            "catalog",
            str(scenes),
            "-o",
            str(tmp_path / "cat"),
            "--min-overlap-km2",
            "0.5",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "pairs=2" in result.output and "rejected=0" in result.output
    assert len(gpd.read_parquet(tmp_path / "cat" / "pairs.parquet")) == 2


def test_bad_input_exits_non_zero_with_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["catalog", str(tmp_path / "nowhere"), "-o", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "no such folder" in result.output
    result = runner.invoke(app, ["simulate", str(tmp_path / "s"), "--cloud-fraction", "2"])
    assert result.exit_code == 2
    assert "cloud_fraction" in result.output


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[-1]


def test_bad_numbers_are_one_line_errors(tmp_path: Path) -> None:
    seed = runner.invoke(app, ["simulate", str(tmp_path / "s"), "--seed", "-1"])
    assert "seed must be >= 0, got -1" in _one_line_error(seed)
    assert not (tmp_path / "s").exists()
    config = str(REPO / "tests" / "conf" / "clip_tiny.yaml")
    for option, value in (("batch_size", "0"), ("num_workers", "-1")):
        train = runner.invoke(
            app,
            ["train", "--config", config, "--data.chips_dir", str(tmp_path), f"--data.{option}",
             value],
        )  # fmt: skip
        # The line names the option (LightningCLI may log its seed before it).
        assert f"data.{option} must be >=" in train.output.splitlines()[-1]
        assert train.exit_code == 2 and "Traceback" not in train.output


def test_no_pairs_is_an_error(tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    assert runner.invoke(app, ["simulate", str(scenes), "--size", "128", "--quiet"]).exit_code == 0
    result = runner.invoke(
        app, ["catalog", str(scenes), "-o", str(tmp_path / "cat"), "--max-days", "1", "--quiet"]
    )
    assert result.exit_code == 2
    assert "no S1/S2 pair" in result.output and "Traceback" not in result.output
    assert (tmp_path / "cat" / "failed" / "pairs.parquet").is_file()
    assert not (tmp_path / "cat" / "pairs.parquet").exists()
