"""Normal cross-sections (ICLR 2018, Fig. 5/6/13) on classifiers whose sections are known in closed form."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from geometry.classifier import make_classifier
from geometry.deepfool import deepfool
from geometry.errors import InvalidInputError
from geometry.sections import Section, normal_section, random_direction
from geometry.testing import affine_classifier, sphere_classifier

SHAPE = (2, 3, 3)
D = 18


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- sphere: a disk through the centre
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sphere_section_is_a_disk(seed):
    """Through x along r(x) (radial) and any v, the plane contains the centre c: class 0 is the disk
    of radius R around c's coordinates ((c − x)·e1, (c − x)·e2) = (−‖x − c‖, 0)."""
    g = _gen(seed)
    c = torch.randn(D, generator=g, dtype=torch.float64)
    R = 1.5
    clf = sphere_classifier(c, R, input_shape=SHAPE)
    u = torch.randn(D, generator=g, dtype=torch.float64)
    x = (c + 0.6 * u / u.norm()).reshape(SHAPE)  # inside, ‖x − c‖ = 0.6
    res = deepfool(clf, x)
    assert int(res.label[0]) == 0 and bool(res.converged[0])
    v = random_direction(SHAPE, random_state=seed, dtype=torch.float64)
    sec = normal_section(clf, x, res.r[0], v, resolution=201)
    dense = normal_section(clf, x, res.r[0], v, resolution=201, adaptive=False)

    assert isinstance(sec, Section)
    assert sec.labels.shape == (201, 201) and sec.labels.dtype == torch.int64
    assert sec.label == 0 and sec.r_norm == pytest.approx(float(res.norms[0]))
    centre = (
        (c.reshape(SHAPE) - x).reshape(-1) @ sec.e1.reshape(-1),
        (c.reshape(SHAPE) - x).reshape(-1) @ sec.e2.reshape(-1),
    )
    assert float(centre[0]) == pytest.approx(-0.6) and float(centre[1]) == pytest.approx(0.0, abs=1e-12)

    aa, bb = torch.meshgrid(sec.alpha, sec.beta, indexing="xy")  # (B, A) like labels
    dist = torch.sqrt((aa - float(centre[0])) ** 2 + (bb - float(centre[1])) ** 2)
    step = max(float(sec.alpha[1] - sec.alpha[0]), float(sec.beta[1] - sec.beta[0]))
    far = (dist - R).abs() > step
    expected = (dist >= R).long()
    assert torch.equal(sec.labels[far], expected[far])
    assert torch.equal(dense.labels[far], expected[far])
    assert torch.equal(sec.labels, dense.labels)
    assert sec.adaptive and not dense.adaptive
    assert sec.n_forward < 0.25 * sec.dense_forward and dense.n_forward == dense.dense_forward == 201 * 201


# ---------------------------------------------------------------------------- affine: a vertical line at ‖r‖/(1+overshoot)
@pytest.mark.parametrize("overshoot", [0.02, 0.3])
def test_affine_section_boundary_is_vertical_line(overshoot):
    g = _gen(5)
    W = torch.randn(2, D, generator=g, dtype=torch.float64)
    b = torch.randn(2, generator=g, dtype=torch.float64)
    clf = affine_classifier(W, b, input_shape=SHAPE)
    x = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    res = deepfool(clf, x, overshoot=overshoot)
    k = int(res.label[0])
    v = random_direction(SHAPE, random_state=7, dtype=torch.float64)
    sec = normal_section(clf, x, res.r[0], v, resolution=(157, 95))
    dense = normal_section(clf, x, res.r[0], v, resolution=(157, 95), adaptive=False)
    assert sec.labels.shape == (95, 157)
    # exact hyperplane distance, computed independently
    f = W @ x.reshape(-1) + b
    dist = abs(float(f[1] - f[0])) / float((W[1] - W[0]).norm())
    assert sec.r_norm / (1 + overshoot) == pytest.approx(dist, abs=1e-4)
    step = float(sec.alpha[1] - sec.alpha[0])
    alpha = sec.alpha[None, :].expand(95, -1)
    assert (sec.labels[alpha < dist - step] == k).all()
    assert (sec.labels[alpha > dist + step] == 1 - k).all()
    assert torch.equal(sec.labels, dense.labels)
    assert sec.label == k


# ---------------------------------------------------------------------------- property: adaptive == dense
def _mlp(seed: int, activation=nn.Tanh):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Flatten(), nn.Linear(D, 32), activation(), nn.Linear(32, 32), activation(), nn.Linear(32, 5)
        ).double()
    return make_classifier(net, input_shape=SHAPE, class_names=list("abcde"))


