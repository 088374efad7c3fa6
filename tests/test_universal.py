"""Universal perturbations, fooling rates, random noise norms, subspace sampling (geometry/universal.py)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from geometry.errors import InvalidInputError
from geometry.testing import affine_classifier, sphere_classifier
from geometry.universal import (
    FoolingCurve,
    NoiseNormResult,
    UniversalResult,
    fooling_rate,
    fooling_rate_vs_m,
    fooling_rates,
    project_lp,
    random_noise_norm,
    sample_subspace,
    universal_perturbation,
)

SHAPE = (1, 4, 4)
D = 16


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every test here runs on one thread (see conftest.one_thread)."""


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _orthonormal(d: int, m: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, m, generator=_gen(seed), dtype=torch.float64))
    return q


@pytest.fixture(scope="module")
def three_class():
    """Affine 3-class model, all points predicted class 0 at distance ≈ 1 from two boundaries.

    ``f_k − f_0 = 2(u_kᵀx − 1)`` for k = 1, 2 (orthonormal u_1, u_2); the points are
    ``N(0, 0.3²)`` in every coordinate, so a vector ≈ 1.5·u_1 fools nearly all of them.
    """
    U = _orthonormal(D, 2, 0)
    W = torch.cat([torch.zeros(1, D, dtype=torch.float64), 2 * U.T])
    b = torch.tensor([0.0, -2.0, -2.0], dtype=torch.float64)
    clf = affine_classifier(W, b, input_shape=SHAPE)
    xs = 0.3 * torch.randn(60, *SHAPE, generator=_gen(1), dtype=torch.float64)
    assert bool((clf.predict(xs) == 0).all())
    return clf, xs


@pytest.fixture(scope="module")
def ball():
    """Sphere classifier (class 0 inside radius 3), points inside at distance 0.3–0.8 from the boundary."""
    clf = sphere_classifier(torch.zeros(D), 3.0, input_shape=SHAPE)
    e = torch.randn(60, D, generator=_gen(2), dtype=torch.float64)
    e = e / e.norm(dim=1, keepdim=True)
    s = 0.3 + 0.5 * torch.rand(60, 1, generator=_gen(3), dtype=torch.float64)
    xs = ((3.0 - s) * e).reshape(60, *SHAPE)
    assert bool((clf.predict(xs) == 0).all())
    return clf, xs


# ---------------------------------------------------------------------------------------- projection
@pytest.mark.parametrize("norm", [2, float("inf")])
def test_projection_lands_in_ball_is_idempotent_and_nearest(norm):
    for seed in range(100):
        g = _gen(seed)
        scale = float(torch.empty(1).uniform_(0.01, 5.0, generator=g))
        dtype = torch.float32 if seed % 2 else torch.float64
        v = (scale * torch.randn(3, 5, 2, generator=g, dtype=torch.float64)).to(dtype)
        xi = float(torch.empty(1).uniform_(0.0, 4.0, generator=g)) if seed % 7 else 0.0
        v0 = v.clone()
        pv = project_lp(v, xi, norm)
        assert torch.equal(v, v0), "input mutated"
        assert pv.shape == v.shape and pv.dtype == v.dtype
        size = float(torch.linalg.vector_norm(pv.double(), ord=norm))
        assert size <= xi, (seed, size, xi)
        assert torch.equal(project_lp(pv, xi, norm), pv), "not idempotent"
        if float(torch.linalg.vector_norm(v.double(), ord=norm)) <= xi:
            assert torch.equal(pv, v)
        # nearest point of the ball: no random point of the ball is closer to v
        w = torch.randn(20, *v.shape, generator=g, dtype=torch.float64)
        if math.isinf(norm):
            w = xi * (2 * torch.rand(20, *v.shape, generator=g, dtype=torch.float64) - 1)
        else:
            w = (
                w
                / w.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
                * xi
                * torch.rand(20, 1, 1, 1, generator=g, dtype=torch.float64)
            )
        d_proj = float((v.double() - pv.double()).norm())
        d_other = (v.double().unsqueeze(0) - w).flatten(1).norm(dim=1)
        assert d_proj <= float(d_other.min()) + 1e-5


