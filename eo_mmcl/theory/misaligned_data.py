"""The misalignment model of Cai et al. (2025), with known semantic and modality-specific factors.

Semantic factors ``s`` and modality-specific ``m1``, ``m2``; modality 2 sees only the factors in
``I_theta`` (selection bias), and those in ``I_rho`` reach it perturbed (perturbation bias);
both modalities are invertible nonlinear mixtures of their latents. Latents, mixing and noise
come from one ``numpy.random.Generator`` seeded by the config.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from eo_mmcl.errors import ConfigError
from eo_mmcl.theory.data import FloatArray, LatentDataset, PairedSplit

#: Slope of the leaky ReLU of the mixing MLPs: non-zero, so that each layer stays invertible.
MIXING_LEAKY_SLOPE = 0.2


@dataclass(frozen=True)
class MisalignmentConfig:
    """Knobs of the misaligned two-modality model.

    Semantic factors are indexed ``0 .. semantic_dim - 1``. Modality 2 sees the first
    ``theta_size`` of them (``I_theta``); the last ``rho_size`` of those (``I_rho``) are
    perturbed. So with the defaults, factors 0-4 are identified, 5-6 perturbed and 7-9
    selection-biased.

    Args:
        semantic_dim: Dimension of the semantic latent ``s``.
        specific_dim: Dimension of each modality-specific latent ``m1``, ``m2``.
        theta_size: ``|I_theta|``, the number of semantic factors modality 2 sees.
        rho_size: ``|I_rho|``, how many of those reach modality 2 perturbed.
        perturb_prob: Probability that a factor of ``I_rho`` is perturbed in a given pair
            (independently per pair and factor).
        mixing_layers: Number of leaky-ReLU layers of each invertible mixing MLP.
        n_train: Number of training pairs.
        n_test: Number of held-out pairs.
        seed: Seed of the latents, the perturbations and the mixing networks.

    Raises:
        ConfigError: If the sizes are inconsistent (``0 <= rho_size <= theta_size <=
            semantic_dim``, at least one unbiased factor), a count is not positive or the
            probability is outside [0, 1].
    """

    semantic_dim: int = 10
    specific_dim: int = 5
    theta_size: int = 7
    rho_size: int = 2
    perturb_prob: float = 0.5
    mixing_layers: int = 3
    n_train: int = 8192
    n_test: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("semantic_dim", "specific_dim", "mixing_layers", "n_train", "n_test"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.rho_size < self.theta_size <= self.semantic_dim:
            raise ConfigError(
                "need 0 <= rho_size < theta_size <= semantic_dim (at least one unbiased "
                f"factor), got rho_size={self.rho_size}, theta_size={self.theta_size}, "
                f"semantic_dim={self.semantic_dim}"
            )
        if not 0.0 <= self.perturb_prob <= 1.0:
            raise ConfigError(f"perturb_prob must be in [0, 1], got {self.perturb_prob}")

    @property
    def theta(self) -> tuple[int, ...]:
        """Indices ``I_theta`` of the semantic factors that modality 2 sees."""
        return tuple(range(self.theta_size))

    @property
    def rho(self) -> tuple[int, ...]:
        """Indices ``I_rho`` (a subset of ``I_theta``) of the perturbed factors."""
        return tuple(range(self.theta_size - self.rho_size, self.theta_size))

    @property
    def unbiased_size(self) -> int:
        """Number of semantic factors neither unseen nor perturbed: ``|I_theta| - |I_rho|``."""
        return self.theta_size - self.rho_size

    def semantic_group(self, index: int) -> str:
        """Group of one semantic factor under this config.

        Args:
            index: Semantic factor index.

        Returns:
            ``identified``, ``perturbed`` or ``selection_biased``.
        """
        if index in self.rho:
            return "perturbed"
        if index in self.theta:
            return "identified"
        return "selection_biased"


@dataclass(frozen=True)
class InvertibleMLP:
    """A random invertible map: square layers ``h <- leaky_relu(W h + b)``, last layer linear.

    Each ``W`` is a random orthogonal matrix times a diagonal with entries in [0.5, 1.5]:
    invertible, with a bounded condition number, so that no latent is squashed out of reach.

    Args:
        weights: Square weight matrices, first to last.
        biases: One bias vector per layer.
    """

    weights: tuple[FloatArray, ...]
    biases: tuple[FloatArray, ...]

    def __call__(self, h: FloatArray) -> FloatArray:
        """Apply the map to row vectors.

        Args:
            h: Inputs, shape (n, d).

        Returns:
            Outputs, shape (n, d).
        """
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.T + b
            if i < last:
                h = np.where(h > 0, h, MIXING_LEAKY_SLOPE * h)
        return h


def random_invertible_mlp(dim: int, layers: int, rng: np.random.Generator) -> InvertibleMLP:
    """Draw a random invertible MLP on R^dim.

    Args:
        dim: Input and output dimension.
        layers: Number of layers (>= 1).
        rng: Random generator.

    Returns:
        The map.
    """
    weights, biases = [], []
    for _ in range(layers):
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        q = q * np.sign(np.diag(r))  # Haar-distributed orthogonal matrix
        weights.append(q * rng.uniform(0.5, 1.5, size=dim))
        biases.append(0.1 * rng.standard_normal(dim))
    return InvertibleMLP(weights=tuple(weights), biases=tuple(biases))


@dataclass(frozen=True)
class MisalignedLatents:
    """Latents of one split of the misaligned model, before mixing.

    Args:
        s: Semantic factors as modality 1 sees them, shape (n, semantic_dim).
        s_tilde: Semantic factors after perturbation, shape (n, semantic_dim); modality 2 sees
            only the ``I_theta`` columns.
        perturbed: Which entries were perturbed, boolean, shape (n, semantic_dim).
        m1: Modality-1 specific factors, shape (n, specific_dim).
        m2: Modality-2 specific factors, shape (n, specific_dim).
    """

    s: FloatArray
    s_tilde: FloatArray
    perturbed: NDArray[np.bool_]
    m1: FloatArray
    m2: FloatArray


def sample_misaligned_latents(
    config: MisalignmentConfig, n: int, rng: np.random.Generator
) -> MisalignedLatents:
    """Sample semantic and modality-specific latents, and perturb ``I_rho``.

    All factors are i.i.d. N(0, 1). A perturbed factor is *resampled* from the same N(0, 1)
    rather than shifted: its marginal stays unchanged, so the only cue that it is unreliable
    is that it disagrees between the modalities; when unperturbed it is exactly equal.

    Args:
        config: Model knobs.
        n: Number of pairs.
        rng: Random generator.

    Returns:
        The latents.
    """
    s = rng.standard_normal((n, config.semantic_dim))
    m1 = rng.standard_normal((n, config.specific_dim))
    m2 = rng.standard_normal((n, config.specific_dim))
    perturbed = np.zeros((n, config.semantic_dim), dtype=bool)
    rho = list(config.rho)
    perturbed[:, rho] = rng.random((n, len(rho))) < config.perturb_prob
    s_tilde = np.where(perturbed, rng.standard_normal(s.shape), s)
    return MisalignedLatents(s=s, s_tilde=s_tilde, perturbed=perturbed, m1=m1, m2=m2)


@dataclass(frozen=True)
class MisalignedMixing:
    """The two mixing networks of the misaligned model.

    Args:
        g1: Modality-1 mixing on ``[s; m1]`` (dimension ``semantic_dim + specific_dim``).
        g2: Modality-2 mixing on ``[s_tilde[I_theta]; m2]`` (``theta_size + specific_dim``).
    """

    g1: InvertibleMLP
    g2: InvertibleMLP


def misaligned_mixing(config: MisalignmentConfig) -> MisalignedMixing:
    """Draw the mixing networks of the misaligned model.

    Args:
        config: Model knobs (dimensions, layers and seed).

    Returns:
        The two networks.
    """
    rng = np.random.default_rng([config.seed, 3])
    return MisalignedMixing(
        g1=random_invertible_mlp(
            config.semantic_dim + config.specific_dim, config.mixing_layers, rng
        ),
        g2=random_invertible_mlp(
            config.theta_size + config.specific_dim, config.mixing_layers, rng
        ),
    )


def mix_misaligned(
    latents: MisalignedLatents, mixing: MisalignedMixing, config: MisalignmentConfig
) -> tuple[FloatArray, FloatArray]:
    """Turn latents into observations.

    ``x1 = g1([s; m1])`` and ``x2 = g2([s_tilde[I_theta]; m2])``: the selection bias is that
    ``g2`` never receives the factors outside ``I_theta``.

    Args:
        latents: Latents of one split.
        mixing: The mixing networks.
        config: Model knobs.

    Returns:
        ``(x1, x2)`` with shapes (n, semantic_dim + specific_dim) and
        (n, theta_size + specific_dim).
    """
    x1 = mixing.g1(np.concatenate([latents.s, latents.m1], axis=1))
    x2 = mixing.g2(np.concatenate([latents.s_tilde[:, list(config.theta)], latents.m2], axis=1))
    return x1, x2


def sample_misaligned(config: MisalignmentConfig) -> LatentDataset:
    """Sample train and test pairs from the misaligned model.

    Observations are standardised with the training split's mean and standard deviation (the
    mixing can stretch coordinates by a few orders of magnitude; standardising changes no
    information). Factors are ``s0..`` (groups ``identified``, ``perturbed`` or
    ``selection_biased``) then ``m1_0..`` (``modality_specific``): the probed embedding is
    modality 1's, which sees all of them.

    Args:
        config: Model knobs.

    Returns:
        The dataset.
    """
    mixing = misaligned_mixing(config)
    rng = np.random.default_rng([config.seed, 4])
    train = sample_misaligned_latents(config, config.n_train, rng)
    test = sample_misaligned_latents(config, config.n_test, rng)
    x1_train, x2_train = mix_misaligned(train, mixing, config)
    x1_test, x2_test = mix_misaligned(test, mixing, config)
    mean1, std1 = x1_train.mean(axis=0), x1_train.std(axis=0)
    mean2, std2 = x2_train.mean(axis=0), x2_train.std(axis=0)

    def split(x1: FloatArray, x2: FloatArray, latents: MisalignedLatents) -> PairedSplit:
        return PairedSplit(
            x1=(x1 - mean1) / std1,
            x2=(x2 - mean2) / std2,
            factors=np.concatenate([latents.s, latents.m1], axis=1),
        )

    names = tuple(f"s{i}" for i in range(config.semantic_dim)) + tuple(
        f"m1_{i}" for i in range(config.specific_dim)
    )
    groups = (
        tuple(config.semantic_group(i) for i in range(config.semantic_dim))
        + ("modality_specific",) * config.specific_dim
    )
    return LatentDataset(
        train=split(x1_train, x2_train, train),
        test=split(x1_test, x2_test, test),
        factor_names=names,
        factor_groups=groups,
    )
