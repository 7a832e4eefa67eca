"""Probes on frozen embeddings: linear, kNN, and per-pixel linear and kNN segmentation heads.

Every probe trains on the train split only, chooses its one hyperparameter (the inverse
regularisation ``C``, the neighbour count ``k`` or the ridge penalty ``alpha``) on the
validation split only, and is scored
once on the test split. Scores: balanced accuracy (chip classification), mIoU (segmentation),
mAP (multi-label). Chance levels are analytic, never fitted:

- balanced accuracy: ``1/K`` over the K classes present in the test labels (what a constant or
  uniformly random prediction scores);
- mIoU: the expected mIoU of a uniformly random per-pixel prediction given the test class
  frequencies, ``mean_k (p_k/K) / (p_k + 1/K - p_k/K)``;
- mAP: the mean test prevalence of the classes scored (the AP of a random ranking).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, balanced_accuracy_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from eo_mmcl.errors import SourceError
from eo_mmcl.objectives.labels import IGNORE_INDEX

#: Inverse regularisation strengths tried by the linear probes (chosen on validation).
C_GRID = (0.01, 0.1, 1.0, 10.0)
#: Neighbour counts tried by the kNN probe (chosen on validation).
K_GRID = (5, 10, 20)


@dataclass
class ProbeResult:
    """The test score of one probe fit.

    Args:
        score: Test score (balanced accuracy, mIoU or mAP).
        chance: Chance level of that score on this test split.
        metric: ``balanced_accuracy``, ``miou`` or ``map``.
        param: The hyperparameter chosen on validation (``C``, ``k`` or ``alpha``).
        val_score: The validation score of that choice.
        val_chance: Chance level of the score on the validation split (what the validation
            survival, by which the report chooses its cells, is measured against).
        y_true: Test targets (chip classes; empty for other kinds).
        y_pred: Test predictions (chip classes, or (N, H, W) pixel classes for segmentation).
    """

    score: float
    chance: float
    metric: str
    param: float
    val_score: float
    val_chance: float = float("nan")
    y_true: np.ndarray = field(default_factory=lambda: np.empty(0))
    y_pred: np.ndarray = field(default_factory=lambda: np.empty(0))


def balanced_accuracy_chance(y_true: np.ndarray) -> float:
    """Balanced accuracy of a constant (or uniformly random) prediction: 1/K_present."""
    return 1.0 / max(len(np.unique(y_true)), 1)


def miou(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    num_classes: int,
    weights: np.ndarray | None = None,
) -> float:
    """Mean IoU over the classes present in the truth or the prediction.

    Args:
        y_true: Labels (any shape), ``IGNORE_INDEX`` ignored.
        y_pred: Predictions, same shape.
        num_classes: Number of classes.
        weights: Optional pixel count of each entry (same shape).

    Returns:
        The mIoU (0 when nothing is labelled).
    """
    keep = y_true != IGNORE_INDEX
    t, p = y_true[keep].astype(np.int64), y_pred[keep].astype(np.int64)
    if t.size == 0:
        return 0.0
    counts = None if weights is None else np.asarray(weights)[keep]
    # One bincount of the joint labels gives the confusion matrix (sklearn's jaccard warns
    # on every absent class, and this runs on every probe fit).
    confusion = np.bincount(t * num_classes + p, weights=counts, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean())


def miou_chance(y_true: np.ndarray, num_classes: int, weights: np.ndarray | None = None) -> float:
    """Expected mIoU of a uniformly random prediction over ``num_classes`` classes.

    Args:
        y_true: Labels (any shape), ``IGNORE_INDEX`` ignored.
        num_classes: Number of classes.
        weights: Optional pixel count of each entry (same shape).

    Returns:
        The chance mIoU (0 when nothing is labelled).
    """
    keep = y_true != IGNORE_INDEX
    t = y_true[keep].astype(np.int64)
    if t.size == 0:
        return 0.0
    counts = np.bincount(
        t, weights=None if weights is None else np.asarray(weights)[keep], minlength=num_classes
    )
    p = counts / counts.sum()
    q = 1.0 / num_classes
    # Every class is predicted (q > 0), so every class enters the mean.
    return float(np.mean(p * q / (p + q - p * q)))


def map_score(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Macro mAP over classes with at least one positive test chip, and its chance level.

    Args:
        y_true: (N, K) multi-hot.
        scores: (N, K) scores.

    Returns:
        ``(mAP, mean prevalence)`` over the scored classes.
    """
    scored = y_true.sum(0) > 0
    if not scored.any():
        return 0.0, 0.0
    ap = average_precision_score(y_true[:, scored], scores[:, scored], average="macro")
    return float(ap), float(y_true[:, scored].mean())