@pytest.mark.parametrize("norm", [2, float("inf")])
def test_projection_float32_stays_inside_a_float64_radius(norm):
    # float32(0.4) = 0.4000000059604645 > 0.4: the bound must be rounded down in v's dtype
    v = torch.full((5,), 3.0, dtype=torch.float32)
    for xi in (0.4, 0.1, 1 / 3, 2.7):
        pv = project_lp(v, xi, norm)
        assert float(torch.linalg.vector_norm(pv.double(), ord=norm)) <= xi
        assert torch.equal(project_lp(pv, xi, norm), pv)


def test_projection_l2_keeps_direction_and_linf_clips():
    v = torch.tensor([3.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(project_lp(v, 1.0, 2), torch.tensor([0.6, 0.8], dtype=torch.float64))
    torch.testing.assert_close(project_lp(v, 3.5, float("inf")), torch.tensor([3.0, 3.5], dtype=torch.float64))
    assert torch.equal(project_lp(v, 0.0, 2), torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.ones(3), -1.0, 2), "xi"),
        ((torch.ones(3), 1.0, 1), "norm"),
        ((torch.ones(3, dtype=torch.long), 1.0, 2), "floating"),
        ((torch.tensor([float("nan")]), 1.0, 2), "NaN"),
    ],
)
def test_projection_errors(args, match):
    with pytest.raises(InvalidInputError, match=match):
        project_lp(*args)


# ---------------------------------------------------------------------------------------- fooling rates
def test_zero_vector_fools_nobody(three_class, ball):
    for clf, xs in (three_class, ball):
        assert fooling_rate(clf, xs, torch.zeros(SHAPE, dtype=torch.float64)) == 0.0
        assert fooling_rate(clf, xs, torch.zeros(D), two_sided=True) == 0.0


def test_fooling_rates_in_unit_interval_and_consistent(three_class):
    clf, xs = three_class
    x0 = xs.clone()
    for seed in range(100):
        v = float(seed) / 20 * torch.randn(SHAPE, generator=_gen(seed), dtype=torch.float64)
        r = fooling_rate(clf, xs, v, batch_size=7)
        r2 = fooling_rate(clf, xs, v, two_sided=True)
        assert 0.0 <= r <= r2 <= 1.0
    vs = torch.randn(5, D, generator=_gen(0), dtype=torch.float64) * 2
    many = fooling_rates(clf, xs, vs, batch_size=13)
    assert many.shape == (5,) and many.dtype == torch.float64
    labels = clf.predict(xs)
    for k in range(5):
        assert (
            float(many[k]) == fooling_rate(clf, xs, vs[k]) == fooling_rate(clf, xs, vs[k].reshape(SHAPE), labels=labels)
        )
    assert torch.equal(xs, x0)


def test_fooling_rate_closed_form_on_affine(three_class):
    clf, xs = three_class
    W = clf.network.W_
    v = (1.2 * W[1] / W[1].norm()).reshape(SHAPE)
    fooled = (xs.flatten(1) + v.flatten()) @ W[1] - 2.0 > 0  # f_1 − f_0 > 0 (f_2 stays below for these points)
    expect = clf.predict(xs + v) != 0
    assert torch.equal(fooled, expect)
    assert fooling_rate(clf, xs, v) == pytest.approx(float(fooled.double().mean()))


