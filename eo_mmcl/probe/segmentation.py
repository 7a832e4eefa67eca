"""Segmentation probes on frozen feature maps: a per-pixel linear head and a per-pixel kNN.

Like the chip probes (:mod:`eo_mmcl.probe.classifiers`), each trains on the train split,
chooses its one hyperparameter (ridge penalty or neighbour count) on validation and is scored
once on test, by mIoU against its analytic chance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import RidgeClassifier
from sklearn.pipeline import Pipeline

from eo_mmcl.errors import SourceError
from eo_mmcl.objectives.labels import IGNORE_INDEX
from eo_mmcl.probe.classifiers import (
    K_GRID,
    ProbeResult,
    miou,
    miou_chance,
    principal_rotation,
    select_on_validation,
    with_head,
)

#: Ridge penalties tried by the segmentation head (chosen on validation).
SEG_ALPHA_GRID = (1.0, 10.0, 100.0, 1000.0)


def _pixel_features(
    dense: np.ndarray, labels: np.ndarray, per_chip: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features of sampled labelled pixels, bilinearly interpolated from the feature maps.

    Only the sampled pixels are interpolated (``grid_sample`` with border padding at their
    source coordinates: the sampling of ``interpolate(..., mode='bilinear',
    align_corners=False)``), so the full upsampled maps (N x C x H x W) are never built. Pixels
    of one chip that share their source coordinate (all of them on a 1x1 map, the clamped
    borders on larger ones) have identical features: they become one sample per class,
    weighted by its pixel count, which leaves the weighted loss unchanged.

    Returns:
        ``(features (M, C), classes (M,), weights (M,))``.
    """
    n, height, width = labels.shape
    h, w = dense.shape[-2:]
    feats, targets, weights = [], [], []
    maps = torch.from_numpy(dense)
    for i in range(n):
        rows, cols = np.nonzero(labels[i] != IGNORE_INDEX)
        if rows.size == 0:
            continue
        # On a 1x1 map every pixel has the chip's feature: all of them cost one sample per class.
        count = rows.size if h * w == 1 else min(per_chip, rows.size)
        take = rng.choice(rows.size, size=count, replace=False)
        r, c = rows[take], cols[take]
        sy = np.clip((r + 0.5) * h / height - 0.5, 0, h - 1)
        sx = np.clip((c + 0.5) * w / width - 0.5, 0, w - 1)
        keys, counts = np.unique(
            np.stack([sy, sx, labels[i, r, c]], axis=1), axis=0, return_counts=True
        )
        grid = torch.from_numpy(
            np.stack([(2 * keys[:, 1] + 1) / w - 1, (2 * keys[:, 0] + 1) / h - 1], axis=-1)
        ).float()
        sampled = F.grid_sample(
            maps[i : i + 1],
            grid.view(1, 1, -1, 2),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )  # (1, C, 1, P)
        feats.append(sampled[0, :, 0].T.numpy())
        targets.append(keys[:, 2])
        weights.append(counts)
    if not feats:
        raise SourceError("no labelled pixel to train the segmentation head on")
    return (
        np.concatenate(feats),
        np.concatenate(targets).astype(np.int64),
        np.concatenate(weights).astype(np.float64),
    )


def _predict_maps(
    model: Pipeline, dense: np.ndarray, size: tuple[int, int], num_classes: int
) -> np.ndarray:
    """Per-pixel classes of whole chips: class scores on the feature grid, then upsampled.

    Bilinear upsampling is linear with weights summing to one, so upsampling the linear head's
    scores equals applying the head to upsampled features, at a fraction of the cost.
    """
    head: RidgeClassifier = model[-1]
    n, c, h, w = dense.shape
    tokens = dense.transpose(0, 2, 3, 1).reshape(-1, c)
    scores = model.decision_function(tokens)
    if scores.ndim == 1:  # two classes: sklearn returns one column
        scores = np.stack([-scores, scores], axis=1)
    full = np.full((len(tokens), num_classes), -np.inf, dtype=np.float32)
    full[:, head.classes_] = scores
    grid = torch.from_numpy(full.reshape(n, h, w, num_classes)).permute(0, 3, 1, 2)
    return _upsampled_argmax(torch.nan_to_num(grid, neginf=-1e9), size)


