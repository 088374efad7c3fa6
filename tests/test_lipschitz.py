"""Lipschitz bounds and certified radii (geometry.lipschitz, geometry.certify; DESIGN §8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geometry.attacks import boundary_distance
from geometry.certify import certified_accuracy, certify, check_certificates
from geometry.classifier import make_classifier
from geometry.data import load_dataset
from geometry.deepfool import deepfool
from geometry.lipschitz import UnsupportedLayerError, gram_iteration, lipschitz_bound, operator_norm_bounds


def _dense_conv_sigma(conv: nn.Conv2d, shape) -> float:
    """σ₁ of the convolution operator from its dense matrix (only here, at small sizes)."""
    n = math.prod(shape)
    E = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    w = conv.weight.detach().to(torch.float64)
    A = F.conv2d(E, w, None, conv.stride, conv.padding, conv.dilation, conv.groups).reshape(n, -1)
    return float(torch.linalg.matrix_norm(A, ord=2))


def _classifier(model, shape, *, mean=None, std=None, dtype=torch.float64):
    model = model.to(dtype)
    n_classes = model(torch.zeros(1, *shape, dtype=dtype)).shape[1]
    return make_classifier(model, input_shape=shape, class_names=[str(i) for i in range(n_classes)], mean=mean, std=std)


def test_gram_iteration_bounds_singular_values_from_above():
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(7, 30, 20, generator=gen, dtype=torch.float64)
    sigma = torch.linalg.matrix_norm(A, ord=2)
    bound = gram_iteration(A)
    assert torch.all(bound >= sigma) and torch.all(bound <= sigma * 1.001)


def test_linear_layer_bound_is_its_largest_singular_value():
    """A planted spectrum (σ₁ = 3, σ₂ = 1.5): the sound bound is σ₁ up to 1e-6, power iteration reaches it from below."""
    gen = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(13, 13, generator=gen, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(40, 13, generator=gen, dtype=torch.float64))
    s = torch.tensor([3.0, 1.5, *torch.linspace(1.0, 0.1, 11).tolist()], dtype=torch.float64)
    lin = nn.Linear(40, 13).double()
    with torch.no_grad():
        lin.weight.copy_(U @ torch.diag(s) @ V.T)
    up, est, method = operator_norm_bounds(lin, (40,))
    assert 3.0 <= up <= 3.0 * (1 + 1e-6)
    assert est <= 3.0 * (1 + 1e-12) and est == pytest.approx(3.0, rel=1e-9)
    est_short = operator_norm_bounds(lin, (40,), n_power=2)[1]
    assert est_short <= est
    assert "Gram" in method


@pytest.mark.parametrize(
    "cin, cout, size, kernel, padding, stride",
    [(1, 6, 8, 5, 2, 1), (6, 16, 4, 5, 2, 1), (3, 8, 12, 3, 0, 1), (4, 5, 10, 3, 1, 2)],
)
def test_conv_bound_is_above_the_dense_svd_and_within_one_percent(cin, cout, size, kernel, padding, stride):
    torch.manual_seed(cin * 100 + size)
    conv = nn.Conv2d(cin, cout, kernel, padding=padding, stride=stride).double()
    shape = (cin, size, size)
    exact = _dense_conv_sigma(conv, shape)
    up, est, _ = operator_norm_bounds(conv, shape, n_power=200)
    assert exact <= up <= exact * 1.01
    assert est <= exact * (1 + 1e-9)
    # without the dense operator the Fourier bound alone is still sound (looser on small images)
    fourier, _, method = operator_norm_bounds(conv, shape, dense_limit=0)
    assert fourier >= exact and "circular" in method


def test_composition_multiplies_and_residuals_add():
    torch.manual_seed(1)
    shape = (2, 6, 6)
    chain = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(108, 4))
    std = (0.5, 0.25)
    clf = _classifier(chain, shape, mean=(0.1, 0.2), std=std)
    b = lipschitz_bound(clf)
    per = {lb.name: lb.upper for lb in b.layers}
    conv_up, _, _ = operator_norm_bounds(chain[0], shape)
    lin_up, _, _ = operator_norm_bounds(chain[3], (108,))
    assert b.upper == pytest.approx(4.0 * conv_up * lin_up, rel=1e-12)
    assert per["normalisation"] == pytest.approx(4.0)  # normalisation: 1 / min std
    assert b.body_upper == pytest.approx(4.0 * conv_up, rel=1e-12)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.g = nn.Linear(5, 5)
            self.out = nn.Linear(5, 3)

        def forward(self, x):
            x = x.flatten(1)
            return self.out(x + torch.relu(self.g(x)))

    res = Residual()
    clf = _classifier(res, (1, 1, 5))
    b = lipschitz_bound(clf)
    g_up, _, _ = operator_norm_bounds(res.g, (5,))
    out_up, _, _ = operator_norm_bounds(res.out, (5,))
    assert b.upper == pytest.approx((1.0 + g_up) * out_up, rel=1e-12)


def test_pair_refinement_only_when_the_logits_are_a_linear_layer():
    shape = (1, 2, 2)
    plain = _classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Flatten()), shape)
    assert lipschitz_bound(plain).last_weight is not None
    after_relu = _classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU()), shape)
    assert lipschitz_bound(after_relu).last_weight is None  # relu(Wx) is not affine: no pairwise bound


def test_unsupported_layer_is_named():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    clf = _classifier(model, (1, 2, 2))
    with pytest.raises(UnsupportedLayerError, match="LayerNorm at '2'"):
        lipschitz_bound(clf)


@pytest.mark.parametrize("shared", [0.0, 3.0])
def test_affine_certificate_is_exact_with_the_pair_refinement(shared):
    """f(x) = Wx + b: the distance to the boundary is min_j (f_y − f_j)/‖w_y − w_j‖ exactly.

    ``shared``: a component common to every row raises ‖W‖ but not ‖w_y − w_j‖ — the plain bound
    M/(√2‖W‖) then becomes far looser than the pairwise one."""
    gen = torch.Generator().manual_seed(3)
    L, d = 10, 64
    lin = nn.Linear(d, L).double()
    with torch.no_grad():
        common = shared * torch.randn(1, d, generator=gen, dtype=torch.float64)
        lin.weight.copy_(torch.randn(L, d, generator=gen, dtype=torch.float64) + common)
        lin.bias.copy_(torch.randn(L, generator=gen, dtype=torch.float64))
    clf = _classifier(nn.Sequential(nn.Flatten(), lin), (1, 8, 8))
    xs = torch.rand(50, 1, 8, 8, generator=gen, dtype=torch.float64)
    cert = certify(clf, xs)
    logits = clf.logits(xs).double()
    k = logits.argmax(1)
    W = lin.weight.detach()
    diff = W[k][:, None, :] - W[None, :, :].expand(len(xs), L, d)  # (N, L, d)
    dist = (logits.gather(1, k[:, None]) - logits) / diff.norm(dim=2)
    dist[torch.arange(len(xs)), k] = math.inf
    exact = dist.min(1).values.numpy()
    assert np.all(cert.radius_plain <= exact * (1 + 1e-9))
    assert np.allclose(cert.radius_pair, exact, rtol=1e-7)
    # DeepFool reaches the boundary in one step: the certificate never exceeds ‖r‖
    df = deepfool(clf, xs, overshoot=0.0)
    check = check_certificates(cert, df.norms.numpy(), df.converged.numpy())
    assert check.n_checked == len(xs) and check.sound
    looseness = exact / cert.radius_plain  # ≥ 1; docs/certification.md gives the measured values
    assert looseness.min() >= 1.0 - 1e-9
    if shared:  # √2‖W‖ grows with the shared row, the pairwise differences do not
        assert np.median(looseness) > 5.0


def test_certificates_never_exceed_the_smallest_attack_on_digits_lenet(digits_lenet):
    """ε_cert(x) ≤ ‖r(x)‖ at every test point, ‖r‖ the smallest of box-constrained DeepFool and FMN."""
    test = load_dataset("digits", split="test")
    cert = certify(digits_lenet, test.images)
    bd = boundary_distance(digits_lenet, test.images, fmn_max_stepsize=0.1, fmn_steps=50)
    check = check_certificates(cert, bd.distance.numpy(), torch.isfinite(bd.distance).numpy())
    assert check.n_checked >= 0.95 * len(test)
    assert check.sound, f"unsound certificate at {check.violations.tolist()}"
    assert np.all(cert.radius_estimate >= cert.radius)  # the estimate of L is below the sound one
    acc = certified_accuracy(cert, test.labels.numpy(), [0.0, 1e-3, 1.0])
    assert acc[0] == pytest.approx(digits_lenet.test_accuracy, abs=1e-6)
    assert acc[0] >= acc[1] >= acc[2]


def test_torchscript_is_bounded_through_its_graph_and_unknown_nodes_are_named():
    from geometry.loading.torchscript import _TorchScriptModel  # how an uploaded TorchScript file is wrapped

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).eval()
    script = torch.jit.script(model).eval()
    clf = make_classifier(_TorchScriptModel(script), input_shape=(1, 2, 2), class_names=["a", "b"])
    ref = make_classifier(model, input_shape=(1, 2, 2), class_names=["a", "b"])
    assert lipschitz_bound(clf).upper == pytest.approx(lipschitz_bound(ref).upper, rel=1e-12)

    class Exp(nn.Module):
        def forward(self, x):
            return torch.exp(x).flatten(1)[:, :2]

    exp = make_classifier(
        _TorchScriptModel(torch.jit.script(Exp()).eval()), input_shape=(1, 2, 2), class_names=["a", "b"]
    )
    with pytest.raises(UnsupportedLayerError, match=r"aten\.exp"):
        lipschitz_bound(exp)