@pytest.mark.parametrize("seed", range(12))
def test_adaptive_matches_dense_on_random_mlps(seed):
    clf = _mlp(seed, nn.Tanh if seed % 2 else nn.ReLU)
    g = _gen(1000 + seed)
    x = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    r = deepfool(clf, x).r[0]
    v = random_direction(SHAPE, random_state=g, dtype=torch.float64)
    extent = 4.0 * float(r.norm()) + 0.5
    ada = normal_section(clf, x, r, v, extent=extent, resolution=129)
    dense = normal_section(clf, x, r, v, extent=extent, resolution=129, adaptive=False)
    agree = float((ada.labels == dense.labels).double().mean())
    assert agree >= 0.995, f"adaptive/dense agreement {agree:.4f}"
    assert ada.n_forward < dense.n_forward
    assert ada.label == dense.label == int(clf.predict(x)[0])
    # x itself is at the centre of the grid for an odd resolution and a symmetric extent
    assert int(dense.labels[64, 64]) == dense.label


def test_labels_match_direct_evaluation():
    """labels[i, j] is k_hat(x + alpha[j] e1 + beta[i] e2)."""
    clf = _mlp(3)
    g = _gen(3)
    x = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    r = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    v = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    sec = normal_section(clf, x, r, v, extent=(-1.0, 3.0, -2.0, 0.5), resolution=(9, 7), adaptive=False)
    assert sec.alpha[0] == -1.0 and sec.alpha[-1] == 3.0 and sec.beta[0] == -2.0 and sec.beta[-1] == 0.5
    assert sec.extent == (-1.0, 3.0, -2.0, 0.5)
    pts = torch.stack([x + a * sec.e1 + bb * sec.e2 for bb in sec.beta for a in sec.alpha])
    assert torch.equal(sec.labels.reshape(-1), clf.predict(pts))
    # orthonormal basis, e1 along r, e2 in span(r, v)
    E = torch.stack([sec.e1.reshape(-1), sec.e2.reshape(-1)])
    torch.testing.assert_close(E @ E.T, torch.eye(2, dtype=torch.float64))
    torch.testing.assert_close(sec.e1, r / r.norm())
    resid = v.reshape(-1) - E.T @ (E @ v.reshape(-1))
    assert float(resid.norm()) < 1e-10
    assert sec.cos_v_r == pytest.approx(float((v * r).sum() / (v.norm() * r.norm())))


def test_default_extent_and_inputs_not_mutated():
    clf = _mlp(4)
    g = _gen(4)
    x = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    r = 0.3 * torch.randn(SHAPE, generator=g, dtype=torch.float64)
    v = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    copies = [t.clone() for t in (x, r, v)]
    sec = normal_section(clf, x.unsqueeze(0), r, v, resolution=33)
    for t, c in zip((x, r, v), copies, strict=True):
        assert torch.equal(t, c)
    e = 2.5 * float(r.norm())
    assert sec.extent == pytest.approx((-e, e, -e, e))
    assert sec.r_norm == pytest.approx(float(r.norm()))
    assert 0 < sec.forward_ratio <= 1


# ---------------------------------------------------------------------------- random directions
def test_random_direction():
    a = random_direction(SHAPE, random_state=3)
    b = random_direction(SHAPE, random_state=3)
    c = random_direction(SHAPE, random_state=4)
    assert a.shape == SHAPE and a.dtype == torch.float32
    assert float(a.norm()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = _gen(0)
    many = torch.stack([random_direction(50, random_state=g, dtype=torch.float64) for _ in range(2000)])
    assert many.shape == (2000, 50)
    # uniform on the sphere: mean ≈ 0, E[v_i²] = 1/d
    assert float(many.mean(0).abs().max()) < 0.01
    assert float((many**2).mean(0).max()) == pytest.approx(1 / 50, rel=0.2)
    assert random_direction(5, random_state=None).shape == (5,)
    with pytest.raises(InvalidInputError):
        random_direction(SHAPE, random_state="seed")
    with pytest.raises(InvalidInputError):
        random_direction((0, 3))


# ---------------------------------------------------------------------------- errors
def _setup():
    clf = _mlp(0)
    g = _gen(9)
    return (
        clf,
        torch.randn(SHAPE, generator=g, dtype=torch.float64),
        torch.randn(SHAPE, generator=g, dtype=torch.float64),
    )


def test_zero_r():
    clf, x, v = _setup()
    with pytest.raises(InvalidInputError, match="r is zero"):
        normal_section(clf, x, torch.zeros(SHAPE, dtype=torch.float64), v)


@pytest.mark.parametrize("scale", [1.0, -2.0])
def test_v_parallel_to_r(scale):
    clf, x, r = _setup()
    with pytest.raises(InvalidInputError, match="parallel"):
        normal_section(clf, x, r, scale * r)
    with pytest.raises(InvalidInputError, match="v is zero"):
        normal_section(clf, x, r, torch.zeros(SHAPE, dtype=torch.float64))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(extent=-1.0),
        dict(extent=(1.0, 0.0, -1.0, 1.0)),
        dict(extent=(0, 1)),
        dict(extent=float("inf")),
        dict(resolution=1),
        dict(resolution=(4,)),
        dict(coarse=0),
        dict(batch_size=0),
    ],
)
def test_bad_settings(kwargs):
    clf, x, r = _setup()
    v = random_direction(SHAPE, random_state=0, dtype=torch.float64)
    with pytest.raises(InvalidInputError):
        normal_section(clf, x, r, v, **kwargs)


