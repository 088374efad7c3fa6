"""The exact distance to the boundary of 2-D piecewise-affine classifiers (geometry/regions2d.py), checked
against closed forms (affine, circle) and an independent brute-force search on a fine grid; and the
soundness of every certificate and attack on the toy networks against it (issue 21, items 4 and 5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from geometry.certify import certify
from geometry.classifier import make_classifier
from geometry.crown import crown_radius
from geometry.deepfool import deepfool
from geometry.errors import InvalidInputError
from geometry.minimal import minimal_perturbation
from geometry.regions2d import (
    affine_layers,
    boundary_segments,
    exact_distance,
    linear_regions,
    segment_distance,
)
from geometry.study.readings import ladder_reading
from geometry.study.toy2d import CertificateLadder, LadderRow, certificate_ladder
from geometry.testing import affine_classifier, sphere_classifier
from geometry.toy2d import as_points, toy_classifier, toy_data

SHAPE = (1, 1, 2)


def _box(data) -> tuple[float, float, float, float]:
    lo, hi = data.x.min(0).values, data.x.max(0).values
    return float(lo[0]) - 0.5, float(hi[0]) + 0.5, float(lo[1]) - 0.5, float(hi[1]) + 0.5


def _grid(box, n: int) -> np.ndarray:
    g1, g2 = np.linspace(box[0], box[1], n), np.linspace(box[2], box[3], n)
    X1, X2 = np.meshgrid(g1, g2)
    return np.stack([X1.ravel(), X2.ravel()], 1)


def _brute(clf, pts: np.ndarray, box, n: int, norm: str) -> tuple[np.ndarray, float]:
    """Independent reference: the nearest grid point (spacing h) of another class, per point."""
    grid = _grid(box, n)
    lab = clf.predict(as_points(torch.from_numpy(grid))).numpy()
    own = clf.predict(as_points(torch.from_numpy(pts))).numpy()
    out = np.empty(len(pts))
    for i, p in enumerate(pts):
        other = grid[lab != own[i]]
        diff = np.abs(other - p)
        out[i] = (np.sqrt((diff**2).sum(1)) if norm == "l2" else diff.max(1)).min()
    h = max((box[1] - box[0]), (box[3] - box[2])) / (n - 1)
    return out, h


def _relu_net(K: int, seed: int, hidden: int = 12) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, K)
    )
    net = net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net


# ------------------------------------------------------------------ regions and segments
def test_regions_tile_the_box_and_carry_the_logits():
    """The polygons' areas sum to the box's, and each region's affine map is the network's logits inside it."""
    data = toy_data("moons", n_points=120, noise=0.1)
    clf = toy_classifier("mlp-relu", data, hidden=16, steps=150)
    box = _box(data)
    reg = linear_regions(clf, box)
    assert len(reg) > 20  # a ReLU MLP of two hidden layers of 16 units cuts the plane into many pieces
    area = sum(
        abs(0.5 * float(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1))))
        for p in reg.polygons
    )
    assert area == pytest.approx((box[1] - box[0]) * (box[3] - box[2]), rel=1e-9)
    rng = np.random.default_rng(0)
    for r in rng.choice(len(reg), 40, replace=False):
        poly = reg.polygons[r]
        w = rng.dirichlet(np.ones(len(poly)))
        z = w @ poly  # a random point inside the convex polygon
        logits = clf.logits(as_points(torch.from_numpy(z))).numpy()[0]
        np.testing.assert_allclose(reg.jacobian[r] @ z + reg.offset[r], logits, rtol=1e-10, atol=1e-10)


def test_segments_lie_on_the_boundary():
    """Along every segment the two classes tie and are the argmax."""
    clf = make_classifier(_relu_net(3, seed=1), input_shape=SHAPE, class_names=["a", "b", "c"], name="relu3")
    seg = boundary_segments(linear_regions(clf, (-3, 3, -3, 3)))
    assert len(seg) > 5 and set(np.unique(seg.classes)) <= {0, 1, 2}
    mid = (seg.start + seg.end) / 2
    logits = clf.logits(as_points(torch.from_numpy(mid))).numpy()
    rows = np.arange(len(mid))
    tie = logits[rows, seg.classes[:, 0]] - logits[rows, seg.classes[:, 1]]
    scale = np.abs(logits).max()
    assert np.abs(tie).max() < 1e-9 * scale
    assert (logits[rows, seg.classes[:, 0]] >= logits.max(1) - 1e-9 * scale).all()


# ------------------------------------------------------------------ exact distance: closed forms
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_affine_distance_is_closed_form(norm):
    """Affine binary classifier: |w·x + b| / ‖w‖₂ in ℓ2, / ‖w‖₁ in ℓ∞ (the dual norm)."""
    w, b = np.array([0.7, -1.9]), 0.4
    clf = affine_classifier(
        torch.tensor([[0.0, 0.0], w.tolist()], dtype=torch.float64),
        torch.tensor([0.0, b], dtype=torch.float64),
        input_shape=SHAPE,
    )
    pts = np.random.default_rng(1).uniform(-2, 2, size=(50, 2))
    got = exact_distance(clf, pts, norm=norm)
    dual = np.linalg.norm(w, 2 if norm == "l2" else 1)
    np.testing.assert_allclose(got.distance, np.abs(pts @ w + b) / dual, rtol=1e-10)
    assert got.exact.all()
    assert np.abs(got.nearest @ w + b).max() < 1e-10  # the nearest point is on the line


def test_linear_toy_model_distance_is_closed_form():
    """The trained linear toy model (a Sequential with one Linear layer) has one line as its boundary."""
    data = toy_data("xor", n_points=100, noise=0.1)
    clf = toy_classifier("linear", data, steps=50)
    ((W, b),) = affine_layers(clf)
    w, c = W[1] - W[0], b[1] - b[0]
    pts = data.x.numpy()
    got = exact_distance(clf, pts)
    np.testing.assert_allclose(got.distance, np.abs(pts @ w + c) / np.linalg.norm(w), rtol=1e-9)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_circle_distance_matches_brute_force(norm):
    """The analytic circle: |‖x − c‖ − R| in ℓ2; ℓ∞ by its closed form, both against the grid search."""
    clf = sphere_classifier(torch.tensor([0.2, -0.1], dtype=torch.float64), 0.8, input_shape=SHAPE)
    pts = np.random.default_rng(2).uniform(-1.2, 1.2, size=(40, 2))
    got = exact_distance(clf, pts, norm=norm)
    if norm == "l2":
        np.testing.assert_allclose(got.distance, np.abs(np.linalg.norm(pts - [0.2, -0.1], axis=1) - 0.8), rtol=1e-12)
    ref, h = _brute(clf, pts, (-3, 3, -3, 3), 801, norm)
    assert (got.distance <= ref + 1e-12).all()
    assert (ref <= got.distance + h).all()
    # the nearest point is on the circle
    np.testing.assert_allclose(np.linalg.norm(got.nearest - [0.2, -0.1], axis=1), 0.8, rtol=1e-9)


# ------------------------------------------------------------------ exact distance: against a brute-force search
@pytest.mark.parametrize(("dataset", "norm"), [("moons", "l2"), ("spirals", "linf")])
def test_relu_toy_distance_matches_brute_force(dataset, norm):
    """ReLU toy MLP: no grid point of another class is nearer than the exact distance, and one lies within a grid
    spacing of it; the nearest point returned is a tie of the two logits."""
    data = toy_data(dataset, n_points=150, noise=0.08)
    clf = toy_classifier("mlp-relu", data, steps=150)
    a0, a1, b0, b1 = _box(data)
    pts = _grid((a0, a1, b0, b1), 7)
    box = (a0 - 0.5, a1 + 0.5, b0 - 0.5, b1 + 0.5)
    got = exact_distance(clf, pts, norm=norm, box=box, max_grow=0)  # the reference searches the same box
    keep = got.exact
    assert keep.sum() >= 15  # points whose ball stays in the box (far corners of the data box need a larger one)
    ref, h = _brute(clf, pts[keep], box, 701, norm)
    assert (got.distance[keep] <= ref + 1e-12).all()
    assert (ref <= got.distance[keep] + 2 * h).all()
    logits = clf.logits(as_points(torch.from_numpy(got.nearest[keep]))).numpy()
    assert np.abs(logits[:, 1] - logits[:, 0]).max() < 1e-9 * np.abs(logits).max()


def test_three_class_distance_matches_brute_force():
    """With three classes the boundary pieces are clipped to where the tied pair is the argmax."""
    clf = make_classifier(_relu_net(3, seed=4), input_shape=SHAPE, class_names=["a", "b", "c"], name="relu3")
    box = (-3.0, 3.0, -3.0, 3.0)
    pts = _grid((-1.5, 1.5, -1.5, 1.5), 6)
    got = exact_distance(clf, pts, box=box, max_grow=0)
    keep = got.exact
    assert keep.sum() >= 20
    ref, h = _brute(clf, pts[keep], box, 801, "l2")
    assert (got.distance[keep] <= ref + 1e-12).all()
    assert (ref <= got.distance[keep] + 2 * h).all()


def test_box_grows_until_the_ball_fits():
    """A far boundary: the first box misses it, the grown box finds it exactly."""
    clf = affine_classifier(torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([0.0, -5.0]), input_shape=SHAPE)
    got = exact_distance(clf, np.array([[0.0, 0.0]]), box=(-1, 1, -1, 1))
    assert got.exact.all() and got.distance[0] == pytest.approx(5.0)
    small = exact_distance(clf, np.array([[0.0, 0.0]]), box=(-1, 1, -1, 1), max_grow=0)
    assert not small.exact.any() and math.isinf(small.distance[0])


def test_segment_distance_linf_against_sampling():
    """The ℓ∞ point–segment distance equals the minimum over a fine sampling of the segment."""
    rng = np.random.default_rng(3)
    p, a, b = rng.normal(size=(30, 2)), rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    d, _ = segment_distance(p, a, b, norm="linf")
    t = np.linspace(0, 1, 20001)[None, :, None]
    for s in range(20):
        z = a[s] + t[0] * (b[s] - a[s])  # (T, 2)
        ref = np.abs(p[:, None, :] - z[None]).max(-1).min(1)
        assert (d[:, s] <= ref + 1e-12).all() and (ref - d[:, s] < 1e-3).all()


def test_refuses_smooth_and_wrong_inputs():
    data = toy_data("moons", n_points=50)
    with pytest.raises(InvalidInputError, match="Tanh"):
        affine_layers(toy_classifier("mlp-tanh", data, steps=5))
    clf = toy_classifier("mlp-relu", data, steps=5)
    with pytest.raises(InvalidInputError, match="norm"):
        exact_distance(clf, np.zeros((1, 2)), norm="l1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="box"):
        linear_regions(clf, (1, 0, 0, 1))
    with pytest.raises(InvalidInputError, match="regions"):
        linear_regions(clf, (-2, 2, -2, 2), max_regions=3)


# ------------------------------------------------------------------ soundness on a grid (issue 21 item 4, 2-D part)
@pytest.mark.parametrize(("dataset", "model"), [("moons", "mlp-relu"), ("circles", "mlp-relu"), ("xor", "linear")])
def test_certificates_below_and_attacks_above_the_exact_distance(dataset, model):
    """At every point of a grid: global Lipschitz and LMT pair certificates ≤ exact ℓ2 distance ≤ DeepFool's
    ‖r(x)‖ and the minimal-perturbation ensemble's distance."""
    data = toy_data(dataset, n_points=150, noise=0.08)
    clf = toy_classifier(model, data, steps=200)
    box = _box(data)
    pts = _grid(box, 12)
    xs = as_points(torch.from_numpy(pts))
    exact = exact_distance(clf, pts, box=box)
    assert exact.exact.all()
    cert = certify(clf, xs)
    assert cert.radius_pair is not None
    tol = 1e-9
    assert (cert.radius_plain <= exact.distance + tol).all()
    assert (cert.radius_pair <= exact.distance + tol).all()
    assert (cert.radius_plain > 0).mean() > 0.9  # the certificates are not trivially zero
    df = deepfool(clf, xs, max_iter=50)
    ok = df.converged.numpy()
    assert ok.mean() > 0.9
    assert (df.norms.numpy()[ok] >= exact.distance[ok] - tol).all()
    mp = minimal_perturbation(clf, xs, fmn_max_stepsize=0.1, fmn_steps=30, ddn_steps=30)
    found = np.isfinite(mp.distance.numpy())
    assert found.mean() > 0.9
    assert (mp.distance.numpy()[found] >= exact.distance[found] - tol).all()


