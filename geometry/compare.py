"""Comparing networks: shared curved subspaces and the transferability of universal perturbations.

Quantities (ICLR 2018 §5 Fig. 10, Appendix C.2 Fig. 13; DESIGN §4 "Principal angles"):

* :func:`compare_bases` — the cosines of the principal angles between two subspaces next to the
  random baseline (the same cosines for two Haar-random subspaces of the same dimensions, mean ± std
  over samples): Fig. 10's two curves;
* :func:`compare_networks` — given S_c (and S_f) of two networks, :func:`compare_bases` for each
  kind; :func:`compare_subspaces` estimates them on the *same* points with the *same* estimator and
  scale h first (uncached; the study layer caches them and calls :func:`compare_networks`). "The first principal
  angles between the two subspaces are very small, leading to shared directions" (§5);
* :func:`transfer_sections` — Fig. 13: the normal cross-section of network B at a datapoint along a
  fixed direction of network A's S_c, beside the same along a random direction, with the curvature
  of B's boundary along each;
* :func:`transfer_matrix` — Appendix C.2 as a number: random vectors of norm ξ drawn from each
  network's S_c (the recipe of Fig. 7b) applied to every network; entry (i, j) is the fooling rate
  on network j of vectors from the i-th subspace. A "random" row (vectors uniform on the ξ-sphere of
  the whole pixel space) is the baseline.

Convention of the matrix: **row = whose subspace the vectors come from, column = the network they
are applied to**; the diagonal is the Fig. 7b setting (a network's own S_c), off-diagonal entries
measure transfer. Fooling rates are one-sided, ``mean[k̂_j(x + v) ≠ k̂_j(x)]`` with each column's
own predictions k̂_j (never ground-truth labels), perturbations not clipped to the pixel bounds
(as :mod:`geometry.universal`).

All results hold CPU float64 tensors; no function modifies its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .classifier import Classifier, check_images
from .errors import InvalidInputError
from .hessian import CurvatureEstimator, as_estimator
from .progress import ProgressFn
from .subspaces import RandomBaseline, Subspace, principal_angles, random_baseline
from .validation import BasisLike, as_generator, check_int

if TYPE_CHECKING:  # sections is imported lazily, where a section is drawn
    from .sections import Section

__all__ = [
    "SubspaceComparison",
    "NetworkComparison",
    "TransferSections",
    "TransferMatrix",
    "compare_bases",
    "compare_networks",
    "compare_subspaces",
    "check_comparison",
    "flat_dimension",
    "transfer_sections",
    "transfer_matrix",
    "RANDOM_ROW",
]


#: Name of the baseline row of :func:`transfer_matrix` (isotropic random vectors).
RANDOM_ROW = "random vector"


# ---------------------------------------------------------------------------------------- helpers
def _call(progress: ProgressFn | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)


def _positive_int(value: Any, name: str) -> int:
    return check_int(name, value, 1)


def _basis(b: Any, name: str) -> Tensor:
    """A (d, M) float64 CPU matrix from a Subspace-like object (``.basis``) or a tensor / array."""
    if hasattr(b, "basis"):
        b = b.basis
    if isinstance(b, np.ndarray):
        b = torch.from_numpy(b)
    if not isinstance(b, Tensor):
        raise InvalidInputError(f"{name} must be a (d, m) basis or a Subspace, got {type(b).__name__}")
    b = b.detach().to("cpu", torch.float64)
    if b.dim() == 1:
        b = b[:, None]
    if b.dim() != 2 or b.shape[0] == 0 or b.shape[1] == 0:
        raise InvalidInputError(f"{name} must be a non-empty (d, m) matrix, got shape {tuple(b.shape)}")
    if not torch.isfinite(b).all():
        raise InvalidInputError(f"{name} contains NaN or inf entries")
    return b


def _orthonormal(b: Tensor, name: str, atol: float = 1e-6) -> Tensor:
    gram = b.T @ b
    err = float((gram - torch.eye(b.shape[1], dtype=b.dtype)).abs().max())
    if err > atol:
        raise InvalidInputError(
            f"{name} must have orthonormal columns (max |BᵀB − I| = {err:.2e} > {atol:g}); "
            "pass a Subspace or an orthonormalised basis"
        )
    return b


# ---------------------------------------------------------------------------------------- Fig. 10
@dataclass(frozen=True)
class SubspaceComparison:
    """Cosines of the principal angles between two subspaces, and the random baseline (Fig. 10).

    Attributes
    ----------
    cosines : (k,) float64 — ``cos θ_1 ≥ … ≥ cos θ_k`` between the two spans, k = min(p, q)
    baseline : RandomBaseline — the same cosines for pairs of Haar-random p- and q-dimensional
        subspaces of R^d (``baseline.mean``, ``baseline.std``: (k,))
    z_scores : (k,) float64 — ``(cosines − baseline.mean) / baseline.std`` (how many baseline
        standard deviations above chance; ±inf where the std is 0)
    d, p, q : int — ambient dimension and the two subspace dimensions
    kind : str — what is compared ("curved" = S_c, "flat" = S_f, or free text)
    names : (str, str) — the two subspaces' owners (network names)
    """

    cosines: Tensor
    baseline: RandomBaseline
    z_scores: Tensor
    d: int
    p: int
    q: int
    kind: str
    names: tuple

    @property
    def k(self) -> int:
        return len(self.cosines)

    def above_baseline(self, n_std: float = 2.0) -> Tensor:
        """(k,) bool — which cosines exceed the baseline mean by more than ``n_std`` baseline stds."""
        return self.cosines > self.baseline.mean + float(n_std) * self.baseline.std


def compare_bases(
    A: Any,
    B: Any,
    *,
    m: int | None = None,
    n_samples: int = 100,
    random_state: Any = 0,
    kind: str = "",
    names: Sequence[str] = ("A", "B"),
) -> SubspaceComparison:
    """Principal-angle cosines between ``span(A[:, :m])`` and ``span(B[:, :m])`` and their random baseline.

    Parameters
    ----------
    A, B : (d, p) / (d, q) tensors or arrays (columns span the subspaces, orthonormality not
        required), or :class:`geometry.curvature.Subspace` objects (their ``basis``)
    m : int, optional — compare only the first m columns of each (the top-m directions of an
        ordered basis such as S_c); default all columns
    n_samples : int ≥ 1 — pairs of random subspaces for the baseline
    random_state : int or torch.Generator — the baseline's randomness
    kind, names : labels stored in the result

    Returns
    -------
    SubspaceComparison (cosines (k,), baseline, z_scores, d, p, q, kind, names)

    Raises
    ------
    InvalidInputError
        different d, rank-deficient or non-finite bases, m larger than either basis, bad sizes.

    References: ICLR 2018 Fig. 10; cosines = singular values of ``Q_Aᵀ Q_B``
    (:func:`geometry.subspaces.principal_angles`).
    """
    a = _basis(A, "A")
    b = _basis(B, "B")
    if a.shape[0] != b.shape[0]:
        raise InvalidInputError(f"A and B must live in the same dimension d, got d = {a.shape[0]} and d = {b.shape[0]}")
    if m is not None:
        m = _positive_int(m, "m")
        if m > min(a.shape[1], b.shape[1]):
            raise InvalidInputError(
                f"m must be at most the smaller basis size ({min(a.shape[1], b.shape[1])}), got {m}"
            )
        a, b = a[:, :m], b[:, :m]
    n_samples = _positive_int(n_samples, "n_samples")
    cos = principal_angles(a, b)
    d, p, q = int(a.shape[0]), int(a.shape[1]), int(b.shape[1])
    base = random_baseline(d, p, q, n_samples=n_samples, random_state=random_state)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (cos - base.mean) / base.std
    names = tuple(str(n) for n in names)
    if len(names) != 2:
        raise InvalidInputError(f"names must be two strings, got {names!r}")
    return SubspaceComparison(cosines=cos, baseline=base, z_scores=z, d=d, p=p, q=q, kind=str(kind), names=names)


@dataclass(frozen=True)
class NetworkComparison:
    """S_c and S_f of two networks on the same points, and their principal angles (Fig. 10).

    Attributes
    ----------
    names : (name_a, name_b)
    subspaces : dict kind → (Subspace of A, Subspace of B) — kind "curved" (S_c) / "flat" (S_f),
        each estimated with ``m_estimated`` directions
    comparisons : dict kind → SubspaceComparison — for the first ``m`` directions of each
    m : int — dimension compared; m_estimated : int — dimension estimated (≥ m)
    n : int — points used (before DeepFool drops)
    method : str; h : float or None (pixel units); beta : float or None — the curvature estimator,
        identical for both networks
    """

    names: tuple
    subspaces: dict
    comparisons: dict
    m: int
    m_estimated: int
    n: int
    method: str
    h: float | None
    beta: float | None


def compare_networks(
    subspaces: Mapping[str, Sequence[Subspace]],
    *,
    names: Sequence[str],
    m: int,
    n: int,
    estimator: CurvatureEstimator,
    n_baseline: int = 100,
    random_state: int = 0,
) -> NetworkComparison:
    """Principal angles between two networks' subspaces of each kind, given the subspaces (Fig. 10).

    Parameters
    ----------
    subspaces : kind → (Subspace of network A, Subspace of network B) — kind "curved" (S_c) or
        "flat" (S_f), each with at least ``m`` directions (estimated by the caller, e.g.
        :func:`compare_subspaces` or :func:`geometry.study.compare_study` with its disk cache)
    names : (name_a, name_b)
    m : int — directions compared (principal angles 1..m)
    n : int — points the subspaces were estimated on
    estimator : CurvatureEstimator — the (resolved) estimator of S_c, recorded in the result
    n_baseline : int — random-subspace pairs for the baseline
    random_state : int — the baseline's randomness

    Returns
    -------
    NetworkComparison — ``m_estimated`` is the smallest subspace dimension given.

    Raises
    ------
    InvalidInputError
        not two subspaces per kind, an unknown kind, m larger than a subspace.
    """
    pairs = {str(k): tuple(v) for k, v in subspaces.items()}
    if not pairs or any(k not in ("curved", "flat") or len(v) != 2 for k, v in pairs.items()):
        raise InvalidInputError(f"subspaces must map 'curved' / 'flat' to two subspaces each, got {sorted(pairs)}")
    names = tuple(str(x) for x in names)
    comparisons = {
        kind: compare_bases(a, b, m=m, n_samples=n_baseline, random_state=random_state, kind=kind, names=names)
        for kind, (a, b) in pairs.items()
    }
    return NetworkComparison(
        names=names,
        subspaces=pairs,
        comparisons=comparisons,
        m=int(m),
        m_estimated=min(s.m for v in pairs.values() for s in v),
        n=int(n),
        method=estimator.method,
        h=estimator.h,
        beta=estimator.beta,
    )


def check_comparison(
    clf_a: Classifier, clf_b: Classifier, xs: Tensor, *, m: int, m_estimated: int | None, kinds: Sequence[str]
) -> tuple[Tensor, int, int, tuple[str, ...]]:
    """Validated ``(xs, m, m_estimated, kinds)`` of a comparison of two networks on the points ``xs``.

    Raises
    ------
    InvalidInputError
        different input shapes, bad images, unknown kind, m / m_estimated out of range.
    """
    if tuple(clf_a.input_shape) != tuple(clf_b.input_shape):
        raise InvalidInputError(
            f"the two networks must take the same input shape, got {tuple(clf_a.input_shape)} "
            f"and {tuple(clf_b.input_shape)}"
        )
    xs = check_images(xs, clf_a.input_shape, name="xs")
    kinds = tuple(kinds)
    if not kinds or any(k not in ("curved", "flat") for k in kinds):
        raise InvalidInputError(f"kinds must be a non-empty subset of ('curved', 'flat'), got {kinds!r}")
    m = _positive_int(m, "m")
    m_est = m if m_estimated is None else _positive_int(m_estimated, "m_estimated")
    if m_est < m:
        raise InvalidInputError(f"m_estimated must be at least m = {m}, got {m_est}")
    return xs, m, m_est, kinds


def flat_dimension(clf: Classifier, df: Any, n_points: int, *, m: int, m_estimated: int) -> int:
    """Directions of S_f: ``min(m_estimated, converged DeepFool points)``.

    Raises
    ------
    InvalidInputError
        fewer than ``m`` converged points.
    """
    m_f = min(m_estimated, int(torch.as_tensor(df.converged).sum()))
    if m_f < m:
        raise InvalidInputError(
            f"DeepFool converged on only {m_f} of {n_points} points for {clf.name}: "
            f"S_f cannot have m = {m} directions; lower m or raise n"
        )
    return m_f


def compare_subspaces(
    clf_a: Classifier,
    clf_b: Classifier,
    xs: Tensor,
    *,
    m: int = 10,
    m_estimated: int | None = None,
    kinds: Sequence[str] = ("curved", "flat"),
    estimator: CurvatureEstimator | None = None,
    n_baseline: int = 100,
    random_state: int = 0,
    progress: ProgressFn | None = None,
) -> NetworkComparison:
    """S_c / S_f of two networks from the same points, compared by principal angles (ICLR 2018 Fig. 10).

    Both subspaces of a kind are estimated with the same estimator on the same points ``xs``
    (:func:`geometry.curvature.curved_subspace`: average tangent Hessian at the boundary points
    z = x + r(x), top eigenvectors; :func:`geometry.curvature.flat_subspace`: top left singular
    vectors of the unit normals), then compared by :func:`compare_networks`. The estimator is
    resolved once, on network A (default h: the authors' ``10·√d·range/512`` of A), and used for
    both, so the comparison does not mix scales. Each network uses its *own* DeepFool normals and
    boundary points. Nothing is cached (the study layer's :func:`geometry.study.compare_study`
    caches the subspaces and passes them to :func:`compare_networks`).

    Parameters
    ----------
    clf_a, clf_b : Classifier — same input shape (and so the same d)
    xs : (n, C, H, W) — estimation points (training points in the paper), pixel space; not modified
    m : int — number of directions compared (principal angles 1..m)
    m_estimated : int ≥ m, optional — dimension of the estimated subspaces (default m)
    kinds : subset of ("curved", "flat")
    estimator : CurvatureEstimator, optional — the curvature estimator of S_c (:mod:`geometry.hessian`)
    n_baseline : int — random-subspace pairs for the baseline
    random_state : int — eigsh start vector and the baseline
    progress : callable(fraction, message), optional

    Returns
    -------
    NetworkComparison

    Raises
    ------
    InvalidInputError
        different input shapes, unknown kind, m / m_estimated out of range, shapes of xs, and the
        errors of the subspace estimators (e.g. no DeepFool convergence).
    """
    from .curvature import curved_subspace, flat_subspace
    from .deepfool import deepfool

    xs, m, m_est, kinds = check_comparison(clf_a, clf_b, xs, m=m, m_estimated=m_estimated, kinds=kinds)
    est = (estimator or CurvatureEstimator()).resolve(clf_a)
    steps = [(kind, i) for kind in kinds for i in range(2)]
    subspaces: dict[str, list[Subspace]] = {kind: [] for kind in kinds}
    dfs: list[Any] = [None, None]
    for s, (kind, i) in enumerate(steps):
        clf = (clf_a, clf_b)[i]
        lo, hi = s / len(steps), (s + 1) / len(steps)
        label = f"S_{'c' if kind == 'curved' else 'f'} of {clf.name}"

        def sub(f: float, msg: str, lo: float = lo, hi: float = hi, label: str = label) -> None:
            _call(progress, lo + (hi - lo) * f, f"{label}: {msg}")

        if dfs[i] is None:
            _call(progress, lo, f"{label}: DeepFool on {len(xs)} points")
            dfs[i] = deepfool(clf, xs)
        if kind == "curved":
            S = curved_subspace(
                clf, xs, m_est, estimator=est, random_state=random_state, progress=sub, deepfool_result=dfs[i]
            )
        else:
            m_f = flat_dimension(clf, dfs[i], len(xs), m=m, m_estimated=m_est)
            S = flat_subspace(clf, xs, m_f, deepfool_result=dfs[i])
        subspaces[kind].append(S)
        _call(progress, hi, f"{label}: done")
    return compare_networks(
        subspaces,
        names=(clf_a.name, clf_b.name),
        m=m,
        n=len(xs),
        estimator=est,
        n_baseline=n_baseline,
        random_state=random_state,
    )


# ---------------------------------------------------------------------------------------- Fig. 13
@dataclass(frozen=True)
class TransferSections:
    """Normal cross-sections of one network along a transferred direction and a random one (Fig. 13).

    Attributes
    ----------
    subspace_section, random_section : :class:`geometry.sections.Section` — the network's decision
        regions on the planes (r(x), v) and (r(x), u), v from another network's S_c, u random
    direction, random_direction : (C, H, W) float64 — v and u, unit ℓ2 norm
    curvature, kappa : (2,) float64 — the network's boundary curvature at z = x + r(x) along
        (v, u): the paper's ``K = (Pv)ᵀH(Pv)/‖Pv‖²`` (logit / pixel²) and the normal curvature
        ``κ = K/‖∇F(z)‖`` (1 / pixel distance); NaN if DeepFool did not converge or not computed
    r_norm : float — ‖r(x)‖₂ of this network at x (pixel units)
    label, adv_label : int — k̂(x) and k̂(x + r(x)); converged : bool
    method : str; h : float or None — the curvature estimator used
    """

    subspace_section: Section
    random_section: Section
    direction: Tensor
    random_direction: Tensor
    curvature: Tensor
    kappa: Tensor
    r_norm: float
    label: int
    adv_label: int
    converged: bool
    method: str
    h: float | None


def transfer_sections(
    clf: Classifier,
    x: Tensor,
    direction: Any,
    *,
    random_state: int = 0,
    extent: float | None = None,
    resolution: int = 128,
    estimator: CurvatureEstimator | None = None,
    curvature: bool = True,
    clip: bool = False,
) -> TransferSections:
    """Fig. 13: ``clf``'s normal cross-section at ``x`` along ``direction`` (e.g. a vector of another
    network's S_c) beside the same along a uniformly random direction, with the curvature along each.

    Parameters
    ----------
    clf : Classifier — the network whose boundary is drawn (network B)
    x : (C, H, W) — the datapoint; its DeepFool ``r(x)`` *for clf* is the horizontal axis
    direction : (C, H, W), (d,) tensor — the transferred direction (any non-zero norm)
    random_state : int — seed of the random direction (:func:`geometry.sections.random_direction`)
    extent : float, optional — half-width of both windows in pixel units (default ``3·‖r(x)‖``)
    resolution : int — grid points per side
    estimator : CurvatureEstimator, optional — the curvature estimator (default finite differences
        at the authors' h of ``clf``, boundary point)
    curvature : bool — also compute K and κ along both directions (two HVPs)
    clip : bool — r(x) from box-constrained DeepFool (every iterate clamped to ``clf.bounds``, so z = x + r(x)
        is an image); default False: the paper's unconstrained DeepFool (CVPR 2016 Alg. 2)

    Returns
    -------
    TransferSections

    Raises
    ------
    InvalidInputError — shapes, zero direction or a direction parallel to r(x), bad settings.

    References: ICLR 2018 Appendix C.2, Fig. 13 (VGG-16's sections along CaffeNet's S_c, random
    directions as the baseline row).
    """
    from .curvature import curvature_along
    from .deepfool import deepfool
    from .sections import normal_section, random_direction

    x = check_images(x, clf.input_shape, allow_single=True, name="x")
    if x.dim() == 4:
        if len(x) != 1:
            raise InvalidInputError(f"x must be one image (C, H, W), got a batch of {len(x)}")
        x = x[0]
    v = torch.as_tensor(direction).detach().to("cpu", torch.float64)
    if v.numel() != clf.d:
        raise InvalidInputError(
            f"direction must have d = {clf.d} entries (shape {tuple(clf.input_shape)}), got shape {tuple(v.shape)}"
        )
    v = v.reshape(clf.input_shape)
    vn = float(v.norm())
    if not math.isfinite(vn) or vn == 0.0:
        raise InvalidInputError("direction must be finite and non-zero")
    v = v / vn
    u = random_direction(tuple(clf.input_shape), random_state=random_state, dtype=torch.float64)
    df = deepfool(clf, x.unsqueeze(0), clip=clip)
    r = df.r[0]
    r_norm = float(df.norms[0])
    ext = float(extent) if extent is not None else 3.0 * r_norm
    sec_v = normal_section(clf, x, r, v.to(x.dtype), extent=ext, resolution=resolution)
    sec_u = normal_section(clf, x, r, u.to(x.dtype), extent=ext, resolution=resolution)
    est = as_estimator(estimator).resolve(clf)
    nan = torch.full((2,), float("nan"), dtype=torch.float64)
    K, kap, used_h, used_method = nan, nan.clone(), est.h, est.method
    converged = bool(df.converged[0])
    if curvature and converged:
        ca = curvature_along(clf, x, torch.stack([v, u]).to(x.dtype), estimator=est, deepfool_result=df)
        K, kap, used_h, used_method = ca.curvature[0].clone(), ca.kappa[0].clone(), ca.h, ca.method
    return TransferSections(
        subspace_section=sec_v,
        random_section=sec_u,
        direction=v,
        random_direction=u,
        curvature=K,
        kappa=kap,
        r_norm=r_norm,
        label=int(df.label[0]),
        adv_label=int(df.adv_label[0]),
        converged=converged,
        method=used_method,
        h=used_h,
    )


# ---------------------------------------------------------------------------------------- Appendix C.2
@dataclass(frozen=True)
class TransferMatrix:
    """Fooling rates of random vectors of each subspace on each network (ICLR 2018 Appendix C.2).

    Attributes
    ----------
    rows : tuple of str — whose subspace the vectors come from (then ``RANDOM_ROW`` if requested)
    columns : tuple of str — the network the vectors are applied to
    mean, std : (R, C) float64 — mean / standard deviation (unbiased; 0 for one sample) of the
        fooling rate over the ``n_samples`` vectors
    best : (R, C) float64 — the best single vector's fooling rate
    rates : (R, C, n_samples) float64 — every vector's fooling rate, in [0, 1]
    xi : float — ℓ2 norm of every vector (pixel units); m : int — directions of each subspace used
    n_samples : int; n_points : int — points the rates are measured on

    The k-th vector of every subspace row uses the same random unit coefficients ``g_k ∈ R^m``
    (common random numbers), and every column is evaluated on the same vectors.
    """

    rows: tuple
    columns: tuple
    mean: Tensor
    std: Tensor
    best: Tensor
    rates: Tensor
    xi: float
    m: int
    n_samples: int
    n_points: int

    def rate(self, row: str, column: str) -> float:
        """Mean fooling rate of ``row``'s vectors on network ``column``."""
        try:
            return float(self.mean[self.rows.index(row), self.columns.index(column)])
        except ValueError:
            raise InvalidInputError(
                f"no entry ({row!r}, {column!r}); rows {self.rows}, columns {self.columns}"
            ) from None


def transfer_matrix(
    clfs: Mapping[str, Classifier],
    subspaces: Mapping[str, BasisLike],
    xs: Tensor,
    *,
    xi: float,
    m: int,
    n_samples: int = 20,
    random_state: Any = 0,
    random_row: bool = True,
    batch_size: int = 1024,
    progress: ProgressFn | None = None,
) -> TransferMatrix:
    """Fooling-rate matrix: random vectors of norm ξ from each subspace, applied to every network.

    For each subspace ``S_i`` (rows): ``n_samples`` vectors ``v = ξ · B_i[:, :m] g/‖g‖``,
    ``g ~ N(0, I_m)`` (uniform on the ξ-sphere of the first m directions; the recipe of Fig. 7b,
    :func:`geometry.universal.sample_subspace`); for the ``RANDOM_ROW``: ``v = ξ · u``, u uniform on
    the unit sphere of R^d. For each network ``j`` (columns): fooling rate
    ``mean_x[k̂_j(x + v) ≠ k̂_j(x)]`` on ``xs`` (:func:`geometry.universal.fooling_rates`).

    Parameters
    ----------
    clfs : mapping name → Classifier — the columns; all with the same input shape
    subspaces : mapping name → (d, M) orthonormal basis or Subspace — the rows (typically each
        network's S_c, under the network's name)
    xs : (N, C, H, W) — evaluation points (held out), never modified
    xi : float ≥ 0, finite — ℓ2 norm of every vector (pixel units; the paper: 1/5 of the norm of
        random noise that fools most points)
    m : int in [1, min M] — directions of each subspace used
    n_samples : int ≥ 1 — vectors per row
    random_state : int or torch.Generator
    random_row : bool — append the isotropic baseline row
    batch_size : int ≥ 1
    progress : callable(fraction, message), optional

    Returns
    -------
    TransferMatrix

    Raises
    ------
    InvalidInputError — empty mappings, different input shapes, a basis of the wrong d or not
    orthonormal, m out of range, ξ negative / non-finite, shapes of xs.

    References: ICLR 2018 Appendix C.2 and Fig. 13; §5 ("the sharing of S_c across different nets
    explains the transferability of universal perturbations"); CVPR 2017 §4 (transfer table).
    """
    from .universal import fooling_rates

    if not isinstance(clfs, Mapping) or not clfs:
        raise InvalidInputError(f"clfs must be a non-empty mapping name → Classifier, got {type(clfs).__name__}")
    if not isinstance(subspaces, Mapping) or (not subspaces and not random_row):
        raise InvalidInputError("subspaces must be a mapping name → basis (non-empty unless random_row)")
    shapes = {tuple(c.input_shape) for c in clfs.values()}
    if len(shapes) != 1:
        raise InvalidInputError(f"every network must take the same input shape, got {sorted(shapes)}")
    shape = shapes.pop()
    d = math.prod(shape)
    x = check_images(xs, shape, name="xs").detach()
    bases = {}
    for k, b in subspaces.items():
        B = _orthonormal(_basis(b, f"subspaces[{k!r}]"), f"subspaces[{k!r}]")
        if B.shape[0] != d:
            raise InvalidInputError(f"subspaces[{k!r}] lives in d = {B.shape[0]}, the networks in d = {d}")
        bases[str(k)] = B
    m = _positive_int(m, "m")
    if bases and m > min(B.shape[1] for B in bases.values()):
        raise InvalidInputError(
            f"m must be at most the smallest subspace dimension ({min(B.shape[1] for B in bases.values())}), got {m}"
        )
    try:
        xi = float(xi)
    except (TypeError, ValueError):
        raise InvalidInputError(f"xi must be a number, got {xi!r}") from None
    if not math.isfinite(xi) or xi < 0:
        raise InvalidInputError(f"xi must be finite and ≥ 0, got {xi!r}")
    n_samples = _positive_int(n_samples, "n_samples")
    batch_size = _positive_int(batch_size, "batch_size")
    gen = as_generator(random_state)

    g = torch.randn(n_samples, m, generator=gen, dtype=torch.float64)
    g = g / torch.linalg.vector_norm(g, dim=1, keepdim=True)
    vectors = {k: (xi * g @ B[:, :m].T) for k, B in bases.items()}
    if random_row:
        u = torch.randn(n_samples, d, generator=gen, dtype=torch.float64)
        vectors[RANDOM_ROW] = xi * u / torch.linalg.vector_norm(u, dim=1, keepdim=True)
    rows, columns = tuple(vectors), tuple(str(c) for c in clfs)
    rates = torch.zeros(len(rows), len(columns), n_samples, dtype=torch.float64)
    total, done = len(rows) * len(columns), 0
    for j, (cname, clf) in enumerate(clfs.items()):
        labels = clf.predict(x, batch_size=batch_size).cpu()
        for i, rname in enumerate(rows):
            vs = vectors[rname].reshape(n_samples, *shape).to(x.dtype)
            rates[i, j] = fooling_rates(clf, x, vs, labels=labels, batch_size=batch_size)
            done += 1
            _call(progress, done / total, f"vectors of {rname} on {cname} ({done}/{total})")
    std = rates.std(2, unbiased=True) if n_samples > 1 else torch.zeros(len(rows), len(columns), dtype=torch.float64)
    return TransferMatrix(
        rows=rows,
        columns=columns,
        mean=rates.mean(2),
        std=std,
        best=rates.max(2).values,
        rates=rates,
        xi=xi,
        m=m,
        n_samples=n_samples,
        n_points=len(x),
    )
