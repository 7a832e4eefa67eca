"""Vector encoders of the theory lab: linear maps and small MLPs."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

#: Builds an encoder from (input dimension, output dimension).
EncoderFactory = Callable[[int, int], nn.Module]


def linear_encoder(in_dim: int, out_dim: int) -> nn.Module:
    """A linear encoder ``z = W x + b``, the setting in which the loss of unique factors is proved.

    Args:
        in_dim: Observation dimension.
        out_dim: Embedding dimension.

    Returns:
        The encoder.
    """
    return nn.Linear(in_dim, out_dim)


def mlp_encoder(in_dim: int, out_dim: int, hidden_dim: int = 128) -> nn.Module:
    """A two-hidden-layer MLP, able to invert the lab's nonlinear mixing.

    Args:
        in_dim: Observation dimension.
        out_dim: Embedding dimension.
        hidden_dim: Width of both hidden layers.

    Returns:
        The encoder.
    """
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden_dim, hidden_dim),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden_dim, out_dim),
    )
