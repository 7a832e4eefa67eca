"""``supervised``: the oracle, both modalities trained on every task's labels at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from eo_mmcl.aliases import renamed_attributes
from eo_mmcl.errors import ConfigError
from eo_mmcl.losses import LossOutput
from eo_mmcl.models.backbone import BackboneFeatures
from eo_mmcl.objectives.base import Objective
from eo_mmcl.objectives.labels import IGNORE_INDEX, majority_labels


def store_tasks(chips_dir: str | Path) -> tuple[dict[str, int], list[str]]:
    """The oracle's heads as the chip store records them: classes per task, multi-label tasks.

    Args:
        chips_dir: A chip store folder.

    Returns:
        ``({task: number of classes}, [multi-label tasks])``; both empty when the store records
        no tasks.
    """
    from eo_mmcl.tile.store import open_store, store_metadata

    layout = store_metadata(open_store(Path(chips_dir))).get("layout")
    tasks = dict(layout.get("tasks", {})) if isinstance(layout, dict) else {}
    classes = {name: int(spec["num_classes"]) for name, spec in tasks.items()}
    multilabel = [name for name, spec in tasks.items() if spec.get("kind") == "multilabel"]
    return classes, multilabel


class SupervisedObjective(Objective):
    """Supervised ceiling of the survival ratio, trained on every task at once.

    A head per label task reads concat[S1, S2] pooled features: chip-level majority
    class with cross-entropy; multi-hot tasks with binary cross-entropy. Validation also logs
    each class task's balanced accuracy (``val/balanced_accuracy_<task>``, torchmetrics' macro
    recall) and their mean, ``val/balanced_accuracy``: what its checkpoint and early stopping
    monitor, so that the oracle handed on is the one that reads the tasks best (its validation
    loss rises long before its accuracy stops improving).

    Args:
        num_classes: Classes of each task, e.g. ``{"landcover": 6, "s1_unique": 2, ...}``.
            ``eo-mmcl train`` fills it (and ``multilabel``) from the chip store's own tasks
            when the config leaves it out (:func:`store_tasks`).
        multilabel: Tasks whose labels are multi-hot (``label_<task>`` batch keys).
        head_hidden_dim: Hidden width of each task's head (one ReLU layer); 0 gives linear
            heads. A linear head on concatenated per-sensor features cannot learn a target that
            is a non-linear function of one attribute per sensor (the synergy task's XOR): it
            stays at chance there, so such an oracle is no ceiling for S and its early stopping
            averages a chance term in.
        pixel_heads: Also train a per-pixel head per class task (a 1x1-convolution MLP of the
            same width on the concatenated S1+S2 feature maps, upsampled to the chip, cross-
            entropy on the pixel labels). Without it the oracle never sees where in a chip a
            class lies, so its feature maps are no ceiling for the segmentation probes.
        **kwargs: :class:`Objective` arguments.
    """

    objective = "supervised"

    def __init__(
        self,
        num_classes: dict[str, int] | None = None,
        multilabel: list[str] | None = None,
        head_hidden_dim: int = 0,
        pixel_heads: bool = False,
        **kwargs: Any,
    ) -> None:
        if not num_classes or any(int(n) < 2 for n in num_classes.values()):
            raise ConfigError(
                f"supervised: num_classes needs tasks with >= 2 classes, got {num_classes} "
                "(a chip store without label tasks cannot train the oracle)"
            )
        self.num_classes = {str(k): int(v) for k, v in num_classes.items()}
        self.multilabel = set(multilabel or [])
        if head_hidden_dim < 0:
            raise ConfigError(f"supervised: head_hidden_dim must be >= 0, got {head_hidden_dim}")
        self.head_hidden_dim = int(head_hidden_dim)
        self.pixel_heads = bool(pixel_heads)
        # The last batch's logits and chip targets, for the validation metrics.
        self._last_logits: dict[str, Tensor] = {}
        self._last_targets: dict[str, Tensor] = {}
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        """Backbones and one head per task on the concatenated pooled features."""
        super().configure_models()
        dim = sum(self.encoder.num_features.values())
        self.heads = nn.ModuleDict({t: self._head(dim, n) for t, n in self.num_classes.items()})
        if self.pixel_heads:
            self.pixel_head = nn.ModuleDict(
                {
                    t: self._pixel_head(dim, n)
                    for t, n in self.num_classes.items()
                    if t not in self.multilabel
                }
            )

    def _head(self, dim: int, classes: int) -> nn.Module:
        if self.head_hidden_dim == 0:
            return nn.Linear(dim, classes)
        hidden = self.head_hidden_dim
        return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def _pixel_head(self, dim: int, classes: int) -> nn.Module:
        if self.head_hidden_dim == 0:
            return nn.Conv2d(dim, classes, 1)
        hidden = self.head_hidden_dim
        return nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, classes, 1))

    def _pixel_losses(
        self, features: dict[str, BackboneFeatures], batch: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Each pixel head's cross-entropy over the labelled (and valid) pixels."""
        dense = torch.cat([features["s1"].dense, features["s2"].dense], dim=1)
        terms: dict[str, Tensor] = {}
        for task, head in self.pixel_head.items():
            mask = batch[f"mask_{task}"].long()
            if "valid" in batch:
                mask = mask.masked_fill(~batch["valid"].bool(), IGNORE_INDEX)
            logits = F.interpolate(
                head(dense), size=mask.shape[-2:], mode="bilinear", align_corners=False
            )
            if (mask != IGNORE_INDEX).any():
                terms[f"pixel_{task}"] = F.cross_entropy(logits, mask, ignore_index=IGNORE_INDEX)
            else:  # no labelled pixel in this batch: contribute nothing, keep the graph
                terms[f"pixel_{task}"] = logits.sum() * 0.0
        return terms

    def configure_losses(self) -> None:
        """Cross-entropy (ignoring chips without labels) and binary cross-entropy."""

    def configure_metrics(self) -> None:
        """Validation balanced accuracy of every class task (macro-averaged recall)."""
        self.val_accuracy = nn.ModuleDict(
            {
                task: MulticlassAccuracy(n, average="macro", ignore_index=-1)
                for task, n in self.num_classes.items()
                if task not in self.multilabel
            }
        )

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[LossOutput, dict[str, Tensor]]:
        """Sum over tasks of the per-task losses."""
        features = self.encoder.encode(batch)
        joint = torch.cat([features["s1"].pooled, features["s2"].pooled], dim=1)
        terms: dict[str, Tensor] = {}
        for task, head in self.heads.items():
            logits = head(joint)
            self._last_logits[task] = logits.detach()
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
            self._last_targets[task] = target
            if (target >= 0).any():
                terms[task] = F.cross_entropy(logits, target, ignore_index=-1)
            else:  # no labelled chip in this batch: contribute nothing, keep the graph
                terms[task] = logits.sum() * 0.0
        if self.pixel_heads:
            terms.update(self._pixel_losses(features, batch))
        total = torch.stack(list(terms.values())).sum()
        return LossOutput(total, {k: v.detach() for k, v in terms.items()}), {"joint": joint}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Validation loss, and the batch's predictions into the balanced accuracies.

        Args:
            batch: A normalised batch.
            batch_idx: Index of the batch.
        """
        self._last_logits, self._last_targets = {}, {}
        self._step(batch, "val")
        for task, metric in self.val_accuracy.items():
            if task in self._last_targets:
                metric.update(self._last_logits[task], self._last_targets[task])  # type: ignore[operator]

    def on_validation_epoch_end(self) -> None:
        """Each task's balanced accuracy and their mean (the checkpoint's monitor)."""
        values = []
        for task, metric in self.val_accuracy.items():
            if metric.update_called:
                value = metric.compute()  # type: ignore[operator]  # synced under DDP
                self.log(f"val/balanced_accuracy_{task}", value)
                values.append(value)
            metric.reset()  # type: ignore[operator]
        if values:
            self.log("val/balanced_accuracy", torch.stack(values).mean())

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

    def embed_features(self, features: dict[str, BackboneFeatures]) -> dict[str, Tensor]:
        """Pooled ``s1``, ``s2`` and ``joint`` (what the heads read)."""
        return super().embed_features(features)


if not TYPE_CHECKING:
    # The old names (before the objectives were named so), with a deprecation: eo_mmcl.aliases.
    __getattr__ = renamed_attributes(__name__)
