"""Curvature profiles and the CURE penalty (geometry.profile, geometry.regimes; issue 11)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from geometry.classifier import make_classifier
from geometry.errors import InvalidInputError
from geometry.profile import curvature_profile, finite_difference_curvature, hessian_top_eigenvalues, loss_along
from geometry.regimes import TRAINING_REGIMES, check_regime, cure_h, cure_penalty

pytestmark = pytest.mark.usefixtures("one_thread")


def _planted(d: int = 30, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    spectrum = torch.linspace(-3.0, 5.0, d, dtype=torch.float64)
    A = Q @ torch.diag(spectrum) @ Q.T
    return 0.5 * (A + A.T), spectrum


def test_lanczos_recovers_a_planted_spectrum():
    A, spectrum = _planted()

    def loss(x):  # ½ xᵀAx per sample: its input Hessian is A everywhere
        flat = x.flatten(1)
        return 0.5 * ((flat @ A) * flat).sum(1)

    x = torch.randn(1, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    vals, n_hvp = hessian_top_eigenvalues(loss, x, k=6)
    expected = spectrum[torch.argsort(-spectrum.abs())][:6].numpy()
    np.testing.assert_allclose(vals, expected, rtol=1e-6)
    assert n_hvp > 0


def test_profile_matches_the_dense_hessian_of_a_small_net():
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.8)
    clf = make_classifier(net, input_shape=(1, 3, 4), class_names=list("abcd"))
    xs = torch.rand(4, 1, 3, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3])
    prof = curvature_profile(clf, xs, labels, k=3, trace_samples=4000, h=0.1)
    for i in range(4):
        H = torch.autograd.functional.hessian(
            lambda t, i=i: nn.functional.cross_entropy(clf.network(t.reshape(1, 1, 3, 4)), labels[i : i + 1]),
            xs[i].flatten(),
        )
        ev = torch.linalg.eigvalsh(H)
        top = ev[torch.argsort(-ev.abs())][:3]
        np.testing.assert_allclose(prof.eigenvalues[i].numpy(), top.numpy(), rtol=1e-5, atol=1e-9)
        assert float(prof.eigenvalues[i].min()) > -1e-9  # Jᵀ(diag p − ppᵀ)J is PSD for ReLU nets
        assert abs(float(prof.trace[i]) - float(torch.trace(H))) < 0.1 * float(torch.trace(H)) + 1e-9
    assert torch.allclose(prof.spectral_norm, prof.eigenvalues[:, 0].abs())
    assert bool((prof.finite_difference > 0).all())


def test_cure_penalty_zero_for_a_linear_loss_and_closed_form_on_a_quadratic():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20, dtype=torch.float64, generator=g)
    xs = torch.randn(5, 20, dtype=torch.float64, generator=g)
    pen, _ = cure_penalty(lambda x: x @ a + 3.0, xs, h=0.7)
    assert torch.allclose(pen, torch.zeros(5, dtype=torch.float64), atol=1e-24)
    A, _ = _planted(20)
    pen, lx = cure_penalty(lambda x: 0.5 * ((x @ A) * x).sum(1), xs, h=0.7)
    z = torch.sign(xs @ A) / math.sqrt(20)  # ∇ℓ = A x
    expected = (0.7**2) * ((z @ A) ** 2).sum(1)
    assert torch.allclose(pen, expected, rtol=1e-10)
    assert torch.allclose(lx, 0.5 * ((xs @ A) * xs).sum(1))
    with pytest.raises(InvalidInputError):
        cure_penalty(lambda x: x @ a, xs, h=0.0)


def test_finite_difference_curvature_of_an_affine_logit_model_is_its_hessian_scale():
    # linear logits, CE loss: ∇ℓ = Wᵀ(p − e_y) changes with x; at a tiny h the quotient → ‖H z‖
    g = torch.Generator().manual_seed(2)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 3)).double()
    clf = make_classifier(net, input_shape=(1, 2, 3), class_names=list("abc"))
    xs = torch.rand(3, 1, 2, 3, generator=g, dtype=torch.float64)
    fd = finite_difference_curvature(clf, xs, h=1e-5)
    for i in range(3):
        y = clf.predict(xs[i : i + 1])

        def f(t, y=y):
            return nn.functional.cross_entropy(clf.network(t.reshape(1, 1, 2, 3)), y)

        H = torch.autograd.functional.hessian(f, xs[i].flatten())
        x0 = xs[i].flatten().requires_grad_(True)
        (gr,) = torch.autograd.grad(f(x0), x0)
        z = torch.sign(gr) / math.sqrt(6)
        assert abs(float(fd[i]) - float((H @ z).norm())) < 1e-4 * float((H @ z).norm()) + 1e-9


def test_loss_along_starts_at_the_loss_of_x():
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 3)).double()
    clf = make_classifier(net, input_shape=(1, 2, 3), class_names=list("abc"))
    x = torch.rand(1, 1, 2, 3, dtype=torch.float64)
    u = torch.randn(2, 1, 2, 3, dtype=torch.float64)
    vals = loss_along(clf, x, 1, u, torch.tensor([0.0, 0.5]))
    l0 = nn.functional.cross_entropy(clf.network(x), torch.tensor([1]))
    assert vals.shape == (2, 2) and torch.allclose(vals[:, 0], l0.detach().double().expand(2))


def test_regime_registry():
    assert {"standard", "pgd-at", "fgsm-at", "cure"} <= set(TRAINING_REGIMES)
    with pytest.raises(InvalidInputError):
        check_regime("nope", {})
    with pytest.raises(InvalidInputError):
        check_regime("pgd-at", {})
    assert cure_h({"h": 1.5, "h_start": 0.1}, 0, 5) == pytest.approx(0.1)
    assert cure_h({"h": 1.5, "h_start": 0.1}, 4, 5) == pytest.approx(1.5)
