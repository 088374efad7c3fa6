"""Normal cross-sections of the decision boundary: the plane through ``x`` spanned by ``r(x)`` and ``v``.

Paper: Moosavi-Dezfooli, Fawzi, Fawzi, Frossard, Soatto, "Robustness of classifiers to universal
perturbations: a geometric perspective", ICLR 2018, Figures 5, 6 and 13: the labels
``k_hat(x + α e1 + β e2)`` on a grid of the plane spanned by the DeepFool normal ``r(x)`` and a
direction ``v`` (random, a universal perturbation, a vector of S_c or S_f), with orthonormal

    e1 = r / ‖r‖,    e2 = (v − (v·e1) e1) / ‖v − (v·e1) e1‖.

``x`` sits at ``(α, β) = (0, 0)`` and the boundary point ``z = x + r`` at ``(‖r‖, 0)``; ``α`` and ``β``
are distances in pixel space (ℓ2). Points are *not* clipped to the classifier's bounds: the section
is the geometric one of the papers.

Adaptive refinement (quadtree on the grid indices): evaluate a coarse grid (every ``coarse``-th
point), then, level after level, split only the cells whose four corner labels disagree — plus, while
cells are at least 5 steps wide, their neighbours, which catches a boundary that enters and leaves
a cell through one side — until cells are one grid step wide; a cell whose corners (and neighbours) agree is filled with that label. All
points of one level go through the network in a few large batches. A region smaller than about
``coarse`` grid steps that touches no coarse cell corner can be missed; ``adaptive=False`` evaluates
the dense grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .classifier import Classifier, check_images
from .errors import InvalidInputError
from .validation import RandomState, as_generator, check_int

__all__ = ["Section", "random_direction", "normal_section", "plane_point", "direction_through", "MAX_RESOLUTION"]

#: Largest number of grid points per axis of a section. A grid holds int64 labels plus flags for
#: each of its A·B points (≈ 9 bytes each, more in the dense mode's index arrays): 4096² points are
#: ≈ 150 MB; 100 000² would be 90 GB. ``boundary-atlas report --resolution`` has the same limit.
MAX_RESOLUTION = 4096

_PARALLEL_TOL = 1e-6  # ‖v − (v·e1)e1‖ / ‖v‖ below this: v is parallel to r
# Disagreeing cells at least this many grid steps wide also refine their 8 neighbours. On an MNIST
# LeNet (12 sections, 256²) this kept the same labels as dilating at every level (≥ 99.988 % equal
# to dense) with half the forward passes; not dilating at all lost 5× more pixels.
_DILATE_FROM = 5


@dataclass(frozen=True)
class Section:
    """A normal cross-section (CPU tensors).

    Attributes
    ----------
    alpha : (A,) float64
        Coordinates along ``e1 = r/‖r‖`` (pixel-space ℓ2 distance), increasing.
    beta : (B,) float64
        Coordinates along ``e2`` (``v`` orthogonalised against ``e1``, normalised), increasing.
    labels : (B, A) int64
        ``k_hat(x + alpha[j] e1 + beta[i] e2)`` at ``labels[i, j]`` (rows = beta, as in an image
        whose vertical axis is beta).
    e1, e2 : (C, H, W)
        The orthonormal basis of the plane, in the dtype of ``x``.
    label : int
        ``k_hat(x)``.
    r_norm : float
        ``‖r‖₂``: the boundary point ``z = x + r`` is at ``(r_norm, 0)``.
    n_forward : int
        Images actually evaluated (grid points; ``dense_forward`` for a dense section).
    dense_forward : int
        ``A · B``, the images a dense grid needs.
    adaptive : bool
        Whether adaptive refinement was used.
    cos_v_r : float
        Cosine between ``v`` and ``r`` before orthogonalisation.
    """

    alpha: Tensor
    beta: Tensor
    labels: Tensor
    e1: Tensor
    e2: Tensor
    label: int
    r_norm: float
    n_forward: int
    dense_forward: int
    adaptive: bool
    cos_v_r: float

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(alpha_min, alpha_max, beta_min, beta_max)."""
        return (float(self.alpha[0]), float(self.alpha[-1]), float(self.beta[0]), float(self.beta[-1]))

    @property
    def forward_ratio(self) -> float:
        """``n_forward / dense_forward`` (1.0 for a dense section)."""
        return self.n_forward / self.dense_forward


