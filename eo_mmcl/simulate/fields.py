"""Smooth random fields defined in map coordinates, so that every sensor grid samples one world."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class RandomFourierField:
    """A stationary Gaussian-like random field as a sum of random plane waves.

    Unlike noise generated on a pixel grid, it is a function of map coordinates: the S2 grid, the
    S1 grid (another origin, resolution or CRS) and any window of either sample the same field,
    which is what makes S1 and S2 see one consistent world.

    Args:
        rng: Random generator that draws the waves.
        min_wavelength: Shortest wavelength in map units.
        max_wavelength: Longest wavelength in map units.
        n_waves: Number of plane waves (more waves, more isotropic).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        min_wavelength: float,
        max_wavelength: float,
        n_waves: int = 24,
    ) -> None:
        if not 0 < min_wavelength <= max_wavelength:
            raise ValueError(
                f"need 0 < min_wavelength <= max_wavelength, got {min_wavelength}, {max_wavelength}"
            )
        if n_waves < 1:
            raise ValueError(f"n_waves must be >= 1, got {n_waves}")
        wavelengths = np.exp(
            rng.uniform(np.log(min_wavelength), np.log(max_wavelength), size=n_waves)
        )
        angles = rng.uniform(0.0, np.pi, size=n_waves)
        k = 2.0 * np.pi / wavelengths
        self._kx = k * np.cos(angles)
        self._ky = k * np.sin(angles)
        self._phase = rng.uniform(0.0, 2.0 * np.pi, size=n_waves)
        # Longer waves carry more power (a red spectrum, as natural surfaces have); the weights
        # are normalised so that the field has unit variance.
        weights = wavelengths / wavelengths.max()
        self._amp = weights * np.sqrt(2.0 / np.sum(weights**2))

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Evaluate the field at points.

        Args:
            x: Map x coordinates (any shape).
            y: Map y coordinates (same shape as ``x``).

        Returns:
            Field values with zero mean and unit variance over space, float32, shape of ``x``.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        out = np.zeros(x.shape, dtype=np.float64)
        for kx, ky, phase, amp in zip(self._kx, self._ky, self._phase, self._amp, strict=True):
            out += amp * np.cos(kx * x + ky * y + phase)
        return out.astype(np.float32)

    def on_grid(self, x_axis: np.ndarray, y_axis: np.ndarray) -> np.ndarray:
        """Evaluate the field on a north-up grid given by its axes.

        Equal to ``self(*np.meshgrid(x_axis, y_axis))`` up to float32 rounding, but each wave is
        separable there, cos(a + b) = cos a cos b - sin a sin b, so the trigonometry costs
        O(width + height) instead of O(width * height). Fields are evaluated for every simulated
        pixel: this is most of the simulator's time.

        Args:
            x_axis: x of the grid's columns, shape (W,).
            y_axis: y of the grid's rows, shape (H,).

        Returns:
            Field values, float32, shape (H, W).
        """
        a = np.outer(self._kx, x_axis)  # (waves, W)
        b = np.outer(self._ky, y_axis) + self._phase[:, None]  # (waves, H)
        amp = self._amp[:, None]
        cos_a = (np.cos(a) * amp).astype(np.float32)
        sin_a = (np.sin(a) * amp).astype(np.float32)
        cos_b, sin_b = np.cos(b).astype(np.float32), np.sin(b).astype(np.float32)
        # (H, waves) @ (waves, W): one matrix product sums over the waves.
        return np.asarray(cos_b.T @ cos_a - sin_b.T @ sin_a, dtype=np.float32)


@dataclass(frozen=True)
class MapCoordinates:
    """Where a block of pixels looks at the world: scattered points, or a north-up grid.

    Grids (the S2 grid, S1 in the same CRS) use the separable fast path of the fields; points
    (S1 pixels reprojected from another CRS) use the general one.

    Args:
        x: Map x: 2-D points, or the 1-D column axis when ``is_grid``.
        y: Map y: 2-D points (same shape as ``x``), or the 1-D row axis when ``is_grid``.
        is_grid: Whether ``x`` and ``y`` are the axes of a north-up grid.
    """

    x: np.ndarray
    y: np.ndarray
    is_grid: bool

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the block."""
        if self.is_grid:
            return (len(self.y), len(self.x))
        return (int(self.x.shape[0]), int(self.x.shape[1]))

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """2-D x and y of every pixel."""
        if self.is_grid:
            xx, yy = np.meshgrid(self.x, self.y)
            return xx, yy
        return self.x, self.y

    def sample(self, field: RandomFourierField) -> np.ndarray:
        """Evaluate ``field`` at these coordinates, shape (rows, cols)."""
        return field.on_grid(self.x, self.y) if self.is_grid else field(self.x, self.y)

    def shifted(self, dx: float, dy: float) -> MapCoordinates:
        """The same pixels displaced by (dx, dy) map units."""
        return MapCoordinates(self.x + dx, self.y + dy, self.is_grid)
