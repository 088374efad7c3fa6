"""geometry.validation: the shared argument checks and the Literal aliases."""

from __future__ import annotations

import math
from typing import get_args

import numpy as np
import pytest
import torch

from geometry import validation as V
from geometry.errors import InvalidInputError


# ------------------------------------------------------------------ integers
@pytest.mark.parametrize("value", [0, 3, np.int64(7), torch.tensor(5)])
def test_check_int_accepts_integers_and_returns_a_python_int(value):
    out = V.check_int("n", value, 0)
    assert type(out) is int and out == int(value)


@pytest.mark.parametrize("value", [True, False, 2.0, "3", None, torch.tensor(2.5)])
def test_check_int_refuses_non_integers_and_quotes_them(value):
    with pytest.raises(InvalidInputError, match=r"^n must be a non-negative integer \(≥ 0\), got "):
        V.check_int("n", value, 0)


def test_check_int_bounds_are_inclusive_and_named():
    assert V.check_int("m", 1, 1, 5) == 1 and V.check_int("m", 5, 1, 5) == 5
    with pytest.raises(InvalidInputError, match=r"m must be an integer in \[1, 5\], got 6"):
        V.check_int("m", 6, 1, 5)
    with pytest.raises(InvalidInputError, match="positive integer"):
        V.check_int("m", 0, 1)
    with pytest.raises(InvalidInputError, match="an integer ≥ 2, got 1"):
        V.check_int("steps", 1, 2)


def test_check_int_plain_refuses_numpy_integers():
    # settings hold plain JSON values: a numpy integer would not serialise into a cache key
    assert V.check_int("seed", 3, 0, plain=True) == 3
    with pytest.raises(InvalidInputError, match="seed"):
        V.check_int("seed", np.int64(3), 0, plain=True)


# ------------------------------------------------------------------ floats and shares
def test_check_float_intervals():
    assert V.check_float("xi", 0, low=0.0) == 0.0
    assert V.check_float("delta", 0.5, low=0.0, high=1.0, high_open=True) == 0.5
    for bad, msg in [(0.0, r"xi must be a finite number > 0, got 0\.0"), (math.inf, "finite"), (-1, "> 0")]:
        with pytest.raises(InvalidInputError, match=msg):
            V.check_float("xi", bad, low=0.0, low_open=True)
    with pytest.raises(InvalidInputError, match=r"delta must be in \[0, 1\), got 1\.0"):
        V.check_float("delta", 1.0, low=0.0, high=1.0, high_open=True)
    for bad in (math.nan, True, "x", None):
        with pytest.raises(InvalidInputError, match="must be a number"):
            V.check_float("t", bad)
    assert V.check_float("kappa", math.inf, finite=False) == math.inf


@pytest.mark.parametrize("value", [1e-9, 0.5, 1, 1.0])
def test_check_share_accepts_the_half_open_unit_interval(value):
    assert V.check_share("share", value) == float(value)


@pytest.mark.parametrize("value", [0, 0.0, 1.0000001, -0.5, math.nan, True, "0.5", None])
def test_check_share_refuses_the_rest(value):
    with pytest.raises(InvalidInputError, match=r"share must be a share in \(0, 1\]"):
        V.check_share("share", value)


def test_check_norm():
    assert V.check_norm(2) == 2.0 and V.check_norm("inf") == math.inf and V.check_norm(math.inf) == math.inf
    for bad in (1, -math.inf, True, "l2", None):
        with pytest.raises(InvalidInputError, match="norm must be 2 or inf"):
            V.check_norm(bad)


# ------------------------------------------------------------------ choices and Literal aliases
def test_literal_tuples_are_the_aliases_arguments():
    assert V.CURVATURE_METHODS == get_args(V.CurvatureMethod) == ("finite_difference", "smoothed", "exact")
    assert V.H_PRESETS == ("authors", "xi", "custom")
    assert V.BOUNDARY_POINTS == ("boundary", "inside")
    assert V.EIGEN_SOLVERS == ("auto", "eigsh", "dense")
    assert V.UAP_MODES == ("batched", "sequential")


def test_one_definition_of_the_choices_across_layers():
    from geometry import hessian
    from geometry.study import settings

    assert settings.CURVATURE_METHODS is V.CURVATURE_METHODS
    assert settings.H_PRESETS is V.H_PRESETS and settings.BOUNDARY_POINTS is V.BOUNDARY_POINTS
    assert set(hessian.METHODS) == set(V.CURVATURE_METHODS)


