"""Embedding export: COG round trips, blending, quantisation, STAC, GeoParquet, resume, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
import torch
import xarray as xr
from pystac.validation import validate_dict
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from eo_mmcl.catalog import CatalogConfig, build_catalog, folder_source, resolve_source
from eo_mmcl.cli import app
from eo_mmcl.embed import EmbedConfig, EmbeddingModel, WindowGrid, export_embeddings
from eo_mmcl.embed import run as export_run
from eo_mmcl.embed.cog import Quantisation
from eo_mmcl.embed.preview import pca_preview
from eo_mmcl.embed.stac import PROJECTION_EXTENSION
from eo_mmcl.embed.windows import blend, tent_weights
from eo_mmcl.errors import ConfigError, SourceError
from eo_mmcl.objectives.train import run_training
from eo_mmcl.simulate import SimulationConfig, simulate_scenes
from eo_mmcl.tile import TileConfig, tile_catalog
from eo_mmcl.tile.reader import RasterReader

REPO = Path(__file__).resolve().parents[1]
STRIDE, WINDOW, STEP = 8, 32, 16  # k = 2: every other output pixel is a window centre


def _train(config: str, chips: Path, root: Path, *extra: str) -> Path:
    run_training(
        [
            "--config",
            config,
            "--data.chips_dir",
            str(chips),
            "--trainer.max_steps",
            "2",
            "--trainer.limit_val_batches",
            "0",
            "--trainer.accelerator",
            "cpu",
            "--trainer.logger",
            "false",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            str(root),
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            "--trainer.callbacks.dirpath",
            str(root / "checkpoints"),
            "--trainer.callbacks.save_last",
            "true",
            "--data.batch_size",
            "8",
            "--data.num_workers",
            "0",
            *extra,
        ]
    )
    return root / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 128 px simulated pair, its catalog, a 32 px chip store and a tiny clip checkpoint.

    The scene is too small for three spatial splits: every chip is a training chip.
    """
    root = tmp_path_factory.mktemp("export")
    simulate_scenes(root / "scenes", SimulationConfig(size=128, seed=3, parcel_size=32))
    build_catalog([folder_source(root / "scenes")], root / "catalog")
    tile_catalog(
        root / "catalog",
        root / "chips",
        TileConfig(chip_size=32, max_cloud=0.3, split_fractions=(1.0, 0.0, 0.0)),
        workers=0,
    )
    ckpt = _train(str(REPO / "tests" / "conf" / "clip_tiny.yaml"), root / "chips", root / "clip")
    return {"root": root, "catalog": root / "catalog", "chips": root / "chips", "ckpt": ckpt}


def _export(world: dict[str, Path], out: Path, **options) -> export_run.ExportResult:
    config = EmbedConfig(stride=STRIDE, window=WINDOW, step=STEP, **options)
    return export_embeddings(world["ckpt"], world["catalog"], out, config, workers=0)


@pytest.fixture(scope="module")
def exported(world: dict[str, Path]) -> Path:
    out = world["root"] / "out_f16"
    _export(world, out)
    return out


@pytest.fixture(scope="module")
def exported_int8(world: dict[str, Path]) -> Path:
    """An 8-bit export with previews, asked for by the old name ``int8`` (writes uint8)."""
    out = world["root"] / "out_i8"
    result = _export(world, out, dtype="int8")
    assert any("--dtype int8 writes uint8" in m for m in result.messages)
    assert len(result.previews) == len(result.rasters)
    return out


def _s2_raster(world: dict[str, Path]) -> Path:
    return next((world["root"] / "scenes").glob("*_S2_*.tif"))


def test_tent_weights_are_a_partition_of_unity_and_exact_at_centres() -> None:
    weights = tent_weights(0, 9, 0, 3, k=3)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights[::3], np.eye(4)[:3])  # centres 0, 3, 6 take one window
    np.testing.assert_allclose(weights[1], [2 / 3, 1 / 3, 0, 0])
    lattice = np.random.default_rng(0).normal(size=(5, 4, 4))
    out = blend(lattice, tent_weights(0, 9, 0, 3, 3), tent_weights(0, 9, 0, 3, 3))
    np.testing.assert_allclose(out[:, ::3, ::3], lattice[:, :3, :3], rtol=1e-6)
    with pytest.raises(ConfigError, match="even"):
        WindowGrid(100, 100, window=33, stride=8, step=16, block=8)
    with pytest.raises(ConfigError, match="multiple of stride"):
        WindowGrid(100, 100, window=32, stride=8, step=12, block=8)


