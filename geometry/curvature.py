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

How ``H`` is applied — method, scale ``h`` / ``beta``, boundary or inside point, tangent projection —
is one :class:`~geometry.hessian.CurvatureEstimator` (:mod:`geometry.hessian`): at the authors' finite-difference scale the operator is neither linear nor symmetric, so every subspace
records the measured asymmetry and the curvature *re-evaluated* along each returned direction
(second difference of ``F`` for finite differences, exact quadratic form otherwise); Ritz values
alone are not curvatures (DESIGN §4 pitfalls).

All arrays in results are CPU ``torch`` tensors (float64 for bases and curvatures).

**Executors.** :func:`curved_subspace` and :func:`average_curvature` take an optional ``executor``
(:class:`PointExecutor`): the points are split over its workers, each applies the Hessians of its
share, the average ``H̄ v`` is all-reduced (weighted by the shares' sizes) and per-point results are
gathered in the order of the points. Every worker runs the same eigen-solver on the same reduced
products, so all get the same S_c. Without an executor (or with :class:`LocalExecutor`) everything
runs in this process, bitwise as before; :class:`geometry.runtime.distributed.ShardContext` is the
``torch.distributed`` executor (one protocol, two ways to run it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from .cache import CorruptFileError, read_tensors, save_tensors, tensors_digest
from .classifier import Classifier, check_images
from .errors import InvalidInputError
from .hessian import (
    BoundaryOperator,
    CurvatureEstimator,
    LanczosBreakdown,
    as_estimator,
    boundary_operator,
    lanczos_top,
)
from .progress import ProgressFn
from .subspaces import Subspace, random_subspace
from .validation import BoundaryPoint, CurvatureMethod, EigenSolver, as_generator, check_int

if TYPE_CHECKING:
    from .deepfool import DeepFoolResult

__all__ = [
    "Subspace",
    "CurvatureAlong",
    "CurvatureCurve",
    "PointExecutor",
    "LocalExecutor",
    "curved_subspace",
    "flat_subspace",
    "random_subspace",
    "curvature_along",
    "average_curvature",
    "average_boundary_hvp",
    "save_subspace",
    "load_subspace",
]


#: Authors' code: the "inside" point is x + 0.8·r(x) (ICLR 2018 code release).
INSIDE_FRACTION = 0.8


# ---------------------------------------------------------------------------------------- executors
class PointExecutor(Protocol):
    """Where the per-point work of :func:`curved_subspace` and :func:`average_curvature` runs.

    A worker handles the contiguous share ``bounds(n)`` of the points; sums over points are
    all-reduced, per-point results gathered in worker order (= the order of the points). The study
    functions take one as an argument (never import one): :class:`LocalExecutor` is one process,
    :class:`geometry.runtime.distributed.ShardContext` a ``torch.distributed`` group.
    """

    @property
    def world_size(self) -> int:
        """Number of workers (1: no communication)."""
        ...

    @property
    def is_leader(self) -> bool:
        """Whether this worker writes results (and reads whole-result caches)."""
        ...

    @property
    def cache(self) -> bool:
        """Whether finished parts and results may be read from and written to the disk cache."""
        ...

    def bounds(self, n: int) -> tuple[int, int]:
        """This worker's ``[lo, hi)`` of ``n`` points (the shares concatenate to ``range(n)`` in order)."""
        ...

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of ``t`` over the workers."""
        ...

    def all_gather(self, obj: Any) -> list[Any]:
        """Every worker's ``obj``, in worker order."""
        ...

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Worker ``src``'s ``obj`` on every worker."""
        ...

    def map_shards(
        self,
        n: int,
        part: str,
        key: Callable[[], dict[str, Any]],
        compute: Callable[[int, int], dict[str, torch.Tensor]],
    ) -> list[dict[str, torch.Tensor]]:
        """``compute(lo, hi)`` on this worker's share of ``n`` points (resumable: an executor may keep
        it on disk under ``part`` and ``key()``), every worker's result in worker order."""
        ...

    def deepfool(
        self, clf: Classifier, xs: torch.Tensor, *, candidates: int = 10, clip: bool = False
    ) -> DeepFoolResult:
        """DeepFool (default settings but ``candidates`` and ``clip``: iterates clamped to the pixel box) on all
        of ``xs``, the whole result on every worker."""
        ...


@dataclass(frozen=True)
class LocalExecutor:
    """The one-process :class:`PointExecutor`: one share (all points), no communication, no shard cache."""

    @property
    def world_size(self) -> int:
        return 1

    @property
    def is_leader(self) -> bool:
        return True

    @property
    def cache(self) -> bool:
        return True

    def bounds(self, n: int) -> tuple[int, int]:
        return 0, int(n)

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def all_gather(self, obj: Any) -> list[Any]:
        return [obj]

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj

    def map_shards(
        self,
        n: int,
        part: str,
        key: Callable[[], dict[str, Any]],
        compute: Callable[[int, int], dict[str, torch.Tensor]],
    ) -> list[dict[str, torch.Tensor]]:
        return [compute(0, int(n))]

    def deepfool(
        self, clf: Classifier, xs: torch.Tensor, *, candidates: int = 10, clip: bool = False
    ) -> DeepFoolResult:
        from .deepfool import deepfool  # lazy: keeps this module importable on its own

        return deepfool(clf, xs, candidates=candidates, clip=clip)


LOCAL = LocalExecutor()


def _digest(*tensors: torch.Tensor) -> str:
    """SHA-256 (24 hex digits) of tensors (dtype, shape, bytes), for shard-cache keys."""
    return tensors_digest({str(i): t for i, t in enumerate(tensors)})[:24]


def _weights_digest(clf: Classifier) -> str:
    state = [t for t in clf.network.state_dict().values() if isinstance(t, torch.Tensor)]
    return _digest(*state, torch.tensor(list(clf.input_shape)), torch.tensor([float(b) for b in clf.bounds]))


def _df_digest(df: DeepFoolResult) -> str:
    return _digest(df.r, df.label, df.adv_label, df.converged)


# ---------------------------------------------------------------------------------------- results
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
    method: CurvatureMethod
    h: float | None
    beta: float | None
    point: BoundaryPoint
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
    method: CurvatureMethod
    h: float | None
    beta: float | None
    point: BoundaryPoint


# ---------------------------------------------------------------------------------------- helpers
_generator = as_generator


def _check_m(m: Any, upper: int, what: str) -> int:
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


def _run_deepfool(
    clf: Classifier,
    xs: torch.Tensor,
    candidates: int,
    deepfool_result: DeepFoolResult | None,
    executor: PointExecutor,
) -> DeepFoolResult:
    if deepfool_result is None:
        deepfool_result = executor.deepfool(clf, xs, candidates=candidates)
    r = torch.as_tensor(deepfool_result.r)
    if tuple(r.shape) != tuple(xs.shape):
        raise InvalidInputError(f"deepfool_result.r must have the shape of xs {tuple(xs.shape)}, got {tuple(r.shape)}")
    return deepfool_result


@dataclass(frozen=True, eq=False)
class _Boundary:
    """Boundary points of one worker's share: the operator, normals (n_local, d), gradient norms (n_local,),
    the kept mask of *all* points, and the number of kept points over all workers."""

    df: DeepFoolResult
    keep: torch.Tensor
    op: BoundaryOperator | None
    normals: torch.Tensor
    gn: torch.Tensor
    n: int
    n_dropped: int

    @property
    def n_local(self) -> int:
        return 0 if self.op is None else self.op.n


def _boundary_points(
    clf: Classifier,
    xs: torch.Tensor,
    est: CurvatureEstimator,
    *,
    candidates: int,
    deepfool_result: DeepFoolResult | None,
    executor: PointExecutor = LOCAL,
) -> _Boundary:
    """DeepFool → kept points (over all workers) → this worker's operator, normals, gradient norms."""
    df = _run_deepfool(clf, xs, candidates, deepfool_result, executor)
    label = torch.as_tensor(df.label).long().cpu()
    adv = torch.as_tensor(df.adv_label).long().cpu()
    converged = torch.as_tensor(df.converged).bool().cpu()
    if label.shape != (len(xs),):
        raise InvalidInputError(f"deepfool_result holds {len(label)} points, xs {len(xs)}")
    keep = converged & (label != adv)
    n_dropped = int((~keep).sum())
    if not bool(keep.any()):
        raise InvalidInputError(f"DeepFool converged on none of the {len(xs)} points: no boundary point to work with")
    lo, hi = executor.bounds(len(xs))
    kidx = keep[lo:hi].nonzero().squeeze(1) + lo
    if len(kidx) == 0:  # an empty share (fewer kept points than workers)
        empty = torch.zeros(0, clf.d, dtype=clf.dtype, device=clf.device)
        return _Boundary(df, keep, None, empty, empty[:, 0], int(keep.sum()), n_dropped)
    frac = 1.0 if est.point == "boundary" else INSIDE_FRACTION
    r = torch.as_tensor(df.r).detach().to(xs.device, xs.dtype)
    z = xs[kidx.to(xs.device)] + frac * r[kidx.to(xs.device)]
    op = boundary_operator(clf, z, label[kidx], adv[kidx], estimator=est)
    grad = op.gradient()
    gn = grad.norm(dim=1)
    normals = grad / torch.where(gn > 0, gn, torch.ones_like(gn))[:, None]
    return _Boundary(df, keep, op, normals, gn, int(keep.sum()), n_dropped)


def _shared_average(
    b: _Boundary, executor: PointExecutor, d: int, *, tangent: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``V ↦ rows A v`` (float64, CPU) of the average over *all* points, ``A = (1/n) Σ_i P_i H_i P_i``
    (or ``H_i``): each worker's mean over its share weighted by ``n_local/n``, all-reduced (SUM). With one
    worker the weight is exactly 1 and nothing is communicated. Collective: every worker must call it."""
    weight = b.n_local / b.n

    def apply(V: torch.Tensor) -> torch.Tensor:
        if b.op is not None:
            local = _average_operator(b.op, b.normals, V, tangent=tangent).double().cpu()
            if weight != 1.0:
                local = local * weight
        else:
            local = torch.zeros(len(V), d, dtype=torch.float64)
        return executor.all_reduce_sum(local)

    return apply


def _gathered_curvatures(
    b: _Boundary, executor: PointExecutor, basis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over all points of ``K(u_k)`` and ``κ(u_k)`` along the columns of ``basis`` (gathered)."""
    if b.op is not None:
        K, _ = _tangent_curvatures(b.op, b.normals, basis.T, b.op.F())
        kap = K / b.gn.double().cpu()[:, None]
    else:
        K = kap = torch.zeros(0, basis.shape[1], dtype=torch.float64)
    parts = executor.all_gather((K, kap))
    return torch.nanmean(torch.cat([p[0] for p in parts]), dim=0), torch.nanmean(
        torch.cat([p[1] for p in parts]), dim=0
    )


def _blocks(n_points: int, n_dirs: int, chunk: int) -> Iterator[tuple[slice, slice]]:
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


def _tangent_curvatures(
    op: BoundaryOperator, normals: torch.Tensor, V: torch.Tensor, F0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
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
    """The top-``m`` eigenpairs of the average boundary operator ``V ↦ operator(V)`` (rows of V are
    directions, shape (k, d) → (k, d); one process or all-reduced over an executor's workers).

    ``use_dense``: build the d × d matrix column by column (``dense_step`` columns per application) and
    take ``eigh`` of its symmetric part; else Lanczos (:func:`geometry.hessian.lanczos_top`, ``which="LA"``,
    start vector from ``gen``). Applications are counted here (one per direction) for the progress, the
    messages and the result.

    Returns (eigenvalues (m,) float64 descending, basis (d, m) float64 orthonormal, relative asymmetry of
    the operator, "dense" | "eigsh", number of operator applications). Raises AtlasError when eigsh converges
    to fewer than m eigenpairs or fails on an operator that is not identically zero (a vanishing operator
    gets a random orthonormal basis).
    """
    counter = {"matvec": 0}
    ncv_eff = ncv if ncv is not None else min(d, max(2 * m + 1, 20))
    estimate = d if use_dense else ncv_eff + 4 * max(1, ncv_eff - m)  # applications, for the progress fraction

    def apply(V: torch.Tensor) -> torch.Tensor:
        counter["matvec"] += len(V)
        return operator(V)

    if use_dense:
        cols = []
        eye = torch.eye(d, dtype=torch.float64)
        step = dense_step
        for s in range(0, d, step):
            cols.append(apply(eye[s : s + step]).double())
            progress(0.05 + 0.85 * min(s + step, d) / d, f"dense average Hessian: {min(s + step, d)} of {d} columns")
        A = torch.cat(cols).T  # column k = A e_k
        evals_t, evecs_t = torch.linalg.eigh(0.5 * (A + A.T))
        order = torch.argsort(evals_t, descending=True)[:m]
        eigenvalues, basis = evals_t[order], evecs_t[:, order]
        asym = _asymmetry(lambda W: W @ A.T, d, n_asymmetry_pairs, gen)
        return eigenvalues, basis, float(asym), "dense", counter["matvec"]

    def on_apply(_: int) -> None:
        progress(
            0.05 + 0.84 * min(1.0, counter["matvec"] / estimate),
            f"Hessian-vector products: {counter['matvec']} × {n} points",
        )

    v0 = torch.randn(d, generator=gen, dtype=torch.float64).numpy()
    try:
        found = lanczos_top(apply, d, m, which="LA", v0=v0, tol=tol, maxiter=maxiter, ncv=ncv, on_apply=on_apply)
        evals, evecs = found.values, found.vectors
        assert evecs is not None  # asked for eigenvectors
    except LanczosBreakdown:
        # Lanczos breaks down at once on a vanishing operator (e.g. the exact Hessian of a
        # piecewise-linear network): all eigenvalues are 0 and any orthonormal basis will do.
        probe = apply(torch.randn(2, d, generator=gen, dtype=torch.float64))
        if not bool((probe == 0).all()):
            raise
        evals = np.zeros(m)
        evecs = random_subspace(d, m, random_state=gen).basis.numpy()
    descending = np.argsort(evals)[::-1][:m]
    eigenvalues = torch.from_numpy(np.ascontiguousarray(evals[descending]))
    basis = torch.from_numpy(np.ascontiguousarray(evecs[:, descending]))
    q, rr = torch.linalg.qr(basis)  # re-orthonormalise (a non-symmetric operator may drift)
    basis = q * torch.sign(torch.diagonal(rr)).where(torch.diagonal(rr) != 0, torch.ones(1, dtype=q.dtype))
    progress(0.9, "measuring the asymmetry of the operator")
    asym = _asymmetry(apply, d, n_asymmetry_pairs, gen)
    return eigenvalues, basis, float(asym), "eigsh", counter["matvec"]


def _seed(random_state: Any, executor: PointExecutor | None) -> Any:
    """``random_state`` as given; with an executor of several workers it must be an int (every
    worker draws the same start vector and directions)."""
    if executor is not None and (isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer))):
        raise InvalidInputError(f"random_state must be an int (the same on every worker), got {random_state!r}")
    return random_state


def curved_subspace(
    clf: Classifier,
    xs: torch.Tensor,
    m: int,
    *,
    estimator: CurvatureEstimator | None = None,
    method: CurvatureMethod | None = None,
    h: float | None = None,
    beta: float | None = None,
    tangent: bool | None = None,
    point: BoundaryPoint | None = None,
    chunk_size: int | None = None,
    candidates: int = 10,
    random_state: Any = 0,
    progress: ProgressFn | None = None,
    deepfool_result: DeepFoolResult | None = None,
    solver: EigenSolver = "auto",
    dense_max_d: int = 100,
    tol: float = 1e-4,
    maxiter: int | None = None,
    ncv: int | None = None,
    n_asymmetry_pairs: int = 3,
    executor: PointExecutor | None = None,
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
    estimator : CurvatureEstimator, optional — how ``H v`` is computed (method, ``h`` default
        ``10·√d·range/512``, ``beta``), at which point (``z = x + r(x)`` or ``x + 0.8·r(x)``, the
        authors' code) and whether ``P_i H_i P_i`` (tangent, the paper) or ``H_i`` is averaged;
        default finite differences at the authors' h, boundary point, tangent
    method, h, beta, tangent, point, chunk_size : the same as loose keywords
        (:func:`geometry.hessian.as_estimator`; not together with ``estimator``)
    candidates : int — DeepFool candidate classes (ignored with ``deepfool_result``)
    random_state : int or torch.Generator — eigsh's start vector and the asymmetry pairs (an int
        with an executor)
    progress : callable(fraction in [0, 1], message), optional — called once per operator
        application (fraction counted against an estimate of the number of applications)
    deepfool_result : DeepFoolResult, optional — reuse a DeepFool run on ``xs`` (needs ``r``,
        ``label``, ``adv_label``, ``converged``)
    solver : {"auto", "eigsh", "dense"} — "dense" applies ``H̄`` to the d basis vectors and
        eigen-decomposes the symmetric part ``(A + Aᵀ)/2`` exactly (d·n HVPs); "auto" = dense when
        ``d ≤ dense_max_d``, else Lanczos (:func:`geometry.hessian.lanczos_top`) on the batched
        average HVP (never forms a d×d matrix; memory O(d·(m + chunk)))
    tol, maxiter, ncv : passed to ``eigsh`` (``tol``: relative accuracy of the Ritz pairs; the
        default 1e-4 is ample since the curvatures are re-evaluated; pass e.g. 1e-10 on float64
        analytic classifiers for exact eigenvalues)
    n_asymmetry_pairs : int — random unit pairs used to measure the asymmetry (0: skip)
    executor : PointExecutor, optional — split the points over workers (module docstring); every
        worker returns the same S_c (rank 0's basis, broadcast). Default: this process

    Returns
    -------
    Subspace
        kind "curved": ``basis`` (d, m) orthonormal; ``spectrum`` the Ritz values (descending,
        ``spectrum_kind="ritz"``); ``curvatures`` / ``kappas`` re-evaluated along each basis vector,
        mean over the points (second difference of F at scale h for finite differences, exact
        quadratic form otherwise) — read these, not the Ritz values, as curvatures; ``asymmetry``
        measured; ``n_dropped`` points whose DeepFool did not converge (excluded).

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
    (not symmetrised) by eigsh, its asymmetry is reported and the curvature re-evaluated. With
    several workers the result equals the one-process one up to the order of floating-point
    summation (bitwise with one worker).

    Source: ICLR 2018 §5 (S_c = span of the first m eigenvectors of the average Hessian), Fig. 7a.
    """
    est = as_estimator(
        estimator, method=method, h=h, beta=beta, tangent=tangent, point=point, chunk_size=chunk_size
    ).resolve(clf)
    xs = check_images(xs, clf.input_shape, name="xs")
    d = clf.d
    if solver not in ("auto", "eigsh", "dense"):
        raise InvalidInputError(f"solver must be 'auto', 'eigsh' or 'dense', got {solver!r}")
    use_dense = solver == "dense" or (solver == "auto" and d <= dense_max_d)
    m = _check_m(m, d if use_dense else d - 1, "dense solver" if use_dense else "eigsh needs m < d")
    gen = _generator(_seed(random_state, executor))
    run = LOCAL if executor is None else executor

    _call(progress, 0.0, f"DeepFool on {len(xs)} points")
    b = _boundary_points(clf, xs, est, candidates=candidates, deepfool_result=deepfool_result, executor=run)
    n = b.n
    eigenvalues, basis, asym, used, n_matvec = _top_eigenpairs(
        _shared_average(b, run, d, tangent=est.tangent),
        d=d,
        m=m,
        n=n,
        use_dense=use_dense,
        dense_step=max(1, int(est.chunk_size or 1) // max(1, n)),
        gen=gen,
        tol=tol,
        maxiter=maxiter,
        ncv=ncv,
        n_asymmetry_pairs=n_asymmetry_pairs,
        progress=lambda frac, msg: _call(progress, frac, msg),
    )
    basis = _fix_signs(basis.double())
    # every worker ran the same solver on the same reduced products; worker 0's basis is the result
    basis, eigenvalues = run.broadcast((basis, eigenvalues.double()))

    _call(progress, 0.95, f"re-evaluating the curvature along {m} directions")
    curvatures, kappas = _gathered_curvatures(b, run, basis)
    _call(progress, 1.0, "done")
    return Subspace(
        basis=basis.contiguous(),
        spectrum=eigenvalues.double().contiguous(),
        spectrum_kind="ritz",
        curvatures=curvatures,
        kappas=kappas,
        asymmetry=float(run.broadcast(float(asym))),
        kind="curved",
        n=n,
        n_dropped=b.n_dropped,
        n_hvp=n_matvec * n,
        n_matvec=n_matvec,
        method=est.method,
        h=est.h,
        beta=est.beta,
        point=est.point,
        tangent=est.tangent,
        solver=used,
        input_shape=tuple(clf.input_shape),  # type: ignore[arg-type]
    )


def average_boundary_hvp(
    clf: Classifier,
    z: torch.Tensor,
    labels: Any,
    adv_labels: Any,
    V: torch.Tensor,
    *,
    estimator: CurvatureEstimator | None = None,
    executor: PointExecutor | None = None,
) -> torch.Tensor:
    """The average boundary Hessian-vector product ``H̄ v = (1/n) Σ_i H_{z_i} v`` (or ``P_i H_i P_i v``).

    The operator whose top eigenvectors are S_c (:func:`curved_subspace`), at given points.

    Parameters
    ----------
    clf : Classifier
    z : (n, C, H, W) — boundary points, pixel space (every worker holds all of them)
    labels, adv_labels : (n,) int — ``k̂`` and the DeepFool label (``F = f_adv − f_label``; must differ)
    V : (k, d) — directions shared by all points
    estimator : CurvatureEstimator, optional — method and scale; ``tangent=True`` averages the
        tangent-projected ``P_i H_i P_i`` (``P_i = I − n_i n_iᵀ``, ``n_i`` the unit normal at ``z_i``),
        ``tangent=False`` the plain ``H_i``; ``point`` is ignored (``z`` are the points)
    executor : PointExecutor, optional — split the points over workers (data-parallel HVPs, shares
        weighted by their sizes and all-reduced)

    Returns
    -------
    (k, d) float64 CPU tensor — rows ``H̄ v`` (logit units per pixel² times the units of v), the same
    on every worker.

    Raises
    ------
    InvalidInputError
        as :func:`geometry.hessian.boundary_operator`; ``V`` not (k, d).

    Source: ICLR 2018 §5 (average Hessian of S_c).
    """
    from .deepfool import DeepFoolResult

    est = as_estimator(estimator).resolve(clf)
    z = check_images(z, clf.input_shape, name="z")
    V = torch.as_tensor(V)
    if V.dim() != 2 or V.shape[1] != clf.d:
        raise InvalidInputError(f"V must have shape (k, {clf.d}), got {tuple(V.shape)}")
    n = len(z)
    lab = torch.as_tensor(labels).long().reshape(-1)
    adv = torch.as_tensor(adv_labels).long().reshape(-1)
    if lab.shape != (n,) or adv.shape != (n,):
        raise InvalidInputError(f"labels and adv_labels must have shape ({n},)")
    if bool((lab == adv).any()):
        raise InvalidInputError(
            f"adv_labels must differ from labels (F = f_adv − f_label would be 0): "
            f"{int((lab == adv).sum())} of {n} points have adv_label == label"
        )
    at_z = DeepFoolResult(
        r=torch.zeros_like(z),
        x_adv=z,
        label=lab,
        adv_label=adv,
        n_iter=torch.zeros(n, dtype=torch.long),
        converged=torch.ones(n, dtype=torch.bool),
        norms=torch.zeros(n, dtype=z.dtype),
        norm=2.0,
        overshoot=0.0,
        n_forward=0,
        n_backward=0,
    )
    run = LOCAL if executor is None else executor
    b = _boundary_points(clf, z, replace(est, point="boundary"), candidates=10, deepfool_result=at_z, executor=run)
    return _shared_average(b, run, clf.d, tangent=est.tangent)(V.double())


# ---------------------------------------------------------------------------------------- S_f
def flat_subspace(
    clf: Classifier,
    xs: torch.Tensor,
    m: int,
    *,
    candidates: int = 10,
    deepfool_result: DeepFoolResult | None = None,
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
        kind "flat": ``basis`` (d, m), ``spectrum`` = the m largest singular values of the (d, n)
        normals matrix (``spectrum_kind="singular"``; descending; beyond the rank ≈ 0), ``curvatures``
        and ``kappas`` NaN, ``asymmetry`` NaN. Points whose DeepFool did not converge (or with
        r = 0) are dropped (``n_dropped``).

    Raises
    ------
    InvalidInputError
        bad shapes, m out of range, no usable point.

    Source: ICLR 2018 §3 (Theorem 1, normals in a low-dimensional subspace) and §5 (S_f); DESIGN §4.
    """
    xs = check_images(xs, clf.input_shape, name="xs")
    df = _run_deepfool(clf, xs, candidates, deepfool_result, LOCAL)
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
        spectrum=S[:m].contiguous(),
        spectrum_kind="singular",
        curvatures=nan,
        kappas=nan.clone(),
        asymmetry=float("nan"),
        kind="flat",
        n=n_kept,
        n_dropped=len(xs) - n_kept,
        solver="svd",
        input_shape=tuple(clf.input_shape),  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------- curvature along
def curvature_along(
    clf: Classifier,
    x: torch.Tensor,
    directions: torch.Tensor,
    *,
    estimator: CurvatureEstimator | None = None,
    method: CurvatureMethod | None = None,
    h: float | None = None,
    beta: float | None = None,
    point: BoundaryPoint | None = None,
    chunk_size: int | None = None,
    deepfool_result: DeepFoolResult | None = None,
    candidates: int = 10,
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
    estimator : CurvatureEstimator, optional — method, scale and point (``z = x + r(x)`` or
        ``x + 0.8·r(x)``); ``tangent`` does not apply (``Pv`` is always used). Default: finite
        differences at the authors' h, boundary point
    method, h, beta, point, chunk_size : the same as loose keywords (:func:`geometry.hessian.as_estimator`)
    deepfool_result : DeepFoolResult for ``x`` (batch form), optional
    candidates : int — DeepFool candidates

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
    est = as_estimator(estimator, method=method, h=h, beta=beta, point=point, chunk_size=chunk_size).resolve(clf)
    xs = check_images(x, clf.input_shape, allow_single=True, name="x")
    V = _check_directions(clf, directions)
    b = _boundary_points(clf, xs, est, candidates=candidates, deepfool_result=deepfool_result)
    op, keep = b.op, b.keep
    assert op is not None  # one process: every kept point is local
    gn = b.gn
    F0 = op.F()
    K, frac = _tangent_curvatures(op, b.normals, V, F0)
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
        label=torch.as_tensor(b.df.label).long().cpu().clone(),
        adv_label=torch.as_tensor(b.df.adv_label).long().cpu().clone(),
        converged=keep.clone(),
        method=op.method,
        h=op.h,
        beta=op.beta,
        point=est.point,
        n_hvp=int(keep.sum()) * k,
    )


def _check_directions(clf: Classifier, directions: Any) -> torch.Tensor:
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
    estimator: CurvatureEstimator | None = None,
    method: CurvatureMethod | None = None,
    h: float | None = None,
    beta: float | None = None,
    point: BoundaryPoint | None = None,
    chunk_size: int | None = None,
    n_directions: int = 20,
    random_state: Any = 0,
    candidates: int = 10,
    deepfool_result: DeepFoolResult | None = None,
    progress: ProgressFn | None = None,
    executor: PointExecutor | None = None,
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
    estimator : CurvatureEstimator, optional — how ``(Pv)ᵀH(Pv)`` is evaluated (second difference
        of F at scale h for finite_difference, exact quadratic form otherwise) and at which point;
        see :mod:`geometry.hessian`
    method, h, beta, point, chunk_size : the same as loose keywords (:func:`geometry.hessian.as_estimator`)
    n_directions : int ≥ 1
    random_state : int or torch.Generator — the random directions (an int with an executor)
    candidates, deepfool_result : DeepFool settings / reuse a run on ``xs``
    progress : callable(fraction, message), optional — called once per m
    executor : PointExecutor, optional — split the points over workers; each evaluates its share
        (resumable from the executor's shard cache), the per-point values are gathered in order

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
    est = as_estimator(estimator, method=method, h=h, beta=beta, point=point, chunk_size=chunk_size).resolve(clf)
    xs = check_images(xs, clf.input_shape, name="xs")
    if subspace.d != clf.d:
        raise InvalidInputError(f"subspace lives in dimension {subspace.d}, the classifier in d = {clf.d}")
    ms = [_check_m(mm, subspace.m, f"subspace has {subspace.m} dimensions") for mm in list(m_values)]
    if not ms:
        raise InvalidInputError("m_values must not be empty")
    n_directions = check_int("n_directions", n_directions, 1)
    gen = _generator(_seed(random_state, executor))
    run = LOCAL if executor is None else executor
    _call(progress, 0.0, f"DeepFool on {len(xs)} points")
    b = _boundary_points(clf, xs, est, candidates=candidates, deepfool_result=deepfool_result, executor=run)
    B = subspace.basis.double()
    directions = []
    for mm in ms:  # drawn on every worker, whatever its share: the same directions for all points
        g = torch.randn(int(n_directions), mm, generator=gen, dtype=torch.float64)
        V = g @ B[:, :mm].T
        directions.append(V / V.norm(dim=1, keepdim=True))

    def compute(lo: int, hi: int) -> dict[str, torch.Tensor]:
        if b.op is None:
            empty = torch.zeros(len(ms), 0, dtype=torch.float64)
            return {"per_point": empty, "kappa_per_point": empty.clone()}
        F0 = b.op.F()
        gnd = b.gn.double().cpu()
        per_point, kappa_pp = [], []
        for i, (mm, V) in enumerate(zip(ms, directions, strict=True)):
            K, _ = _tangent_curvatures(b.op, b.normals, V, F0)
            ks = torch.nanmean(K, dim=1)
            per_point.append(ks)
            kappa_pp.append(ks / gnd)
            _call(progress, (i + 1) / len(ms), f"m = {mm}: {int(n_directions)} directions × {b.op.n} points")
        return {"per_point": torch.stack(per_point), "kappa_per_point": torch.stack(kappa_pp)}

    def key() -> dict[str, Any]:
        return {
            "study": "curvature-curve",
            "network": _weights_digest(clf),
            "xs": _digest(xs),
            "df": _df_digest(b.df),
            "basis": _digest(subspace.basis),
            "ms": ms,
            "n_directions": int(n_directions),
            "seed": int(random_state),
            **est.key(),
        }

    parts = run.map_shards(len(xs), f"curve-{subspace.kind}", key, compute)
    P = torch.cat([p["per_point"] for p in parts], dim=1)
    KP = torch.cat([p["kappa_per_point"] for p in parts], dim=1)
    return _curve_from_per_point(
        P,
        KP,
        ms,
        n_dropped=len(xs) - P.shape[1],
        n_directions=int(n_directions),
        kind=subspace.kind,
        method=est.method,
        h=est.h,
        beta=est.beta,
        point=est.point,
    )


def _curve_from_per_point(
    P: torch.Tensor,
    KP: torch.Tensor,
    ms: Sequence[int],
    *,
    n_dropped: int,
    n_directions: int,
    kind: str,
    method: CurvatureMethod,
    h: float | None,
    beta: float | None,
    point: BoundaryPoint,
) -> CurvatureCurve:
    """The :class:`CurvatureCurve` of per-point curvatures ``P`` (K_S) and ``KP`` (κ), both (len(ms), n): means,
    population std and the share of positive points over the n points (also used by the sharded curve of
    :func:`average_curvature`, whose workers' P and KP are gathered first)."""
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
_TENSOR_FIELDS = ("basis", "spectrum", "curvatures", "kappas")
_META_FIELDS = (
    "spectrum_kind",
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
_FORMAT = 3  # 2: verified files (geometry.cache.save_tensors: SHA-256 + format version); 3: spectrum + spectrum_kind


def save_subspace(path: str | Path, s: Subspace) -> Path:
    """Write a :class:`Subspace` to ``path`` atomically, without pickled code.

    Format: safetensors (the four tensors + JSON metadata) with a format version and a SHA-256 of
    its content (:func:`geometry.cache.save_tensors`), so :func:`load_subspace` detects any damage.
    Returns the path.
    """
    tensors = {k: getattr(s, k).detach().cpu().contiguous() for k in _TENSOR_FIELDS}
    meta = {k: getattr(s, k) for k in _META_FIELDS}
    meta["input_shape"] = None if s.input_shape is None else list(s.input_shape)
    return save_tensors(Path(path), tensors, {_META_KEY: json.dumps(meta)}, version=_FORMAT)


def load_subspace(path: str | Path) -> Subspace:
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
