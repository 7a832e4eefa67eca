"""The project's objectives adapted to vector observations: ``clip``, ``cross_self``, ``coral``.

Every objective wraps its encoders and one of the project's losses (`eo_mmcl.losses`), so the
lab measures the same losses that train the raster encoders. An objective exposes
``loss(x1, x2, generator)`` for training and ``embed(x1, x2)`` for the probes; embeddings are
the encoders' raw outputs (the losses L2-normalise internally).
"""

from __future__ import annotations

import abc
from typing import Final

import torch
from torch import Tensor, nn

from eo_mmcl.errors import ConfigError
from eo_mmcl.losses import (
    CoRALLoss,
    CrossSelfLoss,
    SymmetricInfoNCELoss,
    complementary_token_masks,
)
from eo_mmcl.theory.encoders import EncoderFactory
from eo_mmcl.theory.views import ViewConfig, augment

#: Objectives the lab trains, in the order results list them.
OBJECTIVES: Final[tuple[str, ...]] = ("clip", "cross_self", "coral")

#: Names of the embeddings an objective can return.
MODALITY1, MODALITY2, JOINT = "modality1", "modality2", "joint"


class VectorObjective(nn.Module, abc.ABC):
    """Encoders plus the loss that trains them.

    Args:
        name: Objective name, as written in the results.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    @abc.abstractmethod
    def loss(self, x1: Tensor, x2: Tensor, generator: torch.Generator) -> Tensor:
        """Training loss on one batch of pairs.

        Args:
            x1: Modality-1 observations, shape (B, d1).
            x2: Modality-2 observations, shape (B, d2).
            generator: Source of the views' and masks' randomness.

        Returns:
            Scalar loss.
        """

    @abc.abstractmethod
    def embed(self, x1: Tensor, x2: Tensor) -> dict[str, Tensor]:
        """Embeddings that the probes read, keyed by ``modality1``, ``modality2``, ``joint``.

        Args:
            x1: Modality-1 observations, shape (n, d1).
            x2: Modality-2 observations, shape (n, d2).

        Returns:
            Embeddings of shape (n, D) each; an objective returns those it defines.
        """


class TwoTowerObjective(VectorObjective):
    """One encoder per modality; the joint embedding concatenates the two.

    Args:
        name: Objective name.
        encoder: Builds each modality's encoder.
        in_dims: Observation dimensions (d1, d2).
        embedding_dim: Output dimension of each encoder.
    """

    def __init__(
        self, name: str, encoder: EncoderFactory, in_dims: tuple[int, int], embedding_dim: int
    ) -> None:
        super().__init__(name)
        self.encoder1 = encoder(in_dims[0], embedding_dim)
        self.encoder2 = encoder(in_dims[1], embedding_dim)

    def embed(self, x1: Tensor, x2: Tensor) -> dict[str, Tensor]:
        """Each modality's embedding and their concatenation.

        Args:
            x1: Modality-1 observations, shape (n, d1).
            x2: Modality-2 observations, shape (n, d2).

        Returns:
            ``modality1`` (n, D), ``modality2`` (n, D) and ``joint`` (n, 2D).
        """
        z1, z2 = self.encoder1(x1), self.encoder2(x2)
        return {MODALITY1: z1, MODALITY2: z2, JOINT: torch.cat([z1, z2], dim=1)}


class ClipObjective(TwoTowerObjective):
    """``clip``: symmetric InfoNCE between the two modalities' embeddings of clean pairs.

    Args:
        encoder: Builds each modality's encoder.
        in_dims: Observation dimensions (d1, d2).
        embedding_dim: Output dimension of each encoder.
        temperature: InfoNCE temperature.
    """

    def __init__(
        self,
        encoder: EncoderFactory,
        in_dims: tuple[int, int],
        embedding_dim: int,
        temperature: float,
    ) -> None:
        super().__init__("clip", encoder, in_dims, embedding_dim)
        self.clip = SymmetricInfoNCELoss(temperature=temperature)

    def loss(self, x1: Tensor, x2: Tensor, generator: torch.Generator) -> Tensor:
        """Symmetric InfoNCE of the pair's embeddings.

        Args:
            x1: Modality-1 observations, shape (B, d1).
            x2: Modality-2 observations, shape (B, d2).
            generator: Unused (``clip`` sees clean pairs).

        Returns:
            Scalar loss.
        """
        loss: Tensor = self.clip(self.encoder1(x1), self.encoder2(x2))
        return loss


class CrossSelfObjective(TwoTowerObjective):
    """``cross_self``: ``clip`` plus NT-Xent between two augmented views within each modality.

    The raster task's loss itself (`eo_mmcl.losses.CrossSelfLoss`), the cross-modal term on
    view a: ``clip(f1(x1_a), f2(x2_a)) + w * (NTXent(f1(x1_a), f1(x1_b)) + NTXent(f2(...)))``.

    Args:
        encoder: Builds each modality's encoder.
        in_dims: Observation dimensions (d1, d2).
        embedding_dim: Output dimension of each encoder.
        temperature: Temperature of all three terms.
        views: How views are drawn.
        self_weight: Weight ``w`` of the within-modality terms.
    """

    def __init__(
        self,
        encoder: EncoderFactory,
        in_dims: tuple[int, int],
        embedding_dim: int,
        temperature: float,
        views: ViewConfig,
        self_weight: float = 1.0,
    ) -> None:
        super().__init__("cross_self", encoder, in_dims, embedding_dim)
        self.cross_self = CrossSelfLoss(temperature=temperature, self_weight=self_weight)
        self.views = views

    def loss(self, x1: Tensor, x2: Tensor, generator: torch.Generator) -> Tensor:
        """Cross-modal InfoNCE on view a plus NT-Xent within each modality.

        Args:
            x1: Modality-1 observations, shape (B, d1).
            x2: Modality-2 observations, shape (B, d2).
            generator: Source of the views' randomness.

        Returns:
            Scalar loss.
        """
        z1a = self.encoder1(augment(x1, self.views, generator))
        z1b = self.encoder1(augment(x1, self.views, generator))
        z2a = self.encoder2(augment(x2, self.views, generator))
        z2b = self.encoder2(augment(x2, self.views, generator))
        return self.cross_self(z1a, z1b, z2a, z2b).total


class CoralObjective(VectorObjective):
    """``coral`` on vectors: a masked shared path over both modalities plus two unique paths.

    Coordinates play the role of tokens. The shared encoder reads ``[x1; x2]``; its view a
    zeroes ``mask_ratio`` of the modality-1 coordinates, view b that of modality 2 (the
    project's `complementary_token_masks`), so matching the views needs each modality to
    predict the other (COrAL's asymmetric masking). Unique encoders read one modality each;
    all paths add the usual noise/dropout views. The project's `CoRALLoss` adds NT-Xent on the
    three paths and the orthogonality penalty. The probe reads ``concat[z, u1, u2]`` on clean
    inputs.

    Args:
        encoder: Builds every path's encoder.
        in_dims: Observation dimensions (d1, d2).
        embedding_dim: Output dimension of each path (the probe reads 3x this).
        temperature: NT-Xent temperature of the three paths.
        views: How views are drawn.
        mask_ratio: Fraction of one modality's coordinates hidden in each shared-path view.
        orthogonality_weight: Weight of the orthogonality penalty.
    """

    def __init__(
        self,
        encoder: EncoderFactory,
        in_dims: tuple[int, int],
        embedding_dim: int,
        temperature: float,
        views: ViewConfig,
        mask_ratio: float = 0.75,
        orthogonality_weight: float = 1.0,
    ) -> None:
        super().__init__("coral")
        self.in_dims = in_dims
        self.shared = encoder(in_dims[0] + in_dims[1], embedding_dim)
        self.unique1 = encoder(in_dims[0], embedding_dim)
        self.unique2 = encoder(in_dims[1], embedding_dim)
        self.coral = CoRALLoss(temperature=temperature, orthogonality_weight=orthogonality_weight)
        self.views = views
        self.mask_ratio = mask_ratio

    def loss(self, x1: Tensor, x2: Tensor, generator: torch.Generator) -> Tensor:
        """COrAL loss on two views.

        Args:
            x1: Modality-1 observations, shape (B, d1).
            x2: Modality-2 observations, shape (B, d2).
            generator: Source of the views' and masks' randomness.

        Returns:
            Scalar loss (the `CoRALLoss` total).
        """
        x1a, x1b = augment(x1, self.views, generator), augment(x1, self.views, generator)
        x2a, x2b = augment(x2, self.views, generator), augment(x2, self.views, generator)
        masks = complementary_token_masks(
            x1.shape[0], self.in_dims[0], self.in_dims[1], self.mask_ratio, generator=generator
        )
        # A masked coordinate is zeroed: the shared encoder cannot tell it from a dropped one.
        fused_a = torch.cat([x1a * ~masks.view1_m1, x2a * ~masks.view1_m2], dim=1)  # (B, d1+d2)
        fused_b = torch.cat([x1b * ~masks.view2_m1, x2b * ~masks.view2_m2], dim=1)  # (B, d1+d2)
        out = self.coral(
            self.shared(fused_a),
            self.shared(fused_b),
            self.unique1(x1a),
            self.unique1(x1b),
            self.unique2(x2a),
            self.unique2(x2b),
        )
        return out.total

    def embed(self, x1: Tensor, x2: Tensor) -> dict[str, Tensor]:
        """The probed embedding ``concat[z, u1, u2]`` of clean, unmasked inputs.

        Args:
            x1: Modality-1 observations, shape (n, d1).
            x2: Modality-2 observations, shape (n, d2).

        Returns:
            ``joint`` of shape (n, 3D).
        """
        z = self.shared(torch.cat([x1, x2], dim=1))
        return {JOINT: torch.cat([z, self.unique1(x1), self.unique2(x2)], dim=1)}


def build_objective(
    name: str,
    encoder: EncoderFactory,
    in_dims: tuple[int, int],
    embedding_dim: int,
    temperature: float,
    views: ViewConfig,
) -> VectorObjective:
    """Build an objective by name.

    Args:
        name: One of :data:`OBJECTIVES`.
        encoder: Builds the encoders.
        in_dims: Observation dimensions (d1, d2).
        embedding_dim: Output dimension of each encoder (of each path for ``coral``).
        temperature: Temperature of the contrastive terms.
        views: How views are drawn (``cross_self`` and ``coral``).

    Returns:
        The objective, with freshly initialised encoders.

    Raises:
        ConfigError: If the name is unknown or the embedding dimension is < 1.
    """
    if embedding_dim < 1:
        raise ConfigError(f"embedding_dim must be >= 1, got {embedding_dim}")
    if name == "clip":
        return ClipObjective(encoder, in_dims, embedding_dim, temperature)
    if name == "cross_self":
        return CrossSelfObjective(encoder, in_dims, embedding_dim, temperature, views)
    if name == "coral":
        return CoralObjective(encoder, in_dims, embedding_dim, temperature, views)
    raise ConfigError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
