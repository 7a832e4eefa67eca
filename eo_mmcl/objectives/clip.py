"""``clip``: symmetric InfoNCE between the S1 and S2 embeddings (cross-modal alignment)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from eo_mmcl.aliases import renamed_attributes
from eo_mmcl.losses import LossOutput, SymmetricInfoNCELoss
from eo_mmcl.models import BackboneFeatures
from eo_mmcl.objectives.base import Objective


class CLIPObjective(Objective):
    """Align S1 and S2 in one projection space (the alignment the research question doubts).

    One view per modality (the datamodule's paired augmentation, plus the views' crop and
    noise, the same crop for both sensors); the projections of a pair are positives, every
    other pair of the batch a negative.

    Args:
        learnable_temperature: Learn the temperature (CLIP) instead of fixing it.
        **kwargs: :class:`Objective` arguments.
    """

    objective = "clip"

    def __init__(self, learnable_temperature: bool = False, **kwargs: Any) -> None:
        self.learnable_temperature = learnable_temperature
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        """Backbones plus one projection head per modality."""
        super().configure_models()
        self.head_s1 = self.projection_head(self.encoder.num_features["s1"])
        self.head_s2 = self.projection_head(self.encoder.num_features["s2"])

    def configure_losses(self) -> None:
        """Symmetric InfoNCE."""
        self.loss = SymmetricInfoNCELoss(
            temperature=self.hparams["temperature"],
            learnable_temperature=self.learnable_temperature,
            gather_distributed=self.hparams["gather_distributed"],
        )

    def project(self, view: dict[str, Tensor]) -> dict[str, Tensor]:
        """Projections of one view, per modality."""
        pooled = self.encoder.embed(view)
        return {"s1": self.head_s1(pooled["s1"]), "s2": self.head_s2(pooled["s2"])}

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[LossOutput, dict[str, Tensor]]:
        """InfoNCE between the two modalities of one view."""
        z = self.project(self.views.view(batch))
        total = self.loss(z["s1"], z["s2"])
        return LossOutput(total, {"clip": total.detach()}), z

    def embed_features(self, features: dict[str, BackboneFeatures]) -> dict[str, Tensor]:
        """Backbone embeddings plus the aligned projections (``proj_s1/s2/joint``)."""
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
