"""The simulator's information structure, measured from per-parcel mean features.

Each parcel's S2 features are its mean log-reflectance per band; its S1 features are its mean
backscatter (dB of the mean linear power) after S1 is resampled onto the S2 grid with rasterio.
Cross-validated balanced accuracy of simple classifiers then tells which sensor carries which
attribute, at the simulator's default number of classes per unique attribute (K = 2: the
synergy target is then the XOR of the two binary attributes). Tolerances: "at chance" means
within CHANCE_TOL of 1/K (about 4 standard errors at roughly 800 parcels); "well above" means at
least ABOVE_MARGIN over chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from eo_mmcl.simulate import SimulationConfig, simulate_scenes

CHANCE_TOL = 0.07
ABOVE_MARGIN = 0.2
MIN_PIXELS = 50
#: Chance balanced accuracy of the unique and synergy tasks at the simulator's defaults.
UNIQUE_CHANCE = 1 / SimulationConfig().unique_classes


def _parcel_features(scene_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    scene = simulate_scenes(scene_dir, SimulationConfig(**_INFO_KNOBS))[0]
    with rasterio.open(scene.s2) as ds:
        s2 = ds.read().astype(np.float64) / 10_000
        dst_transform, dst_crs = ds.transform, ds.crs
    with rasterio.open(scene.parcel_ids) as ds:
        parcel = ds.read(1)
    s1_power = np.full((2, *parcel.shape), np.nan, dtype=np.float32)
    with rasterio.open(scene.s1) as ds:
        reproject(
            10 ** (ds.read() / 10),  # average backscatter in linear power, not in dB
            s1_power,
            src_transform=ds.transform,
            src_crs=ds.crs,
            dst_transform=dst_transform,
            dst_crs=dst_crs,
            resampling=Resampling.bilinear,
            src_nodata=np.nan,
            dst_nodata=np.nan,
        )
    flat = parcel.ravel()
    n = int(flat.max()) + 1
    s1_ok = np.isfinite(s1_power).all(axis=0).ravel()
    count_s2 = np.bincount(flat, minlength=n)
    count_s1 = np.bincount(flat[s1_ok], minlength=n)

    def mean(values: np.ndarray, ok: np.ndarray | None, count: np.ndarray) -> np.ndarray:
        sel = flat if ok is None else flat[ok]
        v = values.ravel() if ok is None else values.ravel()[ok]
        return np.bincount(sel, weights=v, minlength=n) / np.maximum(count, 1)

    f2 = np.log(np.stack([mean(b, None, count_s2) for b in s2], axis=1) + 1e-6)
    f1 = 10 * np.log10(np.stack([mean(b, s1_ok, count_s1) for b in s1_power], axis=1) + 1e-12)
    keep = (count_s2 >= MIN_PIXELS) & (count_s1 >= MIN_PIXELS)
    labels = {}
    for task, path in scene.labels.items():
        with rasterio.open(path) as ds:
            values = ds.read(1).ravel()
        # Labels are constant per parcel: any pixel's value is the parcel's.
        per_parcel = np.zeros(n, dtype=np.int64)
        per_parcel[flat] = values
        labels[task] = per_parcel[keep]
    features = {"s1": f1[keep], "s2": f2[keep], "both": np.hstack([f1[keep], f2[keep]])}
    return features, labels


# No clouds and no land-cover change: this test measures what each sensor carries, not the
# misalignment knobs (those have their own tests).
_INFO_KNOBS = {"size": 1024, "seed": 11, "parcel_size": 32, "cloud_fraction": 0.0,
               "change_fraction": 0.0}  # fmt: skip


@pytest.fixture(scope="module")
def parcel_data(tmp_path_factory: pytest.TempPathFactory):
    return _parcel_features(tmp_path_factory.mktemp("info"))


def _score(model, x: np.ndarray, y: np.ndarray) -> float:
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    return float(cross_val_score(model, x, y, cv=cv, scoring="balanced_accuracy").mean())


def _linear():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))


def _mlp():
    return make_pipeline(
        StandardScaler(),
        MLPClassifier((64, 64), alpha=1e-3, max_iter=3000, random_state=0),
    )


def test_enough_parcels(parcel_data) -> None:
    features, _ = parcel_data
    assert len(features["s2"]) >= 600


def test_landcover_from_either_sensor(parcel_data) -> None:
    features, labels = parcel_data
    chance = 1 / 6
    for sensor in ("s1", "s2"):
        assert _score(_linear(), features[sensor], labels["landcover"]) > chance + 0.45


def test_optical_unique_only_in_s2(parcel_data) -> None:
    features, labels = parcel_data
    chance = UNIQUE_CHANCE
    from_s2 = _score(_linear(), features["s2"], labels["s2_unique"])
    from_s1 = _score(_linear(), features["s1"], labels["s2_unique"])
    assert from_s2 > chance + ABOVE_MARGIN, from_s2
    assert abs(from_s1 - chance) < CHANCE_TOL, from_s1


def test_sar_unique_only_in_s1(parcel_data) -> None:
    features, labels = parcel_data
    chance = UNIQUE_CHANCE
    from_s1 = _score(_linear(), features["s1"], labels["s1_unique"])
    from_s2 = _score(_linear(), features["s2"], labels["s1_unique"])
    assert from_s1 > chance + ABOVE_MARGIN, from_s1
    assert abs(from_s2 - chance) < CHANCE_TOL, from_s2


def test_synergy_needs_both_sensors(parcel_data) -> None:
    features, labels = parcel_data
    chance = UNIQUE_CHANCE
    # The synergy target is a modular sum (XOR at K = 2): only a nonlinear classifier can read
    # it, so the same small MLP is used for all three inputs.
    scores = {k: _score(_mlp(), features[k], labels["synergy"]) for k in ("s1", "s2", "both")}
    assert abs(scores["s1"] - chance) < CHANCE_TOL, scores
    assert abs(scores["s2"] - chance) < CHANCE_TOL, scores
    assert scores["both"] > chance + 0.15, scores


def test_defaults_are_two_classes_per_unique_attribute() -> None:
    # The instrument's readability at the demo's chip size rests on this default (issue 13):
    # with four classes the unique tasks' ceilings covered under 0.6 of the range above chance.
    assert SimulationConfig().unique_classes == 2
