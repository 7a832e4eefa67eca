"""Probes on frozen embeddings: how much shared, SAR-only, optical-only, synergy info survives.

Tasks come from a chip store's label arrays, each with its information group (R shared, U1
SAR-only, U2 optical-only, S synergy); embeddings from checkpoints (and random-init copies, the
floor); linear, kNN and segmentation probes give scores that become survival ratios against the
``supervised`` oracle.
"""

from eo_mmcl.probes.classifiers import (
    ProbeResult,
    knn_probe,
    linear_probe,
    miou,
    miou_chance,
)
from eo_mmcl.probes.config import PROBES, ProbeConfig, parse_keys
from eo_mmcl.probes.embeddings import (
    DEFAULT_KEYS,
    DEPTHS,
    RANDOM_INIT,
    ChipEmbeddings,
    extract_embeddings,
    load_objective,
    random_init_like,
)
from eo_mmcl.probes.run import ProbeRun, run_probes
from eo_mmcl.probes.segmentation import segmentation_knn_probe, segmentation_probe
from eo_mmcl.probes.survival import add_survival, best_per_group, summarise, survival_ratio
from eo_mmcl.probes.tasks import GROUPS, ChipLabels, ProbeTask, load_chip_labels

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
