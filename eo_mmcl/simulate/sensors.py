"""Sensor models: how Sentinel-2 L2A and Sentinel-1 GRD see the latent world, block by block."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eo_mmcl.simulate.fields import MapCoordinates, RandomFourierField
from eo_mmcl.simulate.landcover import (
    CLOUD_SPECTRUM,
    OPTICAL_UNIQUE_DIRECTION,
    S1_CLASS_SIGMA0_DB,
    S2_CLASS_SPECTRA,
    SAR_UNIQUE_DB_PER_UNIT,
    VEGETATED,
    VIGOUR_DIRECTION,
)
from eo_mmcl.simulate.world import ParcelWorld

#: Noise-equivalent sigma0 of S1 IW (about -26 dB): the floor that dark water sits on.
S1_NESZ_DB = -26.0
#: Relative strength of within-parcel optical texture and of vegetation vigour.
S2_TEXTURE = 0.04
S2_VIGOUR = 0.12
#: Within-parcel backscatter texture (dB).
S1_TEXTURE_DB = 0.6
#: L2A quantification value: reflectance x 10000 stored as uint16.
S2_QUANTIFICATION = 10_000.0


def unique_levels(classes: np.ndarray, unique_classes: int) -> np.ndarray:
    """Map attribute classes 0..K-1 to evenly spaced levels in [-0.5, 0.5].

    Args:
        classes: Attribute classes.
        unique_classes: K.

    Returns:
        Levels as float64, same shape.
    """
    return classes.astype(np.float64) / (unique_classes - 1) - 0.5


@dataclass
class S2Model:
    """Sentinel-2 L2A surface reflectance over the world.

    Args:
        world: The latent world.
        rng: Generator for the sensor's fields (texture, clouds).
        unique_strength: Relative change of the optical-only attribute's full range.
        noise: Additive reflectance noise standard deviation.
        cloud_fraction: Target fraction of pixels under cloud.
        cloud_threshold: Field value above which a pixel is cloudy (set by :meth:`calibrate`).
    """

    world: ParcelWorld
    rng: np.random.Generator
    unique_strength: float
    noise: float
    cloud_fraction: float
    cloud_threshold: float = np.inf

    def __post_init__(self) -> None:
        spacing = self.world.parcel_spacing
        self.texture = RandomFourierField(self.rng, 30.0, spacing * 0.8)
        # Cumulus fields: kilometre-scale blobs with a finer fringe.
        self.cloud_field = RandomFourierField(self.rng, 400.0, 6_000.0, n_waves=32)
        self.cloud_detail = RandomFourierField(self.rng, 60.0, 400.0)
        self._parcels: np.ndarray | None = None

    def cloud_value(self, coords: MapCoordinates) -> np.ndarray:
        """Cloud field (higher = cloudier) at map coordinates."""
        return coords.sample(self.cloud_field) + 0.25 * coords.sample(self.cloud_detail)

    def calibrate_clouds(self, coords: MapCoordinates) -> None:
        """Choose the cloud threshold so that ``cloud_fraction`` of the given pixels are cloudy.

        Args:
            coords: Pixels covering the scene (a decimated grid is enough).
        """
        if self.cloud_fraction <= 0:
            self.cloud_threshold = np.inf
            return
        values = self.cloud_value(coords)
        self.cloud_threshold = float(np.quantile(values, 1.0 - self.cloud_fraction))

    def parcel_reflectance(self) -> np.ndarray:
        """Every parcel's noise-free reflectance: no texture, noise or cloud.

        Returns:
            (P, 12) float32 surface reflectance (0..1), parcels in world order.
        """
        attrs = self.world.attributes
        lc = attrs.landcover_s2
        gain = attrs.brightness[:, None] * (1.0 + attrs.band_jitter)
        vigour = np.where(VEGETATED[lc], attrs.vigour, 0.0)[:, None]
        gain *= 1.0 + S2_VIGOUR * vigour * VIGOUR_DIRECTION
        level = unique_levels(attrs.s2_unique, self.world.unique_classes)[:, None]
        gain *= 1.0 + self.unique_strength * level * OPTICAL_UNIQUE_DIRECTION
        return (S2_CLASS_SPECTRA[lc] * gain).astype(np.float32)

    def render(
        self, coords: MapCoordinates, block_rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render a block of pixels.

        Args:
            coords: Map coordinates of the pixel centres.
            block_rng: Generator for this block's pixel noise.

        Returns:
            ``(dn, parcel_ids, cloud_mask)``: uint16 reflectance x 10000 of shape (12, h, w),
            int32 parcel ids (h, w) and bool cloud mask (h, w).
        """
        ids = self.world.parcel_ids(coords)
        if self._parcels is None:
            self._parcels = self.parcel_reflectance()
        texture = 1.0 + S2_TEXTURE * coords.sample(self.texture)[..., None]
        refl = self._parcels[ids] * texture.astype(np.float32)  # (h, w, 12)
        if self.noise > 0:
            refl += block_rng.normal(0.0, self.noise, size=refl.shape).astype(np.float32)
        cloud_value = self.cloud_value(coords)
        cloud_mask = cloud_value > self.cloud_threshold
        if np.isfinite(self.cloud_threshold):
            # Opacity ramps up over 0.3 field units past the threshold: thin fringes, opaque cores.
            alpha = np.clip((cloud_value - self.cloud_threshold) / 0.3, 0.0, 1.0)[..., None]
            refl = (1.0 - alpha) * refl + alpha * CLOUD_SPECTRUM.astype(np.float32)
        dn = np.clip(np.rint(refl * S2_QUANTIFICATION), 1, 65535).astype(np.uint16)
        return np.moveaxis(dn, -1, 0), ids, cloud_mask


