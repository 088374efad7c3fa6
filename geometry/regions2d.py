"""The exact distance to the decision boundary of a piecewise-affine classifier of the plane, by
enumerating its linear regions (issue 21, items 4 and 5).

A ReLU MLP ``f : R² → R^K`` (``Linear`` / ``ReLU`` layers) is affine on each *linear region* — the
set of inputs sharing one activation pattern — and its regions tile the plane into convex polygons
(Montúfar, Pascanu, Cho, Bengio, "On the number of linear regions of deep neural networks", NIPS
2014; Serra, Tjandraatmadja, Ramalingam, "Bounding and counting linear regions of deep neural
networks", ICML 2018, §3). :func:`linear_regions` builds them layer by layer: each region of the
first ``l`` layers is cut by the ``l+1``-th layer's neurons (whose pre-activations are affine on it)
into pieces with one pattern each, and the affine map is composed through the pattern.

Inside a region with logits ``F x + e`` the boundary between classes ``j`` and ``k`` is the line
``(F_j − F_k) x + e_j − e_k = 0`` clipped to the polygon and to where ``j`` and ``k`` are the
argmax (``f_j ≥ f_i`` for every other ``i``): a segment (:func:`boundary_segments`). The set of
points whose label differs from ``k = k̂(x)`` has its boundary on the segments of the pairs that
contain ``k``, so the exact distance from ``x`` to the other classes is the distance from ``x`` to
the nearest such segment (:func:`exact_distance`), in ℓ2 or ℓ∞ — the quantity every sound
certificate lower-bounds and every successful attack upper-bounds (Tsuzuku et al., NeurIPS 2018,
Prop. 1; Jordan, Lewis, Dimakis, "Provable certificates for adversarial examples: fitting a ball in
the union of polytopes", NeurIPS 2019, the same exact distance by the same region decomposition).

The analytic circle of :func:`geometry.testing.sphere_classifier` has its exact distance in closed
form (``|‖x − c‖ − R|`` in ℓ2; the ℓ∞ square that first reaches the circle in ℓ∞), also returned by
:func:`exact_distance`. Smooth networks (tanh) have no finite decomposition and are refused.

Everything is in data units (the plane's coordinates) and float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from .classifier import Classifier
from .errors import InvalidInputError
from .testing import FunctionModule

__all__ = [
    "LinearRegions",
    "BoundarySegments",
    "ExactDistance",
    "affine_layers",
    "linear_regions",
    "boundary_segments",
    "exact_distance",
    "segment_distance",
]

Norm = Literal["l2", "linf"]
#: The largest number of regions :func:`linear_regions` builds before refusing (a 2-D toy MLP of two
#: hidden layers of 32 ReLUs has a few hundred to a few thousand in its data box).
MAX_REGIONS = 200_000


@dataclass(frozen=True)
class LinearRegions:
    """The linear regions of a piecewise-affine classifier of the plane inside a box.

    Attributes
    ----------
    polygons : tuple of R arrays (V_r, 2) — each region's convex polygon, vertices counter-clockwise
    jacobian : (R, K, 2) — ``F`` of the logits ``f(x) = F x + e`` on each region
    offset : (R, K) — ``e``
    box : (x1_min, x1_max, x2_min, x2_max) — the box the regions tile
    """

    polygons: tuple[np.ndarray, ...]
    jacobian: np.ndarray
    offset: np.ndarray
    box: tuple[float, float, float, float]

    def __len__(self) -> int:
        return len(self.polygons)


@dataclass(frozen=True)
class BoundarySegments:
    """The decision boundary inside a box as line segments.

    Attributes
    ----------
    start, end : (S, 2) — the segments' end points (data units)
    classes : (S, 2) int64 — the two classes ``j < k`` tied (and maximal) along the segment
    box : (x1_min, x1_max, x2_min, x2_max)
    n_regions : int — the linear regions they were cut from (0 for an analytic boundary)
    """

    start: np.ndarray
    end: np.ndarray
    classes: np.ndarray
    box: tuple[float, float, float, float]
    n_regions: int

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True)
class ExactDistance:
    """The exact distance from points to the other classes.

    Attributes
    ----------
    distance : (B,) float64 — ``min ‖z − x‖`` over ``z`` with ``k̂(z) ≠ k̂(x)`` (closure), in ``norm``;
        inf where no boundary was found
    nearest : (B, 2) — a nearest boundary point (NaN where ``distance`` is inf)
    label : (B,) int64 — ``k̂(x)``
    norm : "l2" or "linf"
    exact : (B,) bool — the ball of radius ``distance`` around x lies inside the enumerated box, so
        no nearer boundary can lie outside it (always True for the analytic circle)
    box : the box whose regions were enumerated (the last one tried)
    """

    distance: np.ndarray
    nearest: np.ndarray
    label: np.ndarray
    norm: str
    exact: np.ndarray
    box: tuple[float, float, float, float]


# ---------------------------------------------------------------------------- the network's affine layers
def affine_layers(clf: Classifier) -> list[tuple[np.ndarray, np.ndarray]]:
    """The classifier as ``[(W_1, b_1), …, (W_L, b_L)]`` with ReLU between consecutive layers.

    Parameters
    ----------
    clf : Classifier with ``d = 2`` whose network is an ``nn.Sequential`` of ``Flatten`` / ``Linear`` /
        ``ReLU`` (a ``Linear`` between every two ReLUs), or the analytic affine classifier of
        :func:`geometry.testing.affine_classifier`.

    Returns
    -------
    list of (W (out, in), b (out,)) float64 arrays; one pair for an affine classifier.

    Raises
    ------
    InvalidInputError
        ``d ≠ 2``, input normalisation, a layer that is not piecewise affine (tanh, …), or an analytic
        classifier that is not affine.
    """
    if clf.d != 2:
        raise InvalidInputError(f"linear regions are enumerated in the plane (d = 2), the classifier has d = {clf.d}")
    if clf.mean is not None:
        raise InvalidInputError("linear regions are enumerated for networks without input normalisation")
    net = clf.network
    if isinstance(net, FunctionModule):
        buffers = dict(net.named_buffers())
        if set(buffers) != {"W_", "b_"}:
            raise InvalidInputError(
                "only the analytic affine classifier (buffers W_, b_) is piecewise affine; "
                f"this analytic classifier has buffers {sorted(buffers)}"
            )
        return [(buffers["W_"].double().cpu().numpy(), buffers["b_"].double().cpu().numpy())]
    if not isinstance(net, nn.Sequential):
        raise InvalidInputError(
            f"linear regions need an nn.Sequential of Linear and ReLU layers, got {type(net).__name__}"
        )
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    pending_relu = False
    for module in net:
        if isinstance(module, nn.Flatten):
            continue
        if isinstance(module, nn.Linear):
            if layers and not pending_relu:
                raise InvalidInputError("two Linear layers without a ReLU between them: merge them first")
            W = module.weight.detach().double().cpu().numpy()
            b = (
                module.bias.detach().double().cpu().numpy()
                if module.bias is not None
                else np.zeros(module.out_features)
            )
            layers.append((W, b))
            pending_relu = False
        elif isinstance(module, nn.ReLU):
            if not layers or pending_relu:
                raise InvalidInputError("a ReLU must follow a Linear layer")
            pending_relu = True
        else:
            raise InvalidInputError(
                f"a {type(module).__name__} layer is not piecewise affine: the exact distance by linear regions "
                "needs Linear and ReLU layers only"
            )
    if not layers or pending_relu:
        raise InvalidInputError("the network must start and end with a Linear layer")
    if layers[0][0].shape[1] != 2:
        raise InvalidInputError(f"the first Linear layer must take the plane (2 inputs), got {layers[0][0].shape[1]}")
    return layers


# ---------------------------------------------------------------------------- polygons
def _check_box(box: tuple[float, float, float, float] | list[float]) -> tuple[float, float, float, float]:
    a0, a1, b0, b1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (a0, a1, b0, b1)) or not (a1 > a0 and b1 > b0):
        raise InvalidInputError(f"box must be finite (x1_min, x1_max, x2_min, x2_max) with min < max, got {box}")
    return a0, a1, b0, b1


def _clip(poly: np.ndarray, values: np.ndarray, keep_positive: bool) -> np.ndarray | None:
    """Sutherland–Hodgman: the part of a convex polygon where ``values`` (affine, given at the vertices)
    is ≥ 0 (or ≤ 0); None when it has no area."""
    v = values if keep_positive else -values
    out = []
    n = len(poly)
    for i in range(n):
        j = (i + 1) % n
        vp, vq = v[i], v[j]
        if vp >= 0:
            out.append(poly[i])
        if (vp > 0 and vq < 0) or (vp < 0 and vq > 0):
            t = vp / (vp - vq)
            out.append(poly[i] + t * (poly[j] - poly[i]))
    if len(out) < 3:
        return None
    return np.asarray(out)


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _split(poly: np.ndarray, A: np.ndarray, c: np.ndarray, min_area: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cut a convex polygon by the lines ``A_i x + c_i = 0``; each piece with its pattern ``A x + c > 0``."""
    vals = poly @ A.T + c  # (V, m)
    scale = np.abs(vals).max(0) + 1e-300
    crossing = np.flatnonzero((vals.max(0) > 1e-12 * scale) & (vals.min(0) < -1e-12 * scale))
    pieces = [poly]
    for i in crossing:
        nxt = []
        for p in pieces:
            v = p @ A[i] + c[i]
            if v.max() <= 1e-12 * scale[i] or v.min() >= -1e-12 * scale[i]:
                nxt.append(p)
                continue
            for keep in (True, False):
                q = _clip(p, v, keep)
                if q is not None and abs(_area(q)) > min_area:
                    nxt.append(q)
        pieces = nxt
    out = []
    for p in pieces:
        centre = p.mean(0)  # inside a convex polygon: its pattern is the piece's
        out.append((p, (A @ centre + c) > 0))
    return out


