"""Decision boundaries in the plane: toy data, small models that train in seconds, and the atlas's
quantities seen in 2-D (DESIGN §9).

In the plane everything is visible: the boundary is a curve, ``r(x)`` its normal from x, the
curvature its osculating circle. This module only supplies what is specific to 2-D — the data
(scikit-learn's generators), the models, the grid of decision regions and the osculating circle —
and computes every geometric quantity with the atlas's own functions (:func:`geometry.deepfool`,
:func:`geometry.curvature.curvature_along`, :func:`geometry.curvature.flat_subspace`,
:func:`geometry.curvature.curved_subspace`, :func:`geometry.universal.fooling_rate`). Points are
images of shape ``(1, 1, 2)`` (``d = 2``) in float64.

References: Moosavi-Dezfooli, Fawzi, Fawzi, Frossard, Soatto, "Robustness of classifiers to
universal perturbations: a geometric perspective", ICLR 2018, Fig. 3 (flat vs curved boundary) and
the talk's "flat model" / "curved model" slides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .classifier import Classifier, make_classifier
from .curvature import curvature_along
from .deepfool import DeepFoolResult, deepfool
from .errors import InvalidInputError
from .hessian import boundary_gradient
from .testing import affine_classifier, sphere_classifier
from .validation import CurvatureMethod, check_float, check_int

__all__ = [
    "TOY_DATASETS",
    "TOY_MODELS",
    "SMOOTH_MODELS",
    "ToyData",
    "DecisionRegions",
    "Osculating",
    "toy_data",
    "toy_classifier",
    "as_points",
    "decision_regions",
    "osculating_circle",
    "fooled_mask",
    "direction_vector",
    "vector_from_click",
    "nearest_point",
    "path_of",
]

#: Toy datasets (URL value → label).
TOY_DATASETS = {
    "moons": "two moons",
    "circles": "circles (one inside the other)",
    "xor": "XOR blobs",
    "spirals": "two spirals",
}
#: Models (URL value → label). "linear" has a flat boundary; the MLPs curve; the last two are analytic.
TOY_MODELS = {
    "linear": "linear model (flat boundary)",
    "mlp-relu": "MLP, ReLU (piecewise flat)",
    "mlp-tanh": "MLP, tanh (smoothly curved)",
    "affine": "analytic affine f(x) = Wx + b",
    "sphere": "analytic circle ‖x − c‖ = R",
}
#: Models whose input Hessian is exact (curvature by ``method="exact"``); the others use finite differences.
SMOOTH_MODELS = ("linear", "mlp-tanh", "affine", "sphere")


@dataclass(frozen=True)
class ToyData:
    """A 2-D toy dataset.

    Attributes
    ----------
    x : (N, 2) float64 — points in the plane
    y : (N,) int64 — ground-truth class, 0 or 1
    name : str — key of :data:`TOY_DATASETS`
    noise : float — standard deviation of the Gaussian noise added by the generator
    """

    x: torch.Tensor
    y: torch.Tensor
    name: str
    noise: float


def _spirals(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n0 = n // 2
    t = np.sqrt(rng.uniform(0.05, 1.0, size=n)) * 3 * np.pi
    sign = np.where(np.arange(n) < n0, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], 1) / (3 * np.pi)
    x = x + rng.normal(scale=noise, size=x.shape)
    return x, (np.arange(n) >= n0).astype(np.int64)


def toy_data(name: str, *, n_points: int = 200, noise: float = 0.1, random_state: int = 0) -> ToyData:
    """Points in the plane from scikit-learn's generators (spirals: two interleaved Archimedean spirals).

    Parameters
    ----------
    name : {"moons", "circles", "xor", "spirals"}
    n_points : int in [10, 5000]
    noise : float in [0, 1] — Gaussian noise (data units)
    random_state : int

    Raises
    ------
    InvalidInputError — unknown name, sizes or noise out of range.
    """
    from sklearn.datasets import make_blobs, make_circles, make_moons

    if name not in TOY_DATASETS:
        raise InvalidInputError(f"unknown toy dataset {name!r}; choose one of {', '.join(TOY_DATASETS)}")
    n = check_int("n_points", n_points, 10, 5000)
    noise = check_float("noise", noise, low=0.0, high=1.0)
    seed = int(random_state)
    if name == "moons":
        x, y = make_moons(n, noise=noise, random_state=seed)
    elif name == "circles":
        x, y = make_circles(n, noise=noise, factor=0.5, random_state=seed)
        y = 1 - y  # class 0 = the inner circle, as the sphere classifier's "inside"
    elif name == "xor":
        centers = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
        x, c = make_blobs(n, centers=centers, cluster_std=0.3 + noise, random_state=seed)
        y = (c >= 2).astype(np.int64)
    else:
        x, y = _spirals(n, noise, np.random.default_rng(seed))
    return ToyData(x=torch.as_tensor(x, dtype=torch.float64), y=torch.as_tensor(y).long(), name=name, noise=noise)


def as_points(x: torch.Tensor) -> torch.Tensor:
    """(N, 2) or (2,) plane coordinates → (N, 1, 1, 2) float64 images for the classifier."""
    return torch.as_tensor(x, dtype=torch.float64).reshape(-1, 1, 1, 2)


def _box(data: ToyData, margin: float = 0.5) -> tuple[float, float]:
    lo = float(data.x.min()) - margin
    hi = float(data.x.max()) + margin
    return lo, hi


def toy_classifier(
    name: str, data: ToyData, *, hidden: int = 32, steps: int = 400, random_state: int = 0
) -> Classifier:
    """A two-class classifier on the plane, trained on ``data`` (or built analytically).

    * ``linear`` — logistic regression ``f(x) = Wx + b``: a straight (flat) boundary;
    * ``mlp-relu`` / ``mlp-tanh`` — two hidden layers of ``hidden`` units, full-batch Adam;
    * ``affine`` — :func:`geometry.testing.affine_classifier`, boundary the perpendicular bisector
      of the two class means;
    * ``sphere`` — :func:`geometry.testing.sphere_classifier` centred on the class-0 mean with the
      radius halfway between the median distances of the two classes to it.

    Returns a float64 :class:`Classifier` with ``input_shape = (1, 1, 2)`` and ``bounds`` the
    data's box plus a margin. Training is deterministic (``random_state``) and takes well under a
    second for the default sizes.

    Raises
    ------
    InvalidInputError — unknown model, ``hidden`` or ``steps`` out of range.
    """
    if name not in TOY_MODELS:
        raise InvalidInputError(f"unknown toy model {name!r}; choose one of {', '.join(TOY_MODELS)}")
    hidden = check_int("hidden", hidden, 2)
    steps = check_int("steps", steps, 1)
    x, y = data.x, data.y
    shape = (1, 1, 2)
    if name == "affine":
        m0, m1 = x[y == 0].mean(0), x[y == 1].mean(0)
        w = m1 - m0
        b = -float(w @ (m0 + m1) / 2)
        W = torch.stack([torch.zeros(2, dtype=torch.float64), w])
        return affine_classifier(W, torch.tensor([0.0, b], dtype=torch.float64), input_shape=shape, name="toy-affine")
    if name == "sphere":
        c = x[y == 0].mean(0)
        r0 = float((x[y == 0] - c).norm(dim=1).median())
        r1 = float((x[y == 1] - c).norm(dim=1).median())
        return sphere_classifier(c, max((r0 + r1) / 2, 1e-3), input_shape=shape, name="toy-sphere")
    torch_gen = torch.Generator().manual_seed(int(random_state))
    act: type[nn.Module] = nn.ReLU if name == "mlp-relu" else nn.Tanh
    if name == "linear":
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(2, 2)]
    else:
        layers = [nn.Flatten(), nn.Linear(2, hidden), act(), nn.Linear(hidden, hidden), act(), nn.Linear(hidden, 2)]
    net = nn.Sequential(*layers).double()
    with torch.no_grad():
        for p in net.parameters():
            bound = 1.0 / math.sqrt(p.shape[-1]) if p.dim() > 1 else 0.1
            p.uniform_(-bound, bound, generator=torch_gen)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    xs = as_points(x)
    # Tiny tensors: one intra-op thread is ~10-100x faster than several on a busy machine (measured
    # 0.13 s against 10-25 s for 400 steps at load 7 on 2 cores). The setting is process-wide, so
    # it is restored right after.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xs), y)
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        acc = float((net(xs).argmax(1) == y).double().mean())
    return make_classifier(
        net,
        input_shape=shape,
        class_names=["class 0", "class 1"],
        name=f"toy-{name}",
        bounds=_box(data),
        test_accuracy=acc,
    )


@dataclass(frozen=True)
class DecisionRegions:
    """Predicted labels on a regular grid of the plane.

    Attributes
    ----------
    x1, x2 : (A,), (B,) float64 — grid coordinates
    label : (B, A) int64 — ``k̂`` at ``(x1[j], x2[i])``
    """

    x1: np.ndarray
    x2: np.ndarray
    label: np.ndarray


def decision_regions(
    clf: Classifier, box: tuple[float, float, float, float], *, resolution: int = 200
) -> DecisionRegions:
    """``k̂`` on a ``resolution × resolution`` grid of ``box = (x1_min, x1_max, x2_min, x2_max)``.

    Raises
    ------
    InvalidInputError — empty box or resolution outside [8, 1000].
    """
    res = check_int("resolution", resolution, 8)
    if res > 1000:
        raise InvalidInputError(f"resolution must be at most 1000, got {res}")
    a0, a1, b0, b1 = (float(v) for v in box)
    if not (a1 > a0 and b1 > b0):
        raise InvalidInputError(f"box must be (x1_min, x1_max, x2_min, x2_max) with min < max, got {box}")
    g1, g2 = np.linspace(a0, a1, res), np.linspace(b0, b1, res)
    X1, X2 = np.meshgrid(g1, g2)
    pts = as_points(torch.from_numpy(np.stack([X1.ravel(), X2.ravel()], 1)))
    lab = clf.predict(pts).cpu().numpy().reshape(res, res)
    return DecisionRegions(x1=g1, x2=g2, label=lab)


@dataclass(frozen=True)
class Osculating:
    """The boundary's osculating circle at ``z = x + r(x)`` of one point (2-D).

    Attributes
    ----------
    z : (2,) — boundary point (DeepFool's ``x + r(x)``)
    normal : (2,) — unit normal ``∇F(z)/‖∇F(z)‖``, pointing into the other class
    kappa : float — signed normal curvature along the tangent (1/distance); positive: the boundary
        bends toward x (the other class wraps around x, DESIGN §4)
    center : (2,) — ``z − normal/κ`` (NaN where κ = 0: a straight line)
    radius : float — ``1/|κ|`` (inf for a straight line)
    method : str, h : float or None — as :func:`geometry.curvature.curvature_along`
    """

    z: np.ndarray
    normal: np.ndarray
    kappa: float
    center: np.ndarray
    radius: float
    method: str
    h: float | None


def osculating_circle(
    clf: Classifier,
    x: torch.Tensor,
    *,
    method: CurvatureMethod = "exact",
    h: float | None = None,
    deepfool_result: DeepFoolResult | None = None,
) -> Osculating:
    """Osculating circle of the decision boundary at DeepFool's boundary point of one 2-D point.

    The curvature is :func:`geometry.curvature.curvature_along` along the tangent (in 2-D the
    tangent line is one direction), ``κ = (Pt)ᵀ H_F(z) (Pt) / (‖Pt‖² ‖∇F(z)‖)``.

    Raises
    ------
    InvalidInputError — x not one 2-D point, DeepFool did not converge, unknown method.
    """
    if clf.d != 2:
        raise InvalidInputError(f"osculating_circle works in the plane (d = 2), the classifier has d = {clf.d}")
    xs = as_points(x)
    if len(xs) != 1:
        raise InvalidInputError(f"osculating_circle takes one point, got {len(xs)}")
    df = deepfool_result if deepfool_result is not None else deepfool(clf, xs, overshoot=0.0)
    if not bool(df.converged[0]):
        raise InvalidInputError("DeepFool did not reach the boundary from this point: no boundary point to measure")
    z = xs + df.r.to(torch.float64)
    bg = boundary_gradient(clf, z, df.label, df.adv_label)
    n = bg.normal.reshape(2).double()
    t = torch.stack([-n[1], n[0]]).reshape(1, 1, 1, 2)
    ca = curvature_along(clf, xs, t, method=method, h=h, deepfool_result=df)
    kappa = float(ca.kappa[0, 0])
    zz = z.reshape(2).numpy()
    nn_ = n.numpy()
    if kappa == 0 or not math.isfinite(kappa):
        center, radius = np.full(2, np.nan), math.inf
    else:
        center, radius = zz - nn_ / kappa, 1.0 / abs(kappa)
    return Osculating(z=zz, normal=nn_, kappa=kappa, center=center, radius=radius, method=ca.method, h=ca.h)


def fooled_mask(clf: Classifier, x: torch.Tensor, v: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    """Which points a perturbation fools: ``k̂(x + v) ≠ k̂(x)`` per point, shape (N,) bool.

    The mean of this mask is :func:`geometry.universal.fooling_rate` (CVPR 2017 §2).
    """
    xs = as_points(x)
    vv = torch.as_tensor(v, dtype=torch.float64).reshape(1, 1, 1, -1)
    if vv.shape[-1] != clf.d:
        raise InvalidInputError(f"v must have {clf.d} entries, got {vv.shape[-1]}")
    return (clf.predict(xs + vv) != clf.predict(xs)).cpu().numpy()


def direction_vector(angle_deg: float, norm: float) -> np.ndarray:
    """``v = norm · (cos θ, sin θ)`` for an angle in degrees (the page's direction control)."""
    t = math.radians(float(angle_deg))
    return float(norm) * np.array([math.cos(t), math.sin(t)])


def vector_from_click(
    click: tuple[float, float],
    origin: np.ndarray | tuple[float, float],
    *,
    norm_range: tuple[float, float],
    norm_step: float,
    angle_step: float = 1.0,
) -> tuple[float, float]:
    """The direction control's (angle, norm) for a vector v drawn from ``origin`` to a clicked point.

    ``v = click − origin``; its angle (degrees in (−180, 180], rounded to ``angle_step``) and its
    norm (rounded to ``norm_step`` and clipped to ``norm_range``, the slider's bounds) are what the
    page's angle and ‖v‖ sliders take; :func:`direction_vector` turns them back into v.

    Parameters
    ----------
    click : (x1, x2) of the click, data units.
    origin : (2,) where v is drawn from (the 2-D lab draws it from the data's centroid).
    norm_range : (low, high), the norm slider's bounds, data units.
    norm_step, angle_step : the sliders' steps (data units, degrees).

    Returns
    -------
    (angle_deg, norm) : floats.

    Raises
    ------
    InvalidInputError
        If the click is not finite, or lies on ``origin`` (a zero vector has no direction).
    """
    c = np.asarray(click, dtype=float).reshape(-1)
    o = np.asarray(origin, dtype=float).reshape(-1)
    if c.shape != (2,) or o.shape != (2,) or not (np.isfinite(c).all() and np.isfinite(o).all()):
        raise InvalidInputError(f"a click is a finite point of the plane, got {click!r} (origin {origin!r})")
    v = c - o
    length = float(np.hypot(v[0], v[1]))
    if length == 0.0:
        raise InvalidInputError("the click is on v's starting point: a zero vector has no direction")
    angle = round(math.degrees(math.atan2(v[1], v[0])) / angle_step) * angle_step
    angle = 180.0 if angle <= -180.0 else float(angle)
    lo, hi = norm_range
    norm = float(min(max(round(length / norm_step) * norm_step, lo), hi))
    return angle, round(norm, 10)


def nearest_point(click: tuple[float, float], points: np.ndarray) -> int:
    """Index of the point of ``points`` (N, 2) nearest (ℓ2) to a clicked position ``click`` (2,)."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) == 0:
        raise InvalidInputError("no points to pick from")
    c = np.asarray(click, dtype=float).reshape(2)
    return int(np.argmin(((pts - c) ** 2).sum(axis=1)))


def path_of(df: DeepFoolResult, i: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """DeepFool's iterates ``x_0 … x_T`` (T+1, 2) and steps ``r_1 … r_T`` (T, 2) of point i (2-D)."""
    if df.iterates is None or df.steps is None:
        raise InvalidInputError("run deepfool(..., return_iterates=True) to get its iterates")
    k = int(df.n_iter[i])
    pts = df.iterates[: k + 1, i].reshape(k + 1, -1).double().numpy()
    st = df.steps[:k, i].reshape(k, -1).double().numpy()
    return pts, st
