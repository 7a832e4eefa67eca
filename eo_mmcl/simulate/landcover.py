"""Land-cover classes and their sensor signatures: plausible S2 L2A spectra and S1 backscatter.

The numbers are typical values, not fits to one site: surface reflectance per Sentinel-2 band
(USGS/ECOSTRESS-like library spectra resampled to the S2 bands) and mean C-band sigma0 in dB for
VV and VH at mid incidence (values commonly reported for Sentinel-1 IW over Europe).
"""

from __future__ import annotations

import numpy as np

from eo_mmcl.bands import S2_L2A_BANDS

#: Land-cover class names, index = label value.
LANDCOVER_CLASSES: tuple[str, ...] = (
    "water",
    "forest",
    "cropland",
    "grassland",
    "built_up",
    "bare_soil",
)
#: Prior probability of each class among parcels.
LANDCOVER_PRIOR: np.ndarray = np.array([0.10, 0.20, 0.28, 0.20, 0.10, 0.12])

#: Surface reflectance (0..1) per class (rows) and S2 L2A band (columns, see ``S2_L2A_BANDS``).
S2_CLASS_SPECTRA: np.ndarray = np.array(
    [
        # B01   B02    B03    B04    B05    B06    B07    B08    B8A    B09    B11    B12
        [0.050, 0.045, 0.040, 0.025, 0.020, 0.015, 0.012, 0.010, 0.009, 0.005, 0.003, 0.002],
        [0.020, 0.025, 0.045, 0.025, 0.080, 0.220, 0.280, 0.300, 0.310, 0.300, 0.150, 0.070],
        [0.030, 0.040, 0.080, 0.050, 0.120, 0.300, 0.380, 0.400, 0.410, 0.400, 0.220, 0.120],
        [0.035, 0.050, 0.090, 0.070, 0.130, 0.250, 0.300, 0.320, 0.330, 0.320, 0.250, 0.150],
        [0.100, 0.110, 0.120, 0.130, 0.140, 0.150, 0.160, 0.170, 0.175, 0.170, 0.200, 0.180],
        [0.080, 0.100, 0.130, 0.170, 0.200, 0.220, 0.240, 0.250, 0.260, 0.260, 0.330, 0.280],
    ]
)

#: Which classes are vegetated (their red edge and NIR plateau vary with vigour/phenology).
VEGETATED: np.ndarray = np.array([False, True, True, True, False, False])

#: Mean sigma0 (dB) per class for (VV, VH).
S1_CLASS_SIGMA0_DB: np.ndarray = np.array(
    [
        [-21.0, -28.0],  # water: specular reflection away from the sensor
        [-7.5, -13.5],  # forest: volume scattering, high VH
        [-10.5, -17.5],  # cropland
        [-11.5, -19.0],  # grassland
        [-4.5, -11.5],  # built-up: double bounce
        [-13.0, -22.0],  # bare soil: surface scattering, low VH
    ]
)

#: Reflectance of an opaque cloud per S2 L2A band.
CLOUD_SPECTRUM: np.ndarray = np.array(
    [0.46, 0.45, 0.44, 0.43, 0.43, 0.43, 0.43, 0.43, 0.42, 0.30, 0.30, 0.22]
)

#: Relative spectral change per unit of the optical-only attribute ("canopy pigment" / water
#: turbidity): it moves the blue-green and the first red-edge band, leaving the NIR plateau that
#: carries vigour and phenology alone; unit norm so that the strength knob is a relative change.
OPTICAL_UNIQUE_DIRECTION: np.ndarray = np.array(
    [0.25, 0.35, 0.70, 0.10, 0.55, 0.10, 0.0, 0.0, 0.0, 0.0, -0.05, -0.05]
)
OPTICAL_UNIQUE_DIRECTION = OPTICAL_UNIQUE_DIRECTION / np.linalg.norm(OPTICAL_UNIQUE_DIRECTION)

#: Relative spectral change per unit of vegetation vigour (phenology): NIR up, red down.
VIGOUR_DIRECTION: np.ndarray = np.array(
    [0.0, -0.05, 0.05, -0.35, 0.05, 0.5, 0.7, 0.75, 0.75, 0.7, 0.1, -0.1]
)

#: dB change of (VV, VH) per unit of the SAR-only attribute ("soil moisture"): the dielectric
#: constant of wet soil raises co-polarised surface scattering more than cross-polarised volume
#: scattering.
SAR_UNIQUE_DB_PER_UNIT: np.ndarray = np.array([1.0, 0.45])

assert S2_CLASS_SPECTRA.shape == (len(LANDCOVER_CLASSES), len(S2_L2A_BANDS))
assert np.isclose(LANDCOVER_PRIOR.sum(), 1.0)