def test_fooling_rate_errors(three_class):
    clf, xs = three_class
    with pytest.raises(InvalidInputError, match="shape"):
        fooling_rate(clf, xs, torch.zeros(3, 3))
    with pytest.raises(InvalidInputError, match="labels"):
        fooling_rate(clf, xs, torch.zeros(SHAPE), labels=torch.zeros(3, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="NaN"):
        fooling_rates(clf, xs, torch.full((2, D), float("nan")))


# ---------------------------------------------------------------------------------------- UAP
@pytest.mark.parametrize("mode", ["sequential", "batched"])
@pytest.mark.parametrize("norm,xi", [(2, 2.0), (float("inf"), 0.8)])
def test_uap_reaches_target_on_affine(three_class, mode, norm, xi):
    clf, xs = three_class
    x0 = xs.clone()
    res = universal_perturbation(clf, xs, xi=xi, norm=norm, delta=0.2, max_passes=5, mode=mode, batch_size=16)
    assert torch.equal(xs, x0), "input mutated"
    assert isinstance(res, UniversalResult)
    assert res.converged and res.fooling_rate >= 0.8
    assert res.v.shape == SHAPE and res.v.dtype == xs.dtype
    assert float(torch.linalg.vector_norm(res.v, ord=norm)) <= xi
    assert res.mode == mode and res.n_passes == len(res.fooling_rates) >= 1
    assert res.fooling_rates[res.best_pass - 1] == max(res.fooling_rates) == res.fooling_rate
    assert fooling_rate(clf, xs, res.v) == res.fooling_rate
    assert "1 − δ" in res.stopping_rule and "best" in res.stopping_rule
    assert res.n_accepted <= res.n_deepfool and res.n_deepfool > 0


@pytest.mark.parametrize("mode", ["sequential", "batched"])
def test_uap_reaches_target_on_curved_boundary(ball, mode):
    clf, xs = ball
    res = universal_perturbation(clf, xs, xi=3.0, delta=0.2, max_passes=6, mode=mode, batch_size=8)
    assert res.converged and res.fooling_rate >= 0.8
    assert float(res.v.norm()) <= 3.0
    assert fooling_rate(clf, xs, res.v) == res.fooling_rate


def test_uap_same_seed_same_vector_and_batch_of_one_is_sequential(three_class):
    clf, xs = three_class
    kw = dict(xi=1.0, delta=0.0, max_passes=2)  # δ = 0: run every pass
    a = universal_perturbation(clf, xs, mode="batched", batch_size=16, random_state=5, **kw)
    b = universal_perturbation(clf, xs, mode="batched", batch_size=16, random_state=5, **kw)
    assert torch.equal(a.v, b.v) and a.fooling_rates == b.fooling_rates
    s = universal_perturbation(clf, xs, mode="sequential", random_state=3, **kw)
    one = universal_perturbation(clf, xs, mode="batched", batch_size=1, random_state=3, **kw)
    assert torch.equal(s.v, one.v) and s.fooling_rates == one.fooling_rates
    assert s.n_deepfool == one.n_deepfool and s.n_accepted == one.n_accepted
    gen = torch.Generator().manual_seed(3)
    g = universal_perturbation(clf, xs, mode="sequential", random_state=gen, **kw)
    assert torch.equal(g.v, s.v)


def test_uap_rejects_non_converged_deepfool(three_class):
    clf, xs = three_class
    res = universal_perturbation(clf, xs, xi=2.0, max_passes=2, max_iter=0)
    assert res.n_accepted == 0 and res.n_deepfool == 2 * len(xs)
    assert torch.equal(res.v, torch.zeros(SHAPE, dtype=xs.dtype))
    assert res.fooling_rates == [0.0, 0.0] and not res.converged
    assert "max_passes" in res.stopping_rule and res.best_pass == 1


def test_uap_progress_is_monotone_and_ends_at_one(three_class):
    clf, xs = three_class
    seen = []
    universal_perturbation(clf, xs, xi=2.0, max_passes=3, batch_size=8, progress=lambda f, msg: seen.append((f, msg)))
    fr = [f for f, _ in seen]
    assert fr and all(0.0 <= f <= 1.0 for f in fr)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(fr))
    assert all(isinstance(m, str) for _, m in seen)
    assert "fooling rate" in seen[-1][1]


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(xi=0.0), "xi"),
        (dict(xi=1.0, delta=1.0), "delta"),
        (dict(xi=1.0, mode="parallel"), "mode"),
        (dict(xi=1.0, max_passes=0), "max_passes"),
        (dict(xi=1.0, norm=3), "norm"),
        (dict(xi=1.0, random_state="x"), "random_state"),
    ],
)
def test_uap_errors(three_class, kw, match):
    clf, xs = three_class
    with pytest.raises(InvalidInputError, match=match):
        universal_perturbation(clf, xs, **kw)


