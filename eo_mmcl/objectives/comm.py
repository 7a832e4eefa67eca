"""``comm``: CoMM, contrastive learning over fused views and single-modality fused embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from eo_mmcl.aliases import renamed_attributes
from eo_mmcl.losses import CoMMLoss, LossOutput
from eo_mmcl.models import BackboneFeatures
from eo_mmcl.objectives.fused import FusedObjective


class CoMMObjective(FusedObjective):
    """CoMM (Dufumier et al., ICLR 2025): contrast fused views, and each modality alone.

    Fused multimodal views are aligned with each other and with the fused embedding of each
    modality alone, so that redundant, unique and synergistic information can all serve the
    objective.

    Args:
        **kwargs: :class:`FusedObjective` arguments.
    """

    objective = "comm"

    def configure_losses(self) -> None:
        """CoMM's loss."""
        self.comm = CoMMLoss(
            temperature=self.hparams["temperature"],
            gather_distributed=self.hparams["gather_distributed"],
        )

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[LossOutput, dict[str, Tensor]]:
        """NT-Xent between fused views and between single-modality and full fused views."""
        view_a, view_b = self.views(batch)
        fa, fb = self.encoder.encode(view_a), self.encoder.encode(view_b)
        z_a, z_b = self.head_fused(self.fuse(fa)), self.head_fused(self.fuse(fb))
        singles_a = [self.head_fused(self.fuse(fa, keep=k)) for k in ((True, False), (False, True))]
        singles_b = [self.head_fused(self.fuse(fb, keep=k)) for k in ((True, False), (False, True))]
        out = self.comm(z_a, z_b, singles_a, singles_b)
        return LossOutput(out.total, {k: v.detach() for k, v in out.terms.items()}), {"fused": z_a}

    def embed_features(self, features: dict[str, BackboneFeatures]) -> dict[str, Tensor]:
        """Pooled, fused and projected embeddings.

        Keys: ``s1``/``s2`` (pooled), ``joint`` (fused CLS), ``joint_s1``/``joint_s2`` (one
        modality alone through the fusion), ``backbone_joint``, ``proj_joint``.
        """
        joint = self.fuse(features)
        return {
            "s1": features["s1"].pooled,
            "s2": features["s2"].pooled,
            "joint": joint,
            "joint_s1": self.fuse(features, keep=(True, False)),
            "joint_s2": self.fuse(features, keep=(False, True)),
            "backbone_joint": torch.cat([features["s1"].pooled, features["s2"].pooled], dim=1),
            "proj_joint": self.head_fused(joint),
        }


if not TYPE_CHECKING:
    # The old names (before the objectives were named so), with a deprecation: eo_mmcl.aliases.
    __getattr__ = renamed_attributes(__name__)
