"""Knobs of the scene simulator, validated in one place."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from rasterio.crs import CRS
from rasterio.errors import CRSError

from eo_mmcl.errors import ConfigError


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that decides a simulated scene pair; same config and seed, same bytes.

    Args:
        size: S2 scene width and height in pixels (10 m).
        seed: Random seed.
        scenes: Number of scene pairs, placed side by side in the same UTM zone.
        parcel_size: Mean parcel diameter in S2 pixels (parcels are Voronoi cells of this mean
            area, with warped boundaries). Chip-level labels need chips no larger than about half
            of it; the sidecar records the recommendation. 96 by default: the demo's 32 px chips
            then lie mostly inside one parcel (at 64 the synergy task, which needs both of a
            parcel's unique attributes read right, could not be read per pixel: mIoU ceiling
            0.58 to 0.63 against the 0.67 that readability asks).
        unique_classes: Number of classes of each unique attribute (and of the synergy target).
            2 by default: binary attributes, and the synergy target their XOR (as in the
            Trifeatures benchmark of CoMM and COrAL). With four classes of these strengths the
            demo's chips could not be read (band statistics: SAR-only 0.61, optical-only 0.53,
            synergy 0.24 against a chance of 0.25); with two they read 0.92, 0.90 and 0.77
            against 0.5, and the wrong sensor stays at chance.
        optical_unique_strength: Relative spectral change between the lowest and highest class of
            the optical-only attribute along its direction (0.12 = 12%).
        sar_unique_strength_db: dB change of VV between the lowest and highest class of the
            SAR-only attribute (VH changes by 0.45 of it). 2.5 dB by default: a dry against a
            wet soil some 15 volume-% apart at C band's 0.15-0.2 dB per %. An untrained
            network's survival on the SAR-only task, on the demo's layout at one training seed:
            0.81 at 5 dB, 0.69-0.71 at 3 dB, 0.38 at 2 dB (64 px parcels); 0.75 at 2.5 dB and
            0.53 at 2 dB (96 px), while the oracle's reading falls from 0.95 to 0.87 and the
            synergy task's (both attributes read right) with it: a plain backscatter shift is
            read by random features almost as well as by the oracle unless it is small.
        cloud_fraction: Fraction of the S2 scene under cloud (selection bias), 0..0.95.
        change_fraction: Fraction of parcels whose land cover changes between the S1 and S2
            dates (perturbation bias).
        coregistration_shift_m: (dx, dy) geolocation error of S1 against S2, in metres.
        enl: Equivalent number of looks of the gamma speckle (4.4 is typical of S1 IW GRDH).
        optical_noise: Standard deviation of additive per-pixel reflectance noise.
        s1_resolution: S1 pixel size in metres (its grid differs from the S2 grid).
        s1_crs: CRS of the S1 raster: ``"same"`` (the S2 UTM zone) or any CRS string, for
            example ``"EPSG:4326"`` or a neighbouring UTM zone.
        overlap: Fraction of the S2 footprint covered by the S1 footprint (partial overlap).
        epsg: EPSG code of the S2 UTM zone.
        origin: (west, north) of the first scene's S2 grid in the UTM zone, metres.
        s2_date: Acquisition date of S2 (ISO).
        time_gap_days: S1 date minus S2 date, in days.
    """

    size: int = 512
    seed: int = 0
    scenes: int = 1
    parcel_size: float = 96.0
    unique_classes: int = 2
    optical_unique_strength: float = 0.3
    sar_unique_strength_db: float = 2.5
    cloud_fraction: float = 0.1
    change_fraction: float = 0.05
    coregistration_shift_m: tuple[float, float] = (6.0, -4.0)
    enl: float = 4.4
    optical_noise: float = 0.005
    s1_resolution: float = 20.0
    s1_crs: str = "same"
    overlap: float = 0.8
    epsg: int = 32633
    origin: tuple[float, float] = (500_000.0, 5_300_000.0)
    s2_date: str = "2023-06-12"
    time_gap_days: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.size >= 64, f"size must be >= 64 pixels, got {self.size}"),
            # numpy's generators take non-negative seeds only (a traceback otherwise).
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.scenes >= 1, f"scenes must be >= 1, got {self.scenes}"),
            (self.parcel_size >= 4, f"parcel_size must be >= 4 pixels, got {self.parcel_size}"),
            (
                2 <= self.unique_classes <= 16,
                f"unique_classes must be in 2..16, got {self.unique_classes}",
            ),
            (
                0.0 <= self.cloud_fraction <= 0.95,
                f"cloud_fraction must be in [0, 0.95], got {self.cloud_fraction}",
            ),
            (
                0.0 <= self.change_fraction <= 1.0,
                f"change_fraction must be in [0, 1], got {self.change_fraction}",
            ),
            (self.enl > 0, f"enl must be > 0, got {self.enl}"),
            (self.optical_noise >= 0, f"optical_noise must be >= 0, got {self.optical_noise}"),
            (self.s1_resolution > 0, f"s1_resolution must be > 0, got {self.s1_resolution}"),
            (0.05 <= self.overlap <= 1.0, f"overlap must be in [0.05, 1], got {self.overlap}"),
            (
                self.optical_unique_strength >= 0,
                f"optical_unique_strength must be >= 0, got {self.optical_unique_strength}",
            ),
            (
                self.sar_unique_strength_db >= 0,
                f"sar_unique_strength_db must be >= 0, got {self.sar_unique_strength_db}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        try:
            dt.date.fromisoformat(self.s2_date)
        except ValueError as err:
            raise ConfigError(f"s2_date must be an ISO date, got {self.s2_date!r}") from err
        try:
            self.s2_crs  # noqa: B018 - validates the EPSG code
            self.s1_crs_resolved  # noqa: B018
        except CRSError as err:
            raise ConfigError(f"invalid CRS in simulator config: {err}") from err

    @property
    def s2_crs(self) -> CRS:
        """CRS of the S2 grid."""
        return CRS.from_epsg(self.epsg)

    @property
    def s1_crs_resolved(self) -> CRS:
        """CRS of the S1 grid."""
        return self.s2_crs if self.s1_crs == "same" else CRS.from_user_input(self.s1_crs)

    @property
    def s2_datetime(self) -> dt.date:
        """S2 acquisition date."""
        return dt.date.fromisoformat(self.s2_date)

    @property
    def s1_datetime(self) -> dt.date:
        """S1 acquisition date."""
        return self.s2_datetime + dt.timedelta(days=self.time_gap_days)

    def to_dict(self) -> dict[str, Any]:
        """All knobs as JSON-ready values."""
        d = asdict(self)
        d["coregistration_shift_m"] = list(self.coregistration_shift_m)
        d["origin"] = list(self.origin)
        return d
