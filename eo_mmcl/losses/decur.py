"""DeCUR: Barlow Twins with embeddings split into cross-modal common and modality-unique parts."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from eo_mmcl.losses._validation import check_embeddings, check_non_negative
from eo_mmcl.losses.barlow import BarlowTwinsLoss, cross_correlation, off_diagonal
from eo_mmcl.losses.distributed import all_reduce_mean, check_distributed_available
from eo_mmcl.losses.output import LossOutput


def unique_decorrelation_loss(c_unique: Tensor, lambda_param: float) -> Tensor:
    """Cross-modal loss on the unique block: no unique feature may correlate across modalities.

    `sum_i C_ii^2 + lambda_param * sum_{i != j} C_ij^2`, i.e. Barlow Twins with the diagonal
    target moved from 1 to 0. Zero exactly when the block is all zeros.

    Args:
        c_unique: Cross-correlation between the unique features of modality 1 and modality 2,
            shape (U, U); U may be 0.
        lambda_param: Weight of the off-diagonal term.

    Returns:
        Scalar loss (0 for an empty block).

    Raises:
        ValueError: If `c_unique` is not square.
    """
    off = off_diagonal(c_unique)  # (U * (U - 1),)
    return torch.diagonal(c_unique).pow(2).sum() + lambda_param * off.pow(2).sum()


class DeCURLoss(nn.Module):
    """DeCUR loss: Barlow Twins within each modality and, split into common/unique, across them.

    After Wang et al., ECCV 2024, "Decoupling Common and Unique Representations for Multimodal
    Self-supervised Learning". Each modality has two augmented views; its embedding
    dimensions are split into the first `common_dim` *common* features, meant to be shared
    with the other modality, and the remaining *unique* ones. With
    `C12 = cross_correlation(z1_a, z2_a)`:

    - `intra_1`, `intra_2`: Barlow Twins between the two views of each modality, over all
      dimensions (lightly's loss), so common and unique features are both view-invariant and
      decorrelated within the modality.
    - `cross_common`: Barlow Twins on the common block `C12[:k, :k]` (diagonal -> 1,
      off-diagonal -> 0), computed with lightly's loss on the first `k` features.
    - `cross_unique`: `unique_decorrelation_loss` on the unique block `C12[k:, k:]`: diagonal
      -> 0 and off-diagonal -> 0 (weighted by `lambda_param`), so unique features carry
      nothing correlated with the other modality.

    The total follows the authors' code (github.com/zhu-xlab/DeCUR, `models/decur.py` and
    `pretrain_mm.py`): `cross = (cross_common + cross_unique) / 2` and
    `total = (intra_weight * (intra_1 + intra_2) + cross_weight * cross) / 3`, which equals
    their `(loss1 + loss2 + loss12) / 3` at unit weights. As there, the cross-modal term uses
    the first view of each modality only, applies the same `lambda_param` to the off-diagonal
    of both blocks, and leaves the common-by-unique blocks of C12 unconstrained (the intra
    terms already decorrelate common from unique features within each modality).
    `common_dim == D` reduces the cross term to plain cross-modal Barlow Twins.
    The loss is symmetric under swapping the two modalities (C21 = C12.T).

    Args:
        common_dim: Number of leading common dimensions, >= 1 (and <= D at call time).
        lambda_param: Off-diagonal weight of every Barlow-Twins-style term; 5e-3 as in
            Barlow Twins (the DeCUR code uses 0.0051).
        cross_weight: Weight of the cross-modal term.
        intra_weight: Weight of the two intra-modal terms.
        gather_distributed: Average cross-correlation matrices over processes under DDP, as
            the authors' code does with an all-reduce.

    Raises:
        ValueError: If `common_dim` < 1, a weight or `lambda_param` is negative or not finite,
            or gathering is requested without torch.distributed support.
    """

    def __init__(
        self,
        common_dim: int,
        lambda_param: float = 5e-3,
        cross_weight: float = 1.0,
        intra_weight: float = 1.0,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        if common_dim < 1:
            raise ValueError(f"common_dim must be >= 1, got {common_dim!r}")
        check_non_negative("lambda_param", lambda_param)
        check_non_negative("cross_weight", cross_weight)
        check_non_negative("intra_weight", intra_weight)
        check_distributed_available(gather_distributed)
        self.common_dim = common_dim
        self.lambda_param = lambda_param
        self.cross_weight = cross_weight
        self.intra_weight = intra_weight
        self.gather_distributed = gather_distributed
        self._barlow = BarlowTwinsLoss(
            lambda_param=lambda_param, gather_distributed=gather_distributed
        )

    def forward(self, z1_a: Tensor, z1_b: Tensor, z2_a: Tensor, z2_b: Tensor) -> LossOutput:
        """Compute the DeCUR loss.

        Args:
            z1_a: Modality-1 embeddings of view a, shape (B, D), B >= 2.
            z1_b: Modality-1 embeddings of view b, shape (B, D).
            z2_a: Modality-2 embeddings of view a, shape (B, D); row i pairs with `z1_a[i]`.
            z2_b: Modality-2 embeddings of view b, shape (B, D).

        Returns:
            `LossOutput` with terms `intra_1`, `intra_2`, `cross_common`, `cross_unique`.

        Raises:
            ValueError: If the embeddings are not (B, D) tensors of one shape with B >= 2, or
                `common_dim` exceeds D.
        """
        check_embeddings({"z1_a": z1_a, "z1_b": z1_b, "z2_a": z2_a, "z2_b": z2_b}, min_batch=2)
        dim = z1_a.shape[1]
        if self.common_dim > dim:
            raise ValueError(
                f"common_dim ({self.common_dim}) exceeds the embedding dimension ({dim})"
            )
        k = self.common_dim
        intra_1 = self._barlow(z1_a, z1_b)
        intra_2 = self._barlow(z2_a, z2_b)
        # Standardisation is per feature, so Barlow Twins on the first k features sees
        # exactly the common block C12[:k, :k].
        cross_common = self._barlow(z1_a[:, :k], z2_a[:, :k])
        if k < dim:
            c_unique = cross_correlation(z1_a[:, k:], z2_a[:, k:])  # (D - k, D - k)
            if self.gather_distributed:
                c_unique = all_reduce_mean(c_unique)
            cross_unique = unique_decorrelation_loss(c_unique, self.lambda_param)
        else:
            # No unique dimensions: the cross term is plain cross-modal Barlow Twins.
            cross_unique = z1_a.new_zeros(())
        cross = 0.5 * (cross_common + cross_unique)
        total = (self.intra_weight * (intra_1 + intra_2) + self.cross_weight * cross) / 3.0
        terms = {
            "intra_1": intra_1,
            "intra_2": intra_2,
            "cross_common": cross_common,
            "cross_unique": cross_unique,
        }
        return LossOutput(total, terms)
