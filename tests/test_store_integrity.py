"""Integrity of the chip store: a missing or altered chunk is refused by every reader."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from eo_mmcl.catalog import build_catalog, folder_source
from eo_mmcl.cli import app
from eo_mmcl.datamodules import ChipStoreDataset, PairedS1S2DataModule
from eo_mmcl.embed.chips import chip_embeddings
from eo_mmcl.embed.model import EmbeddingModel
from eo_mmcl.errors import StoreIntegrityError
from eo_mmcl.objectives import CLIPObjective
from eo_mmcl.probe import load_chip_labels
from eo_mmcl.probe.embeddings import extract_embeddings, load_objective
from eo_mmcl.simulate import SimulationConfig, simulate_scenes
from eo_mmcl.tile import TileConfig, tile_catalog
from eo_mmcl.tile.integrity import (
    INTEGRITY_KEY,
    UnverifiedStoreWarning,
    check_store,
    ensure_intact,
)
from tests.conftest import _checkpoint

#: The chunk every damage test breaks: a middle S2 chunk (8 chips per chunk, several chunks).
CHUNK = "c/1/0/0/0"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("integrity")
    simulate_scenes(root / "scenes", SimulationConfig(size=256, seed=3, parcel_size=32))
    build_catalog([folder_source(root / "scenes")], root / "catalog")
    config = TileConfig(chip_size=32, split_block=2, max_cloud=0.3, chips_per_chunk=8)
    tile_catalog(root / "catalog", root / "chips", config, workers=0)
    torch.manual_seed(0)
    checkpoint = _checkpoint(
        CLIPObjective(proj_dim=8, proj_hidden_dim=16), root / "clip.ckpt", root / "chips"
    )
    return {"catalog": root / "catalog", "chips": root / "chips", "checkpoint": checkpoint}


def _delete(chunk: Path) -> None:
    chunk.unlink()


def _alter(chunk: Path) -> None:
    # Same size, one byte changed: only the digest can tell.
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))


DAMAGE: dict[str, Callable[[Path], None]] = {"deleted": _delete, "altered": _alter}
MESSAGE = {"deleted": "is missing", "altered": "was altered"}


@pytest.fixture(params=sorted(DAMAGE))
def damaged(request: pytest.FixtureRequest, world: dict[str, Path], tmp_path: Path) -> tuple:
    chips = tmp_path / "chips"
    shutil.copytree(world["chips"], chips)
    DAMAGE[request.param](chips / "chips.zarr" / "s2" / CHUNK)
    return chips, request.param


def _expect(damage: str) -> str:
    return f"chunk {CHUNK} of array 's2' {MESSAGE[damage]}"


def test_manifest_records_every_chunk_and_the_store_is_intact(world: dict[str, Path]) -> None:
    manifest = json.loads((world["chips"] / "tile_manifest.json").read_text())
    record = manifest[INTEGRITY_KEY]
    chunk_files = sorted((world["chips"] / "chips.zarr" / "s2" / "c").rglob("*"))
    s2 = record["arrays"]["s2"]
    assert s2["chunks"] == sum(p.is_file() for p in chunk_files) == s2["grid_chunks"] >= 3
    assert f"chips.zarr/s2/{CHUNK}" in record["files"] and "index.parquet" in record["files"]
    for size, digest in record["files"].values():
        assert size >= 0 and len(digest) == 64
    check = check_store(world["chips"], digests=True)
    assert check.ok and check.digests and "status=ok" in check.summary()


def test_datamodule_refuses_a_damaged_store(damaged: tuple) -> None:
    chips, damage = damaged
    with pytest.raises(StoreIntegrityError, match=_expect(damage)):
        ChipStoreDataset(chips, split="train")
    with pytest.raises(StoreIntegrityError, match=_expect(damage)):
        PairedS1S2DataModule(chips).setup("fit")


def test_probes_refuse_a_damaged_store(damaged: tuple, world: dict[str, Path]) -> None:
    chips, damage = damaged
    with pytest.raises(StoreIntegrityError, match=_expect(damage)):
        load_chip_labels(chips)
    task = load_objective(world["checkpoint"])
    with pytest.raises(StoreIntegrityError, match=_expect(damage)):
        extract_embeddings(task, chips, torch.arange(4).numpy())
    result = CliRunner().invoke(
        app,
        ["probe", "--chips", str(chips), "--checkpoint", str(world["checkpoint"]),
         "-o", str(chips.parent / "probes")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert _expect(damage) in result.output and "Traceback" not in result.output


def test_export_refuses_a_damaged_store(damaged: tuple, world: dict[str, Path]) -> None:
    chips, damage = damaged
    model = EmbeddingModel.load(world["checkpoint"])
    with pytest.raises(StoreIntegrityError, match=_expect(damage)):
        chip_embeddings(model, chips, ["joint"], {"joint": chips.parent / "x.parquet"})
    out = chips.parent / "export"
    result = CliRunner().invoke(
        app,
        ["embed", str(world["checkpoint"]), str(world["catalog"]), "-o", str(out),
         "--chips-dir", str(chips), "--no-preview"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert _expect(damage) in result.output and "Traceback" not in result.output
    assert not any(out.glob("*.tif")), "the store is checked before any raster is written"


def test_tile_verify_reports_a_damaged_store_and_exits_2(damaged: tuple) -> None:
    chips, damage = damaged
    result = CliRunner().invoke(app, ["tile", "--verify", str(chips)])
    assert result.exit_code == 2, result.output
    assert "status=damaged" in result.output and "problems=1" in result.output
    assert _expect(damage) in result.output


def test_tile_verify_passes_an_intact_store(world: dict[str, Path]) -> None:
    result = CliRunner().invoke(app, ["tile", "--verify", str(world["chips"])])
    assert result.exit_code == 0, result.output
    assert "status=ok" in result.output and "digests=checked" in result.output


def test_truncated_chunk_and_stray_chunk_are_caught_without_digests(
    world: dict[str, Path], tmp_path: Path
) -> None:
    chips = tmp_path / "chips"
    shutil.copytree(world["chips"], chips)
    chunk = chips / "chips.zarr" / "s2" / CHUNK
    chunk.write_bytes(chunk.read_bytes()[:100])
    stray = chips / "chips.zarr" / "valid" / "c" / "99" / "0" / "0"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"\0" * 10)
    check = check_store(chips, digests=False)
    assert not check.digests and len(check.problems) == 2
    assert f"chunk {CHUNK} of array 's2' was altered (100 bytes" in check.problems[0]
    assert "chunk c/99/0/0 of array 'valid' is not in the manifest" in check.problems[1]
    with pytest.raises(StoreIntegrityError, match=r"\(and 1 more problems\)"):
        ensure_intact(chips, digests=False)


def test_store_written_before_digests_gets_a_clear_message(
    world: dict[str, Path], tmp_path: Path
) -> None:
    chips = tmp_path / "chips"
    shutil.copytree(world["chips"], chips)
    manifest_path = chips / "tile_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest[INTEGRITY_KEY]
    manifest_path.write_text(json.dumps(manifest))
    # Readers still read it, and say that it cannot be checked.
    with pytest.warns(UnverifiedStoreWarning, match="records no chunk digests"):
        dataset = ChipStoreDataset(chips, split=None)
    assert len(dataset) > 0
    result = CliRunner().invoke(app, ["tile", "--verify", str(chips)])
    assert result.exit_code == 2, result.output
    assert "records no chunk digests" in result.output and "Traceback" not in result.output
    # A rerun of the same tiling rebuilds it with digests instead of leaving it as it was.
    config = TileConfig(chip_size=32, split_block=2, max_cloud=0.3, chips_per_chunk=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedStoreWarning)
        rerun = tile_catalog(world["catalog"], chips, config, workers=0)
        assert not rerun.reused and INTEGRITY_KEY in rerun.manifest
        assert check_store(chips, digests=True).ok


def test_verify_of_a_folder_that_is_not_a_store_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tile", "--verify", str(tmp_path)])
    assert result.exit_code == 2 and "not a complete chip store" in result.output