@dataclass
class S1Model:
    """Sentinel-1 GRD sigma0 (dB) over the world, with gamma speckle and a noise floor.

    Args:
        world: The latent world.
        rng: Generator for the sensor's fields.
        unique_strength_db: VV dB change over the SAR-only attribute's full range.
        enl: Equivalent number of looks of the speckle.
    """

    world: ParcelWorld
    rng: np.random.Generator
    unique_strength_db: float
    enl: float

    def __post_init__(self) -> None:
        self.texture = RandomFourierField(self.rng, 40.0, self.world.parcel_spacing)
        self._parcels: np.ndarray | None = None

    def parcel_sigma0_db(self) -> np.ndarray:
        """Every parcel's noise-free backscatter: no texture, speckle or noise floor.

        Returns:
            (P, 2) sigma0 in dB for (VV, VH), parcels in world order.
        """
        attrs = self.world.attributes
        db = S1_CLASS_SIGMA0_DB[attrs.landcover_s1] + attrs.sar_jitter_db
        level = unique_levels(attrs.s1_unique, self.world.unique_classes)[:, None]
        return db + self.unique_strength_db * level * SAR_UNIQUE_DB_PER_UNIT

    def render(self, coords: MapCoordinates, block_rng: np.random.Generator) -> np.ndarray:
        """Render a block of pixels.

        Args:
            coords: World map coordinates of the pixels' ground positions.
            block_rng: Generator for this block's speckle.

        Returns:
            sigma0 in dB, float32, shape (2, h, w) for (VV, VH).
        """
        ids = self.world.parcel_ids(coords)
        if self._parcels is None:
            self._parcels = self.parcel_sigma0_db()
        db = self._parcels[ids] + S1_TEXTURE_DB * coords.sample(self.texture)[..., None]
        power = 10.0 ** (db / 10.0) + 10.0 ** (S1_NESZ_DB / 10.0)
        # Fully developed speckle: intensity x Gamma(ENL, 1/ENL), unit mean.
        speckle = block_rng.gamma(self.enl, 1.0 / self.enl, size=power.shape)
        out = 10.0 * np.log10(power * speckle)
        return np.moveaxis(out.astype(np.float32), -1, 0)
