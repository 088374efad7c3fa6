"""DeepFool on analytic float64 classifiers (DESIGN §4–5): exact answers where the geometry is known."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from geometry.classifier import make_classifier
from geometry.deepfool import DeepFoolResult, deepfool, rho_adv
from geometry.errors import InvalidInputError
from geometry.testing import affine_classifier, sphere_classifier

SHAPE = (2, 3, 3)
D = 18


def _affine(seed: int = 0, n_classes: int = 5):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n_classes, D, generator=g, dtype=torch.float64)
    b = torch.randn(n_classes, generator=g, dtype=torch.float64)
    return affine_classifier(W, b, input_shape=SHAPE), W, b


def _points(n: int, seed: int = 1, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, *SHAPE, generator=g, dtype=torch.float64)


def _affine_reference(W, b, x, norm, overshoot):
    """Independent reference: projection onto the nearest pairwise hyperplane (CVPR 2016, Eq. 8 / §3.3).

    ℓ2: l = argmin_j |f_j − f_k| / ‖w_j − w_k‖₂, r = (|f_l − f_k| + 1e-4) / ‖w‖₂² · w;
    ℓ∞: l = argmin_j |f_j − f_k| / ‖w_j − w_k‖₁, r = (|f_l − f_k| + 1e-4) / ‖w‖₁ · sign(w);
    both times (1 + overshoot). (1e-4 is Algorithm 2's numerical-stability constant.)
    """
    out = []
    for xi in x.reshape(len(x), -1):
        f = W @ xi + b
        k = int(torch.argmax(f))
        best = None
        for j in range(len(f)):
            if j == k:
                continue
            w = W[j] - W[k]
            fp = abs(float(f[j] - f[k]))
            dual = float(w.norm(p=2)) if norm == 2 else float(w.abs().sum())
            dist = fp / dual
            if best is None or dist < best[0]:
                best = (dist, fp, w, dual)
        _, fp, w, dual = best
        if norm == 2:
            r = (fp + 1e-4) / dual**2 * w
        else:
            r = (fp + 1e-4) / dual * torch.sign(w)
        out.append((1 + overshoot) * r)
    return torch.stack(out).reshape(x.shape)


# ---------------------------------------------------------------------------- affine: exact in one step
@pytest.mark.parametrize("norm", [2, math.inf])
@pytest.mark.parametrize("overshoot", [0.0, 0.02, 0.5])
def test_affine_exact_in_one_step(norm, overshoot):
    clf, W, b = _affine()
    x = _points(12)
    res = deepfool(clf, x, norm=norm, overshoot=overshoot)
    ref = _affine_reference(W, b, x, norm, overshoot)
    assert isinstance(res, DeepFoolResult)
    torch.testing.assert_close(res.r, ref, rtol=1e-10, atol=1e-12)
    assert res.n_iter.tolist() == [1] * 12
    assert res.converged.all()
    assert (res.adv_label != res.label).all()
    torch.testing.assert_close(res.x_adv, x + res.r, rtol=0, atol=0)
    expected_norms = ref.flatten(1).norm(p=2 if norm == 2 else float("inf"), dim=1)
    torch.testing.assert_close(res.norms, expected_norms)
    assert res.norm == float(norm) and res.overshoot == overshoot
    # the unscaled r lies (up to 1e-4 / ‖w‖) on the nearest hyperplane
    assert res.r.dtype == torch.float64 and res.r.device.type == "cpu" and not res.r.requires_grad


def test_affine_l2_distance_is_hyperplane_distance():
    """‖r‖₂/(1+overshoot) equals min_j |f_j − f_k| / ‖w_j − w_k‖₂ (+1e-4/‖w‖)."""
    clf, W, b = _affine(seed=3, n_classes=4)
    x = _points(6, seed=4)
    res = deepfool(clf, x, overshoot=0.02)
    for i, xi in enumerate(x.reshape(6, -1)):
        f = W @ xi + b
        k = int(f.argmax())
        dists = [abs(float(f[j] - f[k])) / float((W[j] - W[k]).norm()) for j in range(4) if j != k]
        assert float(res.norms[i]) / 1.02 == pytest.approx(min(dists), abs=2e-4)
        assert int(res.label[i]) == k


def test_affine_candidates_restrict_classes():
    """With candidates=2 only the runner-up class is considered."""
    clf, W, b = _affine(seed=5, n_classes=6)
    x = _points(5, seed=6)
    res = deepfool(clf, x, candidates=2, overshoot=0.0)
    for i, xi in enumerate(x.reshape(5, -1)):
        f = W @ xi + b
        order = torch.argsort(f, descending=True)
        k, j = int(order[0]), int(order[1])
        w = W[j] - W[k]
        r = (abs(float(f[j] - f[k])) + 1e-4) / float(w.norm()) ** 2 * w
        torch.testing.assert_close(res.r[i].reshape(-1), r)


def test_misclassified_input_uses_predicted_label():
    """DeepFool knows no ground truth: label is k_hat(x), r goes to the nearest boundary of *that* class."""
    W = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    b = torch.zeros(3, dtype=torch.float64)
    clf = affine_classifier(W, b, input_shape=(1, 1, 2))
    # "true" class 1 (x₀ < 0 half-plane), but placed where class 0 wins
    x = torch.tensor([[[[0.8, 0.3]]]], dtype=torch.float64)
    assert int(clf.predict(x)[0]) == 0
    res = deepfool(clf, x, overshoot=0.0)
    assert int(res.label[0]) == 0
    # nearest boundary of class 0: with class 2 (f2 − f0 = x₁ − x₀, distance 0.5/√2) vs class 1 (0.8)
    w = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    expected = (0.5 + 1e-4) / 2.0 * w
    torch.testing.assert_close(res.r.reshape(-1), expected)
    assert int(res.adv_label[0]) == 2


# ---------------------------------------------------------------------------- nonlinear: iterations, convergence
def _sphere(radius: float = 1.0):
    c = torch.zeros(D, dtype=torch.float64)
    return sphere_classifier(c, radius, input_shape=SHAPE)


def test_sphere_from_outside_needs_several_steps():
    """From outside, Newton's step on ‖x‖² − R² undershoots the sphere: several iterations."""
    clf = _sphere(1.0)
    x = _points(5, seed=7, scale=3.0)
    res = deepfool(clf, x, max_iter=50)
    assert res.converged.all()
    assert (res.n_iter > 1).all()
    assert (res.label == 1).all() and (res.adv_label == 0).all()
    # r is radial and ends just inside the sphere: ‖x + r‖ ≈ R (overshoot 2 % of ‖r‖)
    radial = x.flatten(1) / x.flatten(1).norm(dim=1, keepdim=True)
    cos = (res.r.flatten(1) * radial).sum(1) / res.norms
    torch.testing.assert_close(cos, -torch.ones(5, dtype=torch.float64))
    end = res.x_adv.flatten(1).norm(dim=1)
    assert (end < 1.0).all() and (end > 1.0 - 0.03 * res.norms).all()


def test_sphere_from_inside_crosses_in_one_step():
    clf = _sphere(2.0)
    x = _points(4, seed=8, scale=0.2)
    res = deepfool(clf, x)
    assert (res.label == 0).all() and res.converged.all() and (res.n_iter == 1).all()


def test_not_converged_when_max_iter_too_small():
    clf = _sphere(1.0)
    x = _points(3, seed=9, scale=4.0)  # ‖x‖ ≈ 17 ≫ R: one step lands at ≈ ‖x‖/2
    res = deepfool(clf, x, max_iter=1)
    assert not res.converged.any()
    assert (res.n_iter == 1).all()
    assert (res.adv_label == res.label).all()
    assert (res.norms > 0).all()
    torch.testing.assert_close(res.x_adv, x + res.r, rtol=0, atol=0)


def test_max_iter_zero():
    clf, _, _ = _affine()
    x = _points(3)
    res = deepfool(clf, x, max_iter=0)
    assert not res.converged.any()
    assert (res.n_iter == 0).all()
    assert (res.r == 0).all() and (res.norms == 0).all()
    assert torch.equal(res.label, clf.predict(x))
    assert torch.equal(res.adv_label, res.label)


# ---------------------------------------------------------------------------- batching, inputs, dtypes
def _small_mlp(seed: int):
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the global RNG
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Flatten(), nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4)
        ).double()
    return make_classifier(net, input_shape=SHAPE, class_names=list("abcd"))


