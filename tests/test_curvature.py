"""Tests of geometry.curvature: S_c, S_f, curvature along directions, K_S versus m (DESIGN §5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from geometry.classifier import make_classifier
from geometry.curvature import (
    Subspace,
    average_curvature,
    curvature_along,
    curved_subspace,
    flat_subspace,
    load_subspace,
    random_subspace,
    save_subspace,
)
from geometry.errors import InvalidInputError
from geometry.hessian import hvp
from geometry.testing import affine_classifier, quadratic_classifier, sphere_classifier

SHAPE = (1, 6, 6)
D = 36


@dataclass(frozen=True)
class FakeDeepFool:
    """The fields of DeepFoolResult that the curvature functions read."""

    r: torch.Tensor
    label: torch.Tensor
    adv_label: torch.Tensor
    converged: torch.Tensor
    overshoot: float = 0.0


def run_deepfool(clf, xs, overshoot=0.02):
    """geometry.deepfool when it exists, else a tiny ℓ2 DeepFool over all classes (stand-in)."""
    try:
        from geometry.deepfool import deepfool
    except ImportError:
        deepfool = None
    if deepfool is not None:
        return deepfool(clf, xs, overshoot=overshoot)
    x0 = xs.detach().clone()
    label = clf.predict(x0)
    r_tot = torch.zeros_like(x0)
    adv = label.clone()
    done = torch.zeros(len(x0), dtype=torch.bool)
    for _ in range(50):
        x = (x0 + (1 + overshoot) * r_tot).requires_grad_(True)
        out = clf(x)
        pred = out.argmax(1)
        done = pred != label
        adv = torch.where(done, pred, adv)
        if done.all():
            break
        grads = torch.stack(
            [torch.autograd.grad(out[:, k].sum(), x, retain_graph=True)[0] for k in range(out.shape[1])], 1
        )
        idx = torch.arange(len(x0))
        w = grads - grads[idx, label][:, None]
        f = (out - out[idx, label][:, None]).detach()
        wn = w.flatten(2).norm(dim=2)
        dist = f.abs() / wn.clamp_min(1e-30)
        dist[idx, label] = float("inf")
        best = dist.argmin(1)
        wb, fb = w[idx, best], f[idx, best]
        step = ((fb.abs() + 1e-4) / wn[idx, best] ** 2)[:, None, None, None] * wb
        r_tot = r_tot + torch.where(done[:, None, None, None], torch.zeros_like(step), step.detach())
    return FakeDeepFool(r=(1 + overshoot) * r_tot, label=label, adv_label=adv, converged=done, overshoot=overshoot)


def sphere_setup(n=12, R=2.0, seed=0, overshoot=0.0):
    """Points inside a ball of radius R and their exact DeepFool perturbations (to the sphere)."""
    gen = torch.Generator().manual_seed(seed)
    c = torch.full((D,), 0.3, dtype=torch.float64)
    clf = sphere_classifier(c, R, input_shape=SHAPE)
    u = torch.randn(n, D, generator=gen, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    rho = 0.3 * R + 0.5 * R * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    xs = (c + rho * u).reshape(n, *SHAPE)
    r = ((1 + overshoot) * (R - rho) * u).reshape(n, *SHAPE)
    df = FakeDeepFool(
        r=r,
        label=torch.zeros(n, dtype=torch.long),
        adv_label=torch.ones(n, dtype=torch.long),
        converged=torch.ones(n, dtype=torch.bool),
        overshoot=overshoot,
    )
    return clf, xs, df, c


def planted_quadratic(seed=0, lambdas=(6.0, 4.0, 3.0, 2.0)):
    """F(x) = gᵀ(x − x0) + ½(x − x0)ᵀA(x − x0) with g = 3 e0 and A ⟂ e0 with a planted spectrum."""
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(D - 1, D - 1, generator=gen, dtype=torch.float64))
    rest = -0.5 + torch.rand(D - 1 - len(lambdas), generator=gen, dtype=torch.float64)  # in [-0.5, 0.5]
    spec = torch.cat([torch.tensor(lambdas, dtype=torch.float64), rest])
    A = torch.zeros(D, D, dtype=torch.float64)
    A[1:, 1:] = Q @ torch.diag(spec) @ Q.T
    top = torch.zeros(D, len(lambdas), dtype=torch.float64)
    top[1:] = Q[:, : len(lambdas)]
    g = torch.zeros(D, dtype=torch.float64)
    g[0] = 3.0
    x0 = torch.full((D,), 0.5, dtype=torch.float64)
    return quadratic_classifier(A, g, x0, input_shape=SHAPE), A, g, x0, top


def softplus_net(seed=0):
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(D, 16), nn.Softplus(), nn.Linear(16, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.8 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return make_classifier(net, input_shape=SHAPE, class_names=["a", "b", "c"])


def relu_net(seed=0):
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.8 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return make_classifier(net, input_shape=SHAPE, class_names=["a", "b", "c"])


def boundary_free_result(clf, xs):
    """A 'DeepFool result' with r = 0 (z = x) and the runner-up class as adv_label."""
    order = clf.logits(xs).argsort(1, descending=True)
    n = len(xs)
    return FakeDeepFool(
        r=torch.zeros_like(xs),
        label=order[:, 0].clone(),
        adv_label=order[:, 1].clone(),
        converged=torch.ones(n, dtype=torch.bool),
    )


def dense_average_hessian(clf, z, lab, adv, *, method, tangent=True, h=None):
    """(1/n) Σ P_i H_i P_i built column by column from HVPs of the basis vectors."""
    n = len(z)
    eye = torch.eye(D, dtype=torch.float64)
    total = torch.zeros(D, D, dtype=torch.float64)
    for i in range(n):
        zi = z[i : i + 1].expand(D, *SHAPE)
        Hi = hvp(clf, zi, lab[i].repeat(D), adv[i].repeat(D), eye, method=method, h=h).hv.T  # column k = H e_k
        if tangent:
            g = torch.autograd.functional.jacobian(
                lambda x, i=i: (
                    clf.network(x.reshape(1, *SHAPE))[0, adv[i]] - clf.network(x.reshape(1, *SHAPE))[0, lab[i]]
                ),
                z[i].reshape(-1),
            )
            nvec = g / g.norm()
            P = eye - torch.outer(nvec, nvec)
            Hi = P @ Hi @ P
        total += Hi
    return total / n


def assert_same_subspace(B1, B2, tol=1e-6):
    angles = scipy.linalg.subspace_angles(np.asarray(B1), np.asarray(B2))
    assert np.max(angles) < tol, angles


# ------------------------------------------------------------------------------------------ S_c
def test_curved_subspace_recovers_a_planted_spectrum():
    clf, _A, _g, x0, top = planted_quadratic()
    gen = torch.Generator().manual_seed(1)
    n = 10
    t = 0.2 + torch.rand(n, 1, generator=gen, dtype=torch.float64)
    e0 = torch.zeros(D, dtype=torch.float64)
    e0[0] = 1.0
    xs = (x0 - t * e0).reshape(n, *SHAPE)  # along the normal line: r(x) = t e0 exactly, z = x0
    df = run_deepfool(clf, xs, overshoot=0.0)
    assert bool(df.converged.all())
    for method in ("finite_difference", "exact"):
        s = curved_subspace(clf, xs, 4, method=method, solver="eigsh", deepfool_result=df, tol=1e-10)
        assert s.kind == "curved" and s.solver == "eigsh" and s.method == method and s.n == n
        torch.testing.assert_close(
            s.spectrum, torch.tensor([6.0, 4.0, 3.0, 2.0], dtype=torch.float64), rtol=1e-6, atol=1e-6
        )
        assert_same_subspace(s.basis, top)
        # re-evaluated curvatures along the basis vectors: the planted eigenvalues (K), / ‖∇F‖ = 3 (κ)
        torch.testing.assert_close(s.curvatures, s.spectrum, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(s.kappas, s.spectrum / 3.0, rtol=1e-6, atol=1e-6)
        assert s.asymmetry < 1e-8
        torch.testing.assert_close(s.basis.T @ s.basis, torch.eye(4, dtype=torch.float64), atol=1e-10, rtol=0)
    assert s.h is None and curved_subspace(clf, xs, 2, deepfool_result=df).h == pytest.approx(10 * 6 / 512)


def test_curved_subspace_matches_the_tangent_average_with_tilted_normals():
    clf, A, _g, x0, _top = planted_quadratic(seed=3)
    gen = torch.Generator().manual_seed(2)
    n = 8
    w = 0.3 * torch.randn(n, D, generator=gen, dtype=torch.float64)
    w[:, 0] = -0.5  # on x's side of the boundary, off the normal line: each z_i has its own normal
    xs = (x0 + w).reshape(n, *SHAPE)
    df = run_deepfool(clf, xs)
    assert bool(df.converged.all())
    z = xs + df.r
    lab, adv = df.label, df.adv_label
    ref = dense_average_hessian(clf, z, lab, adv, method="exact")
    evals, evecs = torch.linalg.eigh(ref)
    for solver in ("eigsh", "dense"):
        s = curved_subspace(clf, xs, 3, method="exact", solver=solver, deepfool_result=df, tol=1e-12)
        torch.testing.assert_close(s.spectrum, evals.flip(0)[:3], rtol=1e-8, atol=1e-8)
        assert_same_subspace(s.basis, evecs[:, -3:])
    # the untangented average is A itself
    s = curved_subspace(clf, xs, 3, method="exact", tangent=False, solver="eigsh", deepfool_result=df, tol=1e-12)
    torch.testing.assert_close(s.spectrum, torch.linalg.eigvalsh(A).flip(0)[:3], rtol=1e-8, atol=1e-8)


def test_eigsh_agrees_with_the_dense_average_hessian_of_a_smooth_net():
    clf = softplus_net()
    xs = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    df = boundary_free_result(clf, xs)
    ref = dense_average_hessian(clf, xs, df.label, df.adv_label, method="exact")
    evals, evecs = torch.linalg.eigh(ref)
    s = curved_subspace(clf, xs, 4, method="exact", solver="eigsh", deepfool_result=df, tol=1e-12)
    torch.testing.assert_close(s.spectrum, evals.flip(0)[:4], rtol=1e-8, atol=1e-10)
    assert_same_subspace(s.basis, evecs[:, -4:], tol=1e-5)
    assert s.asymmetry < 1e-10  # the exact Hessian average is symmetric
    assert s.n_hvp == s.n_matvec * 6 and s.n_matvec > 0
    dense = curved_subspace(clf, xs, 4, method="exact", solver="dense", deepfool_result=df)
    torch.testing.assert_close(dense.spectrum, s.spectrum, rtol=1e-8, atol=1e-10)
    # curvatures: mean over points of K_i(u) = (P_i u)ᵀH_i(P_i u)/‖P_i u‖² (not uᵀH̄u = Ritz value)
    along = curvature_along(clf, xs, s.basis.T, method="exact", deepfool_result=df)
    torch.testing.assert_close(s.curvatures, along.curvature.mean(0), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s.kappas, along.kappa.mean(0), rtol=1e-10, atol=1e-12)


def test_finite_difference_on_a_relu_net_reports_asymmetry_and_reevaluates():
    clf = relu_net(seed=1)
    xs = torch.rand(8, *SHAPE, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    df = run_deepfool(clf, xs)
    s = curved_subspace(clf, xs, 3, solver="eigsh", deepfool_result=df, tol=1e-4, h=0.5, random_state=3)
    assert s.method == "finite_difference" and s.h == 0.5
    assert 0.0 <= s.asymmetry <= 1.0 and s.asymmetry > 1e-6  # not a symmetric operator
    assert torch.isfinite(s.curvatures).all() and torch.isfinite(s.kappas).all()
    again = curved_subspace(clf, xs, 3, solver="eigsh", deepfool_result=df, tol=1e-4, h=0.5, random_state=3)
    assert torch.equal(again.basis, s.basis)  # random_state fixes eigsh's start vector
    exact = curved_subspace(clf, xs, 3, method="exact", solver="eigsh", deepfool_result=df)
    assert exact.spectrum.abs().max() < 1e-10  # piecewise linear: zero Hessian almost everywhere
    smooth = curved_subspace(clf, xs, 3, method="smoothed", beta=5.0, solver="dense", deepfool_result=df)
    assert smooth.beta == 5.0 and smooth.h is None and smooth.asymmetry < 1e-10


def test_non_converged_points_are_dropped_and_progress_is_reported():
    clf, xs, df, _ = sphere_setup(n=6)
    conv = torch.tensor([True, False, True, True, False, True])
    df = FakeDeepFool(r=df.r, label=df.label, adv_label=df.adv_label, converged=conv)
    calls = []
    s = curved_subspace(clf, xs, 2, solver="eigsh", deepfool_result=df, progress=lambda f, msg: calls.append((f, msg)))
    assert s.n == 4 and s.n_dropped == 2
    fr = [f for f, _ in calls]
    assert all(0.0 <= f <= 1.0 for f in fr) and fr[-1] == 1.0 and fr == sorted(fr)
    assert any("Hessian-vector" in msg for _, msg in calls)
    with pytest.raises(InvalidInputError, match="converged on none"):
        curved_subspace(
            clf, xs, 2, deepfool_result=FakeDeepFool(df.r, df.label, df.adv_label, torch.zeros(6, dtype=torch.bool))
        )


def test_curved_subspace_argument_errors():
    clf, xs, df, _ = sphere_setup(n=3)
    with pytest.raises(InvalidInputError, match="m must be an integer"):
        curved_subspace(clf, xs, D, solver="eigsh", deepfool_result=df)
    with pytest.raises(InvalidInputError, match="m must be an integer"):
        curved_subspace(clf, xs, 0, deepfool_result=df)
    with pytest.raises(InvalidInputError, match="point must be"):
        curved_subspace(clf, xs, 2, point="middle", deepfool_result=df)
    with pytest.raises(InvalidInputError, match="solver"):
        curved_subspace(clf, xs, 2, solver="lobpcg", deepfool_result=df)
    with pytest.raises(InvalidInputError, match="shape"):
        curved_subspace(clf, xs, 2, deepfool_result=FakeDeepFool(df.r[:2], df.label, df.adv_label, df.converged))


# ------------------------------------------------------------------------------------------ curvature along
def test_sphere_has_curvature_one_over_R_along_tangent_directions():
    R = 2.0
    clf, xs, df, c = sphere_setup(n=5, R=R)
    V = torch.randn(7, *SHAPE, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    for method in ("finite_difference", "exact"):
        res = curvature_along(clf, xs, V, method=method, deepfool_result=df)
        assert res.curvature.shape == (5, 7) and res.method == method
        torch.testing.assert_close(
            res.kappa, torch.full((5, 7), 1 / R, dtype=torch.float64)
        )  # positive: wraps around x
        torch.testing.assert_close(res.curvature, torch.full((5, 7), 2.0, dtype=torch.float64))  # H = 2I
        torch.testing.assert_close(res.grad_norm, torch.full((5,), 2 * R, dtype=torch.float64))
        assert res.F.abs().max() < 1e-12 and bool(res.converged.all())
        assert ((res.tangent_fraction > 0) & (res.tangent_fraction <= 1 + 1e-12)).all()
    # a single image and a single (d,) direction
    one = curvature_along(
        clf,
        xs[0],
        V[0].reshape(-1),
        deepfool_result=FakeDeepFool(df.r[:1], df.label[:1], df.adv_label[:1], df.converged[:1]),
    )
    assert one.kappa.shape == (1, 1) and one.kappa[0, 0] == pytest.approx(1 / R)
    # point inside (x + 0.8 r): the level set through z is a smaller sphere, κ = 1/‖z − c‖
    ins = curvature_along(clf, xs, V, point="inside", deepfool_result=df)
    dist = (xs + 0.8 * df.r).reshape(5, D).sub(c).norm(dim=1)
    torch.testing.assert_close(ins.kappa, (1 / dist)[:, None].expand(5, 7))
    assert ins.point == "inside" and (ins.F < 0).all()


def test_sphere_with_deepfool_overshoot():
    R = 2.0
    clf, xs, _, c = sphere_setup(n=5, R=R)
    df = run_deepfool(clf, xs)  # overshoot 0.02: z just outside the sphere
    V = torch.randn(4, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    res = curvature_along(clf, xs, V, deepfool_result=df)
    dist = (xs + df.r).reshape(5, D).sub(c).norm(dim=1)
    assert (dist >= R).all()  # DeepFool's linear step overshoots a convex F: z lies outside
    torch.testing.assert_close(res.kappa, (1 / dist)[:, None].expand(5, 4))
    assert (res.F > 0).all()


def test_affine_boundary_has_zero_curvature():
    gen = torch.Generator().manual_seed(0)
    clf = affine_classifier(torch.randn(4, D, generator=gen), torch.randn(4, generator=gen), input_shape=SHAPE)
    xs = torch.rand(6, *SHAPE, generator=gen, dtype=torch.float64)
    df = run_deepfool(clf, xs)
    assert bool(df.converged.all())
    V = torch.randn(5, D, generator=gen, dtype=torch.float64)
    for method in ("finite_difference", "exact"):
        res = curvature_along(clf, xs, V, method=method, deepfool_result=df)
        assert res.curvature.abs().max() < 1e-9 and res.kappa.abs().max() < 1e-9
        s = curved_subspace(clf, xs, 3, method=method, solver="eigsh", deepfool_result=df)
        assert s.spectrum.abs().max() < 1e-9 and s.curvatures.abs().max() < 1e-9


# ------------------------------------------------------------------------------------------ S_f, random
def test_flat_subspace_of_an_affine_classifier_has_rank_at_most_L_minus_1():
    L = 4
    gen = torch.Generator().manual_seed(2)
    clf = affine_classifier(torch.randn(L, D, generator=gen), torch.randn(L, generator=gen), input_shape=SHAPE)
    xs = torch.rand(30, *SHAPE, generator=gen, dtype=torch.float64)
    df = run_deepfool(clf, xs)
    s = flat_subspace(clf, xs, 6, deepfool_result=df)
    assert s.kind == "flat" and s.basis.shape == (D, 6) and s.n == int(df.converged.sum())
    assert (s.spectrum[: L - 1] > 1e-3).all()
    assert s.spectrum[L - 1 :].abs().max() < 1e-10
    # the normals lie in the span of the pairwise differences of W's rows
    W = clf.network.W_
    diffs = (W[1:] - W[0]).T
    assert_same_subspace(s.basis[:, : L - 1], diffs, tol=1e-8)
    torch.testing.assert_close(s.basis.T @ s.basis, torch.eye(6, dtype=torch.float64), atol=1e-10, rtol=0)
    assert torch.isnan(s.curvatures).all()
    with pytest.raises(InvalidInputError, match="m must be"):
        flat_subspace(clf, xs, 31, deepfool_result=df)


def test_random_subspace_is_orthonormal_and_reproducible():
    a = random_subspace(D, 5, random_state=3, input_shape=SHAPE)
    b = random_subspace(D, 5, random_state=3)
    c = random_subspace(D, 5, random_state=torch.Generator().manual_seed(4))
    assert a.kind == "random" and torch.equal(a.basis, b.basis) and not torch.equal(a.basis, c.basis)
    torch.testing.assert_close(a.basis.T @ a.basis, torch.eye(5, dtype=torch.float64), atol=1e-12, rtol=0)
    assert a.images().shape == (5, *SHAPE)
    assert a.spectrum_kind == "none" and bool(a.spectrum.isnan().all()) and a.solver == "qr"
    with pytest.raises(InvalidInputError):
        random_subspace(D, D + 1)
    with pytest.raises(InvalidInputError):
        random_subspace(D, 2, input_shape=(1, 5, 5))


# ------------------------------------------------------------------------------------------ K_S versus m
def test_average_curvature_on_the_sphere():
    R = 2.0
    clf, xs, df, _ = sphere_setup(n=8, R=R)
    sub = random_subspace(D, 10, random_state=1)
    for method in ("finite_difference", "exact"):
        curve = average_curvature(clf, xs, sub, [1, 4, 10], n_directions=6, method=method, deepfool_result=df)
        assert curve.per_point.shape == (3, 8) and curve.kind == "random" and curve.method == method
        torch.testing.assert_close(curve.mean, torch.full((3,), 2.0, dtype=torch.float64))  # paper's K: H = 2I
        torch.testing.assert_close(curve.kappa_mean, torch.full((3,), 1 / R, dtype=torch.float64))  # κ = 1/R
        assert curve.std.max() < 1e-9 and curve.kappa_std.max() < 1e-9
        assert torch.equal(curve.share_positive, torch.ones(3, dtype=torch.float64))
        assert torch.equal(curve.m_values, torch.tensor([1, 4, 10]))
    assert curve.n_hvp == 3 * 6 * 8


def test_average_curvature_follows_the_planted_spectrum():
    clf, _A, _g, x0, _top = planted_quadratic()
    gen = torch.Generator().manual_seed(1)
    t = 0.2 + torch.rand(5, 1, generator=gen, dtype=torch.float64)
    e0 = torch.zeros(D, dtype=torch.float64)
    e0[0] = 1.0
    xs = (x0 - t * e0).reshape(5, *SHAPE)
    df = run_deepfool(clf, xs, overshoot=0.0)
    s = curved_subspace(clf, xs, 4, solver="eigsh", deepfool_result=df)
    curve = average_curvature(clf, xs, s, [1, 2, 4], n_directions=50, deepfool_result=df, random_state=0)
    assert curve.mean[0] == pytest.approx(6.0, rel=1e-6)  # only the top direction
    assert 2.0 < float(curve.mean[2]) < 6.0 and bool((curve.share_positive == 1).all())
    assert curve.mean[0] > curve.mean[1] > curve.mean[2] - 0.5
    with pytest.raises(InvalidInputError, match="m must be"):
        average_curvature(clf, xs, s, [5], deepfool_result=df)
    with pytest.raises(InvalidInputError, match="dimension"):
        average_curvature(clf, xs, random_subspace(D + 1, 2), [1], deepfool_result=df)


# ------------------------------------------------------------------------------------------ inputs, io
@pytest.mark.parametrize("seed", range(3))
def test_no_function_mutates_its_inputs(seed):
    clf, xs, df, _ = sphere_setup(n=4, seed=seed)
    xs_copy, r_copy = xs.clone(), df.r.clone()
    state = {k: v.clone() for k, v in clf.network.state_dict().items()}
    V = torch.randn(3, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    V_copy = V.clone()
    s = curved_subspace(clf, xs, 2, deepfool_result=df)
    basis_copy = s.basis.clone()
    flat_subspace(clf, xs, 2, deepfool_result=df)
    curvature_along(clf, xs, V, deepfool_result=df)
    average_curvature(clf, xs, s, [1, 2], n_directions=2, deepfool_result=df)
    s.first(1)
    assert torch.equal(xs, xs_copy) and torch.equal(df.r, r_copy) and torch.equal(V, V_copy)
    assert torch.equal(s.basis, basis_copy)
    for k, v in clf.network.state_dict().items():
        assert torch.equal(v, state[k])


def test_curved_subspace_runs_deepfool_itself():
    clf, xs, _, _ = sphere_setup(n=4)
    try:
        import geometry.deepfool  # noqa: F401
    except ImportError:
        pytest.skip("geometry.deepfool not written yet")
    s = curved_subspace(clf, xs, 2, solver="eigsh")
    assert s.n == 4 and s.spectrum == pytest.approx([2.0, 2.0], rel=1e-6)
    assert flat_subspace(clf, xs, 2).n == 4


def test_subspace_first_and_save_load_round_trip(tmp_path):
    clf, xs, df, _ = sphere_setup(n=4)
    s = curved_subspace(clf, xs, 3, solver="eigsh", deepfool_result=df)
    f = s.first(2)
    assert f.basis.shape == (D, 2) and f.spectrum.shape == (2,) and f.m == 2 and f.kind == "curved"
    with pytest.raises(InvalidInputError):
        s.first(4)
    for sub in (s, flat_subspace(clf, xs, 2, deepfool_result=df), random_subspace(D, 3, random_state=0)):
        path = save_subspace(tmp_path / f"{sub.kind}.subspace", sub)
        back = load_subspace(path)
        assert isinstance(back, Subspace)
        assert back.spectrum_kind == sub.spectrum_kind
        for name in ("basis", "spectrum", "curvatures", "kappas"):
            assert torch.equal(getattr(back, name), getattr(sub, name)) or (
                torch.isnan(getattr(sub, name)).all() and torch.isnan(getattr(back, name)).all()
            )
        for name in (
            "kind",
            "n",
            "n_dropped",
            "n_hvp",
            "n_matvec",
            "method",
            "h",
            "beta",
            "point",
            "tangent",
            "solver",
            "input_shape",
        ):
            assert getattr(back, name) == getattr(sub, name), name
        assert back.asymmetry == sub.asymmetry or (np.isnan(back.asymmetry) and np.isnan(sub.asymmetry))
    bad = tmp_path / "bad.subspace"
    bad.write_bytes(b"not a subspace")
    with pytest.raises(InvalidInputError, match="not a Boundary Atlas subspace"):
        load_subspace(bad)