def _upsampled_argmax(grid: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Per-pixel classes from (N, K, h, w) feature-grid scores: bilinear upsampling, argmax."""
    up = F.interpolate(grid, size=size, mode="bilinear", align_corners=False)
    return up.argmax(dim=1).numpy().astype(np.uint8)


def segmentation_probe(
    dense: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    num_classes: int,
    train_rows: np.ndarray | None = None,
    pixels_per_chip: int = 16,
    alpha_grid: Sequence[float] = SEG_ALPHA_GRID,
    seed: int = 0,
) -> ProbeResult:
    """A per-pixel linear head (a 1x1 convolution) on bilinearly upsampled feature maps.

    The head is a least-squares classifier (sklearn's ``RidgeClassifier``: ridge regression on
    one-hot targets, the class of the largest output wins) fitted on the features of
    ``pixels_per_chip`` labelled pixels per train chip; its penalty ``alpha`` is chosen by the
    mIoU of sampled validation pixels; the test score is the mIoU over every labelled valid
    pixel of the test chips. Least squares rather than logistic regression because it is one
    closed-form solve per ``alpha``: thousands of pixels per probe made lbfgs take seconds per
    fit, which dominated the whole probe stage; chip classification keeps logistic regression.

    Args:
        dense: (N, C, h, w) feature maps.
        labels: (N, H, W) pixel classes, ``IGNORE_INDEX`` where unlabelled or invalid.
        split: (N,) split of each chip.
        num_classes: Number of classes.
        train_rows: Rows of the train split to train on (default all).
        pixels_per_chip: Pixels sampled per train and validation chip (all on 1x1 maps).
        alpha_grid: Ridge penalties to try.
        seed: Seed of the pixel sampling and the PCA solver.

    Returns:
        The test result; ``y_pred`` holds the (N_test, H, W) predicted maps.

    Raises:
        SourceError: If a split has no labelled pixel.
    """
    rng = np.random.default_rng(seed)
    rows = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
    if train_rows is not None:
        rows["train"] = np.intersect1d(rows["train"], train_rows)
    for name, r in rows.items():
        if r.size == 0:
            raise SourceError(f"no {name} chips to probe with")
    xt, yt, wt = _pixel_features(dense[rows["train"]], labels[rows["train"]], pixels_per_chip, rng)
    xv, yv, wv = _pixel_features(dense[rows["val"]], labels[rows["val"]], pixels_per_chip, rng)
    # Pixel features are interpolations of the train chips' grid features: their span has at
    # most (chips x grid cells) dimensions, which bounds the lossless rotation.
    span = int(rows["train"].size * dense.shape[-2] * dense.shape[-1])
    rotation = principal_rotation(min(span, len(xt)), xt.shape[1], seed).fit(xt)
    zt, zv = rotation.transform(xt), rotation.transform(xv)

    def fit(alpha: float) -> tuple[object, float]:
        head = RidgeClassifier(alpha=alpha).fit(zt, yt, sample_weight=wt)
        return with_head(rotation, head), miou(yv, head.predict(zv), num_classes, wv)

    truth = labels[rows["test"]]
    if np.unique(yt).size < 2:  # one class in the train pixels: predict it everywhere
        val = miou(yv, np.full_like(yv, yt[0]), num_classes, wv)
        pred = np.full(truth.shape, yt[0], dtype=np.uint8)
        return ProbeResult(
            miou(truth, pred, num_classes), miou_chance(truth, num_classes), "miou",
            float("nan"), val, miou_chance(yv, num_classes, wv), truth, pred,
        )  # fmt: skip
    alpha, val_score, model = select_on_validation(alpha_grid, fit)
    assert isinstance(model, Pipeline)
    pred = _predict_maps(model, dense[rows["test"]], truth.shape[-2:], num_classes)
    return ProbeResult(
        miou(truth, pred, num_classes),
        miou_chance(truth, num_classes),
        "miou",
        alpha,
        float(val_score),
        miou_chance(yv, num_classes, wv),
        truth,
        pred,
    )


def _cell_classes(labels: np.ndarray, grid: tuple[int, int], num_classes: int) -> np.ndarray:
    """The majority class of the labelled pixels under each cell of a feature grid.

    Args:
        labels: (N, H, W) pixel classes, ``IGNORE_INDEX`` where unlabelled or invalid.
        grid: (h, w) of the feature maps.
        num_classes: Number of classes.

    Returns:
        (N, h, w) int64 cell classes, ``IGNORE_INDEX`` where a cell has no labelled pixel.
    """
    valid = labels != IGNORE_INDEX
    one_hot = np.zeros((labels.shape[0], num_classes, *labels.shape[1:]), dtype=np.float32)
    n, r, c = np.nonzero(valid)
    one_hot[n, labels[valid].astype(np.int64), r, c] = 1.0
    # Area pooling gives each cell the fraction of its pixels in each class (exact for a grid
    # that divides the chip, the adaptive bins otherwise).
    fractions = F.adaptive_avg_pool2d(torch.from_numpy(one_hot), grid).numpy()
    classes = fractions.argmax(axis=1).astype(np.int64)
    classes[fractions.sum(axis=1) == 0] = IGNORE_INDEX
    return classes


def _neighbour_votes(
    train: torch.Tensor, classes: torch.Tensor, query: np.ndarray, k_max: int, num_classes: int
) -> Callable[[int], torch.Tensor]:
    """Distance-weighted class votes of each query's cosine neighbours, for any ``k <= k_max``.

    Written here rather than with ``KNeighborsClassifier`` because one neighbour search then
    serves every ``k`` of the grid: the search (thousands of grid cells against ten thousand)
    is the whole cost, and sklearn repeats it per ``k`` and per predict call.

    Args:
        train: (M, C) L2-normalised train cells.
        classes: (M,) their classes.
        query: (Q, C) query cells (not normalised).
        k_max: The largest ``k`` asked for.
        num_classes: Number of classes.

    Returns:
        A function of ``k`` giving (Q, num_classes) vote weights.
    """
    q = F.normalize(torch.from_numpy(np.ascontiguousarray(query)).float(), dim=1)
    similarity, index = (q @ train.T).topk(k_max, dim=1)
    # Euclidean distance between unit vectors; inverse-distance weights as sklearn's
    # weights="distance" (an exact match takes the vote).
    distance = (2.0 - 2.0 * similarity).clamp_min(0.0).sqrt()
    weight = 1.0 / distance.clamp_min(1e-6)
    one_hot = F.one_hot(classes[index], num_classes).float()  # (Q, k_max, K)

    def votes(k: int) -> torch.Tensor:
        return (weight[:, :k, None] * one_hot[:, :k]).sum(dim=1)

    return votes


def _vote_maps(
    votes: torch.Tensor, grid: tuple[int, int, int], size: tuple[int, int]
) -> np.ndarray:
    """Per-pixel classes: the grid cells' normalised votes, bilinearly upsampled, argmax."""
    n, h, w = grid
    proba = votes / votes.sum(dim=1, keepdim=True)
    return _upsampled_argmax(proba.reshape(n, h, w, -1).permute(0, 3, 1, 2), size)


def segmentation_knn_probe(
    dense: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    num_classes: int,
    train_rows: np.ndarray | None = None,
    k_grid: Sequence[int] = K_GRID,
) -> ProbeResult:
    """A per-pixel kNN head: neighbours among the train chips' feature-grid cells.

    The non-linear counterpart of :func:`segmentation_probe`, as :func:`knn_probe` is of
    :func:`linear_probe`. A dual encoder's joint map concatenates each sensor's features, so
    no linear head can read a target that is a non-linear function of one attribute per sensor
    (the XOR of the synergy task) from it, however well both attributes are kept; neighbours
    can. Each train cell is labelled by the majority class of its pixels; a test cell's class
    probabilities (distance-weighted cosine neighbours, ``k`` chosen by the validation mIoU)
    are bilinearly upsampled to pixels and the most probable class wins.

    Args:
        dense: (N, C, h, w) feature maps.
        labels: (N, H, W) pixel classes, ``IGNORE_INDEX`` where unlabelled or invalid.
        split: (N,) split of each chip.
        num_classes: Number of classes.
        train_rows: Rows of the train split to train on (default all).
        k_grid: Neighbour counts to try (capped at the number of train cells).

    Returns:
        The test result; ``y_pred`` holds the (N_test, H, W) predicted maps.

    Raises:
        SourceError: If a split has no labelled pixel.
    """
    rows = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
    if train_rows is not None:
        rows["train"] = np.intersect1d(rows["train"], train_rows)
    for name, r in rows.items():
        if r.size == 0 or (labels[r] != IGNORE_INDEX).sum() == 0:
            raise SourceError(f"no labelled {name} pixels to probe with")
    _, c, h, w = dense.shape
    cells = _cell_classes(labels[rows["train"]], (h, w), num_classes).reshape(-1)
    tokens = dense[rows["train"]].transpose(0, 2, 3, 1).reshape(-1, c)
    keep = cells != IGNORE_INDEX
    train = F.normalize(torch.from_numpy(np.ascontiguousarray(tokens[keep])).float(), dim=1)
    classes = torch.from_numpy(cells[keep])
    ks = sorted({min(int(k), len(train)) for k in k_grid})
    size = labels.shape[-2:]

    def maps_of(split_name: str) -> Callable[[int], np.ndarray]:
        r = rows[split_name]
        query = dense[r].transpose(0, 2, 3, 1).reshape(-1, c)
        votes = _neighbour_votes(train, classes, query, ks[-1], num_classes)
        return lambda k: _vote_maps(votes(k), (r.size, h, w), size)

    val_maps, test_maps = maps_of("val"), maps_of("test")
    val_truth, truth = labels[rows["val"]], labels[rows["test"]]
    k, val_score, _ = select_on_validation(
        ks, lambda k: (None, miou(val_truth, val_maps(int(k)), num_classes))
    )
    pred = test_maps(int(k))
    return ProbeResult(
        miou(truth, pred, num_classes),
        miou_chance(truth, num_classes),
        "miou",
        k,
        float(val_score),
        miou_chance(val_truth, num_classes),
        truth,
        pred,
    )
