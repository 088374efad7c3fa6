"""Theorem 1 (flat boundaries) and Theorem 2 (curved boundaries) of ICLR 2018, from measured quantities.

Source: Moosavi-Dezfooli, Fawzi, Fawzi, Soatto, Frossard, "Robustness of classifiers to universal
perturbations: a geometric perspective", ICLR 2018, §3 (Theorem 1, Remark 1), §4 (Theorem 2),
Appendix A (proof of Theorem 1, Lemma 1) and Appendix B (proof of Theorem 2). The text available
here (``../shared/papers/001_…txt``) has garbled formulas; below, each expression says how it was
reconstructed and what was checked.

Both theorems assume ``‖r(x)‖₂ = 1`` for all points ("for simplicity of the exposition") and give
a norm ρ **in units of ‖r(x)‖**. :func:`to_pixel_units` multiplies by a statistic of the measured
DeepFool norms ‖r(x)‖: ``"max"`` keeps the guarantee for every point (the condition
``|r̂ᵀv| ≥ ‖r(x)‖`` only gets easier for points with smaller ‖r‖), ``"median"`` (the default, and
the convention of the atlas's plots) is the typical scale and keeps the guarantee only for the
half of the points with ‖r(x)‖ ≤ median.

Theorem 1 (flat model, universal *direction*)
---------------------------------------------
If ``‖P_S r̂(x)‖₂ ≥ 1 − ξ`` for almost all x (S of dimension m) and the flat model ``LS(x, ρ)``
holds, then for ``ρ = √(e·m) / (δ(1 − ξ))`` there is a v of norm ρ with
``P_x(k̂(x + v) ≠ k̂(x) or k̂(x − v) ≠ k̂(x)) ≥ 1 − δ`` (Eq. 2: a *direction*, both signs).

*Verified against the proof* (Appendix A): the garbled statement reads "P = δ(1emξ)"; the proof
draws v uniform on the ρ-sphere of S and needs ``ρ·|(P_S r̂)ᵀ v̂| ≥ 1``; Lemma 1 (Fawzi et al. 2016,
unit sphere of the m-dimensional S, projection on the one direction ``P_S r̂``) gives
``|uᵀv̂|² ≥ β₁(δ, 1)/m`` with probability ≥ 1 − δ, where
``β₁(δ, 1) = max(δ²/e, 1 − √(2(1 − δ²)))``; with ``‖P_S r̂‖ ≥ 1 − ξ`` this yields
``ρ = √m / (√β₁ (1 − ξ))``, which is ``√(e m)/(δ(1 − ξ))`` when the first term of the max is used,
as in the statement. ``exact=True`` uses the max (smaller for δ ≳ 0.86, equal otherwise).
The lower-tail of Lemma 1 is checked by Monte Carlo in tests/test_theory.py, and the theorem itself
on an affine L-class classifier (normals span L − 1 dimensions, ξ = 0, Remark 1).

Theorem 2 (curved model, universal *vector*)
--------------------------------------------
If the quadratic model ``Q(x, ρ)`` holds and, for v uniform on the unit sphere of an
m-dimensional S, the normal section ``(r(x), v)`` has curvature ≥ κ with probability ≥ 1 − β,
then for ``ρ = √(2 ln(2/δ)) / (κ√m) + κ^(−1/2)`` there is a v with ``‖v‖₂ ≤ ρ`` and
``P_x(k̂(x + v) ≠ k̂(x)) ≥ 1 − δ − β``.

*Verified against the proof* (Appendix B): with ``‖r‖ = ‖v̂‖ = 1`` the sufficient condition
``κ‖ρv̂ − r‖² + rᵀ(ρv̂ − r) ≥ 0`` expands to ``κρ² + ρ(1 − 2κ) v̂ᵀr + (κ − 1) ≥ 0``; concentration on
the sphere of S (Matoušek 2002: ``P(v̂ᵀr ≤ −t) ≤ 2 exp(−m t²/2)``) with
``C = √(2 ln(2/δ))`` and ``ε = Cρ/√m`` leads to ``κρ² = Cρ/√m + 1``, whose positive root is
``ρ* = (C/(κ√m) + √(C²/(κ² m) + 4/κ)) / 2 ≤ C/(κ√m) + κ^(−1/2)`` — the statement's value (the
garbled "'2⅛≡KT + κ-1/2" and "CKTmT2 + √κ-2C2m-1 +4κ-1"). ``exact=True`` returns ``ρ*``.

*Uncertain / reconstructed*:

* The proof drops the factor ``|1 − 2κ|`` from the concentration step; that is valid for
  ``0 < κ ≤ 1`` (``|1 − 2κ| ≤ 1``), which is also the only consistent regime (for κ > 1 the point x
  itself would satisfy the "fooled" condition). Values of κ > 1 are accepted but carry no guarantee.
* The scaling ``α_x`` of the quadratic model is garbled. Reading it as ``α_x = 2‖∇F(z)‖/‖r(x)‖``
  makes ``(v − r)ᵀH_z(v − r) + α_x rᵀ(v − r)`` exactly twice the second-order Taylor expansion of F
  at z; with it, the assumption ``α⁻¹uᵀHu ≥ κ‖u‖²`` means, for tangent u and ‖r‖ = 1,
  ``κ = κ_normal · ‖r‖ / 2`` where ``κ_normal = uᵀHu/(‖u‖²‖∇F(z)‖)`` is the geometric normal
  curvature (1/pixel, DESIGN §4). Consistently, the model's boundary
  ``κ‖w‖² + rᵀw = 0`` (w = v − r) is a sphere of radius ``1/(2κ)`` (units of ‖r‖), i.e. of normal
  curvature ``2κ``; the paper's Fig. 4 speaks of "a disk of radius 1/κ", which matches its
  *diameter*. For the sphere classifier (class 0 inside radius R) the model is exact with
  ``κ = ‖r‖/(2R)``, and tests/test_theory.py checks the theorem's guarantee there
  (:func:`theorem2_kappa` implements this conversion).
* The assumption is on the curvature of the whole normal section ``span(r, v)`` (the 2×2
  matrix ``Πᵀ H_z Π``), not only the tangent curvature; measuring it with the tangent curvature of
  :mod:`geometry.curvature` is an approximation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, TypeAlias, overload

import numpy as np
import torch
from torch import Tensor

from .errors import InvalidInputError
from .validation import BasisLike, check_basis, check_float, check_int

__all__ = [
    "theorem1_norm",
    "theorem2_norm",
    "lemma1_beta1",
    "projection_residuals",
    "normal_fit_xi",
    "theorem2_kappa",
    "to_pixel_units",
]

#: A summary statistic of the DeepFool norms (:func:`to_pixel_units`); a float q is the q-quantile.
Statistic: TypeAlias = Literal["median", "max", "mean"]


# ---------------------------------------------------------------------------------------- checks
def _number(name: str, value: object) -> float:
    return check_float(name, value, finite=False)


def _delta(delta: object) -> float:
    d = _number("delta", delta)
    if not 0.0 < d <= 1.0:
        raise InvalidInputError(f"delta must be in (0, 1] (the allowed fraction of unfooled points), got {delta!r}")
    return d


def _m(m: object) -> int:
    return check_int("m (subspace dimension)", m, 1)


def _matrix(a: object, name: str) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(a)
    if not isinstance(a, torch.Tensor):
        try:
            a = torch.as_tensor(a)
        except Exception as exc:
            raise InvalidInputError(f"{name} must be a tensor, got {type(a).__name__}") from exc
    a = a.detach().to("cpu", torch.float64)
    if not torch.isfinite(a).all():
        raise InvalidInputError(f"{name} contains NaN or inf entries")
    return a


# ---------------------------------------------------------------------------------------- Theorem 1
def lemma1_beta1(delta: float, m: int = 1) -> float:
    """``β₁(δ, m) = max((1/e)·δ^(2/m), 1 − √(2(1 − δ^(2/m))))`` of Lemma 1 (ICLR 2018 App. A).

    Lemma 1 (Fawzi et al. 2016): for v uniform on the unit sphere of R^D and ``P_m`` the projection
    on m coordinates, ``‖P_m v‖² ≥ β₁(δ, m)·m/D`` with probability ≥ 1 − δ (lower tail).
    Theorem 1 uses m = 1 (one direction) and D = the subspace dimension.
    """
    delta = _delta(delta)
    m = _m(m)
    t = delta ** (2.0 / m)
    return max(t / math.e, 1.0 - math.sqrt(max(2.0 * (1.0 - t), 0.0)))


def theorem1_norm(m: int, delta: float, xi: float = 0.0, *, exact: bool = False) -> float:
    """Norm of a universal *direction* under the flat model (ICLR 2018 Theorem 1), units of ‖r(x)‖.

    ``ρ = √(e·m) / (δ (1 − ξ))``: if the unit normals ``r̂(x)`` lie within ξ of an m-dimensional
    subspace S (``‖P_S r̂(x)‖ ≥ 1 − ξ``) and the flat model holds in the ρ-ball, a random direction
    of S of norm ρ·‖r‖ satisfies ``k̂(x + v) ≠ k̂(x) or k̂(x − v) ≠ k̂(x)`` for at least 1 − δ of the
    points on average over the direction (so such a v exists).

    Parameters
    ----------
    m : int ≥ 1 — dimension of S (for an L-class affine classifier, L − 1 with ξ = 0: Remark 1)
    delta : float in (0, 1] — allowed fraction of unfooled points
    xi : float in [0, 1) — misfit of the normals to S (see :func:`normal_fit_xi`)
    exact : bool — use ``β₁(δ, 1) = max(δ²/e, 1 − √(2(1 − δ²)))`` of Lemma 1 instead of its first
        term: ``ρ = √m / (√β₁ (1 − ξ))`` (equal for δ ≲ 0.86, smaller above)

    Returns
    -------
    float — ρ in units of ‖r(x)‖ (multiply with :func:`to_pixel_units`). Increasing in m and ξ,
    decreasing in δ.

    Raises
    ------
    InvalidInputError — m not a positive integer, δ ∉ (0, 1], ξ ∉ [0, 1).

    References: ICLR 2018 §3 Theorem 1 and Appendix A (see the module docstring for the
    reconstruction from the garbled text).
    """
    m = _m(m)
    delta = _delta(delta)
    xi = _number("xi", xi)
    if not 0.0 <= xi < 1.0:
        raise InvalidInputError(f"xi must be in [0, 1) (‖P_S r̂‖ ≥ 1 − ξ > 0), got {xi!r}")
    beta1 = lemma1_beta1(delta, 1) if exact else delta * delta / math.e
    return math.sqrt(m / beta1) / (1.0 - xi)


def projection_residuals(normals: Tensor | np.ndarray, basis: BasisLike) -> torch.Tensor:
    """Per point, ``1 − ‖P_S r̂_i‖₂``: how far each unit normal is from the subspace S.

    Parameters
    ----------
    normals : (n, d) or (n, C, H, W) — normals r(x_i) (any length; normalised here)
    basis : (d, m) — orthonormal basis of S (or a Subspace-like object with ``.basis``)

    Returns
    -------
    (n,) float64 in [0, 1]: 0 = the normal lies in S, 1 = orthogonal to S.

    Raises
    ------
    InvalidInputError — shapes, zero normals, NaN / inf, basis not orthonormal (|BᵀB − I| > 1e-5).
    """
    N = _matrix(normals, "normals")
    if N.dim() >= 2:
        N = N.reshape(N.shape[0], -1)
    if N.dim() != 2 or N.shape[0] == 0:
        raise InvalidInputError(
            f"normals must be a non-empty (n, d) matrix (one normal per row), got shape {tuple(N.shape)}"
        )
    if hasattr(basis, "basis") and not isinstance(basis, (torch.Tensor, np.ndarray)):
        basis = basis.basis
    B = _matrix(basis, "basis")
    if B.dim() == 1:
        B = B.unsqueeze(1)
    if B.dim() != 2 or B.shape[0] != N.shape[1] or B.shape[1] == 0:
        raise InvalidInputError(
            f"basis must have shape ({N.shape[1]}, m) to match normals of dimension d = {N.shape[1]}, got {tuple(B.shape)}"
        )
    B = check_basis(B, name="basis", d=N.shape[1])
    lengths = torch.linalg.vector_norm(N, dim=1)
    if bool((lengths == 0).any()):
        raise InvalidInputError(f"normals must be non-zero; {int((lengths == 0).sum())} of {len(N)} rows are zero")
    U = N / lengths[:, None]
    proj = torch.linalg.vector_norm(U @ B, dim=1).clamp(max=1.0)
    return 1.0 - proj


def normal_fit_xi(normals: Tensor | np.ndarray, basis: BasisLike, *, share: float = 1.0) -> float:
    """The smallest ξ such that ``‖P_S r̂(x)‖ ≥ 1 − ξ`` for a fraction ``share`` of the points.

    Theorem 1 asks for "almost all" points: ``share = 1`` (the default) is the maximum of
    :func:`projection_residuals`. With ``share < 1`` the remaining ``1 − share`` of the points are
    not covered, and the theorem's guarantee becomes ``1 − δ − (1 − share)``.

    Returns
    -------
    float in [0, 1] — the ``share``-quantile (order statistic ``⌈share·n⌉``) of ``1 − ‖P_S r̂_i‖``.
    Use it as ``xi`` in :func:`theorem1_norm` (which needs ξ < 1).

    Raises
    ------
    InvalidInputError — as :func:`projection_residuals`, or share ∉ (0, 1].
    """
    share = _number("share", share)
    if not 0.0 < share <= 1.0:
        raise InvalidInputError(f"share must be in (0, 1], got {share!r}")
    res = torch.sort(projection_residuals(normals, basis)).values
    k = max(math.ceil(share * len(res) - 1e-12), 1)
    return float(res[k - 1])


# ---------------------------------------------------------------------------------------- Theorem 2
def theorem2_norm(m: int, delta: float, kappa: float, *, exact: bool = False) -> float:
    """Norm of a universal *vector* under the curved model (ICLR 2018 Theorem 2), units of ‖r(x)‖.

    ``ρ = √(2 ln(2/δ)) / (κ√m) + κ^(−1/2)``: if along most directions v of an m-dimensional S the
    normal sections ``(r(x), v)`` have curvature ≥ κ (:func:`theorem2_kappa` from a measured
    normal curvature), a random vector of S of norm ρ·‖r‖ fools at least ``1 − δ − β`` of the
    points, where β is the fraction of directions violating the curvature assumption.

    Parameters
    ----------
    m : int ≥ 1 — dimension of S
    delta : float in (0, 1]
    kappa : float > 0 — curvature in the theorem's units (‖r‖ = 1); the proof needs κ ≤ 1
    exact : bool — return the positive root ``ρ* = (C/(κ√m) + √(C²/(κ²m) + 4/κ))/2`` of
        ``κρ² = Cρ/√m + 1`` (``C = √(2 ln(2/δ))``) from the proof, which the statement bounds from
        above

    Returns
    -------
    float — ρ in units of ‖r(x)‖. Decreasing in m, δ and κ.

    Raises
    ------
    InvalidInputError — m not a positive integer, δ ∉ (0, 1], κ ≤ 0 or not finite.

    References: ICLR 2018 §4 Theorem 2 and Appendix B (see the module docstring for the
    reconstruction and the open points).
    """
    m = _m(m)
    delta = _delta(delta)
    kappa = _number("kappa", kappa)
    if not (kappa > 0.0 and math.isfinite(kappa)):
        raise InvalidInputError(f"kappa must be a finite positive curvature (units of 1/‖r‖), got {kappa!r}")
    C = math.sqrt(2.0 * math.log(2.0 / delta))
    a = C / (kappa * math.sqrt(m))
    if exact:
        return 0.5 * (a + math.sqrt(a * a + 4.0 / kappa))
    return a + 1.0 / math.sqrt(kappa)


@overload
def theorem2_kappa(normal_curvature: float, r_norm: float) -> float: ...
@overload
def theorem2_kappa(normal_curvature: Tensor, r_norm: float | Tensor) -> Tensor: ...
@overload
def theorem2_kappa(normal_curvature: float | Tensor, r_norm: Tensor) -> Tensor: ...
def theorem2_kappa(normal_curvature: float | Tensor, r_norm: float | Tensor) -> float | Tensor:
    """Convert a geometric normal curvature (1/pixel) into Theorem 2's κ (units where ‖r‖ = 1).

    ``κ = κ_normal · ‖r(x)‖ / 2``: rescaling the picture by 1/‖r‖ multiplies curvatures by ‖r‖, and
    the theorem's quadratic model with ``α_x = 2‖∇F(z)‖/‖r‖`` bounds the boundary by a sphere of
    normal curvature 2κ (module docstring). ``normal_curvature`` is DESIGN §4's
    ``κ(v) = (Pv)ᵀH(Pv)/(‖Pv‖²‖∇F(z)‖)`` (not the paper's K_S, which lacks the ‖∇F‖ factor).
    Example: the sphere classifier of radius R, a point at distance s inside: κ_normal = 1/R,
    κ = s/(2R).

    Parameters
    ----------
    normal_curvature : float or tensor (1/pixel)
    r_norm : float or tensor (pixel units), broadcastable

    Returns
    -------
    float (both scalars) or float64 tensor.
    """
    if isinstance(normal_curvature, torch.Tensor) or isinstance(r_norm, torch.Tensor):
        k_t = torch.as_tensor(normal_curvature, dtype=torch.float64)
        r_t = torch.as_tensor(r_norm, dtype=torch.float64)
        if bool((r_t < 0).any()):
            raise InvalidInputError("r_norm must be ≥ 0 (a distance in pixel units)")
        return 0.5 * k_t * r_t
    k = _number("normal_curvature", normal_curvature)
    r = _number("r_norm", r_norm)
    if r < 0:
        raise InvalidInputError(f"r_norm must be ≥ 0 (a distance in pixel units), got {r_norm!r}")
    return 0.5 * k * r


# ---------------------------------------------------------------------------------------- units
def to_pixel_units(
    rho: float, r_norms: Tensor | np.ndarray | Sequence[float], *, statistic: Statistic | float = "median"
) -> float:
    """A theorem's ρ (units of ‖r(x)‖) in pixel units: ``ρ · stat(‖r(x_i)‖)``.

    Parameters
    ----------
    rho : float ≥ 0 — from :func:`theorem1_norm` / :func:`theorem2_norm`
    r_norms : (n,) — measured DeepFool norms ‖r(x_i)‖₂ (pixel units), e.g. ``DeepFoolResult.norms``
        of the converged points
    statistic : "median" (default), "max", "mean", or a float q in [0, 1] (the q-quantile,
        linear interpolation). "max" keeps the theorem's guarantee for every point; "median"
        covers the half of the points with ‖r‖ ≤ median (a q-quantile covers a fraction q, so the
        guarantee becomes ``1 − δ − (1 − q)``); it is the typical scale.

    Returns
    -------
    float — pixel units (ℓ2).

    Raises
    ------
    InvalidInputError — empty / negative / non-finite r_norms, unknown statistic, ρ < 0.
    """
    rho = _number("rho", rho)
    if rho < 0:
        raise InvalidInputError(f"rho must be ≥ 0, got {rho!r}")
    r = _matrix(r_norms, "r_norms").reshape(-1)
    if r.numel() == 0:
        raise InvalidInputError("r_norms must contain at least one norm")
    if bool((r < 0).any()):
        raise InvalidInputError("r_norms must be ≥ 0 (distances in pixel units)")
    if isinstance(statistic, str):
        if statistic == "median":
            s = float(torch.quantile(r, 0.5))
        elif statistic == "max":
            s = float(r.max())
        elif statistic == "mean":
            s = float(r.mean())
        else:
            raise InvalidInputError(
                f"statistic must be 'median', 'max', 'mean' or a quantile in [0, 1], got {statistic!r}"
            )
    else:
        q = _number("statistic", statistic)
        if not 0.0 <= q <= 1.0:
            raise InvalidInputError(
                f"statistic must be 'median', 'max', 'mean' or a quantile in [0, 1], got {statistic!r}"
            )
        s = float(torch.quantile(r, q))
    return rho * s
