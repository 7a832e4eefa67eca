"""Augmented views of observation vectors: additive Gaussian noise and feature dropout.

Vectors have no crops or colour jitter; the two generic corruptions that keep a vector's
content while changing its value are noise and dropping coordinates. Self-supervised terms
(``cross_self``'s NT-Xent, COrAL's paths) compare two such views of one observation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from eo_mmcl.errors import ConfigError


@dataclass(frozen=True)
class ViewConfig:
    """How one augmented view is drawn.

    Args:
        noise_std: Standard deviation of the additive Gaussian noise (observations are on a
            unit-variance scale).
        dropout: Probability of zeroing each coordinate, independently per sample.

    Raises:
        ConfigError: If the noise is negative or not finite, or the dropout is outside [0, 1).
    """

    noise_std: float = 0.3
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if not math.isfinite(self.noise_std) or self.noise_std < 0:
            raise ConfigError(f"view noise_std must be >= 0, got {self.noise_std}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"view dropout must be in [0, 1), got {self.dropout}")


def augment(x: Tensor, config: ViewConfig, generator: torch.Generator) -> Tensor:
    """Draw one augmented view of a batch of vectors.

    Dropped coordinates are zeroed without the usual 1 / (1 - p) rescaling: views only need
    to share content, not the clean input's scale.

    Args:
        x: Observations, shape (B, d).
        config: Noise and dropout levels.
        generator: Source of randomness (CPU generator; seeded for reproducible views).

    Returns:
        The view, shape (B, d).
    """
    keep = torch.rand(x.shape, generator=generator) >= config.dropout  # (B, d)
    noise = config.noise_std * torch.randn(x.shape, generator=generator)  # (B, d)
    return x * keep.to(x.dtype) + noise.to(x.dtype)
