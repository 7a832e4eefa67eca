"""``coral``: COrAL's dual path, a masked shared fusion path and one unique path per modality."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from eo_mmcl.aliases import renamed_attributes
from eo_mmcl.losses import CoRALLoss, LossOutput, complementary_token_masks
from eo_mmcl.models import BackboneFeatures
from eo_mmcl.objectives.fused import FusedObjective


class CoRALObjective(FusedObjective):
    """COrAL (Cissee et al., 2026).

    Shared path: the fusion transformer on two views with asymmetric complementary masking
    (view a masks ``mask_ratio`` of the S1 tokens, view b of the S2 tokens; no masking at
    evaluation), NT-Xent between them. Unique paths: one projection head per modality on its
    pooled features, NT-Xent between its two views. An orthogonality penalty
    ``cos^2(u1, u2) + cos^2(u1, z) + cos^2(u2, z)`` keeps the three apart. Probes read
    ``concat[z, u1, u2]``.

    Args:
        mask_ratio: Fraction of one modality's tokens masked in each shared-path view.
        orthogonality_weight: Weight of the orthogonality penalty.
        **kwargs: :class:`FusedObjective` arguments.
    """

    objective = "coral"

    def __init__(
        self, mask_ratio: float = 0.75, orthogonality_weight: float = 1.0, **kwargs: Any
    ) -> None:
        self.mask_ratio = mask_ratio
        self.orthogonality_weight = orthogonality_weight
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        """Fusion path plus a unique projection head per modality."""
        super().configure_models()
        self.head_u1 = self.projection_head(self.encoder.num_features["s1"])
        self.head_u2 = self.projection_head(self.encoder.num_features["s2"])

    def configure_losses(self) -> None:
        """COrAL's loss (temperature 0.1 as in the published code, by default)."""
        self.coral = CoRALLoss(
            temperature=self.hparams["temperature"],
            orthogonality_weight=self.orthogonality_weight,
            gather_distributed=self.hparams["gather_distributed"],
        )

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[LossOutput, dict[str, Tensor]]:
        """Shared masked path, unique paths and orthogonality."""
        view_a, view_b = self.views(batch)
        fa, fb = self.encoder.encode(view_a), self.encoder.encode(view_b)
        n1, n2 = fa["s1"].tokens.shape[1], fa["s2"].tokens.shape[1]
        masks = complementary_token_masks(
            fa["s1"].pooled.shape[0], n1, n2, self.mask_ratio, device=self.device
        )
        z_a = self.head_fused(self.fuse(fa, (masks.view1_m1, masks.view1_m2)))
        z_b = self.head_fused(self.fuse(fb, (masks.view2_m1, masks.view2_m2)))
        u1_a, u1_b = self.head_u1(fa["s1"].pooled), self.head_u1(fb["s1"].pooled)
        u2_a, u2_b = self.head_u2(fa["s2"].pooled), self.head_u2(fb["s2"].pooled)
        out = self.coral(z_a, z_b, u1_a, u1_b, u2_a, u2_b)
        terms = {k: v.detach() for k, v in out.terms.items()}
        return LossOutput(out.total, terms), {"shared": z_a, "unique_s1": u1_a, "unique_s2": u2_a}

    def embed_features(self, features: dict[str, BackboneFeatures]) -> dict[str, Tensor]:
        """Pooled, fused and projected embeddings.

        Keys: ``s1``/``s2`` (pooled), ``joint`` = concat[fused CLS, s1, s2] (backbone depth),
        ``proj_joint`` = concat[z, u1, u2] (projection depth, what COrAL probes read), and
        the parts ``shared``, ``proj_shared``, ``proj_u1``, ``proj_u2``.
        """
        cls = self.fuse(features)
        p1, p2 = features["s1"].pooled, features["s2"].pooled
        z, u1, u2 = self.head_fused(cls), self.head_u1(p1), self.head_u2(p2)
        return {
            "s1": p1,
            "s2": p2,
            "joint": torch.cat([cls, p1, p2], dim=1),
            "shared": cls,
            "proj_shared": z,
            "proj_u1": u1,
            "proj_u2": u2,
            "proj_joint": torch.cat([z, u1, u2], dim=1),
        }


if not TYPE_CHECKING:
    # The old names (before the objectives were named so), with a deprecation: eo_mmcl.aliases.
    __getattr__ = renamed_attributes(__name__)
