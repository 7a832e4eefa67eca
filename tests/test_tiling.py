"""Tiling into the chip store: geometry, splits, statistics, resumability, bad input."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import zarr
from affine import Affine
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from eo_mmcl.catalog import CatalogConfig, build_catalog, folder_source
from eo_mmcl.errors import ConfigError, SourceError
from eo_mmcl.simulate import SimulationConfig, simulate_scenes
from eo_mmcl.tile import TileConfig, open_store, store_metadata, tile_catalog
from eo_mmcl.tile import run as tile_module
from eo_mmcl.tile.integrity import check_store

CONFIG = TileConfig(chip_size=32, split_block=3, max_cloud=0.2, chips_per_chunk=8)


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiling")
    simulate_scenes(root / "scenes", SimulationConfig(size=384, seed=4, parcel_size=32))
    build_catalog([folder_source(root / "scenes")], root / "catalog")
    return root / "catalog"


@pytest.fixture(scope="module")
def chips_dir(catalog_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chips")
    tile_catalog(catalog_dir, out, CONFIG, workers=0)
    return out


def _index(chips_dir: Path) -> gpd.GeoDataFrame:
    return gpd.read_parquet(chips_dir / "index.parquet")


def test_store_layout_and_counts(chips_dir: Path) -> None:
    group = open_store(chips_dir)
    index = _index(chips_dir)
    meta = store_metadata(group)
    n = meta["layout"]["n_slots"]
    assert group["s2"].shape == (n, 12, 32, 32) and group["s2"].dtype == np.uint16
    assert group["s1"].shape == (n, 2, 32, 32) and group["s1"].dtype == np.float32
    for task in ("landcover", "s1_unique", "s2_unique", "synergy"):
        assert group[task].shape == (n, 32, 32)
    assert meta["layout"]["tasks"]["s1_unique"]["group"] == "U1"
    assert meta["layout"]["tasks"]["landcover"]["num_classes"] == 6
    counts = meta["counts"]
    assert counts["chips"] == len(index) > 20
    assert (
        counts["candidates"]
        == counts["chips"] + counts["rejected_nodata"] + counts["rejected_cloud"]
    )
    assert set(index["split"]) <= {"train", "val", "test"}
    assert index["nodata_fraction"].max() <= CONFIG.max_nodata
    assert index["cloud_fraction"].max() <= CONFIG.max_cloud
    assert index.crs.to_epsg() == 4326 and index["crs"].eq("EPSG:32633").all()


def test_chip_pixels_match_direct_reads(chips_dir: Path, catalog_dir: Path) -> None:
    group = open_store(chips_dir)
    index = _index(chips_dir)
    scenes = catalog_dir.parent / "scenes"
    for row in index.iloc[:: max(1, len(index) // 5)].itertuples():
        s2_path = next(scenes.glob(f"{row.scene}_S2_*.tif"))
        transform = Affine(*row.transform)
        window = Window(row.col_off, row.row_off, 32, 32)
        with rasterio.open(s2_path) as ds:
            # The chip's transform maps back onto the S2 grid at the stored offsets.
            assert ds.window_transform(window) == transform
            np.testing.assert_array_equal(group["s2"][row.store_index], ds.read(window=window))
        label = next(scenes.glob(f"{row.scene}_label-landcover_*.tif"))
        with rasterio.open(label) as ds:
            np.testing.assert_array_equal(
                group["landcover"][row.store_index], ds.read(1, window=window)
            )
        # S1: an independent resampling of the whole S1 raster onto the chip grid, in power.
        s1_path = next(scenes.glob(f"{row.scene}_S1_*.tif"))
        expected = np.full((2, 32, 32), np.nan, dtype=np.float32)
        with rasterio.open(s1_path) as ds:
            reproject(
                10 ** (ds.read() / 10),
                expected,
                src_transform=ds.transform,
                src_crs=ds.crs,
                dst_transform=transform,
                dst_crs=ds.crs,
                resampling=Resampling.bilinear,
                src_nodata=np.nan,
                dst_nodata=np.nan,
            )
        chip = group["s1"][row.store_index]
        both = np.isfinite(chip) & np.isfinite(expected)
        assert both.mean() > 0.95
        np.testing.assert_allclose(chip[both], 10 * np.log10(expected[both]), atol=1e-3)


def test_splits_never_touch(chips_dir: Path) -> None:
    index = _index(chips_dir)
    from shapely import wkt

    boxes = gpd.GeoSeries([wkt.loads(w) for w in index["footprint_native"]])
    assert len(set(index["split"])) >= 2
    for i, a in enumerate(boxes):
        near = boxes.index[boxes.intersects(a)]  # touching or overlapping
        assert (index.loc[near, "split"] == index.loc[i, "split"]).all(), index.loc[near]


def test_normalisation_from_train_only(chips_dir: Path) -> None:
    group = open_store(chips_dir)
    index = _index(chips_dir)
    stats = store_metadata(group)["normalisation"]
    train = np.sort(index.loc[index["split"] == "train", "store_index"].to_numpy())
    valid = group["valid"][:][train].astype(bool)
    s2 = group["s2"][:][train].transpose(1, 0, 2, 3)[:, valid].astype(np.float64)
    np.testing.assert_allclose(stats["s2"]["mean"], s2.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(stats["s2"]["std"], s2.std(axis=1), rtol=1e-6)
    s1 = group["s1"][:][train].transpose(1, 0, 2, 3)[:, valid].astype(np.float64)
    np.testing.assert_allclose(stats["s1"]["mean"], s1.mean(axis=1), rtol=1e-6)
    everything = group["s2"][:][np.sort(index["store_index"].to_numpy())]
    all_mean = everything.transpose(1, 0, 2, 3).reshape(12, -1).mean(axis=1)
    assert not np.allclose(all_mean, stats["s2"]["mean"], rtol=1e-6)


def test_rerun_is_a_no_op_and_options_are_guarded(chips_dir: Path, catalog_dir: Path) -> None:
    stamp = (chips_dir / "index.parquet").stat().st_mtime_ns
    result = tile_catalog(catalog_dir, chips_dir, CONFIG, workers=0)
    assert result.reused and (chips_dir / "index.parquet").stat().st_mtime_ns == stamp


def test_unfinished_store_with_other_options_needs_force(catalog_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "chips"
    tile_catalog(catalog_dir, out, CONFIG, workers=0)
    (out / "tile_manifest.json").unlink()  # as if killed before finishing
    with pytest.raises(SourceError, match="--force"):
        tile_catalog(catalog_dir, out, TileConfig(chip_size=16), workers=0)
    result = tile_catalog(catalog_dir, out, TileConfig(chip_size=16), workers=0, force=True)
    assert result.manifest["config"]["chip_size"] == 16


def _file_bytes(chips_dir: Path) -> dict[str, bytes]:
    files = [p for p in chips_dir.rglob("*") if p.is_file() and ".tile" not in p.parts]
    return {p.relative_to(chips_dir).as_posix(): p.read_bytes() for p in files}


def test_a_failed_rebuild_keeps_the_earlier_store_byte_for_byte(
    catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "chips"
    tile_catalog(catalog_dir, out, CONFIG, workers=0)
    before = _file_bytes(out)
    original, calls = tile_module.worker.run_tile_job, []

    def fails_on_the_third(job: tile_module.TileJob) -> dict:
        calls.append(job.number)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return original(job)

    with monkeypatch.context() as patch:
        patch.setattr(tile_module.worker, "run_tile_job", fails_on_the_third)
        with pytest.raises(OSError, match="No space"):
            tile_catalog(catalog_dir, out, CONFIG, workers=0, force=True)
    assert _file_bytes(out) == before
    assert check_store(out, digests=True).ok
    # The earlier store is still the finished store of these options: a rerun keeps it.
    assert tile_catalog(catalog_dir, out, CONFIG, workers=0).reused
    # A rebuild that succeeds replaces it (same options, same bytes), and clears the attempt's.
    tile_catalog(catalog_dir, out, CONFIG, workers=0, force=True)
    assert check_store(out, digests=True).ok
    assert not (out / ".tile" / "chips.zarr").exists()
    unchanged = {k: v for k, v in _file_bytes(out).items() if k != "tile_manifest.json"}
    assert unchanged == {k: v for k, v in before.items() if k != "tile_manifest.json"}


def _store_snapshot(chips_dir: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(chips_dir / "chips.zarr"), mode="r")
    arrays = {name: np.asarray(group[name][:]) for name in group.array_keys()}
    arrays["_index"] = _index(chips_dir).drop(columns="geometry").astype(str).to_numpy()
    return arrays


def _assert_same_store(a: Path, b: Path) -> None:
    sa, sb = _store_snapshot(a), _store_snapshot(b)
    assert sa.keys() == sb.keys()
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)
    ma = store_metadata(open_store(a))
    mb = store_metadata(open_store(b))
    assert ma["normalisation"] == mb["normalisation"] and ma["counts"] == mb["counts"]


def test_dask_local_cluster_matches_single_process(catalog_dir: Path, tmp_path: Path) -> None:
    tile_catalog(catalog_dir, tmp_path / "single", CONFIG, workers=0)
    tile_catalog(catalog_dir, tmp_path / "dask", CONFIG, workers=2)
    _assert_same_store(tmp_path / "single", tmp_path / "dask")


def test_bad_inputs_are_reported_and_the_rest_completes(tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    config = SimulationConfig(size=256, seed=9, parcel_size=32, cloud_fraction=0.0, scenes=2)
    simulate_scenes(scenes, config)
    # Scene 0: S2 without B12 (a band missing from one file).
    s2 = next(scenes.glob("sim-s9-00_S2_*.tif"))
    with rasterio.open(s2) as ds:
        profile, data, names = ds.profile, ds.read(list(range(1, 12))), ds.descriptions[:11]
    profile.update(count=11)
    with rasterio.open(s2, "w", **profile) as ds:
        ds.write(data)
        ds.descriptions = names
        ds.update_tags(
            SENSOR="S2",
            ROLE="image",
            ACQUISITION_DATETIME="2023-06-12T10:00:00Z",
            SCENE_ID="sim-s9-00",
        )
    # Scene 1: NaN backscatter over the top half of S1.
    s1 = next(scenes.glob("sim-s9-01_S1_*.tif"))
    with rasterio.open(s1, "r+") as ds:
        values = ds.read()
        values[:, : ds.height // 2] = np.nan
        ds.write(values)
    build_catalog([folder_source(scenes)], tmp_path / "catalog")
    result = tile_catalog(
        tmp_path / "catalog", tmp_path / "chips", TileConfig(chip_size=32, split_block=2), workers=0
    )
    messages = " ".join(result.manifest["messages"])
    assert "B12" in messages and s2.name in messages
    index = _index(tmp_path / "chips")
    assert set(index["scene"]) == {"sim-s9-01"}
    assert result.manifest["counts"]["rejected_nodata"] > 0
    group = open_store(tmp_path / "chips")
    kept = group["s1"][:][index["store_index"].to_numpy()]
    assert np.isnan(kept).mean() <= 0.05


def test_bad_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="split_fractions"):
        TileConfig(split_fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ConfigError, match="stride"):
        TileConfig(chip_size=32, stride=64)


def test_missing_catalog_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a catalog folder"):
        tile_catalog(tmp_path / "nothing", tmp_path / "chips", CONFIG, workers=0)


@pytest.mark.realdata
def test_real_s2_scene_tiles_s2_only(realdata: Path, tmp_path: Path) -> None:
    from eo_mmcl.catalog import load_source_definition

    repo = Path(__file__).resolve().parents[1]
    source = load_source_definition(repo / "data_catalog" / "realdata_s2_l1c.yaml")
    build_catalog([source], tmp_path / "catalog", CatalogConfig(allow_unpaired=True))
    result = tile_catalog(
        tmp_path / "catalog",
        tmp_path / "chips",
        TileConfig(chip_size=128, s2_only=True, split_block=3),
        workers=0,
    )
    group = open_store(tmp_path / "chips")
    assert "s1" not in group.array_keys()
    assert result.manifest["counts"]["chips"] >= 150
    index = _index(tmp_path / "chips")
    row = index.iloc[0]
    # All 12 bands on the 10 m grid: the 20 m band B05 is resampled, B02 read as is.
    with rasterio.open(realdata / "sentinel2_l1c_scene" / "s2_B02.tif") as ds:
        window = Window(row.col_off, row.row_off, 128, 128)
        np.testing.assert_array_equal(group["s2"][row.store_index][1], ds.read(1, window=window))
    b05 = group["s2"][row.store_index][4].astype(float)
    with rasterio.open(realdata / "sentinel2_l1c_scene" / "s2_B05.tif") as ds:
        coarse = ds.read(1, window=Window(row.col_off // 2 + 1, row.row_off // 2 + 1, 60, 60))
    assert abs(b05.mean() - coarse.mean()) < 0.05 * coarse.mean()


@pytest.mark.realdata
def test_bigearthnet_converts_to_the_same_layout(realdata: Path, tmp_path: Path) -> None:
    from eo_mmcl.datamodules import ChipStoreDataset
    from eo_mmcl.tile.bigearthnet import BIGEARTHNET19_CLASSES, convert_bigearthnet

    result = convert_bigearthnet(realdata / "bigearthnet_v2_sample", tmp_path / "ben")
    assert result.manifest["counts"]["chips"] == 24
    group = open_store(tmp_path / "ben")
    assert group["s2"].shape[1:] == (12, 120, 120) and group["s1"].shape[1:] == (2, 120, 120)
    index = _index(tmp_path / "ben")
    assert set(index["split"]) == {"train", "val", "test"}
    row = index.iloc[0]
    multihot = group["bigearthnet19"][row.store_index]
    assert sorted(BIGEARTHNET19_CLASSES[i] for i in np.flatnonzero(multihot)) == sorted(row.labels)
    sample = ChipStoreDataset(tmp_path / "ben", split="test")[0]
    assert sample["label_bigearthnet19"].shape == (19,)
    assert sample["image_s2"].shape == (12, 120, 120)


def test_chunk_reader_memory_maps_raw_chunks_and_matches_zarr(
    chips_dir: Path, tmp_path: Path
) -> None:
    from eo_mmcl.tile.chunks import ChunkReader

    group = open_store(chips_dir)
    for name in ("s2", "s1", "valid", "landcover"):
        array = group[name]
        reader = ChunkReader(array)
        assert reader.memory_mapped, name
        per = array.chunks[0]
        for chunk in range(-(-array.shape[0] // per)):
            expected = array[chunk * per : (chunk + 1) * per]
            np.testing.assert_array_equal(reader.read(chunk), expected, err_msg=f"{name} {chunk}")
    # Compressed arrays (another writer's store) are read through Zarr.
    other = zarr.open_group(str(tmp_path / "z.zarr"), mode="w")
    packed = other.create_array("x", shape=(5, 3), chunks=(2, 3), dtype="int16", fill_value=-1)
    packed[:4] = np.arange(12).reshape(4, 3)
    reader = ChunkReader(packed)
    assert not reader.memory_mapped
    np.testing.assert_array_equal(reader.read(2), [[-1, -1, -1]])
