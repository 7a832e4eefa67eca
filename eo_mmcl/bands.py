"""Sentinel band names: the vocabulary that catalog, tiling and models agree on."""

from __future__ import annotations

#: Sentinel-2 L2A bands in the order eo_mmcl stores them (B10, cirrus, is dropped by L2A).
S2_L2A_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
)  # fmt: skip
#: Sentinel-2 L1C bands (all 13, B10 included).
S2_L1C_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
#: Sentinel-1 polarisations (IW GRD dual-pol products carry VV+VH or HH+HV).
S1_BANDS: tuple[str, ...] = ("VV", "VH", "HH", "HV")

#: Native resolution (m) of each Sentinel-2 band.
S2_NATIVE_RESOLUTION_M: dict[str, int] = {
    **dict.fromkeys(("B02", "B03", "B04", "B08"), 10),
    **dict.fromkeys(("B05", "B06", "B07", "B8A", "B11", "B12"), 20),
    **dict.fromkeys(("B01", "B09", "B10"), 60),
}

KNOWN_BANDS: dict[str, frozenset[str]] = {
    "S1": frozenset(S1_BANDS),
    "S2": frozenset(S2_L1C_BANDS),
}


def unknown_bands(sensor: str, bands: list[str] | tuple[str, ...]) -> list[str]:
    """Return the band names that are not valid for ``sensor``.

    Args:
        sensor: ``"S1"`` or ``"S2"``.
        bands: Band names to check.

    Returns:
        The names not in the sensor's vocabulary (empty when all are known).

    Raises:
        ValueError: If ``sensor`` is not a known sensor.
    """
    if sensor not in KNOWN_BANDS:
        raise ValueError(f"unknown sensor {sensor!r}; expected one of {sorted(KNOWN_BANDS)}")
    return [b for b in bands if b not in KNOWN_BANDS[sensor]]