def test_raster_round_trip_with_rasterio_and_contract_tags(
    exported: Path, world: dict[str, Path], clip_model: EmbeddingModel
) -> None:
    with rasterio.open(_s2_raster(world)) as s2:
        crs, transform, shape = s2.crs, s2.transform, (s2.height, s2.width)
    for key, dims in (("s1", 512), ("s2", 512), ("joint", 1024)):
        path = next(exported.glob(f"*_clip_{key}.tif"))
        with rasterio.open(path) as ds:
            assert ds.crs == crs
            assert ds.transform == transform * rasterio.Affine.scale(STRIDE)
            assert (ds.height, ds.width) == (shape[0] // STRIDE, shape[1] // STRIDE)
            assert ds.count == dims and ds.descriptions[:2] == ("E000", "E001")
            assert np.isnan(ds.nodata)
            assert ds.transform.e < 0 and ds.transform.b == ds.transform.d == 0  # north-up
            tags = ds.tags()
            assert tags["OBJECTIVE"] == "clip" and tags["MODALITY"] == key
            assert tags["CHECKPOINT_SHA256"] == export_run.sha256_file(world["ckpt"])
            assert tags["DATE_RANGE"].startswith("2023-06-12")
            data = ds.read(masked=True)
        assert 0.05 < data.mask.any(axis=0).mean() < 0.95 if key != "s2" else True
        assert np.isfinite(data.compressed()).all()
        assert cog_validate(str(path)) == (True, [], [])
    assert clip_model.objective == "clip"


@pytest.fixture(scope="module")
def clip_model(world: dict[str, Path]) -> EmbeddingModel:
    return EmbeddingModel.load(world["ckpt"])


def _window_embedding(
    world: dict[str, Path], model: EmbeddingModel, row: int, col: int, key: str
) -> np.ndarray:
    """The embedding of the window centred on output pixel (row, col), computed independently."""
    y0 = row * STRIDE + (STRIDE - WINDOW) // 2
    x0 = col * STRIDE + (STRIDE - WINDOW) // 2
    window = Window(x0, y0, WINDOW, WINDOW)
    with rasterio.open(_s2_raster(world)) as ds:
        s2 = ds.read(window=window, boundless=True, fill_value=0).astype(np.float32)
        crs, transform = ds.crs, ds.transform
    s2[s2 == 0] = np.nan
    scene = export_run.plan_scenes(world["catalog"], model, [])[0][0]
    assert scene.s1 is not None
    with RasterReader(scene.s1, crs, transform) as reader:
        s1 = reader.read(window)
    batch = model.transform().normalise(
        {"image_s1": torch.from_numpy(s1[None]), "image_s2": torch.from_numpy(s2[None])}
    )
    with torch.no_grad():
        return model.module.embed(batch)[key][0].numpy()


@pytest.mark.parametrize("key", ["s2", "joint"])
def test_pixel_equals_the_window_centred_there(
    exported: Path, world: dict[str, Path], clip_model: EmbeddingModel, key: str
) -> None:
    path = next(exported.glob(f"*_clip_{key}.tif"))
    with rasterio.open(path) as ds:
        data = ds.read()
    k = STEP // STRIDE
    for row, col in ((6, 6), (8, 4)):  # window centres (even pixels)
        assert row % k == 0 and col % k == 0
        expected = _window_embedding(world, clip_model, row, col, key)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(data[:, row, col], expected, atol=2e-3 * scale, rtol=2e-3)
    # Between two centres: the tent weights give the mean of both windows.
    between = 0.5 * (
        _window_embedding(world, clip_model, 6, 6, key)
        + _window_embedding(world, clip_model, 6, 8, key)
    )
    scale = np.abs(between).max()
    np.testing.assert_allclose(data[:, 6, 7], between, atol=2e-3 * scale, rtol=2e-3)


def test_xarray_and_torchgeo_open_the_rasters(exported: Path, exported_int8: Path) -> None:
    import rioxarray
    from torchgeo.datasets import RasterDataset

    path16 = next(exported.glob("*_clip_joint.tif"))
    path8 = next(exported_int8.glob("*_clip_joint.tif"))
    f16 = xr.open_dataset(path16, engine="rasterio")["band_data"].to_numpy()
    u8 = xr.open_dataset(path8, engine="rasterio")["band_data"].to_numpy()
    rio = rioxarray.open_rasterio(path8, mask_and_scale=True).to_numpy()
    assert f16.shape == u8.shape == rio.shape and f16.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(f16), np.isnan(u8))  # NaN at nodata
    np.testing.assert_array_equal(np.isnan(f16), np.isnan(rio))
    assert np.isnan(f16).any()
    with rasterio.open(path8) as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255
        codes = ds.read()
        scales, offsets = np.array(ds.scales), np.array(ds.offsets)
        errors = np.array([float(ds.tags(b)["QUANTIZATION_MAX_ERROR"]) for b in ds.indexes])
        assert float(ds.tags()["QUANTIZATION_MAX_ERROR"]) == pytest.approx(errors.max())
    np.testing.assert_allclose(errors, scales / 2)
    assert len(set(scales.tolist())) > 1  # a scale per band
    # Each band uses its codes' range: its min and max are codes 0 and 254 (a constant band,
    # such as a ReLU that never fires, holds code 0 only).
    valid = codes != 255
    assert (np.where(valid, codes, 255).min(axis=(1, 2)) == 0).all()
    varying = scales > 1e-11
    assert varying.mean() > 0.5
    assert (np.where(valid, codes, 0).max(axis=(1, 2))[varying] == 254).all()
    # rasterio by hand, xarray and rioxarray decode the same values.
    by_hand = np.where(valid, codes * scales[:, None, None] + offsets[:, None, None], np.nan)
    np.testing.assert_allclose(rio, by_hand, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(u8, by_hand, rtol=1e-6, atol=1e-7)
    # uint8 against float16 (rounding 2**-11 relative) within each band's bound.
    bound = errors[:, None, None] + np.abs(f16) * 2.0**-10 + 1e-6
    assert np.all(np.abs(u8 - f16)[~np.isnan(f16)] <= bound[~np.isnan(f16)])

    class Embeddings(RasterDataset):
        filename_glob = "*_clip_joint.tif"
        is_image = True

    dataset = Embeddings(paths=str(exported))
    with rasterio.open(path16) as ds:
        bounds = ds.bounds
        expected = ds.read(window=Window(0, 0, 4, 4))
    x0, y1 = bounds.left, bounds.top
    res = STRIDE * 10
    sample = dataset[x0 : x0 + 4 * res, y1 - 4 * res : y1]
    image = sample["image"].numpy()
    assert image.shape == (1024, 4, 4)
    np.testing.assert_allclose(np.nan_to_num(image), np.nan_to_num(expected), rtol=1e-6)


def test_cog_has_average_overviews(tmp_path: Path) -> None:
    from rasterio.crs import CRS

    from eo_mmcl.embed.cog import write_embedding_cog

    values = np.random.default_rng(0).normal(size=(3, 300, 300)).astype(np.float32)
    values[:, :10, :10] = np.nan
    blocks = [((r, 0, 100, 300), lambda r=r: values[:, r : r + 100]) for r in (0, 100, 200)]
    path = tmp_path / "e.tif"
    transform = rasterio.Affine(80, 0, 500_000, 0, -80, 5_300_000)
    q = Quantisation("float16")
    tags = {"OBJECTIVE": "clip"}
    write_embedding_cog(
        path, tmp_path / "s.tif", blocks, values.shape, CRS.from_epsg(32633), transform, q, tags
    )
    assert cog_validate(str(path)) == (True, [], [])
    assert not (tmp_path / "s.tif").exists()
    with rasterio.open(path) as ds:
        assert ds.overviews(1) == [2, 4]  # down to one 128 px tile
        np.testing.assert_allclose(ds.read(), values, rtol=1e-3, atol=1e-3)
        overview = ds.read(1, out_shape=(150, 150))
    expected = np.nanmean(values[0, 20:, 20:].reshape(140, 2, 140, 2), axis=(1, 3))
    np.testing.assert_allclose(overview[10:, 10:], expected, atol=2e-3)

    # A raster smaller than one tile (as the demo's are) still gets overviews, down to 16 px.
    small = tmp_path / "small.tif"
    blocks = [((0, 0, 96, 96), lambda: values[:, :96, :96])]
    write_embedding_cog(
        small, tmp_path / "s.tif", blocks, (3, 96, 96), CRS.from_epsg(32633), transform, q, tags
    )
    assert cog_validate(str(small)) == (True, [], [])
    with rasterio.open(small) as ds:
        assert ds.overviews(1) == [2, 4, 8]  # 48, 24 and 12 px


def test_the_torchgeo_dataset_decodes_every_file_through_its_own_scales(
    exported: Path, exported_int8: Path, tmp_path: Path
) -> None:
    import rioxarray

    from eo_mmcl.datamodules import EmbeddingRasterDataset

    path8 = next(exported_int8.glob("*_clip_joint.tif"))
    dataset = EmbeddingRasterDataset(str(exported_int8), filename_glob="*_clip_joint.tif")
    with rasterio.open(path8) as ds:
        bounds, res = ds.bounds, ds.res[0]
    x0, y1 = bounds.left, bounds.top
    image = dataset[x0 : x0 + 6 * res, y1 - 6 * res : y1]["image"].numpy()
    expected = rioxarray.open_rasterio(path8, mask_and_scale=True).to_numpy()[:, :6, :6]
    assert image.dtype == np.float32 and image.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(image), np.isnan(expected))
    np.testing.assert_allclose(image, expected, rtol=1e-6, atol=1e-6)

    # Two rasters side by side with different scales: one query across both decodes each.
    transform = rasterio.Affine(80.0, 0, 500000, 0, -80.0, 5000000)
    profile = {"driver": "GTiff", "width": 2, "height": 2, "count": 2, "dtype": "uint8",
               "nodata": 255, "crs": "EPSG:32633"}  # fmt: skip
    codes = np.array([[[0, 254], [10, 255]], [[1, 2], [3, 4]]], dtype=np.uint8)
    for name, shift, scales, offsets in (("a", 0, (0.5, 1.0), (1.0, 0.0)),
                                         ("b", 2, (2.0, 0.1), (-1.0, 5.0))):  # fmt: skip
        moved = transform * rasterio.Affine.translation(shift, 0)
        with rasterio.open(tmp_path / f"{name}_emb.tif", "w", transform=moved, **profile) as dst:
            dst.write(codes)
            dst.scales, dst.offsets = scales, offsets
    pair = EmbeddingRasterDataset(str(tmp_path), filename_glob="*_emb.tif")
    sample = pair[500000 : 500000 + 4 * 80.0, 5000000 - 2 * 80.0 : 5000000]["image"].numpy()
    left = codes * np.array([0.5, 1.0])[:, None, None] + np.array([1.0, 0.0])[:, None, None]
    right = codes * np.array([2.0, 0.1])[:, None, None] + np.array([-1.0, 5.0])[:, None, None]
    want = np.concatenate([left, right], axis=2).astype(np.float32)
    want[0, 1, 1] = want[0, 1, 3] = np.nan  # the 255 codes
    np.testing.assert_allclose(sample, want, rtol=1e-6)


