"""Choosing v and x by clicking in the 2-D lab (issue 13): the pure maps from a click to the sliders'
values, checked against direction_vector (their inverse) and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geometry.errors import InvalidInputError
from geometry.toy2d import direction_vector, nearest_point, vector_from_click

NORMS = dict(norm_range=(0.05, 2.0), norm_step=0.01)


@pytest.mark.parametrize("seed", range(5))
def test_click_round_trips_through_direction_vector(seed):
    """origin + direction_vector(angle, norm) lands within the sliders' rounding of the click."""
    rng = np.random.default_rng(seed)
    origin = rng.normal(size=2)
    for _ in range(50):
        v = rng.uniform(-1.4, 1.4, size=2)
        if np.hypot(*v) < 0.1:
            continue
        angle, norm = vector_from_click(tuple(origin + v), origin, **NORMS)
        back = direction_vector(angle, norm)
        # rounding: ≤ half a degree of angle and ≤ half a norm step
        assert abs(norm - np.hypot(*v)) <= 0.005 + 1e-12
        assert np.linalg.norm(back - v) <= np.hypot(*v) * math.radians(0.5) + 0.005 + 1e-9
        assert -180 < angle <= 180 and float(angle).is_integer()


def test_axis_directions_and_clipping():
    o = (1.0, -2.0)
    assert vector_from_click((2.0, -2.0), o, **NORMS) == (0.0, 1.0)  # +x1
    assert vector_from_click((1.0, -1.5), o, **NORMS) == (90.0, 0.5)  # +x2
    assert vector_from_click((0.0, -2.0), o, **NORMS) == (180.0, 1.0)  # −x1: atan2 gives 180
    assert vector_from_click((1.0, -2.5), o, **NORMS) == (-90.0, 0.5)
    assert vector_from_click((11.0, -2.0), o, **NORMS) == (0.0, 2.0)  # longer than the slider: clipped
    assert vector_from_click((1.001, -2.0), o, **NORMS) == (0.0, 0.05)  # shorter: raised to the minimum
    # just below −180° rounds to −180, which is the same direction as the slider's 180
    assert vector_from_click((0.0, -2.0001), o, **NORMS)[0] == 180.0


def test_click_on_the_origin_or_not_finite_is_an_error():
    with pytest.raises(InvalidInputError):
        vector_from_click((0.5, 0.5), np.array([0.5, 0.5]), **NORMS)
    with pytest.raises(InvalidInputError):
        vector_from_click((math.nan, 0.5), (0.0, 0.0), **NORMS)


def test_nearest_point_matches_brute_force():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(200, 2))
    for click in rng.normal(size=(30, 2)) * 2:
        brute = min(range(len(pts)), key=lambda i: math.dist(pts[i], click))
        assert nearest_point(tuple(click), pts) == brute
    assert nearest_point(tuple(pts[17]), pts) == 17  # a click on a point picks it
    with pytest.raises(InvalidInputError):
        nearest_point((0.0, 0.0), np.zeros((0, 2)))
