"""``simclr``: NT-Xent between two views of each modality, no cross-modal term."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from eo_mmcl.aliases import renamed_attributes
from eo_mmcl.losses import LossOutput, NTXentLoss
from eo_mmcl.models import BackboneFeatures
from eo_mmcl.objectives.base import Objective


class SimCLRObjective(Objective):
    """Self-supervision within each modality: two views of a chip are positives.

    Args:
        **kwargs: :class:`Objective` arguments.
    """

    objective = "simclr"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        """Backbones plus one projection head per modality."""
        super().configure_models()
        self.head_s1 = self.projection_head(self.encoder.num_features["s1"])
        self.head_s2 = self.projection_head(self.encoder.num_features["s2"])

    def configure_losses(self) -> None:
        """NT-Xent."""
        self.ntxent = NTXentLoss(
            temperature=self.hparams["temperature"],
            gather_distributed=self.hparams["gather_distributed"],
        )

    def project(self, view: dict[str, Tensor]) -> dict[str, Tensor]:
        """Projections of one view, per modality."""
        pooled = self.encoder.embed(view)
        return {"s1": self.head_s1(pooled["s1"]), "s2": self.head_s2(pooled["s2"])}

    def self_terms(self, a: dict[str, Tensor], b: dict[str, Tensor]) -> dict[str, Tensor]:
        """NT-Xent of each modality between views ``a`` and ``b``."""
        return {"self_s1": self.ntxent(a["s1"], b["s1"]), "self_s2": self.ntxent(a["s2"], b["s2"])}

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[LossOutput, dict[str, Tensor]]:
        """Sum of the per-modality NT-Xent terms."""
        view_a, view_b = self.views(batch)
        za, zb = self.project(view_a), self.project(view_b)
        terms = self.self_terms(za, zb)
        total = terms["self_s1"] + terms["self_s2"]
        return LossOutput(total, {k: v.detach() for k, v in terms.items()}), za

    def embed_features(self, features: dict[str, BackboneFeatures]) -> dict[str, Tensor]:
        """Backbone embeddings plus the projections ``proj_s1``, ``proj_s2``, ``proj_joint``."""
        out = super().embed_features(features)
        z = {"s1": self.head_s1(out["s1"]), "s2": self.head_s2(out["s2"])}
        return {
            **out,
            "proj_s1": z["s1"],
            "proj_s2": z["s2"],
            "proj_joint": torch.cat([z["s1"], z["s2"]], dim=1),
        }


if not TYPE_CHECKING:
    # The old names (before the objectives were named so), with a deprecation: eo_mmcl.aliases.
    __getattr__ = renamed_attributes(__name__)
