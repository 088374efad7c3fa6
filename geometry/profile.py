"""Curvature profiles of the loss in input space (CURE, CVPR 2019, Fig. 2; DESIGN §7).

The loss ``ℓ(x) = CE(f(x), y)`` is differentiated in pixel space. Two curvatures are offered, and
every result says which:

* **exact** — eigenvalues of the input Hessian ``∇²ₓ ℓ(x)`` by Lanczos (``scipy.sparse.linalg.eigsh``)
  on exact double-backprop Hessian-vector products, never forming the d×d matrix. For a ReLU
  network it is ``Jᵀ (diag p − p pᵀ) J`` almost everywhere (rank ≤ L − 1, positive semi-definite);
  its trace by Hutchinson's estimator ``E_v vᵀ H v`` (Rademacher v).
* **finite difference at scale h** — CURE's quantity ``‖∇ℓ(x + h z) − ∇ℓ(x)‖₂ / h`` with
  ``z = sign(∇ℓ)/‖sign(∇ℓ)‖`` (:func:`geometry.regimes.cure_penalty`), the curvature *at the
  attack's scale*; on confidently classified points the exact Hessian is dominated by
  ``diag p − p pᵀ ≈ 0`` and barely separates standard from robust networks (DESIGN §7).

The profile is the per-point eigenvalues sorted by decreasing magnitude, averaged over points with
the spread (CURE Fig. 2 draws the mean profile of 1000 points on a log scale).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .classifier import Classifier, check_images
from .errors import InvalidInputError
from .hessian import exact_hvp, lanczos_top
from .regimes import cure_penalty
from .validation import as_generator, check_int

__all__ = [
    "CurvatureProfile",
    "hessian_top_eigenvalues",
    "curvature_profile",
    "finite_difference_curvature",
    "loss_along",
]

PointLoss = Callable[[Tensor], Tensor]  # (n, ...) → (n,), samples independent


@dataclass(frozen=True)
class CurvatureProfile:
    """Eigenvalues of the input Hessian of the loss at N points (result of :func:`curvature_profile`).

    Attributes
    ----------
    eigenvalues : (N, k) float64 — per point, sorted by decreasing magnitude (1/pixel² units).
    mean, std, q25, q75 : (k,) float64 — the profile: mean of ``|eigenvalues|`` over points and spread.
    spectral_norm : (N,) float64 — ``‖H‖₂ = |eigenvalues[:, 0]|``.
    trace : (N,) float64 — Hutchinson estimate of ``tr H`` (``trace_samples`` Rademacher vectors).
    finite_difference : (N,) float64 — ``‖∇ℓ(x + h z) − ∇ℓ(x)‖₂ / h`` at ``h``.
    h : float — the finite-difference scale, pixel units.
    method : str — ``"exact (double backprop, Lanczos)"``.
    n_hvp : int — Hessian-vector products used by Lanczos.
    """

    eigenvalues: Tensor
    mean: Tensor
    std: Tensor
    q25: Tensor
    q75: Tensor
    spectral_norm: Tensor
    trace: Tensor
    finite_difference: Tensor
    h: float
    method: str
    n_hvp: int

    def __len__(self) -> int:
        return int(self.eigenvalues.shape[0])


def _hvp_batched(loss: PointLoss, x: Tensor, v: Tensor) -> Tensor:
    """``H_i v_i`` for every sample i of ``x`` (n, ...) at once (samples independent): double backprop
    (:func:`geometry.hessian.exact_hvp`, reverse-over-reverse)."""

    def total(t: Tensor) -> Tensor:
        return loss(t).sum()

    return exact_hvp(total, x, v, mode="reverse")


def hessian_top_eigenvalues(
    loss: PointLoss, x: Tensor, *, k: int = 10, tol: float = 1e-8, random_state: int = 0
) -> tuple[np.ndarray, int]:
    """Top-``k`` eigenvalues by magnitude of ``∇²ℓ`` at one point ``x`` (shape (1, ...)), by Lanczos.

    Returns ``(eigenvalues (k,) sorted by decreasing |λ|, number of HVPs)``. ``k`` is capped at d − 1
    (ARPACK's limit). The solver is :func:`geometry.hessian.lanczos_top` (``which="LM"``, start
    vector from ``random_state``), the one S_c uses; each product runs on ``x``'s device.

    Raises
    ------
    InvalidInputError
        d < 2.
    AtlasError
        Lanczos converged to fewer than k eigenvalues or failed.
    """
    d = x[0].numel()

    def apply(V: Tensor) -> Tensor:
        vt = V[0].reshape(x.shape).to(device=x.device, dtype=x.dtype)
        return _hvp_batched(loss, x, vt).reshape(1, -1)

    if d < 2:
        raise InvalidInputError(f"the Lanczos profile needs inputs of at least 2 values, got d = {d}")
    v0 = np.random.default_rng(random_state).standard_normal(d)
    found = lanczos_top(apply, d, min(k, d - 1), which="LM", tol=tol, v0=v0, return_eigenvectors=False)
    vals = np.asarray(found.values, dtype=np.float64)
    order = np.argsort(-np.abs(vals), kind="stable")
    return vals[order][:k], found.n_apply


def _hutchinson(loss: PointLoss, xs: Tensor, samples: int, gen: torch.Generator) -> Tensor:
    """Hutchinson's ``tr H ≈ mean_j v_jᵀ H v_j`` (Rademacher v_j), all points and vectors in one batch."""
    n = xs.shape[0]
    rep = xs.repeat_interleave(samples, dim=0)
    v = (torch.randint(0, 2, rep.shape, generator=gen) * 2 - 1).to(rep)  # drawn on the host: same on every device
    hv = _hvp_batched(loss, rep, v)
    return (hv * v).flatten(1).sum(1).reshape(n, samples).double().mean(1).cpu()


