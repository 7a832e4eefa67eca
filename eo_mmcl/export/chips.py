"""Per-chip embeddings of a chip store as GeoParquet (one row per chip, as Clay and Major TOM).

Columns: ``chip_id``, ``split``, ``scene``, ``pair_id``, ``store_index``, ``geometry`` (the
chip footprint, EPSG:4326, from the chip index) and ``embedding`` (a list of float32 of fixed
length, the pooled embedding of the whole chip).

Beside each table, a FlatGeobuf of the same footprints with ``pc1``..``pc3`` (the chips' first
principal components) instead of the embedding: GDAL before 3.8 (QGIS 3.22 on Debian 12) has
no Parquet driver, and FlatGeobuf opens in every GIS since GDAL 3.1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa

from eo_mmcl.datamodules.chipstore import ChipStoreDataset
from eo_mmcl.export.model import EmbeddingModel
from eo_mmcl.export.preview import principal_components
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.tiling.store import open_store, store_metadata


def chip_embeddings(
    model: EmbeddingModel,
    chips_dir: str | Path,
    keys: Sequence[str],
    out_paths: dict[str, Path],
    batch_size: int = 64,
) -> dict[str, Path]:
    """Embed every chip of a store and write one GeoParquet per embedding key.

    Args:
        model: The loaded model.
        chips_dir: Chip store folder.
        keys: Embedding keys.
        out_paths: Output path per key.
        batch_size: Chips per forward pass.

    Returns:
        The written paths per key.

    The caller has checked the store against the checkpoint
    (:func:`eo_mmcl.tasks.checkpoint.check_fits_store`), before any work.
    """
    # An S2-only store (a real S2 scene) holds no S1: embed what it has, as the rasters do.
    layout = store_metadata(open_store(chips_dir))["layout"]
    modalities = [m for m in ("s1", "s2") if m in model.bands and layout.get(f"{m}_bands")]
    store = ChipStoreDataset(chips_dir, split=None, tasks=(), modalities=modalities)
    transform = model.transform()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for start in range(0, len(store), batch_size):
        samples = store.__getitems__(list(range(start, min(start + batch_size, len(store)))))
        s2 = np.stack([s["image_s2"].numpy() for s in samples]).astype(np.float32)
        s1 = (
            np.stack([s["image_s1"].numpy() for s in samples]).astype(np.float32)
            if "s1" in modalities
            else None
        )
        for key, value in model.embed(s1, s2, keys, transform).items():
            parts[key].append(value)
    written = {}
    for key in keys:
        values = np.concatenate(parts[key]) if parts[key] else np.zeros((0, 0), np.float32)
        frame = gpd.GeoDataFrame(
            store.index[["chip_id", "split", "scene", "pair_id", "store_index"]].copy(),
            geometry=store.index.geometry.to_numpy(),
            crs=store.index.crs,
        )
        dims = values.shape[1] if values.ndim == 2 else 0
        frame["embedding"] = pa.FixedSizeListArray.from_arrays(
            pa.array(values.reshape(-1), type=pa.float32()), dims
        ).to_pandas()
        with atomic_output(out_paths[key]) as tmp:
            frame.to_parquet(tmp, index=False)
        write_chip_footprints(
            frame.drop(columns="embedding"), values, footprints_path(out_paths[key])
        )
        written[key] = out_paths[key]
    return written


def footprints_path(table: Path) -> Path:
    """The FlatGeobuf of chip footprints beside a chip table."""
    return table.with_suffix(".fgb")


def write_chip_footprints(frame: gpd.GeoDataFrame, values: np.ndarray, path: Path) -> Path:
    """Write chip footprints with their first three principal components as FlatGeobuf.

    Args:
        frame: One row per chip (ids, split, geometry), no embedding column.
        values: ``(N, D)`` chip embeddings, rows as ``frame``'s.
        path: Output ``.fgb`` (written atomically).

    Returns:
        The path.
    """
    out = frame.copy()
    scores = np.zeros((len(out), 3), dtype=np.float64)
    if len(out) and values.size:
        mean, axes = principal_components(values.astype(np.float64))
        scores = (values - mean) @ axes.T
    for i in range(3):
        out[f"pc{i + 1}"] = scores[:, i].astype(np.float32)
    with atomic_output(path) as tmp:
        # FlatGeobuf stores the layer name in its header; GDAL takes the file name, which here is
        # the temporary's (random): name the layer after the final file, so GIS show that name
        # and the same chips give the same bytes.
        out.to_file(tmp, driver="FlatGeobuf", layer=path.stem)
    return path
