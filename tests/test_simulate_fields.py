import numpy as np
import pytest

from eo_mmcl.simulate.fields import MapCoordinates, RandomFourierField


def test_grid_fast_path_equals_point_evaluation() -> None:
    field = RandomFourierField(np.random.default_rng(0), 30.0, 900.0)
    x = 500_000 + np.arange(37) * 10.0 + 5
    y = 5_300_000 - np.arange(23) * 10.0 - 5
    xx, yy = np.meshgrid(x, y)
    np.testing.assert_allclose(field.on_grid(x, y), field(xx, yy), atol=2e-5)


def test_field_is_standardised_and_smooth() -> None:
    field = RandomFourierField(np.random.default_rng(1), 50.0, 500.0)
    x = np.arange(2000) * 10.0
    values = field.on_grid(x, -x)
    assert abs(values.mean()) < 0.2
    assert 0.5 < values.std() < 1.5
    # Neighbouring 10 m pixels are strongly correlated (shortest wavelength is 50 m).
    assert np.corrcoef(values[:, :-1].ravel(), values[:, 1:].ravel())[0, 1] > 0.8


def test_map_coordinates_mesh_and_shift() -> None:
    coords = MapCoordinates(np.array([0.0, 10.0, 20.0]), np.array([5.0, -5.0]), is_grid=True)
    assert coords.shape == (2, 3)
    xx, yy = coords.shifted(1.0, -2.0).mesh()
    np.testing.assert_array_equal(xx[0], [1.0, 11.0, 21.0])
    np.testing.assert_array_equal(yy[:, 0], [3.0, -7.0])


def test_invalid_wavelengths_rejected() -> None:
    with pytest.raises(ValueError, match="min_wavelength"):
        RandomFourierField(np.random.default_rng(0), 100.0, 10.0)
