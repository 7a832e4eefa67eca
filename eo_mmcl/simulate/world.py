"""The latent world: parcels with shared, optical-only, SAR-only and synergistic attributes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from eo_mmcl.simulate.fields import MapCoordinates, RandomFourierField
from eo_mmcl.simulate.landcover import LANDCOVER_CLASSES, LANDCOVER_PRIOR


@dataclass(frozen=True)
class ParcelAttributes:
    """Latent attributes, one entry per parcel.

    Args:
        landcover_s2: Land cover at the S2 date (the ``landcover`` task, shared information).
        landcover_s1: Land cover at the S1 date (differs where ``changed``).
        changed: Whether the parcel's land cover changed between the two dates.
        s2_unique: Optical-only attribute class (pigment/turbidity; never seen by S1).
        s1_unique: SAR-only attribute class (soil moisture; never seen by S2).
        synergy: ``(s1_unique + s2_unique) % K``: independent of each unique attribute alone.
        brightness: Multiplicative optical brightness (illumination, soil background).
        vigour: Vegetation vigour / phenology anomaly (standard normal).
        band_jitter: Relative per-band reflectance deviation, shape (P, 12).
        sar_jitter_db: Per-parcel (VV, VH) backscatter deviation in dB, shape (P, 2).
    """

    landcover_s2: np.ndarray
    landcover_s1: np.ndarray
    changed: np.ndarray
    s2_unique: np.ndarray
    s1_unique: np.ndarray
    synergy: np.ndarray
    brightness: np.ndarray
    vigour: np.ndarray
    band_jitter: np.ndarray
    sar_jitter_db: np.ndarray


def draw_attributes(
    rng: np.random.Generator, n_parcels: int, unique_classes: int, change_fraction: float
) -> ParcelAttributes:
    """Draw the latent attributes of ``n_parcels`` parcels.

    The two unique attributes are uniform and independent of each other and of land cover, so
    that the synergy target ``(s1_unique + s2_unique) mod K`` carries no information about either
    one alone, nor about land cover.

    Args:
        rng: Random generator.
        n_parcels: Number of parcels.
        unique_classes: Classes K of each unique attribute.
        change_fraction: Probability that a parcel's land cover differs at the S1 date.

    Returns:
        The attributes.
    """
    n_classes = len(LANDCOVER_CLASSES)
    landcover_s2 = rng.choice(n_classes, size=n_parcels, p=LANDCOVER_PRIOR).astype(np.uint8)
    changed = rng.random(n_parcels) < change_fraction
    # A changed parcel moves to one of the other classes, uniformly.
    offset = rng.integers(1, n_classes, size=n_parcels)
    landcover_s1 = np.where(changed, (landcover_s2 + offset) % n_classes, landcover_s2)
    s2_unique = rng.integers(0, unique_classes, size=n_parcels).astype(np.uint8)
    s1_unique = rng.integers(0, unique_classes, size=n_parcels).astype(np.uint8)
    common_db = rng.normal(0.0, 0.7, size=(n_parcels, 1))
    return ParcelAttributes(
        landcover_s2=landcover_s2,
        landcover_s1=landcover_s1.astype(np.uint8),
        changed=changed,
        s2_unique=s2_unique,
        s1_unique=s1_unique,
        synergy=((s1_unique.astype(np.int64) + s2_unique) % unique_classes).astype(np.uint8),
        brightness=np.clip(rng.normal(1.0, 0.08, size=n_parcels), 0.7, 1.3),
        vigour=rng.normal(0.0, 1.0, size=n_parcels),
        band_jitter=rng.normal(0.0, 0.03, size=(n_parcels, 12)),
        sar_jitter_db=common_db + rng.normal(0.0, 0.3, size=(n_parcels, 2)),
    )


class ParcelWorld:
    """A tessellation of parcels over an extent of map coordinates, with latent attributes.

    Parcels are Voronoi cells of jittered grid seeds; boundaries are warped by a smooth random
    field so that they are irregular like real field and forest edges. Any grid (S2, S1 on
    another origin/resolution/CRS, label rasters) asks :meth:`parcel_ids` for the parcels under
    its pixel centres, so all of them see the same world.

    Args:
        rng: Random generator.
        bounds: (west, south, east, north) of the world in map units (metres).
        parcel_spacing: Mean parcel diameter in map units.
        unique_classes: Classes K of each unique attribute.
        change_fraction: Fraction of parcels whose land cover changes between the dates.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        bounds: tuple[float, float, float, float],
        parcel_spacing: float,
        unique_classes: int,
        change_fraction: float,
    ) -> None:
        west, south, east, north = bounds
        self.bounds = bounds
        self.parcel_spacing = parcel_spacing
        nx = max(1, int(np.ceil((east - west) / parcel_spacing)))
        ny = max(1, int(np.ceil((north - south) / parcel_spacing)))
        gx, gy = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5)
        # Jitter of +-0.5 spacing around a grid: irregular cells of similar size (a Poisson
        # process would give cells whose areas vary tenfold).
        jitter = rng.uniform(-0.5, 0.5, size=(2, gx.size))
        self.seeds = np.column_stack(
            [
                west + (gx.ravel() + jitter[0]) * parcel_spacing,
                north - (gy.ravel() + jitter[1]) * parcel_spacing,
            ]
        )
        self._tree = cKDTree(self.seeds)
        self._warp_x = RandomFourierField(rng, parcel_spacing * 0.5, parcel_spacing * 3)
        self._warp_y = RandomFourierField(rng, parcel_spacing * 0.5, parcel_spacing * 3)
        self._warp_amplitude = 0.15 * parcel_spacing
        self.attributes = draw_attributes(rng, len(self.seeds), unique_classes, change_fraction)
        self.unique_classes = unique_classes

    @property
    def n_parcels(self) -> int:
        """Number of parcels."""
        return len(self.seeds)

    def parcel_ids(self, coords: MapCoordinates) -> np.ndarray:
        """Parcel index under each pixel.

        Args:
            coords: The pixels' map coordinates.

        Returns:
            Parcel indices, int32, shape ``coords.shape``.
        """
        x, y = coords.mesh()
        wx = x + self._warp_amplitude * coords.sample(self._warp_x)
        wy = y + self._warp_amplitude * coords.sample(self._warp_y)
        _, idx = self._tree.query(np.column_stack([wx.ravel(), wy.ravel()]), workers=-1)
        return idx.astype(np.int32).reshape(coords.shape)
