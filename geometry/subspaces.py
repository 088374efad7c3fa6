"""Principal angles between subspaces and their random-subspace baseline (ICLR 2018 Fig. 10).

Quantities (DESIGN §4 "Principal angles"):

* :func:`principal_angles` — the cosines of the principal angles between ``span(A)`` and
  ``span(B)``: the singular values of ``Q_Aᵀ Q_B`` for orthonormal bases ``Q_A``, ``Q_B``, in
  descending order (so ``cos θ_1 ≥ cos θ_2 ≥ …``). ``scipy.linalg.subspace_angles`` returns the
  angles themselves, and its cosines agree with ours;
* :class:`Subspace` — an m-dimensional subspace of pixel space with its diagnostics (S_c, S_f or a
  random one; :mod:`geometry.curvature` estimates the first two), and what its spectrum is;
* :func:`random_subspace` — a uniformly random (Haar) m-dimensional subspace, as a :class:`Subspace`;
* :func:`random_baseline` — the cosines expected between two *random* subspaces of the given
  dimensions, the baseline curve of Fig. 10 ("for comparison, cosine of angles between two random
  subspaces is also shown").

Known scale of the baseline (for ``p, q ≪ d``): ``Q_Aᵀ Q_B`` is close to a p×q matrix of i.i.d.
``N(0, 1/d)`` entries, so the largest cosine is close to the top singular value of such a matrix,
``≈ (√p + √q)/√d`` (the Marchenko–Pastur / Wachter edge; finite p, q fall a little *below* the
edge), and for ``p = 1`` the squared cosine has mean exactly ``q/d``
(``E‖P_B a‖² = q/d`` for a random unit ``a``). What was verified (tests/test_subspaces.py):
``E[cos²] = q/d`` for ``p = 1`` (d = 200, q = 10, 400 samples, within 4 standard errors), and for
``d = 1000, p = q = 10`` the mean top cosine over 40 samples is 0.175–0.177 (seeds 0–2): below
``√(p/d) + √(q/d) = 0.2`` (Gordon's inequality bounds the Gaussian's mean top singular value by
``√p + √q``) and within 25 % of it (in fact 13 %).

All results are CPU float64 torch tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch

from .errors import InvalidInputError
from .hessian import CurvatureEstimator
from .validation import BoundaryPoint, CurvatureMethod, as_generator, check_int

__all__ = ["Subspace", "SpectrumKind", "principal_angles", "random_subspace", "random_baseline", "RandomBaseline"]

#: What :attr:`Subspace.spectrum` holds: Ritz values of the average Hessian (S_c), singular values of
#: the normals matrix (S_f), or nothing (NaN, a random subspace).
SpectrumKind = Literal["ritz", "singular", "none"]
_SPECTRUM_KINDS = ("ritz", "singular", "none")


# ---------------------------------------------------------------------------------------- Subspace
@dataclass(frozen=True, eq=False)
class Subspace:
    """An m-dimensional subspace of pixel space with its diagnostics.

    Attributes
    ----------
    basis : (d, m) float64 tensor — orthonormal columns, ordered (most curved / largest singular
        value first); for S_c and S_f each column's sign is fixed so that its largest-magnitude
        entry is positive
    spectrum : (m,) float64 — the numbers that ordered the basis, as ``spectrum_kind`` says
    spectrum_kind : {"ritz", "singular", "none"} — "ritz": S_c's Ritz values of ``H̄`` (logit units
        per pixel unit², eigenvalues of the symmetric part for the dense solver; *not* re-evaluated
        curvatures); "singular": S_f's singular values of the normals matrix (dimensionless);
        "none": a random subspace (NaN)
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
    spectrum: torch.Tensor
    spectrum_kind: str
    curvatures: torch.Tensor
    kappas: torch.Tensor
    asymmetry: float
    kind: str
    n: int = 0
    n_dropped: int = 0
    n_hvp: int = 0
    n_matvec: int = 0
    method: CurvatureMethod | None = None
    h: float | None = None
    beta: float | None = None
    point: BoundaryPoint | None = None
    tangent: bool | None = None
    solver: str = ""
    input_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.spectrum_kind not in _SPECTRUM_KINDS:
            raise InvalidInputError(f"spectrum_kind must be one of {_SPECTRUM_KINDS}, got {self.spectrum_kind!r}")

    @property
    def d(self) -> int:
        return int(self.basis.shape[0])

    @property
    def m(self) -> int:
        return int(self.basis.shape[1])

    @property
    def estimator(self) -> CurvatureEstimator | None:
        """The curvature estimator S_c was computed with (None for S_f and random subspaces)."""
        if self.method is None:
            return None
        return CurvatureEstimator(
            method=self.method,
            h=self.h,
            beta=self.beta,
            point=self.point or "boundary",
            tangent=True if self.tangent is None else self.tangent,
        )

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
            spectrum=self.spectrum[:m].clone(),
            curvatures=self.curvatures[:m].clone(),
            kappas=self.kappas[:m].clone(),
        )

    def images(self) -> torch.Tensor:
        """The basis vectors as images, (m, C, H, W) (needs ``input_shape``)."""
        if self.input_shape is None:
            raise InvalidInputError("this subspace has no input_shape; reshape basis.T yourself")
        return self.basis.T.reshape(self.m, *self.input_shape)


