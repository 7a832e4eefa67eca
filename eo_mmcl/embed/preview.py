"""False-colour previews: the first three principal components of an embedding raster as RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import Resampling
from scipy.sparse.linalg import svds

from eo_mmcl.io.atomic import atomic_output

#: Longest side of a preview; larger rasters are read from their overviews (decimated reads).
PREVIEW_MAX_PX = 1024
#: Pixels sampled to fit the principal components.
PCA_SAMPLES = 50_000


def principal_components(
    pixels: np.ndarray, n: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the first ``n`` principal axes of pixel vectors.

    Args:
        pixels: ``(N, D)`` finite values.
        n: Components.
        seed: Seed of the subsample.

    Returns:
        ``(mean (D,), axes (n, D))``; missing axes (D < n) are zero.
    """
    rng = np.random.default_rng(seed)
    sample = pixels[rng.permutation(len(pixels))[:PCA_SAMPLES]].astype(np.float64)
    mean = sample.mean(axis=0)
    centred = sample - mean
    axes = np.zeros((n, pixels.shape[1]))
    if min(centred.shape) > n + 1:
        # Only the leading singular vectors are needed: ARPACK (scipy) finds them in a fraction
        # of the time of a full SVD of a (pixels x 1024) matrix.
        _, values, vt = svds(centred, k=n, random_state=seed)
        order = np.argsort(values)[::-1]  # svds returns them in ascending order
        axes[:] = vt[order]
    else:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        axes[: min(n, len(vt))] = vt[:n]
    return mean, axes


def pca_preview(raster: str | Path, png: str | Path) -> Path:
    """Write the first three principal components of an embedding raster as an RGBA PNG.

    Each component is stretched linearly between its 2nd and 98th percentiles; nodata pixels
    are transparent.

    Args:
        raster: The embedding raster.
        png: Output PNG (written atomically).

    Returns:
        The PNG path.
    """
    with rasterio.open(raster) as ds:
        factor = max(1, int(np.ceil(max(ds.width, ds.height) / PREVIEW_MAX_PX)))
        shape = (ds.count, max(1, ds.height // factor), max(1, ds.width // factor))
        data = ds.read(out_shape=shape, masked=True, resampling=Resampling.average)
        scales = np.asarray(ds.scales, dtype=np.float64)[:, None, None]
        offsets = np.asarray(ds.offsets, dtype=np.float64)[:, None, None]
    # To float before filling: an 8-bit masked array cannot hold NaN.
    values = data.astype(np.float64).filled(np.nan) * scales + offsets
    valid = np.all(np.isfinite(values), axis=0)
    rgba = np.zeros((*valid.shape, 4), dtype=np.uint8)
    if valid.any():
        pixels = values[:, valid].T  # (N, D)
        mean, axes = principal_components(pixels)
        scores = (pixels - mean) @ axes.T  # (N, 3)
        low, high = np.percentile(scores, [2, 98], axis=0)
        stretched = np.clip((scores - low) / np.maximum(high - low, 1e-12), 0.0, 1.0)
        rgba[valid, :3] = np.rint(stretched * 255).astype(np.uint8)
        rgba[valid, 3] = 255
    with atomic_output(png) as tmp:
        Image.fromarray(rgba, mode="RGBA").save(tmp, format="PNG")
    return Path(png)
