"""COrAL's asymmetric, complementary token masking of the shared path's two views."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class ViewMasks(NamedTuple):
    """Token masks of the two views of the shared path (True = masked).

    Args:
        view1_m1: Modality-1 tokens of view 1, shape (B, n_tokens_1); `round(ratio * n1)`
            True per row.
        view1_m2: Modality-2 tokens of view 1, shape (B, n_tokens_2); all False.
        view2_m1: Modality-1 tokens of view 2, shape (B, n_tokens_1); all False.
        view2_m2: Modality-2 tokens of view 2, shape (B, n_tokens_2); `round(ratio * n2)`
            True per row.
    """

    view1_m1: Tensor
    view1_m2: Tensor
    view2_m1: Tensor
    view2_m2: Tensor


def random_token_mask(
    batch_size: int,
    n_tokens: int,
    n_masked: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Mask exactly `n_masked` tokens per sample, chosen uniformly and independently per sample.

    Args:
        batch_size: Number of samples B.
        n_tokens: Number of tokens N per sample.
        n_masked: Tokens to mask per sample, 0 <= n_masked <= N.
        generator: Source of randomness; the same seeded generator gives the same mask.
        device: Device of the returned mask (default: the generator's, else the CPU).

    Returns:
        Boolean mask of shape (B, N), True = masked.

    Raises:
        ValueError: If `n_masked` is outside [0, N].
    """
    if not 0 <= n_masked <= n_tokens:
        raise ValueError(f"n_masked must lie in [0, {n_tokens}], got {n_masked}")
    # Draw on the generator's device (a CPU generator cannot fill a CUDA tensor) and move the
    # result, so a seeded CPU generator reproduces the same masks on any device.
    noise_device = generator.device if generator is not None else device
    noise = torch.rand(batch_size, n_tokens, generator=generator, device=noise_device)  # (B, N)
    # The n_masked smallest noise values give a uniformly random subset of fixed size.
    masked_ids = noise.argsort(dim=1)[:, :n_masked]  # (B, n_masked)
    mask = torch.zeros(batch_size, n_tokens, dtype=torch.bool, device=noise.device)  # (B, N)
    mask.scatter_(1, masked_ids, True)
    return mask.to(device) if device is not None else mask


def complementary_token_masks(
    batch_size: int,
    n_tokens_1: int,
    n_tokens_2: int,
    mask_ratio: float = 0.75,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> ViewMasks:
    """COrAL's asymmetric masks: view 1 hides modality 1, view 2 hides modality 2.

    View 1 masks `round(mask_ratio * n_tokens_1)` modality-1 tokens of every sample and no
    modality-2 token; view 2 masks `round(mask_ratio * n_tokens_2)` modality-2 tokens and no
    modality-1 token. Each sample gets its own random subset. Matching the two views then
    requires predicting the hidden part of one modality from the other. `round` is Python's
    (halves go to the even integer).

    The authors' code (github.com/Caro-Ci/COrAL, `modules/mmfusion.py`) drops each token
    independently with probability `mask_ratio`, so only the *expected* fraction is fixed;
    here the count is exact per sample, which keeps the fused sequence's information budget
    constant across samples and makes the ratio testable.

    Args:
        batch_size: Number of samples B, >= 1.
        n_tokens_1: Modality-1 tokens per sample n1, >= 1.
        n_tokens_2: Modality-2 tokens per sample n2, >= 1.
        mask_ratio: Fraction of the masked modality's tokens to hide, in [0, 1].
        generator: Source of randomness; a seeded generator makes the masks reproducible.
            View 1's mask is drawn before view 2's.
        device: Device of the returned masks (default: the generator's, else the CPU).

    Returns:
        `ViewMasks` with boolean masks (True = masked) of shapes (B, n1), (B, n2), (B, n1),
        (B, n2).

    Raises:
        ValueError: If a size is < 1 or `mask_ratio` is outside [0, 1].
    """
    for name, value in (
        ("batch_size", batch_size),
        ("n_tokens_1", n_tokens_1),
        ("n_tokens_2", n_tokens_2),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not 0.0 <= mask_ratio <= 1.0:
        raise ValueError(f"mask_ratio must lie in [0, 1], got {mask_ratio!r}")
    view1_m1 = random_token_mask(
        batch_size, n_tokens_1, round(mask_ratio * n_tokens_1), generator, device
    )  # (B, n1)
    view2_m2 = random_token_mask(
        batch_size, n_tokens_2, round(mask_ratio * n_tokens_2), generator, device
    )  # (B, n2)
    # The unmasked modality of each view gets an explicit all-False mask so callers can treat
    # both views uniformly.
    view1_m2 = torch.zeros_like(view2_m2)  # (B, n2)
    view2_m1 = torch.zeros_like(view1_m1)  # (B, n1)
    return ViewMasks(view1_m1, view1_m2, view2_m1, view2_m2)
