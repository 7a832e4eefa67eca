"""The report's figures: survival bars, confusion matrices, PCA previews and error maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.metrics import confusion_matrix

from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.probe.tasks import GROUP_NAMES
from eo_mmcl.report.tables import MainTable

NODATA = 255


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def survival_bars(main: MainTable, path: Path) -> Path:
    """Grouped bars: survival per group (x) and objective (bars), error bars = std over seeds.

    Args:
        main: The main table.
        path: Output PNG.

    Returns:
        The path.
    """
    objectives = list(main.survival.index)
    groups = main.groups
    width = 0.8 / max(len(objectives), 1)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(groups), 3.6))
    for i, objective in enumerate(objectives):
        x = np.arange(len(groups)) + (i - (len(objectives) - 1) / 2) * width
        ax.bar(
            x,
            main.survival.loc[objective].to_numpy(dtype=float),
            width,
            yerr=main.survival_std.loc[objective].to_numpy(dtype=float),
            label=objective,
            capsize=2,
            hatch="//" if objective.startswith("random-init") else None,
        )
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(groups)), [f"{g}\n{GROUP_NAMES.get(g, g)}" for g in groups])
    ax.set_ylabel("survival (best probe)")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def confusion_matrices(
    predictions: pd.DataFrame,
    task: str,
    probe: str,
    depth: str,
    path: Path,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> Path | None:
    """Confusion matrices of one task's test predictions, one panel per objective (seed 0).

    Every panel has the same rows and columns: all ``num_classes`` classes (also those absent
    from the test chips), labelled by name where the task names them.

    Args:
        predictions: ``predictions.parquet``.
        task: The task.
        probe: The probe.
        depth: The depth.
        path: Output PNG.
        num_classes: Classes of the task (default: those seen in the predictions).
        class_names: Name of each class (default: its number).

    Returns:
        The path, or None without predictions.
    """
    rows = predictions[
        (predictions["task"] == task)
        & (predictions["probe"] == probe)
        & (predictions["depth"] == depth)
    ]
    objectives = list(dict.fromkeys(rows["objective"]))
    if not objectives:
        return None
    classes = np.union1d(rows["y_true"].unique(), rows["y_pred"].unique())
    if num_classes:
        classes = np.union1d(np.arange(num_classes), classes)
    names = [
        str(class_names[c]) if class_names and 0 <= c < len(class_names) else str(c)
        for c in classes.astype(int)
    ]
    fig, axes = plt.subplots(1, len(objectives), figsize=(2.6 * len(objectives), 2.6))
    for ax, objective in zip(np.atleast_1d(axes), objectives, strict=True):
        sel = rows[rows["objective"] == objective]
        matrix = confusion_matrix(sel["y_true"], sel["y_pred"], labels=classes)
        ax.imshow(matrix, cmap="Blues")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
        ax.set_title(objective, fontsize=8)
        ax.set_xticks(range(len(classes)), names, fontsize=6, rotation=90 if class_names else 0)
        ax.set_yticks(range(len(classes)), names, fontsize=6)
        ax.set_xlabel("predicted", fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel("true", fontsize=7)
    fig.suptitle(f"{task}: {probe} probe, {depth} depth, test chips", fontsize=9)
    return _save(fig, path)


def _mosaic(chips: pd.DataFrame, values: np.ndarray, chip_size: int) -> np.ndarray:
    """Lay per-chip arrays (N, H, W[, C]) on one scene's pixel grid (NaN elsewhere)."""
    height = int(chips["row_off"].max()) + chip_size
    width = int(chips["col_off"].max()) + chip_size
    extra = values.shape[3:]
    canvas = np.full((height, width, *extra), np.nan, dtype=np.float32)
    for (row, col), value in zip(
        chips[["row_off", "col_off"]].to_numpy(dtype=int), values, strict=True
    ):
        canvas[row : row + chip_size, col : col + chip_size] = value
    return canvas


def pca_previews(
    chips: pd.DataFrame, embeddings: dict[str, np.ndarray], chip_size: int, path: Path
) -> Path | None:
    """First three principal components of each objective's chip embeddings as RGB chips.

    Args:
        chips: Chip positions (``chips.parquet``: scene, row_off, col_off), embedding order.
        embeddings: Objective -> (N, D) chip embeddings.
        chip_size: Chip side in pixels.
        path: Output PNG.

    Returns:
        The path, or None when chips have no position.
    """
    if not embeddings or "scene" not in chips:
        return None
    scene = chips["scene"].iloc[0]
    on_scene = (chips["scene"] == scene).to_numpy()
    fig, axes = plt.subplots(1, len(embeddings), figsize=(3 * len(embeddings), 3.2))
    for ax, (objective, x) in zip(np.atleast_1d(axes), embeddings.items(), strict=True):
        comps = PCA(n_components=3, random_state=0).fit_transform(x)
        lo, hi = np.percentile(comps, 2, axis=0), np.percentile(comps, 98, axis=0)
        rgb = np.clip((comps - lo) / np.maximum(hi - lo, 1e-9), 0, 1)
        tiles = np.broadcast_to(
            rgb[on_scene, None, None, :], (on_scene.sum(), chip_size, chip_size, 3)
        )
        ax.imshow(np.nan_to_num(_mosaic(chips[on_scene], tiles, chip_size), nan=1.0))
        ax.set_title(objective, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"Embedding PCA (RGB = PC1-3), scene {scene}, every chip", fontsize=9)
    return _save(fig, path)


def error_maps(
    chips: pd.DataFrame,
    truth: np.ndarray,
    predictions: dict[str, np.ndarray],
    test_rows: np.ndarray,
    chip_size: int,
    task: str,
    path: Path,
) -> Path | None:
    """Truth, predicted classes and errors of one task on the test chips of the first scene.

    Args:
        chips: Chip positions, in the order of ``truth``.
        truth: (N, H, W) pixel labels of every chip.
        predictions: Objective -> (N_test, H, W) predicted maps of the test chips.
        test_rows: Rows of ``chips`` that the predictions cover.
        chip_size: Chip side in pixels.
        task: Task name for the title.
        path: Output PNG.

    Returns:
        The path, or None when there is nothing to draw.
    """
    if not predictions or "scene" not in chips or test_rows.size == 0:
        return None
    scenes = chips["scene"].to_numpy()[test_rows]
    scene = scenes[0]
    keep = scenes == scene
    rows = test_rows[keep]
    sub = chips.iloc[rows]
    true = truth[rows].astype(np.float32)
    true[true == NODATA] = np.nan
    k = int(np.nanmax(truth[truth != NODATA])) + 1 if (truth != NODATA).any() else 1
    n = len(predictions)
    fig, axes = plt.subplots(n, 3, figsize=(8, 2.6 * n), squeeze=False)
    full_true = _mosaic(sub, true, chip_size)
    for i, (objective, pred) in enumerate(predictions.items()):
        p = pred[keep].astype(np.float32)
        p[np.isnan(true)] = np.nan
        err = np.where(np.isnan(true), np.nan, (p != true).astype(np.float32))
        panels = [
            (full_true, "truth", "tab10", (0, max(k - 1, 1))),
            (_mosaic(sub, p, chip_size), f"{objective}: prediction", "tab10", (0, max(k - 1, 1))),
            (_mosaic(sub, err, chip_size), f"error {np.nanmean(err):.0%}", "Reds", (0, 1)),
        ]
        for ax, (image, title, cmap, (vmin, vmax)) in zip(axes[i], panels, strict=True):
            ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"{task}: segmentation head, test chips of {scene}", fontsize=9)
    return _save(fig, path)
