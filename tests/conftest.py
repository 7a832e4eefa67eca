"""Shared fixtures: small seeded simulated scenes and the real-data folder (skipped if absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eo_mmcl.simulate import SimulatedScene, SimulationConfig, simulate_scenes

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
