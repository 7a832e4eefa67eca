"""Load a trained objective from its checkpoint and embed raw S1/S2 pixels with it.

The checkpoint's ``eo_mmcl`` dict names the objective (hence its class) and carries the
band lists and normalisation statistics of the chip store it was trained on, so the export
needs nothing else.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from eo_mmcl.datamodules.transforms import PairedS1S2Transform
from eo_mmcl.embed.predict import batch_normaliser
from eo_mmcl.errors import ConfigError
from eo_mmcl.objectives import Objective
from eo_mmcl.objectives.base import SINGLE_SENSOR_KEYS
from eo_mmcl.objectives.checkpoint import load_trained

#: Extra keys exported by ``--modality all``, per objective (the unique-path embeddings).
UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    "coral": ("shared", "proj_u1", "proj_u2"),
    "decur": ("unique_s1", "unique_s2"),
}
#: Modalities each embedding key needs.
NEEDS: dict[str, tuple[str, ...]] = {
    "s1": ("s1",),
    "s2": ("s2",),
    "proj_u1": ("s1",),
    "unique_s1": ("s1",),
    "proj_u2": ("s2",),
    "unique_s2": ("s2",),
}


@dataclass
class EmbeddingModel:
    """A trained objective in evaluation mode with its normalisation.

    Args:
        module: The objective (a LightningModule).
        meta: The checkpoint's ``eo_mmcl`` dict.
        path: The checkpoint.
    """

    module: Objective
    meta: dict[str, Any]
    path: Path

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingModel:
        """Load a checkpoint on the CPU.

        Args:
            path: The checkpoint.

        Returns:
            The model.
        """
        module, meta = load_trained(path)
        return cls(module, meta, Path(path))

    @property
    def task(self) -> Objective:
        """Deprecated name of :attr:`module` (a task is a label task here)."""
        warnings.warn(
            "EmbeddingModel.task is now EmbeddingModel.module", DeprecationWarning, stacklevel=2
        )
        return self.module

    @property
    def objective(self) -> str:
        """The objective's name."""
        return str(self.meta["objective"])

    @property
    def bands(self) -> dict[str, list[str]]:
        """Band lists per modality, in the model's channel order."""
        return {k: list(v) for k, v in self.meta["bands"].items() if v}

    def keys(self, modality: str, s2_only: bool = False) -> list[str]:
        """Embedding keys to export for a ``--modality`` choice.

        Args:
            modality: ``s1``, ``s2``, ``joint`` or ``all``.
            s2_only: The scenes have no S1 (keys that need S1 are left out of ``all``).

        Returns:
            The keys.

        Raises:
            ConfigError: If the modality is unknown, or needs S1 on S2-only scenes.
        """
        if modality not in ("s1", "s2", "joint", "all"):
            raise ConfigError(f"--modality must be s1, s2, joint or all, got {modality!r}")
        if modality != "all":
            keys = [modality]
        else:
            keys = ["s1", "s2", "joint", *UNIQUE_KEYS.get(self.objective, ())]
        if s2_only:
            usable = [k for k in keys if NEEDS.get(k, ("s1", "s2")) == ("s2",)]
            if not usable:
                raise ConfigError(
                    f"--modality {modality} needs Sentinel-1, but the catalog has S2 scenes only"
                )
            keys = usable
        return keys

    def transform(self) -> PairedS1S2Transform:
        """The normalisation of the chip store the model was trained on."""
        return PairedS1S2Transform.from_statistics(self.meta["normalisation"])

    def normaliser(
        self, keys: Sequence[str], has_s1: bool
    ) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
        """The batch normalisation of an export of ``keys``, for data with or without S1.

        Keys that need both sensors read S1 as zeros (its normalised band mean) on S2-only
        data; per-sensor keys alone run one backbone and need nothing in its place.

        Args:
            keys: Embedding keys exported.
            has_s1: The data hold S1.

        Returns:
            :func:`~eo_mmcl.embed.predict.batch_normaliser` of the model's statistics.
        """
        single = set(keys) <= set(SINGLE_SENSOR_KEYS)
        fill = None if has_s1 or single else int(self.module.hparams["s1_channels"])
        return batch_normaliser(self.transform(), fill)