# ---------------------------------------------------------------------------------------- helpers
_generator = as_generator


def _positive_int(value: Any, name: str, *, upper: int | None = None) -> int:
    out = check_int(name, value, 1)
    if upper is not None and out > upper:
        raise InvalidInputError(f"{name} must be at most {upper}, got {out}")
    return out


def _as_basis(A: Any, name: str) -> torch.Tensor:
    """``A`` as a float64 (d, p) tensor (a (d,) vector is one column)."""
    if isinstance(A, np.ndarray):
        A = torch.from_numpy(A)
    if not isinstance(A, torch.Tensor):
        try:
            A = torch.as_tensor(A)
        except Exception as exc:
            raise InvalidInputError(
                f"{name} must be a (d, p) matrix whose columns span the subspace, got {type(A).__name__}"
            ) from exc
    A = A.detach().to("cpu", torch.float64)
    if A.dim() == 1:
        A = A.unsqueeze(1)
    if A.dim() != 2 or A.shape[0] == 0 or A.shape[1] == 0:
        raise InvalidInputError(
            f"{name} must be a non-empty (d, p) matrix (columns span the subspace), got shape {tuple(A.shape)}"
        )
    if not torch.isfinite(A).all():
        raise InvalidInputError(f"{name} contains NaN or inf entries")
    return A


def _orthonormalise(A: torch.Tensor, name: str, *, rtol: float = 1e-10) -> torch.Tensor:
    """Orthonormal basis of ``span(A)`` by (reduced) QR; rank-deficient ``A`` is an error."""
    d, p = A.shape
    if p > d:
        raise InvalidInputError(
            f"{name} has {p} columns in dimension d = {d}: at most d independent columns are possible"
        )
    Q, R = torch.linalg.qr(A, mode="reduced")
    diag = torch.diagonal(R).abs()
    scale = torch.linalg.matrix_norm(A, ord=2)
    if scale == 0 or bool((diag <= rtol * scale).any()):
        # QR's diagonal can be small while the matrix still has full rank only in pathological
        # orderings; confirm with the singular values before failing.
        s = torch.linalg.svdvals(A)
        if scale == 0 or bool(s[-1] <= rtol * s[0]):
            rank = int((s > rtol * s[0]).sum()) if scale > 0 else 0
            raise InvalidInputError(
                f"{name} must have linearly independent columns (rank {p}), got rank {rank} "
                f"(smallest/largest singular value {float(s[-1] / s[0]) if scale > 0 else 0.0:.2e})"
            )
    return Q


# ---------------------------------------------------------------------------------------- angles
def principal_angles(A: Any, B: Any) -> torch.Tensor:
    """Cosines of the principal angles between ``span(A)`` and ``span(B)``, descending.

    Parameters
    ----------
    A : (d, p) tensor / array — columns span the first subspace (need not be orthonormal; a (d,)
        vector is a line)
    B : (d, q) tensor / array — columns span the second subspace

    Returns
    -------
    (min(p, q),) float64 tensor — ``cos θ_1 ≥ … ≥ cos θ_k`` in [0, 1]: the singular values of
    ``Q_Aᵀ Q_B`` where ``Q_A``, ``Q_B`` are orthonormal bases (reduced QR) of the two spans.
    1 = a shared direction, 0 = orthogonal directions. Independent of the bases chosen for the
    two spans; agrees with ``np.cos(scipy.linalg.subspace_angles(A, B))`` sorted descending.

    Raises
    ------
    InvalidInputError
        not 2-D, different d, NaN / inf entries, or rank-deficient columns (the subspace dimension
        would be ambiguous).

    References: ICLR 2018 Fig. 10; Björck & Golub (1973), "Numerical methods for computing angles
    between linear subspaces".
    """
    A = _as_basis(A, "A")
    B = _as_basis(B, "B")
    if A.shape[0] != B.shape[0]:
        raise InvalidInputError(
            f"A and B must live in the same dimension d, got A {tuple(A.shape)} and B {tuple(B.shape)}"
        )
    QA = _orthonormalise(A, "A")
    QB = _orthonormalise(B, "B")
    s = torch.linalg.svdvals(QA.T @ QB)  # descending
    return s.clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------- random
