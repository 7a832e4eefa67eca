"""What ``eo-mmcl probe`` measures: the probes, the probe seeds, the embedding keys per depth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from eo_mmcl.embed.config import check_accelerator_name
from eo_mmcl.errors import ConfigError

#: The two depths probed: pooled backbone features, and the projection (aligned) space.
DEPTHS = ("backbone", "projection")

PROBES = ("linear", "knn", "segmentation", "segmentation_knn")
#: The per-pixel probes (feature maps, mIoU), linear and kNN heads.
SEGMENTATION_PROBES = ("segmentation", "segmentation_knn")


@dataclass
class ProbeConfig:
    """What ``eo-mmcl probe`` measures.

    Args:
        seeds: Probe seeds per training seed; probe seed ``s`` draws the probes' train
            subsample (the random-init weights come from the training seeds).
        probes: Probes to run (``linear``, ``knn``, ``segmentation``, ``segmentation_knn``).
        train_fraction: Fraction of the train chips each seed's probes train on.
        keys: Embedding key per depth, per objective (``"*"`` for every objective), e.g.
            ``{"coral": {"projection": "proj_joint"}, "*": {"backbone": "joint"}}``.
        pixels_per_chip: Pixels per chip sampled to train the segmentation head.
        random_init: Also probe untrained encoders of each architecture (the floor).
        reference: Also probe per-chip band statistics (``band-stats``, no learning).
        accelerator: Where the encoders embed the chips: auto (a GPU when there is one, else the
            CPU), cpu, gpu, cuda or mps. Float32 on every device; the probes themselves run on
            the CPU.
    """

    seeds: int = 3
    probes: tuple[str, ...] = PROBES
    train_fraction: float = 0.8
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    pixels_per_chip: int = 16
    random_init: bool = True
    reference: bool = True
    accelerator: str = "auto"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.probes) - set(PROBES))
        if unknown:
            raise ConfigError(f"unknown probes {unknown}; expected some of {PROBES}")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        check_accelerator_name(self.accelerator)
        for objective, per_depth in self.keys.items():
            bad = sorted(set(per_depth) - set(DEPTHS))
            if bad:
                raise ConfigError(f"--key {objective}: unknown depths {bad}; expected {DEPTHS}")

    def keys_for(self, objective: str) -> dict[str, str]:
        """Embedding keys of one objective (its own overrides over the ``*`` ones)."""
        return {**self.keys.get("*", {}), **self.keys.get(objective, {})}


def parse_keys(specs: Sequence[str]) -> dict[str, dict[str, str]]:
    """Parse ``--key`` options: ``DEPTH=KEY`` or ``OBJECTIVE:DEPTH=KEY``.

    Args:
        specs: The option values.

    Returns:
        Keys per objective (``"*"`` for all) and depth.

    Raises:
        ConfigError: If a value is malformed.
    """
    keys: dict[str, dict[str, str]] = {}
    for spec in specs:
        target, sep, key = spec.partition("=")
        objective, _, depth = target.rpartition(":")
        if not sep or not key or depth not in DEPTHS:
            raise ConfigError(
                f"--key {spec!r}: expected DEPTH=KEY or OBJECTIVE:DEPTH=KEY with DEPTH in {DEPTHS}"
            )
        keys.setdefault(objective or "*", {})[depth] = key
    return keys
