"""NT-Xent (SimCLR) between two augmented views, on top of lightly's implementation."""

from __future__ import annotations

from lightly.loss import NTXentLoss as LightlyNTXentLoss
from torch import Tensor, nn

from eo_mmcl.losses._validation import check_embeddings, check_positive
from eo_mmcl.losses.distributed import check_distributed_available


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross-entropy between two views (Chen et al., 2020).

    A thin wrapper around `lightly.loss.NTXentLoss` that validates its arguments and inputs
    and fixes the memory bank to off (pure in-batch SimCLR). For 2B embeddings of B pairs,
    each anchor's positive is the other view of the same sample; the 2B - 2 remaining
    embeddings of *both* views are negatives. Cosine similarities are divided by
    `temperature`: lower values sharpen the softmax and weight hard negatives more.
    The loss is the mean over all 2B anchors, so it is symmetric in the two views.

    With `gather_distributed=True` and more than one process, lightly gathers both views from
    all processes (with gradient) and scores local anchors against the global batch.

    Args:
        temperature: Softmax temperature; SimCLR-style values are 0.1-0.5.
        gather_distributed: Gather negatives from all processes under DDP.

    Raises:
        ValueError: If the temperature is not positive and finite, or gathering is requested
            without torch.distributed support.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False) -> None:
        super().__init__()
        # lightly accepts any |t| >= 1e-8, including negative values that would reward
        # dissimilar positives; only positive temperatures make sense here.
        check_positive("temperature", temperature)
        check_distributed_available(gather_distributed)
        self.temperature = temperature
        self.gather_distributed = gather_distributed
        self._loss = LightlyNTXentLoss(
            temperature=temperature, memory_bank_size=0, gather_distributed=gather_distributed
        )

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        """Compute NT-Xent between two views.

        Args:
            z_a: Embeddings of the first view, shape (B, D); L2-normalised internally.
            z_b: Embeddings of the second view, shape (B, D); row i pairs with `z_a[i]`.

        Returns:
            Scalar loss.

        Raises:
            ValueError: If the embeddings are not (B, D) tensors of the same shape.
        """
        check_embeddings({"z_a": z_a, "z_b": z_b})
        loss: Tensor = self._loss(z_a, z_b)
        return loss
