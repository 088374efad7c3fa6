"""Curved and flat subspaces of the decision boundary, curvature along directions, curvature versus m.

Quantities (ICLR 2018 §5, Fig. 7a; DESIGN §4 "Curved subspace S_c", "Curvature versus m"):

* boundary points ``z_i = x_i + r(x_i)`` (DeepFool ``r``, already scaled by 1 + overshoot), boundary
  function ``F_i = f_{j_i} − f_{k̂_i}``, unit normal ``n_i = ∇F_i(z_i)/‖∇F_i(z_i)‖``, tangent
  projector ``P_i = I − n_i n_iᵀ``;
* **S_c** (:func:`curved_subspace`): top-m eigenvectors (largest *algebraic* eigenvalues = most
  positively curved, DESIGN §4 sign convention) of the average tangent Hessian
  ``H̄ = (1/n) Σ_i P_i H_{z_i} P_i``, computed matrix-free;
* **S_f** (:func:`flat_subspace`): top-m left singular vectors of ``[r_1/‖r_1‖ … r_n/‖r_n‖]``;
* curvature along a direction ``v`` at ``z`` (:func:`curvature_along`): the paper's *unnormalised*
  ``K(v) = (Pv)ᵀ H_z (Pv)/‖Pv‖²`` (logit units per pixel unit²) and the geometric normal curvature
  ``κ(v) = K(v)/‖∇F(z)‖`` (1/pixel distance). Positive = the other class wraps around ``x``;
* ``K_S(x) = E_{v ∼ unit sphere of S} K(v)`` as a function of the dimension m of ``S``
  (:func:`average_curvature`, Fig. 7a).

How ``H`` is applied (``method``, ``h``, ``beta``) is described in :mod:`geometry.hessian`: at the
authors' finite-difference scale the operator is neither linear nor symmetric, so every subspace
records the measured asymmetry and the curvature *re-evaluated* along each returned direction
(second difference of ``F`` for finite differences, exact quadratic form otherwise); Ritz values
alone are not curvatures (DESIGN §4 pitfalls).

All arrays in results are CPU ``torch`` tensors (float64 for bases and curvatures).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .cache import CorruptFileError, read_tensors, save_tensors
from .classifier import Classifier, check_images
from .errors import AtlasError, InvalidInputError
from .hessian import BoundaryOperator, boundary_operator
from .progress import ProgressFn
from .validation import as_generator

__all__ = [
    "Subspace",
    "CurvatureAlong",
    "CurvatureCurve",
    "curved_subspace",
    "flat_subspace",
    "random_subspace",
    "random_subspace_basis",
    "curvature_along",
    "average_curvature",
    "save_subspace",
    "load_subspace",
]


#: Authors' code: the "inside" point is x + 0.8·r(x) (ICLR 2018 code release).
INSIDE_FRACTION = 0.8


# ---------------------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class Subspace:
    """An m-dimensional subspace of pixel space with its diagnostics.

    Attributes
    ----------
    basis : (d, m) float64 tensor — orthonormal columns, ordered (most curved / largest singular
        value first); each column's sign is fixed so that its largest-magnitude entry is positive
    eigenvalues : (m,) float64 — S_c: Ritz values of ``H̄`` (logit units per pixel unit², *not*
        re-evaluated curvatures); S_f: singular values of the normals matrix; random: NaN
    curvatures : (m,) float64 — S_c: paper's unnormalised ``K(u_k)`` re-evaluated along each basis
        vector, mean over the n points (second difference of F for finite_difference, exact
        quadratic form otherwise); NaN for S_f / random subspaces
    kappas : (m,) float64 — the same normalised by ``‖∇F(z_i)‖`` (normal curvature, 1/pixel), mean
        over points; NaN for S_f / random
    asymmetry : float — measured relative asymmetry ``Σ|uᵀAv − vᵀAu| / Σ(|uᵀAv| + |vᵀAu|)`` of the
        averaged operator ``A`` on random unit pairs (≈ 0 for a symmetric operator; NaN if not measured)
    kind : {"curved", "flat", "random"}
    n : int — number of points used (after dropping non-converged DeepFool runs)
    n_dropped : int — points dropped because DeepFool did not converge
    n_hvp : int — (point, direction) Hessian-vector products used by the eigen-solver and the
        asymmetry check
    n_matvec : int — applications of the averaged operator (each = n HVPs)
    method : str or None — "finite_difference" / "exact" / "smoothed" (None for flat / random)
    h : float or None — finite-difference scale, pixel units
    beta : float or None — smooth-twin sharpness
    point : {"boundary", "inside"} or None — ``z = x + r(x)`` or ``x + 0.8·r(x)``
    tangent : bool or None — whether ``P_i H P_i`` (True) or ``H`` (False) was averaged
    solver : str — "eigsh", "dense", "svd" or "qr"
    input_shape : (C, H, W) or None

    Source: ICLR 2018 §5 (S_c, S_f); DESIGN §4.
    """

    basis: torch.Tensor
    eigenvalues: torch.Tensor
    curvatures: torch.Tensor
    kappas: torch.Tensor
    asymmetry: float
    kind: str
    n: int = 0
    n_dropped: int = 0
    n_hvp: int = 0
    n_matvec: int = 0
    method: str | None = None
    h: float | None = None
    beta: float | None = None
    point: str | None = None
    tangent: bool | None = None
    solver: str = ""
    input_shape: tuple[int, int, int] | None = None

    @property
    def d(self) -> int:
        return int(self.basis.shape[0])

    @property
    def m(self) -> int:
        return int(self.basis.shape[1])

    def first(self, m: int) -> Subspace:
        """The subspace spanned by the first ``m`` columns (diagnostics sliced alike).

        Raises
        ------
        InvalidInputError
            ``m`` not in [1, self.m].
        """
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= int(m) <= self.m:
            raise InvalidInputError(f"m must be an integer in [1, {self.m}], got {m!r}")
        m = int(m)
        return replace(
            self,
            basis=self.basis[:, :m].clone(),
            eigenvalues=self.eigenvalues[:m].clone(),
            curvatures=self.curvatures[:m].clone(),
            kappas=self.kappas[:m].clone(),
        )

    def images(self) -> torch.Tensor:
        """The basis vectors as images, (m, C, H, W) (needs ``input_shape``)."""
        if self.input_shape is None:
            raise InvalidInputError("this subspace has no input_shape; reshape basis.T yourself")
        return self.basis.T.reshape(self.m, *self.input_shape)


@dataclass(frozen=True)
class CurvatureAlong:
    """Curvature of the boundary at ``z = x + r(x)`` along given directions.

    Attributes
    ----------
    curvature : (N, k) float64 — paper's unnormalised ``K(v) = (Pv)ᵀH(Pv)/‖Pv‖²`` (logit / pixel²)
    kappa : (N, k) float64 — normal curvature ``K(v)/‖∇F(z)‖`` (1/pixel distance); > 0: the other
        class wraps around x
    tangent_fraction : (N, k) float64 — ``‖Pv‖/‖v‖``, the share of each direction that is tangent
    F : (N,) float64 — F(z) (≈ 0, slightly > 0 because of the overshoot)
    grad_norm : (N,) float64 — ‖∇F(z)‖
    label, adv_label : (N,) int64 — k_hat(x) and the DeepFool label
    converged : (N,) bool — rows with False are NaN
    method, h, beta, point — as in :class:`Subspace`
    n_hvp : int — (point, direction) evaluations

    Source: DESIGN §4 "Curvature sign"; ICLR 2018 §5.
    """

    curvature: torch.Tensor
    kappa: torch.Tensor
    tangent_fraction: torch.Tensor
    F: torch.Tensor
    grad_norm: torch.Tensor
    label: torch.Tensor
    adv_label: torch.Tensor
    converged: torch.Tensor
    method: str
    h: float | None
    beta: float | None
    point: str
    n_hvp: int


@dataclass(frozen=True)
class CurvatureCurve:
    """Average curvature ``K_S(x)`` over random unit directions of the first m vectors of a subspace.

    Attributes
    ----------
    m_values : (M,) int64
    mean, std : (M,) float64 — mean and standard deviation (ddof = 0) over points of ``K_S(x)``,
        the paper's unnormalised curvature (logit / pixel², Fig. 7a)
    per_point : (M, n) float64 — ``K_S(x_i)``
    share_positive : (M,) float64 — fraction of points with ``K_S(x) > 0`` (same for κ)
    kappa_mean, kappa_std : (M,) float64 — the same for ``κ_S(x) = K_S(x)/‖∇F(z)‖`` (1/pixel)
    kappa_per_point : (M, n) float64
    n : int — points used; n_dropped : int — DeepFool did not converge
    n_directions : int — random directions per m (shared by all points)
    n_hvp : int — (point, direction) evaluations
    kind : str — kind of the subspace ("curved", "flat", "random")
    method, h, beta, point — how the curvature was evaluated

    Source: ICLR 2018 §5, Fig. 7(a); DESIGN §4 "Curvature versus m".
    """

    m_values: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    per_point: torch.Tensor
    share_positive: torch.Tensor
    kappa_mean: torch.Tensor
    kappa_std: torch.Tensor
    kappa_per_point: torch.Tensor
    n: int
    n_dropped: int
    n_directions: int
    n_hvp: int
    kind: str
    method: str
    h: float | None
    beta: float | None
    point: str


# ---------------------------------------------------------------------------------------- helpers
_generator = as_generator


def _check_m(m, upper: int, what: str) -> int:
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= int(m) <= upper:
        raise InvalidInputError(f"m must be an integer in [1, {upper}] ({what}), got {m!r}")
    return int(m)


def _fix_signs(basis: torch.Tensor) -> torch.Tensor:
    if basis.numel() == 0:
        return basis
    idx = basis.abs().argmax(0)
    signs = torch.sign(basis[idx, torch.arange(basis.shape[1])])
    signs[signs == 0] = 1
    return basis * signs


def _run_deepfool(clf: Classifier, xs: torch.Tensor, candidates: int, deepfool_result):
    if deepfool_result is None:
        from .deepfool import deepfool  # lazy: keeps this module importable on its own

        deepfool_result = deepfool(clf, xs, candidates=candidates)
    r = torch.as_tensor(deepfool_result.r)
    if tuple(r.shape) != tuple(xs.shape):
        raise InvalidInputError(f"deepfool_result.r must have the shape of xs {tuple(xs.shape)}, got {tuple(r.shape)}")
    return deepfool_result


def _boundary_points(clf, xs, *, point, candidates, deepfool_result, method, h, beta, chunk_size):
    """DeepFool → kept points → operator, normals, gradient norms."""
    if point not in ("boundary", "inside"):
        raise InvalidInputError(f"point must be 'boundary' or 'inside', got {point!r}")
    df = _run_deepfool(clf, xs, candidates, deepfool_result)
    label = torch.as_tensor(df.label).long().cpu()
    adv = torch.as_tensor(df.adv_label).long().cpu()
    converged = torch.as_tensor(df.converged).bool().cpu()
    keep = converged & (label != adv)
    n_dropped = int((~keep).sum())
    if not bool(keep.any()):
        raise InvalidInputError(f"DeepFool converged on none of the {len(xs)} points: no boundary point to work with")
    frac = 1.0 if point == "boundary" else INSIDE_FRACTION
    r = torch.as_tensor(df.r).detach().to(xs.device, xs.dtype)
    kidx = keep.nonzero().squeeze(1)
    z = xs[kidx.to(xs.device)] + frac * r[kidx.to(xs.device)]
    op = boundary_operator(clf, z, label[kidx], adv[kidx], method=method, h=h, beta=beta, chunk_size=chunk_size)
    grad = op.gradient()
    gn = grad.norm(dim=1)
    normals = grad / torch.where(gn > 0, gn, torch.ones_like(gn))[:, None]
    return df, keep, op, normals, gn, n_dropped


def _blocks(n_points: int, n_dirs: int, chunk: int):
    """(direction slice, point slice) blocks with ≤ max(chunk, 1 direction × chunk points) pairs."""
    pc = max(1, min(n_points, chunk))
    dc = max(1, chunk // pc)
    for ds in range(0, n_dirs, dc):
        for ps in range(0, n_points, pc):
            yield slice(ds, min(n_dirs, ds + dc)), slice(ps, min(n_points, ps + pc))


def _project(U: torch.Tensor, N: torch.Tensor) -> torch.Tensor:
    """Rows of U (kb, c, d) projected on the tangent spaces of normals N (c, d)."""
    return U - (U * N[None]).sum(-1, keepdim=True) * N[None]


def _average_operator(op: BoundaryOperator, normals: torch.Tensor, V: torch.Tensor, *, tangent: bool) -> torch.Tensor:
    """Rows ``A v`` for the rows v of V (k, d) with ``A = (1/n) Σ_i P_i H_i P_i`` (or ``H_i``)."""
    n, d = normals.shape
    dev = normals.device
    V = V.to(device=dev, dtype=op.dtype)
    out = torch.zeros(len(V), d, dtype=op.dtype, device=dev)  # accumulated on the device: O(k·d)
    for dsl, psl in _blocks(n, len(V), op.chunk_size):
        Nc = normals[psl]
        kb, c = dsl.stop - dsl.start, psl.stop - psl.start
        U = V[dsl][:, None, :].expand(kb, c, d)
        if tangent:
            U = _project(U, Nc)
        index = torch.arange(psl.start, psl.stop, device=dev).repeat(kb)
        HU = op.hvp(U.reshape(kb * c, d), index).reshape(kb, c, d)
        if tangent:
            HU = _project(HU, Nc)
        out[dsl] += HU.sum(1)
    return (out / n).cpu()  # one host copy per application (eigsh's matvec needs NumPy)


def _tangent_curvatures(op: BoundaryOperator, normals: torch.Tensor, V: torch.Tensor, F0: torch.Tensor):
    """K[i, k] = q_i(P_i v_k)/‖P_i v_k‖² and ‖P_i v_k‖/‖v_k‖ for shared directions V (k, d)."""
    n, d = normals.shape
    dev = normals.device
    V = V.to(device=dev, dtype=op.dtype)
    K = torch.full((n, len(V)), float("nan"), dtype=torch.float64, device=dev)
    frac = torch.zeros(n, len(V), dtype=torch.float64, device=dev)
    vn = V.norm(dim=1).double()
    for dsl, psl in _blocks(n, len(V), op.chunk_size):
        kb, c = dsl.stop - dsl.start, psl.stop - psl.start
        U = _project(V[dsl][:, None, :].expand(kb, c, d), normals[psl])  # (kb, c, d)
        pn = U.norm(dim=-1).double()  # (kb, c)
        index = torch.arange(psl.start, psl.stop, device=dev).repeat(kb)
        q = op.quadratic_form(U.reshape(kb * c, d), index, F0=F0).reshape(kb, c).double()
        Kb = torch.where(
            pn > 0, q / torch.where(pn > 0, pn, torch.ones_like(pn)) ** 2, torch.full_like(q, float("nan"))
        )
        K[psl, dsl] = Kb.T
        frac[psl, dsl] = (pn / torch.where(vn[dsl] > 0, vn[dsl], torch.ones_like(vn[dsl]))[:, None]).T
    return K.cpu(), frac.cpu()


def _asymmetry(apply: Callable[[torch.Tensor], torch.Tensor], d: int, n_pairs: int, gen: torch.Generator) -> float:
    if n_pairs <= 0:
        return float("nan")
    W = torch.randn(2 * n_pairs, d, generator=gen, dtype=torch.float64)
    W = W / W.norm(dim=1, keepdim=True)
    AW = apply(W).double()
    u, v = W[:n_pairs], W[n_pairs:]
    Au, Av = AW[:n_pairs], AW[n_pairs:]
    uAv, vAu = (u * Av).sum(1), (v * Au).sum(1)
    den = float((uAv.abs() + vAu.abs()).sum())
    return 0.0 if den == 0 else float((uAv - vAu).abs().sum()) / den


def _call(progress: ProgressFn | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(float(min(1.0, max(0.0, fraction))), message)


# ---------------------------------------------------------------------------------------- S_c


def _top_eigenpairs(
    operator: Callable[[torch.Tensor], torch.Tensor],
    *,
    d: int,
    m: int,
    n: int,
    use_dense: bool,
    dense_step: int,
    gen: torch.Generator,
    tol: float,
    maxiter: int | None,
    ncv: int | None,
    n_asymmetry_pairs: int,
    progress: Callable[[float, str], None],
) -> tuple[torch.Tensor, torch.Tensor, float, str, int]:
    """The top-``m`` eigenpairs of the average boundary operator ``V ↦ apply(V)`` (rows of V are
    directions, shape (k, d) → (k, d)), shared by :func:`curved_subspace` and the sharded S_c of
    :mod:`geometry.runtime.distributed` (which passes an all-reduced ``apply``).

    ``use_dense``: build the d × d matrix column by column (``dense_step`` columns per application) and
    take ``eigh`` of its symmetric part; else Lanczos (scipy ``eigsh``, ``which="LA"``, start vector from
    ``gen``) on a LinearOperator. ARPACK lives in NumPy on the host: one host round trip per application
    (d numbers each way); everything inside ``operator`` stays on the classifier's device. Applications are
    counted here (one per direction) for the progress, the messages and the result.

    Returns (eigenvalues (m,) float64 descending, basis (d, m) float64 orthonormal, relative asymmetry of
    the operator, "dense" | "eigsh", number of operator applications). Raises AtlasError when eigsh converges to fewer than m eigenpairs or
    fails on an operator that is not identically zero (a vanishing operator gets a random orthonormal basis).
    """

    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

    counter = {"matvec": 0}
    ncv_eff = ncv if ncv is not None else min(d, max(2 * m + 1, 20))
    estimate = d if use_dense else ncv_eff + 4 * max(1, ncv_eff - m)  # applications, for the progress fraction

    def apply(V: torch.Tensor) -> torch.Tensor:
        counter["matvec"] += len(V)
        return operator(V)

    def matvec(v: np.ndarray) -> np.ndarray:
        v_t = torch.from_numpy(np.ascontiguousarray(np.asarray(v, dtype=np.float64).reshape(-1)))
        out = apply(v_t[None])[0].double().cpu().numpy()
        progress(
            0.05 + 0.84 * min(1.0, counter["matvec"] / estimate),
            f"Hessian-vector products: {counter['matvec']} × {n} points",
        )
        return out

    if use_dense:
        cols = []
        eye = torch.eye(d, dtype=torch.float64)
        step = dense_step
        for s in range(0, d, step):
            cols.append(apply(eye[s : s + step]).double())
            progress(0.05 + 0.85 * min(s + step, d) / d, f"dense average Hessian: {min(s + step, d)} of {d} columns")
        A = torch.cat(cols).T  # column k = A e_k
        evals, evecs = torch.linalg.eigh(0.5 * (A + A.T))
        order = torch.argsort(evals, descending=True)[:m]
        eigenvalues, basis = evals[order], evecs[:, order]
        asym = _asymmetry(lambda W: W @ A.T, d, n_asymmetry_pairs, gen)
        used = "dense"
    else:
        v0 = torch.randn(d, generator=gen, dtype=torch.float64).numpy()
        lin = LinearOperator((d, d), matvec=matvec, dtype=np.float64)
        try:
            evals, evecs = eigsh(lin, k=m, which="LA", v0=v0, tol=tol, maxiter=maxiter, ncv=ncv)
        except ArpackNoConvergence as exc:
            if exc.eigenvalues is not None and len(exc.eigenvalues) >= m:
                evals, evecs = exc.eigenvalues, exc.eigenvectors
            else:
                got = 0 if exc.eigenvalues is None else len(exc.eigenvalues)
                raise AtlasError(
                    f"eigsh converged to {got} of the m={m} requested eigenpairs after {counter['matvec']} "
                    f"operator applications; try a larger tol (now {tol}), a smaller m, or a larger ncv"
                ) from exc
        except ArpackError as exc:
            # Lanczos breaks down at once on a vanishing operator (e.g. the exact Hessian of a
            # piecewise-linear network): all eigenvalues are 0 and any orthonormal basis will do.
            probe = apply(torch.randn(2, d, generator=gen, dtype=torch.float64))
            if not bool((probe == 0).all()):
                raise AtlasError(f"eigsh failed ({exc}) after {counter['matvec']} operator applications") from exc
            evals = np.zeros(m)
            evecs = random_subspace_basis(d, m, random_state=gen).numpy()
        descending = np.argsort(evals)[::-1][:m]
        eigenvalues = torch.from_numpy(np.ascontiguousarray(evals[descending]))
        basis = torch.from_numpy(np.ascontiguousarray(evecs[:, descending]))
        q, rr = torch.linalg.qr(basis)  # re-orthonormalise (a non-symmetric operator may drift)
        basis = q * torch.sign(torch.diagonal(rr)).where(torch.diagonal(rr) != 0, torch.ones(1, dtype=q.dtype))
        progress(0.9, "measuring the asymmetry of the operator")
        asym = _asymmetry(apply, d, n_asymmetry_pairs, gen)
        used = "eigsh"
    return eigenvalues, basis, float(asym), used, counter["matvec"]


def curved_subspace(
    clf: Classifier,
    xs: torch.Tensor,
    m: int,
    *,
    method: str = "finite_difference",
    h: float | None = None,
    beta: float | None = None,
    tangent: bool = True,
    point: str = "boundary",
    candidates: int = 10,
    random_state=0,
    progress: ProgressFn | None = None,
    deepfool_result=None,
    solver: str = "auto",
    dense_max_d: int = 100,
    tol: float = 1e-4,
    maxiter: int | None = None,
    ncv: int | None = None,
    n_asymmetry_pairs: int = 3,
    chunk_size: int | None = None,
) -> Subspace:
    """Curved subspace S_c: top-m eigenvectors of the average tangent Hessian at boundary points.

    ``H̄ = (1/n) Σ_i P_i H_{z_i} P_i`` with ``z_i = x_i + r(x_i)``, ``P_i = I − n_i n_iᵀ``,
    ``n_i = ∇F_i(z_i)/‖∇F_i(z_i)‖``; eigenvectors of the largest *algebraic* eigenvalues (most
    positively curved; ``which="LA"``).

    Parameters
    ----------
    clf : Classifier
    xs : (n, C, H, W) — points in pixel space (training points in the paper); not modified
    m : int — subspace dimension, 1 ≤ m < d (m ≤ d with the dense solver)
    method : {"finite_difference", "exact", "smoothed"} — how ``H v`` is computed (:mod:`geometry.hessian`)
    h : float, optional — finite-difference scale (pixel units), default ``10·√d·range/512``
    beta : float, optional — smooth-twin sharpness for method="smoothed"
    tangent : bool — average ``P_i H_i P_i`` (True, the paper) or ``H_i`` (False)
    point : {"boundary", "inside"} — ``z = x + r(x)`` or ``x + 0.8·r(x)`` (the authors' code)
    candidates : int — DeepFool candidate classes (ignored with ``deepfool_result``)
    random_state : int or torch.Generator — eigsh's start vector and the asymmetry pairs
    progress : callable(fraction in [0, 1], message), optional — called once per operator
        application (fraction counted against an estimate of the number of applications)
    deepfool_result : DeepFoolResult, optional — reuse a DeepFool run on ``xs`` (needs ``r``,
        ``label``, ``adv_label``, ``converged``)
    solver : {"auto", "eigsh", "dense"} — "dense" applies ``H̄`` to the d basis vectors and
        eigen-decomposes the symmetric part ``(A + Aᵀ)/2`` exactly (d·n HVPs); "auto" = dense when
        ``d ≤ dense_max_d``, else ``scipy.sparse.linalg.eigsh`` on a ``LinearOperator`` whose
        matvec is the batched average HVP (never forms a d×d matrix; memory O(d·(m + chunk)))
    tol, maxiter, ncv : passed to ``eigsh`` (``tol``: relative accuracy of the Ritz pairs; the
        default 1e-4 is ample since the curvatures are re-evaluated; pass e.g. 1e-10 on float64
        analytic classifiers for exact eigenvalues)
    n_asymmetry_pairs : int — random unit pairs used to measure the asymmetry (0: skip)
    chunk_size : int, optional — (point, direction) pairs per batched network call (default
        :func:`geometry.hessian.default_chunk_size`: ≈ 4 M input numbers per call)

    Returns
    -------
    Subspace
        kind "curved": ``basis`` (d, m) orthonormal; ``eigenvalues`` Ritz values (descending);
        ``curvatures`` / ``kappas`` re-evaluated along each basis vector, mean over the points
        (second difference of F at scale h for finite differences, exact quadratic form
        otherwise) — read these, not the Ritz values, as curvatures; ``asymmetry`` measured;
        ``n_dropped`` points whose DeepFool did not converge (excluded).

    Raises
    ------
    InvalidInputError
        bad shapes, m out of range, unknown method / point / solver, no converged point,
        ``method="smoothed"`` on a network without ``nn.ReLU`` modules.
    AtlasError
        ``eigsh`` did not converge to m Ritz pairs (try a larger ``tol``, smaller ``m``, or ``ncv``).

    Notes
    -----
    With finite differences the "operator" is neither linear nor symmetric; it is used as is
    (not symmetrised) by eigsh, its asymmetry is reported and the curvature re-evaluated.

    Source: ICLR 2018 §5 (S_c = span of the first m eigenvectors of the average Hessian), Fig. 7a.
    """

    xs = check_images(xs, clf.input_shape, name="xs")
    d = clf.d
    if solver not in ("auto", "eigsh", "dense"):
        raise InvalidInputError(f"solver must be 'auto', 'eigsh' or 'dense', got {solver!r}")
    use_dense = solver == "dense" or (solver == "auto" and d <= dense_max_d)
    m = _check_m(m, d if use_dense else d - 1, "dense solver" if use_dense else "eigsh needs m < d")
    gen = _generator(random_state)

    _call(progress, 0.0, f"DeepFool on {len(xs)} points")
    _df, _keep, op, normals, gn, n_dropped = _boundary_points(
        clf,
        xs,
        point=point,
        candidates=candidates,
        deepfool_result=deepfool_result,
        method=method,
        h=h,
        beta=beta,
        chunk_size=chunk_size,
    )
    n = op.n
    eigenvalues, basis, asym, used, n_matvec = _top_eigenpairs(
        lambda V: _average_operator(op, normals, V, tangent=tangent),
        d=d,
        m=m,
        n=n,
        use_dense=use_dense,
        dense_step=max(1, op.chunk_size // max(1, n)),
        gen=gen,
        tol=tol,
        maxiter=maxiter,
        ncv=ncv,
        n_asymmetry_pairs=n_asymmetry_pairs,
        progress=lambda frac, msg: _call(progress, frac, msg),
    )
    basis = _fix_signs(basis.double())

    _call(progress, 0.95, f"re-evaluating the curvature along {m} directions")
    F0 = op.F()
    K, _ = _tangent_curvatures(op, normals, basis.T, F0)
    curvatures = torch.nanmean(K, dim=0)
    kappas = torch.nanmean(K / gn.double().cpu()[:, None], dim=0)
    _call(progress, 1.0, "done")
    return Subspace(
        basis=basis.contiguous(),
        eigenvalues=eigenvalues.double().contiguous(),
        curvatures=curvatures,
        kappas=kappas,
        asymmetry=float(asym),
        kind="curved",
        n=n,
        n_dropped=n_dropped,
        n_hvp=n_matvec * n,
        n_matvec=n_matvec,
        method=op.method,
        h=op.h,
        beta=op.beta,
        point=point,
        tangent=bool(tangent),
        solver=used,
        input_shape=tuple(clf.input_shape),  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------- S_f
def flat_subspace(
    clf: Classifier,
    xs: torch.Tensor,
    m: int,
    *,
    candidates: int = 10,
    deepfool_result=None,
) -> Subspace:
    """Flat subspace S_f: top-m left singular vectors of the unit normals ``[r_1/‖r_1‖ … r_n/‖r_n‖]``.

    Parameters
    ----------
    clf : Classifier
    xs : (n, C, H, W) — points, pixel space; not modified
    m : int — 1 ≤ m ≤ min(n_kept, d)
    candidates : int — DeepFool candidates (ignored with ``deepfool_result``)
    deepfool_result : DeepFoolResult, optional — reuse a DeepFool run on ``xs``

    Returns
    -------
    Subspace
        kind "flat": ``basis`` (d, m), ``eigenvalues`` = the m largest singular values of the
        (d, n) normals matrix (descending; singular values beyond the rank ≈ 0), ``curvatures``
        and ``kappas`` NaN, ``asymmetry`` NaN. Points whose DeepFool did not converge (or with
        r = 0) are dropped (``n_dropped``).

    Raises
    ------
    InvalidInputError
        bad shapes, m out of range, no usable point.

    Source: ICLR 2018 §3 (Theorem 1, normals in a low-dimensional subspace) and §5 (S_f); DESIGN §4.
    """
    xs = check_images(xs, clf.input_shape, name="xs")
    df = _run_deepfool(clf, xs, candidates, deepfool_result)
    r = torch.as_tensor(df.r).detach().flatten(1).double().cpu()
    rn = r.norm(dim=1)
    keep = torch.as_tensor(df.converged).bool().cpu() & (rn > 0)
    n_kept = int(keep.sum())
    if n_kept == 0:
        raise InvalidInputError(f"DeepFool converged on none of the {len(xs)} points: no normal to work with")
    m = _check_m(m, min(n_kept, clf.d), f"at most min(number of usable points {n_kept}, d {clf.d})")
    normals = (r[keep] / rn[keep][:, None]).T  # (d, n)
    U, S, _ = torch.linalg.svd(normals, full_matrices=False)
    nan = torch.full((m,), float("nan"), dtype=torch.float64)
    return Subspace(
        basis=_fix_signs(U[:, :m]).contiguous(),
        eigenvalues=S[:m].contiguous(),
        curvatures=nan,
        kappas=nan.clone(),
        asymmetry=float("nan"),
        kind="flat",
        n=n_kept,
        n_dropped=len(xs) - n_kept,
        solver="svd",
        input_shape=tuple(clf.input_shape),  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------- random
def random_subspace_basis(d: int, m: int, *, random_state=0) -> torch.Tensor:
    """Orthonormal basis (d, m) float64 of a uniformly random m-dimensional subspace (QR of a Gaussian).

    Raises
    ------
    InvalidInputError
        d < 1 or m not in [1, d], bad random_state.
    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise InvalidInputError(f"d must be a positive integer, got {d!r}")
    m = _check_m(m, int(d), "m ≤ d")
    G = torch.randn(int(d), m, generator=_generator(random_state), dtype=torch.float64)
    q, rr = torch.linalg.qr(G)
    return q * torch.sign(torch.diagonal(rr))


def random_subspace(d: int, m: int, *, random_state=0, input_shape: Sequence[int] | None = None) -> Subspace:
    """A random m-dimensional subspace of R^d as a :class:`Subspace` (kind "random", baseline of Fig. 7a).

    ``eigenvalues``, ``curvatures`` and ``kappas`` are NaN. Raises as :func:`random_subspace_basis`,
    and if ``input_shape`` does not multiply to d.
    """
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != 3 or math.prod(shape) != d:
            raise InvalidInputError(f"input_shape must be (C, H, W) with C·H·W = {d}, got {tuple(input_shape)}")
    else:
        shape = None
    basis = random_subspace_basis(d, m, random_state=random_state)
    nan = torch.full((basis.shape[1],), float("nan"), dtype=torch.float64)
    return Subspace(
        basis=basis,
        eigenvalues=nan,
        curvatures=nan.clone(),
        kappas=nan.clone(),
        asymmetry=float("nan"),
        kind="random",
        solver="qr",
        input_shape=shape,
    )


# ---------------------------------------------------------------------------------------- curvature along
def curvature_along(
    clf: Classifier,
    x: torch.Tensor,
    directions: torch.Tensor,
    *,
    method: str = "finite_difference",
    h: float | None = None,
    beta: float | None = None,
    deepfool_result=None,
    candidates: int = 10,
    point: str = "boundary",
    chunk_size: int | None = None,
) -> CurvatureAlong:
    """Curvature of the boundary at ``z = x + r(x)`` along each of k directions.

    For each point and direction ``v``: ``K(v) = (Pv)ᵀ H_z (Pv)/‖Pv‖²`` (paper, unnormalised,
    logit / pixel²) and ``κ(v) = K(v)/‖∇F(z)‖`` (normal curvature, 1/pixel distance), with
    ``P = I − n nᵀ`` the tangent projector at z. ``(Pv)ᵀH(Pv)`` is the second difference of F at
    scale h for ``method="finite_difference"``, the exact quadratic form for "exact" / "smoothed".

    Parameters
    ----------
    clf : Classifier
    x : (C, H, W) or (N, C, H, W) — point(s), pixel space; not modified
    directions : (k, C, H, W), (k, d), or one (C, H, W) / (d,) — shared by all points; any norm
    method, h, beta : see :mod:`geometry.hessian`
    deepfool_result : DeepFoolResult for ``x`` (batch form), optional
    candidates : int — DeepFool candidates
    point : {"boundary", "inside"} — ``z = x + r(x)`` or ``x + 0.8·r(x)``
    chunk_size : int, optional — as in :func:`curved_subspace`

    Returns
    -------
    CurvatureAlong
        ``curvature``, ``kappa``, ``tangent_fraction`` of shape (N, k) (N = 1 for a single image);
        NaN rows for points where DeepFool did not converge, NaN where ``Pv = 0``.

    Raises
    ------
    InvalidInputError
        bad shapes, zero direction, unknown method / point, no converged point.

    Source: DESIGN §4 "Curvature sign"; ICLR 2018 §5 (K_S).
    """
    xs = check_images(x, clf.input_shape, allow_single=True, name="x")
    V = _check_directions(clf, directions)
    df, keep, op, normals, gn, _ = _boundary_points(
        clf,
        xs,
        point=point,
        candidates=candidates,
        deepfool_result=deepfool_result,
        method=method,
        h=h,
        beta=beta,
        chunk_size=chunk_size,
    )
    F0 = op.F()
    K, frac = _tangent_curvatures(op, normals, V, F0)
    N, k = len(xs), len(V)
    nan = float("nan")
    Kf, kf, ff = (torch.full((N, k), nan, dtype=torch.float64) for _ in range(3))
    Ff, gf = (torch.full((N,), nan, dtype=torch.float64) for _ in range(2))
    Kf[keep] = K
    kf[keep] = K / gn.double().cpu()[:, None]
    ff[keep] = frac
    Ff[keep] = F0.double().cpu()
    gf[keep] = gn.double().cpu()
    return CurvatureAlong(
        curvature=Kf,
        kappa=kf,
        tangent_fraction=ff,
        F=Ff,
        grad_norm=gf,
        label=torch.as_tensor(df.label).long().cpu().clone(),
        adv_label=torch.as_tensor(df.adv_label).long().cpu().clone(),
        converged=keep.clone(),
        method=op.method,
        h=op.h,
        beta=op.beta,
        point=point,
        n_hvp=int(keep.sum()) * k,
    )


def _check_directions(clf: Classifier, directions) -> torch.Tensor:
    V = torch.as_tensor(directions)
    shape, d = tuple(clf.input_shape), clf.d
    if tuple(V.shape) in (shape, (d,)):
        V = V.reshape(1, d)
    elif V.dim() >= 2 and tuple(V.shape[1:]) in (shape, (d,)):
        V = V.reshape(len(V), d)
    else:
        raise InvalidInputError(
            f"directions must have shape (k, {', '.join(map(str, shape))}) or (k, {d}), got {tuple(V.shape)}"
        )
    if not V.is_floating_point() or not torch.isfinite(V).all():
        raise InvalidInputError("directions must be finite floating-point vectors")
    if len(V) == 0 or bool((V.norm(dim=1) == 0).any()):
        raise InvalidInputError("directions must be non-empty and non-zero")
    return V.detach().double().cpu()


# ---------------------------------------------------------------------------------------- K_S versus m
def average_curvature(
    clf: Classifier,
    xs: torch.Tensor,
    subspace: Subspace,
    m_values: Sequence[int],
    *,
    n_directions: int = 20,
    method: str = "finite_difference",
    h: float | None = None,
    beta: float | None = None,
    random_state=0,
    point: str = "boundary",
    candidates: int = 10,
    deepfool_result=None,
    progress: ProgressFn | None = None,
    chunk_size: int | None = None,
) -> CurvatureCurve:
    """Average curvature ``K_S(x) = E_{v ∼ unit sphere of S_m} (Pv)ᵀH_z(Pv)/‖Pv‖²`` versus m (Fig. 7a).

    For each m, ``n_directions`` random unit vectors of ``span(first m basis vectors)`` (shared
    by all points) are drawn; for every held-out point x (its own ``z = x + r(x)``) the curvature
    along each is evaluated and averaged over the directions.

    Parameters
    ----------
    clf : Classifier
    xs : (n, C, H, W) — held-out points, pixel space; not modified
    subspace : Subspace — S_c, S_f or a random subspace, of dimension ≥ max(m_values)
    m_values : sequence of int in [1, subspace.m]
    n_directions : int ≥ 1
    method, h, beta : how ``(Pv)ᵀH(Pv)`` is evaluated (second difference of F at scale h for
        finite_difference, exact quadratic form otherwise) — see :mod:`geometry.hessian`
    random_state : int or torch.Generator — the random directions
    point : {"boundary", "inside"}
    candidates, deepfool_result : DeepFool settings / reuse a run on ``xs``
    progress : callable(fraction, message), optional — called once per m
    chunk_size : int, optional — as in :func:`curved_subspace`

    Returns
    -------
    CurvatureCurve
        ``mean``, ``std`` (ddof = 0), ``per_point`` (M, n), ``share_positive`` of the paper's
        unnormalised ``K_S``, and the ``kappa_*`` versions normalised by ``‖∇F(z)‖`` (1/pixel).

    Raises
    ------
    InvalidInputError
        subspace of another dimension d, m out of range, bad n_directions, no converged point.

    Source: ICLR 2018 §5, Fig. 7(a); DESIGN §4 "Curvature versus m".
    """
    xs = check_images(xs, clf.input_shape, name="xs")
    if subspace.d != clf.d:
        raise InvalidInputError(f"subspace lives in dimension {subspace.d}, the classifier in d = {clf.d}")
    ms = [_check_m(mm, subspace.m, f"subspace has {subspace.m} dimensions") for mm in list(m_values)]
    if not ms:
        raise InvalidInputError("m_values must not be empty")
    if isinstance(n_directions, bool) or not isinstance(n_directions, (int, np.integer)) or n_directions < 1:
        raise InvalidInputError(f"n_directions must be a positive integer, got {n_directions!r}")
    gen = _generator(random_state)
    _call(progress, 0.0, f"DeepFool on {len(xs)} points")
    _df, _keep, op, normals, gn, n_dropped = _boundary_points(
        clf,
        xs,
        point=point,
        candidates=candidates,
        deepfool_result=deepfool_result,
        method=method,
        h=h,
        beta=beta,
        chunk_size=chunk_size,
    )
    F0 = op.F()
    gnd = gn.double().cpu()
    B = subspace.basis.double()
    per_point, kappa_pp = [], []
    for i, mm in enumerate(ms):
        g = torch.randn(int(n_directions), mm, generator=gen, dtype=torch.float64)
        V = g @ B[:, :mm].T
        V = V / V.norm(dim=1, keepdim=True)
        K, _ = _tangent_curvatures(op, normals, V, F0)
        ks = torch.nanmean(K, dim=1)
        per_point.append(ks)
        kappa_pp.append(ks / gnd)
        _call(progress, (i + 1) / len(ms), f"m = {mm}: {int(n_directions)} directions × {op.n} points")
    return _curve_from_per_point(
        torch.stack(per_point),
        torch.stack(kappa_pp),
        ms,
        n_dropped=n_dropped,
        n_directions=int(n_directions),
        kind=subspace.kind,
        method=op.method,
        h=op.h,
        beta=op.beta,
        point=point,
    )


def _curve_from_per_point(
    P: torch.Tensor,
    KP: torch.Tensor,
    ms: Sequence[int],
    *,
    n_dropped: int,
    n_directions: int,
    kind: str,
    method: str,
    h: float | None,
    beta: float | None,
    point: str,
) -> CurvatureCurve:
    """The :class:`CurvatureCurve` of per-point curvatures ``P`` (K_S) and ``KP`` (κ), both (len(ms), n): means,
    population std and the share of positive points over the n points (also used by the sharded curve of
    :mod:`geometry.runtime.distributed`, which gathers P and KP from the ranks)."""
    n = P.shape[1]
    return CurvatureCurve(
        m_values=torch.tensor(list(ms), dtype=torch.long),
        mean=P.mean(1),
        std=P.std(1, correction=0),
        per_point=P,
        share_positive=(P > 0).double().mean(1),
        kappa_mean=KP.mean(1),
        kappa_std=KP.std(1, correction=0),
        kappa_per_point=KP,
        n=n,
        n_dropped=n_dropped,
        n_directions=n_directions,
        n_hvp=len(ms) * n_directions * n,
        kind=kind,
        method=method,
        h=h,
        beta=beta,
        point=point,
    )


# ---------------------------------------------------------------------------------------- save / load
_TENSOR_FIELDS = ("basis", "eigenvalues", "curvatures", "kappas")
_META_FIELDS = (
    "asymmetry",
    "kind",
    "n",
    "n_dropped",
    "n_hvp",
    "n_matvec",
    "method",
    "h",
    "beta",
    "point",
    "tangent",
    "solver",
    "input_shape",
)
_META_KEY = "boundary_atlas_subspace"
_FORMAT = 2  # 2: verified files (geometry.cache.save_tensors: SHA-256 + format version)


def save_subspace(path, s: Subspace) -> Path:
    """Write a :class:`Subspace` to ``path`` atomically, without pickled code.

    Format: safetensors (the four tensors + JSON metadata) with a format version and a SHA-256 of
    its content (:func:`geometry.cache.save_tensors`), so :func:`load_subspace` detects any damage.
    Returns the path.
    """
    tensors = {k: getattr(s, k).detach().cpu().contiguous() for k in _TENSOR_FIELDS}
    meta = {k: getattr(s, k) for k in _META_FIELDS}
    meta["input_shape"] = None if s.input_shape is None else list(s.input_shape)
    return save_tensors(Path(path), tensors, {_META_KEY: json.dumps(meta)}, version=_FORMAT)


def load_subspace(path) -> Subspace:
    """Read and verify a :class:`Subspace` written by :func:`save_subspace` (never unpickles code).

    Raises
    ------
    FileNotFoundError
        no such file.
    InvalidInputError
        not a Boundary Atlas subspace file of this version, or a damaged one (truncated, failing its
        SHA-256, non-finite basis); :class:`geometry.cache.CorruptFileError` for the latter.
    """
    path = Path(path)
    try:
        tensors, meta_str = read_tensors(path, version=_FORMAT, finite=("basis",))
    except CorruptFileError as exc:
        raise CorruptFileError(
            f"{path} is not a Boundary Atlas subspace file ({str(exc).removeprefix(str(path)).strip()})"
        ) from exc
    try:
        meta = json.loads(meta_str[_META_KEY])
        kwargs = {k: tensors[k] for k in _TENSOR_FIELDS}
        kwargs.update({k: meta[k] for k in _META_FIELDS})
    except Exception as exc:
        raise CorruptFileError(f"{path} is not a Boundary Atlas subspace file ({type(exc).__name__}: {exc})") from exc
    if kwargs["input_shape"] is not None:
        kwargs["input_shape"] = tuple(int(v) for v in kwargs["input_shape"])
    kwargs["asymmetry"] = float(kwargs["asymmetry"])
    return Subspace(**kwargs)