def test_wrong_shapes_and_nan():
    clf, x, r = _setup()
    v = random_direction(SHAPE, random_state=0, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="shape"):
        normal_section(clf, x.reshape(3, 3, 2), r, v)
    with pytest.raises(InvalidInputError):
        normal_section(clf, torch.stack([x, x]), r, v)
    bad = r.clone()
    bad[0, 0, 0] = math.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        normal_section(clf, x, bad, v)


# ---------------------------------------------------------------------------- a clicked point of the plane
def _affine_section(seed: int = 0):
    """An affine two-class classifier: its section is a half-plane, the boundary the vertical line α = ‖r‖."""
    g = _gen(seed)
    W = torch.randn(2, D, generator=g, dtype=torch.float64)
    clf = affine_classifier(W, torch.tensor([0.7, -0.2], dtype=torch.float64), input_shape=SHAPE)
    x = torch.randn(D, generator=g, dtype=torch.float64).reshape(SHAPE)
    res = deepfool(clf, x)
    v = random_direction(SHAPE, random_state=seed, dtype=torch.float64)
    return clf, x, res.r[0], v, normal_section(clf, x, res.r[0], v, resolution=41, adaptive=False)


def test_plane_point_is_where_the_section_evaluated():
    """The image at (α, β) is x + α e1 + β e2: the classifier's label there is the section's label at that cell."""
    from geometry.sections import plane_point

    clf, x, r, _v, sec = _affine_section(1)
    for i, j in [(0, 0), (5, 37), (40, 40), (20, 3)]:
        p = plane_point(sec, x, float(sec.alpha[j]), float(sec.beta[i]))
        assert p.shape == x.shape and p.dtype == x.dtype
        assert int(clf.predict(p.unsqueeze(0))[0]) == int(sec.labels[i, j])
    # (‖r‖, 0) is z = x + r(x)
    assert torch.allclose(plane_point(sec, x, sec.r_norm, 0.0), x + r, atol=1e-12)
    with pytest.raises(InvalidInputError, match="finite"):
        plane_point(sec, x, float("nan"), 0.0)
    with pytest.raises(InvalidInputError, match="shape"):
        plane_point(sec, x.reshape(-1), 0.0, 0.0)


@pytest.mark.parametrize("alpha,beta", [(0.3, 0.8), (-2.0, 0.01), (1.5, -0.4), (0.0, -3.0)])
def test_direction_through_a_clicked_point_stays_in_the_plane(alpha, beta):
    """v through (α, β), made orthogonal to r and normalised, is sign(β)·e2: the section along it is the same plane,
    mirrored (β → −β) when β < 0 — cut again with that v, the labels are equal (flipped rows for β < 0)."""
    from geometry.sections import direction_through

    clf, x, r, _v, sec = _affine_section(2)
    u = direction_through(sec, alpha, beta)
    assert u.shape == SHAPE
    assert float(u.reshape(-1) @ sec.e1.reshape(-1)) == pytest.approx(0.0, abs=1e-12)
    assert float(u.norm()) == pytest.approx(1.0)
    sign = 1.0 if beta > 0 else -1.0
    assert torch.allclose(u, sign * sec.e2, atol=1e-12)
    again = normal_section(clf, x, r, u, resolution=41, adaptive=False)
    expected = sec.labels if beta > 0 else sec.labels.flip(0)  # rows are β, symmetric grid
    assert torch.equal(again.labels, expected)


def test_direction_through_a_point_of_the_r_axis_is_refused():
    """On the r(x) axis (β = 0) the clicked direction is r itself: nothing orthogonal to r, no section."""
    from geometry.sections import direction_through

    *_, sec = _affine_section(3)
    for alpha in (0.0, 0.5, sec.r_norm, -4.0):
        with pytest.raises(InvalidInputError, match="r\\(x\\) axis"):
            direction_through(sec, alpha, 0.0)
    with pytest.raises(InvalidInputError, match="finite"):
        direction_through(sec, 1.0, float("inf"))
