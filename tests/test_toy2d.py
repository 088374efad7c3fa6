"""Subspace-constrained DeepFool, DeepFool's iterates, and the 2-D lab (DESIGN §9) on classifiers
whose geometry is known in closed form."""

from __future__ import annotations

import math
from math import lgamma

import numpy as np
import pytest
import torch

from geometry.deepfool import deepfool
from geometry.errors import InvalidInputError
from geometry.study.constrained import constrained_ratio
from geometry.study.toy2d import LabSettings, lab_study, universal_panel
from geometry.subspaces import random_subspace
from geometry.testing import affine_classifier, sphere_classifier
from geometry.toy2d import TOY_MODELS, as_points, fooled_mask, osculating_circle, toy_classifier, toy_data

D = 50
SHAPE = (2, 5, 5)


def _binary_affine(seed: int = 0, d: int = D, shape=SHAPE):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    W = torch.stack([torch.zeros(d, dtype=torch.float64), w])
    b = torch.tensor([0.0, 0.3], dtype=torch.float64)
    return affine_classifier(W, b, input_shape=shape), w


# ------------------------------------------------------------------ subspace-constrained DeepFool
@pytest.mark.parametrize("m", [1, 3, 10, 50])
def test_affine_constrained_norm_is_exact(m):
    """‖r_S‖ = ‖r‖ · ‖w‖ / ‖P_S w‖ on a two-class affine classifier, and r_S lies in S."""
    clf, w = _binary_affine()
    x = torch.randn(6, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    B = random_subspace(D, m, random_state=m).basis
    full = deepfool(clf, x, overshoot=0.0)
    con = deepfool(clf, x, overshoot=0.0, subspace=B)
    assert con.converged.all() and (con.n_iter == 1).all() and con.subspace_dim == m
    expected = full.norms * w.norm() / (B.T @ w).norm()
    torch.testing.assert_close(con.norms, expected, rtol=1e-6, atol=1e-9)
    r = con.r.flatten(1)
    torch.testing.assert_close(r @ B @ B.T, r, rtol=1e-9, atol=1e-12)  # every step is in S


def test_random_subspaces_follow_sqrt_d_over_m():
    """Averaged over random subspaces, ‖r_S‖/‖r‖ matches its exact mean (≈ √(d/m)) within sampling error (NIPS 2016)."""
    d = 400
    clf, _ = _binary_affine(seed=3, d=d, shape=(1, 20, 20))
    x = torch.randn(4, 1, 20, 20, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    res = constrained_ratio(clf, x, [10, 160], n_subspaces=20, random_state=0)
    # ratio = 1/‖P_S u‖ with ‖P_S u‖² ~ Beta(m/2, (d−m)/2) for a uniformly random S, so the exact mean is
    # E[β^(-1/2)] = Γ((m−1)/2) Γ(d/2) / (Γ(m/2) Γ((d−1)/2)): √(d/m) up to Jensen's gap (within 10 % for m ≥ 10).
    for i, m in enumerate(res.ms.tolist()):
        exact = math.exp(lgamma((m - 1) / 2) + lgamma(d / 2) - lgamma(m / 2) - lgamma((d - 1) / 2))
        draws = res.ratio[i, :, 0]  # one point suffices: a binary affine classifier has one normal
        assert torch.allclose(res.ratio[i], draws[:, None].expand_as(res.ratio[i]), rtol=1e-6)
        se = float(draws.std()) / math.sqrt(len(draws))
        assert abs(float(draws.mean()) - exact) < 4 * se, (m, float(draws.mean()), exact, se)
        assert abs(exact / math.sqrt(d / m) - 1) < 0.1
    assert torch.allclose(res.theory, torch.tensor([math.sqrt(d / m) for m in (10, 160)], dtype=torch.float64))
    assert (res.converged_share == 1).all()


def test_subspace_argument_is_checked():
    clf, _ = _binary_affine()
    x = torch.zeros(1, *SHAPE, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="orthonormal"):
        deepfool(clf, x, subspace=2 * torch.eye(D)[:, :3])
    with pytest.raises(InvalidInputError, match="d = 50"):
        deepfool(clf, x, subspace=torch.eye(10)[:, :3])
    with pytest.raises(InvalidInputError, match="norm=2"):
        deepfool(clf, x, subspace=torch.eye(D)[:, :3], norm="inf")


# ------------------------------------------------------------------ DeepFool's iterates in 2-D
def test_iterates_affine_one_step_onto_the_line():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(2, 2, generator=g, dtype=torch.float64)
    b = torch.randn(2, generator=g, dtype=torch.float64)
    clf = affine_classifier(W, b, input_shape=(1, 1, 2))
    x = torch.randn(8, 1, 1, 2, generator=g, dtype=torch.float64)
    df = deepfool(clf, x, overshoot=0.0, return_iterates=True)
    assert df.iterates.shape == (2, 8, 1, 1, 2) and df.steps.shape == (1, 8, 1, 1, 2)
    w = W[1] - W[0]
    dist = ((x.flatten(1) @ w) + (b[1] - b[0])).abs() / w.norm()  # analytic distance to the line
    torch.testing.assert_close(df.norms, dist + 1e-4 / w.norm(), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(df.iterates[1], x + df.r)
    torch.testing.assert_close(df.iterates[0], x)


def test_iterates_converge_to_the_circle_from_outside():
    """Outside a circle of radius R, the linearisation undershoots: the iterates approach the circle
    monotonically and ‖r‖ → ‖x − c‖ − R (analytic distance), up to the overshoot."""
    R = 1.0
    clf = sphere_classifier(torch.zeros(2), R, input_shape=(1, 1, 2))
    ang = torch.linspace(0, 2 * math.pi, 7, dtype=torch.float64)[:-1]
    rad = torch.linspace(1.5, 4.0, 6, dtype=torch.float64)
    x = torch.stack([rad * ang.cos(), rad * ang.sin()], 1).reshape(-1, 1, 1, 2)
    overshoot = 1e-3
    df = deepfool(clf, x, overshoot=overshoot, return_iterates=True, max_iter=100)
    assert df.converged.all() and (df.n_iter > 1).all()
    gap = df.iterates.flatten(2).norm(dim=2) - R  # (T+1, N) distance of each iterate to the circle
    assert (gap[1:] <= gap[:-1] + 1e-12).all()  # monotone approach
    dist = rad - R
    torch.testing.assert_close(df.norms, dist, rtol=3 * overshoot, atol=1e-6)


def test_inside_the_circle_one_step_overshoots_by_the_curvature():
    """From inside, the other class wraps around x (positive curvature): the linearised step
    (1 − ρ²)/(2ρ) is longer than the distance 1 − ρ, and the osculating circle is the circle."""
    clf = sphere_classifier(torch.tensor([0.5, -0.2]), 1.0, input_shape=(1, 1, 2))
    rho = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    x = torch.stack([0.5 + rho, -0.2 + 0 * rho], 1).reshape(-1, 1, 1, 2)
    df = deepfool(clf, x, overshoot=0.0)
    torch.testing.assert_close(df.norms, (1 - rho**2) / (2 * rho) + 1e-4 / (2 * rho), rtol=1e-9, atol=1e-9)
    assert (df.norms > 1 - rho).all()
    osc = osculating_circle(clf, x[2], method="exact")
    # z = x + r(x) lies just outside the circle (the step overshoots): κ is that of the level set through z
    assert osc.kappa == pytest.approx(1.0 / np.linalg.norm(osc.z - [0.5, -0.2]), rel=1e-9)
    assert osc.kappa == pytest.approx(1.0, rel=1e-2)
    np.testing.assert_allclose(osc.center, [0.5, -0.2], atol=1e-6)


# ------------------------------------------------------------------ universal vectors in 2-D
@pytest.mark.parametrize("model", ["affine", "mlp-tanh"])
def test_fooling_rate_equals_brute_force_count(model):
    data = toy_data("circles", n_points=60, noise=0.05, random_state=1)
    clf = toy_classifier(model, data, steps=150)
    v = np.array([0.3, -0.2])
    panel = universal_panel(clf, data, kind="custom", xi=0.36, v=v)
    count = 0
    for p in data.x:  # one point at a time, no batching
        before = int(clf.predict(as_points(p))[0])
        after = int(clf.predict(as_points(p + torch.from_numpy(v)))[0])
        count += before != after
    assert panel.fooling_rate == count / len(data.x)
    assert panel.fooled.sum() == count
    np.testing.assert_array_equal(fooled_mask(clf, data.x, v), panel.fooled)


def test_flat_model_universal_direction_is_the_normal():
    """On an affine model S_f is the normal w/‖w‖: the S_f vector of norm ξ fools exactly the
    points within ξ of the line on the side it points away from."""
    data = toy_data("moons", n_points=80, noise=0.1, random_state=0)
    clf = toy_classifier("affine", data)
    panel = universal_panel(clf, data, kind="S_f", xi=0.5)
    w = clf.network.W_[1] - clf.network.W_[0]
    assert abs(float(torch.from_numpy(panel.v) @ w) / (0.5 * float(w.norm()))) == pytest.approx(1.0, abs=1e-9)
    F = data.x @ w + (clf.network.b_[1] - clf.network.b_[0])
    signed = (
        F / w.norm() * np.sign(float(torch.from_numpy(panel.v) @ w))
    )  # along v: negative = v points toward the line
    expected = ((signed < 0) & (signed > -0.5)).numpy()
    np.testing.assert_array_equal(panel.fooled, expected)


# ------------------------------------------------------------------ the lab study on every model (every dataset: test_app_geometry_2d)
@pytest.mark.parametrize("model", list(TOY_MODELS))
def test_lab_study_every_model(model):
    st = lab_study(LabSettings(dataset="circles", model=model, n_points=60, resolution=24, point=5))
    assert st.converged
    np.testing.assert_allclose(st.iterates[-1], st.x + st.r, atol=1e-9)
    if model in ("linear", "affine"):
        assert st.osculating is not None and st.osculating.kappa == pytest.approx(0.0, abs=1e-9)


def test_lab_settings_are_checked():
    with pytest.raises(InvalidInputError, match="dataset"):
        LabSettings(dataset="nope")
    with pytest.raises(InvalidInputError, match="point"):
        LabSettings(n_points=30, point=30)


# ------------------------------------------------------------------ Fig. 5: sections along the universal direction
def _straight_pieces(sec) -> float:
    """Largest distance (in grid cells) of a boundary cell from the line fitted to its class pair."""
    lab = sec.labels.numpy()
    a, b = sec.alpha.numpy(), sec.beta.numpy()
    da, db = a[1] - a[0], b[1] - b[0]
    worst = 0.0
    pts: dict = {}
    for i in range(lab.shape[0]):  # label changes along α (between columns j and j+1)
        for j in np.nonzero(lab[i, 1:] != lab[i, :-1])[0]:
            pair = tuple(sorted((lab[i, j], lab[i, j + 1])))
            pts.setdefault(pair, []).append(((a[j] + a[j + 1]) / 2 / da, b[i] / db))
    for j in range(lab.shape[1]):  # label changes along β
        for i in np.nonzero(lab[1:, j] != lab[:-1, j])[0]:
            pair = tuple(sorted((lab[i, j], lab[i + 1, j])))
            pts.setdefault(pair, []).append((a[j] / da, (b[i] + b[i + 1]) / 2 / db))
    for p in pts.values():
        P = np.asarray(p)
        if len(P) < 3:
            continue
        P = P - P.mean(0)
        worst = max(worst, float(np.abs(P @ np.linalg.svd(P)[2][1]).max()))
    return worst


def test_sections_along_the_universal_direction_are_straight_on_an_affine_classifier():
    """An affine classifier's boundaries are hyperplanes: in every plane (r(x), v) along the UAP each
    boundary between two classes is a straight line (within a grid cell), the curvature along v is 0,
    and the same check finds the circle classifier's sections curved."""
    from geometry.study.fig5 import universal_sections
    from geometry.universal import universal_perturbation

    g = torch.Generator().manual_seed(5)
    W = torch.randn(4, D, generator=g, dtype=torch.float64)
    clf = affine_classifier(W, torch.zeros(4, dtype=torch.float64), input_shape=SHAPE)
    xs = torch.randn(40, *SHAPE, generator=g, dtype=torch.float64)
    uap = universal_perturbation(clf, xs, xi=1.0, max_passes=3, random_state=0)
    res = universal_sections(clf, xs[:4], uap.v, resolution=41, method="exact")
    for row in (res.universal, res.random):
        for sec in row.sections:
            assert (sec.labels != sec.label).any()  # the boundary is in the window
            assert _straight_pieces(sec) < 0.75
        np.testing.assert_allclose(row.kappa.numpy(), 0.0, atol=1e-9)  # flat: zero curvature along v
    expected = clf.predict(xs[:4] + uap.v) != clf.predict(xs[:4])  # brute force, the same v for all
    assert torch.equal(res.universal.fooled, expected)
    # the check can fail: the circle's sections bend
    sphere = sphere_classifier(torch.zeros(D), 1.0, input_shape=SHAPE)
    inside = 0.3 * xs[:2] / xs[:2].flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    curved = universal_sections(sphere, inside, xs[5], resolution=41, method="exact", extent_factor=1.5)
    assert max(_straight_pieces(sec) for sec in curved.universal.sections) > 2


def test_constrained_study_is_the_ratio_on_the_settings_points_and_is_cached():
    """The study layer's smallest example: constrained_study = constrained_ratio on the first n_points
    held-out points at m = 1, 2, 4, …, d, computed once per (network, points, settings)."""
    from geometry.data import load_dataset
    from geometry.study import ConstrainedSettings, PointSplit, constrained_study, split_points
    from geometry.study.constrained import dimensions

    digits = load_dataset("digits", split="test")
    clf, _ = _binary_affine(seed=5, d=64, shape=tuple(digits.images.shape[1:]))
    points = split_points(digits, None, PointSplit(n_estimate=10, n_heldout=12, seed=0))
    settings = ConstrainedSettings(n_points=5, n_subspaces=2, max_iter=50, seed=3)
    got = constrained_study(clf, points, settings)
    ref = constrained_ratio(clf, points.heldout[:5], dimensions(64), n_subspaces=2, max_iter=50, random_state=3)
    assert dimensions(64) == [1, 2, 4, 8, 16, 32, 64] and dimensions(10) == [1, 2, 4, 8, 10]
    assert torch.equal(got.ms, ref.ms) and torch.allclose(got.ratio, ref.ratio, equal_nan=True)
    assert constrained_study(clf, points, settings) is got  # cached: the same object, nothing recomputed
    other = constrained_study(clf, points, ConstrainedSettings(n_points=5, n_subspaces=2, max_iter=50, seed=4))
    assert other is not got and not torch.allclose(other.ratio, got.ratio, equal_nan=True)  # the key holds the seed
    with pytest.raises(InvalidInputError):
        ConstrainedSettings(n_points=0)
