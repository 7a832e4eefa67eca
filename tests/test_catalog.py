"""The catalog: rasters, pairs with their shared footprint, rejections and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import rasterio
from affine import Affine
from shapely import wkt
from shapely.geometry import box

from eo_mmcl.catalog import (
    CatalogConfig,
    build_catalog,
    folder_source,
    load_source_definition,
    read_catalog,
)
from eo_mmcl.catalog.pixels import edge_blocks, pixel_problem
from eo_mmcl.errors import ConfigError, NoPairsError, SourceError
from eo_mmcl.geo import footprint_to_crs
from eo_mmcl.simulate import SimulatedScene, SimulationConfig, simulate_scenes

REPO = Path(__file__).resolve().parents[1]


def _expected_shared_footprint(scene: SimulatedScene):
    grids = json.loads(scene.sidecar.read_text())["grids"]
    s2 = box(*grids["s2"]["bounds"])
    s1 = footprint_to_crs(box(*grids["s1"]["bounds"]), grids["s1"]["crs"], grids["s2"]["crs"])
    return s2.intersection(s1)


def test_simulator_output_pairs_with_right_footprint(
    small_scene_dir: Path, small_scene: SimulatedScene, tmp_path: Path
) -> None:
    catalog = build_catalog([folder_source(small_scene_dir)], tmp_path)
    assert len(catalog.pairs) == 1
    pair = catalog.pairs.iloc[0]
    assert pair["s2_id"].endswith(small_scene.s2.stem)
    assert pair["s1_id"].endswith(small_scene.s1.stem)
    assert pair["time_gap_days"] == pytest.approx(2.0)
    shared = wkt.loads(pair["shared_footprint_native"])
    expected = _expected_shared_footprint(small_scene)
    assert shared.symmetric_difference(expected).area < 1e-6 * expected.area
    # 80% overlap by construction, up to the sub-pixel origin offset.
    assert pair["overlap_fraction_s2"] == pytest.approx(0.8, abs=0.01)
    assert pair["overlap_km2"] == pytest.approx(expected.area / 1e6, rel=0.01)
    # Catalog rows: the two images plus labels, cloud mask and parcel ids on the S2 grid.
    rasters = catalog.rasters
    s2 = rasters[(rasters["sensor"] == "S2") & (rasters["role"] == "image")].iloc[0]
    assert list(s2["band_names"])[:3] == ["B01", "B02", "B03"] and s2["nodata"] == 0
    assert s2["res_x"] == 10 and s2["width"] == 256 and s2["crs"] == "EPSG:32633"
    assert s2["datetime"] == pd.Timestamp("2023-06-12T10:00:00Z")
    labels = rasters[rasters["role"] == "label"]
    assert sorted(labels["task"]) == ["landcover", "s1_unique", "s2_unique", "synergy"]
    assert set(labels["scene"]) == {small_scene.scene_id}


def test_catalog_files_are_geoparquet(small_scene_dir: Path, tmp_path: Path) -> None:
    build_catalog([folder_source(small_scene_dir)], tmp_path)
    for name in ("rasters.parquet", "pairs.parquet"):
        assert b"geo" in pq.read_schema(tmp_path / name).metadata
        frame = gpd.read_parquet(tmp_path / name)
        assert frame.crs.to_epsg() == 4326
        assert frame.geometry.is_valid.all()
    catalog = read_catalog(tmp_path)
    assert len(catalog.rasters) == 8 and catalog.rejected.empty


def test_pairs_across_crs_and_scenes(tmp_path: Path) -> None:
    config = SimulationConfig(size=128, seed=2, scenes=2, s1_crs="EPSG:4326", overlap=0.5)
    scenes = simulate_scenes(tmp_path / "sim", config)
    catalog = build_catalog(
        [folder_source(tmp_path / "sim")], tmp_path / "cat", CatalogConfig(min_overlap_km2=0.1)
    )
    # Two scenes side by side: each S1 pairs with its own S2 only.
    assert len(catalog.pairs) == 2
    for scene in scenes:
        row = catalog.pairs[catalog.pairs["scene"] == scene.scene_id].iloc[0]
        expected = _expected_shared_footprint(scene)
        shared = wkt.loads(row["shared_footprint_native"])
        assert shared.symmetric_difference(expected).area < 0.005 * expected.area
        assert row["overlap_fraction_s2"] == pytest.approx(0.5, abs=0.02)


def test_time_window_and_overlap_limits(small_scene_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NoPairsError, match="no S1/S2 pair"):
        build_catalog([folder_source(small_scene_dir)], tmp_path / "a", CatalogConfig(max_days=1.0))
    # This run's tables were written beside the (absent) catalog, consistently.
    assert read_catalog(tmp_path / "a" / "failed").pairs.empty
    assert not (tmp_path / "a" / "pairs.parquet").exists()
    with pytest.raises(NoPairsError):
        build_catalog(
            [folder_source(small_scene_dir)], tmp_path / "b", CatalogConfig(min_overlap_km2=10_000)
        )
    catalog = build_catalog(
        [folder_source(small_scene_dir)],
        tmp_path / "c",
        CatalogConfig(max_days=1.0, allow_unpaired=True),
    )
    assert catalog.pairs.empty and len(catalog.rasters) == 8


def _write(path: Path, crs: str | None, descriptions: tuple[str, ...], tags: dict) -> None:
    profile = {
        "driver": "GTiff",
        "width": 16,
        "height": 16,
        "count": len(descriptions),
        "dtype": "uint16",
        "transform": Affine(10, 0, 500_000, 0, -10, 5_300_000),
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.ones((len(descriptions), 16, 16), dtype=np.uint16))
        ds.descriptions = descriptions
        ds.update_tags(**tags)


def _reasons(rejected: pd.DataFrame) -> dict[str, str]:
    """File name to reason, from a rejected table."""
    names = rejected["path"].map(lambda p: Path(p).name)
    return dict(zip(names, rejected["reason"], strict=True))


def test_bad_files_are_rejected_and_the_scan_goes_on(small_scene_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(small_scene_dir, src)
    (src / "garbage_S2_20230612.tif").write_bytes(b"this is not a tiff" * 100)
    s2 = next(src.glob("*_S2_*.tif"))
    (src / "truncated_S2_20230612.tif").write_bytes(s2.read_bytes()[:5000])
    tags = {"SENSOR": "S2", "ACQUISITION_DATETIME": "2023-06-12"}
    _write(src / "nocrs_S2_20230612.tif", None, ("B02", "B03"), tags)
    _write(src / "badbands_S2_20230612.tif", "EPSG:32633", ("B02", "B99"), tags)
    _write(src / "mystery.tif", "EPSG:32633", ("B02",), {})
    (src / "notes.txt").write_text("not a raster: ignored")
    catalog = build_catalog([folder_source(src)], tmp_path / "cat")
    reasons = _reasons(catalog.rejected)
    assert "corrupt" in reasons["garbage_S2_20230612.tif"]
    assert "corrupt" in reasons["truncated_S2_20230612.tif"]
    assert "no CRS" in reasons["nocrs_S2_20230612.tif"]
    assert "B99" in reasons["badbands_S2_20230612.tif"]
    assert "cannot tell its sensor" in reasons["mystery.tif"]
    assert len(reasons) == 5
    assert len(catalog.rasters) == 8 and len(catalog.pairs) == 1
    assert pd.read_parquet(tmp_path / "cat" / "rejected.parquet").shape[0] == 5


def _copy_with(src: Path, dst: Path, fill: float) -> None:
    """A copy of ``src`` (profile, bands, tags) whose pixels are all ``fill``."""
    with rasterio.open(src) as ds:
        profile, shape = ds.profile, (ds.count, ds.height, ds.width)
        descriptions, tags = ds.descriptions, ds.tags()
    with rasterio.open(dst, "w", **profile) as ds:
        ds.write(np.full(shape, fill, dtype=profile["dtype"]))
        ds.descriptions = descriptions
        ds.update_tags(**tags)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the PNG
def test_catalog_reads_pixels_before_accepting_a_raster(
    small_scene_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    shutil.copytree(small_scene_dir, src)
    s1 = next(src.glob("*_S1_*.tif"))
    data = s1.read_bytes()
    (src / "third_S1_20230614.tif").write_bytes(data[: len(data) // 3])
    _copy_with(s1, src / "allnan_S1_20230614.tif", np.nan)
    png = tmp_path / "picture.png"
    with rasterio.open(png, "w", driver="PNG", width=16, height=16, count=1, dtype="uint8") as ds:
        ds.write(np.ones((1, 16, 16), dtype=np.uint8))
    png.rename(src / "renamed_S2_20230612.tif")
    (src / "loop_S2_20230612.tif").symlink_to("loop_S2_20230612.tif")
    (src / "dangling_S2_20230612.tif").symlink_to("gone.tif")
    catalog = build_catalog([folder_source(src)], tmp_path / "cat")
    reasons = _reasons(catalog.rejected)
    assert "does not decode (truncated file?)" in reasons["third_S1_20230614.tif"]
    assert "no valid pixel" in reasons["allnan_S1_20230614.tif"]
    assert reasons["renamed_S2_20230612.tif"] == "not a GeoTIFF (GDAL reads it as PNG)"
    assert "symbolic link loop" in reasons["loop_S2_20230612.tif"]
    assert "broken symbolic link" in reasons["dangling_S2_20230612.tif"]
    assert len(reasons) == 5
    # None of them was paired: the good scene is catalogued exactly as without them.
    assert len(catalog.rasters) == 8 and len(catalog.pairs) == 1
    assert _reasons(pd.read_parquet(tmp_path / "cat" / "rejected.parquet")) == reasons


def test_valid_pixels_away_from_the_edge_blocks_are_found(tmp_path: Path) -> None:
    # Nodata in the first and last blocks, data only in the middle: the decimated read finds it.
    path = tmp_path / "middle_S2_20230612.tif"
    data = np.zeros((1, 64, 64), dtype=np.uint16)
    data[:, 24:40, 24:40] = 500
    profile = {
        "driver": "GTiff", "width": 64, "height": 64, "count": 1, "dtype": "uint16",
        "nodata": 0, "tiled": True, "blockxsize": 16, "blockysize": 16, "crs": "EPSG:32633",
        "transform": Affine(10, 0, 500_000, 0, -10, 5_300_000),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    with rasterio.open(path) as ds:
        assert pixel_problem(ds) is None
        first, last = edge_blocks(ds)
        assert (first.col_off, first.row_off, last.col_off, last.row_off) == (0, 0, 48, 48)
    _copy_with(path, tmp_path / "empty.tif", 0)
    with rasterio.open(tmp_path / "empty.tif") as ds:
        assert "no valid pixel" in str(pixel_problem(ds))


def test_empty_and_missing_sources_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no rasters here")
    with pytest.raises(SourceError, match="no raster files"):
        build_catalog([folder_source(tmp_path / "empty")], tmp_path / "cat")
    with pytest.raises(SourceError, match="does not exist"):
        build_catalog([folder_source(tmp_path / "missing")], tmp_path / "cat")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x_S2_20230101.tif").write_bytes(b"junk")
    with pytest.raises(SourceError, match="no raster could be catalogued"):
        build_catalog([folder_source(bad)], tmp_path / "cat2")
    assert len(pd.read_parquet(tmp_path / "cat2" / "failed" / "rejected.parquet")) == 1


def _table_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.parquet"))}


def test_a_failed_rerun_keeps_the_earlier_tables_byte_for_byte(
    small_scene_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cat"
    build_catalog([folder_source(small_scene_dir)], out)
    before = _table_bytes(out)
    assert set(before) == {"rasters.parquet", "pairs.parquet", "rejected.parquet"}
    # No pair any more (a window too narrow): the error, and the good tables untouched.
    with pytest.raises(NoPairsError, match="left as they were"):
        build_catalog([folder_source(small_scene_dir)], out, CatalogConfig(max_days=1.0))
    assert _table_bytes(out) == before
    assert read_catalog(out / "failed").pairs.empty  # this run's reasons can still be read
    # Nothing readable any more (the source now holds junk only).
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x_S2_20230101.tif").write_bytes(b"junk")
    with pytest.raises(SourceError, match="no raster could be catalogued"):
        build_catalog([folder_source(junk)], out)
    assert _table_bytes(out) == before

    # The disk fills up while the tables are written: none of them is replaced.
    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(pd.DataFrame, "to_parquet", full_disk)  # the rejected table, written last
        with pytest.raises(OSError, match="No space"):
            build_catalog([folder_source(small_scene_dir)], out, CatalogConfig(max_days=30.0))
    assert _table_bytes(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left
    # A run that succeeds replaces the tables and clears the failed run's.
    build_catalog([folder_source(small_scene_dir)], out)
    assert _table_bytes(out) == before and not (out / "failed").exists()


def test_simulator_source_definition_reads_file_names(
    small_scene_dir: Path, tmp_path: Path
) -> None:
    source = load_source_definition(REPO / "data_catalog" / "simulator.yaml", root=small_scene_dir)
    by_yaml = build_catalog([source], tmp_path / "yaml").rasters
    by_tags = build_catalog([folder_source(small_scene_dir)], tmp_path / "tags").rasters
    columns = ["sensor", "role", "task", "scene", "crs", "width", "nodata"]
    pd.testing.assert_frame_equal(by_yaml[columns], by_tags[columns])
    # File names carry the date only; the tags also carry the time of day.
    pd.testing.assert_series_equal(by_yaml["datetime"], by_tags["datetime"].dt.normalize())
    assert set(by_yaml["product"].dropna()) == {"L2A", "GRD"}


def test_bad_source_definition_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nroot: .\nrules:\n  - pattern: 'a'\n    colour: red\n")
    with pytest.raises(ConfigError, match="colour"):
        load_source_definition(path)
    path.write_text("name: x\nroot: .\nrules:\n  - pattern: '('\n")
    with pytest.raises(ConfigError, match="invalid pattern"):
        load_source_definition(path)


@pytest.mark.realdata
def test_real_s2_scene_is_one_13_band_raster(realdata: Path, tmp_path: Path) -> None:
    source = load_source_definition(REPO / "data_catalog" / "realdata_s2_l1c.yaml")
    assert source.root == (realdata / "sentinel2_l1c_scene").resolve()
    catalog = build_catalog([source], tmp_path, CatalogConfig(allow_unpaired=True))
    assert catalog.rejected.empty
    assert len(catalog.rasters) == 1
    row = catalog.rasters.iloc[0]
    assert list(row["band_names"]) == [
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
    ]  # fmt: skip
    assert list(row["band_resolutions"]) == [60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 60, 20, 20]
    assert row["crs"] == "EPSG:32618" and row["res_x"] == 10
    assert (row["width"], row["height"]) == (1933, 1947)
    assert len(row["paths"]) == 13 and row["product"] == "L1C" and row["nodata"] == 0
    # Footprint: where all bands have pixels (the 60 m bands reach up to 50 m further).
    with rasterio.open(realdata / "sentinel2_l1c_scene" / "s2_B02.tif") as ds:
        b02 = box(*ds.bounds)
    footprint = wkt.loads(row["footprint_native"])
    assert footprint.within(b02.buffer(1e-6))
    assert footprint.area > 0.99 * b02.area
    lon, lat = row["geometry"].centroid.coords[0]
    assert -76.0 < lon < -75.0 and 37.0 < lat < 38.5  # UTM 18N, near 37.6N
