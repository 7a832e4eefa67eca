"""Frozen chip embeddings and dense feature maps, computed from checkpoints on a chip store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import default_collate

from eo_mmcl.datamodules.chipstore import ChipStoreDataset
from eo_mmcl.datamodules.transforms import PairedS1S2Transform
from eo_mmcl.embed.chips import write_chip_table
from eo_mmcl.embed.predict import batch_normaliser, chip_loader, predict_embeddings
from eo_mmcl.errors import ConfigError, SourceError
from eo_mmcl.io.tables import read_table
from eo_mmcl.objectives import Objective
from eo_mmcl.objectives.base import PredictOutputs
from eo_mmcl.objectives.checkpoint import load_trained
from eo_mmcl.probe.config import DEPTHS

#: Embedding key each objective is probed with at each depth (override with ``keys``).
DEFAULT_KEYS: dict[str, str] = {"backbone": "joint", "projection": "proj_joint"}

#: Objective name of the untrained floor.
RANDOM_INIT = "random-init"


@dataclass
class ChipEmbeddings:
    """Embeddings of every chip of a store under one model.

    Args:
        objective: Objective name (``random-init`` for an untrained floor).
        architecture: The model class's objective (what a random-init floor was built as).
        source: Checkpoint path (or ``random-init(<objective>, seed=<s>)``).
        store_index: (N,) store rows, in the order of the chip labels.
        pooled: Per depth: (N, D) float32 embedding (absent depths are not probed).
        keys: Per depth: the embedding key read from ``model.embed``.
        dense: (N, C, h, w) float32 backbone feature maps of both modalities, or None.
        sensors: Per single sensor (``s1``, ``s2``): (N, D) pooled backbone features of that
            sensor alone (for the instrument's wrong-sensor check; empty unless asked for).
        dense_s1_channels: How many leading channels of ``dense`` are S1's (the rest S2's).
    """

    objective: str
    architecture: str
    source: str
    store_index: np.ndarray
    pooled: dict[str, np.ndarray] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    dense: np.ndarray | None = None
    sensors: dict[str, np.ndarray] = field(default_factory=dict)
    dense_s1_channels: int = 0

    def dense_of(self, sensor: str) -> np.ndarray | None:
        """Feature maps of both sensors (``joint``) or of one (``s1``, ``s2``).

        Args:
            sensor: ``joint``, ``s1`` or ``s2``.

        Returns:
            (N, C, h, w) maps, or None where there are none.
        """
        if self.dense is None or sensor == "joint":
            return self.dense
        split = self.dense_s1_channels
        part = self.dense[:, :split] if sensor == "s1" else self.dense[:, split:]
        return part if part.shape[1] else None


def load_objective(checkpoint: str | Path) -> Objective:
    """Load a trained objective from a Lightning checkpoint, whatever its objective.

    Args:
        checkpoint: ``.ckpt`` written by ``eo-mmcl train``.

    Returns:
        The objective in eval mode on the CPU, with its ``data_meta`` (bands, normalisation).

    Raises:
        SourceError: If the file is missing or not an eo_mmcl checkpoint.
    """
    return load_trained(checkpoint)[0]


def random_init_like(model: Objective, seed: int) -> Objective:
    """The same objective class and hyperparameters, untrained, weights drawn from ``seed``.

    Args:
        model: A trained objective (its class, hyperparameters and ``data_meta`` are reused).
        seed: Seed of the weight initialisation.

    Returns:
        The untrained objective, in eval mode.
    """
    hparams = dict(model.hparams)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        floor = type(model)(**hparams)
    floor.data_meta = dict(model.data_meta)
    return floor.eval()


def _transform(model: Objective, dataset: ChipStoreDataset) -> PairedS1S2Transform:
    # The checkpoint's own statistics first: they are what the encoder was trained with.
    stats = model.data_meta.get("normalisation") or dataset.metadata.get("normalisation")
    if not stats or "s2" not in stats:
        raise ConfigError(
            f"{dataset.chips_dir}: no normalisation statistics in the checkpoint or the store"
        )
    return PairedS1S2Transform.from_statistics(stats)


@torch.no_grad()
def extract_embeddings(
    model: Objective,
    chips_dir: str | Path,
    store_index: np.ndarray,
    keys: dict[str, str] | None = None,
    dense: bool = True,
    batch_size: int = 64,
    objective: str | None = None,
    source: str = "",
    sensors: bool = False,
    accelerator: str = "auto",
) -> ChipEmbeddings:
    """Pooled embeddings at both depths, and dense feature maps, of the given chips.

    Args:
        model: An objective in eval mode.
        chips_dir: The chip store.
        store_index: Store rows to embed (the order of the result).
        keys: Embedding key per depth (default :data:`DEFAULT_KEYS`); a depth whose key the
            model does not produce (``supervised`` has no projection) is left out.
        dense: Also keep the last backbone feature maps of S1 and S2 (for segmentation).
        batch_size: Chips per forward pass.
        objective: Name to record (default: the model's objective).
        source: Where the weights came from, for the record.
        sensors: Also keep each sensor's pooled backbone features alone (``s1``, ``s2``).
        accelerator: Lightning accelerator of the predict loop.

    Returns:
        The embeddings.

    Raises:
        ConfigError: If a key asked for explicitly is not produced by the model.
    """
    keys = {**DEFAULT_KEYS, **(keys or {})}
    dataset = ChipStoreDataset(chips_dir, split=None, tasks=[])
    position = {int(s): i for i, s in enumerate(dataset.store_index)}
    missing = [int(s) for s in store_index if int(s) not in position]
    if missing:
        raise SourceError(f"{chips_dir}: store rows {missing[:5]} are not indexed")
    order = [position[int(s)] for s in store_index]
    loader = chip_loader(dataset, order, batch_normaliser(_transform(model, dataset)), batch_size)
    wanted = (*dict.fromkeys(keys.values()), *(("s1", "s2") if sensors else ()))
    outputs = PredictOutputs(keys=wanted, dense=dense)
    out = predict_embeddings(model, loader, outputs, accelerator=accelerator)
    pooled = {depth: out[key] for depth, key in keys.items() if key in out}
    maps: np.ndarray | None = None
    s1_channels = 0
    if dense and "dense_s1" in out:
        # Popped: the concatenated maps replace them, rather than sit beside them.
        s1, s2 = torch.from_numpy(out.pop("dense_s1")), torch.from_numpy(out.pop("dense_s2"))
        if s1.shape[-2:] != s2.shape[-2:]:  # different backbones: lay S1 on S2's grid
            s1 = torch.nn.functional.interpolate(s1, size=s2.shape[-2:], mode="bilinear")
        s1_channels = int(s1.shape[1])
        maps = torch.cat([s1, s2], dim=1).numpy()
        del s1, s2
    name = objective or model.objective
    if "backbone" not in pooled:
        # Only to name them in the message.
        produced = sorted(model.embed(next(iter(loader)))) if order else []
        raise ConfigError(
            f"{name}: the embedding key {keys['backbone']!r} is not produced by the model "
            f"(keys: {produced})"
        )
    return ChipEmbeddings(
        objective=name,
        architecture=model.objective,
        source=source,
        store_index=np.asarray(store_index, dtype=np.int64),
        pooled=pooled,
        keys={d: keys[d] for d in pooled},
        dense=maps,
        sensors={k: out[k] for k in ("s1", "s2") if sensors and k in out},
        dense_s1_channels=s1_channels,
    )


def write_embedding_table(
    path: str | Path, embeddings: ChipEmbeddings, depth: str, index: pd.DataFrame
) -> None:
    """Write per-chip embeddings of one depth in the export's chip-table format.

    Args:
        path: Output ``.parquet`` (written atomically).
        embeddings: The embeddings.
        depth: Which depth.
        index: The chip index rows of ``embeddings.store_index`` (same order; footprints in
            EPSG:4326, as the chip index holds them).
    """
    import geopandas as gpd

    frame = gpd.GeoDataFrame(index, geometry="geometry", crs="EPSG:4326")
    write_chip_table(Path(path), frame, embeddings.pooled[depth])


def read_embedding_table(path: str | Path, store_index: np.ndarray) -> np.ndarray:
    """Per-chip embeddings from a GeoParquet table, in the order of ``store_index``.

    Args:
        path: A table with ``store_index`` and ``embedding`` (list of floats) columns.
        store_index: The store rows wanted.

    Returns:
        (N, D) float32.

    Raises:
        SourceError: If the table lacks the columns or some chips.
    """
    table = read_table(path, writer="eo-mmcl embed")
    for column in ("store_index", "embedding"):
        if column not in table:
            raise SourceError(f"{path}: no {column!r} column (columns: {list(table.columns)})")
    rows = dict(zip(table["store_index"].astype(int), table["embedding"], strict=True))
    missing = [int(s) for s in store_index if int(s) not in rows]
    if missing:
        raise SourceError(f"{path}: no embedding for store rows {missing[:5]}")
    return np.stack([np.asarray(rows[int(s)], dtype=np.float32) for s in store_index])


@dataclass(frozen=True)
class EmbeddingTable:
    """One per-chip embedding table found in an embeddings folder.

    Args:
        path: The GeoParquet file.
        name: Row name in the probe table (``<objective> (table)`` or
            ``<objective>:<key> (table)``).
        architecture: The objective it came from.
        depth: ``backbone`` or ``projection``.
    """

    path: Path
    name: str
    architecture: str
    depth: str


def find_embedding_tables(embeddings_dir: str | Path) -> list[EmbeddingTable]:
    """Per-chip embedding tables in a folder, in either of the product's two formats.

    - ``<objective>__<depth>.parquet`` directly in the folder: what ``eo-mmcl probe`` writes
      under ``PROBE_DIR/embeddings``;
    - ``chips_<objective>_<key>.parquet`` anywhere below it: what ``eo-mmcl embed`` writes
      beside the rasters (so the embed stage's folder, one subfolder per objective, can be
      given as is). Keys starting with ``proj`` are the projection depth, the others the
      backbone depth.

    Args:
        embeddings_dir: The folder.

    Returns:
        The tables, sorted by path.

    Raises:
        SourceError: If the folder is missing, holds no table, or a ``__`` table names an
            unknown depth.
    """
    from eo_mmcl.objectives import OBJECTIVES  # the names an export table can start with

    folder = Path(embeddings_dir)
    if not folder.is_dir():
        raise SourceError(f"{folder}: embeddings folder not found")
    tables: list[EmbeddingTable] = []
    for path in sorted(folder.glob("*__*.parquet")):
        name, _, depth = path.stem.partition("__")
        if depth not in DEPTHS:
            raise SourceError(
                f"{path}: embedding tables must be named <objective>__<depth>.parquet with "
                f"depth in {DEPTHS}"
            )
        tables.append(EmbeddingTable(path, f"{name} (table)", name, depth))
    # Longest names first: `cross_self` must not be read as objective `cross`, key `self_...`.
    known = sorted(OBJECTIVES, key=len, reverse=True)
    for path in sorted(folder.rglob("chips_*.parquet")):
        rest = path.stem.removeprefix("chips_")
        objective = next((o for o in known if rest.startswith(f"{o}_")), None)
        if objective is None:
            continue  # not an export table of a known objective
        key = rest.removeprefix(f"{objective}_")
        depth = "projection" if key.startswith("proj") else "backbone"
        tables.append(EmbeddingTable(path, f"{objective}:{key} (table)", objective, depth))
    if not tables:
        raise SourceError(
            f"{folder}: no embedding table (<objective>__<depth>.parquet, or the "
            "chips_<objective>_<key>.parquet that `eo-mmcl embed` writes)"
        )
    return tables


#: Objective name of the hand-crafted reference: per-band statistics of each chip.
BAND_STATISTICS = "band-stats"


def band_statistics(chips_dir: str | Path, store_index: np.ndarray) -> ChipEmbeddings:
    """A learning-free reference embedding: mean and std of every band over valid pixels.

    It tells how much of each task plain per-chip radiometry already carries, which puts both
    the untrained floor and the trained oracle in proportion (S1 in dB, S2 in reflectance).

    Args:
        chips_dir: The chip store.
        store_index: Store rows to describe (the order of the result).

    Returns:
        Embeddings at the backbone depth (N, 2 x bands: S1 means and stds, then S2's), and
        each sensor's statistics alone.
    """
    dataset = ChipStoreDataset(chips_dir, split=None, tasks=[])
    position = {int(s): i for i, s in enumerate(dataset.store_index)}
    order = [position[int(s)] for s in store_index]
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(order), 256):
        batch = default_collate(dataset.__getitems__(order[start : start + 256]))
        valid = batch["valid"][:, None].float()  # (B, 1, H, W)
        count = valid.sum(dim=(2, 3)).clamp(min=1)
        for sensor in ("s1", "s2"):
            if f"image_{sensor}" not in batch:
                continue
            image = torch.nan_to_num(batch[f"image_{sensor}"].float()) * valid
            mean = image.sum(dim=(2, 3)) / count
            var = (image**2).sum(dim=(2, 3)) / count - mean**2
            stats = torch.cat([mean, var.clamp(min=0).sqrt()], dim=1)
            parts.setdefault(sensor, []).append(stats.numpy())
    sensors = {k: np.concatenate(v) for k, v in parts.items()}
    return ChipEmbeddings(
        objective=BAND_STATISTICS,
        architecture=BAND_STATISTICS,
        source="per-band mean and std over valid pixels",
        store_index=np.asarray(store_index, dtype=np.int64),
        pooled={"backbone": np.concatenate(list(sensors.values()), axis=1)},
        keys={"backbone": "band_mean_std"},
        sensors=sensors if len(sensors) > 1 else {},
    )
