"""Probing one model's embeddings: every probe of every task at every probe seed, collected.

The rows nest probe seeds inside training seeds (the error bars' unit); beside them, the
report's test predictions and segmentation maps of each objective's first set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from eo_mmcl.probe.classifiers import (
    ProbeResult,
    knn_probe,
    linear_probe,
)
from eo_mmcl.probe.config import SEGMENTATION_PROBES, ProbeConfig
from eo_mmcl.probe.embeddings import (
    ChipEmbeddings,
)
from eo_mmcl.probe.segmentation import segmentation_knn_probe, segmentation_probe
from eo_mmcl.probe.tasks import ChipLabels


def train_rows(labels: ChipLabels, fraction: float, train_seed: int, seed: int) -> np.ndarray:
    """The train chips one probe fit learns from: a subsample drawn from both seeds.

    Args:
        labels: The chip labels.
        fraction: Share of the train chips to keep (1: all).
        train_seed: The training seed of the weights probed.
        seed: The probe seed.

    Returns:
        Sorted row indices into the labels.
    """
    train = np.flatnonzero(labels.split == "train")
    if fraction >= 1:
        return train
    rng = np.random.default_rng([train_seed, seed, 7])
    return np.sort(rng.choice(train, size=max(2, round(fraction * train.size)), replace=False))


#: What a ``keep`` callback receives: a row, the test targets and the test predictions.
Keep = Callable[[dict[str, Any], np.ndarray, np.ndarray], None]


def probe_embeddings(
    emb: ChipEmbeddings,
    labels: ChipLabels,
    config: ProbeConfig,
    train_rows: np.ndarray,
    seed: int,
    keep: Keep,
) -> list[dict[str, Any]]:
    """Every probe of every task on one model's embeddings for one probe seed.

    Rows of the embeddings of both sensors have ``sensor`` ``joint``; where ``emb.sensors`` holds
    each sensor's features alone (the references), their rows (``s1``, ``s2``, backbone depth)
    feed the instrument's wrong-sensor check.
    """
    rows: list[dict[str, Any]] = []
    n_test = int((labels.split == "test").sum())

    def result_fields(result: ProbeResult) -> dict[str, Any]:
        """The columns every probe row shares: the score and what it was measured on."""
        return {
            "metric": result.metric,
            "score": result.score,
            "chance": result.chance,
            "param": float(result.param),
            "val_score": result.val_score,
            "val_chance": result.val_chance,
            "n_train": int(train_rows.size),
            "n_test": n_test,
        }

    inputs = [(depth, "joint", emb.keys[depth], x) for depth, x in emb.pooled.items()]
    inputs += [("backbone", sensor, sensor, x) for sensor, x in emb.sensors.items()]
    for task in labels.tasks.values():
        y = labels.chip[task.name]
        for depth, sensor, key, x in inputs:
            for probe in ("linear", "knn"):
                if probe not in config.probes:
                    continue
                if probe == "linear":
                    result = linear_probe(x, y, labels.split, train_rows, seed=seed)
                else:
                    result = knn_probe(x, y, labels.split, train_rows)
                row = {
                    "task": task.name,
                    "group": task.group,
                    "probe": probe,
                    "depth": depth,
                    "sensor": sensor,
                    "embedding": key,
                    **result_fields(result),
                }
                rows.append(row)
                if sensor == "joint":
                    keep(row, result.y_true, result.y_pred)
        if task.kind != "pixel":
            continue
        for probe in (p for p in SEGMENTATION_PROBES if p in config.probes):
            for sensor in ["joint", *emb.sensors]:
                dense = emb.dense_of(sensor)
                if dense is None:
                    continue
                pixels = labels.pixel[task.name]
                if probe == "segmentation":
                    result = segmentation_probe(
                        dense, pixels, labels.split, task.num_classes, train_rows,
                        pixels_per_chip=config.pixels_per_chip, seed=seed,
                    )  # fmt: skip
                else:
                    result = segmentation_knn_probe(
                        dense, pixels, labels.split, task.num_classes, train_rows
                    )
                row = {
                    "task": task.name,
                    "group": task.group,
                    "probe": probe,
                    "depth": "backbone",
                    "sensor": sensor,
                    "embedding": "dense_s1_s2" if sensor == "joint" else f"dense_{sensor}",
                    **result_fields(result),
                }
                rows.append(row)
                if sensor == "joint":
                    keep(row, result.y_true, result.y_pred)
    return rows


@dataclass
class Collector:
    """Probe rows of every embedding set, and the report's predictions and maps beside them.

    Args:
        labels: The chip labels.
        config: What to probe.
        rows: Probe rows collected so far.
        predictions: The report's test predictions collected so far.
        maps: The report's segmentation maps collected so far.
        kept: Objectives whose predictions and maps are kept (their first set's).
    """

    labels: ChipLabels
    config: ProbeConfig
    rows: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[pd.DataFrame] = field(default_factory=list)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    kept: set[str] = field(default_factory=set)

    def probe(self, emb: ChipEmbeddings, run: int, train_seed: int, floor: str) -> None:
        """Probe one embedding set at every probe seed.

        The report's predictions and maps are those of an objective's first set, probe seed 0.

        Args:
            emb: The embeddings.
            run: Index of the set among its objective's (order of the checkpoints).
            train_seed: The training seed of the weights (the error bars' unit).
            floor: Name of the objective's random-init floor (filled in later).
        """
        first = emb.objective not in self.kept
        self.kept.add(emb.objective)
        test_rows = np.flatnonzero(self.labels.split == "test")
        chip_ids = self.labels.store_index[test_rows]
        for seed in range(self.config.seeds):
            ident = {
                "objective": emb.objective,
                "run": run,
                "train_seed": train_seed,
                "architecture": emb.architecture,
                "floor": floor,
                "seed": seed,
                "checkpoint": emb.source,
            }

            def keep(
                row: dict[str, Any],
                y_true: np.ndarray,
                y_pred: np.ndarray,
                kept: bool = first and seed == 0,
            ) -> None:
                if not kept or y_pred.size == 0:
                    return
                if row["probe"] in SEGMENTATION_PROBES:
                    # The report's maps are the linear head's, as they always were.
                    if row["probe"] == "segmentation":
                        self.maps[f"{emb.objective}|{row['task']}"] = y_pred.astype(np.uint8)
                    return
                if y_true.size != chip_ids.size:
                    return
                self.predictions.append(
                    pd.DataFrame(
                        {
                            "objective": emb.objective,
                            "task": row["task"],
                            "probe": row["probe"],
                            "depth": row["depth"],
                            "store_index": chip_ids,
                            "y_true": y_true.astype(np.int64),
                            "y_pred": y_pred.astype(np.int64),
                        }
                    )
                )

            subsample = train_rows(self.labels, self.config.train_fraction, train_seed, seed)
            found = probe_embeddings(emb, self.labels, self.config, subsample, seed, keep)
            self.rows += [{**ident, **row} for row in found]
