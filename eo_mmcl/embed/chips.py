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
from eo_mmcl.embed.model import EmbeddingModel
from eo_mmcl.embed.predict import chip_loader, predict_embeddings
from eo_mmcl.embed.preview import principal_components
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.objectives.base import PredictOutputs
from eo_mmcl.tile.store import open_store, store_metadata

#: The chip index columns of every chip-embedding table, before the geometry and embedding.
CHIP_TABLE_COLUMNS = ("chip_id", "split", "scene", "pair_id", "store_index")


def chip_embeddings(
    model: EmbeddingModel,
    chips_dir: str | Path,
    keys: Sequence[str],
    out_paths: dict[str, Path],
    batch_size: int = 64,
    accelerator: str = "auto",
) -> dict[str, Path]:
    """Embed every chip of a store and write one GeoParquet per embedding key.

    Args:
        model: The loaded model.
        chips_dir: Chip store folder.
        keys: Embedding keys.
        out_paths: Output path per key.
        batch_size: Chips per forward pass.
        accelerator: Lightning accelerator of the predict loop.

    Returns:
        The written paths per key.

    The caller has checked the store against the checkpoint
    (:func:`eo_mmcl.objectives.checkpoint.check_fits_store`), before any work.
    """
    # An S2-only store (a real S2 scene) holds no S1: embed what it has, as the rasters do.
    layout = store_metadata(open_store(chips_dir))["layout"]
    modalities = [m for m in ("s1", "s2") if m in model.bands and layout.get(f"{m}_bands")]
    store = ChipStoreDataset(chips_dir, split=None, tasks=(), modalities=modalities)
    normalise = model.normaliser(keys, "s1" in modalities)
    loader = chip_loader(store, range(len(store)), normalise, batch_size)
    values = predict_embeddings(
        model.module, loader, PredictOutputs(keys=tuple(keys)), accelerator=accelerator
    )
    written = {}
    for key in keys:
        embedding = values.get(key, np.zeros((0, 0), np.float32))  # absent: no chip at all
        table = write_chip_table(out_paths[key], store.index, embedding)
        footprints = footprints_path(out_paths[key])
        write_chip_footprints(table.drop(columns="embedding"), embedding, footprints)
        written[key] = out_paths[key]
    return written


def write_chip_table(path: Path, index: gpd.GeoDataFrame, values: np.ndarray) -> gpd.GeoDataFrame:
    """Write per-chip embeddings as GeoParquet: the product's one chip-embedding table format.

    Columns: :data:`CHIP_TABLE_COLUMNS` from the chip index, the chip footprint (EPSG:4326)
    and ``embedding``, a fixed-size list of float32. The export writes one per embedding key
    beside its rasters, the probes one per objective and depth.

    Args:
        path: Output ``.parquet`` (written atomically).
        index: The chip index rows of the embedded chips (same order as ``values``).
        values: ``(N, D)`` embeddings.

    Returns:
        The table written.
    """
    frame = gpd.GeoDataFrame(
        index[list(CHIP_TABLE_COLUMNS)].reset_index(drop=True),
        geometry=index.geometry.to_numpy(),
        crs=index.crs,
    )
    frame.attrs = {}  # pandas would store the index's attrs in the file's metadata
    values = np.asarray(values, dtype=np.float32)
    dims = values.shape[1] if values.ndim == 2 else 0
    frame["embedding"] = pa.FixedSizeListArray.from_arrays(
        pa.array(values.reshape(-1), type=pa.float32()), dims
    ).to_pandas()
    with atomic_output(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return frame


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