# ---------------------------------------------------------------------------------------- random noise
@pytest.fixture(scope="module")
def binary():
    w = torch.randn(D, generator=_gen(7), dtype=torch.float64)
    W = torch.stack([torch.zeros(D, dtype=torch.float64), w])
    b = torch.tensor([0.0, 0.3], dtype=torch.float64)
    clf = affine_classifier(W, b, input_shape=SHAPE)
    xs = torch.randn(40, *SHAPE, generator=_gen(8), dtype=torch.float64) * 0.5
    return clf, xs, w, 0.3


def test_random_noise_norm_matches_closed_form_on_affine_binary(binary):
    clf, xs, w, b1 = binary
    u = torch.randn(40, 3, D, generator=_gen(9), dtype=torch.float64)
    u = u / u.norm(dim=2, keepdim=True)
    x0 = xs.clone()
    res = random_noise_norm(clf, xs, directions=u, share=0.5, max_norm=1e3, tol=1e-6)
    assert torch.equal(xs, x0)
    assert isinstance(res, NoiseNormResult) and res.ray_norms.shape == (40, 3) and res.norms.shape == (40,)
    f = xs.flatten(1) @ w + b1  # f_1 − f_0: < 0 for class 0, > 0 for class 1
    wu = u @ w  # (40, 3)
    toward = torch.where(f[:, None] < 0, wu > 0, wu < 0)  # moving toward the hyperplane
    t_true = torch.where(toward, f.abs()[:, None] / wu.abs(), torch.full_like(wu, math.inf))
    assert torch.equal(torch.isinf(res.ray_norms), torch.isinf(t_true))
    fin = torch.isfinite(t_true)
    got, true = res.ray_norms[fin], t_true[fin]
    assert bool((got >= true * (1 - 1e-12)).all()) and bool((got <= true / (1 - 1e-6) * (1 + 1e-12)).all())
    assert res.infinite_share == pytest.approx(float((~fin).double().mean()))
    # per point: median over the 3 rays; quantile: smallest t fooling half of the points
    torch.testing.assert_close(res.norms, res.ray_norms.sort(dim=1).values[:, 1])
    srt = res.norms.sort().values
    assert res.quantile == float(srt[19])


def test_random_noise_norm_single_direction_and_max_norm(binary):
    clf, xs, w, b1 = binary
    # the direction straight toward the hyperplane: distance |f| / ‖w‖
    f = xs.flatten(1) @ w + b1
    u = -torch.sign(f)[:, None] * w[None, :]
    res = random_noise_norm(clf, xs, directions=u, max_norm=100.0, share=1.0)
    torch.testing.assert_close(res.norms, f.abs() / w.norm(), rtol=1e-3, atol=0)
    assert res.infinite_share == 0.0 and res.quantile == float(res.norms.max())
    # a search range below the distances: every ray infinite
    short = random_noise_norm(clf, xs, directions=u, max_norm=float(res.norms.min()) * 0.5)
    assert short.infinite_share == 1.0 and math.isinf(short.quantile)


def test_random_noise_norm_random_directions_reproducible(binary):
    clf, xs, _, _ = binary
    a = random_noise_norm(clf, xs, n_directions=2, random_state=4, max_norm=50.0)
    b = random_noise_norm(clf, xs, n_directions=2, random_state=4, max_norm=50.0)
    assert torch.equal(a.ray_norms, b.ray_norms) and a.ray_norms.shape == (40, 2)
    # roughly half the rays of an affine binary classifier move away from the hyperplane
    assert 0.2 < a.infinite_share < 0.8
    with pytest.raises(InvalidInputError, match="share"):
        random_noise_norm(clf, xs, share=0.0)
    with pytest.raises(InvalidInputError, match="directions"):
        random_noise_norm(clf, xs, directions=torch.ones(3, D))


