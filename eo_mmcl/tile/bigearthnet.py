"""Convert BigEarthNet v2 (reBEN) LMDB patches into the chip store layout.

BigEarthNet's patches are already paired and chipped (120 x 120 px at 10 m) but carry no CRS or
transform, so the index has no geometry. S2's 20 m and 60 m bands are upsampled to the 10 m grid
with bilinear interpolation in pixel-area geometry; labels become a 19-class multi-hot array.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from eo_mmcl import __version__
from eo_mmcl.bands import S2_L2A_BANDS
from eo_mmcl.errors import SourceError
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.tile.integrity import INTEGRITY_KEY, describe_store, reusable
from eo_mmcl.tile.plan import store_order
from eo_mmcl.tile.run import TileResult
from eo_mmcl.tile.store import (
    ATTRS_KEY,
    CHIPS_ZARR,
    INDEX_COLUMNS,
    INDEX_FILE,
    MANIFEST_FILE,
    SPLITS,
    StoreLayout,
    TaskSpec,
    create_store,
    read_manifest,
    store_metadata,
    write_chunk,
)

#: The BigEarthNet 19-class nomenclature (Sumbul et al., 2021), label index = position.
BIGEARTHNET19_CLASSES: tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)
TASK = "bigearthnet19"
PATCH_SIZE = 120
SPLIT_NAMES = {"train": "train", "validation": "val", "val": "val", "test": "test"}


def _metadata(folder: Path) -> pd.DataFrame:
    frames = []
    for name, flagged in (
        ("metadata.parquet", False),
        ("metadata_for_patches_with_snow_cloud_or_shadow.parquet", True),
    ):
        path = folder / name
        if path.exists():
            frames.append(pd.read_parquet(path).assign(snow_cloud_or_shadow=flagged))
    if not frames:
        raise SourceError(f"{folder}: no metadata.parquet (BigEarthNet v2 layout expected)")
    meta = pd.concat(frames, ignore_index=True).drop_duplicates("patch_id")
    unknown = sorted(set(meta["split"]) - set(SPLIT_NAMES))
    if unknown:
        raise SourceError(f"{folder}: unknown splits {unknown} in the metadata")
    meta["split"] = meta["split"].map(SPLIT_NAMES)
    return meta.sort_values("patch_id", ignore_index=True)


def _lmdb_folder(path: Path) -> Path:
    # The distributed layout keeps the database in BigEarthNet-V2-LMDB/ beside the metadata.
    if (path / "data.mdb").exists():
        return path
    candidates = sorted(p.parent for p in path.glob("*/data.mdb"))
    if not candidates:
        raise SourceError(f"{path}: no LMDB database (data.mdb) found")
    return candidates[0]


def _s2_on_10m(bands: dict[str, np.ndarray], patch_id: str) -> np.ndarray:
    missing = [b for b in S2_L2A_BANDS if b not in bands]
    if missing:
        raise SourceError(f"BigEarthNet patch {patch_id}: bands {missing} missing")
    out = np.empty((len(S2_L2A_BANDS), PATCH_SIZE, PATCH_SIZE), dtype=np.uint16)
    for i, name in enumerate(S2_L2A_BANDS):
        band = bands[name]
        if band.shape != (PATCH_SIZE, PATCH_SIZE):
            # align_corners=False is pixel-area geometry: a 20 m pixel covers exactly 2x2 10 m
            # pixels, as in the S2 product grid.
            tensor = torch.from_numpy(band.astype(np.float32))[None, None]
            band = (
                F.interpolate(
                    tensor, size=(PATCH_SIZE, PATCH_SIZE), mode="bilinear", align_corners=False
                )[0, 0]
                .round()
                .clamp(0, 65535)
                .numpy()
            )
        out[i] = band
    return out


def convert_bigearthnet(
    folder: str | Path,
    chips_dir: str | Path,
    seed: int = 0,
    chips_per_chunk: int = 32,
    force: bool = False,
) -> TileResult:
    """Convert a BigEarthNet v2 folder (LMDB + metadata parquet) into a chip store.

    Args:
        folder: The folder holding ``metadata.parquet`` and the LMDB (or the LMDB itself's
            parent).
        chips_dir: Output chip store folder.
        seed: Seed of the store order.
        chips_per_chunk: Chips per Zarr chunk.
        force: Rebuild a complete store.

    Returns:
        The result with the manifest.

    Raises:
        SourceError: If the folder lacks metadata or LMDB, or a patch lacks a band.
    """
    import lmdb
    from safetensors.numpy import load

    folder, out = Path(folder), Path(chips_dir)
    meta = _metadata(folder)
    fingerprint = f"bigearthnet:{len(meta)}:{seed}:{chips_per_chunk}:{__version__}"
    manifest = read_manifest(out)
    if reusable(manifest, fingerprint) and not force:
        assert manifest is not None
        return TileResult(out, manifest, reused=True)
    for path in (out / CHIPS_ZARR, out / INDEX_FILE, out / MANIFEST_FILE):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    slots, n_slots = store_order(meta["split"].to_numpy(dtype=object), chips_per_chunk, seed)
    task = TaskSpec(TASK, "R", len(BIGEARTHNET19_CLASSES), "multilabel", BIGEARTHNET19_CLASSES)
    layout = StoreLayout(
        n_slots, PATCH_SIZE, S2_L2A_BANDS, ("VV", "VH"), (task,), chips_per_chunk, has_cloud=False
    )
    group = create_store(out / CHIPS_ZARR, layout)
    arrays: dict[str, np.ndarray] = {
        "s2": np.zeros((n_slots, 12, PATCH_SIZE, PATCH_SIZE), dtype=np.uint16),
        "s1": np.full((n_slots, 2, PATCH_SIZE, PATCH_SIZE), np.nan, dtype=np.float32),
        "valid": np.zeros((n_slots, PATCH_SIZE, PATCH_SIZE), dtype=np.uint8),
        TASK: np.zeros((n_slots, len(BIGEARTHNET19_CLASSES)), dtype=np.uint8),
    }
    class_index = {name: i for i, name in enumerate(BIGEARTHNET19_CLASSES)}
    rows: list[dict[str, Any]] = []
    env = lmdb.open(str(_lmdb_folder(folder)), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            for record, slot in zip(meta.to_dict("records"), slots, strict=True):
                s2_blob, s1_blob = (
                    txn.get(record["patch_id"].encode()),
                    txn.get(record["s1_name"].encode()),
                )
                if s2_blob is None or s1_blob is None:
                    raise SourceError(
                        f"BigEarthNet patch {record['patch_id']}: missing from the LMDB"
                    )
                s2 = _s2_on_10m(load(s2_blob), record["patch_id"])
                s1_bands = load(s1_blob)
                s1 = np.stack([s1_bands["VV"], s1_bands["VH"]]).astype(np.float32)
                valid = np.all(s2 != 0, axis=0) & np.all(np.isfinite(s1), axis=0)
                unknown = [label for label in record["labels"] if label not in class_index]
                if unknown:
                    raise SourceError(
                        f"BigEarthNet patch {record['patch_id']}: unknown labels {unknown}"
                    )
                arrays["s2"][slot], arrays["s1"][slot], arrays["valid"][slot] = s2, s1, valid
                arrays[TASK][slot, [class_index[label] for label in record["labels"]]] = 1
                rows.append(
                    {
                        "chip_id": record["patch_id"],
                        "store_index": int(slot),
                        "split": record["split"],
                        "pair_id": record["s1_name"],
                        "scene": record["patch_id"].split("_")[5],
                        "s2_id": record["patch_id"],
                        "s1_id": record["s1_name"],
                        "nodata_fraction": 1.0 - float(valid.mean()),
                        "labels": list(record["labels"]),
                        "contains_seasonal_snow": bool(record["contains_seasonal_snow"]),
                        "contains_cloud_or_shadow": bool(record["contains_cloud_or_shadow"]),
                    }
                )
    finally:
        env.close()
    write_chunk(group, 0, arrays)
    train = [r["store_index"] for r in rows if r["split"] == "train"]
    valid_train = arrays["valid"][train].astype(bool)
    normalisation = {}
    for key, bands in (("s2", S2_L2A_BANDS), ("s1", ("VV", "VH"))):
        values = arrays[key][train].transpose(1, 0, 2, 3)[:, valid_train].astype(np.float64)
        normalisation[key] = {
            "bands": list(bands),
            "mean": values.mean(axis=1).tolist(),
            "std": np.maximum(values.std(axis=1), 1e-6).tolist(),
            "pixels": [int(values.shape[1])] * len(bands),
        }
    index = pd.DataFrame(rows).reindex(
        columns=[*INDEX_COLUMNS, "labels", "contains_seasonal_snow", "contains_cloud_or_shadow"]
    )
    gdf = gpd.GeoDataFrame(index, geometry=[None] * len(index), crs="EPSG:4326").sort_values(
        "store_index", ignore_index=True
    )
    counts = {
        "candidates": len(meta),
        "chips": len(gdf),
        **{f"chips_{s}": int((gdf["split"] == s).sum()) for s in SPLITS},
    }
    attrs = store_metadata(group)
    attrs.update(normalisation=normalisation, counts=counts, source="bigearthnet-v2")
    group.attrs[ATTRS_KEY] = attrs
    with atomic_output(out / INDEX_FILE) as tmp:
        gdf.to_parquet(tmp, index=False)
    manifest = {
        "fingerprint": fingerprint,
        "version": __version__,
        "counts": counts,
        "messages": [],
        INTEGRITY_KEY: describe_store(out),
    }
    with atomic_output(out / MANIFEST_FILE) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
    return TileResult(out, manifest)
