"""``supervised``: the oracle, both modalities trained on every task's labels at once."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eo_mmcl.errors import ConfigError
from eo_mmcl.losses import LossOutput
from eo_mmcl.tasks.base import ObjectiveTask
from eo_mmcl.tasks.labels import majority_labels


class SupervisedTask(ObjectiveTask):
    """Supervised ceiling of the survival ratio, trained on every task at once.

    A linear head per label task reads concat[S1, S2] pooled features: chip-level majority
    class with cross-entropy; multi-hot tasks with binary cross-entropy.

    Args:
        num_classes: Classes of each task, e.g. ``{"landcover": 6, "s1_unique": 4, ...}``.
        multilabel: Tasks whose labels are multi-hot (``label_<task>`` batch keys).
        **kwargs: :class:`ObjectiveTask` arguments.
    """

    objective = "supervised"

    def __init__(
        self, num_classes: dict[str, int], multilabel: list[str] | None = None, **kwargs: Any
    ) -> None:
        if not num_classes or any(int(n) < 2 for n in num_classes.values()):
            raise ConfigError(
                f"supervised: num_classes needs tasks with >= 2 classes, got {num_classes}"
            )
        self.num_classes = {str(k): int(v) for k, v in num_classes.items()}
        self.multilabel = set(multilabel or [])
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        """Backbones and one linear head per task on the concatenated pooled features."""
        super().configure_models()
        dim = sum(self.encoder.num_features.values())
        self.heads = nn.ModuleDict({t: nn.Linear(dim, n) for t, n in self.num_classes.items()})

    def configure_losses(self) -> None:
        """Cross-entropy (ignoring chips without labels) and binary cross-entropy."""

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[LossOutput, dict[str, Tensor]]:
        """Sum over tasks of the per-task losses."""
        joint = super().embed(batch)["joint"]
        terms: dict[str, Tensor] = {}
        for task, head in self.heads.items():
            logits = head(joint)
            if task in self.multilabel:
                target = batch.get(f"label_{task}")
                if target is None:
                    raise ConfigError(f"supervised: the batch has no 'label_{task}'")
                terms[task] = F.binary_cross_entropy_with_logits(logits, target.float())
                continue
            mask = batch.get(f"mask_{task}")
            if mask is None:
                raise ConfigError(
                    f"supervised: the batch has no 'mask_{task}' (tasks: {sorted(batch)})"
                )
            target = majority_labels(mask, self.num_classes[task], batch.get("valid"))
            if (target >= 0).any():
                terms[task] = F.cross_entropy(logits, target, ignore_index=-1)
            else:  # no labelled chip in this batch: contribute nothing, keep the graph
                terms[task] = logits.sum() * 0.0
        total = torch.stack(list(terms.values())).sum()
        return LossOutput(total, {k: v.detach() for k, v in terms.items()}), {"joint": joint}

    def on_fit_start(self) -> None:
        """Check the store's tasks and class counts against the heads, then the bands."""
        super().on_fit_start()
        datamodule = getattr(self.trainer, "datamodule", None)
        metadata = getattr(datamodule, "store_tasks", None)
        if not metadata:
            return
        for task, classes in self.num_classes.items():
            stored = metadata.get(task)
            if stored is None:
                raise ConfigError(
                    f"supervised: task {task!r} is not in the chip store ({sorted(metadata)})"
                )
            if stored.get("num_classes") and stored["num_classes"] != classes:
                raise ConfigError(
                    f"supervised: task {task!r} has {stored['num_classes']} classes in the chip "
                    f"store, {classes} in the config"
                )

    def embed(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Pooled ``s1``, ``s2`` and ``joint`` (what the heads read)."""
        return super().embed(batch)
