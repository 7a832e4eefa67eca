"""COrAL: contrastive shared and unique paths kept apart by an orthogonality penalty."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from eo_mmcl.losses._validation import check_embeddings, check_non_negative
from eo_mmcl.losses.ntxent import NTXentLoss
from eo_mmcl.losses.output import LossOutput


def orthogonality_penalty(u1: Tensor, u2: Tensor, z: Tensor) -> Tensor:
    """Mean squared cosine similarity between the unique and shared embeddings of each sample.

    `mean_b [cos^2(u1_b, u2_b) + cos^2(u1_b, z_b) + cos^2(u2_b, z_b)]`. Squaring penalises
    anti-alignment as much as alignment, so only orthogonal directions are free. Ranges from
    0 (all three mutually orthogonal per sample) to 3 (all three collinear).

    Args:
        u1: Unique-path embeddings of modality 1, shape (B, D).
        u2: Unique-path embeddings of modality 2, shape (B, D).
        z: Shared-path (fused) embeddings, shape (B, D).

    Returns:
        Scalar penalty.

    Raises:
        ValueError: If the inputs are not (B, D) tensors of the same shape.
    """
    check_embeddings({"u1": u1, "u2": u2, "z": z})
    cos_12 = F.cosine_similarity(u1, u2, dim=1)  # (B,)
    cos_1z = F.cosine_similarity(u1, z, dim=1)  # (B,)
    cos_2z = F.cosine_similarity(u2, z, dim=1)  # (B,)
    return (cos_12.pow(2) + cos_1z.pow(2) + cos_2z.pow(2)).mean()


class CoRALLoss(nn.Module):
    """COrAL loss: NT-Xent on a shared and two unique paths plus an orthogonality penalty.

    After Cissee et al., 2026, "COrAL: Orthogonalized Multimodal Contrastive Learning with
    Asymmetric Masking". Dual-path model: a shared path fuses both modalities into `z`,
    where view a masks 75% of the modality-1 tokens and view b 75% of the modality-2 tokens
    (see `eo_mmcl.losses.masking.complementary_token_masks`), so agreeing across views needs
    cross-modal inference (synergy); a unique path per modality gives `u1`, `u2`. With
    NT-Xent as `NCE`:

    `total = NCE(z_a, z_b) + NCE(u1_a, u1_b) + NCE(u2_a, u2_b)
    + orthogonality_weight * (P_a + P_b) / 2`, with `P_v = orthogonality_penalty(u1_v, u2_v, z_v)`.

    The penalty is evaluated within each view, pairing embeddings computed from the same
    input as the authors' code does (github.com/Caro-Ci/COrAL, `modules/coral_loss.py`), and
    the two views are averaged rather than summed: the code sums them, so its
    `ortho_weights=w` equals `orthogonality_weight=2 * w` here (their trifeature run uses
    w = 1). Temperature 0.1 and unit weights on the three contrastive terms follow the same
    code. NCE is lightly's NT-Xent, which matches the code's SimCLR-style InfoNCE.
    The loss is symmetric under swapping views a and b, and under swapping the modalities.

    Args:
        temperature: NT-Xent temperature of the three contrastive terms.
        orthogonality_weight: Weight of the view-averaged orthogonality penalty.
        gather_distributed: Gather negatives from all processes under DDP (the penalty is
            per sample and needs no gathering).

    Raises:
        ValueError: If the temperature is not positive and finite, the weight is negative or
            not finite, or gathering is requested without torch.distributed support.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        orthogonality_weight: float = 1.0,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        check_non_negative("orthogonality_weight", orthogonality_weight)
        self.orthogonality_weight = orthogonality_weight
        self.ntxent = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)

    def forward(
        self,
        z_a: Tensor,
        z_b: Tensor,
        u1_a: Tensor,
        u1_b: Tensor,
        u2_a: Tensor,
        u2_b: Tensor,
    ) -> LossOutput:
        """Compute the COrAL loss.

        Args:
            z_a: Shared-path embeddings of view a (modality-1 tokens masked), shape (B, D).
            z_b: Shared-path embeddings of view b (modality-2 tokens masked), shape (B, D).
            u1_a: Unique-path embeddings of modality 1, view a, shape (B, D).
            u1_b: Unique-path embeddings of modality 1, view b, shape (B, D).
            u2_a: Unique-path embeddings of modality 2, view a, shape (B, D).
            u2_b: Unique-path embeddings of modality 2, view b, shape (B, D).

        Returns:
            `LossOutput` with terms `shared`, `unique_1`, `unique_2` and `orthogonality`
            (the view-averaged penalty before weighting).

        Raises:
            ValueError: If the embeddings are not (B, D) tensors of one shape.
        """
        check_embeddings(
            {"z_a": z_a, "z_b": z_b, "u1_a": u1_a, "u1_b": u1_b, "u2_a": u2_a, "u2_b": u2_b}
        )
        terms = {
            "shared": self.ntxent(z_a, z_b),
            "unique_1": self.ntxent(u1_a, u1_b),
            "unique_2": self.ntxent(u2_a, u2_b),
            "orthogonality": 0.5
            * (orthogonality_penalty(u1_a, u2_a, z_a) + orthogonality_penalty(u1_b, u2_b, z_b)),
        }
        total = (
            terms["shared"]
            + terms["unique_1"]
            + terms["unique_2"]
            + self.orthogonality_weight * terms["orthogonality"]
        )
        return LossOutput(total, terms)
