"""The closed-form limit of linear alignment: canonical correlation analysis (CCA).

For linear encoders on Gaussian data, aligning the two modalities keeps the directions of
``x1`` and ``x2`` that correlate across modalities, i.e. CCA's leading canonical directions;
when only ``s`` is shared, the cross-covariance has rank ``dim(s)`` and CCA's aligned subspace
is ``dim(s)``-dimensional. :func:`principal_angles_deg` compares it with a trained encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import subspace_angles

from eo_mmcl.errors import ConfigError
from eo_mmcl.theory.data import FloatArray


@dataclass(frozen=True)
class CCAResult:
    """Canonical directions of two data sets.

    Args:
        w1: Modality-1 canonical weights, shape (d1, k); ``(x1 - mean1) @ w1`` is the
            modality-1 canonical projection.
        w2: Modality-2 canonical weights, shape (d2, k).
        mean1: Modality-1 training mean, shape (d1,).
        mean2: Modality-2 training mean, shape (d2,).
        correlations: Canonical correlations, descending, shape (k,).
    """

    w1: FloatArray
    w2: FloatArray
    mean1: FloatArray
    mean2: FloatArray
    correlations: FloatArray

    def transform(self, x1: FloatArray, x2: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Project observations on the canonical directions.

        Args:
            x1: Modality-1 observations, shape (n, d1).
            x2: Modality-2 observations, shape (n, d2).

        Returns:
            Canonical projections, shapes (n, k) and (n, k).
        """
        return (x1 - self.mean1) @ self.w1, (x2 - self.mean2) @ self.w2


def inverse_sqrt(matrix: FloatArray) -> FloatArray:
    """Inverse square root of a symmetric positive-definite matrix.

    Args:
        matrix: Shape (d, d).

    Returns:
        ``matrix^{-1/2}``, shape (d, d).
    """
    values, vectors = np.linalg.eigh(matrix)
    return (vectors / np.sqrt(values)) @ vectors.T


def fit_cca(x1: FloatArray, x2: FloatArray, n_components: int, reg: float = 1e-6) -> CCAResult:
    """Closed-form CCA: SVD of the whitened cross-covariance.

    ``C11^{-1/2} C12 C22^{-1/2} = U S V^T``; the weights are ``C11^{-1/2} U`` and
    ``C22^{-1/2} V`` and the canonical correlations ``S``. The exact solution of the population
    problem on the sample covariances, unlike iterative solvers.

    Args:
        x1: Modality-1 observations, shape (n, d1).
        x2: Modality-2 observations, shape (n, d2).
        n_components: Number of canonical pairs k.
        reg: Ridge added to both covariances, relative to their mean variance (keeps the
            whitening finite for noiseless, rank-deficient data).

    Returns:
        The canonical directions.

    Raises:
        ConfigError: If ``n_components`` is not in 1..min(d1, d2).
    """
    d1, d2 = x1.shape[1], x2.shape[1]
    if not 1 <= n_components <= min(d1, d2):
        raise ConfigError(f"n_components must be in 1..{min(d1, d2)}, got {n_components}")
    mean1, mean2 = x1.mean(axis=0), x2.mean(axis=0)
    c1, c2 = x1 - mean1, x2 - mean2
    n = x1.shape[0]
    c11 = c1.T @ c1 / (n - 1)
    c22 = c2.T @ c2 / (n - 1)
    c12 = c1.T @ c2 / (n - 1)
    c11 += reg * np.trace(c11) / d1 * np.eye(d1)
    c22 += reg * np.trace(c22) / d2 * np.eye(d2)
    r1, r2 = inverse_sqrt(c11), inverse_sqrt(c22)
    u, s, vt = np.linalg.svd(r1 @ c12 @ r2)
    k = n_components
    return CCAResult(
        w1=r1 @ u[:, :k], w2=r2 @ vt.T[:, :k], mean1=mean1, mean2=mean2, correlations=s[:k]
    )


def principal_angles_deg(a: FloatArray, b: FloatArray) -> FloatArray:
    """Principal angles between the spans of two embeddings of the same samples.

    Both embeddings are centred and their column spans in sample space compared: an angle is
    ``arccos`` of a canonical correlation between them, so 0 degrees means one embedding is an
    exact linear function of the other along that direction, 90 that they share nothing. This
    compares the encoders through the data they see, so weights in directions where the data
    have no variance do not count.

    Args:
        a: Embedding of n samples, shape (n, ka).
        b: Embedding of the same samples, shape (n, kb).

    Returns:
        ``min(ka, kb)`` angles in degrees, largest first.

    Raises:
        ConfigError: If the row counts differ.
    """
    if a.shape[0] != b.shape[0]:
        raise ConfigError(f"embeddings of different sample counts: {a.shape[0]} and {b.shape[0]}")
    angles = subspace_angles(a - a.mean(axis=0), b - b.mean(axis=0))
    return np.asarray(np.degrees(angles))
