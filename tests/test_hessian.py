"""Tests of geometry.hessian: boundary function, gradients and Hessian-vector products (DESIGN §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from geometry.classifier import make_classifier
from geometry.errors import InvalidInputError
from geometry.hessian import (
    CurvatureEstimator,
    LanczosBreakdown,
    as_estimator,
    boundary_function,
    boundary_gradient,
    boundary_operator,
    default_beta,
    default_chunk_size,
    default_h,
    exact_hvp,
    hvp,
    lanczos_top,
    second_difference,
    smooth_twin,
)
from geometry.testing import affine_classifier, quadratic_classifier, sphere_classifier

SHAPE = (1, 4, 4)
D = 16


def _init(net: nn.Module, seed: int, scale: float = 0.7) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return net


def mlp(act: nn.Module, seed: int = 0) -> nn.Module:
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(D, 12),
        act,
        nn.Linear(12, 10),
        type(act)() if not isinstance(act, nn.Softplus) else nn.Softplus(beta=act.beta),
        nn.Linear(10, 3),
    ).double()
    return _init(net, seed)


def conv_relu(seed: int = 1) -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 8),
        nn.ReLU(inplace=True),
        nn.Linear(8, 3),
    ).double()
    return _init(net, seed)


def classifier(net: nn.Module, name="net"):
    return make_classifier(net, input_shape=SHAPE, class_names=["a", "b", "c"], name=name)


def points_and_labels(clf, n=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.rand(n, *SHAPE, generator=gen, dtype=torch.float64)
    logits = clf.logits(z)
    order = logits.argsort(1, descending=True)
    return z, order[:, 0].clone(), order[:, 1].clone()


def dense_hessian(clf, z1, lab, adv):
    def F(flat):
        out = clf.network(flat.reshape(1, *SHAPE))
        return out[0, adv] - out[0, lab]

    return torch.autograd.functional.hessian(F, z1.reshape(-1))


# ------------------------------------------------------------------------------------------ scales
def test_default_h_matches_the_authors_scales():
    for shape, expected in [((1, 28, 28), 0.547), ((3, 32, 32), 1.083), ((1, 8, 8), 0.156)]:
        d = math.prod(shape)
        clf = affine_classifier(torch.zeros(2, d), torch.zeros(2), input_shape=shape)
        assert default_h(clf) == pytest.approx(expected, abs=1e-3)
    clf = affine_classifier(torch.zeros(2, D), torch.zeros(2), input_shape=SHAPE)
    assert default_beta(clf) == pytest.approx(10.0)


# ------------------------------------------------------------------------------------------ F, ∇F
def test_boundary_function_and_gradient_on_the_sphere():
    c = torch.full((D,), 0.5, dtype=torch.float64)
    clf = sphere_classifier(c, 2.0, input_shape=SHAPE)
    u = torch.randn(3, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    inside = (c + 1.0 * u).reshape(3, *SHAPE)
    on = (c + 2.0 * u).reshape(3, *SHAPE)
    lab, adv = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    assert (boundary_function(clf, inside, lab, adv) < 0).all()
    assert boundary_function(clf, on, lab, adv).abs().max() < 1e-12
    bg = boundary_gradient(clf, on, lab, adv)
    torch.testing.assert_close(bg.grad.reshape(3, D), 4.0 * u)  # 2(z − c)
    torch.testing.assert_close(bg.grad_norm, torch.full((3,), 4.0, dtype=torch.float64))
    torch.testing.assert_close(bg.normal.reshape(3, D), u)  # points outward, into the other class


# ------------------------------------------------------------------------------------------ HVP modes
def test_exact_and_finite_difference_hvp_match_the_dense_hessian_of_a_smooth_net():
    clf = classifier(mlp(nn.Softplus()))
    z, lab, adv = points_and_labels(clf, n=3)
    v = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = hvp(clf, z, lab, adv, v, method="exact")
    fd = hvp(clf, z, lab, adv, v, method="finite_difference", h=1e-4)
    assert exact.method == "exact" and exact.h is None and exact.beta is None
    assert fd.method == "finite_difference" and fd.h == 1e-4
    for i in range(3):
        H = dense_hessian(clf, z[i], int(lab[i]), int(adv[i]))
        ref = H @ v[i].reshape(-1)
        assert ref.norm() > 1e-3  # a genuinely curved boundary
        torch.testing.assert_close(exact.hv[i].reshape(-1), ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(fd.hv[i].reshape(-1), ref, rtol=1e-6, atol=1e-7)


def test_relu_net_exact_hvp_is_zero_but_finite_difference_is_not():
    clf = classifier(conv_relu())
    z, lab, adv = points_and_labels(clf, n=5)
    v = torch.randn(5, *SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = hvp(clf, z, lab, adv, v, method="exact").hv
    fd = hvp(clf, z, lab, adv, v, method="finite_difference").hv  # h = 0.156
    fd_wide = hvp(clf, z, lab, adv, v, method="finite_difference", h=1.0).hv
    assert exact.abs().max() == 0.0
    # at scale h the window crosses region boundaries: curvature appears (where it crosses one)
    assert fd.flatten(1).norm(dim=1).max() > 1e-3
    assert fd_wide.flatten(1).norm(dim=1).min() > 1e-3


def test_exact_hvp_falls_back_to_double_backward(monkeypatch):
    clf = classifier(mlp(nn.Tanh()))
    z, lab, adv = points_and_labels(clf, n=3)
    v = torch.randn(3, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    forward = hvp(clf, z, lab, adv, v, method="exact").hv

    def no_jvp(*args, **kwargs):
        raise NotImplementedError("no forward-mode rule (simulated)")

    monkeypatch.setattr(torch.func, "jvp", no_jvp)
    backward = hvp(clf, z, lab, adv, v, method="exact").hv
    torch.testing.assert_close(backward, forward, rtol=1e-10, atol=1e-12)
    # an affine map: the gradient does not depend on x at all, the fallback must still give 0
    aff = affine_classifier(torch.randn(3, D, dtype=torch.float64), torch.zeros(3), input_shape=SHAPE)
    assert hvp(aff, z, lab, adv, v, method="exact").hv.abs().max() == 0.0


def test_smoothed_hvp_is_the_exact_hvp_of_a_softplus_twin_and_leaves_the_classifier_alone():
    net = mlp(nn.ReLU(), seed=2)
    clf = classifier(net)
    before = {k: t.clone() for k, t in clf.network.state_dict().items()}
    beta = 4.0
    z, lab, adv = points_and_labels(clf, n=3, seed=2)
    gen = torch.Generator().manual_seed(9)
    u = torch.randn(3, D, generator=gen, dtype=torch.float64)
    w = torch.randn(3, D, generator=gen, dtype=torch.float64)
    res = hvp(clf, z, lab, adv, u, method="smoothed", beta=beta)
    assert res.method == "smoothed" and res.beta == beta and res.h is None
    Hu = res.hv
    assert Hu.norm(dim=1).min() > 1e-4  # non-zero, unlike the exact HVP of the ReLU net
    # the same weights in a hand-made softplus network give the same exact HVP
    twin = mlp(nn.Softplus(beta=beta), seed=2)
    twin_clf = classifier(twin)
    torch.testing.assert_close(hvp(twin_clf, z, lab, adv, u, method="exact").hv, Hu, rtol=1e-10, atol=1e-12)
    # symmetric and linear: a genuine Hessian
    Hw = hvp(clf, z, lab, adv, w, method="smoothed", beta=beta).hv
    assert ((u * Hw).sum(1) - (w * Hu).sum(1)).abs().max() < 1e-8
    Hlin = hvp(clf, z, lab, adv, 2.0 * u - 3.0 * w, method="smoothed", beta=beta).hv
    torch.testing.assert_close(Hlin, 2.0 * Hu - 3.0 * Hw, rtol=1e-9, atol=1e-10)
    # the classifier was not touched: still ReLU modules, same weights
    assert sum(isinstance(mod, nn.ReLU) for mod in clf.network.modules()) == 2
    assert not any(isinstance(mod, nn.Softplus) for mod in clf.network.modules())
    for k, t in clf.network.state_dict().items():
        assert torch.equal(t, before[k])
    assert smooth_twin(clf.network, beta) is smooth_twin(clf.network, beta)  # cached


def test_smoothed_needs_relu_modules():
    clf = sphere_classifier(torch.zeros(D), 1.0, input_shape=SHAPE)
    z = torch.zeros(1, *SHAPE, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match=r"no nn.ReLU module"):
        hvp(clf, z, [0], [1], torch.ones(1, D, dtype=torch.float64), method="smoothed")


# ------------------------------------------------------------------------------------------ analytic
def test_quadratic_boundary_hvp_and_second_difference_are_exact():
    gen = torch.Generator().manual_seed(4)
    A = torch.randn(D, D, generator=gen, dtype=torch.float64)
    A = A + A.T
    g = torch.randn(D, generator=gen, dtype=torch.float64)
    clf = quadratic_classifier(A, g, torch.zeros(D), input_shape=SHAPE)
    z = torch.randn(4, *SHAPE, generator=gen, dtype=torch.float64)
    v = torch.randn(4, D, generator=gen, dtype=torch.float64)
    lab, adv = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    for method in ("finite_difference", "exact"):
        torch.testing.assert_close(hvp(clf, z, lab, adv, v, method=method, h=0.3).hv, v @ A, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(
        second_difference(clf, z, lab, adv, v, h=0.3), ((v @ A) * v).sum(1), rtol=1e-8, atol=1e-8
    )
    # K directions per point
    vk = torch.randn(4, 5, *SHAPE, generator=gen, dtype=torch.float64)
    out = hvp(clf, z, lab, adv, vk, method="exact")
    assert out.hv.shape == vk.shape and out.n_hvp == 20
    torch.testing.assert_close(out.hv.reshape(4, 5, D), vk.reshape(4, 5, D) @ A)
    assert second_difference(clf, z, lab, adv, vk, h=0.3).shape == (4, 5)


def test_finite_difference_hvp_is_positively_homogeneous_and_zero_on_zero():
    clf = classifier(conv_relu(seed=4))
    z, lab, adv = points_and_labels(clf, n=3, seed=4)
    v = torch.randn(3, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    v[1] = 0.0
    a = hvp(clf, z, lab, adv, v, h=0.2).hv
    b = hvp(clf, z, lab, adv, 3.0 * v, h=0.2).hv
    torch.testing.assert_close(b, 3.0 * a)
    assert a[1].abs().max() == 0.0


def test_affine_boundary_has_zero_hessian():
    gen = torch.Generator().manual_seed(0)
    clf = affine_classifier(torch.randn(3, D, generator=gen), torch.randn(3, generator=gen), input_shape=SHAPE)
    z, lab, adv = points_and_labels(clf, n=3)
    v = torch.randn(3, D, generator=gen, dtype=torch.float64)
    for method in ("finite_difference", "exact"):
        assert hvp(clf, z, lab, adv, v, method=method).hv.abs().max() < 1e-12
    assert second_difference(clf, z, lab, adv, v).abs().max() < 1e-10


@pytest.mark.parametrize("seed", range(3))
def test_no_function_mutates_its_inputs(seed):
    clf = classifier(conv_relu(seed=seed))
    z, lab, adv = points_and_labels(clf, n=3, seed=seed)
    v = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    copies = [t.clone() for t in (z, lab, adv, v)]
    for method in ("finite_difference", "exact", "smoothed"):
        hvp(clf, z, lab, adv, v, method=method)
    boundary_gradient(clf, z, lab, adv)
    boundary_function(clf, z, lab, adv)
    second_difference(clf, z, lab, adv, v)
    op = boundary_operator(clf, z, lab, adv)
    op.quadratic_form(v.reshape(3, D))
    for t, c in zip((z, lab, adv, v), copies, strict=True):
        assert torch.equal(t, c)


def test_operator_chunking_does_not_change_results():
    clf = classifier(mlp(nn.Softplus(), seed=6))
    z, lab, adv = points_and_labels(clf, n=7, seed=6)
    v = torch.randn(7, D, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for method in ("finite_difference", "exact"):
        big = boundary_operator(clf, z, lab, adv, method=method, chunk_size=128)
        small = boundary_operator(clf, z, lab, adv, method=method, chunk_size=2)
        torch.testing.assert_close(small.hvp(v), big.hvp(v))
        torch.testing.assert_close(small.quadratic_form(v), big.quadratic_form(v))
    # rows paired with points through index: row 0 ↔ point 6, rows 1, 2 ↔ point 0
    out = big.hvp(v[:3], torch.tensor([6, 0, 0]))
    w = v.clone()
    w[6] = v[0]
    torch.testing.assert_close(out[0], big.hvp(w)[6])
    w[0] = v[1]
    torch.testing.assert_close(out[1], big.hvp(w)[0])
    w[0] = v[2]
    torch.testing.assert_close(out[2], big.hvp(w)[0])


def test_errors_say_what_was_expected():
    clf = classifier(mlp(nn.Softplus()))
    z, lab, adv = points_and_labels(clf, n=2)
    v = torch.ones(2, D, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="must differ"):
        hvp(clf, z, lab, lab, v)
    with pytest.raises(InvalidInputError, match="method must be one of"):
        hvp(clf, z, lab, adv, v, method="magic")
    with pytest.raises(InvalidInputError, match="h must be a positive"):
        hvp(clf, z, lab, adv, v, h=0.0)
    with pytest.raises(InvalidInputError, match="v must have"):
        hvp(clf, z, lab, adv, torch.ones(2, 5, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="labels must lie in"):
        hvp(clf, z, torch.tensor([0, 7]), adv, v)
    with pytest.raises(InvalidInputError, match="NaN"):
        hvp(clf, z * float("nan"), lab, adv, v)


def test_hvp_works_inside_no_grad():
    clf = classifier(mlp(nn.ReLU(), seed=3))
    z, lab, adv = points_and_labels(clf, n=2, seed=3)
    v = torch.randn(2, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = {m: hvp(clf, z, lab, adv, v, method=m).hv for m in ("finite_difference", "exact", "smoothed")}
    with torch.no_grad():
        for m, expected in ref.items():
            torch.testing.assert_close(hvp(clf, z, lab, adv, v, method=m).hv, expected)
        assert boundary_gradient(clf, z, lab, adv).grad_norm.min() > 0


# ---------------------------------------------------------------------------------------- the estimator
def test_curvature_estimator_resolves_its_defaults_once():
    clf = classifier(mlp(nn.ReLU()))
    fd = CurvatureEstimator()
    assert fd.h is None and not fd.is_resolved
    r = fd.resolve(clf)
    assert r.h == default_h(clf) and r.beta is None and r.chunk_size == default_chunk_size(clf.d) and r.is_resolved
    assert r.resolve(clf) == r  # idempotent
    sm = CurvatureEstimator(method="smoothed", h=0.3).resolve(clf)  # a scale the method does not use is dropped
    assert sm.h is None and sm.beta == default_beta(clf) and sm.scale == sm.beta
    assert CurvatureEstimator(method="exact", beta=3.0).resolve(clf).scale is None
    assert CurvatureEstimator(h=0.5) == CurvatureEstimator(h=0.5, chunk_size=3)  # chunking does not define a result
    assert r.key() == {
        "method": "finite_difference",
        "h": repr(r.h),
        "beta": "None",
        "point": "boundary",
        "tangent": True,
    }
    for bad, match in (
        (dict(method="magic"), "method must be one of"),
        (dict(h=0.0), "h must be a positive"),
        (dict(h=float("nan")), "h must be a positive"),
        (dict(method="smoothed", beta=-1.0), "beta must be a positive"),
        (dict(point="outside"), "point must be"),
    ):
        with pytest.raises(InvalidInputError, match=match):
            CurvatureEstimator(**bad)


def test_estimator_and_loose_keywords_give_identical_products():
    clf = classifier(mlp(nn.ReLU()))
    z, lab, adv = points_and_labels(clf, n=3)
    v = torch.randn(len(z), D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for method, kw in (("finite_difference", {"h": 0.2}), ("exact", {}), ("smoothed", {"beta": 4.0})):
        loose = hvp(clf, z, lab, adv, v, method=method, **kw)
        est = hvp(clf, z, lab, adv, v, estimator=CurvatureEstimator(method=method, **kw))
        assert torch.equal(loose.hv, est.hv) and (loose.method, loose.h, loose.beta) == (est.method, est.h, est.beta)
    assert as_estimator(method="exact") == CurvatureEstimator(method="exact")
    with pytest.raises(InvalidInputError, match="not both"):
        hvp(clf, z, lab, adv, v, estimator=CurvatureEstimator(), h=0.3)


# ---------------------------------------------------------------------------------------- one HVP, one eigen-solver
def test_exact_hvp_of_a_quadratic_both_modes():
    gen = torch.Generator().manual_seed(0)
    M = torch.randn(D, D, generator=gen, dtype=torch.float64)
    A = M + M.T
    x = torch.randn(3, D, generator=gen, dtype=torch.float64)
    v = torch.randn(3, D, generator=gen, dtype=torch.float64)

    def f(t: torch.Tensor) -> torch.Tensor:  # Σ_i ½ x_iᵀ A x_i + sin(x_i0): Hessian A + diag(−sin x_i0 e0)
        return 0.5 * ((t @ A) * t).sum() + torch.sin(t[:, 0]).sum()

    expected = v @ A
    expected[:, 0] -= torch.sin(x[:, 0]) * v[:, 0]
    for mode in ("auto", "reverse"):
        torch.testing.assert_close(exact_hvp(f, x, v, mode=mode), expected, rtol=1e-12, atol=1e-12)
    assert exact_hvp(lambda t: torch.tensor(2.0), x, v).abs().max() == 0  # f does not depend on x
    with pytest.raises(InvalidInputError, match="mode"):
        exact_hvp(f, x, v, mode="sideways")  # type: ignore[arg-type]


def test_lanczos_top_finds_a_planted_spectrum_and_counts_applications():
    gen = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(40, 40, generator=gen, dtype=torch.float64))
    spectrum = torch.linspace(-6.0, 4.0, 40, dtype=torch.float64)
    A = Q @ torch.diag(spectrum) @ Q.T
    seen: list[int] = []
    v0 = torch.randn(40, generator=gen, dtype=torch.float64).numpy()
    res = lanczos_top(lambda V: V @ A, 40, 3, which="LA", v0=v0, tol=1e-12, on_apply=seen.append)
    np.testing.assert_allclose(np.sort(res.values)[::-1], spectrum.flip(0)[:3].numpy(), rtol=1e-10)
    assert res.vectors is not None and res.vectors.shape == (40, 3) and res.converged
    assert seen == list(range(1, res.n_apply + 1))  # one callback per application, counted
    lm = lanczos_top(lambda V: V @ A, 40, 2, which="LM", v0=v0, tol=1e-12, return_eigenvectors=False)
    assert lm.vectors is None
    np.testing.assert_allclose(np.sort(np.abs(lm.values))[::-1], [6.0, 6.0 - 10.0 / 39], rtol=1e-10)
    with pytest.raises(LanczosBreakdown):  # a vanishing operator: ARPACK breaks down at once
        lanczos_top(lambda V: torch.zeros_like(V), 40, 2, v0=v0)
