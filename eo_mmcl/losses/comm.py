"""CoMM: contrastive alignment of fused multimodal embeddings and their single-modality versions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from eo_mmcl.losses._validation import check_embeddings
from eo_mmcl.losses.ntxent import NTXentLoss
from eo_mmcl.losses.output import LossOutput


class CoMMLoss(nn.Module):
    """CoMM loss: NT-Xent between fused views, full and single-modality.

    After Dufumier et al., ICLR 2025, "What to align in multimodal contrastive learning?". One
    fusion module embeds two augmented views of a multimodal sample: `z_a`, `z_b` with all
    modalities present, and, for each modality i, `singles_a[i]`, `singles_b[i]` with only
    modality i present (the others masked out of the fusion). With NT-Xent (SimCLR) as `NCE`:

    - `fused = NCE(z_a, z_b)`: aligns the two full multimodal views (captures redundancy,
      uniqueness and synergy together);
    - `modality_i = (NCE(singles_a[i], z_b) + NCE(singles_b[i], z_a)) / 2`: aligns each
      single-modality embedding of one view with the full embedding of the *other* view
      (anchors the unique information of modality i).

    `total` is the equally weighted mean of these M + 1 terms, as in the authors' code
    (github.com/Duplums/CoMM, `losses/comm_loss.py` with `weights=None`, where the
    all-modality embedding is the last "prototype" entry and is paired with itself as one of
    the terms); a plain sum differs only by the constant factor M + 1. NCE is lightly's
    NT-Xent, which matches the code's SimCLR-style InfoNCE (negatives from both views, self
    excluded). Each term, and hence the total, is symmetric under swapping views a and b.

    Args:
        temperature: NT-Xent temperature; 0.1 as in the authors' code.
        gather_distributed: Gather negatives from all processes under DDP.

    Raises:
        ValueError: If the temperature is not positive and finite, or gathering is requested
            without torch.distributed support.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False) -> None:
        super().__init__()
        self.ntxent = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)

    def forward(
        self,
        z_a: Tensor,
        z_b: Tensor,
        singles_a: Sequence[Tensor],
        singles_b: Sequence[Tensor],
    ) -> LossOutput:
        """Compute the CoMM loss.

        Args:
            z_a: Fused embeddings of view a with all modalities, shape (B, D).
            z_b: Fused embeddings of view b with all modalities, shape (B, D).
            singles_a: For each of the M modalities, the fused embedding of view a with only
                that modality present, each of shape (B, D).
            singles_b: The same for view b, in the same modality order.

        Returns:
            `LossOutput` with terms `fused` and `modality_0` ... `modality_{M-1}`.

        Raises:
            ValueError: If no single-modality embeddings are given, the two views list a
                different number of modalities, or any embedding is not (B, D) like `z_a`.
        """
        if len(singles_a) == 0:
            raise ValueError("CoMM needs at least one single-modality embedding per view")
        if len(singles_a) != len(singles_b):
            raise ValueError(
                f"views list different numbers of modalities: {len(singles_a)} in singles_a, "
                f"{len(singles_b)} in singles_b"
            )
        check_embeddings(
            {
                "z_a": z_a,
                "z_b": z_b,
                **{f"singles_a[{i}]": s for i, s in enumerate(singles_a)},
                **{f"singles_b[{i}]": s for i, s in enumerate(singles_b)},
            }
        )
        terms = {"fused": self.ntxent(z_a, z_b)}
        for i, (single_a, single_b) in enumerate(zip(singles_a, singles_b, strict=True)):
            terms[f"modality_{i}"] = 0.5 * (self.ntxent(single_a, z_b) + self.ntxent(single_b, z_a))
        total = torch.stack(list(terms.values())).mean()
        return LossOutput(total, terms)
