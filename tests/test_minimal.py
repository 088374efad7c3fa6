"""Minimal perturbations that are minimal (issue 21, item 2): DDN, the boundary refinement, the ensemble, optimality."""

from __future__ import annotations

import math

import pytest
import torch

from geometry.errors import InvalidInputError
from geometry.minimal import ddn, minimal_perturbation, optimality, refine_on_boundary
from geometry.testing import affine_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 4, 4)
D = 16


def _affine(n_classes: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n_classes, D, generator=g, dtype=torch.float64)
    b = 1.0 * torch.randn(n_classes, generator=g, dtype=torch.float64) - 0.5 * W.sum(1)  # centred on the box's middle
    return affine_classifier(W, b, input_shape=SHAPE), W, b


def _points(n: int, seed: int = 1) -> torch.Tensor:
    """Points well inside the box [0, 1] (so the box does not bind for small perturbations)."""
    g = torch.Generator().manual_seed(seed)
    return 0.4 + 0.2 * torch.rand(n, *SHAPE, generator=g, dtype=torch.float64)


def _exact_l2(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Exact ℓ2 distance to the decision boundary of ``Wx + b`` (unbounded input space)."""
    f = x.flatten(1) @ W.T + b
    k = f.argmax(1)
    out = torch.full((len(x),), math.inf, dtype=torch.float64)
    for j in range(W.shape[0]):
        w = W[j] - W[k]  # (N, D)
        dist = (f.gather(1, k[:, None]).squeeze(1) - f[:, j]) / torch.linalg.vector_norm(w, dim=1).clamp_min(1e-300)
        out = torch.where(k == j, out, torch.minimum(out, dist))
    return out


def _in_box_of_exact(W, b, x, exact) -> torch.Tensor:
    """Points whose exact minimal perturbation stays in [0, 1] (there the box-free distance is the truth)."""
    return exact < 0.35  # points lie in [0.4, 0.6]: any perturbation of ℓ2 norm < 0.35 stays in the box


def test_attacks_never_beat_the_exact_distance_and_the_refinement_reaches_it():
    clf, W, b = _affine()
    x = _points(40)
    exact = _exact_l2(W, b, x)
    inside = _in_box_of_exact(W, b, x, exact)
    assert int(inside.sum()) >= 10
    res = minimal_perturbation(clf, x, fmn_max_stepsize=0.1, ddn_init_norm=0.5)
    ok = res.success
    # no attack can beat the true minimum (this is the soundness of an *upper* bound)
    assert bool((res.norms[ok.logical_not().logical_not()] >= 0).all())
    finite = torch.isfinite(res.norms)
    assert bool((res.norms[finite] >= (exact.expand_as(res.norms)[finite] - 1e-9)).all())
    # on an affine classifier one projection along the normal is exact (up to the bisection's resolution)
    i = res.attacks.index("deepfool_refined")
    assert bool(res.success[i][inside].all())
    assert torch.allclose(res.norms[i][inside], exact[inside], rtol=2e-3)
    assert torch.allclose(res.distance[inside], exact[inside], rtol=2e-3)
    # DDN succeeds everywhere; its cross-entropy direction mixes all classes' gradients, so on a
    # many-class affine map it stops ≈ 14 % (median) beyond the nearest hyperplane (measured)
    j = res.attacks.index("ddn")
    assert bool(res.success[j][inside].all())
    assert float((res.norms[j][inside] / exact[inside]).median()) < 1.25


def test_refinement_never_lengthens_and_keeps_adversarial_points_in_the_box():
    from geometry.data import load_dataset
    from geometry.deepfool import deepfool
    from geometry.zoo import load_model

    clf = load_model("digits-mlp")
    x = load_dataset("digits", split="test").images[:40]
    df = deepfool(clf, x, clip=True)
    ref = refine_on_boundary(clf, x, df.r)
    start = torch.linalg.vector_norm(df.r.flatten(1).double(), dim=1)
    assert bool((ref.success == df.converged).all())
    assert bool((ref.norms[ref.success] <= start[ref.success] + 1e-9).all())
    xa = x + ref.delta
    lo, hi = clf.bounds
    assert float(xa.min()) >= lo - 1e-6 and float(xa.max()) <= hi + 1e-6
    assert bool((clf.predict(xa)[ref.success] != clf.predict(x)[ref.success]).all())
    ratio = ref.norms[ref.success] / start[ref.success]
    assert float(ratio.mean()) < 1.0 and float(ratio.min()) < 0.95  # measured on digits-mlp: median 0.99, min 0.87


def test_ensemble_takes_the_smallest_successful_attack_per_point_on_digits():
    from geometry.data import load_dataset
    from geometry.zoo import load_model

    clf = load_model("digits-lenet")
    x = load_dataset("digits", split="test").images[:30]
    res = minimal_perturbation(clf, x, fmn_max_stepsize=0.1, ddn_init_norm=0.5)
    assert torch.equal(res.distance, res.norms.min(0).values)
    found = torch.isfinite(res.distance)
    assert bool(found.all())
    xa = x + res.delta
    assert bool((clf.predict(xa) != res.label).all())
    assert torch.allclose(torch.linalg.vector_norm(res.delta.flatten(1).double(), dim=1), res.distance, rtol=1e-5)
    for a, name in enumerate(res.attacks):
        assert res.wins(name) == sum(w == name for w in res.winner)
        assert bool((res.norms[a] >= res.distance).all())
    scores = res.optimality()
    assert scores["ensemble"] == pytest.approx(1.0)
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    # the refinement is never worse than the box DeepFool it starts from
    assert scores["deepfool_refined"] >= scores["deepfool_box"] - 1e-12
    assert int(res.passes.min()) > 0


def test_optimality_is_attackbench_local_optimality_averaged():
    norms = torch.tensor([[1.0, 2.0, math.inf], [2.0, 1.0, 4.0], [math.inf, math.inf, math.inf]])
    best = norms.min(0).values
    got = optimality(norms, best)
    # points 0 and 1 and 2 (best 1, 1, 4): attack 0 → (1 + 1/2 + 0)/3; attack 1 → (1/2 + 1 + 1)/3; attack 2 → 0
    assert torch.allclose(got, torch.tensor([0.5, 2.5 / 3, 0.0], dtype=torch.float64))
    assert math.isnan(float(optimality(norms, torch.full((3,), math.inf))[0]))


def test_ddn_finds_the_hyperplane_distance_of_a_two_class_affine_classifier():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(D, generator=g, dtype=torch.float64)
    W = torch.stack([torch.zeros(D, dtype=torch.float64), w])
    x = _points(10, seed=4)
    b = torch.tensor([0.0, -float((x.flatten(1) @ w).mean()) + 0.05], dtype=torch.float64)
    clf = affine_classifier(W, b, input_shape=SHAPE)
    exact = _exact_l2(W, b, x)
    res = ddn(clf, x, steps=200, init_norm=0.2)
    inside = exact < 0.35
    assert bool(res.success[inside].all())
    assert bool((res.norms[inside] >= exact[inside] - 1e-9).all())
    assert float((res.norms[inside] / exact[inside]).max()) < 1.03


def test_bad_arguments_are_refused_with_the_names():
    clf, _, _ = _affine()
    x = _points(2)
    with pytest.raises(InvalidInputError, match="distinct names"):
        minimal_perturbation(clf, x, attacks=("ddn", "ddn"))
    with pytest.raises(InvalidInputError, match="gamma"):
        ddn(clf, x, gamma=1.5)
    with pytest.raises(InvalidInputError, match="delta must have the shape"):
        refine_on_boundary(clf, x, torch.zeros(3, *SHAPE, dtype=torch.float64))


class _CountingNet(torch.nn.Module):
    """Wraps a network and counts, independently of the attacks' own counters, the rows it is run on
    forward and the rows a backward pass goes through (a hook on the logits fires once per backward)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.forward_rows = 0
        self.backward_rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        self.forward_rows += int(x.shape[0])
        if out.requires_grad:
            rows = int(x.shape[0])

            def count(grad: torch.Tensor) -> None:
                self.backward_rows += rows

            out.register_hook(count)
        return out


def _counting(clf):
    import dataclasses

    net = _CountingNet(clf.network).eval()
    return dataclasses.replace(clf, network=net), net


def test_budgeted_ensemble_never_exceeds_its_budget_counted_at_the_network():
    from geometry.data import load_dataset
    from geometry.zoo import load_model

    base = load_model("digits-lenet")
    x = load_dataset("digits", split="test").images[:20]
    y = base.predict(x)
    # below, at and above the switch to a refinement (65 passes with labels given), and the 100
    for budget in (4, 11, 64, 65, 66, 100, 151):
        for labels in (None, y):
            clf, net = _counting(base)
            res = minimal_perturbation(clf, x, labels, budget=budget, ddn_init_norm=0.5)
            used = (net.forward_rows + net.backward_rows) / len(x)  # passes per point
            assert used <= budget
            assert used == res.total_passes  # the reported total is the truth
            assert res.total_passes == int(res.passes.sum()) + (1 if labels is None else 0)
            assert ("ddn_refined" in res.attacks) == (budget - (labels is None) >= 65)
            assert torch.equal(res.distance, res.norms.min(0).values)
            found = torch.isfinite(res.distance)
            assert bool((base.predict(x + res.delta)[found] != res.label[found]).all())
    # without a budget the reported passes are the network's too (DeepFool aside: it counts one backward
    # per candidate class, where the network sees one batched backward)
    clf, net = _counting(base)
    res = minimal_perturbation(clf, x, attacks=("fmn", "ddn"), fmn_steps=7, ddn_steps=9, fmn_max_stepsize=0.1)
    assert (net.forward_rows + net.backward_rows) / len(x) == res.total_passes == 1 + (7 + 2 + 7) + (2 * 9 + 1)
    # the plan's worst case stays within every budget, the refinement's worst case included
    from geometry.minimal import budget_plan

    for budget in range(4, 400):
        for given in (True, False):
            plan = budget_plan(budget, labels_given=given)
            assert plan.worst_case_passes <= budget
            assert plan.worst_case_passes >= budget - 2  # DDN gets the rest (a step costs 2 passes)


def test_budgeted_ensemble_is_exact_on_an_affine_classifier():
    clf, W, b = _affine()
    x = _points(40)
    exact = _exact_l2(W, b, x)
    res = minimal_perturbation(clf, x, budget=100, ddn_init_norm=0.5)
    assert res.attacks == ("ddn", "ddn_refined")
    assert bool(res.success.all())
    assert bool((res.norms >= exact - 1e-9).all())  # an upper bound, never below the truth
    # one projection is exact where DDN crossed into the nearest class's region (up to the 8-step
    # bisection: 2⁻⁸ of a segment that overshoots by 2 %); elsewhere it projects onto that class's plane
    f = x.flatten(1) @ W.T + b
    k = f.argmax(1)
    gaps = (f.gather(1, k[:, None]) - f) / torch.linalg.vector_norm(W[None] - W[k][:, None], dim=2).clamp_min(1e-300)
    nearest = torch.where(torch.arange(W.shape[0])[None] == k[:, None], math.inf, gaps).argmin(1)
    from geometry.minimal import budget_plan

    steps = budget_plan(100, labels_given=False).ddn_steps
    hit = clf.predict(x + ddn(clf, x, steps=steps, init_norm=0.5).delta) == nearest
    assert int(hit.sum()) >= 30  # measured: 37 of 40
    i = res.attacks.index("ddn_refined")
    assert torch.allclose(res.norms[i][hit], exact[hit], rtol=5e-3)
    assert torch.allclose(res.distance[hit], exact[hit], rtol=5e-3)
    # DDN alone, with the 37 steps the plan gave it, is far from exact on the same points
    assert float((res.norms[0][hit] / exact[hit]).median()) > 1.1


def test_bad_budgets_are_refused():
    clf, _, _ = _affine()
    x = _points(2)
    y = clf.predict(x)
    for bad in (0, 2, -5, 2.5, True, "100"):
        with pytest.raises(InvalidInputError, match="budget"):
            minimal_perturbation(clf, x, y, budget=bad)
    with pytest.raises(InvalidInputError, match="budget"):
        minimal_perturbation(clf, x, budget=3)  # one DDN step needs 3, the labels one more
    minimal_perturbation(clf, x, y, budget=3)  # … which is enough when the labels are given
    with pytest.raises(InvalidInputError, match="either attacks or a budget"):
        minimal_perturbation(clf, x, y, attacks=("ddn",), budget=100)
