"""Symmetric InfoNCE (the CLIP objective) between the embeddings of two modalities."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eo_mmcl.losses._validation import check_embeddings, check_positive
from eo_mmcl.losses.distributed import check_distributed_available, gather_with_grad, rank

#: CLIP clips the learned logit scale (inverse temperature) at 100 to keep training stable.
MAX_LOGIT_SCALE = 100.0


def directional_infonce(
    queries: Tensor, keys: Tensor, logit_scale: Tensor | float, positive_offset: int = 0
) -> Tensor:
    """InfoNCE from one modality to the other: each query must pick its own key.

    Inputs are used as given; L2-normalise them first for cosine similarities.

    Args:
        queries: Query embeddings, shape (B, D).
        keys: Candidate embeddings, shape (N, D) with N >= positive_offset + B. The positive of
            query i is key `positive_offset + i`; every other key is a negative.
        logit_scale: Inverse temperature multiplying the similarities.
        positive_offset: Row of `keys` holding the positive of query 0 (rank * B under DDP).

    Returns:
        Mean cross-entropy over the B queries (scalar).

    Raises:
        ValueError: If the positives do not fit inside `keys`.
    """
    batch_size = queries.shape[0]
    if positive_offset < 0 or positive_offset + batch_size > keys.shape[0]:
        raise ValueError(
            f"positives {positive_offset}..{positive_offset + batch_size - 1} do not fit in "
            f"{keys.shape[0]} keys"
        )
    logits = logit_scale * queries @ keys.T  # (B, N)
    targets = torch.arange(batch_size, device=queries.device) + positive_offset  # (B,)
    return F.cross_entropy(logits, targets)


class SymmetricInfoNCELoss(nn.Module):
    """CLIP loss between paired embeddings of two modalities (e.g. Sentinel-1 and Sentinel-2).

    Both embeddings are L2-normalised, logits are `z1 @ z2.T / temperature` and the loss is
    the mean of the cross-entropies in both directions (modality 1 -> 2 and 2 -> 1) with the
    matching pair as target (Radford et al., 2021). Unlike NT-Xent, negatives come only from
    the other modality.

    With `learnable_temperature=True` the inverse temperature is learned as
    `logit_scale = log(1 / temperature)` and, as in CLIP, its exponential is clipped at 100
    (temperature >= 0.01); while clipped it receives no gradient. The parameter lives in this
    module, so include the loss in the model that the optimiser (and DDP) sees.

    With `gather_distributed=True` and more than one process, each process scores its local
    rows against the gathered columns of all processes (targets offset by rank * B), so every
    sample has world_size * B - 1 negatives.

    Args:
        temperature: Softmax temperature (initial value if learnable). CLIP's 0.07 by default.
        learnable_temperature: Learn the temperature as a log-scale parameter.
        gather_distributed: Gather negatives from all processes under DDP.

    Raises:
        ValueError: If the temperature is not positive and finite, is below 0.01 while
            learnable (the clip would override it at once), or gathering is requested without
            torch.distributed support.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learnable_temperature: bool = False,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        if learnable_temperature and 1.0 / temperature > MAX_LOGIT_SCALE:
            raise ValueError(
                f"a learnable temperature must start at >= {1.0 / MAX_LOGIT_SCALE} because the "
                f"logit scale is clipped at {MAX_LOGIT_SCALE}, got {temperature!r}"
            )
        check_distributed_available(gather_distributed)
        self.learnable_temperature = learnable_temperature
        self.gather_distributed = gather_distributed
        self._fixed_logit_scale = 1.0 / temperature
        self.logit_scale: nn.Parameter | None = (
            nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
            if learnable_temperature
            else None
        )

    def scale(self) -> Tensor | float:
        """Current inverse temperature, clipped at 100 when learned.

        Returns:
            A scalar tensor attached to the graph when learnable, else a float.
        """
        if self.logit_scale is None:
            return self._fixed_logit_scale
        # Clamp the log before exponentiating so the clip never overflows.
        return self.logit_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp()

    @property
    def temperature(self) -> float:
        """Current effective temperature (1 / clipped logit scale)."""
        scale = self.scale()
        return 1.0 / (float(scale.detach()) if isinstance(scale, Tensor) else scale)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Compute the symmetric InfoNCE loss.

        Args:
            z1: Modality-1 embeddings, shape (B, D); row i pairs with row i of `z2`.
            z2: Modality-2 embeddings, shape (B, D).

        Returns:
            Scalar loss, the mean of both directions.

        Raises:
            ValueError: If the embeddings are not (B, D) tensors of the same shape.
        """
        check_embeddings({"z1": z1, "z2": z2})
        z1 = F.normalize(z1, dim=1)  # (B, D)
        z2 = F.normalize(z2, dim=1)  # (B, D)
        scale = self.scale()
        if self.gather_distributed:
            z1_all, z2_all = gather_with_grad(z1), gather_with_grad(z2)  # (W*B, D)
            offset = rank() * z1.shape[0]
        else:
            z1_all, z2_all, offset = z1, z2, 0
        loss_12 = directional_infonce(z1, z2_all, scale, offset)
        loss_21 = directional_infonce(z2, z1_all, scale, offset)
        return 0.5 * (loss_12 + loss_21)