def linear_regions(
    clf: Classifier, box: tuple[float, float, float, float] | list[float], *, max_regions: int = MAX_REGIONS
) -> LinearRegions:
    """The linear regions of a ReLU MLP of the plane inside ``box``, with the logits' affine map on each.

    Parameters
    ----------
    clf : a piecewise-affine classifier of the plane (:func:`affine_layers`)
    box : (x1_min, x1_max, x2_min, x2_max), data units
    max_regions : refuse (InvalidInputError) beyond this many regions

    Returns
    -------
    LinearRegions — polygons tiling ``box`` (pieces of area below 1e-14 of the box's are dropped)

    Raises
    ------
    InvalidInputError
        see :func:`affine_layers`; a bad box; more than ``max_regions`` regions.

    References: Serra et al., ICML 2018, §3 (regions as activation patterns, layer by layer).
    """
    layers = affine_layers(clf)
    a0, a1, b0, b1 = _check_box(box)
    min_area = 1e-14 * (a1 - a0) * (b1 - b0)
    square = np.array([[a0, b0], [a1, b0], [a1, b1], [a0, b1]], dtype=np.float64)
    W0, b0_ = layers[0]
    current: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [(square, W0, b0_)]
    for W, b in layers[1:]:
        nxt = []
        for poly, A, c in current:
            for piece, active in _split(poly, A, c, min_area):
                Am = A * active[:, None]
                nxt.append((piece, W @ Am, W @ (c * active) + b))
            if len(nxt) > max_regions:
                raise InvalidInputError(f"more than {max_regions} linear regions in the box: too large a network")
        current = nxt
    return LinearRegions(
        polygons=tuple(p for p, _, _ in current),
        jacobian=np.stack([A for _, A, _ in current]),
        offset=np.stack([c for _, _, c in current]),
        box=(a0, a1, b0, b1),
    )