def test_check_choice_lists_the_choices():
    assert V.check_choice("point", "inside", V.BOUNDARY_POINTS) == "inside"
    with pytest.raises(InvalidInputError, match=r"point must be one of 'boundary', 'inside', got 'edge'"):
        V.check_choice("point", "edge", V.BOUNDARY_POINTS)
    with pytest.raises(InvalidInputError, match="got None"):
        V.check_choice("point", None, V.BOUNDARY_POINTS)


# ------------------------------------------------------------------ generators
def test_as_generator_reproduces_a_seed_and_passes_a_generator_through():
    a = torch.rand(5, generator=V.as_generator(7))
    b = torch.rand(5, generator=V.as_generator(np.int64(7)))
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(1)
    assert V.as_generator(g) is g
    assert isinstance(V.as_generator(None, allow_none=True), torch.Generator)
    for bad in (None, True, 1.5, "0"):
        with pytest.raises(InvalidInputError, match="random_state"):
            V.as_generator(bad)


# ------------------------------------------------------------------ labels
def test_check_labels_returns_cpu_int64():
    y = V.check_labels(np.array([1, 2, 3], dtype=np.int32), 3)
    assert y.dtype == torch.int64 and y.device.type == "cpu" and y.tolist() == [1, 2, 3]
    assert V.check_labels(torch.tensor(4), 1).tolist() == [4]  # a 0-d label for one image


@pytest.mark.parametrize(
    "labels", [torch.zeros(3), torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.bool), "abc"]
)
def test_check_labels_refuses_float_bool_and_wrong_length(labels):
    with pytest.raises(InvalidInputError, match=r"labels must be an integer tensor of shape \(3,\)"):
        V.check_labels(labels, 3)


# ------------------------------------------------------------------ bases
class _Sub:
    def __init__(self, basis: torch.Tensor) -> None:
        self.basis = basis


def test_check_basis_accepts_qr_bases_arrays_and_subspaces_as_float64():
    q = torch.linalg.qr(torch.randn(12, 4, generator=torch.Generator().manual_seed(0)))[0]
    for given in (q, q.numpy(), _Sub(q)):
        B = V.check_basis(given, d=12)
        assert B.dtype == torch.float64 and B.shape == (12, 4)
        assert torch.allclose(B, q.double())


def test_check_basis_errors_say_what_was_expected():
    q = torch.linalg.qr(torch.randn(12, 4, dtype=torch.float64))[0]
    with pytest.raises(InvalidInputError, match=r"must have orthonormal columns .*got max deviation 3\.00e\+00"):
        V.check_basis(2 * q)
    with pytest.raises(
        InvalidInputError, match=r"basis must have shape \(16, M\) \(d = 16\) with M ≥ 1, got \(12, 4\)"
    ):
        V.check_basis(q, d=16)
    with pytest.raises(InvalidInputError, match="with M ≥ 1"):
        V.check_basis(q[:, :0])
    bad = q.clone()
    bad[0, 0] = math.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        V.check_basis(bad, name="subspace")
    with pytest.raises(InvalidInputError, match="got str"):
        V.check_basis("basis")


# ------------------------------------------------------------------ images
def test_check_images_shapes():
    shape = (1, 4, 4)
    x = torch.rand(3, *shape)
    assert V.check_images(x, shape) is x
    assert V.check_images(x[0], shape, allow_single=True).shape == (1, *shape)
    flat = x.reshape(3, 16)
    assert torch.equal(V.check_images(flat, shape, allow_flat=True), x)
    with pytest.raises(InvalidInputError, match=r"x must have shape \(N, 1, 4, 4\), got \(3, 16\)"):
        V.check_images(flat, shape)
    with pytest.raises(InvalidInputError, match="floating-point"):
        V.check_images(torch.ones(2, *shape, dtype=torch.long), shape)
    x[1, 0, 0, 0] = math.inf
    with pytest.raises(InvalidInputError, match=r"NaN or inf values \(1 of 3 images\)"):
        V.check_images(x, shape)


def test_check_image_accepts_the_three_layouts_of_one_perturbation():
    shape = (1, 4, 4)
    v = torch.rand(*shape)
    for given in (v, v.unsqueeze(0), v.reshape(-1)):
        assert torch.equal(V.check_image(given, shape), v)
    with pytest.raises(InvalidInputError, match=r"v must have shape \(1, 4, 4\) or \(16,\), got \(2, 1, 4, 4\)"):
        V.check_image(torch.rand(2, *shape), shape)
