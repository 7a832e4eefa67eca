"""Latent-variable generators with known shared, unique, biased and modality-specific factors.

Two generators, one per experiment of the theory lab:

- :func:`sample_linear_gaussian`: the linear-Gaussian model of Thoreau, Levillain and Derksen
  (2025): ``x_i = A_i [s; u_i] + noise`` with a shared latent ``s`` and one unique latent
  ``u_i`` per modality.
- :func:`~eo_mmcl.theory.misaligned_data.sample_misaligned`: the misalignment model of Cai et
  al. (2025), in :mod:`eo_mmcl.theory.misaligned_data` (on the same dataset types).

Latents, mixing and noise are drawn from one ``numpy.random.Generator`` seeded by the config, so
the same config gives the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from eo_mmcl.errors import ConfigError

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class LinearGaussianConfig:
    """Knobs of the linear-Gaussian two-modality model.

    Args:
        shared_dim: Dimension of the shared latent ``s``.
        unique_dim: Dimension of each unique latent ``u1``, ``u2``.
        observation_dim: Dimension of each observation ``x1``, ``x2``. At least
            ``shared_dim + unique_dim`` keeps the mixing injective, so that no factor is lost
            before the encoder sees it.
        variance_ratio: Variance of each unique factor divided by that of each shared factor
            (shared factors have unit variance).
        noise_std: Standard deviation of the isotropic observation noise.
        n_train: Number of training pairs.
        n_test: Number of held-out pairs (probes are scored on them).
        seed: Seed of the latents, the mixing matrices and the noise.

    Raises:
        ConfigError: If a dimension or count is not positive, the mixing would not be injective,
            or a variance or noise level is negative or not finite.
    """

    shared_dim: int = 5
    unique_dim: int = 5
    observation_dim: int = 20
    variance_ratio: float = 1.0
    noise_std: float = 0.1
    n_train: int = 4096
    n_test: int = 2048
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("shared_dim", "unique_dim", "observation_dim", "n_train", "n_test"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.observation_dim < self.shared_dim + self.unique_dim:
            raise ConfigError(
                f"observation_dim ({self.observation_dim}) must be >= shared_dim + unique_dim "
                f"({self.shared_dim + self.unique_dim}) so that the mixing is injective"
            )
        if not np.isfinite(self.variance_ratio) or self.variance_ratio <= 0:
            raise ConfigError(f"variance_ratio must be > 0, got {self.variance_ratio}")
        if not np.isfinite(self.noise_std) or self.noise_std < 0:
            raise ConfigError(f"noise_std must be >= 0, got {self.noise_std}")


@dataclass(frozen=True)
class PairedSplit:
    """One split of paired observations with the latent factors that generated them.

    Args:
        x1: Modality-1 observations, shape (n, d1).
        x2: Modality-2 observations, shape (n, d2).
        factors: Ground-truth factors to probe, shape (n, F), columns named by the dataset.
    """

    x1: FloatArray
    x2: FloatArray
    factors: FloatArray


@dataclass(frozen=True)
class LatentDataset:
    """Train and test splits plus the name and group of every probed factor.

    Args:
        train: Training split.
        test: Held-out split.
        factor_names: Name of each factor column, e.g. ``s0`` or ``u1_2``.
        factor_groups: Group of each factor column (``shared``, ``unique1``, ...).
    """

    train: PairedSplit
    test: PairedSplit
    factor_names: tuple[str, ...]
    factor_groups: tuple[str, ...]


@dataclass(frozen=True)
class LinearMixing:
    """The two mixing matrices of the linear-Gaussian model.

    Args:
        a1: Modality-1 mixing, shape (observation_dim, shared_dim + unique_dim), acting on
            ``[s; u1]``.
        a2: Modality-2 mixing, same shape, acting on ``[s; u2]``.
    """

    a1: FloatArray
    a2: FloatArray


def linear_mixing(config: LinearGaussianConfig) -> LinearMixing:
    """Draw the random mixing matrices of the linear-Gaussian model.

    Entries are i.i.d. N(0, 1 / (shared_dim + unique_dim)), so that an observation coordinate
    has about the average latent variance; with ``observation_dim >= shared_dim + unique_dim``
    the matrices have full column rank with probability one.

    Args:
        config: Model knobs (only the dimensions and the seed are used).

    Returns:
        The two mixing matrices.
    """
    # A separate stream for the mixing keeps the matrices fixed when only sample sizes change.
    rng = np.random.default_rng([config.seed, 1])
    latent_dim = config.shared_dim + config.unique_dim
    scale = 1.0 / np.sqrt(latent_dim)
    shape = (config.observation_dim, latent_dim)
    return LinearMixing(
        a1=rng.normal(0.0, scale, size=shape), a2=rng.normal(0.0, scale, size=shape)
    )


def sample_linear_gaussian(config: LinearGaussianConfig) -> LatentDataset:
    """Sample train and test pairs from the linear-Gaussian model.

    ``s ~ N(0, I)``, ``u_i ~ N(0, variance_ratio I)``, ``x_i = A_i [s; u_i] + e_i`` with
    ``e_i ~ N(0, noise_std^2 I)``. Factors are ``s`` (group ``shared``), ``u1`` (``unique1``)
    and ``u2`` (``unique2``), in that column order.

    Args:
        config: Model knobs.

    Returns:
        The dataset, its factors named ``s0..``, ``u1_0..``, ``u2_0..``.
    """
    mixing = linear_mixing(config)
    rng = np.random.default_rng([config.seed, 2])
    ds, du = config.shared_dim, config.unique_dim

    def split(n: int) -> PairedSplit:
        s = rng.standard_normal((n, ds))
        u1 = np.sqrt(config.variance_ratio) * rng.standard_normal((n, du))
        u2 = np.sqrt(config.variance_ratio) * rng.standard_normal((n, du))
        e1 = config.noise_std * rng.standard_normal((n, config.observation_dim))
        e2 = config.noise_std * rng.standard_normal((n, config.observation_dim))
        x1 = np.concatenate([s, u1], axis=1) @ mixing.a1.T + e1
        x2 = np.concatenate([s, u2], axis=1) @ mixing.a2.T + e2
        return PairedSplit(x1=x1, x2=x2, factors=np.concatenate([s, u1, u2], axis=1))

    names = (
        tuple(f"s{i}" for i in range(ds))
        + tuple(f"u1_{i}" for i in range(du))
        + tuple(f"u2_{i}" for i in range(du))
    )
    groups = ("shared",) * ds + ("unique1",) * du + ("unique2",) * du
    return LatentDataset(
        train=split(config.n_train),
        test=split(config.n_test),
        factor_names=names,
        factor_groups=groups,
    )