# ---------------------------------------------------------------------------------------- subspace sampling
def test_sample_subspace_norm_span_and_moments():
    B = _orthonormal(30, 6, 1)
    vs = sample_subspace(B, 4, 2.5, n_samples=4000, random_state=0)
    assert vs.shape == (4000, 30) and vs.dtype == torch.float64
    torch.testing.assert_close(vs.norm(dim=1), torch.full((4000,), 2.5, dtype=torch.float64))
    c = vs @ B  # coordinates in the basis: only the first 4 are used
    assert float(c[:, 4:].abs().max()) < 1e-12
    # uniform on the sphere of radius ξ in 4 dims: E c = 0, E c cᵀ = ξ²/4 I
    assert float(c[:, :4].mean(0).abs().max()) < 0.15
    torch.testing.assert_close(
        c[:, :4].T @ c[:, :4] / 4000, 2.5**2 / 4 * torch.eye(4, dtype=torch.float64), atol=0.12, rtol=0
    )
    assert torch.equal(vs, sample_subspace(B, 4, 2.5, n_samples=4000, random_state=0))
    img = sample_subspace(B, 2, 1.0, n_samples=3, random_state=0, shape=(1, 5, 6))
    assert img.shape == (3, 1, 5, 6)


def test_sample_subspace_errors():
    B = _orthonormal(10, 3, 0)
    with pytest.raises(InvalidInputError, match="at most"):
        sample_subspace(B, 4, 1.0, n_samples=2)
    with pytest.raises(InvalidInputError, match="orthonormal"):
        sample_subspace(2 * B, 2, 1.0, n_samples=2)
    with pytest.raises(InvalidInputError, match="shape must multiply"):
        sample_subspace(B, 2, 1.0, n_samples=2, shape=(1, 3, 3))


def test_sample_subspace_accepts_subspace_like_objects():
    class Sub:
        basis = _orthonormal(8, 2, 3)

    assert sample_subspace(Sub(), 2, 1.0, n_samples=2, random_state=1).shape == (2, 8)


def test_fooling_rate_vs_m_normal_span_beats_random():
    """Affine 5-class model in d = 64: random vectors in the span of the normals (S_f, dim L − 1)
    fool far more points than random vectors of a random subspace at the same norm (Fig. 7b / Thm 1)."""
    L, d = 5, 64
    W = torch.randn(L, d, generator=_gen(0), dtype=torch.float64)
    clf = affine_classifier(W, torch.zeros(L, dtype=torch.float64), input_shape=(1, 8, 8))
    xs = 0.3 * torch.randn(80, 1, 8, 8, generator=_gen(1), dtype=torch.float64)
    diffs = (W[1:] - W[0]).T  # (d, L−1): spans the normals
    S_f, _ = torch.linalg.qr(diffs)
    rand = _orthonormal(d, 4, 2)
    x0 = xs.clone()
    seen = []
    curve = fooling_rate_vs_m(
        clf,
        xs,
        {"S_f": S_f, "random": rand},
        [1, 2, 4],
        xi=0.6,
        n_samples=8,
        random_state=0,
        progress=lambda f, m: seen.append(f),
    )
    assert torch.equal(xs, x0)
    assert isinstance(curve, FoolingCurve) and curve.names == ("S_f", "random")
    assert curve.m_values.tolist() == [1, 2, 4] and curve.n_points == 80 and curve.xi == 0.6
    for name in curve.names:
        assert curve.rates[name].shape == (3, 8)
        assert float(curve.rates[name].min()) >= 0 and float(curve.rates[name].max()) <= 1
        assert bool((curve.best[name] >= curve.mean[name]).all())
        torch.testing.assert_close(curve.mean[name], curve.rates[name].mean(1))
    assert bool((curve.mean["S_f"] > curve.mean["random"] + 0.2).all())
    assert seen[-1] == 1.0
    # common random numbers: one basis's curve does not depend on the others evaluated with it
    alone = fooling_rate_vs_m(clf, xs, {"random": rand}, [1, 2, 4], xi=0.6, n_samples=8, random_state=0)
    assert torch.equal(alone.rates["random"], curve.rates["random"])


def test_fooling_rate_vs_m_errors(three_class):
    clf, xs = three_class
    B = _orthonormal(D, 3, 0)
    with pytest.raises(InvalidInputError, match="smallest basis size"):
        fooling_rate_vs_m(clf, xs, {"a": B}, [4], xi=1.0)
    with pytest.raises(InvalidInputError, match="non-empty mapping"):
        fooling_rate_vs_m(clf, xs, {}, [1], xi=1.0)
    with pytest.raises(InvalidInputError, match=r"\(16, M\)"):
        fooling_rate_vs_m(clf, xs, {"a": _orthonormal(10, 2, 0)}, [1], xi=1.0)