@pytest.mark.parametrize(("dataset", "norm"), [("moons", "l2"), ("circles", "linf")])
def test_crown_below_the_exact_distance(dataset, norm):
    """CROWN's certified radius (geometry/crown.py) ≤ the exact distance in its own norm at every grid point, and
    on a 2-D ReLU toy net it is not trivially small."""
    data = toy_data(dataset, n_points=150, noise=0.08)
    clf = toy_classifier("mlp-relu", data, steps=150)
    box = _box(data)
    pts = _grid(box, 6)
    xs = as_points(torch.from_numpy(pts))
    exact = exact_distance(clf, pts, norm=norm, box=box)
    assert exact.exact.all()
    radius = crown_radius(clf, xs, clf.predict(xs), norm=norm).numpy()
    assert (radius <= exact.distance + 1e-9).all()
    assert np.median(radius / exact.distance) > 0.5


# ------------------------------------------------------------------ the ladder at one point, and its reading
def test_ladder_orders_certificates_below_exact_below_attacks():
    """The lab's ladder at data points of a ReLU toy net: every certificate ≤ exact ≤ every attack radius; the
    reading names the tightest certificate with its share of the exact distance."""
    data = toy_data("circles", n_points=120, noise=0.08)
    clf = toy_classifier("mlp-relu", data, steps=150)
    for i in (0, 7):
        lad = certificate_ladder(clf, data.x[i].numpy())
        assert [r.kind for r in lad.rows] == ["exact", "certificate", "certificate", "certificate", "attack", "attack"]
        assert [r.name for r in lad.of("certificate")] == ["global Lipschitz", "LMT pair", "CROWN"]
        assert math.isfinite(lad.exact)
        for r in lad.of("certificate"):
            assert 0 <= r.radius <= lad.exact + 1e-9
        for r in lad.of("attack"):
            assert r.radius >= lad.exact - 1e-9
        best = lad.best_certificate
        assert best is not None
        text = ladder_reading(lad)
        assert f"tightest certificate is {best.name} at {best.radius:.3g}" in text
        assert f"{100 * lad.ratio(best):.0f} % of the exact distance" in text
        assert "UNSOUND" not in text


