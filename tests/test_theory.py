"""Theorem 1 / Theorem 2 bounds (geometry/theory.py), checked on analytic classifiers (DESIGN §5)."""

from __future__ import annotations

import math

import pytest
import torch

from geometry.deepfool import deepfool
from geometry.errors import InvalidInputError
from geometry.testing import affine_classifier, sphere_classifier
from geometry.theory import (
    lemma1_beta1,
    normal_fit_xi,
    projection_residuals,
    theorem1_norm,
    theorem2_kappa,
    theorem2_norm,
    to_pixel_units,
)
from geometry.universal import fooling_rates, sample_subspace


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every test here runs on one thread (see conftest.one_thread)."""


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------- closed forms
def test_theorem1_hand_values():
    # ρ = √(e·m) / (δ(1 − ξ))
    assert theorem1_norm(4, 0.2) == pytest.approx(math.sqrt(4 * math.e) / 0.2, rel=1e-12)
    assert theorem1_norm(4, 0.2) == pytest.approx(16.487212707, rel=1e-9)
    assert theorem1_norm(4, 0.2, 0.5) == pytest.approx(2 * 16.487212707, rel=1e-9)
    assert theorem1_norm(1, 1.0) == pytest.approx(math.sqrt(math.e), rel=1e-12)
    # Lemma 1's β₁(δ, 1) = max(δ²/e, 1 − √(2(1 − δ²))): first term below δ ≈ 0.86, second above
    assert lemma1_beta1(0.2) == pytest.approx(0.04 / math.e)
    assert lemma1_beta1(0.9) == pytest.approx(1 - math.sqrt(2 * (1 - 0.81)))
    assert theorem1_norm(9, 0.2, exact=True) == pytest.approx(theorem1_norm(9, 0.2))
    assert theorem1_norm(9, 0.9, exact=True) < theorem1_norm(9, 0.9)


def test_theorem2_hand_values():
    # ρ = √(2 ln(2/δ)) / (κ√m) + κ^(−1/2)
    C = math.sqrt(2 * math.log(10))  # δ = 0.2
    assert theorem2_norm(100, 0.2, 0.01) == pytest.approx(C / (0.01 * 10) + 10, rel=1e-12)
    assert theorem2_norm(100, 0.2, 0.01) == pytest.approx(31.4597, rel=1e-5)
    # exact: positive root of κρ² = Cρ/√m + 1
    r = theorem2_norm(100, 0.2, 0.01, exact=True)
    assert 0.01 * r * r == pytest.approx(C * r / 10 + 1, rel=1e-12)
    assert r == pytest.approx(25.3971, rel=1e-5)  # (21.4597 + √(21.4597² + 400)) / 2


@pytest.mark.parametrize("m", [1, 3, 10, 100])
@pytest.mark.parametrize("delta", [0.05, 0.2, 0.5, 1.0])
def test_monotone_in_the_right_directions(m, delta):
    t1 = theorem1_norm(m, delta, 0.1)
    assert theorem1_norm(m + 1, delta, 0.1) > t1  # more dimensions: larger direction needed
    assert theorem1_norm(m, delta, 0.3) > t1  # worse fit of the normals: larger
    if delta < 1.0:
        assert theorem1_norm(m, min(1.0, delta * 1.5), 0.1) < t1  # more tolerance: smaller
    for kappa in (0.01, 0.1, 0.5, 1.0):
        t2 = theorem2_norm(m, delta, kappa)
        assert theorem2_norm(m + 1, delta, kappa) < t2  # larger curved subspace: smaller vector
        assert theorem2_norm(m, delta, kappa * 1.5) < t2  # more curvature: smaller vector
        if delta < 1.0:
            assert theorem2_norm(m, min(1.0, delta * 1.5), kappa) < t2
        # the statement bounds the proof's exact root from above; both ≥ κ^(−1/2)
        assert 1 / math.sqrt(kappa) <= theorem2_norm(m, delta, kappa, exact=True) <= t2


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: theorem1_norm(0, 0.2), "positive integer"),
        (lambda: theorem1_norm(2.5, 0.2), "positive integer"),
        (lambda: theorem1_norm(2, 0.0), "delta"),
        (lambda: theorem1_norm(2, 1.5), "delta"),
        (lambda: theorem1_norm(2, 0.2, 1.0), "xi"),
        (lambda: theorem2_norm(2, 0.2, 0.0), "kappa"),
        (lambda: theorem2_norm(2, 0.2, float("inf")), "kappa"),
        (lambda: theorem2_norm(2, "a", 0.1), "delta"),
        (lambda: to_pixel_units(1.0, torch.tensor([])), "at least one"),
        (lambda: to_pixel_units(1.0, torch.ones(3), statistic="mode"), "statistic"),
        (lambda: normal_fit_xi(torch.ones(3, 4), torch.eye(4)[:, :2], share=0.0), "share"),
        (lambda: projection_residuals(torch.ones(3, 4), 2 * torch.eye(4)[:, :2]), "orthonormal"),
        (lambda: projection_residuals(torch.zeros(3, 4), torch.eye(4)[:, :2]), "non-zero"),
        (lambda: projection_residuals(torch.ones(3, 5), torch.eye(4)[:, :2]), r"\(5, m\)"),
    ],
)
def test_errors(call, match):
    with pytest.raises(InvalidInputError, match=match):
        call()


def test_lemma1_lower_tail_by_monte_carlo():
    """For v uniform on the unit sphere of R^m and a fixed unit u: P(|uᵀv|² < β₁(δ,1)/m) ≤ δ.

    This is the step of the proof of Theorem 1 that fixes ρ; checked with 20 000 samples
    (the empirical frequency must not exceed δ by more than 4 binomial standard errors).
    """
    n = 20_000
    for m in (1, 2, 5, 20, 100):
        v = torch.randn(n, m, generator=_gen(m), dtype=torch.float64)
        c2 = (v[:, 0] / v.norm(dim=1)) ** 2
        for delta in (0.05, 0.2, 0.5, 0.95):
            freq = float((c2 < lemma1_beta1(delta, 1) / m).double().mean())
            assert freq <= delta + 4 * math.sqrt(delta * (1 - delta) / n), (m, delta, freq)


def test_to_pixel_units_and_kappa_conversion():
    r = torch.tensor([1.0, 2.0, 3.0, 10.0])
    assert to_pixel_units(2.0, r) == pytest.approx(2.0 * 2.5)
    assert to_pixel_units(2.0, r, statistic="max") == 20.0
    assert to_pixel_units(2.0, r, statistic="mean") == pytest.approx(8.0)
    assert to_pixel_units(2.0, r, statistic=0.0) == 2.0
    # the sphere of radius R seen from distance s: κ_normal = 1/R, Theorem 2's κ = s / (2R)
    assert theorem2_kappa(1 / 50, 1.0) == pytest.approx(0.01)
    torch.testing.assert_close(
        theorem2_kappa(torch.tensor([0.5, 1.0]), torch.tensor(2.0)), torch.tensor([0.5, 1.0], dtype=torch.float64)
    )


# ---------------------------------------------------------------------------------------- Theorem 1 on affine
@pytest.fixture(scope="module")
def affine_five():
    L, d = 5, 30
    W = torch.randn(L, d, generator=_gen(0), dtype=torch.float64)
    b = 0.5 * torch.randn(L, generator=_gen(1), dtype=torch.float64)
    clf = affine_classifier(W, b, input_shape=(1, 5, 6))
    xs = torch.randn(200, 1, 5, 6, generator=_gen(2), dtype=torch.float64)
    df = deepfool(clf, xs, overshoot=0.0)
    assert bool(df.converged.all()) and bool((df.n_iter == 1).all())  # exact in one step
    return clf, xs, df, W


def test_affine_normals_span_L_minus_1_dimensions(affine_five):
    """Remark 1: the normals of an L-class affine classifier are the w_i − w_j, rank L − 1."""
    _clf, _xs, df, W = affine_five
    N = df.r.flatten(1) / df.norms[:, None]
    s = torch.linalg.svdvals(N)
    assert float(s[3]) > 1e-3 * float(s[0])  # 4 = L − 1 significant directions …
    assert float(s[4]) < 1e-10 * float(s[0])  # … and nothing else
    # they lie in span{w_k − w_0}
    S, _ = torch.linalg.qr((W[1:] - W[0]).T)
    res = projection_residuals(N, S)
    assert float(res.max()) < 1e-10
    assert normal_fit_xi(N, S) < 1e-10
    # the top-4 left singular vectors of the normals span the same subspace
    U = torch.linalg.svd(N.T, full_matrices=False).U[:, :4]
    assert normal_fit_xi(df.r, U) < 1e-10


def test_theorem1_direction_fools_at_least_1_minus_delta(affine_five):
    """A random unit direction of S, scaled to ρ = theorem1_norm(L − 1, δ, ξ) · max ‖r‖, is a
    universal direction (k̂(x + v) ≠ k̂(x) or k̂(x − v) ≠ k̂(x)) for ≥ 1 − δ of the points, on
    average over the direction (the proof's statement), hence for the best one."""
    clf, xs, df, W = affine_five
    S, _ = torch.linalg.qr((W[1:] - W[0]).T)
    delta = 0.2
    xi = normal_fit_xi(df.r, S)
    rho = to_pixel_units(theorem1_norm(4, delta, xi), df.norms, statistic="max")
    vs = sample_subspace(S, 4, rho, n_samples=20, random_state=0, shape=(1, 5, 6))
    rates = fooling_rates(clf, xs, vs, labels=df.label, two_sided=True)
    assert float(rates.mean()) >= 1 - delta
    assert float(rates.max()) >= 1 - delta


def test_theorem1_with_a_tilted_subspace(affine_five):
    """Normals only within ξ of S: the ξ-corrected norm still gives a universal direction of S."""
    clf, xs, df, W = affine_five
    S0, _ = torch.linalg.qr((W[1:] - W[0]).T)
    C = torch.randn(30, 4, generator=_gen(5), dtype=torch.float64)
    C = C - S0 @ (S0.T @ C)  # in the orthogonal complement
    S, _ = torch.linalg.qr(S0 + 0.3 * C / C.norm(dim=0))
    xi = normal_fit_xi(df.r, S)
    assert 0.01 < xi < 0.5
    delta = 0.2
    rho = to_pixel_units(theorem1_norm(4, delta, xi), df.norms, statistic="max")
    vs = sample_subspace(S, 4, rho, n_samples=20, random_state=1, shape=(1, 5, 6))
    rates = fooling_rates(clf, xs, vs, labels=df.label, two_sided=True)
    assert float(rates.mean()) >= 1 - delta


# ---------------------------------------------------------------------------------------- Theorem 2 on the sphere
def test_theorem2_vector_fools_on_a_sphere_and_the_bound_is_not_vacuous():
    """Sphere classifier (class 0 inside radius R = 50), points at distance s = 1 from the boundary
    with r(x) inside S (the worst case for the concentration step). The quadratic model is exact
    with κ = s/(2R) = 0.01 (module docstring of geometry.theory), so random vectors of S (m = 100)
    of norm ρ·s must fool ≥ 1 − δ of the points on average (β = 0: every direction has curvature κ).
    A third of that norm fools far fewer points: the guarantee is not met trivially."""
    R, s, m, delta = 50.0, 1.0, 100, 0.2
    shape = (1, 8, 16)
    d = 128
    clf = sphere_classifier(torch.zeros(d), R, input_shape=shape)
    S = torch.eye(d, dtype=torch.float64)[:, :m]
    e = torch.randn(150, m, generator=_gen(3), dtype=torch.float64)
    e = torch.cat([e / e.norm(dim=1, keepdim=True), torch.zeros(150, d - m, dtype=torch.float64)], 1)
    xs = ((R - s) * e).reshape(150, *shape)
    df = deepfool(clf, xs, overshoot=0.0)
    # DeepFool's r points along e (the normal), with norm within 2 % of s (one Newton step on a sphere)
    assert bool(df.converged.all())
    assert float((df.norms / s - 1).abs().max()) < 0.02
    kappa = theorem2_kappa(1 / R, s)
    assert kappa == pytest.approx(0.01)
    rho = theorem2_norm(m, delta, kappa) * s
    vs = sample_subspace(S, m, rho, n_samples=40, random_state=0, shape=shape)
    rates = fooling_rates(clf, xs, vs, labels=df.label)
    assert float(rates.mean()) >= 1 - delta
    rho_exact = theorem2_norm(m, delta, kappa, exact=True) * s
    rates_exact = fooling_rates(clf, xs, vs * (rho_exact / rho), labels=df.label)
    assert float(rates_exact.mean()) >= 1 - delta
    rates_small = fooling_rates(clf, xs, vs / 3, labels=df.label)
    assert float(rates_small.mean()) < 1 - delta
