"""The report's interactive map: scene footprints, chip splits and PCA previews as layers.

Leaflet (BSD-2-Clause, ``assets/leaflet.js`` and ``assets/leaflet.css``, version 1.9.4 from npm)
is bundled inside the HTML page with the layers as GeoJSON and data-URI images, so the map works
offline and the page stays one file. There is no base map: tiles would need the internet.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import rasterio
from rasterio.warp import transform_bounds

from eo_mmcl.io.tables import read_table
from eo_mmcl.tile.store import INDEX_FILE

#: Leaflet's version, as bundled in ``eo_mmcl/report/assets``.
LEAFLET_VERSION = "1.9.4"
#: The suffix ``eo-mmcl embed`` gives a raster's PCA preview.
PREVIEW_SUFFIX = "_pca.png"


@dataclass
class MapLayers:
    """What the map shows.

    Args:
        scenes: GeoJSON FeatureCollection of scene footprints (EPSG:4326).
        chips: GeoJSON FeatureCollection of chip footprints with their ``split``.
        previews: One ``{"name", "url", "bounds", "shown"}`` per PCA preview (bounds as
            Leaflet's ``[[south, west], [north, east]]``; ``shown``: on when the page opens).
    """

    scenes: dict[str, Any]
    chips: dict[str, Any]
    previews: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        """The layers as JSON for the page's script (``</`` escaped for an inline script)."""
        text = json.dumps({"scenes": self.scenes, "chips": self.chips, "previews": self.previews})
        return text.replace("</", "<\\/")


def _previews(embed_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """PCA previews with their bounds; the first folder's joint embeddings are shown at first."""
    previews = []
    for number, folder in enumerate(embed_dirs):
        for png in sorted(Path(folder).glob(f"*{PREVIEW_SUFFIX}")):
            raster = png.with_name(png.name.removesuffix(PREVIEW_SUFFIX) + ".tif")
            if not raster.is_file():
                continue
            with rasterio.open(raster) as ds:
                west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
            data = base64.b64encode(png.read_bytes()).decode()
            previews.append(
                {
                    "name": raster.stem,
                    "url": f"data:image/png;base64,{data}",
                    "bounds": [[south, west], [north, east]],
                    "shown": number == 0 and raster.stem.endswith("_joint"),
                }
            )
    return previews


def map_layers(chips_dir: Path | None, embed_dirs: Sequence[Path] = ()) -> MapLayers | None:
    """The map's layers from a chip store's index and the PCA previews of embed folders.

    Args:
        chips_dir: The chip store the probes read (its GeoParquet index has the footprints).
        embed_dirs: ``eo-mmcl embed`` output folders (their ``*_pca.png`` and rasters).

    Returns:
        The layers, or None where there is no chip index to draw.
    """
    if chips_dir is None or not (Path(chips_dir) / INDEX_FILE).is_file():
        return None
    index = read_table(Path(chips_dir) / INDEX_FILE, geo=True, writer="eo-mmcl tile")
    chips = gpd.GeoDataFrame(index[["chip_id", "split"]], geometry=index.geometry)
    chips = chips.to_crs("EPSG:4326")
    grouping = index["scene"].fillna(index["pair_id"]) if "scene" in index else index["pair_id"]
    scenes = gpd.GeoDataFrame({"scene": grouping.astype(str)}, geometry=chips.geometry)
    scenes = scenes.dissolve(by="scene", as_index=False)
    scenes["geometry"] = scenes.geometry.convex_hull
    return MapLayers(
        scenes=json.loads(scenes.to_json()),
        chips=json.loads(chips.to_json()),
        previews=_previews(embed_dirs),
    )


def leaflet_assets() -> tuple[str, str]:
    """Leaflet's JavaScript and CSS, to inline into the page."""
    assets = resources.files("eo_mmcl.report") / "assets"
    return (
        (assets / "leaflet.js").read_text(encoding="utf-8"),
        (assets / "leaflet.css").read_text(encoding="utf-8"),
    )
