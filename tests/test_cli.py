"""The eo-mmcl command line: help texts, the two stages, clear errors with non-zero exits."""

from __future__ import annotations

import errno
import os
import shutil
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
        app,
        ["simulate", "-o", str(scenes), "--size", "128", "--seed", "2", "--scenes", "2", "--quiet"],
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
    result = runner.invoke(app, ["simulate", "-o", str(tmp_path / "s"), "--cloud-fraction", "2"])
    assert result.exit_code == 2
    assert "cloud_fraction" in result.output


def test_simulate_takes_o_and_the_old_positional_folder_with_a_notice(tmp_path: Path) -> None:
    new = runner.invoke(app, ["simulate", "-o", str(tmp_path / "a"), "--size", "128", "--quiet"])
    assert new.exit_code == 0 and "deprecated" not in new.output, new.output
    old = runner.invoke(app, ["simulate", str(tmp_path / "b"), "--size", "128", "--quiet"])
    assert old.exit_code == 0, old.output
    assert "deprecated: `eo-mmcl simulate DIR` is now `eo-mmcl simulate -o DIR`" in old.output
    same = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert same == sorted(p.name for p in (tmp_path / "b").iterdir())
    none = runner.invoke(app, ["simulate", "--size", "128"])
    assert "give the output folder with -o OUT" in _one_line_error(none)
    both = runner.invoke(app, ["simulate", str(tmp_path / "c"), "-o", str(tmp_path / "d")])
    assert "two output folders given" in both.output and both.exit_code == 2
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_progress_and_quiet_are_one_switch(tmp_path: Path) -> None:
    help_text = runner.invoke(app, ["tile", "--help"], terminal_width=200).output
    assert "--progress" in help_text and "--quiet" in help_text
    for flag in ("--quiet", "--no-progress", "--progress"):
        result = runner.invoke(app, ["simulate", "-o", str(tmp_path / flag), "--size", "128", flag])
        assert result.exit_code == 0, result.output


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[-1]


def test_bad_numbers_are_one_line_errors(tmp_path: Path) -> None:
    seed = runner.invoke(app, ["simulate", "-o", str(tmp_path / "s"), "--seed", "-1"])
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
    assert (
        runner.invoke(app, ["simulate", "-o", str(scenes), "--size", "128", "--quiet"]).exit_code
        == 0
    )
    result = runner.invoke(
        app, ["catalog", str(scenes), "-o", str(tmp_path / "cat"), "--max-days", "1", "--quiet"]
    )
    assert result.exit_code == 2
    assert "no S1/S2 pair" in result.output and "Traceback" not in result.output
    assert (tmp_path / "cat" / "failed" / "pairs.parquet").is_file()
    assert not (tmp_path / "cat" / "pairs.parquet").exists()


# -- damaged, vanished and unwritable inputs: one line, exit 2, nothing good lost ------------