def _system_qgis() -> bool:
    if not Path("/usr/bin/python3").is_file():
        return False
    probe = subprocess.run(["/usr/bin/python3", "-c", "import qgis.core"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _system_qgis(), reason="python3-qgis is not installed")
def test_qgis_reads_and_renders_the_uint8_raster(exported_int8: Path, tmp_path: Path) -> None:
    """QGIS (3.22 on Debian 12, GDAL 3.6) decodes the codes and honours the nodata."""
    path = next(exported_int8.glob("*_clip_joint.tif"))
    with rasterio.open(path) as ds:
        codes = ds.read(1)
        row, col = map(int, np.argwhere(codes != 255)[0])
        x, y = ds.xy(row, col)
        value = codes[row, col] * ds.scales[0] + ds.offsets[0]
    png = tmp_path / "render.png"
    done = subprocess.run(
        ["/usr/bin/python3", str(REPO / "tests" / "qgis_open_raster.py"), str(path), str(png),
         str(x), str(y)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["valid"] and seen["nodata"] == 255 and seen["band_name"].endswith("E000")
    assert seen["identify_band1"] == pytest.approx(value, rel=1e-5, abs=1e-6)
    from PIL import Image

    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.std() > 10  # a picture, not a blank canvas


def test_uint8_quantisation_error_bound_per_band() -> None:
    rng = np.random.default_rng(1)
    spread = np.array([0.01, 0.1, 1.0, 3.0, 10.0, 0.5, 2.0, 5.0])[:, None, None]
    values = (rng.normal(size=(8, 16, 16)) * spread).astype(np.float32)
    values[:, 0, 0] = np.nan
    values[3] = np.nan  # a band without data
    low, high = np.nanmin(values, axis=(1, 2)), np.nanmax(values, axis=(1, 2))
    q = Quantisation.from_range("uint8", low, high)
    codes = q.encode(values)
    assert codes.dtype == np.uint8 and (codes[3] == 255).all()
    back = q.decode(codes)
    assert np.isnan(back[:, 0, 0]).all() and np.isnan(back[3]).all()
    errors = np.abs(back - values).reshape(8, -1)
    for band in (0, 1, 2, 4, 5, 6, 7):
        assert np.nanmax(errors[band]) <= q.max_errors[band] * (1 + 1e-6)
    # The narrow band keeps its precision: its error is its own range / 508, not the widest's.
    assert q.max_errors[0] < q.max_errors[4] / 100
    assert Quantisation.from_range("int8", low, high) == q  # the old name writes uint8


def test_legacy_int8_rasters_are_still_read(tmp_path: Path) -> None:
    """Rasters written as int8 by earlier versions decode through their own scale and nodata."""
    path = tmp_path / "old_int8.tif"
    codes = np.array([[[-127, 0], [127, -128]]], dtype=np.int8)
    profile = {"driver": "GTiff", "width": 2, "height": 2, "count": 1, "dtype": "int8",
               "nodata": -128, "crs": "EPSG:32633",
               "transform": rasterio.Affine(80.0, 0, 500000, 0, -80.0, 5000000)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(codes)
        dst.scales, dst.offsets = (0.5,), (1.0,)
    # An 8-bit masked array cannot hold NaN: the preview once crashed here.
    png = pca_preview(path, tmp_path / "old.png")
    assert png.is_file()
    with rasterio.open(path) as ds:
        data = ds.read(masked=True).astype(np.float64) * ds.scales[0] + ds.offsets[0]
    np.testing.assert_allclose(data.filled(np.nan), [[[-62.5, 1.0], [64.5, np.nan]]])


@pytest.mark.skipif(shutil.which("gdalinfo") is None, reason="gdal-bin is not installed")
def test_gdalinfo_reports_the_uint8_encoding(exported_int8: Path) -> None:
    """The system GDAL (Debian 12: 3.6, no signed 8-bit type) sees codes, nodata and scales."""
    path = next(exported_int8.glob("*_clip_s2.tif"))
    info = json.loads(
        subprocess.run(
            ["gdalinfo", "-json", "-mdd", "all", str(path)], check=True, capture_output=True
        ).stdout
    )
    band = info["bands"][0]
    assert band["type"] == "Byte" and band["noDataValue"] == 255
    with rasterio.open(path) as ds:
        assert band["scale"] == pytest.approx(ds.scales[0])
        assert band["offset"] == pytest.approx(ds.offsets[0])


def test_stac_items_validate_and_chip_geoparquet(exported: Path, world: dict[str, Path]) -> None:
    catalog = pystac.Catalog.from_file(str(exported / "catalog.json"))
    items = list(catalog.get_items())
    assert len(items) == 6  # 3 rasters + 3 chip tables
    # Against the core schemas (the projection extension's schema cannot be fetched offline;
    # that the extension is declared is checked below).
    validate_dict(catalog.to_dict(), extensions=[])
    for item in items:
        validate_dict(item.to_dict(), extensions=[])
        assert item.properties["emb:dimensions"] in (512, 1024)
        href = item.assets["embedding"].get_absolute_href()
        assert href is not None and Path(href).is_file()
    raster_item = next(i for i in items if i.properties["emb:type"] == "pixel")
    assert raster_item.properties["emb:model"]["objective"] == "clip"
    assert raster_item.assets["preview"].media_type == pystac.MediaType.PNG
    chips = gpd.read_parquet(next(exported.glob("chips_clip_s2.parquet")))
    index = gpd.read_parquet(world["chips"] / "index.parquet")
    assert chips.crs == index.crs and chips.crs.to_epsg() == 4326
    assert len(chips) == len(index) and set(chips["split"]) <= {"train", "val", "test"}
    assert all(len(e) == 512 for e in chips["embedding"])
    manifest = json.loads((exported / "embed_manifest.json").read_text())
    assert manifest["objective"] == "clip" and not (exported / ".embed").exists()
    assert PROJECTION_EXTENSION in raster_item.stac_extensions
    layout = raster_item.properties["emb:chip_layout"]
    assert layout == {"type": "sliding_window", "window_px": WINDOW, "stride_px": STRIDE,
                      "step_px": STEP, "blending": "tent"}  # fmt: skip
    quantization = raster_item.properties["emb:quantization"]
    assert quantization["original_data_type"] == "float32"
    # Provenance: the model checkpoint and the source rasters.
    sources = {Path(link.href).name for link in raster_item.links if link.rel == "derived_from"}
    assert world["ckpt"].name in sources and any("_S2_" in n for n in sources)
    chip_item = next(i for i in items if i.properties["emb:type"] == "chip")
    assert chip_item.properties["emb:chip_layout"] == {"type": "chip", "chip_size_px": 32}

    # Every item is dated from its scenes, the chip tables' too (not the export time).
    def when(item: pystac.Item) -> object:
        return item.properties.get("start_datetime") or item.datetime

    assert {str(when(i)) for i in items} == {str(when(raster_item))}
    assert not any(i.properties.get("eo_mmcl:date_unknown") for i in items)
    png = next(exported.glob("*_clip_joint_pca.png"))
    from PIL import Image

    rgba = np.asarray(Image.open(png))
    assert rgba.shape[2] == 4 and rgba[..., 3].any() and rgba[..., :3].std() > 10


def test_chip_footprints_open_as_flatgeobuf(exported: Path) -> None:
    """Each chip table has a FlatGeobuf beside it: GDAL 3.6 (QGIS 3.22) has no Parquet driver."""
    table = gpd.read_parquet(exported / "chips_clip_s2.parquet")
    # FlatGeobuf's spatial index stores features in its own (Hilbert) order.
    footprints = gpd.read_file(exported / "chips_clip_s2.fgb").set_index("chip_id")
    # The layer a GIS lists is named after the file, not after the temporary it was written as.
    assert list(gpd.list_layers(exported / "chips_clip_s2.fgb")["name"]) == ["chips_clip_s2"]
    footprints = footprints.loc[table["chip_id"]].reset_index()
    assert list(footprints["split"]) == list(table["split"])
    assert footprints.crs.to_epsg() == 4326
    assert footprints.geometry.geom_equals_exact(table.geometry, tolerance=1e-9).all()
    values = np.stack(table["embedding"].to_numpy())
    centred = values - values.mean(axis=0)
    # pc1 is the projection on the leading principal axis (up to its sign).
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(
        np.abs(footprints["pc1"].to_numpy()), np.abs(centred @ vt[0]), rtol=1e-3, atol=1e-3
    )
    catalog = pystac.Catalog.from_file(str(exported / "catalog.json"))
    item = next(i for i in catalog.get_items() if i.id == "chips_clip_s2")
    assert Path(item.assets["footprints"].get_absolute_href() or "").name == "chips_clip_s2.fgb"
    if shutil.which("ogrinfo") is not None:  # the system GDAL (3.6 on Debian 12)
        info = subprocess.run(
            ["ogrinfo", "-so", "-al", str(exported / "chips_clip_s2.fgb")],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert "FlatGeobuf" in info and f"Feature Count: {len(table)}" in info


def test_landcover_notebook_runs_on_a_plain_export(
    exported: Path, world: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebook on an ``eo-mmcl embed`` folder and its catalog (no pipeline run layout)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(REPO / "notebooks" / "landcover_probes.ipynb", as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "one parameters cell"
    monkeypatch.setenv("EO_MMCL_RUN_DIR", str(world["root"] / "no_pipeline_here"))
    monkeypatch.setenv("EO_MMCL_EMBED_DIR", str(exported))
    monkeypatch.setenv("EO_MMCL_CATALOG_DIR", str(world["catalog"]))
    monkeypatch.setenv("EO_MMCL_EMBEDDING", "joint")
    monkeypatch.setenv("EO_MMCL_CHIPS_DIR", str(world["chips"]))
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": REPO}}
    )
    client.execute()
    printed = "".join(
        out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", [])
    )
    assert "balanced accuracy on the eastern test part" in printed
    assert "'train':" in printed  # the chip store's chips of the scene, by split


def test_a_copied_export_folder_resolves_inside_the_copy(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "moved"
    shutil.copytree(exported, copy)
    for path in [copy / "catalog.json", *(copy / "stac").glob("*.json")]:
        assert str(exported) not in path.read_text(), path  # no absolute path to the origin
    catalog = pystac.Catalog.from_file(str(copy / "catalog.json"))
    items = list(catalog.get_items())
    assert len(items) == 6
    for item in items:
        for asset in item.assets.values():
            href = Path(asset.get_absolute_href() or "")
            assert href.is_file() and copy in href.parents, href


KILLER = """
import os, signal, sys
from pathlib import Path
from typing import Any
from eo_mmcl.embed import EmbedConfig, export_embeddings
from eo_mmcl.embed import blocks, run
run.BLOCK_S2_PX = 32  # 4 output px per block: 16 blocks
real, done = blocks.run_block, []
def killing(task):
    if len(done) == 5:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all, as a real kill
    done.append(real(task))
blocks.run_block = killing
ckpt, catalog, out = sys.argv[1:4]
config = EmbedConfig(stride=8, window=32, step=16, modality="s2", preview=False)
export_embeddings(ckpt, catalog, out, config, workers=0)
"""


def test_kill_and_resume(world: dict[str, Path], exported: Path, monkeypatch, tmp_path) -> None:
    import signal
    import subprocess
    import sys

    out = world["root"] / "out_resume"
    args = [str(world["ckpt"]), str(world["catalog"]), str(out)]
    killed = subprocess.run([sys.executable, "-c", KILLER, *args], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    # Nothing looks finished: no raster, table, catalog or manifest under its final name.
    finals = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert finals == [], finals
    done = {p.name.split(".")[1] for p in (out / ".embed" / "jobs").glob("*.json")}
    assert len(done) == 5
    monkeypatch.setattr(export_run, "BLOCK_S2_PX", 32)
    log = tmp_path / "blocks.log"
    real = export_run.blocks.run_block

    def logged(task):  # a file log: Dask pickles the function, so no shared counter
        with log.open("a") as fh:
            fh.write(task.block_id + "\n")
        return real(task)

    monkeypatch.setattr(export_run.blocks, "run_block", logged)
    # Resume through a Dask scheduler (a threaded LocalCluster: the client path, cheap to start).
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        config = EmbedConfig(stride=STRIDE, window=WINDOW, step=STEP, modality="s2", preview=False)
        export_embeddings(
            world["ckpt"], world["catalog"], out, config, scheduler=cluster.scheduler_address
        )
    resumed_blocks = set(log.read_text().split())
    assert len(resumed_blocks) == 16 - 5 and not resumed_blocks & done  # only unfinished ones
    with (
        rasterio.open(next(out.glob("*_clip_s2.tif"))) as resumed,
        rasterio.open(next(exported.glob("*_clip_s2.tif"))) as whole,
    ):
        np.testing.assert_array_equal(resumed.read(), whole.read())
    # A finished export is left alone.
    assert _export(world, out, modality="s2", preview=False).reused


def test_checkpoint_bands_must_match_the_rasters(world: dict[str, Path], tmp_path: Path) -> None:
    checkpoint = torch.load(world["ckpt"], weights_only=True)
    checkpoint["eo_mmcl"]["bands"]["s2"] = [*checkpoint["eo_mmcl"]["bands"]["s2"][:-1], "B99"]
    bad = tmp_path / "bad.ckpt"
    torch.save(checkpoint, bad)
    out = tmp_path / "out"
    with pytest.raises(
        ConfigError, match=r"_S2_.*\.tif: the raster has S2 bands .*\(\['B99'\] missing\)"
    ):
        export_embeddings(bad, world["catalog"], out, EmbedConfig(), workers=0)
    assert not out.exists()
    with pytest.raises(SourceError, match="not an eo_mmcl checkpoint"):
        torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
        export_embeddings(tmp_path / "plain.ckpt", world["catalog"], out, EmbedConfig())


def test_cli_embed_reports_bad_input_in_one_line(world: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["embed", str(tmp_path / "missing.ckpt"), str(world["catalog"]), "-o", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "missing.ckpt: checkpoint not found" in result.output
    result = runner.invoke(
        app,
        [
            "embed",
            str(world["ckpt"]),
            str(world["catalog"]),
            "-o",
            str(tmp_path / "o"),
            "--dtype",
            "int4",
            "--workers",
            "0",
        ],
    )
    assert result.exit_code == 2 and "--dtype" in result.output
    for option in ("--stride", "--window", "--step"):
        args = ["embed", str(world["ckpt"]), str(world["catalog"]), "-o", str(tmp_path / "o")]
        result = runner.invoke(app, [*args, option, "0"])
        assert result.exit_code == 2 and f"{option} must be >= 1, got 0" in result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("command", ["embed", "probe"])
def test_an_accelerator_not_there_is_refused_before_any_work(
    world: dict[str, Path], tmp_path: Path, command: str
) -> None:
    out = tmp_path / "o"
    if command == "embed":
        args = ["embed", str(world["ckpt"]), str(world["catalog"]), "-o", str(out)]
    else:
        args = ["probe", "--chips", str(world["chips"]), "--checkpoint", str(world["ckpt"])]
        args += ["-o", str(out)]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--accelerator", "gpu", "--quiet"])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert "--accelerator gpu: not available here" in line
    result = runner.invoke(app, [*args, "--accelerator", "tpu2", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "--accelerator must be one of" in result.output and "'tpu2'" in result.output
    assert not out.exists()


def test_the_accelerator_option_reaches_the_predict_loop(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eo_mmcl.embed import predict

    used: list[str] = []
    build = predict._trainer

    def recording(accelerator: str, *args: Any) -> Any:
        used.append(accelerator)
        return build("cpu", *args)

    monkeypatch.setattr(predict, "_trainer", recording)
    _export(world, tmp_path / "cpu", accelerator="cpu", modality="s2")
    assert used and set(used) == {"cpu"}  # the check before work, each block, the chip tables
    used.clear()
    _export(world, tmp_path / "auto", modality="s2")
    assert used and set(used) == {"auto"}  # the default: a GPU where there is one


def test_a_raster_deleted_before_embed_is_named_in_one_line(
    world: dict[str, Path], tmp_path: Path
) -> None:
    scenes = tmp_path / "scenes"
    shutil.copytree(world["root"] / "scenes", scenes)
    build_catalog([folder_source(scenes)], tmp_path / "catalog")
    (gone,) = scenes.glob("*_S2_*.tif")
    gone.unlink()
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["embed", str(world["ckpt"]), str(tmp_path / "catalog"), "-o", str(out), "--quiet"]
    )
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert str(gone) in line and "no longer there" in line
    assert not out.exists()  # refused before any work


def test_coral_exports_its_unique_paths(world: dict[str, Path]) -> None:
    ckpt = _train(
        str(REPO / "pipelines" / "configs" / "coral.yaml"),
        world["chips"],
        world["root"] / "coral",
        *("--model.init_args.proj_dim", "16", "--model.init_args.proj_hidden_dim", "32"),
        *("--model.init_args.fusion_dim", "16", "--model.init_args.fusion_depth", "1"),
    )
    out = world["root"] / "out_coral"
    result = export_embeddings(
        ckpt,
        world["catalog"],
        out,
        EmbedConfig(stride=16, window=32, step=16, preview=False),
        chips_dir=world["chips"],
        workers=0,
    )
    names = sorted(p.name.split("_coral_")[1] for p in result.rasters)
    assert names == [f"{k}.tif" for k in ("joint", "proj_u1", "proj_u2", "s1", "s2", "shared")]
    with rasterio.open(next(out.glob("*_coral_proj_u1.tif"))) as ds:
        assert ds.count == 16 and ds.tags()["MODALITY"] == "s1"
    assert len(result.chip_tables) == 6


@pytest.mark.slow
def test_export_on_a_local_cluster_of_processes(world: dict[str, Path], exported: Path) -> None:
    out = world["root"] / "out_processes"
    export_embeddings(
        world["ckpt"],
        world["catalog"],
        out,
        EmbedConfig(stride=STRIDE, window=WINDOW, step=STEP, modality="s2", preview=False),
        workers=2,
    )
    with (
        rasterio.open(next(out.glob("*_clip_s2.tif"))) as dask_run,
        rasterio.open(next(exported.glob("*_clip_s2.tif"))) as local,
    ):
        np.testing.assert_array_equal(dask_run.read(), local.read())


def test_real_s2_scene_exports_s2_embeddings(
    realdata: Path, world: dict[str, Path], tmp_path: Path
) -> None:
    source = resolve_source(str(REPO / "data_catalog" / "realdata_s2_l1c.yaml"))
    build_catalog([source], tmp_path / "catalog", CatalogConfig(allow_unpaired=True))
    # An S2-only chip store: the chip table embeds S2 alone, as the rasters do.
    tile_catalog(
        tmp_path / "catalog",
        tmp_path / "chips",
        TileConfig(chip_size=256, max_cloud=1.0, s2_only=True, split_fractions=(1.0, 0.0, 0.0)),
        workers=0,
    )
    result = export_embeddings(
        world["ckpt"],
        tmp_path / "catalog",
        tmp_path / "out",
        EmbedConfig(modality="all", stride=64, window=64, step=128, preview=True),
        chips_dir=tmp_path / "chips",
        workers=0,
    )
    assert [p.name for p in result.chip_tables] == ["chips_clip_s2.parquet"]
    chips = gpd.read_parquet(result.chip_tables[0])
    assert len(chips) > 0 and chips.crs.to_epsg() == 4326
    assert np.isfinite(np.stack(chips["embedding"].to_numpy())).all()
    assert [p.name.rsplit("_", 1)[1] for p in result.rasters] == ["s2.tif"]
    with rasterio.open(result.rasters[0]) as ds:
        assert ds.crs.to_epsg() == 32618 and ds.count == 512
        assert (ds.width, ds.height) == (31, 31)
        data = ds.read(masked=True)
        assert data.count() > 0.9 * data.size
    assert cog_validate(str(result.rasters[0]))[0]
    assert any("S2 embeddings only" in m for m in result.messages)


def test_principal_components_match_a_full_svd() -> None:
    from eo_mmcl.embed.preview import principal_components

    rng = np.random.default_rng(0)
    pixels = (
        rng.normal(size=(500, 3))
        @ rng.normal(size=(3, 40))
        * [[5.0, 2.0, 1.0][i % 3] for i in range(40)]
    )
    pixels += rng.normal(scale=0.01, size=pixels.shape)
    mean, axes = principal_components(pixels)
    _, _, vt = np.linalg.svd(pixels - pixels.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(np.abs(np.sum(axes * vt[:3], axis=1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(mean, pixels.mean(axis=0))