def _ce_loss(clf: Classifier, labels: Tensor) -> PointLoss:
    def loss(x: Tensor) -> Tensor:
        return F.cross_entropy(clf.network(x.to(clf.dtype)), labels[: x.shape[0]], reduction="none")

    return loss


def _labels(clf: Classifier, x: Tensor, labels: Any) -> Tensor:
    if labels is None:
        return clf.predict(x)  # on x's device
    y = torch.as_tensor(labels).long().reshape(-1)
    if y.shape[0] != x.shape[0]:
        raise InvalidInputError(f"labels must hold one label per image ({x.shape[0]}), got {y.shape[0]}")
    return y.to(x.device)


def finite_difference_curvature(clf: Classifier, xs: Tensor, labels: Any = None, *, h: float) -> Tensor:
    """CURE's curvature at scale ``h``: ``‖∇ℓ(x + h z) − ∇ℓ(x)‖₂ / h`` per point, (N,) float64.

    ``labels`` default to ``k_hat(x)``. References: CURE, CVPR 2019, Eq. (5)–(6).
    """
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach().to(clf.device)
    y = _labels(clf, x, labels)
    penalty, _ = cure_penalty(
        lambda t: F.cross_entropy(clf.network(t.to(clf.dtype)), y, reduction="none"), x.to(clf.dtype), h=float(h)
    )
    return (penalty.detach().double().sqrt() / float(h)).cpu()


def curvature_profile(
    clf: Classifier,
    xs: Tensor,
    labels: Any = None,
    *,
    k: int = 10,
    h: float = 0.5,
    trace_samples: int = 16,
    random_state: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> CurvatureProfile:
    """Curvature profile of ``ℓ(x) = CE(f(x), y)`` at the points ``xs``: exact Lanczos eigenvalues,
    Hutchinson trace and the finite-difference curvature at scale ``h``.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) pixel-space images.
    labels : (N,) int or None — ``y`` of the loss; None: the predicted labels ``k_hat(x)``.
    k : int ≥ 1 — eigenvalues per point (capped at d − 1).
    h : float > 0 — scale of the finite-difference curvature, pixel units.
    trace_samples : int ≥ 1 — Rademacher vectors of the trace estimate.
    random_state : int — Lanczos start vectors and Rademacher vectors.
    progress : ``progress(fraction, message)`` after every point.

    Returns
    -------
    CurvatureProfile

    Raises
    ------
    InvalidInputError
        bad images, labels, k, h or trace_samples.

    References
    ----------
    Moosavi-Dezfooli et al., "Robustness via curvature regularization, and vice versa", CVPR 2019,
    Fig. 2 (profiles of standard vs adversarially trained networks) and §4; Hutchinson (1989).
    """
    k = check_int("k", k, 1)
    trace_samples = check_int("trace_samples", trace_samples, 1)
    if not (isinstance(h, (int, float)) and math.isfinite(h) and h > 0):
        raise InvalidInputError(f"h must be a finite number > 0, got {h!r}")
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach().to(clf.device, clf.dtype)
    y = _labels(clf, x, labels)
    n = x.shape[0]
    k = min(k, max(x[0].numel() - 1, 1))
    eig = np.zeros((n, k))
    n_hvp = 0
    for i in range(n):
        vals, used = hessian_top_eigenvalues(
            _ce_loss(clf, y[i : i + 1]), x[i : i + 1], k=k, random_state=random_state + i
        )
        eig[i, : len(vals)] = vals
        n_hvp += used
        if progress is not None:
            progress((i + 1) / n, f"Lanczos on the input Hessian: point {i + 1}/{n}")
    trace = _hutchinson(_ce_loss(clf, y.repeat_interleave(trace_samples)), x, trace_samples, as_generator(random_state))
    fd = finite_difference_curvature(clf, x, y, h=h)
    ev = torch.from_numpy(eig)
    mag = ev.abs()
    return CurvatureProfile(
        eigenvalues=ev,
        mean=mag.mean(0),
        std=mag.std(0) if n > 1 else torch.zeros(k, dtype=torch.float64),
        q25=mag.quantile(0.25, dim=0),
        q75=mag.quantile(0.75, dim=0),
        spectral_norm=mag[:, 0].clone(),
        trace=trace,
        finite_difference=fd,
        h=float(h),
        method="exact (double backprop, Lanczos)",
        n_hvp=n_hvp,
    )


def loss_along(clf: Classifier, x: Tensor, label: int, directions: Tensor, ts: Tensor) -> Tensor:
    """``ℓ(x + t·u)`` for unit directions ``u`` and steps ``t`` (pixel units): shape (D, T) float64.

    ``directions`` (D, C, H, W) are normalised here; points are *not* clipped to the box, as in
    CURE Fig. 1 (the loss along the normal and along a random direction through the same x).
    """
    x = check_images(x, clf.input_shape, allow_single=True, name="x")[:1].detach().to(clf.device)
    u = torch.as_tensor(directions, dtype=x.dtype).to(x.device)
    u = u / torch.linalg.vector_norm(u.flatten(1), dim=1).clamp_min(1e-12).view(-1, *([1] * (u.dim() - 1)))
    t = torch.as_tensor(ts, dtype=x.dtype).to(x.device)
    pts = x + t.view(1, -1, *([1] * (u.dim() - 1))) * u[:, None]  # (D, T, C, H, W)
    flat = pts.reshape(-1, *x.shape[1:])
    with torch.no_grad():
        logits = clf.network(flat.to(clf.dtype))
        target = torch.full((flat.shape[0],), int(label), dtype=torch.long, device=logits.device)
        lv = F.cross_entropy(logits, target, reduction="none")
    return lv.double().reshape(u.shape[0], t.shape[0]).cpu()
