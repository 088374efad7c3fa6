"""PGD, robust accuracy and the distance to the boundary (geometry.attacks, issue 11)."""

from __future__ import annotations

import math

import pytest
import torch

from geometry.attacks import boundary_distance, pgd, robust_accuracy
from geometry.deepfool import deepfool
from geometry.errors import InvalidInputError
from geometry.testing import affine_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 4, 4)
D = 16


def _two_class_affine(seed: int = 0):
    """Two classes through F = wᵀx + c with the points well inside the box [0, 1]^d."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D, generator=g, dtype=torch.float64)
    W = torch.stack([torch.zeros(D, dtype=torch.float64), w])
    xs = 0.4 + 0.2 * torch.rand(20, *SHAPE, generator=g, dtype=torch.float64)
    # offset so that every point is in class 0 at an ℓ∞ distance ≤ 0.05 and ℓ2 distance ≤ 0.1
    F0 = xs.flatten(1) @ w
    c = -F0.max() - 0.01
    clf = affine_classifier(W, torch.tensor([0.0, float(c)], dtype=torch.float64), input_shape=SHAPE)
    F = xs.flatten(1) @ w + c
    return clf, xs, F, w


@pytest.mark.parametrize("norm", [math.inf, 2])
def test_pgd_finds_the_exact_distance_of_an_affine_classifier(norm):
    clf, xs, F, w = _two_class_affine()
    dual = w.abs().sum() if math.isinf(norm) else w.norm()
    dist = F.abs() / dual  # exact ℓp distance to the hyperplane
    labels = torch.zeros(len(xs), dtype=torch.long)
    assert bool((clf.predict(xs) == 0).all())
    for i in range(len(xs)):
        x, d_i = xs[i : i + 1], float(dist[i])
        # step ε/4: the random start's component along the hyperplane shrinks by ≈ 0.8 per ℓ2 projection
        hit = pgd(clf, x, labels[:1], eps=d_i * 1.01, norm=norm, steps=100, step_size=d_i / 4, random_state=1)
        miss = pgd(clf, x, labels[:1], eps=d_i * 0.99, norm=norm, steps=100, restarts=3, random_state=1)
        assert bool(hit.success[0]) and not bool(miss.success[0])
        assert float(hit.norms[0]) <= d_i * 1.01 + 1e-12
        assert bool(((hit.x_adv >= 0) & (hit.x_adv <= 1)).all())


def test_pgd_does_not_mutate_and_validates():
    clf, xs, _, _ = _two_class_affine()
    before = xs.clone()
    labels = torch.zeros(len(xs), dtype=torch.long)
    pgd(clf, xs, labels, eps=0.1, steps=3)
    assert torch.equal(xs, before)
    with pytest.raises(InvalidInputError):
        pgd(clf, xs, labels, eps=-1.0)
    with pytest.raises(InvalidInputError):
        pgd(clf, xs, labels[:3], eps=0.1)
    with pytest.raises(InvalidInputError):
        pgd(clf, xs, labels, eps=0.1, norm=1)
    with pytest.raises(InvalidInputError):
        robust_accuracy(clf, xs, labels, [])


@pytest.fixture(scope="module")
def digits_lenet():
    from geometry.data import load_dataset
    from geometry.zoo import load_model

    clf = load_model("digits-lenet")
    test = load_dataset("digits", split="test")
    return clf, test.images, test.labels  # 400 points: one accuracy point is 4 of them


@pytest.mark.parametrize(("norm", "eps"), [(math.inf, 0.05), (math.inf, 0.1), (2, 0.5)])
def test_pgd_agrees_with_foolbox(digits_lenet, norm, eps):
    fb = pytest.importorskip("foolbox")
    clf, xs, ys = digits_lenet
    steps = 20
    fmodel = fb.PyTorchModel(clf.network, bounds=clf.bounds)
    attack = (fb.attacks.LinfPGD if math.isinf(norm) else fb.attacks.L2PGD)(steps=steps, abs_stepsize=2.5 * eps / steps)
    with torch.random.fork_rng():  # foolbox draws its random start from the global RNG
        torch.manual_seed(0)
        _, _, ok = attack(fmodel, xs, ys, epsilons=eps)
    theirs = 1.0 - float(ok.float().mean())
    ours = float(robust_accuracy(clf, xs, ys, [eps], norm=norm, steps=steps, random_state=0).accuracy[0])
    assert 0.05 < theirs < clf.accuracy(xs, ys)  # the radius is informative: neither trivial nor hopeless
    assert abs(ours - theirs) <= 0.01 + 1e-9


def test_box_deepfool_never_leaves_the_box(digits_lenet):
    clf, xs, _ = digits_lenet
    res = deepfool(clf, xs[:80], clip=True)
    x_adv = xs[:80] + res.r
    assert float(x_adv.min()) >= clf.bounds[0] - 1e-6 and float(x_adv.max()) <= clf.bounds[1] + 1e-6
    free = deepfool(clf, xs[:80])
    assert float((xs[:80] + free.r).min()) < -1e-3  # unconstrained DeepFool does leave it on digits


def test_boundary_distance_takes_the_smallest_successful_attack(digits_lenet):
    clf, xs, _ = digits_lenet
    bd = boundary_distance(clf, xs[:40], attacks=("deepfool_box", "fmn", "deepfool", "ddn"), fmn_max_stepsize=0.1)
    assert bd.norms.shape == (4, 40) and len(bd.winner) == 40
    finite = torch.isfinite(bd.distance)
    assert bool(finite.all())
    assert torch.allclose(bd.distance, bd.norms.min(0).values)
    for i, name in enumerate(bd.winner):
        assert bd.norms[bd.attacks.index(name), i] == bd.distance[i]
    x_adv = xs[:40] + bd.delta
    assert bool((clf.predict(x_adv) != bd.label).all())
    assert float(x_adv.min()) >= -1e-6 and float(x_adv.max()) <= 1 + 1e-6
    assert torch.allclose(torch.linalg.vector_norm(bd.delta.flatten(1).double(), dim=1), bd.distance, rtol=1e-5)
    # unconstrained DeepFool leaves the box on digits: it never counts where it did
    assert bool(torch.isinf(bd.norms[2][bd.left_box]).all()) and int(bd.left_box.sum()) > 0
    with pytest.raises(InvalidInputError):
        boundary_distance(clf, xs[:2], attacks=("cw",))


def test_ddn_in_the_boundary_distance_finds_the_exact_distance_of_an_affine_classifier():
    """On F = wᵀx + c (points inside the box, the hyperplane within reach) the ℓ2 distance to the boundary is
    |F| / ‖w‖; DDN, as a boundary_distance attack, must find it to within its norm step (γ = 5 %) and never
    below it (an adversarial point closer than the hyperplane cannot exist)."""
    clf, xs, F, w = _two_class_affine()
    exact = (F.abs() / w.norm()).double()
    bd = boundary_distance(clf, xs, attacks=("ddn",), ddn_steps=200, ddn_init_norm=0.5)
    assert bool(bd.success.all())
    assert bool((bd.distance >= exact * (1 - 1e-9)).all())  # nothing closer than the hyperplane
    assert bool((bd.distance <= exact * 1.06).all()), (bd.distance / exact).max()
    assert bool((clf.predict(xs + bd.delta) == 1).all())
