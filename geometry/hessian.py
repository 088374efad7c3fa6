"""The boundary function ``F`` and its Hessian-vector products, batched over boundary points.

For a point ``x`` with label ``k_hat`` and DeepFool label ``j`` the *boundary function* is

    ``F(y) = f_j(y) − f_k_hat(y)``        (DESIGN §4 "Boundary function")

so ``F(x) < 0``, ``F(z) ≈ 0`` at the boundary point ``z = x + r(x)`` and ``F > 0`` on the other
side. Its gradient ``∇F(z)`` gives the unit normal ``n = ∇F(z)/‖∇F(z)‖`` (pointing away from
``x``'s class) and its Hessian ``H_z`` the curvature of the boundary: along a tangent direction
``v``, ``vᵀ H_z v > 0`` means the other class wraps around ``x`` (*positive* curvature, paper
Fig. 3 left, DESIGN §4 "Curvature sign").

Three ways to multiply ``H_z`` by a vector (``method``):

``"finite_difference"`` (default, the authors' choice)
    Central differences of gradients at scale ``h`` (pixel units)::

        H v ≈ (∇F(z + h v̂) − ∇F(z − h v̂)) / (2h) · ‖v‖,   v̂ = v/‖v‖.

    This is *curvature at scale h*: the average change of the normal over a window of
    half-width ``h`` pixels around ``z``. It is positively homogeneous in ``v`` but, for a real
    network, neither linear nor symmetric (DESIGN §4 pitfalls: relative asymmetry 0.3–1.6 at the
    authors' ``h``). Default ``h = 10·√d·(bounds range)/512`` (:func:`default_h`: ≈ 0.55 for MNIST,
    ≈ 1.08 for CIFAR-10, ≈ 0.16 for 8×8 digits). Points ``z ± h v̂`` are *not* clipped to the
    pixel bounds (neither did the authors).
``"exact"``
    The exact Hessian-vector product by automatic differentiation: forward-over-reverse
    (``torch.func.jvp`` of ``torch.func.grad``), falling back to reverse-over-reverse (double
    backward) when an operator has no forward-mode derivative. Meaningful for *smooth* networks
    (softplus, GELU, tanh, …). **For a piecewise-linear network (ReLU, max-pool) the exact input
    Hessian is zero almost everywhere**: F is affine on each linear region, so the exact HVP is 0
    and all curvature sits on the region boundaries, which only a finite scale sees.
``"smoothed"``
    The exact HVP of a *smooth twin*: a deep copy of ``clf.network`` (same weights, the
    classifier is never mutated) in which every ``nn.ReLU`` *module* is replaced by
    ``softplus(β·)/β`` (``nn.Softplus(beta=β)``). ``softplus(βt)/β → ReLU(t)`` as ``β → ∞``; it
    differs from ReLU by at most ``log 2/β`` and bends over a width ≈ ``1/β`` in *pre-activation*
    units, so ``β`` plays the role of an inverse scale, like ``1/h``. The result is a genuine
    (linear, symmetric) Hessian. Limits: functional ``F.relu`` / ``torch.relu`` calls inside
    ``forward`` and TorchScript / exported graphs cannot be swapped (a network without any
    ``nn.ReLU`` module raises :class:`~geometry.errors.InvalidInputError`); max-pool kinks remain.
    With this method ``F``, ``∇F`` (hence the normals) and ``H`` are all the twin's.

Every result records the method and its scale (``h`` for finite differences, ``beta`` for the
smoothed twin).

References: Moosavi-Dezfooli, Fawzi, Fawzi, Frossard, Soatto, "Robustness of classifiers to
universal perturbations: a geometric perspective", ICLR 2018, §4–5; DESIGN §4.
"""

from __future__ import annotations

import copy
import math
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .classifier import Classifier, check_images
from .errors import AtlasError, InvalidInputError
from .validation import BoundaryPoint, CurvatureMethod

__all__ = [
    "METHODS",
    "POINTS",
    "CurvatureEstimator",
    "as_estimator",
    "exact_hvp",
    "LanczosResult",
    "lanczos_top",
    "default_h",
    "default_beta",
    "default_chunk_size",
    "boundary_function",
    "BoundaryGradient",
    "boundary_gradient",
    "BoundaryOperator",
    "boundary_operator",
    "HVPResult",
    "hvp",
    "second_difference",
    "smooth_twin",
]

METHODS = ("finite_difference", "exact", "smoothed")
#: Where the Hessian is taken: ``z = x + r(x)`` ("boundary") or ``x + 0.8·r(x)`` ("inside", the authors' code).
POINTS = ("boundary", "inside")


# ---------------------------------------------------------------------------------------- scales
def default_h(clf: Classifier) -> float:
    """The authors' finite-difference scale ``h = 10·√d·(bounds range)/512`` in pixel units.

    ≈ 0.55 for MNIST (d = 784), ≈ 1.08 for CIFAR-10 (d = 3072), ≈ 0.16 for 8×8 digits (d = 64),
    with pixels in [0, 1]. Source: the authors' code for ICLR 2018 §5 (DESIGN §4).
    """
    return 10.0 * math.sqrt(clf.d) * clf.bounds_range / 512.0


