"""Argument and shape checks shared by the losses, so that every loss fails with the same words."""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch import Tensor


def check_positive(name: str, value: float) -> None:
    """Reject a hyper-parameter that must be a positive finite number.

    Args:
        name: Argument name used in the message.
        value: Value to check.

    Raises:
        ValueError: If `value` is not finite or not > 0.
    """
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def check_non_negative(name: str, value: float) -> None:
    """Reject a hyper-parameter that must be a non-negative finite number.

    Args:
        name: Argument name used in the message.
        value: Value to check.

    Raises:
        ValueError: If `value` is not finite or is < 0.
    """
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")


def check_embeddings(embeddings: Mapping[str, Tensor], min_batch: int = 1) -> None:
    """Check that embeddings are 2-D (batch, dim) tensors of one identical shape.

    Args:
        embeddings: Tensors keyed by the argument names used in error messages.
        min_batch: Smallest batch size the caller can compute a loss from.

    Raises:
        ValueError: If a tensor is not 2-D, has an empty feature dimension, has fewer than
            `min_batch` rows, or the shapes differ.
    """
    reference_name: str | None = None
    for name, z in embeddings.items():
        if z.ndim != 2:
            raise ValueError(f"{name} must have shape (batch, dim), got {tuple(z.shape)}")
        if z.shape[1] == 0:
            raise ValueError(f"{name} has an empty feature dimension: {tuple(z.shape)}")
        if z.shape[0] < min_batch:
            raise ValueError(
                f"{name} needs at least {min_batch} sample(s) in the batch, got {z.shape[0]}"
            )
        if reference_name is None:
            reference_name = name
        elif z.shape != embeddings[reference_name].shape:
            raise ValueError(
                f"shape mismatch: {reference_name} has shape "
                f"{tuple(embeddings[reference_name].shape)} but {name} has {tuple(z.shape)}"
            )