@pytest.mark.parametrize("norm", [2, math.inf])
def test_batched_equals_one_by_one(norm):
    clf = _small_mlp(0)
    x = _points(10, seed=10)
    full = deepfool(clf, x, norm=norm, batch_size=4)
    assert (full.n_iter > 1).any(), "the nonlinear case should need more than one step somewhere"
    for i in range(len(x)):
        one = deepfool(clf, x[i], norm=norm)
        torch.testing.assert_close(one.r[0], full.r[i], rtol=1e-9, atol=1e-12)
        assert int(one.n_iter[0]) == int(full.n_iter[i])
        assert bool(one.converged[0]) == bool(full.converged[i])
        assert int(one.label[0]) == int(full.label[i]) and int(one.adv_label[0]) == int(full.adv_label[i])


@pytest.mark.parametrize("seed", range(10))
def test_mlp_property_seeds(seed):
    """Random smooth MLPs: converged samples change label at x_adv; x_adv = x + r; labels match predict."""
    clf = _small_mlp(seed)
    x = _points(8, seed=100 + seed)
    res = deepfool(clf, x)
    assert torch.equal(res.label, clf.predict(x))
    assert torch.equal(res.adv_label, clf.predict(res.x_adv))
    assert torch.equal(res.converged, res.adv_label != res.label)
    assert torch.equal(res.x_adv, x + res.r)
    assert (res.n_iter <= 50).all() and (res.n_iter >= 1).all()