def _map_chance(y_true: np.ndarray) -> float:
    """MAP of a random ranking: the mean prevalence of the classes with a positive chip."""
    scored = y_true.sum(0) > 0
    return float(y_true[:, scored].mean()) if scored.any() else 0.0


def _split(
    x: np.ndarray, y: np.ndarray, split: np.ndarray, train_rows: np.ndarray | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    labelled = (y >= 0) if y.ndim == 1 else np.ones(len(y), dtype=bool)
    parts = {}
    for name in ("train", "val", "test"):
        rows = np.flatnonzero((split == name) & labelled)
        if name == "train" and train_rows is not None:
            rows = np.intersect1d(rows, train_rows)
        if rows.size == 0:
            raise SourceError(f"no labelled {name} chips to probe with")
        parts[name] = (x[rows], y[rows])
    return parts


def select_on_validation(
    candidates: Sequence[float], fit_and_score: Callable[[float], tuple[object, float]]
) -> tuple[float, float, object]:
    """The hyperparameter whose fit scores best on the validation split (first of ties).

    Args:
        candidates: Values to try, in order.
        fit_and_score: Fits with one value; returns the model and its validation score.

    Returns:
        The value chosen, its validation score and its model.
    """
    best: tuple[float, float, object] | None = None
    for value in candidates:
        with warnings.catch_warnings():  # classes predicted but absent from the truth
            warnings.simplefilter("ignore", UserWarning)
            model, score = fit_and_score(value)
        if best is None or score > best[1]:
            best = (value, score, model)
    assert best is not None
    return best


def principal_rotation(n_train: int, dim: int, seed: int) -> Pipeline:
    """Standardise, then rotate onto the training data's principal axes.

    With fewer training samples than dimensions, the L2-regularised logistic regression solution
    lies in the span of the (centred) training samples, so keeping every principal axis of that
    span loses nothing while the solver works in ``n_train`` instead of ``dim`` dimensions (many
    times faster on 1024-wide embeddings of a few hundred chips). Fitted once per probe, shared
    by every ``C`` tried.
    """
    return make_pipeline(StandardScaler(), PCA(n_components=min(n_train, dim), random_state=seed))


def with_head(rotation: Pipeline, head: Any) -> Pipeline:
    """The fitted rotation and a head fitted on its output, as one predicting pipeline."""
    return Pipeline([*rotation.steps, ("head", head)])


def _constant(
    xt: np.ndarray, yt: np.ndarray, xv: np.ndarray, yv: np.ndarray
) -> tuple[object, float]:
    """A most-frequent-class predictor and its validation balanced accuracy."""
    model = make_pipeline(DummyClassifier(strategy="most_frequent")).fit(xt, yt)
    return model, float(balanced_accuracy_score(yv, model.predict(xv)))


def _fit_quietly(model: Any, x: np.ndarray, y: np.ndarray) -> None:
    # lbfgs may stop at max_iter on strongly regularised grids; the validation choice already
    # accounts for an under-fitted model, so the warning is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)


def linear_probe(
    x: np.ndarray,
    y: np.ndarray,
    split: np.ndarray,
    train_rows: np.ndarray | None = None,
    c_grid: Sequence[float] = C_GRID,
    seed: int = 0,
) -> ProbeResult:
    """Logistic regression on standardised embeddings, ``C`` chosen on validation.

    Args:
        x: (N, D) embeddings.
        y: (N,) chip classes (-1 = unlabelled), or (N, K) multi-hot (scored with mAP).
        split: (N,) split of each chip.
        train_rows: Rows of the train split to train on (a seed's subsample; default all).
        c_grid: Inverse regularisation strengths to try.
        seed: Seed of the solver.

    Returns:
        The test result.

    Raises:
        SourceError: If a split has no labelled chip.
    """
    parts = _split(x, y, split, train_rows)
    (xt, yt), (xv, yv), (xs, ys) = parts["train"], parts["val"], parts["test"]
    multilabel = y.ndim == 2

    rotation = principal_rotation(len(xt), xt.shape[1], seed).fit(xt)
    zt, zv = rotation.transform(xt), rotation.transform(xv)

    previous: list[LogisticRegression] = []

    def fit(c: float) -> tuple[object, float]:
        # Warm start from the previous (stronger-regularised) C's solution: the problem is
        # strictly convex, so the optimum is the same, reached in a fraction of the lbfgs
        # iterations of a cold start (the linear probe was most of the probe stage's time).
        head: LogisticRegression | OneVsRestClassifier
        if previous and not multilabel:
            head = copy.deepcopy(previous[-1]).set_params(C=c, warm_start=True)
        else:
            head = LogisticRegression(C=c, max_iter=500, random_state=seed)
        if not multilabel:
            previous.append(head)
        if multilabel:
            head = OneVsRestClassifier(head)
            _fit_quietly(head, zt, yt)
            return with_head(rotation, head), map_score(yv, head.predict_proba(zv))[0]
        _fit_quietly(head, zt, yt)
        return with_head(rotation, head), balanced_accuracy_score(yv, head.predict(zv))

    if not multilabel and np.unique(yt).size < 2:
        # One class in the train chips (tiny stores): the only honest prediction is that class.
        c_grid = (float("nan"),)
        fit = lambda c: _constant(xt, yt, xv, yv)  # noqa: E731
    c, val_score, model = select_on_validation(sorted(c_grid), fit)
    if multilabel:
        score, chance = map_score(ys, model.predict_proba(xs))  # type: ignore[attr-defined]
        return ProbeResult(score, chance, "map", c, float(val_score), _map_chance(yv))
    pred = model.predict(xs)  # type: ignore[attr-defined]
    with warnings.catch_warnings():  # a class predicted but absent from the truth
        warnings.simplefilter("ignore", UserWarning)
        score = float(balanced_accuracy_score(ys, pred))
    return ProbeResult(
        score, balanced_accuracy_chance(ys), "balanced_accuracy", c, float(val_score),
        balanced_accuracy_chance(yv), ys, pred,
    )  # fmt: skip


def knn_probe(
    x: np.ndarray,
    y: np.ndarray,
    split: np.ndarray,
    train_rows: np.ndarray | None = None,
    k_grid: Sequence[int] = K_GRID,
) -> ProbeResult:
    """K nearest neighbours by cosine similarity (distance-weighted), ``k`` chosen on validation.

    Args:
        x: (N, D) embeddings.
        y: (N,) chip classes (-1 = unlabelled), or (N, K) multi-hot (scored with mAP).
        split: (N,) split of each chip.
        train_rows: Rows of the train split to train on (default all).
        k_grid: Neighbour counts to try (capped at the train size).

    Returns:
        The test result.

    Raises:
        SourceError: If a split has no labelled chip.
    """
    parts = _split(x, y, split, train_rows)
    (xt, yt), (xv, yv), (xs, ys) = parts["train"], parts["val"], parts["test"]
    multilabel = y.ndim == 2
    ks = sorted({min(int(k), len(xt)) for k in k_grid})

    def proba(model: Pipeline, data: np.ndarray) -> np.ndarray:
        # sklearn returns one (N, 2) array per label for multi-label targets.
        out = model.predict_proba(data)
        return np.stack([p[:, -1] for p in out], axis=1)

    def fit(k: float) -> tuple[object, float]:
        # L2-normalised vectors: Euclidean neighbours are cosine neighbours.
        model = make_pipeline(Normalizer(), KNeighborsClassifier(int(k), weights="distance"))
        model.fit(xt, yt)
        if multilabel:
            return model, map_score(yv, proba(model, xv))[0]
        return model, balanced_accuracy_score(yv, model.predict(xv))

    k, val_score, model = select_on_validation(ks, fit)
    assert isinstance(model, Pipeline)
    if multilabel:
        score, chance = map_score(ys, proba(model, xs))
        return ProbeResult(score, chance, "map", k, float(val_score), _map_chance(yv))
    pred = model.predict(xs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        score = float(balanced_accuracy_score(ys, pred))
    return ProbeResult(
        score, balanced_accuracy_chance(ys), "balanced_accuracy", k, float(val_score),
        balanced_accuracy_chance(yv), ys, pred,
    )  # fmt: skip
