"""Barlow Twins redundancy reduction, on top of lightly's implementation."""

from __future__ import annotations

import torch
from lightly.loss import BarlowTwinsLoss as LightlyBarlowTwinsLoss
from torch import Tensor, nn

from eo_mmcl.losses._validation import check_embeddings, check_non_negative
from eo_mmcl.losses.distributed import check_distributed_available

#: Variance floor of the batch standardisation; the value torch's batch_norm (and therefore
#: lightly's BarlowTwinsLoss) uses, so `cross_correlation` reproduces lightly's matrix.
STANDARDISATION_EPS = 1e-5


def cross_correlation(z1: Tensor, z2: Tensor) -> Tensor:
    """Empirical cross-correlation matrix of two batch-standardised embeddings.

    Each feature is standardised along the batch (mean 0, biased variance 1, with a variance
    floor of 1e-5 as in `torch.nn.functional.batch_norm`), then `C = z1n.T @ z2n / B`. Entry
    (i, j) is the correlation between feature i of `z1` and feature j of `z2`. This is the
    matrix lightly's `BarlowTwinsLoss` builds internally.

    Args:
        z1: First embeddings, shape (B, D1), B >= 2.
        z2: Second embeddings, shape (B, D2).

    Returns:
        Cross-correlation matrix, shape (D1, D2).

    Raises:
        ValueError: If the inputs are not 2-D, have fewer than 2 rows or different batch sizes.
    """
    for name, z in (("z1", z1), ("z2", z2)):
        if z.ndim != 2 or z.shape[0] < 2:
            raise ValueError(f"{name} must have shape (batch >= 2, dim), got {tuple(z.shape)}")
    if z1.shape[0] != z2.shape[0]:
        raise ValueError(f"batch sizes differ: z1 has {z1.shape[0]} rows, z2 has {z2.shape[0]}")
    batch_size = z1.shape[0]
    return _standardise(z1).T @ _standardise(z2) / batch_size  # (D1, D2)


def _standardise(z: Tensor) -> Tensor:
    """Standardise each column along the batch with the biased variance."""
    mean = z.mean(dim=0, keepdim=True)  # (1, D)
    var = z.var(dim=0, unbiased=False, keepdim=True)  # (1, D)
    return (z - mean) / torch.sqrt(var + STANDARDISATION_EPS)  # (B, D)


def off_diagonal(c: Tensor) -> Tensor:
    """Off-diagonal entries of a square matrix.

    Args:
        c: Square matrix, shape (D, D); D may be 0.

    Returns:
        The D * (D - 1) off-diagonal entries, flattened in row-major order.

    Raises:
        ValueError: If `c` is not a square matrix.
    """
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(c.shape)}")
    keep = ~torch.eye(c.shape[0], dtype=torch.bool, device=c.device)  # (D, D)
    return c[keep]


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins loss between two views (Zbontar et al., 2021).

    A thin wrapper around `lightly.loss.BarlowTwinsLoss` that validates its arguments and
    inputs. With `C = cross_correlation(z_a, z_b)` (D, D), the loss is
    `sum_i (1 - C_ii)^2 + lambda_param * sum_{i != j} C_ij^2`: the invariance term aligns the
    views feature by feature, the redundancy term decorrelates different features. It is
    zero exactly when C is the identity, and symmetric in the two views.

    With `gather_distributed=True` and more than one process, lightly averages C over the
    processes before the loss (each process standardises with its own batch statistics).

    Args:
        lambda_param: Weight of the redundancy-reduction term; 5e-3 as in the paper (and
            lightly's default).
        gather_distributed: Average the cross-correlation matrix over processes under DDP.

    Raises:
        ValueError: If `lambda_param` is negative or not finite, or gathering is requested
            without torch.distributed support.
    """

    def __init__(self, lambda_param: float = 5e-3, gather_distributed: bool = False) -> None:
        super().__init__()
        check_non_negative("lambda_param", lambda_param)
        check_distributed_available(gather_distributed)
        self.lambda_param = lambda_param
        self.gather_distributed = gather_distributed
        self._loss = LightlyBarlowTwinsLoss(
            lambda_param=lambda_param, gather_distributed=gather_distributed
        )

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Compute the Barlow Twins loss.

        Args:
            z_a: Embeddings of the first view, shape (B, D), B >= 2.
            z_b: Embeddings of the second view, shape (B, D).

        Returns:
            Scalar loss.

        Raises:
            ValueError: If the embeddings are not (B, D) tensors of the same shape with B >= 2
                (batch standardisation needs two samples).
        """
        check_embeddings({"z_a": z_a, "z_b": z_b}, min_batch=2)
        loss: Tensor = self._loss(z_a, z_b)
        return loss
