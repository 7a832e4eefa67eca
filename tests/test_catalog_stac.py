"""STAC as catalog input: item JSONs beside COGs, a STAC catalog, and a stac-geoparquet file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from typer.testing import CliRunner

from eo_mmcl.catalog import resolve_source
from eo_mmcl.catalog.stac import load_items
from eo_mmcl.cli import app
from eo_mmcl.simulate import SimulationConfig, simulate_scenes

runner = CliRunner()


def _item(item_id: str, platform: str, when: str, assets: dict[str, dict[str, Any]]) -> dict:
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id,
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
        "geometry": {"type": "Point", "coordinates": [0, 0]}, "bbox": [0, 0, 0, 0],
        "properties": {"datetime": when, "platform": platform}, "links": [], "assets": assets,
    }  # fmt: skip


@pytest.fixture(scope="module")
def stac_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated S1/S2 pair as STAC items beside their COGs.

    S2: one 12-band file whose asset lists its bands in ``eo:bands``; S1: one file per
    polarisation, the asset keys (``vv``, ``vh``) naming the bands, as Planetary Computer
    ships GRD; a thumbnail (skipped) and a Landsat item (rejected).
    """
    root = tmp_path_factory.mktemp("stac")
    scene = simulate_scenes(root / "sim", SimulationConfig(size=128, seed=4, parcel_size=32))[0]
    folder = root / "items"
    folder.mkdir()
    with rasterio.open(scene.s2) as ds:
        profile, data, names = ds.profile, ds.read(), list(ds.descriptions)
    with rasterio.open(folder / "s2.tif", "w", **profile) as dst:
        dst.write(data)  # no band descriptions: the item names the bands
    with rasterio.open(scene.s1) as ds:
        s1_profile, s1 = ds.profile | {"count": 1}, ds.read()
    for i, pol in enumerate(("vv", "vh")):
        with rasterio.open(folder / f"s1_{pol}.tif", "w", **s1_profile) as dst:
            dst.write(s1[i : i + 1])
    (folder / "thumb.png").write_bytes(b"\x89PNG")
    tiff = "image/tiff; application=geotiff; profile=cloud-optimized"
    s2 = _item("S2A_T33_20230612", "sentinel-2a", "2023-06-12T10:20:00Z", {
        "data": {"href": "s2.tif", "type": tiff, "roles": ["data"],
                 "eo:bands": [{"name": n} for n in names]},
        "thumbnail": {"href": "thumb.png", "type": "image/png", "roles": ["thumbnail"]},
    })  # fmt: skip
    s1_item = _item("S1A_IW_GRDH_20230614", "sentinel-1a", "2023-06-14T05:30:00Z", {
        pol: {"href": f"s1_{pol}.tif", "type": tiff, "roles": ["data"]} for pol in ("vv", "vh")
    })  # fmt: skip
    landsat = _item("LC08_20230613", "landsat-8", "2023-06-13T10:00:00Z", {
        "red": {"href": "s2.tif", "type": tiff, "roles": ["data"]},
    })  # fmt: skip
    for item in (s2, s1_item, landsat):
        (folder / f"{item['id']}.json").write_text(json.dumps(item))
    return folder


def _catalog(source: str, out: Path) -> str:
    result = runner.invoke(app, ["catalog", source, "-o", str(out), "--min-overlap-km2", "0.5",
                                 "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


def test_a_folder_of_items_beside_cogs_finds_the_pair(stac_folder: Path, tmp_path: Path) -> None:
    assert resolve_source(str(stac_folder)).stac == stac_folder.resolve()
    output = _catalog(str(stac_folder), tmp_path / "cat")
    assert "rasters=2 pairs=1 rejected=1" in output
    import geopandas as gpd
    import pandas as pd

    rasters = gpd.read_parquet(tmp_path / "cat" / "rasters.parquet").set_index("scene")
    s2 = rasters.loc["S2A_T33_20230612"]
    assert s2["sensor"] == "S2" and s2["band_names"][3] == "B04" and len(s2["band_names"]) == 12
    assert str(s2["datetime"]).startswith("2023-06-12 10:20")
    s1 = rasters.loc["S1A_IW_GRDH_20230614"]
    assert list(s1["band_names"]) == ["VV", "VH"] and len(set(s1["band_paths"])) == 2
    rejected = pd.read_parquet(tmp_path / "cat" / "rejected.parquet")
    assert rejected["reason"].str.contains("not a Sentinel-1 or Sentinel-2 item").any()
    assert not rejected["path"].str.endswith("thumb.png").any()  # skipped, not rejected


def test_a_stac_catalog_and_a_stac_geoparquet_give_the_same_catalog(
    stac_folder: Path, tmp_path: Path
) -> None:
    from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

    items = load_items(stac_folder)
    assert len(items) == 3
    catalog = pystac.Catalog(id="local", description="S1/S2 beside their COGs")
    for item in items:
        catalog.add_item(item.clone())
    catalog.normalize_and_save(str(tmp_path / "stac"), pystac.CatalogType.ABSOLUTE_PUBLISHED)
    dicts = [i.to_dict() for i in items]  # asset hrefs absolute, as stac-geoparquet holds them
    assert all(Path(a["href"]).is_absolute() for d in dicts for a in d["assets"].values())
    to_parquet(parse_stac_items_to_arrow(dicts), tmp_path / "items.parquet")
    reference = _catalog(str(stac_folder), tmp_path / "a")
    for source, out in (
        (tmp_path / "stac" / "catalog.json", "b"),
        (tmp_path / "items.parquet", "c"),
    ):
        assert _catalog(str(source), tmp_path / out).splitlines()[-1] == reference.splitlines()[-1]
        import geopandas as gpd

        a = gpd.read_parquet(tmp_path / "a" / "pairs.parquet")
        b = gpd.read_parquet(tmp_path / out / "pairs.parquet")
        np.testing.assert_allclose(a["overlap_km2"], b["overlap_km2"])


def test_an_item_whose_asset_file_is_missing_is_rejected_with_the_reason(
    stac_folder: Path, tmp_path: Path
) -> None:
    item = json.loads((stac_folder / "S2A_T33_20230612.json").read_text())
    item["assets"]["data"]["href"] = str(stac_folder / "gone.tif")
    (tmp_path / "item.json").write_text(json.dumps(item))
    result = runner.invoke(
        app, ["catalog", str(tmp_path / "item.json"), "-o", str(tmp_path / "c"), "--allow-unpaired"]
    )
    assert result.exit_code == 2 and "no raster could be catalogued" in result.output
    import pandas as pd

    rejected = pd.read_parquet(tmp_path / "c" / "failed" / "rejected.parquet")
    (row,) = rejected.itertuples()
    assert row.path.endswith("gone.tif") and "unreadable" in row.reason
