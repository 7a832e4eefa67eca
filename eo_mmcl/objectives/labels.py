"""Chip-level labels from pixel masks: the majority class over valid pixels."""

from __future__ import annotations

import torch
from torch import Tensor

#: Label value of pixels without a label (and of chips without any labelled pixel).
IGNORE_INDEX = 255


def majority_labels(mask: Tensor, num_classes: int, valid: Tensor | None = None) -> Tensor:
    """Majority class of each chip over its labelled (and valid) pixels.

    Args:
        mask: Pixel labels (B, H, W), ``IGNORE_INDEX`` = no label.
        num_classes: Number of classes.
        valid: Optional (B, H, W) bool; pixels where it is False are ignored too.

    Returns:
        (B,) int64 labels; ``-1`` for chips without any labelled pixel.

    Raises:
        ValueError: If a label is neither in ``0..num_classes-1`` nor ``IGNORE_INDEX``.
    """
    labelled = mask != IGNORE_INDEX
    if valid is not None:
        labelled &= valid
    values = mask[labelled]
    if values.numel() and int(values.max()) >= num_classes:
        raise ValueError(f"label {int(values.max())} out of range for {num_classes} classes")
    flat = torch.where(labelled, mask, num_classes).flatten(1).long()  # (B, H*W)
    counts = torch.zeros(mask.shape[0], num_classes + 1, dtype=torch.long, device=mask.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat))
    counts = counts[:, :num_classes]
    labels = counts.argmax(dim=1)
    return torch.where(counts.sum(dim=1) > 0, labels, torch.full_like(labels, -1))
