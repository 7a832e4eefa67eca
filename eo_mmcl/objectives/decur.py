"""``decur``: Barlow Twins within modalities, cross-modal common/unique decorrelation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from eo_mmcl.aliases import renamed_attributes
from eo_mmcl.losses import DeCURLoss, LossOutput
from eo_mmcl.models import BackboneFeatures
from eo_mmcl.objectives.simclr import SimCLRObjective


class DeCURObjective(SimCLRObjective):
    """DeCUR (Wang et al., ECCV 2024): common dimensions aligned, unique ones decorrelated.

    The first ``common_dim`` projection dimensions are aligned across modalities, the others
    decorrelated across them, with Barlow Twins inside each modality.

    Args:
        common_fraction: Fraction of the projection dimensions in the common block.
        lambda_param: Barlow Twins off-diagonal weight.
        **kwargs: :class:`Objective` arguments.
    """

    objective = "decur"

    def __init__(
        self, common_fraction: float = 0.5, lambda_param: float = 5e-3, **kwargs: Any
    ) -> None:
        self.common_fraction = common_fraction
        self.lambda_param = lambda_param
        super().__init__(**kwargs)

    @property
    def common_dim(self) -> int:
        """Dimensions of the common (aligned) block."""
        return max(1, round(self.common_fraction * self.hparams["proj_dim"]))

    def configure_losses(self) -> None:
        """DeCUR's loss."""
        self.decur = DeCURLoss(
            common_dim=self.common_dim,
            lambda_param=self.lambda_param,
            gather_distributed=self.hparams["gather_distributed"],
        )

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[LossOutput, dict[str, Tensor]]:
        """DeCUR over two views of both modalities."""
        view_a, view_b = self.views(batch)
        za, zb = self.project(view_a), self.project(view_b)
        out = self.decur(za["s1"], zb["s1"], za["s2"], zb["s2"])
        return LossOutput(out.total, {k: v.detach() for k, v in out.terms.items()}), za

    def embed_features(self, features: dict[str, BackboneFeatures]) -> dict[str, Tensor]:
        """SimCLR's keys plus ``proj_common``, ``unique_s1`` and ``unique_s2``.

        ``proj_common`` is the aligned block of both modalities; ``unique_s1``/``unique_s2``
        each modality's block beyond it.
        """
        out = super().embed_features(features)
        k = self.common_dim
        out["proj_common"] = torch.cat([out["proj_s1"][:, :k], out["proj_s2"][:, :k]], dim=1)
        out["unique_s1"] = out["proj_s1"][:, k:]
        out["unique_s2"] = out["proj_s2"][:, k:]
        return out


if not TYPE_CHECKING:
    # The old names (before the objectives were named so), with a deprecation: eo_mmcl.aliases.
    __getattr__ = renamed_attributes(__name__)
