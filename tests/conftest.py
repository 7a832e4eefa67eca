"""Shared fixtures: small seeded simulated scenes and the real-data folder (skipped if absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from eo_mmcl.catalog import build_catalog, folder_source
from eo_mmcl.cli import app
from eo_mmcl.objectives import CLIPObjective, SupervisedObjective
from eo_mmcl.simulate import SimulatedScene, SimulationConfig, simulate_scenes
from eo_mmcl.tile import TileConfig, tile_catalog

REPO_ROOT = Path(__file__).resolve().parents[1]
REALDATA = REPO_ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def small_config() -> SimulationConfig:
    """A 256 px scene: big enough for partial overlap, clouds and several parcels."""
    return SimulationConfig(size=256, seed=7, parcel_size=32, cloud_fraction=0.2)


@pytest.fixture(scope="session")
def small_scene_dir(
    tmp_path_factory: pytest.TempPathFactory, small_config: SimulationConfig
) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate_scenes(out, small_config)
    return out


@pytest.fixture(scope="session")
def small_scene(small_scene_dir: Path, small_config: SimulationConfig) -> SimulatedScene:
    return simulate_scenes(small_scene_dir, small_config)[0]


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real Sentinel samples; tests that need them skip where the folder is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real Sentinel samples not found at {REALDATA} (../shared/realdata)")
    return REALDATA


# -- a small probe run (tests/test_probes.py, tests/test_report.py) ---------------------------


def small_chip_store(
    root: Path, seed: int, size: int = 256, split_block: int = 2, unique_classes: int = 2
) -> Path:
    """Simulate a scene pair, catalogue it and tile it into 32 px chips under ``root``.

    Args:
        root: Folder for scenes, catalog and chips.
        seed: Simulator seed.
        size: Scene side in pixels.
        split_block: Spatial split block in chips.
        unique_classes: Classes of the unique attributes and of the synergy target.

    Returns:
        The chip store.
    """
    simulate_scenes(
        root / "scenes",
        SimulationConfig(size=size, seed=seed, parcel_size=32, unique_classes=unique_classes),
    )
    build_catalog([folder_source(root / "scenes")], root / "catalog")
    tile_catalog(
        root / "catalog",
        root / "chips",
        TileConfig(chip_size=32, split_block=split_block, max_cloud=0.3),
        workers=0,
    )
    return root / "chips"


@pytest.fixture(scope="session")
def probe_chips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_chip_store(tmp_path_factory.mktemp("probe"), seed=5)


def _checkpoint(task: torch.nn.Module, path: Path, chips: Path) -> Path:
    """A checkpoint as ``eo-mmcl train`` writes it (untrained weights suffice here)."""
    from eo_mmcl.datamodules import PairedS1S2DataModule

    dm = PairedS1S2DataModule(chips)
    task.data_meta = {"bands": dm.bands, "normalisation": dm.normalisation}
    checkpoint = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
        "pytorch-lightning_version": "2.4.0",
        "epoch": 0,
        "global_step": 0,
    }
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def probe_run(probe_chips_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ckpt")
    tiny = {"proj_dim": 8, "proj_hidden_dim": 16}
    torch.manual_seed(1)
    sup = SupervisedObjective(
        num_classes={"landcover": 6, "s1_unique": 4, "s2_unique": 4, "synergy": 4}, **tiny
    )
    clip = CLIPObjective(**tiny)
    paths = [
        _checkpoint(sup, root / "supervised.ckpt", probe_chips_dir),
        _checkpoint(clip, root / "clip.ckpt", probe_chips_dir),
    ]
    out = root / "probes"
    result = CliRunner().invoke(
        app,
        ["probe", "--chips", str(probe_chips_dir), "-o", str(out), "--seeds", "2",
         *[a for p in paths for a in ("--checkpoint", str(p))]],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "rows=" in result.output
    return out