def random_subspace(d: int, m: int, *, random_state: Any = 0, input_shape: Sequence[int] | None = None) -> Subspace:
    """A uniformly random (Haar) m-dimensional subspace of R^d (kind "random": the baseline of Fig. 7a/7b).

    The basis is the QR factor of a (d, m) standard Gaussian matrix with the signs of ``R``'s
    diagonal moved into ``Q`` (``Q ← Q·sign(diag R)``), which makes ``Q`` exactly Haar distributed
    and the result unique for a given ``random_state``.

    Parameters
    ----------
    d : int ≥ 1, m : int in [1, d]
    random_state : int or torch.Generator
    input_shape : (C, H, W) with C·H·W = d, optional — lets :meth:`Subspace.images` reshape

    Returns
    -------
    Subspace — ``basis`` (d, m) float64 orthonormal; ``spectrum``, ``curvatures`` and ``kappas`` NaN
    (``spectrum_kind="none"``); ``solver="qr"``.

    Raises
    ------
    InvalidInputError
        d < 1, m outside [1, d], bad random_state, ``input_shape`` that does not multiply to d.
    """
    d = _positive_int(d, "d")
    m = _positive_int(m, "m", upper=d)
    shape: tuple[int, int, int] | None = None
    if input_shape is not None:
        dims = tuple(int(s) for s in input_shape)
        if len(dims) != 3 or math.prod(dims) != d:
            raise InvalidInputError(f"input_shape must be (C, H, W) with C·H·W = {d}, got {tuple(input_shape)}")
        shape = (dims[0], dims[1], dims[2])
    G = torch.randn(d, m, generator=_generator(random_state), dtype=torch.float64)
    Q, R = torch.linalg.qr(G, mode="reduced")
    signs = torch.sign(torch.diagonal(R))
    signs[signs == 0] = 1.0
    nan = torch.full((m,), float("nan"), dtype=torch.float64)
    return Subspace(
        basis=Q * signs,
        spectrum=nan,
        spectrum_kind="none",
        curvatures=nan.clone(),
        kappas=nan.clone(),
        asymmetry=float("nan"),
        kind="random",
        solver="qr",
        input_shape=shape,
    )


@dataclass(frozen=True)
class RandomBaseline:
    """Cosines of principal angles between two random subspaces (Fig. 10 baseline).

    Attributes
    ----------
    mean : (k,) float64 — mean over samples of the i-th largest cosine, k = min(p, q)
    std : (k,) float64 — standard deviation over samples (unbiased; 0 for one sample)
    samples : (n_samples, k) float64 — every sample's descending cosines
    d, p, q : int — ambient dimension and the two subspace dimensions
    edge : float — the large-d scale ``√(p/d) + √(q/d)`` of the largest cosine (capped at 1)
    """

    mean: torch.Tensor
    std: torch.Tensor
    samples: torch.Tensor
    d: int
    p: int
    q: int
    edge: float


def random_baseline(d: int, p: int, q: int, *, n_samples: int = 20, random_state: Any = 0) -> RandomBaseline:
    """The cosines expected between a random p-dimensional and a random q-dimensional subspace of R^d.

    Each sample draws two independent Haar subspaces (QR of Gaussian matrices, as
    :func:`random_subspace`'s basis, batched) and computes their :func:`principal_angles`. For ``p, q ≪ d`` the largest cosine is close to
    ``√(p/d) + √(q/d)`` (slightly below for small p, q) and for ``p = 1`` the mean squared cosine
    is exactly ``q/d`` (see the module docstring for what the tests verify).

    Parameters
    ----------
    d : int — ambient dimension; p, q : int in [1, d] — the two dimensions
    n_samples : int ≥ 1 — number of independent pairs
    random_state : int or torch.Generator

    Returns
    -------
    RandomBaseline (mean, std, samples (n_samples, min(p, q)), d, p, q, edge)

    Raises
    ------
    InvalidInputError
        non-positive sizes, p or q > d, bad random_state.
    """
    d = _positive_int(d, "d")
    p = _positive_int(p, "p", upper=d)
    q = _positive_int(q, "q", upper=d)
    n_samples = _positive_int(n_samples, "n_samples")
    gen = _generator(random_state)
    rows = []
    # batched QR in chunks of ≤ 4M entries (column signs do not change the singular values)
    chunk = max(1, 4_000_000 // (d * max(p, q)))
    for s in range(0, n_samples, chunk):
        k = min(chunk, n_samples - s)
        QA = torch.linalg.qr(torch.randn(k, d, p, generator=gen, dtype=torch.float64)).Q
        QB = torch.linalg.qr(torch.randn(k, d, q, generator=gen, dtype=torch.float64)).Q
        rows.append(torch.linalg.svdvals(QA.transpose(1, 2) @ QB).clamp(0.0, 1.0))
    samples = torch.cat(rows)
    std = samples.std(0, unbiased=True) if n_samples > 1 else torch.zeros(samples.shape[1], dtype=torch.float64)
    edge = min(1.0, float(np.sqrt(p / d) + np.sqrt(q / d)))
    return RandomBaseline(mean=samples.mean(0), std=std, samples=samples, d=d, p=p, q=q, edge=edge)
