"""Probes: how much of each ground-truth factor a frozen embedding holds, as held-out R^2.

Two probes: a linear one (ridge regression, the natural probe for linear encoders and what a
downstream linear head can use) and a nonlinear one (RBF kernel ridge, which also counts
information stored nonlinearly, as an MLP encoder may). Both fit on the training split and
score the held-out split, one R^2 per factor. R^2 is not clipped: a value below 0 means the
probe predicts worse than the mean, i.e. the factor is absent.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

from eo_mmcl.errors import ConfigError
from eo_mmcl.theory.data import FloatArray

#: Probe names as written in the results.
LINEAR_PROBE, KERNEL_PROBE = "linear", "kernel"
PROBES: Final[tuple[str, ...]] = (LINEAR_PROBE, KERNEL_PROBE)

#: Kernel ridge scales as n^3; this many training rows keep a probe under a second.
KERNEL_MAX_FIT: Final[int] = 1500

#: Validation grid of the kernel probe: ridge penalty and RBF width (gamma times the input dim).
KERNEL_ALPHAS: Final[tuple[float, ...]] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
KERNEL_GAMMA_SCALES: Final[tuple[float, ...]] = (0.25, 1.0, 4.0)


def standardise(train: FloatArray, test: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Scale embedding coordinates to the training split's zero mean and unit variance.

    Args:
        train: Training embeddings, shape (n, D).
        test: Held-out embeddings, shape (m, D).

    Returns:
        Both, standardised with the training statistics. Constant coordinates stay zero.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    # A dead coordinate (e.g. a collapsed unit) carries nothing; avoid dividing by zero.
    std = np.where(std > 1e-12, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def linear_probe_r2(
    train_z: FloatArray,
    train_y: FloatArray,
    test_z: FloatArray,
    test_y: FloatArray,
    alpha: float = 1e-3,
) -> FloatArray:
    """Held-out R^2 of a ridge regression of every factor on the embedding.

    Args:
        train_z: Training embeddings, shape (n, D).
        train_y: Training factors, shape (n, F).
        test_z: Held-out embeddings, shape (m, D).
        test_y: Held-out factors, shape (m, F).
        alpha: Ridge penalty (on standardised inputs; small, it only guards collinearity).

    Returns:
        R^2 per factor, shape (F,).
    """
    train_s, test_s = standardise(train_z, test_z)
    model = Ridge(alpha=alpha).fit(train_s, train_y)
    return np.asarray(r2_score(test_y, model.predict(test_s), multioutput="raw_values"))


def squared_distances(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise squared Euclidean distances between rows.

    Args:
        a: Shape (n, D).
        b: Shape (m, D).

    Returns:
        Shape (n, m), clipped at 0 against rounding.
    """
    sq = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return np.maximum(sq, 0.0)


def kernel_ridge_predict(
    kernel_fit: FloatArray, kernel_eval: FloatArray, y: FloatArray, alpha: float
) -> FloatArray:
    """Kernel ridge regression from precomputed kernel matrices.

    Solves ``(K + alpha I) c = y - mean(y)`` by Cholesky and predicts ``K_eval c + mean(y)``.

    Args:
        kernel_fit: Kernel among the fitting rows, shape (n, n) (not modified).
        kernel_eval: Kernel from the rows to predict to the fitting rows, shape (m, n).
        y: Fitting targets, shape (n, F).
        alpha: Ridge penalty.

    Returns:
        Predictions, shape (m, F).
    """
    mean = y.mean(axis=0)
    regularised = kernel_fit + alpha * np.eye(kernel_fit.shape[0])
    coef = cho_solve(cho_factor(regularised, lower=True), y - mean)
    return np.asarray(kernel_eval @ coef + mean)


def kernel_probe_r2(
    train_z: FloatArray,
    train_y: FloatArray,
    test_z: FloatArray,
    test_y: FloatArray,
    max_fit: int = KERNEL_MAX_FIT,
) -> FloatArray:
    """Held-out R^2 of an RBF kernel ridge regression of every factor on the embedding.

    Penalty and width are picked per factor on a validation quarter of the fitting rows (an
    absent factor needs a strong penalty, or the probe fits noise; a present one a weak
    penalty), then each factor is refitted on all fitting rows with its own choice. Fitting
    rows are the first ``max_fit`` training rows (rows are i.i.d., so a random subsample).

    Args:
        train_z: Training embeddings, shape (n, D).
        train_y: Training factors, shape (n, F).
        test_z: Held-out embeddings, shape (m, D).
        test_y: Held-out factors, shape (m, F).
        max_fit: Largest number of training rows used.

    Returns:
        R^2 per factor, shape (F,).

    Raises:
        ConfigError: If fewer than 8 training rows are given.
    """
    n = min(train_z.shape[0], max_fit)
    if n < 8:
        raise ConfigError(f"the kernel probe needs >= 8 training rows, got {n}")
    fit_s, test_s = standardise(train_z[:n], test_z)
    fit_y = train_y[:n]
    n_val = n // 4
    dim = train_z.shape[1]
    gammas = [1.0 / (scale * dim) for scale in KERNEL_GAMMA_SCALES]
    grid = [(alpha, gamma) for gamma in gammas for alpha in KERNEL_ALPHAS]
    inner, held = fit_s[n_val:], fit_s[:n_val]
    dist_inner, dist_held = squared_distances(inner, inner), squared_distances(held, inner)
    scores = []  # (grid, F), in grid order
    for gamma in gammas:
        # One kernel per width serves every penalty.
        k_inner, k_held = np.exp(-gamma * dist_inner), np.exp(-gamma * dist_held)
        for alpha in KERNEL_ALPHAS:
            predicted = kernel_ridge_predict(k_inner, k_held, fit_y[n_val:], alpha)
            scores.append(r2_score(fit_y[:n_val], predicted, multioutput="raw_values"))
    best = np.stack(scores).argmax(axis=0)  # (F,)
    dist_fit, dist_test = squared_distances(fit_s, fit_s), squared_distances(test_s, fit_s)
    r2 = np.empty(train_y.shape[1])
    for choice in np.unique(best):
        alpha, gamma = grid[choice]
        columns = best == choice
        predicted = kernel_ridge_predict(
            np.exp(-gamma * dist_fit), np.exp(-gamma * dist_test), fit_y[:, columns], alpha
        )
        r2[columns] = r2_score(test_y[:, columns], predicted, multioutput="raw_values")
    return r2


def probe_r2(
    probe: str,
    train_z: FloatArray,
    train_y: FloatArray,
    test_z: FloatArray,
    test_y: FloatArray,
) -> FloatArray:
    """Run a probe by name.

    Args:
        probe: One of :data:`PROBES`.
        train_z: Training embeddings, shape (n, D).
        train_y: Training factors, shape (n, F).
        test_z: Held-out embeddings, shape (m, D).
        test_y: Held-out factors, shape (m, F).

    Returns:
        R^2 per factor, shape (F,).

    Raises:
        ConfigError: If the probe name is unknown.
    """
    if probe == LINEAR_PROBE:
        return linear_probe_r2(train_z, train_y, test_z, test_y)
    if probe == KERNEL_PROBE:
        return kernel_probe_r2(train_z, train_y, test_z, test_y)
    raise ConfigError(f"unknown probe {probe!r}; choose from {', '.join(PROBES)}")
