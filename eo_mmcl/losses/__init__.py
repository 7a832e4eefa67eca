"""Self-supervised objectives for Sentinel-1/Sentinel-2 encoders.

Single-term losses return a scalar tensor; multi-term losses return a `LossOutput`
(`total`, `terms`). All take (B, D) embeddings and can gather negatives (or average
cross-correlations) across processes under DDP.
"""

from __future__ import annotations

from eo_mmcl.losses.barlow import BarlowTwinsLoss, cross_correlation, off_diagonal
from eo_mmcl.losses.comm import CoMMLoss
from eo_mmcl.losses.coral import CoRALLoss, orthogonality_penalty
from eo_mmcl.losses.cross_self import CrossSelfLoss
from eo_mmcl.losses.decur import DeCURLoss, unique_decorrelation_loss
from eo_mmcl.losses.infonce import SymmetricInfoNCELoss, directional_infonce
from eo_mmcl.losses.masking import ViewMasks, complementary_token_masks, random_token_mask
from eo_mmcl.losses.ntxent import NTXentLoss
from eo_mmcl.losses.output import LossOutput

__all__ = [
    "BarlowTwinsLoss",
    "CoMMLoss",
    "CoRALLoss",
    "CrossSelfLoss",
    "DeCURLoss",
    "LossOutput",
    "NTXentLoss",
    "SymmetricInfoNCELoss",
    "ViewMasks",
    "complementary_token_masks",
    "cross_correlation",
    "directional_infonce",
    "off_diagonal",
    "orthogonality_penalty",
    "random_token_mask",
    "unique_decorrelation_loss",
]