# ---------------------------------------------------------------------------- directions
def random_direction(
    shape: int | Sequence[int], *, random_state: RandomState | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """A random unit vector, uniform on the sphere of ``R^d`` (a normalised Gaussian).

    Parameters
    ----------
    shape : int or tuple of int — e.g. ``clf.input_shape`` (C, H, W)
    random_state : int, torch.Generator or None — never the global RNG (None: fresh entropy)
    dtype : floating dtype of the result (default float32)

    Returns
    -------
    Tensor of ``shape``, ℓ2 norm 1 (CPU).

    Raises
    ------
    InvalidInputError
        non-positive sizes, or a bad ``random_state``.
    """
    shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if not shape or min(shape) <= 0:
        raise InvalidInputError(f"shape must have positive sizes, got {shape}")
    g = as_generator(random_state, allow_none=True)
    v = torch.randn(shape, generator=g, dtype=torch.float64)
    return (v / torch.linalg.vector_norm(v)).to(dtype)


# ---------------------------------------------------------------------------- grid helpers
def _breakpoint_levels(n: int, step: int) -> list[np.ndarray]:
    """Per-axis breakpoints of the quadtree: level 0 every ~``step`` indices, then midpoints, until 1."""
    k = max(1, math.ceil((n - 1) / step))
    levels = [np.unique(np.round(np.linspace(0, n - 1, k + 1)).astype(np.int64))]
    while True:
        P = levels[-1]
        gaps = np.diff(P)
        if gaps.size == 0 or gaps.max() <= 1:
            return levels
        mids = (P[:-1] + P[1:])[gaps > 1] // 2
        levels.append(np.union1d(P, mids))


def _cell_of(P: np.ndarray, n: int) -> np.ndarray:
    """Index of the cell [P[c], P[c+1]) holding each grid index 0..n−1 (the last cell is closed)."""
    return np.clip(np.searchsorted(P, np.arange(n), side="right") - 1, 0, max(len(P) - 2, 0))


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    tmp = out.copy()
    out[:, 1:] |= tmp[:, :-1]
    out[:, :-1] |= tmp[:, 1:]
    return out


class _Evaluator:
    """Labels of ``x + a e1 + b e2`` for lists of grid indices, in batches of ``batch_size``."""

    def __init__(
        self, clf: Classifier, x: Tensor, e1: Tensor, e2: Tensor, alpha: Tensor, beta: Tensor, batch_size: int
    ):
        dev = clf.device
        wd = clf.dtype
        self.net = clf.network
        self.x = x.reshape(-1).to(dev, wd)
        self.E = torch.stack([e1.reshape(-1), e2.reshape(-1)]).to(dev, wd)  # (2, d)
        self.alpha = alpha.to(dev, wd)
        self.beta = beta.to(dev, wd)
        self.shape = tuple(x.shape)
        self.batch_size = batch_size
        self.count = 0

    @torch.no_grad()
    def __call__(self, ib: np.ndarray, ia: np.ndarray) -> np.ndarray:
        out = np.empty(len(ib), dtype=np.int64)
        # the quadtree lives in NumPy: the indices go to the device once per call, the labels come
        # back once per batch (B·A int64 for the dense grid, far fewer for the adaptive one)
        ib_t = torch.from_numpy(ib).to(self.x.device)
        ia_t = torch.from_numpy(ia).to(self.x.device)
        for s in range(0, len(ib), self.batch_size):
            coef = torch.stack([self.alpha[ia_t[s : s + self.batch_size]], self.beta[ib_t[s : s + self.batch_size]]], 1)
            pts = torch.addmm(self.x.unsqueeze(0), coef, self.E).reshape(-1, *self.shape)
            logits = self.net(pts)
            if not torch.isfinite(logits).all():
                raise InvalidInputError("the classifier returned NaN or inf logits on the section plane")
            out[s : s + len(coef)] = logits.argmax(1).cpu().numpy()
        self.count += len(ib)
        return out


def _dense(ev: _Evaluator, B: int, A: int) -> np.ndarray:
    ib, ia = np.divmod(np.arange(A * B, dtype=np.int64), A)
    return ev(ib, ia).reshape(B, A)


def _adaptive(ev: _Evaluator, B: int, A: int, step: int, dilate_from: int = _DILATE_FROM) -> np.ndarray:
    labels = np.full((B, A), -1, dtype=np.int64)
    known = np.zeros((B, A), dtype=bool)
    lev_b, lev_a = _breakpoint_levels(B, step), _breakpoint_levels(A, step)
    n_levels = max(len(lev_b), len(lev_a))
    lev_b += [lev_b[-1]] * (n_levels - len(lev_b))
    lev_a += [lev_a[-1]] * (n_levels - len(lev_a))
    flag = prev_b = prev_a = None
    for lev in range(n_levels):
        Pb, Pa = lev_b[lev], lev_a[lev]
        if lev == 0:
            active = np.ones((len(Pb) - 1, len(Pa) - 1), dtype=bool)
        else:  # children of the flagged cells of the previous level
            assert prev_b is not None and prev_a is not None and flag is not None
            parent_b = np.clip(np.searchsorted(prev_b, Pb[:-1], side="right") - 1, 0, len(prev_b) - 2)
            parent_a = np.clip(np.searchsorted(prev_a, Pa[:-1], side="right") - 1, 0, len(prev_a) - 2)
            active = flag[np.ix_(parent_b, parent_a)]
        if not active.any():
            break
        # Corners of the active cells that are not known yet: one batch of evaluations per level.
        vert = np.zeros((len(Pb), len(Pa)), dtype=bool)
        vert[:-1, :-1] |= active
        vert[1:, :-1] |= active
        vert[:-1, 1:] |= active
        vert[1:, 1:] |= active
        need = vert & ~known[np.ix_(Pb, Pa)]
        vb, va = np.nonzero(need)
        if len(vb):
            ib, ia = Pb[vb], Pa[va]
            labels[ib, ia] = ev(ib, ia)
            known[ib, ia] = True
        V = labels[np.ix_(Pb, Pa)]
        c00 = V[:-1, :-1]
        uniform = (c00 == V[1:, :-1]) & (c00 == V[:-1, 1:]) & (c00 == V[1:, 1:])
        disagree = active & ~uniform
        big = max(int(np.diff(Pb).max()), int(np.diff(Pa).max()))
        flag = active & _dilate(disagree) if big >= dilate_from else disagree
        fill = active & ~flag
        if fill.any():
            cb, ca = _cell_of(Pb, B), _cell_of(Pa, A)
            pix = fill[np.ix_(cb, ca)] & ~known
            labels[pix] = c00[np.ix_(cb, ca)][pix]
            known |= pix
        prev_b, prev_a = Pb, Pa
    if (labels < 0).any():  # pragma: no cover - the quadtree covers every grid point
        missing = np.nonzero(labels < 0)
        labels[missing] = ev(missing[0].astype(np.int64), missing[1].astype(np.int64))
    return labels


# ---------------------------------------------------------------------------- the section
def _single(t: Tensor, shape: Sequence[int], name: str) -> Tensor:
    t = check_images(t, shape, allow_single=True, name=name)
    if t.shape[0] != 1:
        raise InvalidInputError(f"{name} must be one image of shape {tuple(shape)}, got a batch of {t.shape[0]}")
    return t[0]


def _axis(lo: float, hi: float, n: int, name: str) -> Tensor:
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise InvalidInputError(f"extent along {name} must be finite with min < max, got ({lo}, {hi})")
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def normal_section(
    clf: Classifier,
    x: Tensor,
    r: Tensor,
    v: Tensor,
    *,
    extent: float | Sequence[float] | None = None,
    resolution: int | tuple[int, int] = 256,
    adaptive: bool = True,
    coarse: int | None = None,
    batch_size: int = 4096,
) -> Section:
    """Labels ``k_hat(x + α e1 + β e2)`` on a grid of the plane spanned by ``r`` and ``v``.

    Parameters
    ----------
    clf : Classifier
    x : (C, H, W) (or (1, C, H, W)) — the datapoint, at (0, 0)
    r : (C, H, W) — its DeepFool perturbation ``r(x)`` (or any non-zero normal direction);
        ``e1 = r/‖r‖`` and ``z = x + r`` sits at ``(‖r‖, 0)``
    v : (C, H, W) — the second direction (random, UAP, S_c / S_f vector); only its component
        orthogonal to ``r`` matters
    extent : float, (a0, a1, b0, b1) or None
        float e: α, β ∈ [−e, e]; a 4-tuple gives α ∈ [a0, a1], β ∈ [b0, b1] (pixel-space ℓ2
        distances); None: ``2.5 ‖r‖`` on each side of x, which shows the boundary crossing at
        α = ‖r‖ and its shape over ±2.5 ‖r‖ along v.
    resolution : int or (A, B) — grid points along α (A) and β (B), each in [2, MAX_RESOLUTION]
        (4096; checked before anything is allocated)
    adaptive : refine a coarse grid where labels change (default) instead of the dense grid
    coarse : spacing of the first, coarse grid in grid steps (default ``max(2, min(16, n // 8))``);
        features smaller than about that many steps may be missed by the adaptive grid
    batch_size : images per forward pass

    Returns
    -------
    Section — alpha (A,), beta (B,), labels (B, A) int64, e1, e2, label, r_norm, n_forward,
    dense_forward, adaptive, cos_v_r.

    Raises
    ------
    InvalidInputError
        shapes do not match ``clf.input_shape``; NaN / inf; ``r`` zero; ``v`` zero or (nearly)
        parallel to ``r``; bad extent / resolution (< 2 or > MAX_RESOLUTION per axis) / coarse /
        batch_size.

    References
    ----------
    Moosavi-Dezfooli et al., ICLR 2018, §4 and Figures 5, 6, 13 (normal cross-sections).
    """
    shape = clf.input_shape
    x = _single(x, shape, "x")
    r = _single(r, shape, "r")
    v = _single(v, shape, "v")
    r64 = r.detach().reshape(-1).double().cpu()
    v64 = v.detach().reshape(-1).double().cpu()
    r_norm = float(torch.linalg.vector_norm(r64))
    v_norm = float(torch.linalg.vector_norm(v64))
    if r_norm == 0.0:
        raise InvalidInputError("r is zero: the section needs a non-zero normal direction r(x)")
    if v_norm == 0.0:
        raise InvalidInputError("v is zero: the section needs a second direction v not parallel to r")
    e1 = r64 / r_norm
    cos_v_r = float(v64 @ e1) / v_norm
    u = v64 - (v64 @ e1) * e1
    u = u - (u @ e1) * e1  # second Gram–Schmidt pass for orthogonality to round-off
    u_norm = float(torch.linalg.vector_norm(u))
    if u_norm <= _PARALLEL_TOL * v_norm:
        raise InvalidInputError(
            f"v is (nearly) parallel to r (cos = {cos_v_r:+.8f}); choose a direction with a component orthogonal to r"
        )
    e2 = u / u_norm

    if isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool):
        A = B = int(resolution)
    else:
        try:
            A, B = (int(s) for s in resolution)  # type: ignore[union-attr]
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
            raise InvalidInputError(f"resolution must be an int or (A, B), got {resolution!r}") from None
    if A < 2 or B < 2:
        raise InvalidInputError(f"resolution must be at least 2 points per axis, got ({A}, {B})")
    if A > MAX_RESOLUTION or B > MAX_RESOLUTION:
        raise InvalidInputError(
            f"resolution must be at most {MAX_RESOLUTION} points per axis (a grid of "
            f"{MAX_RESOLUTION}² labels), got ({A}, {B})"
        )
    batch_size = check_int("batch_size", batch_size, 1)
    step = max(2, min(16, min(A, B) // 8)) if coarse is None else check_int("coarse (grid steps)", coarse, 1)

    if extent is None:
        ext = 2.5 * r_norm
        a0, a1, b0, b1 = -ext, ext, -ext, ext
    elif isinstance(extent, (int, float, np.floating, np.integer)) and not isinstance(extent, bool):
        ext = float(extent)
        if not (math.isfinite(ext) and ext > 0):
            raise InvalidInputError(f"extent must be a positive number or (a0, a1, b0, b1), got {extent!r}")
        a0, a1, b0, b1 = -ext, ext, -ext, ext
    else:
        try:
            a0, a1, b0, b1 = (float(t) for t in extent)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise InvalidInputError(f"extent must be a positive number or (a0, a1, b0, b1), got {extent!r}") from None
    alpha = _axis(a0, a1, A, "alpha")
    beta = _axis(b0, b1, B, "beta")

    ev = _Evaluator(clf, x.detach().cpu().double(), e1, e2, alpha, beta, int(batch_size))
    with torch.no_grad():
        logits = clf.network(x.detach().unsqueeze(0).to(ev.x.device, clf.dtype))
    if not torch.isfinite(logits).all():
        raise InvalidInputError("the classifier returned NaN or inf logits at x")
    label = int(logits.argmax(1)[0])
    grid = _adaptive(ev, B, A, step) if adaptive else _dense(ev, B, A)

    out_dtype = x.dtype
    return Section(
        alpha=alpha,
        beta=beta,
        labels=torch.from_numpy(grid),
        e1=e1.reshape(shape).to(out_dtype),
        e2=e2.reshape(shape).to(out_dtype),
        label=label,
        r_norm=r_norm,
        n_forward=ev.count,
        dense_forward=A * B,
        adaptive=bool(adaptive),
        cos_v_r=cos_v_r,
    )


# ---------------------------------------------------------------------------- a clicked point of the plane
def _plane_coordinates(alpha: float, beta: float) -> tuple[float, float]:
    try:
        a, b = float(alpha), float(beta)
    except (TypeError, ValueError):
        raise InvalidInputError(f"plane coordinates must be numbers, got ({alpha!r}, {beta!r})") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise InvalidInputError(f"plane coordinates must be finite, got ({a}, {b})")
    return a, b


def plane_point(section: Section, x: Tensor, alpha: float, beta: float) -> Tensor:
    """The image at the plane coordinates ``(α, β)`` of ``section``: ``x + α e1 + β e2`` (ICLR 2018 §4).

    ``x`` (C, H, W): the datapoint the section was cut through (at (0, 0)); ``α``, ``β``: pixel-space ℓ2
    distances along ``e1 = r/‖r‖`` and ``e2``. Returns a (C, H, W) tensor in ``x``'s dtype, not clipped to
    the classifier's bounds (the section is the geometric one). Raises :class:`InvalidInputError` for a
    non-finite coordinate or an ``x`` whose shape is not the section's.
    """
    a, b = _plane_coordinates(alpha, beta)
    if tuple(x.shape) != tuple(section.e1.shape):
        raise InvalidInputError(f"x has shape {tuple(x.shape)}, the section's plane lives in {tuple(section.e1.shape)}")
    return (x.detach().double() + a * section.e1.double() + b * section.e2.double()).to(x.dtype)


def direction_through(section: Section, alpha: float, beta: float, *, tol: float = 1e-9) -> Tensor:
    """The second direction v "through" the point ``(α, β)`` of the plane: the in-plane direction
    ``α e1 + β e2`` made orthogonal to ``e1 = r/‖r‖`` and normalised, as :func:`normal_section` does with
    any ``v`` (ICLR 2018 §4: the second axis of a normal section is v's part orthogonal to r(x)).

    Geometry, stated plainly: the plane through x spanned by (r, v) contains every direction through its
    points, so the result is ``sign(β) · e2`` — the section along it is *this* section (``β > 0``) or its
    mirror image ``β → −β`` (``β < 0``); a click in a 2-D section cannot choose a new plane. Points on the
    r(x) axis itself (``|β| ≤ tol · max(1, |α|)``) have no component orthogonal to r and give no direction:
    :class:`InvalidInputError`, as :func:`normal_section` raises for a ``v`` parallel to r.

    Returns a (C, H, W) unit vector in the dtype of ``section.e2``.
    """
    a, b = _plane_coordinates(alpha, beta)
    if abs(b) <= tol * max(1.0, abs(a)):
        raise InvalidInputError(
            f"(α, β) = ({a:.4g}, {b:.4g}) lies on the r(x) axis: its direction has no part orthogonal to r(x)"
        )
    d = a * section.e1.double() + b * section.e2.double()
    e1 = section.e1.double() / torch.linalg.vector_norm(section.e1.double())
    u = d - (d.reshape(-1) @ e1.reshape(-1)) * e1
    return (u / torch.linalg.vector_norm(u)).to(section.e2.dtype)
