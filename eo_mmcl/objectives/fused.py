"""Shared parts of the objectives that fuse both modalities' tokens (CoMM, COrAL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from eo_mmcl.aliases import renamed_attributes
from eo_mmcl.models import BackboneFeatures, FusionTransformer
from eo_mmcl.objectives.base import Objective


class FusedObjective(Objective):
    """An objective with a fusion transformer over the S1 and S2 tokens and a head on it.

    Args:
        fusion_dim: Width of the fusion transformer and of its CLS embedding.
        fusion_depth: Transformer layers.
        fusion_heads: Attention heads.
        **kwargs: :class:`Objective` arguments (``output_stride`` sets the token count:
            a resnet18 gives 1 token per 32 px chip, 4 with ``output_stride=16``).
    """

    def __init__(
        self, fusion_dim: int = 128, fusion_depth: int = 2, fusion_heads: int = 4, **kwargs: Any
    ) -> None:
        self.fusion_dim = fusion_dim
        self.fusion_depth = fusion_depth
        self.fusion_heads = fusion_heads
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        """Backbones, the fusion transformer and its projection head."""
        super().configure_models()
        dims = self.encoder.num_features
        self.fusion = FusionTransformer(
            [dims["s1"], dims["s2"]], self.fusion_dim, self.fusion_depth, self.fusion_heads
        )
        self.head_fused = self.projection_head(self.fusion_dim)

    def fuse(
        self,
        features: dict[str, BackboneFeatures],
        masks: tuple[Tensor | None, Tensor | None] | None = None,
        keep: tuple[bool, bool] = (True, True),
    ) -> Tensor:
        """CLS embedding of the fused tokens.

        Args:
            features: Backbone outputs per modality.
            masks: Token masks (True = masked) for S1 and S2.
            keep: Which modalities take part (False = absent).

        Returns:
            (B, fusion_dim).
        """
        tokens = [
            features[m].tokens if k else None for m, k in zip(("s1", "s2"), keep, strict=True)
        ]
        grids = [features[m].grid_size for m in ("s1", "s2")]
        return self.fusion(tokens, masks=list(masks) if masks else None, grid_sizes=grids)


if not TYPE_CHECKING:
    # The old names (before the objectives were named so), with a deprecation: eo_mmcl.aliases.
    __getattr__ = renamed_attributes(__name__)