def default_chunk_size(d: int) -> int:
    """(point, direction) pairs per batched network call: ``clamp(2**22 // d, 1, 256)``.

    Bounds the batched inputs to ≈ 4 M numbers (×2 for finite differences), so that memory does
    not grow with the input size: 256 pairs up to d = 16 384 (CIFAR), 27 at 3×224×224.
    """
    return int(max(1, min(256, 2**22 // max(1, int(d)))))


def default_beta(clf: Classifier) -> float:
    """Default sharpness of the smooth twin: ``β = 10 / (bounds range)`` (10 for pixels in [0, 1]).

    ``softplus(βt)/β`` bends over ≈ ``1/β`` = 0.1 pre-activation units. A heuristic, not a value
    from the paper: sweep ``β`` to see how the curvature depends on the scale.
    """
    return 10.0 / clf.bounds_range


# ---------------------------------------------------------------------------------------- the estimator
def _positive(value: object, name: str, unit: str = "") -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a positive finite number{unit}, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise InvalidInputError(f"{name} must be a positive finite number{unit}, got {v}")
    return v


@dataclass(frozen=True)
class CurvatureEstimator:
    """How the curvature of the boundary is estimated: one frozen value instead of a clump of arguments.

    Every function that applies ``H_z`` (:func:`boundary_operator`, :func:`hvp`,
    :func:`geometry.curvature.curved_subspace`, :func:`~geometry.curvature.curvature_along`,
    :func:`~geometry.curvature.average_curvature`, the studies) takes one of these. Scales left at
    ``None`` mean "the default for this network"; :meth:`resolve` fills them in — the *only* place
    where the default ``h`` (:func:`default_h`), ``beta`` (:func:`default_beta`) and chunk size
    (:func:`default_chunk_size`) are applied.

    Attributes
    ----------
    method : {"finite_difference", "exact", "smoothed"} — how ``H v`` is computed (module docstring)
    h : float or None — finite-difference scale, pixel units (kept only for finite_difference;
        ``None`` = :func:`default_h`)
    beta : float or None — softplus sharpness of the smooth twin (kept only for smoothed;
        ``None`` = :func:`default_beta`)
    point : {"boundary", "inside"} — the Hessian at ``z = x + r(x)`` or at ``x + 0.8·r(x)`` (the
        authors' code)
    tangent : bool — S_c averages the tangent-projected ``P_i H_i P_i`` (True, the paper) or ``H_i``
    chunk_size : int or None — (point, direction) pairs per batched network call (``None`` =
        :func:`default_chunk_size`); bounds memory, does not define the result

    Raises
    ------
    InvalidInputError
        unknown method or point; non-positive or non-finite h / beta (for the method that uses it).

    Source: ICLR 2018 §4–5 (curvature at scale h, S_c at boundary points); DESIGN §4.
    """

    method: CurvatureMethod = "finite_difference"
    h: float | None = None
    beta: float | None = None
    point: BoundaryPoint = "boundary"
    tangent: bool = True
    chunk_size: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidInputError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.point not in POINTS:
            raise InvalidInputError(f"point must be 'boundary' or 'inside', got {self.point!r}")
        h = beta = None
        if self.method == "finite_difference" and self.h is not None:
            h = _positive(self.h, "h", " (pixel units)")
        if self.method == "smoothed" and self.beta is not None:
            beta = _positive(self.beta, "beta")
        object.__setattr__(self, "h", h)  # a scale the method does not use is dropped: equal estimators, equal keys
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "tangent", bool(self.tangent))
        if self.chunk_size is not None:
            object.__setattr__(self, "chunk_size", max(1, int(self.chunk_size)))

    @property
    def is_resolved(self) -> bool:
        """Whether the method's scale (and the chunk size) are set."""
        scale_set = {"finite_difference": self.h is not None, "smoothed": self.beta is not None}.get(self.method, True)
        return scale_set and self.chunk_size is not None

    def resolve(self, clf: Classifier) -> CurvatureEstimator:
        """This estimator with the defaults of ``clf`` filled in (``h``, ``beta``, ``chunk_size``).

        The one place where the defaults are applied: ``h = 10·√d·(bounds range)/512``
        (:func:`default_h`) for finite differences, ``β = 10/(bounds range)`` (:func:`default_beta`)
        for the smoothed twin, ``chunk_size = clamp(2**22 // d, 1, 256)``. Idempotent.
        """
        return replace(
            self,
            h=default_h(clf) if self.method == "finite_difference" and self.h is None else self.h,
            beta=default_beta(clf) if self.method == "smoothed" and self.beta is None else self.beta,
            chunk_size=default_chunk_size(clf.d) if self.chunk_size is None else self.chunk_size,
        )

    @property
    def scale(self) -> float | None:
        """``h`` for finite differences, ``beta`` for the smoothed twin, ``None`` for exact."""
        return self.h if self.method == "finite_difference" else self.beta

    def key(self) -> dict[str, Any]:
        """JSON-able description for cache keys: method, h, beta (as ``repr``), point, tangent
        (not the chunk size, which does not define the result). Resolve first."""
        return {
            "method": self.method,
            "h": repr(self.h),
            "beta": repr(self.beta),
            "point": self.point,
            "tangent": self.tangent,
        }

    def describe(self) -> str:
        """One line for figures and logs, e.g. ``"finite differences, h = 0.156"``."""
        if self.method == "finite_difference":
            return "finite differences, h = " + ("default" if self.h is None else f"{self.h:.3g}")
        if self.method == "smoothed":
            return "smoothed twin, β = " + ("default" if self.beta is None else f"{self.beta:.3g}")
        return "exact Hessian"


def as_estimator(
    estimator: CurvatureEstimator | None = None,
    *,
    method: CurvatureMethod | None = None,
    h: float | None = None,
    beta: float | None = None,
    point: BoundaryPoint | None = None,
    tangent: bool | None = None,
    chunk_size: int | None = None,
) -> CurvatureEstimator:
    """``estimator``, or one built from the loose keywords of the public functions (never both).

    The thin keyword path kept by :func:`hvp`, :func:`boundary_operator` and the public functions of
    :mod:`geometry.curvature` (``method=``, ``h=``, ...): unset keywords take the
    :class:`CurvatureEstimator` defaults. Not resolved (see :meth:`CurvatureEstimator.resolve`).

    Raises
    ------
    InvalidInputError
        both ``estimator`` and a keyword given; invalid settings (as :class:`CurvatureEstimator`).
    """
    loose = {"method": method, "h": h, "beta": beta, "point": point, "tangent": tangent, "chunk_size": chunk_size}
    given = {k: v for k, v in loose.items() if v is not None}
    if estimator is not None:
        if given:
            raise InvalidInputError(f"pass either estimator= or the keywords {sorted(given)}, not both")
        if not isinstance(estimator, CurvatureEstimator):
            raise InvalidInputError(f"estimator must be a CurvatureEstimator, got {type(estimator).__name__}")
        return estimator
    return CurvatureEstimator(**given)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- helpers
def _as_labels(labels: Any, n: int, num_classes: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(labels)
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,) or t.is_floating_point() or t.is_complex():
        raise InvalidInputError(f"{name} must be an integer tensor of shape ({n},), got {tuple(t.shape)} {t.dtype}")
    t = t.to(torch.long).cpu()
    if n and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise InvalidInputError(
            f"{name} must lie in [0, {num_classes}), got values in [{int(t.min())}, {int(t.max())}]"
        )
    return t


def _check_pair(
    clf: Classifier, x: Any, labels: Any, adv_labels: Any, name: str = "z"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = check_images(x, clf.input_shape, allow_single=True, name=name)
    n = len(x)
    lab = _as_labels(labels, n, clf.num_classes, "labels")
    adv = _as_labels(adv_labels, n, clf.num_classes, "adv_labels")
    same = lab == adv
    if bool(same.any()):
        raise InvalidInputError(
            f"adv_labels must differ from labels (F = f_adv − f_label would be 0): "
            f"{int(same.sum())} of {n} points have adv_label == label"
        )
    return x, lab, adv


def _F_of(network: nn.Module, x: torch.Tensor, labels: torch.Tensor, adv_labels: torch.Tensor) -> torch.Tensor:
    out = network(x)
    return out.gather(1, adv_labels[:, None]).squeeze(1) - out.gather(1, labels[:, None]).squeeze(1)


def _grad_F(
    network: nn.Module, x: torch.Tensor, labels: torch.Tensor, adv_labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(F (P,), ∇F (P, *shape)) of a batch, one forward + one backward, detached."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        F = _F_of(network, xg, labels, adv_labels)
        if F.requires_grad:
            (g,) = torch.autograd.grad(F.sum(), xg, allow_unused=True)
            if g is None:
                g = torch.zeros_like(xg)
        else:  # F does not depend on x at all
            g = torch.zeros_like(xg)
    return F.detach(), g.detach()


def _unit(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row norms (P,) and unit rows (zero rows stay zero)."""
    nrm = u.norm(dim=1)
    safe = torch.where(nrm > 0, nrm, torch.ones_like(nrm))
    return nrm, u / safe[:, None]


# ---------------------------------------------------------------------------------------- smooth twin
_TWIN_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[float, nn.Module]] = weakref.WeakKeyDictionary()


def _swap_relu(module: nn.Module, beta: float) -> int:
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.Softplus(beta=beta, threshold=20.0))
            count += 1
        else:
            count += _swap_relu(child, beta)
    return count


def smooth_twin(network: nn.Module, beta: float) -> nn.Module:
    """A deep copy of ``network`` with every ``nn.ReLU`` module replaced by ``softplus(β·)/β``.

    The weights are the same (copied), ``network`` itself is never modified. The twin is cached
    per (network, β) for the lifetime of ``network``.

    Parameters
    ----------
    network : nn.Module
        Pixels → logits (e.g. ``clf.network``).
    beta : float > 0
        Sharpness; ``softplus(βt)/β → ReLU(t)`` as β → ∞, smoothing width ≈ 1/β pre-activation units.

    Raises
    ------
    InvalidInputError
        β not positive and finite; ``network`` is TorchScript; no ``nn.ReLU`` module was found
        (functional ``F.relu`` calls cannot be swapped — use ``method="finite_difference"``, or
        ``"exact"`` for a network that is already smooth).
    """
    beta = float(beta)
    if not (math.isfinite(beta) and beta > 0):
        raise InvalidInputError(f"beta must be a positive finite number, got {beta}")
    cached = _TWIN_CACHE.get(network, {}).get(beta)
    if cached is not None:
        return cached
    if isinstance(network, torch.jit.ScriptModule):
        raise InvalidInputError(
            "method='smoothed' swaps nn.ReLU modules, which is impossible in a TorchScript model; "
            "use method='finite_difference'"
        )
    twin = copy.deepcopy(network)
    if isinstance(twin, nn.ReLU):
        raise InvalidInputError("the network is a bare nn.ReLU; nothing to smooth")
    n_swapped = _swap_relu(twin, beta)
    if n_swapped == 0:
        raise InvalidInputError(
            "method='smoothed' replaces nn.ReLU modules by softplus(beta·)/beta, but the network has no "
            "nn.ReLU module (functional F.relu / torch.relu calls and exported graphs cannot be swapped); "
            "use method='finite_difference', or method='exact' if the network is already smooth"
        )
    twin.eval()
    twin.requires_grad_(False)
    _TWIN_CACHE.setdefault(network, {})[beta] = twin
    return twin


# ---------------------------------------------------------------------------------------- F and ∇F
@torch.no_grad()
def boundary_function(clf: Classifier, x: torch.Tensor, labels: Any, adv_labels: Any) -> torch.Tensor:
    """Boundary function ``F(x_i) = f_{adv_i}(x_i) − f_{label_i}(x_i)`` of a batch, per sample.

    Parameters
    ----------
    clf : Classifier
    x : (N, C, H, W) or (C, H, W) tensor, pixel space
    labels : (N,) int — ``k_hat`` of the original points
    adv_labels : (N,) int — DeepFool labels ``j`` (≠ labels)

    Returns
    -------
    (N,) tensor in ``clf.dtype``, on the device of ``x`` — logit units; < 0 on ``x``'s side, ≈ 0
    on the boundary. Computed on the classifier's device.

    Raises
    ------
    InvalidInputError
        wrong shapes, NaN inputs, labels out of range or equal to ``adv_labels``.

    Source: ICLR 2018 §4 (``F = f_j − f_k̂``), DESIGN §4 "Boundary function".
    """
    x, lab, adv = _check_pair(clf, x, labels, adv_labels, name="x")
    dev = clf.device
    return _F_of(clf.network, x.to(device=dev, dtype=clf.dtype), lab.to(dev), adv.to(dev)).to(x.device)


@dataclass(frozen=True)
class BoundaryGradient:
    """Value, gradient and unit normal of ``F`` at a batch of points.

    Attributes
    ----------
    F : (N,) — logit units
    grad : (N, C, H, W) — ``∇F``, logit units per pixel unit
    grad_norm : (N,) — ``‖∇F‖₂``
    normal : (N, C, H, W) — ``∇F/‖∇F‖`` (zero where ``∇F = 0``); points into the ``adv_label`` side
    """

    F: torch.Tensor
    grad: torch.Tensor
    grad_norm: torch.Tensor
    normal: torch.Tensor


def boundary_gradient(clf: Classifier, x: torch.Tensor, labels: Any, adv_labels: Any) -> BoundaryGradient:
    """``F``, ``∇F`` and the unit normal at a batch of points (one forward, one backward).

    Parameters and errors as :func:`boundary_function`. ``x`` is not modified.
    """
    x, lab, adv = _check_pair(clf, x, labels, adv_labels, name="x")
    dev = clf.device
    F, g = _grad_F(clf.network, x.to(device=dev, dtype=clf.dtype), lab.to(dev), adv.to(dev))
    F, g = F.to(x.device), g.to(x.device)  # results where the caller's points were
    nrm, unit = _unit(g.flatten(1))
    return BoundaryGradient(F=F, grad=g, grad_norm=nrm, normal=unit.reshape(g.shape))


# ---------------------------------------------------------------------------------------- one HVP, one eigen-solver
def exact_hvp(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    v: torch.Tensor,
    *,
    mode: Literal["auto", "reverse"] = "auto",
) -> torch.Tensor:
    """Exact Hessian-vector product ``∇²f(x) v`` of a scalar function by automatic differentiation.

    The one HVP of the package: the boundary operator's exact / smoothed products and the loss
    Hessian of :mod:`geometry.profile` both go through it. For a batch, let ``f`` return the *sum*
    of independent per-sample values (then row i of the result is ``H_i v_i``).

    Parameters
    ----------
    f : callable, tensor shaped like ``x`` → scalar tensor
    x : tensor — the point (any shape); not modified
    v : tensor, shape of ``x`` — the direction
    mode : "auto" — forward-over-reverse (``torch.func.jvp`` of ``torch.func.grad``), falling back
        to reverse-over-reverse (double backward) when an operator has no forward-mode derivative;
        "reverse" — reverse-over-reverse only

    Returns
    -------
    tensor, shape and dtype of ``x``, detached — zeros where ``f`` does not depend on ``x``.

    Source: Pearlmutter (1994), "Fast exact multiplication by the Hessian"; DESIGN §4
    "Hessian-vector products".
    """
    if mode == "auto":
        try:
            with warnings.catch_warnings():
                # forward AD loads its decompositions through torch.jit.script once (a FutureWarning)
                warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
                # jvp is typed as returning a 2- or 3-tuple (has_aux); without aux it is (out, tangent)
                hv = torch.func.jvp(torch.func.grad(f), (x,), (v,))[1]
            return hv.detach()
        except (RuntimeError, NotImplementedError):  # no forward-mode rule: reverse-over-reverse
            pass
    elif mode != "reverse":
        raise InvalidInputError(f"mode must be 'auto' or 'reverse', got {mode!r}")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        y = f(xg)
        if not y.requires_grad:
            return torch.zeros_like(x)
        (g,) = torch.autograd.grad(y, xg, create_graph=True, allow_unused=True)
        if g is None or not g.requires_grad:
            return torch.zeros_like(x)
        (hv,) = torch.autograd.grad((g * v).sum(), xg, allow_unused=True)
    return torch.zeros_like(x) if hv is None else hv.detach()


class LanczosBreakdown(AtlasError):
    """ARPACK stopped with an error (not a mere lack of convergence), e.g. on a vanishing operator."""

    def __init__(self, message: str, n_apply: int) -> None:
        super().__init__(message)
        self.n_apply = n_apply


@dataclass(frozen=True)
class LanczosResult:
    """Output of :func:`lanczos_top`.

    Attributes
    ----------
    values : (k,) float64 ndarray — Ritz values in ARPACK's order (not sorted)
    vectors : (d, k) float64 ndarray or None — Ritz vectors (columns), None without eigenvectors
    n_apply : int — operator applications (one direction each)
    converged : bool — False when ARPACK stopped early but had already converged ≥ k pairs
    """

    values: np.ndarray
    vectors: np.ndarray | None
    n_apply: int
    converged: bool


def lanczos_top(
    apply: Callable[[torch.Tensor], torch.Tensor],
    d: int,
    k: int,
    *,
    which: Literal["LA", "LM", "SA"] = "LA",
    v0: np.ndarray,
    tol: float = 0.0,
    maxiter: int | None = None,
    ncv: int | None = None,
    return_eigenvectors: bool = True,
    on_apply: Callable[[int], None] | None = None,
) -> LanczosResult:
    """``k`` extreme eigenpairs of a symmetric matrix-free operator by Lanczos (``scipy.sparse.linalg.eigsh``).

    The one eigen-solver seam: S_c (:func:`geometry.curvature.curved_subspace`, one process or
    sharded) and the loss-curvature profile (:func:`geometry.profile.hessian_top_eigenvalues`) call
    it. ARPACK lives in NumPy on the host: each application sends ``d`` numbers each way; the work
    inside ``apply`` stays where the caller put it.

    Parameters
    ----------
    apply : callable, (1, d) float64 CPU tensor (one direction per row) → (1, d) tensor (any
        dtype or device; converted to float64 on the host)
    d : int — dimension; k : int — number of eigenpairs, 1 ≤ k < d
    which : "LA" (largest algebraic, S_c), "LM" (largest magnitude, the profile) or "SA"
    v0 : (d,) float64 ndarray — start vector (makes the run reproducible)
    tol, maxiter, ncv : passed to ``eigsh`` (tol 0 = machine precision)
    return_eigenvectors : bool
    on_apply : callable(number of applications so far), optional — after every application

    Returns
    -------
    LanczosResult

    Raises
    ------
    AtlasError
        ARPACK converged to fewer than k pairs.
    LanczosBreakdown
        ARPACK failed (its error and the applications so far attached); e.g. a vanishing operator.

    Source: Lehoucq, Sorensen & Yang, "ARPACK Users' Guide" (1998), implicitly restarted Lanczos.
    """
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

    count = [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        v_t = torch.from_numpy(np.ascontiguousarray(np.asarray(v, dtype=np.float64).reshape(-1)))
        out = apply(v_t[None])[0].double().cpu().numpy()
        count[0] += 1
        if on_apply is not None:
            on_apply(count[0])
        return out

    lin = LinearOperator((d, d), matvec=matvec, dtype=np.float64)
    try:
        found = eigsh(
            lin, k=k, which=which, v0=v0, tol=tol, maxiter=maxiter, ncv=ncv, return_eigenvectors=return_eigenvectors
        )
    except ArpackNoConvergence as exc:
        if exc.eigenvalues is not None and len(exc.eigenvalues) >= k:
            vecs = exc.eigenvectors if return_eigenvectors else None
            return LanczosResult(np.asarray(exc.eigenvalues), vecs, count[0], False)
        got = 0 if exc.eigenvalues is None else len(exc.eigenvalues)
        raise AtlasError(
            f"eigsh converged to {got} of the m={k} requested eigenpairs after {count[0]} "
            f"operator applications; try a larger tol (now {tol}), a smaller m, or a larger ncv"
        ) from exc
    except ArpackError as exc:
        raise LanczosBreakdown(f"eigsh failed ({exc}) after {count[0]} operator applications", count[0]) from exc
    if return_eigenvectors:
        values, vectors = found
        return LanczosResult(np.asarray(values), np.asarray(vectors), count[0], True)
    return LanczosResult(np.asarray(found), None, count[0], True)


# ---------------------------------------------------------------------------------------- operator
@dataclass(frozen=True, eq=False)
class BoundaryOperator:
    """Hessian of ``F`` at a fixed batch of boundary points, as a batched matrix-free operator.

    Build it with :func:`boundary_operator`. All vectors are *flattened*: ``(P, d)`` rows, each
    paired with a point by ``index`` (P,) (default: row ``i`` ↔ point ``i``). Work is chunked in
    ``chunk_size`` rows to bound memory (O(chunk_size · d) plus the network's activations).

    Device: ``z``, the labels and every result live on the network's device (the classifier's);
    directions and indices given elsewhere are moved there once per call, never per chunk.

    Attributes
    ----------
    network : nn.Module — the network differentiated (``clf.network`` or its smooth twin)
    z : (N, C, H, W) — the points, in the network's dtype and on its device
    labels, adv_labels : (N,) int64, on the network's device
    estimator : CurvatureEstimator — resolved (:meth:`CurvatureEstimator.resolve`); ``method``,
        ``h`` (pixel units, ``None`` unless finite_difference), ``beta`` (``None`` unless smoothed)
        and ``chunk_size`` are read from it
    input_shape : (C, H, W)
    """

    network: nn.Module
    z: torch.Tensor
    labels: torch.Tensor
    adv_labels: torch.Tensor
    estimator: CurvatureEstimator
    input_shape: tuple[int, int, int]

    @property
    def method(self) -> CurvatureMethod:
        return self.estimator.method

    @property
    def h(self) -> float | None:
        return self.estimator.h

    @property
    def beta(self) -> float | None:
        return self.estimator.beta

    @property
    def chunk_size(self) -> int:
        return int(self.estimator.chunk_size or 1)

    @property
    def n(self) -> int:
        return len(self.z)

    @property
    def d(self) -> int:
        return int(self.z[0].numel()) if len(self.z) else int(math.prod(self.input_shape))

    @property
    def dtype(self) -> torch.dtype:
        return self.z.dtype

    @property
    def scale(self) -> float | None:
        """``h`` for finite differences, ``beta`` for the smoothed twin, ``None`` for exact."""
        return self.h if self.method == "finite_difference" else self.beta

    # -------------------------------------------------------------- internals
    def _prep(self, u: torch.Tensor, index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.as_tensor(u)
        if u.dim() != 2 or u.shape[1] != self.d:
            raise InvalidInputError(f"directions must have shape (P, {self.d}), got {tuple(u.shape)}")
        if index is None:
            if len(u) != self.n:
                raise InvalidInputError(f"without index, directions need one row per point ({self.n}), got {len(u)}")
            index = torch.arange(self.n, device=self.z.device)
        index = torch.as_tensor(index, dtype=torch.long).to(self.z.device)
        if index.shape != (len(u),):
            raise InvalidInputError(f"index must have shape ({len(u)},), got {tuple(index.shape)}")
        return u.to(device=self.z.device, dtype=self.dtype), index

    def _chunks(self, P: int) -> Iterator[slice]:
        step = max(1, int(self.chunk_size))
        for s in range(0, P, step):
            yield slice(s, min(P, s + step))

    def _sub(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.z[idx], self.labels[idx], self.adv_labels[idx]  # idx, labels: on z's device

    def _exact_chunk(self, z: torch.Tensor, lab: torch.Tensor, adv: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        net = self.network

        def F_sum(x: torch.Tensor) -> torch.Tensor:
            return _F_of(net, x, lab, adv).sum()

        return exact_hvp(F_sum, z, u)

    # -------------------------------------------------------------- public
    def F(self, u: torch.Tensor | None = None, index: Any = None, *, step: float = 1.0) -> torch.Tensor:
        """``F(z_index + step·u)`` per row (P,); with ``u=None``, ``F(z)`` at every point (N,)."""
        with torch.no_grad():
            if u is None:
                out = []
                every = torch.arange(self.n, device=self.z.device)
                for sl in self._chunks(self.n):
                    z, lab, adv = self._sub(every[sl])
                    out.append(_F_of(self.network, z, lab, adv))
                return torch.cat(out) if out else torch.zeros(0, dtype=self.dtype, device=self.z.device)
            u, index = self._prep(u, index)
            out = []
            for sl in self._chunks(len(u)):
                z, lab, adv = self._sub(index[sl])
                x = z + step * u[sl].reshape(z.shape)
                out.append(_F_of(self.network, x, lab, adv))
            return torch.cat(out) if out else torch.zeros(0, dtype=self.dtype, device=self.z.device)

    def gradient(self) -> torch.Tensor:
        """``∇F(z_i)`` of every point, flattened (N, d)."""
        out = []
        every = torch.arange(self.n, device=self.z.device)
        for sl in self._chunks(self.n):
            z, lab, adv = self._sub(every[sl])
            out.append(_grad_F(self.network, z, lab, adv)[1].flatten(1))
        return torch.cat(out) if out else torch.zeros(0, self.d, dtype=self.dtype, device=self.z.device)

    def hvp(self, u: torch.Tensor, index: Any = None) -> torch.Tensor:
        """``H_{z_index} u`` per row, (P, d) in the operator's dtype.

        finite_difference: ``(∇F(z + h û) − ∇F(z − h û))/(2h)·‖u‖`` (2 gradients per row, one
        batched backward per chunk); exact / smoothed: forward-over-reverse autodiff.
        """
        u, index = self._prep(u, index)
        out = []
        for sl in self._chunks(len(u)):
            z, lab, adv = self._sub(index[sl])
            uc = u[sl]
            if self.method == "finite_difference":
                assert self.h is not None  # boundary_operator always sets h for finite_difference
                nrm, unit = _unit(uc)
                step = (self.h * unit).reshape(z.shape)
                x = torch.cat([z + step, z - step])
                _, g = _grad_F(self.network, x, torch.cat([lab, lab]), torch.cat([adv, adv]))
                g = g.flatten(1)
                k = len(uc)
                out.append((g[:k] - g[k:]) / (2.0 * self.h) * nrm[:, None])
            else:
                out.append(self._exact_chunk(z, lab, adv, uc.reshape(z.shape)).flatten(1))
        return torch.cat(out) if out else torch.zeros(0, self.d, dtype=self.dtype, device=self.z.device)

    def second_difference(self, u: torch.Tensor, index: Any = None, *, F0: torch.Tensor | None = None) -> torch.Tensor:
        """``(F(z + h û) − 2F(z) + F(z − h û)) / h² · ‖u‖²`` per row (P,): ``uᵀHu`` at scale ``h``.

        Re-evaluates the curvature along a direction from values of ``F`` only (2 forwards per row;
        ``F(z)`` shared). Symmetric in ``±u`` by construction. Requires ``method="finite_difference"``
        (``h`` set); for other methods use :meth:`quadratic_form`. ``F0`` (N,): precomputed
        ``F(z)`` of every point (:meth:`F`), to save N forwards when called repeatedly.
        """
        if self.h is None:
            raise InvalidInputError(f"second_difference needs a finite-difference scale h (method={self.method!r})")
        u, index = self._prep(u, index)
        nrm, unit = _unit(u)
        out = []
        F0_all = self.F() if F0 is None else torch.as_tensor(F0).to(self.z.device)
        with torch.no_grad():
            for sl in self._chunks(len(u)):
                z, lab, adv = self._sub(index[sl])
                step = (self.h * unit[sl]).reshape(z.shape)
                Fs = _F_of(self.network, torch.cat([z + step, z - step]), torch.cat([lab, lab]), torch.cat([adv, adv]))
                k = len(z)
                F0 = F0_all[index[sl]]
                out.append((Fs[:k] - 2.0 * F0 + Fs[k:]) / self.h**2 * nrm[sl] ** 2)
        return torch.cat(out) if out else torch.zeros(0, dtype=self.dtype, device=self.z.device)

    def quadratic_form(self, u: torch.Tensor, index: Any = None, *, F0: torch.Tensor | None = None) -> torch.Tensor:
        """``uᵀ H u`` per row (P,): the second difference of ``F`` for finite_difference (``F0`` as in
        :meth:`second_difference`), the exact quadratic form ``uᵀ(Hu)`` for exact / smoothed."""
        if self.method == "finite_difference":
            return self.second_difference(u, index, F0=F0)
        u2, index = self._prep(u, index)
        return (u2 * self.hvp(u2, index)).sum(1)


def boundary_operator(
    clf: Classifier,
    z: torch.Tensor,
    labels: Any,
    adv_labels: Any,
    *,
    estimator: CurvatureEstimator | None = None,
    method: CurvatureMethod | None = None,
    h: float | None = None,
    beta: float | None = None,
    chunk_size: int | None = None,
) -> BoundaryOperator:
    """The Hessian of ``F = f_adv − f_label`` at the points ``z`` as a :class:`BoundaryOperator`.

    Parameters
    ----------
    clf : Classifier
    z : (N, C, H, W) — points (usually boundary points ``x + r(x)``), pixel space; not modified
    labels, adv_labels : (N,) int — ``k_hat(x)`` and the DeepFool label ``j`` (must differ)
    estimator : CurvatureEstimator, optional — how ``H v`` is computed (default: finite differences
        at :func:`default_h`); resolved here (:meth:`CurvatureEstimator.resolve`)
    method, h, beta, chunk_size : the same as loose keywords (:func:`as_estimator`; not together
        with ``estimator``)

    Raises
    ------
    InvalidInputError
        bad shapes / labels, unknown method, non-positive h or beta, or (smoothed) no ``nn.ReLU``
        module to swap.
    """
    z, lab, adv = _check_pair(clf, z, labels, adv_labels)
    est = as_estimator(estimator, method=method, h=h, beta=beta, chunk_size=chunk_size).resolve(clf)
    network = clf.network
    dev = clf.device  # the API boundary: points and labels move to the network's device once
    if est.method == "smoothed":
        assert est.beta is not None  # resolve() always sets beta for "smoothed"
        network = smooth_twin(clf.network, est.beta)
    return BoundaryOperator(
        network=network,
        z=z.detach().to(device=dev, dtype=clf.dtype).clone(),
        labels=lab.to(dev),
        adv_labels=adv.to(dev),
        estimator=est,
        input_shape=tuple(clf.input_shape),  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------- one-shot API
@dataclass(frozen=True)
class HVPResult:
    """Hessian-vector products of ``F`` at a batch of points.

    Attributes
    ----------
    hv : tensor, same shape as the ``v`` given — ``H_{z_i} v_i`` (logit units per pixel unit²
        times the units of v)
    method : str
    h : float or None — finite-difference scale (pixel units) when method is finite_difference
    beta : float or None — smooth-twin sharpness when method is smoothed
    n_hvp : int — number of (point, direction) products computed
    """

    hv: torch.Tensor
    method: str
    h: float | None
    beta: float | None
    n_hvp: int


def _directions(clf: Classifier, v: Any, n: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...], tuple[int, ...]]:
    """Flatten v of shape (N, *shape) / (N, d) / (N, K, *shape) / (N, K, d) into (P, d) + index.

    Also returns v's shape and its leading shape ((N,) or (N, K))."""
    v = torch.as_tensor(v)
    if not v.is_floating_point():
        raise InvalidInputError(f"v must be a floating-point tensor, got {v.dtype}")
    shape, d = tuple(clf.input_shape), clf.d
    if len(v) != n:
        raise InvalidInputError(f"v must have one entry per point ({n}) along dim 0, got shape {tuple(v.shape)}")
    rest = tuple(v.shape[1:])
    if rest in (shape, (d,)):
        return v.reshape(n, d), torch.arange(n), tuple(v.shape), (n,)
    if len(rest) >= 2 and rest[1:] in (shape, (d,)):
        k = rest[0]
        return v.reshape(n * k, d), torch.arange(n).repeat_interleave(k), tuple(v.shape), (n, k)
    raise InvalidInputError(
        f"v must have shape (N, {', '.join(map(str, shape))}), (N, {d}), or (N, K, …) of those; got {tuple(v.shape)}"
    )


def hvp(
    clf: Classifier,
    z: torch.Tensor,
    labels: Any,
    adv_labels: Any,
    v: torch.Tensor,
    *,
    estimator: CurvatureEstimator | None = None,
    method: CurvatureMethod | None = None,
    h: float | None = None,
    beta: float | None = None,
    chunk_size: int | None = None,
) -> HVPResult:
    """Hessian-vector products ``H_{z_i} v_i`` of the boundary function, batched over points.

    Parameters
    ----------
    clf : Classifier
    z : (N, C, H, W) — points (boundary points ``x + r(x)``), pixel space
    labels, adv_labels : (N,) int — ``k_hat`` and DeepFool label; ``F = f_adv − f_label``
    v : (N, C, H, W), (N, d), or (N, K, C, H, W) / (N, K, d) for K directions per point
    estimator : CurvatureEstimator, optional — method ("finite_difference", "exact", "smoothed";
        see the module docstring) and scale (``h`` default :func:`default_h`, ``beta`` default
        :func:`default_beta`); ``point`` / ``tangent`` do not apply here
    method, h, beta, chunk_size : the same as loose keywords (:func:`as_estimator`)

    Returns
    -------
    HVPResult
        ``hv`` has the shape of ``v``; ``method``, ``h``, ``beta`` record how it was computed.

    Raises
    ------
    InvalidInputError
        bad shapes / labels, unknown method, non-positive h / beta, no ``nn.ReLU`` to smooth.

    Notes
    -----
    The exact Hessian of a ReLU / max-pool network is zero almost everywhere: use
    ``"finite_difference"`` (curvature at scale ``h``) or ``"smoothed"`` (curvature of the
    softplus twin) for those. Source: ICLR 2018 §5; DESIGN §4 "Hessian-vector products".
    """
    est = as_estimator(estimator, method=method, h=h, beta=beta, chunk_size=chunk_size)
    op = boundary_operator(clf, z, labels, adv_labels, estimator=est)
    u, index, vshape, _ = _directions(clf, v, op.n)
    hv = op.hvp(u, index).to(torch.as_tensor(v).device)
    return HVPResult(hv=hv.reshape(vshape), method=op.method, h=op.h, beta=op.beta, n_hvp=len(u))


def second_difference(
    clf: Classifier,
    z: torch.Tensor,
    labels: Any,
    adv_labels: Any,
    v: torch.Tensor,
    *,
    h: float | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Curvature of ``F`` along ``v`` at scale ``h`` by re-evaluation: ``(F(z+hv̂) − 2F(z) + F(z−hv̂))/h² · ‖v‖²``.

    Parameters as :func:`hvp` (``v`` of shape (N, …) or (N, K, …)). Returns (N,) or (N, K), logit
    units times ``‖v‖²``; equals ``vᵀ H v`` exactly when ``F`` is quadratic. Source: DESIGN §4
    pitfalls (re-evaluate the curvature along returned directions).
    """
    est = CurvatureEstimator(method="finite_difference", h=h, chunk_size=chunk_size)
    op = boundary_operator(clf, z, labels, adv_labels, estimator=est)
    u, index, _, lead = _directions(clf, v, op.n)
    return op.second_difference(u, index).reshape(lead).to(torch.as_tensor(v).device)
