"""``cross_self``: the CLIP cross-modal term plus SimCLR within each modality."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from eo_mmcl.losses import LossOutput, SymmetricInfoNCELoss
from eo_mmcl.tasks.simclr import SimCLRTask


class CrossSelfTask(SimCLRTask):
    """Alignment that cannot discard what one modality alone sees: the self terms keep it.

    ``total = clip + self_weight * (self_s1 + self_s2)``, the cross term on view a.

    Args:
        self_weight: Weight of the per-modality NT-Xent terms.
        **kwargs: :class:`ObjectiveTask` arguments.
    """

    objective = "cross_self"

    def __init__(self, self_weight: float = 1.0, **kwargs: Any) -> None:
        self.self_weight = self_weight
        super().__init__(**kwargs)

    def configure_losses(self) -> None:
        """NT-Xent and symmetric InfoNCE."""
        super().configure_losses()
        self.clip = SymmetricInfoNCELoss(
            temperature=self.hparams["temperature"],
            gather_distributed=self.hparams["gather_distributed"],
        )

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[LossOutput, dict[str, Tensor]]:
        """Cross-modal plus within-modality terms."""
        view_a, view_b = self.views(batch)
        za, zb = self.project(view_a), self.project(view_b)
        terms = {"clip": self.clip(za["s1"], za["s2"]), **self.self_terms(za, zb)}
        total = terms["clip"] + self.self_weight * (terms["self_s1"] + terms["self_s2"])
        return LossOutput(total, {k: v.detach() for k, v in terms.items()}), za