@pytest.fixture(scope="module")
def catalogued(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 256 px simulated pair and its catalog (3 x 3 chips of 64 px: smaller than one block)."""
    root = tmp_path_factory.mktemp("catalogued")
    args = ["simulate", "-o", str(root / "scenes"), "--size", "256", "--seed", "1", "--quiet"]
    assert runner.invoke(app, args).exit_code == 0
    args = ["catalog", str(root / "scenes"), "-o", str(root / "cat"), "--min-overlap-km2", "0.5"]
    assert runner.invoke(app, [*args, "--quiet"]).exit_code == 0
    return root


def _tile(catalog: Path, out: Path, *extra: str) -> Any:
    return runner.invoke(
        app, ["tile", str(catalog), "-o", str(out), "--workers", "0", "--quiet", *extra]
    )


def test_a_truncated_catalog_table_is_named(catalogued: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "cat"
    shutil.copytree(catalogued / "cat", catalog)
    pairs = catalog / "pairs.parquet"
    pairs.write_bytes(pairs.read_bytes()[: pairs.stat().st_size // 2])
    line = _one_line_error(_tile(catalog, tmp_path / "chips", "--chip-size", "32"))
    assert f"{pairs}: not a readable GeoParquet table" in line and "eo-mmcl catalog" in line
    assert not (tmp_path / "chips" / "chips.zarr").exists()


def test_rasters_deleted_after_cataloguing_are_named_before_tiling(tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    assert (
        runner.invoke(app, ["simulate", "-o", str(scenes), "--size", "128", "--quiet"]).exit_code
        == 0
    )
    args = ["catalog", str(scenes), "-o", str(tmp_path / "cat"), "--min-overlap-km2", "0.5"]
    assert runner.invoke(app, [*args, "--quiet"]).exit_code == 0
    (s1,) = scenes.glob("*_S1_*.tif")
    s1.unlink()
    line = _one_line_error(_tile(tmp_path / "cat", tmp_path / "chips", "--split-block", "1"))
    assert str(s1) in line and "no longer there" in line
    assert not (tmp_path / "chips" / "chips.zarr").exists()


def test_split_blocks_larger_than_the_scene_are_refused(catalogued: Path, tmp_path: Path) -> None:
    # 3 x 3 chips and the default 8-chip blocks: every chip would land in one split.
    line = _one_line_error(_tile(catalogued / "cat", tmp_path / "chips"))
    assert "no chip windows for the val and test split" in line
    assert "use a smaller --split-block" in line and "--split-block 8" in line
    assert not (tmp_path / "chips" / "chips.zarr").exists()
    # Blocks of 3 chips of 32 px leave chips in every split.
    ok = _tile(
        catalogued / "cat", tmp_path / "chips", "--chip-size", "32", "--split-block", "3",
        "--max-cloud", "0.3",
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "chips_val=0" not in ok.output and "chips_test=0" not in ok.output


def test_simulate_onto_a_file_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("keep me")
    line = _one_line_error(runner.invoke(app, ["simulate", "-o", str(target), "--size", "64"]))
    assert f"{target}: is a file" in line
    assert target.read_text() == "keep me"


@pytest.mark.parametrize(
    ("code", "reason", "hint"),
    [
        (errno.ENOSPC, "No space left on device", "free some space"),
        (errno.EROFS, "Read-only file system", "writable output folder"),
    ],
)
def test_a_full_disk_or_read_only_folder_is_one_line_and_keeps_the_tables(
    catalogued: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, reason: str,
    hint: str,
) -> None:  # fmt: skip
    catalog = tmp_path / "cat"
    shutil.copytree(catalogued / "cat", catalog)
    before = {p.name: p.read_bytes() for p in catalog.glob("*.parquet")}

    def refuse(src: str, dst: str) -> None:
        raise OSError(code, os.strerror(code), str(dst))

    # The disk fills (or the folder turns read-only) when the first table is moved into place.
    monkeypatch.setattr("eo_mmcl.io.atomic.os.replace", refuse)
    args = ["catalog", str(catalogued / "scenes"), "-o", str(catalog), "--min-overlap-km2", "0.5"]
    line = _one_line_error(runner.invoke(app, [*args, "--quiet"]))
    assert reason in line and hint in line and str(catalog) in line
    assert {p.name: p.read_bytes() for p in catalog.glob("*.parquet")} == before
    assert not list(catalog.glob(".*tmp*"))  # no half-written table left behind


def test_a_full_disk_deep_in_a_writer_names_the_output_folder(
    catalogued: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Zarr's write() reports only the errno, no file name.
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("eo_mmcl.tile.worker.write_chunk", full)
    out = tmp_path / "chips"
    args = ("--chip-size", "32", "--split-block", "3", "--max-cloud", "0.3")
    line = _one_line_error(_tile(catalogued / "cat", out, *args))
    assert line == (
        f"error: {out}: No space left on device (while writing); free some space and rerun: "
        "finished outputs are kept, nothing is half-written"
    )
    assert not (out / "tile_manifest.json").exists()


def test_the_command_line_loads_without_torch() -> None:
    """`eo-mmcl --help` (and every command's parsing) must not pay for torch and Lightning."""
    import subprocess
    import sys

    code = (
        "import sys, eo_mmcl.cli; "
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    from eo_mmcl import theory

    assert callable(theory.run_linear_lab)  # the lab still loads on first use
