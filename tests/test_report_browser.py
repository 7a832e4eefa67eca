"""The report's HTML page in a real browser (Playwright driving the system's Chromium)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eo_mmcl.embed.preview import pca_preview
from eo_mmcl.report import build_report


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium installed (apt-get install chromium; .ci/run does)")


@pytest.fixture(scope="module")
def embed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one embedding raster and its PCA preview, as eo-mmcl embed writes them."""
    folder = tmp_path_factory.mktemp("embed")
    profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 4, "dtype": "float32",
               "crs": "EPSG:32633", "nodata": np.nan,
               "transform": rasterio.Affine(80.0, 0, 500000, 0, -80.0, 5300000)}  # fmt: skip
    with rasterio.open(folder / "scene_clip_joint.tif", "w", **profile) as dst:
        dst.write(np.random.default_rng(0).normal(size=(4, 16, 16)).astype(np.float32))
    pca_preview(folder / "scene_clip_joint.tif", folder / "scene_clip_joint_pca.png")
    return folder


def test_the_report_opens_in_a_browser_with_its_images_and_map(
    probe_run: Path, embed_dir: Path, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    page_path = build_report(probe_run, tmp_path / "report", embed_dirs=[embed_dir])
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("document.images.length")
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length"
        )
        overlays = page.evaluate("Object.keys(window.eoMmclMap.overlays)")
        shapes = page.evaluate("document.querySelectorAll('#map path').length")
        shown = page.evaluate("document.querySelectorAll('#map img.leaflet-image-layer').length")
        browser.close()
    assert errors == []
    assert images >= 3 and broken == 0
    assert overlays[:2] == ["scene footprints", "chips: train"]
    assert "PCA: scene_clip_joint" in overlays
    assert shapes > 10  # chip polygons and scene outlines drawn
    assert shown == 1  # the joint preview is on when the page opens
