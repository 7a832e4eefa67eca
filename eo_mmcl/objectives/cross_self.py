"""``cross_self``: the CLIP cross-modal term plus SimCLR within each modality."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from eo_mmcl.aliases import renamed_attributes
from eo_mmcl.losses import CrossSelfLoss, LossOutput
from eo_mmcl.objectives.simclr import SimCLRObjective


class CrossSelfObjective(SimCLRObjective):
    """Alignment that cannot discard what one modality alone sees: the self terms keep it.

    ``total = clip + self_weight * (self_s1 + self_s2)``, the cross term on view a.

    Args:
        self_weight: Weight of the per-modality NT-Xent terms.
        **kwargs: :class:`Objective` arguments.
    """

    objective = "cross_self"

    def __init__(self, self_weight: float = 1.0, **kwargs: Any) -> None:
        self.self_weight = self_weight
        super().__init__(**kwargs)

    def configure_losses(self) -> None:
        """The cross+self loss (:class:`~eo_mmcl.losses.CrossSelfLoss`)."""
        self.cross_self = CrossSelfLoss(
            temperature=self.hparams["temperature"],
            self_weight=self.self_weight,
            gather_distributed=self.hparams["gather_distributed"],
        )

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[LossOutput, dict[str, Tensor]]:
        """Cross-modal plus within-modality terms."""
        view_a, view_b = self.views(batch)
        za, zb = self.project(view_a), self.project(view_b)
        out = self.cross_self(za["s1"], zb["s1"], za["s2"], zb["s2"])
        terms = {k: v.detach() for k, v in out.terms.items()}
        return LossOutput(out.total, terms), za


if not TYPE_CHECKING:
    # The old names (before the objectives were named so), with a deprecation: eo_mmcl.aliases.
    __getattr__ = renamed_attributes(__name__)