def test_ladder_pair_bound_is_exact_on_the_linear_model():
    """For a binary linear model LMT's pair bound (f_k − f_j)/‖w_k − w_j‖ is the distance to the line itself."""
    data = toy_data("moons", n_points=80, noise=0.1)
    clf = toy_classifier("linear", data, steps=60)
    lad = certificate_ladder(clf, data.x[3].numpy())
    (pair,) = [r for r in lad.rows if r.name == "LMT pair"]
    assert pair.radius == pytest.approx(lad.exact, rel=1e-9)
    assert "LMT pair" in ladder_reading(lad) and "100 % of the exact distance" in ladder_reading(lad)


def test_ladder_reading_flags_a_certificate_above_the_truth_and_reads_smooth_models_against_the_attack():
    base = dict(x=np.zeros(2), label=0, nearest=np.zeros(2), attack_point=None)
    bad = CertificateLadder(
        exact=0.5,
        rows=(
            LadderRow("exact distance", "exact", 0.5, ""),
            LadderRow("global Lipschitz", "certificate", 0.7, ""),
            LadderRow("DeepFool r(x)", "attack", 0.55, ""),
        ),
        **base,
    )
    assert "UNSOUND: global Lipschitz (0.7)" in ladder_reading(bad)
    smooth = CertificateLadder(
        exact=math.nan,
        rows=(
            LadderRow("exact distance", "exact", math.nan, "not available"),
            LadderRow("global Lipschitz", "certificate", 0.1, ""),
            LadderRow("minimal ensemble", "attack", 0.4, ""),
        ),
        **base,
    )
    text = ladder_reading(smooth)
    assert "no exact distance" in text and "25 % of the best attack radius (minimal ensemble)" in text
