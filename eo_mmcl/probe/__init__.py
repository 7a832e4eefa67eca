"""Probes on frozen embeddings: how much shared, SAR-only, optical-only, synergy info survives.

Tasks come from a chip store's label arrays, each with its information group (R shared, U1
SAR-only, U2 optical-only, S synergy); embeddings from checkpoints (and random-init copies, the
floor); linear, kNN and segmentation probes give scores that become survival ratios against the
``supervised`` oracle.

The names below load on first use (PEP 562), so that ``eo_mmcl.probe.config`` (what the
command line reads for its options) comes without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eo_mmcl.lazy import lazy_attributes

if TYPE_CHECKING:
    from eo_mmcl.probe.classifiers import ProbeResult, knn_probe, linear_probe, miou, miou_chance
    from eo_mmcl.probe.config import DEPTHS, PROBES, ProbeConfig, parse_keys
    from eo_mmcl.probe.embeddings import (
        DEFAULT_KEYS,
        RANDOM_INIT,
        ChipEmbeddings,
        extract_embeddings,
        load_objective,
        random_init_like,
    )
    from eo_mmcl.probe.run import ProbeRun, run_probes
    from eo_mmcl.probe.segmentation import segmentation_knn_probe, segmentation_probe
    from eo_mmcl.probe.survival import add_survival, best_per_group, summarise, survival_ratio
    from eo_mmcl.probe.tasks import GROUPS, ChipLabels, ProbeTask, load_chip_labels

#: Where each public name lives.
_HOMES = {
    "ProbeResult": "classifiers",
    "knn_probe": "classifiers",
    "linear_probe": "classifiers",
    "miou": "classifiers",
    "miou_chance": "classifiers",
    "DEPTHS": "config",
    "PROBES": "config",
    "ProbeConfig": "config",
    "parse_keys": "config",
    "DEFAULT_KEYS": "embeddings",
    "RANDOM_INIT": "embeddings",
    "ChipEmbeddings": "embeddings",
    "extract_embeddings": "embeddings",
    "load_objective": "embeddings",
    "random_init_like": "embeddings",
    "ProbeRun": "run",
    "run_probes": "run",
    "segmentation_knn_probe": "segmentation",
    "segmentation_probe": "segmentation",
    "add_survival": "survival",
    "best_per_group": "survival",
    "summarise": "survival",
    "survival_ratio": "survival",
    "GROUPS": "tasks",
    "ChipLabels": "tasks",
    "ProbeTask": "tasks",
    "load_chip_labels": "tasks",
}

__all__ = [
    "DEFAULT_KEYS",
    "DEPTHS",
    "GROUPS",
    "PROBES",
    "RANDOM_INIT",
    "ChipEmbeddings",
    "ChipLabels",
    "ProbeConfig",
    "ProbeResult",
    "ProbeRun",
    "ProbeTask",
    "add_survival",
    "best_per_group",
    "extract_embeddings",
    "knn_probe",
    "linear_probe",
    "load_chip_labels",
    "load_objective",
    "miou",
    "miou_chance",
    "parse_keys",
    "random_init_like",
    "run_probes",
    "segmentation_knn_probe",
    "segmentation_probe",
    "summarise",
    "survival_ratio",
]

__getattr__ = lazy_attributes(__name__, _HOMES)
