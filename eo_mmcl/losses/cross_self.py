"""``cross_self``: CLIP's cross-modal term plus NT-Xent within each modality."""

from __future__ import annotations

from torch import Tensor, nn

from eo_mmcl.losses._validation import check_non_negative
from eo_mmcl.losses.infonce import SymmetricInfoNCELoss
from eo_mmcl.losses.ntxent import NTXentLoss
from eo_mmcl.losses.output import LossOutput


class CrossSelfLoss(nn.Module):
    """Alignment plus self-supervision: the within-modality terms keep what one sensor sees.

    ``total = InfoNCE(z1_a, z2_a) + self_weight * (NTXent(z1_a, z1_b) + NTXent(z2_a, z2_b))``:
    the cross-modal term (symmetric InfoNCE) on view a of both modalities, and NT-Xent between
    the two views of each modality. The one composition of the raster objective
    (:class:`eo_mmcl.objectives.CrossSelfObjective`) and of the theory lab's vector one.

    Args:
        temperature: Temperature of all three terms.
        self_weight: Weight of the two within-modality terms.
        gather_distributed: Gather negatives from all processes under DDP.

    Raises:
        ValueError: If the temperature is not positive and finite, the weight is negative or
            not finite, or gathering is requested without torch.distributed support.
    """

    def __init__(
        self, temperature: float = 0.1, self_weight: float = 1.0, gather_distributed: bool = False
    ) -> None:
        super().__init__()
        check_non_negative("self_weight", self_weight)
        self.self_weight = self_weight
        self.clip = SymmetricInfoNCELoss(
            temperature=temperature, gather_distributed=gather_distributed
        )
        self.ntxent = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)

    def forward(self, z1_a: Tensor, z1_b: Tensor, z2_a: Tensor, z2_b: Tensor) -> LossOutput:
        """The loss of two views of each modality.

        Args:
            z1_a: Modality-1 embeddings of view a, shape (B, D).
            z1_b: Modality-1 embeddings of view b, shape (B, D).
            z2_a: Modality-2 embeddings of view a, shape (B, D).
            z2_b: Modality-2 embeddings of view b, shape (B, D).

        Returns:
            ``total`` and the terms ``clip``, ``self_s1``, ``self_s2``.
        """
        terms = {
            "clip": self.clip(z1_a, z2_a),
            "self_s1": self.ntxent(z1_a, z1_b),
            "self_s2": self.ntxent(z2_a, z2_b),
        }
        total = terms["clip"] + self.self_weight * (terms["self_s1"] + terms["self_s2"])
        return LossOutput(total, terms)