def test_inputs_not_mutated():
    clf = _small_mlp(1)
    x = _points(5, seed=11)
    before = x.clone()
    deepfool(clf, x, norm=2)
    deepfool(clf, x, norm=math.inf, clip=True)
    assert torch.equal(x, before)
    assert not x.requires_grad


def test_single_image_and_float32():
    clf = _small_mlp(2).network.float()
    clf32 = make_classifier(clf, input_shape=SHAPE, class_names=list("abcd"))
    x = _points(1, seed=12)[0].float()
    res = deepfool(clf32, x)
    assert res.r.shape == (1, *SHAPE) and res.r.dtype == torch.float32
    assert res.label.dtype == torch.int64 and res.converged.dtype == torch.bool
    assert res.norms.dtype == torch.float32


def test_clip_keeps_bounds():
    clf = _small_mlp(3)
    x = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    res = deepfool(clf, x, clip=True)
    assert (res.x_adv >= 0).all() and (res.x_adv <= 1).all()
    torch.testing.assert_close(res.x_adv, x + res.r)
    assert torch.equal(res.adv_label, clf.predict(res.x_adv))


def test_empty_batch():
    clf, _, _ = _affine()
    res = deepfool(clf, torch.zeros(0, *SHAPE, dtype=torch.float64))
    assert res.r.shape == (0, *SHAPE) and res.label.shape == (0,) and res.n_forward == 0


def test_diagnostics_count_passes():
    clf, _, _ = _affine(n_classes=5)
    res = deepfool(clf, _points(4), batch_size=2)
    # per chunk: one forward with gradients + one check forward; 4 candidate gradients per step
    assert res.n_forward == 4
    assert res.n_backward == 2 * 4


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("norm", [1, 0, 3, "l2", None, -math.inf, True])
def test_bad_norm(norm):
    clf, _, _ = _affine()
    with pytest.raises(InvalidInputError, match="norm"):
        deepfool(clf, _points(2), norm=norm)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_iter=-1),
        dict(candidates=1),
        dict(batch_size=0),
        dict(overshoot=-0.1),
        dict(overshoot=float("nan")),
        dict(max_iter=2.5),
    ],
)
def test_bad_settings(kwargs):
    clf, _, _ = _affine()
    with pytest.raises(InvalidInputError):
        deepfool(clf, _points(2), **kwargs)


def test_wrong_shape():
    clf, _, _ = _affine()
    with pytest.raises(InvalidInputError, match="shape"):
        deepfool(clf, torch.zeros(2, 3, 3, 2, dtype=torch.float64))
    with pytest.raises(InvalidInputError):
        deepfool(clf, torch.zeros(D, dtype=torch.float64))


def test_nan_input():
    clf, _, _ = _affine()
    x = _points(3)
    x[1, 0, 0, 0] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        deepfool(clf, x)


def test_nan_logits():
    net = nn.Sequential(nn.Flatten(), nn.Linear(D, 3)).double()
    with torch.no_grad():
        net[1].weight[0, 0] = float("nan")
    clf = make_classifier(net, input_shape=SHAPE, class_names=list("abc"))
    with pytest.raises(InvalidInputError, match="NaN or inf logits"):
        deepfool(clf, _points(2))


# ---------------------------------------------------------------------------- rho_adv
def test_rho_adv():
    clf, _, _ = _affine()
    x = _points(5)
    res = deepfool(clf, x)
    expected = float((res.r.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).mean())
    assert rho_adv(res, x) == pytest.approx(expected)
    with pytest.raises(InvalidInputError):
        rho_adv(res, x[:3])