def _line_in_polygon(poly: np.ndarray, g: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The chord of a convex polygon on the line ``g·x + h = 0`` (None if it misses or only touches)."""
    v = poly @ g + h
    n = len(poly)
    pts = []
    for i in range(n):
        j = (i + 1) % n
        if v[i] == 0:
            pts.append(poly[i])
        elif (v[i] > 0 and v[j] < 0) or (v[i] < 0 and v[j] > 0):
            t = v[i] / (v[i] - v[j])
            pts.append(poly[i] + t * (poly[j] - poly[i]))
    if len(pts) < 2:
        return None
    d = np.array([-g[1], g[0]])
    s = np.array([p @ d for p in pts])
    p, q = pts[int(s.argmin())], pts[int(s.argmax())]
    if float(np.hypot(*(q - p))) == 0.0:
        return None
    return p, q


def _clip_segment(p: np.ndarray, q: np.ndarray, g: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of segment pq where ``g·x + h ≥ 0``."""
    vp, vq = float(p @ g + h), float(q @ g + h)
    if vp < 0 and vq < 0:
        return None
    if vp >= 0 and vq >= 0:
        return p, q
    t = vp / (vp - vq)
    z = p + t * (q - p)
    return (p, z) if vp >= 0 else (z, q)


def boundary_segments(regions: LinearRegions) -> BoundarySegments:
    """The decision boundary inside the regions' box: per region and pair of classes ``j < k``, the chord
    of ``f_j = f_k`` clipped to where ``j`` and ``k`` are the argmax.

    Returns
    -------
    BoundarySegments — the decision boundary is their union (segments of adjacent regions share end points).
    """
    starts, ends, pairs = [], [], []
    K = regions.jacobian.shape[1]
    for poly, F, e in zip(regions.polygons, regions.jacobian, regions.offset, strict=True):
        for j in range(K):
            for k in range(j + 1, K):
                g, h = F[j] - F[k], float(e[j] - e[k])
                if not np.any(g):
                    continue  # f_j − f_k constant on the region: no crossing (a tie everywhere is degenerate)
                chord = _line_in_polygon(poly, g, h)
                for i in range(K):
                    if chord is None or i in (j, k):
                        continue
                    chord = _clip_segment(chord[0], chord[1], F[j] - F[i], float(e[j] - e[i]))
                if chord is not None:
                    starts.append(chord[0])
                    ends.append(chord[1])
                    pairs.append((j, k))
    return BoundarySegments(
        start=np.asarray(starts, dtype=np.float64).reshape(-1, 2),
        end=np.asarray(ends, dtype=np.float64).reshape(-1, 2),
        classes=np.asarray(pairs, dtype=np.int64).reshape(-1, 2),
        box=regions.box,
        n_regions=len(regions),
    )


# ---------------------------------------------------------------------------- distances
def segment_distance(
    points: np.ndarray, start: np.ndarray, end: np.ndarray, *, norm: Norm = "l2"
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from every point to every segment, and the nearest point of each segment.

    Parameters
    ----------
    points : (B, 2); start, end : (S, 2)
    norm : "l2" (the projection clamped to the segment) or "linf" (``max(|Δx₁|, |Δx₂|)`` is convex and
        piecewise affine along the segment, so its minimum is at an end or where ``Δx₁``, ``Δx₂`` or
        ``Δx₁ ± Δx₂`` vanish)

    Returns
    -------
    distance : (B, S); nearest : (B, S, 2)
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
    a = np.asarray(start, dtype=np.float64).reshape(1, -1, 2)
    d = np.asarray(end, dtype=np.float64).reshape(1, -1, 2) - a
    w = p - a  # (B, S, 2): the point seen from the segment's start; z(t) = a + t d, x − z(t) = w − t d
    if norm == "l2":
        dd = (d**2).sum(-1)
        t = np.clip((w * d).sum(-1) / np.where(dd > 0, dd, 1.0), 0.0, 1.0)
        z = a + t[..., None] * d
        return np.sqrt(((p - z) ** 2).sum(-1)), z
    if norm != "linf":
        raise InvalidInputError(f"norm must be 'l2' or 'linf', got {norm!r}")
    w1, w2, d1, d2 = w[..., 0], w[..., 1], d[..., 0], d[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        cands = [
            np.zeros_like(w1),
            np.ones_like(w1),
            w1 / d1,
            w2 / d2,
            (w1 - w2) / (d1 - d2),
            (w1 + w2) / (d1 + d2),
        ]
    best = np.full(w1.shape, np.inf)
    best_t = np.zeros_like(w1)
    for t in cands:
        t = np.clip(np.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)
        val = np.maximum(np.abs(w1 - t * d1), np.abs(w2 - t * d2))
        better = val < best
        best = np.where(better, val, best)
        best_t = np.where(better, t, best_t)
    return best, a + best_t[..., None] * d


def _sphere_distance(x: np.ndarray, c: np.ndarray, R: float, norm: Norm) -> tuple[np.ndarray, np.ndarray]:
    """Exact distance from points to the circle ‖z − c‖ = R, and a nearest point."""
    u = x - c
    r = np.sqrt((u**2).sum(1))
    if norm == "l2":
        dist = np.abs(r - R)
        dirn = np.where(r[:, None] > 0, u / np.where(r > 0, r, 1.0)[:, None], np.array([1.0, 0.0]))
        return dist, c + R * dirn
    a = np.abs(u)
    sgn = np.where(u >= 0, 1.0, -1.0)
    S = a.sum(1)
    inside = r <= R
    # inside: the farthest corner of the square of half-width t reaches the circle, ‖|u| + t·1‖ = R
    t_in = (-S + np.sqrt(np.maximum(S**2 - 2 * (r**2 - R**2), 0.0))) / 2
    # outside: the square meets the disk, ‖max(|u| − t, 0)‖ = R; both components active, or only the larger
    hi, lo = a.max(1), a.min(1)
    disc = (hi + lo) ** 2 - 2 * (hi**2 + lo**2 - R**2)
    t_both = ((hi + lo) - np.sqrt(np.maximum(disc, 0.0))) / 2
    t_out = np.where((disc >= 0) & (t_both <= lo), t_both, hi - R)
    t = np.where(inside, t_in, np.maximum(t_out, 0.0))
    # a nearest point: inside, the corner; outside, the point of the circle nearest to the square
    corner = c + sgn * (a + t[:, None])
    sq = np.clip(c, x - t[:, None], x + t[:, None])  # the square's point nearest to c
    v = sq - c
    nv = np.sqrt((v**2).sum(1))
    near_out = c + R * v / np.where(nv > 0, nv, 1.0)[:, None]
    return t, np.where(inside[:, None], corner, near_out)


def _default_box(clf: Classifier, pts: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = pts.min(0), pts.max(0)
    if clf.bounds is not None:
        blo, bhi = (float(v) for v in clf.bounds)
        if math.isfinite(blo) and math.isfinite(bhi):
            lo, hi = np.minimum(lo, blo), np.maximum(hi, bhi)
    span = max(float((hi - lo).max()), 1.0)
    return float(lo[0]) - span / 2, float(hi[0]) + span / 2, float(lo[1]) - span / 2, float(hi[1]) + span / 2


def _sphere_params(clf: Classifier) -> tuple[np.ndarray, float] | None:
    net = clf.network
    if clf.d == 2 and clf.mean is None and isinstance(net, FunctionModule):
        buffers = dict(net.named_buffers())
        if set(buffers) == {"c_", "r2_"}:
            return buffers["c_"].double().cpu().numpy().reshape(2), math.sqrt(float(buffers["r2_"]))
    return None


def exact_distance(
    clf: Classifier,
    x: torch.Tensor | np.ndarray,
    *,
    norm: Norm = "l2",
    box: tuple[float, float, float, float] | list[float] | None = None,
    segments: BoundarySegments | None = None,
    max_grow: int = 4,
) -> ExactDistance:
    """Exact distance from each point to the nearest point of another class, by linear regions.

    Parameters
    ----------
    clf : a ReLU MLP or the analytic affine classifier of the plane (:func:`affine_layers`), or the
        analytic circle (:func:`geometry.testing.sphere_classifier`, closed form)
    x : (B, 2) points or (B, 1, 1, 2) images, data units
    norm : "l2" or "linf"
    box : the box to enumerate regions in (default: the points' box and ``clf.bounds`` widened by half
        their span); grown ×2 (about its centre, up to ``max_grow`` times) while some point's ball of
        radius ``distance`` leaves it, so that no nearer boundary can lie outside
    segments : precomputed :func:`boundary_segments` (then ``box`` and growing are not used)

    Returns
    -------
    ExactDistance — ``distance`` (B,) with ``exact`` (B,) saying whether the ball stayed inside the box.

    Raises
    ------
    InvalidInputError — see :func:`affine_layers`; x not points of the plane; an unknown norm.

    References: Jordan et al., NeurIPS 2019 (exact ℓp distance of a ReLU net by its polytopes); Serra
    et al., ICML 2018 (linear regions).
    """
    if norm not in ("l2", "linf"):
        raise InvalidInputError(f"norm must be 'l2' or 'linf', got {norm!r}")
    arr = torch.as_tensor(x, dtype=torch.float64).detach().cpu()
    if arr.numel() == 0 or arr.numel() % 2 != 0 or clf.d != 2:
        raise InvalidInputError(f"x must be points of the plane, (B, 2) or (B, 1, 1, 2); got shape {tuple(arr.shape)}")
    pts = arr.reshape(-1, 2).numpy()
    if not np.isfinite(pts).all():
        raise InvalidInputError("x must be finite")
    label = clf.predict(arr.reshape(-1, *clf.input_shape)).cpu().numpy()
    sphere = _sphere_params(clf)
    if sphere is not None:
        dist, near = _sphere_distance(pts, sphere[0], sphere[1], norm)
        b = box if box is not None else _default_box(clf, pts)
        return ExactDistance(dist, near, label, norm, np.ones(len(pts), dtype=bool), _check_box(b))
    if segments is not None:
        return _distance_to(pts, label, segments, norm)
    current = _check_box(box) if box is not None else _default_box(clf, pts)
    for attempt in range(max_grow + 1):
        result = _distance_to(pts, label, boundary_segments(linear_regions(clf, current)), norm)
        if bool(result.exact.all()) or attempt == max_grow:
            return result
        a0, a1, b0, b1 = current
        cx, cy, hx, hy = (a0 + a1) / 2, (b0 + b1) / 2, a1 - a0, b1 - b0
        current = (cx - hx, cx + hx, cy - hy, cy + hy)
    raise AssertionError("unreachable")  # pragma: no cover


def _distance_to(pts: np.ndarray, label: np.ndarray, seg: BoundarySegments, norm: Norm) -> ExactDistance:
    B = len(pts)
    dist = np.full(B, np.inf)
    near = np.full((B, 2), np.nan)
    if len(seg):
        for lo in range(0, B, 256):
            sl = slice(lo, lo + 256)
            dm, zm = segment_distance(pts[sl], seg.start, seg.end, norm=norm)
            mine = (seg.classes[None, :, 0] == label[sl, None]) | (seg.classes[None, :, 1] == label[sl, None])
            dm = np.where(mine, dm, np.inf)
            idx = dm.argmin(1)
            rows = np.arange(len(idx))
            dist[sl] = dm[rows, idx]
            near[sl] = np.where(np.isfinite(dist[sl])[:, None], zm[rows, idx], np.nan)
    a0, a1, b0, b1 = seg.box
    room = np.minimum.reduce([pts[:, 0] - a0, a1 - pts[:, 0], pts[:, 1] - b0, b1 - pts[:, 1]])
    return ExactDistance(dist, near, label, norm, np.isfinite(dist) & (dist <= room), seg.box)
