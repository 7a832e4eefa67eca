"""The simulator's files: determinism, formats, realistic ranges, grids, knobs and sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

from eo_mmcl.bands import S2_L2A_BANDS
from eo_mmcl.errors import ConfigError
from eo_mmcl.simulate import LABEL_TASKS, SimulatedScene, SimulationConfig, simulate_scenes


def _all_files(scene: SimulatedScene) -> list[Path]:
    return [scene.s2, scene.s1, scene.cloud_mask, scene.parcel_ids, scene.sidecar,
            *scene.labels.values()]  # fmt: skip


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    config = SimulationConfig(size=128, seed=3, parcel_size=16, s1_crs="EPSG:4326")
    a = simulate_scenes(tmp_path / "a", config)[0]
    b = simulate_scenes(tmp_path / "b", config)[0]
    for fa, fb in zip(_all_files(a), _all_files(b), strict=True):
        assert fa.read_bytes() == fb.read_bytes(), fa.name


def test_other_seed_other_scene(tmp_path: Path) -> None:
    a = simulate_scenes(tmp_path / "a", SimulationConfig(size=128, seed=3))[0]
    b = simulate_scenes(tmp_path / "b", SimulationConfig(size=128, seed=4))[0]
    assert a.s2.read_bytes() != b.s2.read_bytes()


def test_s2_format_and_ranges(small_scene: SimulatedScene) -> None:
    with rasterio.open(small_scene.s2) as ds:
        assert ds.count == 12
        assert ds.descriptions == S2_L2A_BANDS
        assert ds.dtypes == ("uint16",) * 12
        assert ds.nodata == 0
        assert ds.res == (10.0, 10.0)
        assert ds.crs.to_epsg() == 32633  # UTM 33N
        assert ds.tags()["SENSOR"] == "S2"
        data = ds.read()
    assert data.min() >= 1  # 0 is reserved for nodata
    # Plausible L2A reflectance: vegetation NIR (B08) well above red (B04) on average,
    # and clear-sky values mostly below 0.6.
    assert np.median(data[7]) > 1.5 * np.median(data[3])
    assert np.percentile(data, 99) < 6000


def test_s1_format_and_ranges(small_scene: SimulatedScene) -> None:
    with rasterio.open(small_scene.s1) as ds:
        assert ds.descriptions == ("VV", "VH")
        assert ds.dtypes == ("float32", "float32")
        assert np.isnan(ds.nodata)
        assert ds.tags()["UNITS"] == "dB"
        vv, vh = ds.read(1), ds.read(2)
    valid = np.isfinite(vv)
    assert 0.5 < valid.mean() < 1.0  # swath edges leave NaN corners
    lo, hi = np.percentile(vv[valid], [1, 99])
    assert lo > -27 and hi < 1, (lo, hi)
    lo, hi = np.percentile(vh[valid], [1, 99])
    assert lo > -33 and hi < -4, (lo, hi)
    assert np.median(vv[valid]) > np.median(vh[valid]) + 4  # co-pol above cross-pol


@pytest.mark.parametrize("enl", [1.0, 4.4, 16.0])
def test_speckle_follows_enl(tmp_path: Path, enl: float) -> None:
    # Gamma speckle of ENL L: mean/std of linear intensity over a homogeneous area is sqrt(L).
    # Measured in 6x6 pixel blocks (texture and parcel edges are small there); median over blocks.
    config = SimulationConfig(size=256, seed=5, parcel_size=100, enl=enl, overlap=1.0)
    scene = simulate_scenes(tmp_path, config)[0]
    with rasterio.open(scene.s1) as ds:
        power = 10 ** (ds.read(1) / 10)
    h, w = (s // 6 * 6 for s in power.shape)
    blocks = power[:h, :w].reshape(h // 6, 6, w // 6, 6).transpose(0, 2, 1, 3).reshape(-1, 36)
    blocks = blocks[np.isfinite(blocks).all(axis=1)]
    ratio = float(np.median(blocks.mean(axis=1) / blocks.std(axis=1, ddof=1)))
    assert ratio == pytest.approx(np.sqrt(enl), rel=0.1)


def test_grids_differ_and_overlap_partially(small_scene: SimulatedScene) -> None:
    with rasterio.open(small_scene.s2) as s2, rasterio.open(small_scene.s1) as s1:
        assert s1.res != s2.res
        assert s1.transform.c != s2.transform.c and s1.transform.f != s2.transform.f
        # Partial overlap: each footprint extends beyond the other.
        assert s1.bounds.right > s2.bounds.right and s1.bounds.left > s2.bounds.left


def test_s1_on_another_crs(tmp_path: Path) -> None:
    config = SimulationConfig(size=128, seed=1, s1_crs="EPSG:32634")
    scene = simulate_scenes(tmp_path, config)[0]
    with rasterio.open(scene.s1) as ds:
        assert ds.crs.to_epsg() == 32634
        assert np.isfinite(ds.read(1)).mean() > 0.5


def test_every_output_opens_with_rasterio_and_xarray(small_scene: SimulatedScene) -> None:
    for path in [small_scene.s2, small_scene.s1, small_scene.cloud_mask, small_scene.parcel_ids,
                 *small_scene.labels.values()]:  # fmt: skip
        with rasterio.open(path) as ds:
            assert ds.crs is not None, path
        with xr.open_dataset(path, engine="rasterio") as data:
            band = data["band_data"]
            assert band.rio.crs is not None, path
            assert band.sizes["y"] > 0


def test_labels_and_masks(small_scene: SimulatedScene, small_config: SimulationConfig) -> None:
    k = small_config.unique_classes
    for task, path in small_scene.labels.items():
        with rasterio.open(path) as ds:
            assert ds.dtypes == ("uint8",)
            assert ds.nodata == 255
            assert ds.tags()["INFORMATION_GROUP"] == LABEL_TASKS[task]
            values = ds.read(1)
        limit = 6 if task == "landcover" else k
        assert values.max() < limit
    with (
        rasterio.open(small_scene.labels["synergy"]) as a,
        rasterio.open(small_scene.labels["s1_unique"]) as b,
        rasterio.open(small_scene.labels["s2_unique"]) as c,
    ):
        np.testing.assert_array_equal(a.read(1), (b.read(1).astype(int) + c.read(1)) % k)
    with rasterio.open(small_scene.cloud_mask) as ds:
        cloud = ds.read(1).astype(bool)
    assert abs(cloud.mean() - small_config.cloud_fraction) < 0.08
    with rasterio.open(small_scene.s2) as ds:
        blue = ds.read(2).astype(float)
    assert blue[cloud].mean() > 2 * blue[~cloud].mean()  # clouds are bright


def test_sidecar_holds_knobs_and_truth(small_scene: SimulatedScene, small_config) -> None:
    meta = json.loads(small_scene.sidecar.read_text())
    assert meta["config"] == small_config.to_dict()
    parcels = meta["parcels"]
    n = meta["realised"]["n_parcels"]
    assert all(len(v) == n for v in parcels.values())
    assert meta["scale"]["recommended_max_chip_px"] == small_config.parcel_size // 2
    syn = (np.array(parcels["s1_unique"]) + parcels["s2_unique"]) % small_config.unique_classes
    np.testing.assert_array_equal(syn, parcels["synergy"])
    with (
        rasterio.open(small_scene.parcel_ids) as p,
        rasterio.open(small_scene.labels["landcover"]) as lc,
    ):
        ids, cover = p.read(1), lc.read(1)
    np.testing.assert_array_equal(np.array(parcels["landcover_s2"])[ids], cover)


def test_change_fraction_changes_s1_landcover(tmp_path: Path) -> None:
    scene = simulate_scenes(tmp_path, SimulationConfig(size=256, parcel_size=16,
                                                       change_fraction=0.5))[0]  # fmt: skip
    parcels = json.loads(scene.sidecar.read_text())["parcels"]
    changed = np.array(parcels["changed"])
    assert 0.4 < changed.mean() < 0.6
    s1, s2 = np.array(parcels["landcover_s1"]), np.array(parcels["landcover_s2"])
    assert np.all((s1 != s2) == changed)


def test_rerun_skips_complete_scene_and_force_rewrites(tmp_path: Path) -> None:
    config = SimulationConfig(size=128)
    scene = simulate_scenes(tmp_path, config)[0]
    stamp = scene.s2.stat().st_mtime_ns
    simulate_scenes(tmp_path, config)
    assert scene.s2.stat().st_mtime_ns == stamp
    simulate_scenes(tmp_path, config, force=True)
    assert scene.s2.stat().st_mtime_ns != stamp


def test_no_temporary_files_left(small_scene_dir: Path) -> None:
    assert not [p for p in small_scene_dir.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"size": 10}, "size"),
        ({"cloud_fraction": 1.5}, "cloud_fraction"),
        ({"unique_classes": 1}, "unique_classes"),
        ({"s1_crs": "EPSG:999999"}, "CRS"),
        ({"s2_date": "June"}, "s2_date"),
        ({"enl": 0}, "enl"),
    ],
)
def test_bad_knobs_are_clear_errors(knobs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SimulationConfig(**knobs)
