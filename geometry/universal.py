"""Universal perturbations: the UAP algorithm, fooling rates, random noise norms, random vectors of a subspace.

Quantities (DESIGN §4 "Universal perturbations"; ICLR 2018 §2 and Fig. 7b):

* **fooling rate** of a perturbation ``v`` on points ``xs``: ``mean[k̂(x + v) ≠ k̂(x)]``
  (:func:`fooling_rate`, :func:`fooling_rates` for many vectors). With ``two_sided=True`` the
  *universal direction* criterion of ICLR 2018 Eq. (2), ``k̂(x + v) ≠ k̂(x) or k̂(x − v) ≠ k̂(x)``;
* **UAP** (:func:`universal_perturbation`): Moosavi-Dezfooli, Fawzi, Fawzi, Frossard, "Universal
  adversarial perturbations", CVPR 2017, Algorithm 1, in the original one-point-at-a-time form
  (``mode="sequential"``) and a mini-batched form (``mode="batched"``, see its docstring for how it
  differs);
* **random noise norm** (:func:`random_noise_norm`): the ℓ2 norm of random noise needed to change
  the label, per point, along a random direction; its ``share``-quantile over points is "the
  norm of the random noise required to fool most data points" of which Fig. 7b takes 1/5 as ξ;
* **random vectors of a subspace** (:func:`sample_subspace`) and the fooling rate of such vectors
  as a function of the subspace dimension m (:func:`fooling_rate_vs_m`, Fig. 7b).

Conventions: pixel space (DESIGN §3), perturbations are *not* clipped to ``clf.bounds`` (the
geometric, unconstrained setting of the papers' analysis; clip ``xs + v`` yourself for
image-valid examples). ``k̂`` is always the classifier's prediction, never a ground-truth label.
All returned tensors are on the CPU; perturbations keep the dtype of ``xs``. No function modifies
its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .classifier import Classifier
from .errors import InvalidInputError
from .progress import ProgressFn
from .validation import (
    UAP_MODES,
    BasisLike,
    Norm,
    RandomState,
    UAPMode,
    as_generator,
    check_basis,
    check_choice,
    check_float,
    check_image,
    check_images,
    check_int,
    check_labels,
    check_norm,
)

__all__ = [
    "project_lp",
    "fooling_rate",
    "fooling_rates",
    "UniversalResult",
    "universal_perturbation",
    "NoiseNormResult",
    "random_noise_norm",
    "sample_subspace",
    "FoolingCurve",
    "fooling_rate_vs_m",
]


# ---------------------------------------------------------------------------------------- helpers
def _call(progress: ProgressFn | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)


def _check_perturbations(vs: object, clf: Classifier, name: str = "vs") -> Tensor:
    """K perturbations as a (K, C, H, W) tensor (accepts (K, C, H, W) or (K, d))."""
    return check_images(vs, clf.input_shape, allow_flat=True, name=name).detach()


# ---------------------------------------------------------------------------------------- projection
def project_lp(v: Tensor, xi: float, norm: Norm = 2) -> Tensor:
    """Euclidean projection of ``v`` onto the ℓp ball of radius ``xi`` (``Proj_{p,ξ}`` of Alg. 1).

    ℓ2: ``v`` unchanged if ``‖v‖₂ ≤ ξ``, else ``v · ξ/‖v‖₂`` (the nearest point of the ball).
    ℓ∞: entrywise clip to ``[−ξ, ξ]`` (also the nearest point). The whole tensor is one vector.

    The result is always a new tensor, lies in the ball *exactly* in floating point (a shrunk ℓ2
    vector whose rounded norm would exceed ξ by an ulp is shrunk by a further ulp), and the map is
    idempotent: ``project_lp(project_lp(v)) == project_lp(v)`` bit for bit.

    Parameters
    ----------
    v : tensor of any shape (one perturbation), floating point
    xi : float ≥ 0 — radius ξ in pixel units
    norm : 2 or inf

    Returns
    -------
    tensor of ``v``'s shape and dtype.

    Raises
    ------
    InvalidInputError
        negative / NaN ξ, norm not 2 or inf, non-float or non-finite v.

    References: CVPR 2017 Alg. 1 and its reference code (``proj_lp``).
    """
    p = check_norm(norm)
    xi = check_float("xi", xi, low=0.0)
    if not isinstance(v, Tensor) or not v.is_floating_point():
        raise InvalidInputError(
            f"v must be a floating-point tensor, got {type(v).__name__}{'' if not isinstance(v, Tensor) else ' of dtype ' + str(v.dtype)}"
        )
    if not torch.isfinite(v).all():
        raise InvalidInputError("v contains NaN or inf values")
    v = v.detach()
    if math.isinf(p):
        # the bound in v's dtype, rounded *down* (float32(0.4) > 0.4 would leave the ball)
        bound = torch.tensor(xi, dtype=v.dtype)
        if float(bound) > xi:
            bound = torch.nextafter(bound, torch.zeros_like(bound))
        return torch.minimum(torch.maximum(v, -bound), bound)
    n = float(torch.linalg.vector_norm(v.double()))
    if n <= xi:
        return v.clone()
    out = v * (xi / n)
    # rounding may leave ‖out‖ a hair above ξ: shrink by the smallest factor that fixes it.
    eps = torch.finfo(v.dtype).eps
    k = 1
    while float(torch.linalg.vector_norm(out.double())) > xi:
        out = v * (xi / n) * (1.0 - k * eps)
        k *= 2
    return out


# ---------------------------------------------------------------------------------------- fooling rates
@torch.no_grad()
def _fooled_mask(clf: Classifier, xs: Tensor, v: Tensor, labels: Tensor, batch_size: int, two_sided: bool) -> Tensor:
    """(N,) bool on the CPU: ``k̂(x + v) ≠ labels`` (or ``k̂(x − v)`` too). Points, v and labels move to the
    classifier's device once (a no-op when the caller already put them there); the batches stay there and
    the mask comes back to the host once (issue 15: no per-batch host copies)."""
    device = clf.device
    xs, v, labels = xs.to(device), v.to(device), labels.to(device)
    out = []
    for s in range(0, len(xs), batch_size):
        xb = xs[s : s + batch_size]
        lb = labels[s : s + batch_size]
        f = clf.predict(xb + v, batch_size=batch_size) != lb
        if two_sided:
            f |= clf.predict(xb - v, batch_size=batch_size) != lb
        out.append(f)
    return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.bool)


def fooling_rate(
    clf: Classifier,
    xs: Tensor,
    v: Tensor | np.ndarray,
    *,
    labels: Tensor | np.ndarray | None = None,
    two_sided: bool = False,
    batch_size: int = 1024,
) -> float:
    """Fraction of ``xs`` whose predicted label ``v`` changes: ``mean[k̂(x + v) ≠ k̂(x)]``.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) — points (held-out for an honest estimate); never modified
    v : (C, H, W), (1, C, H, W) or (d,) — one perturbation in pixel units (not clipped)
    labels : (N,) int, optional — ``k̂(xs)`` if already known (saves one forward pass)
    two_sided : bool — count ``x`` as fooled if ``k̂(x + v) ≠ k̂(x)`` *or* ``k̂(x − v) ≠ k̂(x)``
        (universal *direction*, ICLR 2018 Eq. (2), the notion of Theorem 1)
    batch_size : int ≥ 1

    Returns
    -------
    float in [0, 1] (NaN for an empty ``xs``).

    Raises
    ------
    InvalidInputError — shapes, NaN / inf, bad labels or batch_size.

    References: CVPR 2017 §2 ("fooling rate"); ICLR 2018 §2 and Eq. (2).
    """
    x = check_images(xs, clf.input_shape, name="xs").detach()
    v = check_image(v, clf.input_shape, name="v").to(x.dtype)
    batch_size = check_int("batch_size", batch_size, 1)
    lab = clf.predict(x, batch_size=batch_size).cpu() if labels is None else check_labels(labels, len(x))
    if len(x) == 0:
        return float("nan")
    return float(_fooled_mask(clf, x, v, lab, batch_size, two_sided).double().mean())


def fooling_rates(
    clf: Classifier,
    xs: Tensor,
    vs: Tensor | np.ndarray,
    *,
    labels: Tensor | np.ndarray | None = None,
    two_sided: bool = False,
    batch_size: int = 1024,
) -> Tensor:
    """Fooling rates of K perturbations on the same points: ``out[k] = mean_x[k̂(x + vs[k]) ≠ k̂(x)]``.

    Parameters
    ----------
    xs : (N, C, H, W); vs : (K, C, H, W) or (K, d); labels, two_sided, batch_size as in
    :func:`fooling_rate` (``k̂(xs)`` is computed once for all K vectors).

    Returns
    -------
    (K,) float64 tensor in [0, 1].
    """
    x = check_images(xs, clf.input_shape, name="xs").detach()
    vs = _check_perturbations(vs, clf).to(x.dtype)
    batch_size = check_int("batch_size", batch_size, 1)
    lab = clf.predict(x, batch_size=batch_size).cpu() if labels is None else check_labels(labels, len(x))
    if len(x) == 0:
        return torch.full((len(vs),), float("nan"), dtype=torch.float64)
    # the points and their labels go to the classifier's device once for all K vectors
    x, lab = x.to(clf.device), lab.to(clf.device)
    return torch.tensor(
        [float(_fooled_mask(clf, x, v, lab, batch_size, two_sided).double().mean()) for v in vs], dtype=torch.float64
    )


# ---------------------------------------------------------------------------------------- UAP
@dataclass(frozen=True)
class UniversalResult:
    """Result of :func:`universal_perturbation`.

    Attributes
    ----------
    v : (C, H, W) — the returned universal perturbation (the *best* pass's), pixel units, dtype of xs;
        ``‖v‖_p ≤ ξ``
    fooling_rates : list of float — fooling rate on ``xs`` after every pass (pass 1 first)
    best_pass : int — 1-based index of the pass whose v is returned (highest fooling rate; the
        earliest on ties); 0 if no pass ran
    n_passes : int — passes run
    converged : bool — the returned v reached fooling rate ≥ 1 − δ on ``xs``
    stopping_rule : str — why it stopped and which v is returned, in words
    mode : "batched" or "sequential"
    xi, norm, delta : the constraint ``‖v‖_p ≤ ξ`` and the target ``1 − δ``
    n_deepfool : int — DeepFool runs (one per not-yet-fooled point visited)
    n_accepted : int — DeepFool runs that converged and were added to v
    fooling_rate : float — the returned v's fooling rate on ``xs`` (``fooling_rates[best_pass − 1]``)
    """

    v: Tensor
    fooling_rates: list
    best_pass: int
    n_passes: int
    converged: bool
    stopping_rule: str
    mode: UAPMode
    xi: float
    norm: float
    delta: float
    n_deepfool: int
    n_accepted: int
    fooling_rate: float


def universal_perturbation(
    clf: Classifier,
    xs: Tensor,
    *,
    xi: float,
    norm: Norm = 2,
    delta: float = 0.2,
    max_passes: int = 10,
    overshoot: float = 0.02,
    max_iter: int = 50,
    candidates: int = 10,
    batch_size: int = 64,
    mode: UAPMode = "batched",
    random_state: RandomState = 0,
    progress: ProgressFn | None = None,
) -> UniversalResult:
    """Universal adversarial perturbation (CVPR 2017, Algorithm 1), sequential or mini-batched.

    Algorithm 1: ``v = 0``; repeat passes over the data in a freshly shuffled order (seeded by
    ``random_state``); for every ``x`` still classified as before (``k̂(x + v) = k̂(x)``),
    ``Δv = r(x + v)`` by ℓ2 DeepFool at ``x + v`` (the minimal ``r`` with
    ``k̂(x + v + r) ≠ k̂(x + v) = k̂(x)``), accepted only if DeepFool converged, then
    ``v ← Proj_{p,ξ}(v + Δv)`` (:func:`project_lp`). After each pass the fooling rate on ``xs`` is
    measured; stop as soon as it reaches ``1 − δ`` or after ``max_passes`` passes. DeepFool is the
    ℓ2 one for both ``norm=2`` and ``norm=inf`` (as in the paper and its reference code); only the
    projection uses ``norm``.

    ``mode="sequential"`` is exactly that: one point at a time, each DeepFool run at the current v.

    ``mode="batched"`` walks the same shuffled order in chunks of ``batch_size`` points. Per chunk:
    one forward pass finds the chunk's points not yet fooled by the current v; one batched DeepFool
    call computes ``Δv_i = r(x_i + v)`` for all of them at that *same* v; then the converged
    ``Δv_i`` are applied one after the other in the shuffled order, with the projection after each:
    ``v ← Proj(…Proj(Proj(v + Δv_1) + Δv_2)… + Δv_b)`` — the original's update rule, applied to
    the chunk's steps in turn (not ``Proj(v + ΣΔv_i)``: projecting after each step is what the
    original does and differs from it for both ℓ2 and ℓ∞). Differences from the original:

    * every ``Δv_i`` of a chunk is computed at the v of the chunk's *start* (stale by up to
      ``batch_size − 1`` updates), whereas the original recomputes it after each update;
    * a point fooled by an update made earlier in the same chunk still contributes its ``Δv_i``
      (finding out would need a forward pass per point between updates); the original skips it.

    With ``batch_size=1`` the two modes coincide exactly (same order, same checks, same updates).
    Applying the steps in turn (rather than adding their mean, which shrinks as the normals of
    different points cancel, or their sum, which overshoots by up to ``batch_size`` DeepFool
    steps) keeps each step the size the original would take. Measured on the zoo's digits-lenet
    (1000 training points, 5 passes, ℓ2, seeds 0–2, best pass's training fooling rate):
    ξ = 2.34 (≈ 5× the median ‖r(x)‖): original 0.75–0.78, batched (batch_size 32) 0.78–0.79,
    mean-of-steps 0.77–0.79; ξ = 1.5: original 0.44–0.62, batched 0.55–0.76, mean-of-steps
    0.44–0.49, sum-of-steps 0.45–0.60 — the batched mode matches the original within the
    seed-to-seed spread; one run of 5 passes took 27.7 s sequential, 5.2 s batched (16), 3.8 s
    batched (64) on 2 shared CPU cores.

    The ℓ2 UAP's fooling rate oscillates between passes (DESIGN §4 pitfalls): every pass's rate is
    kept and the v of the *best* pass is returned (earliest on ties), even when the last pass is
    worse; ``stopping_rule`` says which.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) — the data the perturbation is computed on (never modified). Evaluate
        the result on held-out points with :func:`fooling_rate`.
    xi : float > 0 — radius ξ of the ℓp ball, pixel units
    norm : 2 or inf — the ℓp constraint
    delta : float in [0, 1) — target fooling rate 1 − δ
    max_passes : int ≥ 1
    overshoot, max_iter, candidates : DeepFool settings (see :func:`geometry.deepfool.deepfool`)
    batch_size : int ≥ 1 — chunk size of the batched mode (ignored by the sequential mode)
    mode : "batched" (default) or "sequential"
    random_state : int or torch.Generator — the shuffling; the same seed gives the same v
    progress : callable(fraction in [0, 1], message), optional

    Returns
    -------
    UniversalResult (v, fooling_rates per pass, best_pass, n_passes, converged, stopping_rule,
    mode, xi, norm, delta, n_deepfool, n_accepted, fooling_rate)

    Raises
    ------
    InvalidInputError
        bad shapes / NaN in xs, ξ ≤ 0, δ outside [0, 1), unknown mode or norm, non-positive
        integers, bad random_state; DeepFool's own errors.

    References
    ----------
    Moosavi-Dezfooli, Fawzi, Fawzi, Frossard, "Universal adversarial perturbations", CVPR 2017,
    Algorithm 1; ICLR 2018 Fig. 7b (dotted line), Fig. 5–6 (its normal cross-sections).
    """
    from .deepfool import deepfool  # lazy: keeps this module importable on its own

    x = check_images(xs, clf.input_shape, name="xs").detach()
    p = check_norm(norm)
    xi = check_float("xi", xi, low=0.0, low_open=True)
    if math.isinf(xi):
        raise InvalidInputError(f"xi must be finite, got {xi!r}")
    delta = check_float("delta", delta, low=0.0, high=1.0, high_open=True)
    max_passes = check_int("max_passes", max_passes, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    mode = check_choice("mode", mode, UAP_MODES)
    gen = as_generator(random_state)

    n = len(x)
    target = 1.0 - delta
    v = torch.zeros(tuple(clf.input_shape), dtype=x.dtype)
    if n == 0:
        return UniversalResult(
            v=v,
            fooling_rates=[],
            best_pass=0,
            n_passes=0,
            converged=False,
            stopping_rule="no points given: v = 0",
            mode=mode,
            xi=xi,
            norm=p,
            delta=delta,
            n_deepfool=0,
            n_accepted=0,
            fooling_rate=float("nan"),
        )
    eval_bs = max(batch_size, 256)
    labels = clf.predict(x, batch_size=eval_bs).cpu()
    rates: list[float] = []
    best_v, best_rate, best_pass = v.clone(), -1.0, 0
    n_df = n_acc = 0
    chunk = 1 if mode == "sequential" else batch_size
    stop = ""

    for pas in range(1, max_passes + 1):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, chunk):
            idx = order[s : s + chunk]
            xb = x[idx]
            with torch.no_grad():
                still = clf.predict(xb + v, batch_size=eval_bs).cpu() == labels[idx]
            if bool(still.any()):
                res = deepfool(
                    clf,
                    xb[still] + v,
                    norm=2,
                    overshoot=overshoot,
                    max_iter=max_iter,
                    candidates=candidates,
                    batch_size=max(chunk, 1),
                )
                n_df += int(still.sum())
                for k in torch.nonzero(res.converged).flatten().tolist():
                    v = project_lp(v + res.r[k].to(v.dtype), xi, p)
                    n_acc += 1
            done = min(s + chunk, n)
            if progress is not None and (done == n or done * 100 // n != (done - chunk) * 100 // n):
                _call(progress, ((pas - 1) + done / n) / max_passes, f"pass {pas}/{max_passes}: {done}/{n} points")
        rate = float(_fooled_mask(clf, x, v, labels, eval_bs, False).double().mean())
        rates.append(rate)
        if rate > best_rate:
            best_v, best_rate, best_pass = v.clone(), rate, pas
        _call(progress, pas / max_passes, f"pass {pas}/{max_passes}: fooling rate {rate:.3f}")
        if rate >= target:
            stop = (
                f"stopped after pass {pas}: fooling rate {rate:.4f} ≥ 1 − δ = {target:.4f}; "
                f"returned the best pass's v (pass {best_pass}, fooling rate {best_rate:.4f})"
            )
            break
    else:
        stop = (
            f"stopped at max_passes = {max_passes} without reaching 1 − δ = {target:.4f}; "
            f"returned the best pass's v (pass {best_pass} of {max_passes}, fooling rate {best_rate:.4f}; "
            f"the last pass had {rates[-1]:.4f})"
        )
    return UniversalResult(
        v=best_v,
        fooling_rates=rates,
        best_pass=best_pass,
        n_passes=len(rates),
        converged=best_rate >= target,
        stopping_rule=stop,
        mode=mode,
        xi=xi,
        norm=p,
        delta=delta,
        n_deepfool=n_df,
        n_accepted=n_acc,
        fooling_rate=best_rate,
    )


# ---------------------------------------------------------------------------------------- random noise
@dataclass(frozen=True)
class NoiseNormResult:
    """Result of :func:`random_noise_norm`.

    Attributes
    ----------
    norms : (N,) float64 — per point, the ℓ2 noise norm (pixel units) that changes its label along
        random directions: the median over its ``n_directions`` rays (the ray value itself when
        ``n_directions = 1``); +inf where more than half of its rays never change the label
        within ``max_norm``
    ray_norms : (N, n_directions) float64 — per ray, the norm t of the crossing found (+inf if none)
    quantile : float — the noise norm that fools ``share`` of the points: the smallest t with
        ``mean(norms ≤ t) ≥ share`` (+inf if fewer than ``share`` of the points have finite norms)
    share : float
    infinite_share : float — fraction of *rays* with no label change within ``max_norm``
    max_norm, tol : float — search range and relative bisection tolerance used
    n_forward : int — batched forward passes
    """

    norms: Tensor
    ray_norms: Tensor
    quantile: float
    share: float
    infinite_share: float
    max_norm: float
    tol: float
    n_forward: int


def _share_quantile(values: Tensor, share: float) -> float:
    """Smallest t with mean(values ≤ t) ≥ share (values may contain +inf)."""
    vals = torch.sort(values.double()).values
    k = max(math.ceil(share * len(vals) - 1e-12), 1)
    return float(vals[k - 1])


def random_noise_norm(
    clf: Classifier,
    xs: Tensor,
    *,
    share: float = 0.5,
    n_directions: int = 1,
    max_norm: float | None = None,
    tol: float = 1e-3,
    batch_size: int = 1024,
    random_state: RandomState = 0,
    directions: Tensor | np.ndarray | None = None,
) -> NoiseNormResult:
    """Norm of random noise needed to change the label, per point, and its ``share``-quantile.

    For each point ``x`` and each of ``n_directions`` random unit directions ``u`` (uniform on the
    ℓ2 sphere of R^d, independent per point), the ℓ2 norm ``t`` at which ``k̂(x + t u) ≠ k̂(x)``:
    an exponential bracket search (t = max_norm·2^-30, doubled until the label changes or t
    reaches ``max_norm``) followed by bisection of the last bracket ``[t/2, t]`` to the relative
    tolerance ``tol``. A ray that never changes the label within ``max_norm`` counts as +inf —
    common for ReLU networks, which are positively homogeneous, so far along a ray the label is
    that of the direction ``u`` itself (DESIGN §4 pitfalls). Caveat: the doubling finds *a*
    crossing in the first bracket where the label differs; a region thinner than a doubling step
    between two stretches of the original label is missed. Negative directions are not tried: the
    noise is the vector ``t u``, not the line.

    "The norm of the random noise required to fool most data points" of ICLR 2018 Fig. 7b (ξ is
    1/5 of it) is ``quantile`` for a large ``share``; it changes a lot with ``share`` (2× between
    0.5 and 0.8 on an MNIST LeNet), so the share is an explicit argument.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W), never modified
    share : float in (0, 1] — fraction of points the quantile must fool
    n_directions : int ≥ 1 — random rays per point
    max_norm : float > 0, optional — search limit, pixel units; default ``√d · (bounds range)``,
        the diameter of the pixel cube (no image is left beyond it)
    tol : float in (0, 1) — relative bisection tolerance (``hi − lo ≤ tol · hi``)
    batch_size : int ≥ 1 — rays evaluated per forward pass
    random_state : int or torch.Generator — the directions
    directions : (N, n_directions, d), (N, d) or (N, C, H, W), optional — rays to use instead of
        random ones (normalised here; ``n_directions`` and ``random_state`` are then ignored)

    Returns
    -------
    NoiseNormResult (norms (N,), ray_norms (N, n_directions), quantile, share, infinite_share,
    max_norm, tol, n_forward)

    Raises
    ------
    InvalidInputError — shapes, NaN / inf, share / tol / max_norm out of range, bad random_state.

    References: ICLR 2018 §5 and Fig. 7b; Fawzi, Moosavi-Dezfooli, Frossard, "Robustness of
    classifiers: from adversarial to random noise", NIPS 2016 (random noise scales as √d).
    """
    x = check_images(xs, clf.input_shape, name="xs").detach()
    share = check_float("share", share, low=0.0, high=1.0, low_open=True)
    n_directions = check_int("n_directions", n_directions, 1)
    if max_norm is None:
        max_norm = math.sqrt(clf.d) * clf.bounds_range
    max_norm = check_float("max_norm", max_norm, low=0.0, low_open=True)
    if math.isinf(max_norm):
        raise InvalidInputError(f"max_norm must be finite, got {max_norm!r}")
    tol = check_float("tol", tol, low=0.0, high=1.0, low_open=True, high_open=True)
    batch_size = check_int("batch_size", batch_size, 1)
    gen = as_generator(random_state)

    n = len(x)
    if directions is None:
        k = n_directions
        u = torch.randn(n, k, clf.d, generator=gen, dtype=torch.float64)
    else:
        u = torch.as_tensor(directions).detach().to("cpu", torch.float64)
        if u.dim() == 4 and tuple(u.shape[1:]) == tuple(clf.input_shape):
            u = u.reshape(len(u), 1, clf.d)
        elif u.dim() == 2:
            u = u.unsqueeze(1)
        if u.dim() != 3 or u.shape[0] != n or u.shape[2] != clf.d or u.shape[1] == 0:
            raise InvalidInputError(
                f"directions must have shape ({n}, K, {clf.d}), ({n}, {clf.d}) or ({n}, {', '.join(map(str, clf.input_shape))}), got {tuple(u.shape)}"
            )
        lengths = torch.linalg.vector_norm(u, dim=2)
        if not torch.isfinite(u).all() or bool((lengths == 0).any()):
            raise InvalidInputError("directions must be finite and non-zero")
        k = u.shape[1]
    u = u / torch.linalg.vector_norm(u, dim=2, keepdim=True)
    labels = clf.predict(x, batch_size=batch_size).cpu()
    n_fwd = -(-n // batch_size) if n else 0
    # rays as rows: point index and direction
    pt = torch.arange(n).repeat_interleave(k)
    U = u.reshape(n * k, clf.d)
    lab = labels[pt]

    # points, ray directions and labels live on the classifier's device; the bracketing / bisection state
    # (t, lo, hi: one float per ray) stays on the host and each call of changed() returns one mask
    device = clf.device
    x_dev, U_dev, lab_dev, pt_dev = x.to(device), U.to(device), lab.to(device), pt.to(device)

    def changed(rows: Tensor, t: Tensor) -> Tensor:
        nonlocal n_fwd
        out = []
        rows_dev, t_dev = rows.to(device), t.to(device)
        for s in range(0, len(rows), batch_size):
            r = rows_dev[s : s + batch_size]
            pert = (t_dev[s : s + batch_size, None] * U_dev[r]).to(x.dtype).reshape(len(r), *clf.input_shape)
            out.append(clf.predict(x_dev[pt_dev[r]] + pert, batch_size=batch_size) != lab_dev[r])
            n_fwd += 1
        return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.bool)

    n_rays = n * k
    lo = torch.zeros(n_rays, dtype=torch.float64)
    hi = torch.full((n_rays,), math.inf, dtype=torch.float64)
    t = torch.full((n_rays,), max_norm * 2.0**-30, dtype=torch.float64)
    open_ = torch.arange(n_rays)
    # exponential bracket search
    while open_.numel():
        c = changed(open_, t[open_])
        hi[open_[c]] = t[open_[c]]
        rest = open_[~c]
        lo[rest] = t[rest]
        at_max = t[rest] >= max_norm
        open_ = rest[~at_max]
        t[open_] = torch.clamp(2.0 * t[open_], max=max_norm)
    # bisection on finite brackets
    active = torch.nonzero(torch.isfinite(hi)).flatten()
    while active.numel():
        floor = max_norm * 2.0**-60  # a point on the boundary itself: stop shrinking hi
        active = active[((hi[active] - lo[active]) > tol * hi[active]) & (hi[active] > floor)]
        if not active.numel():
            break
        mid = 0.5 * (lo[active] + hi[active])
        c = changed(active, mid)
        hi[active[c]] = mid[c]
        lo[active[~c]] = mid[~c]
    ray = hi.reshape(n, k)
    norms = ray.median(dim=1).values if k > 1 else ray[:, 0].clone()
    if k > 1:  # torch's median is the lower middle value; use the usual one for even k
        srt = torch.sort(ray, dim=1).values
        norms = 0.5 * (srt[:, (k - 1) // 2] + srt[:, k // 2])
    quant = _share_quantile(norms, share) if n else float("nan")
    inf_share = float((~torch.isfinite(ray)).double().mean()) if n else float("nan")
    return NoiseNormResult(
        norms=norms,
        ray_norms=ray,
        quantile=quant,
        share=share,
        infinite_share=inf_share,
        max_norm=max_norm,
        tol=tol,
        n_forward=n_fwd,
    )


# ---------------------------------------------------------------------------------------- subspace sampling
def _coefficients(n_samples: int, m: int, gen: torch.Generator) -> Tensor:
    g = torch.randn(n_samples, m, generator=gen, dtype=torch.float64)
    return g / torch.linalg.vector_norm(g, dim=1, keepdim=True)


def sample_subspace(
    basis: BasisLike,
    m: int,
    xi: float,
    *,
    n_samples: int,
    random_state: RandomState = 0,
    shape: Sequence[int] | None = None,
) -> Tensor:
    """Random vectors uniform on the sphere of radius ξ in ``span(basis[:, :m])``.

    ``v = ξ · B_m g/‖g‖`` with ``g ~ N(0, I_m)``: uniform on the unit sphere of the m-dimensional
    subspace (orthonormal ``B_m``), scaled to ℓ2 norm ξ. The recipe of Fig. 7b / Fig. 9 (random
    vectors of S_c as universal perturbations, ICLR 2018 §4 Remark 2).

    Parameters
    ----------
    basis : (d, M) tensor with orthonormal columns, or an object with a ``.basis`` attribute
        (e.g. :class:`geometry.curvature.Subspace`)
    m : int in [1, M] — use the first m columns
    xi : float ≥ 0 — ℓ2 norm of every vector, pixel units
    n_samples : int ≥ 1
    random_state : int or torch.Generator
    shape : (C, H, W), optional — reshape each vector to an image (needs C·H·W = d)

    Returns
    -------
    (n_samples, d) float64 tensor, or (n_samples, C, H, W) with ``shape``.

    Raises
    ------
    InvalidInputError — non-orthonormal basis, m out of range, ξ < 0, shape mismatch.
    """
    B = check_basis(basis)
    d, M = B.shape
    m = check_int("m", m, 1)
    if m > M:
        raise InvalidInputError(f"m must be at most the number of basis columns ({M}), got {m}")
    xi = check_float("xi", xi, low=0.0)
    if math.isinf(xi):
        raise InvalidInputError(f"xi must be finite, got {xi!r}")
    n_samples = check_int("n_samples", n_samples, 1)
    vs = xi * _coefficients(n_samples, m, as_generator(random_state)) @ B[:, :m].T
    if shape is not None:
        shp = tuple(int(s) for s in shape)
        if math.prod(shp) != d:
            raise InvalidInputError(f"shape must multiply to d = {d}, got {tuple(shape)}")
        vs = vs.reshape(n_samples, *shp)
    return vs


@dataclass(frozen=True)
class FoolingCurve:
    """Fooling rate of random vectors of several subspaces versus the dimension m (Fig. 7b).

    Attributes
    ----------
    m_values : (M,) int64 — the dimensions evaluated
    names : tuple of str — the bases, in the order given
    mean, std, best : dict name → (M,) float64 — mean / standard deviation (unbiased; 0 for one
        sample) / maximum over the ``n_samples`` random vectors of the fooling rate
    rates : dict name → (M, n_samples) float64 — every vector's fooling rate
    xi : float — ℓ2 norm of every vector, pixel units
    n_samples : int
    n_points : int — number of points the rates are measured on

    For each m the *same* random unit coefficients ``g`` are used with every basis (common random
    numbers), so one basis's curve does not depend on which other bases are evaluated with it.
    """

    m_values: Tensor
    names: tuple
    mean: dict
    std: dict
    best: dict
    rates: dict
    xi: float
    n_samples: int
    n_points: int


def fooling_rate_vs_m(
    clf: Classifier,
    xs: Tensor,
    bases: Mapping[str, BasisLike],
    m_values: Sequence[int],
    *,
    xi: float,
    n_samples: int = 10,
    random_state: RandomState = 0,
    batch_size: int = 1024,
    progress: ProgressFn | None = None,
) -> FoolingCurve:
    """Fooling rate on ``xs`` of random vectors of norm ξ drawn from the first m directions of each basis.

    For every m in ``m_values`` and every basis: ``n_samples`` vectors from :func:`sample_subspace`
    (uniform on the ξ-sphere of ``span(basis[:, :m])``), each evaluated with :func:`fooling_rate`
    (one-sided, ``k̂(x + v) ≠ k̂(x)``). The paper's recipe: bases S_c and S_f, ξ = 1/5 of the
    random-noise norm that fools most points (:func:`random_noise_norm`), points held out.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) — evaluation points (held out), never modified
    bases : mapping name → (d, M_name) orthonormal tensor or Subspace-like object with ``.basis``
    m_values : sequence of ints, each in [1, min M_name]
    xi : float ≥ 0, pixel units
    n_samples : int ≥ 1 — random vectors per (basis, m)
    random_state : int or torch.Generator
    batch_size : int ≥ 1
    progress : callable(fraction, message), optional

    Returns
    -------
    FoolingCurve (m_values, names, mean, std, best, rates, xi, n_samples, n_points)

    Raises
    ------
    InvalidInputError — empty bases / m_values, a basis of the wrong d or not orthonormal, m out of
    range, xs shape, ξ < 0.

    References: ICLR 2018 §5, Fig. 7b (and Fig. 11–12).
    """
    x = check_images(xs, clf.input_shape, name="xs").detach()
    if not isinstance(bases, Mapping) or not bases:
        raise InvalidInputError(f"bases must be a non-empty mapping name → (d, M) basis, got {type(bases).__name__}")
    mats = {str(k): check_basis(b, d=clf.d, name=f"bases[{k!r}]") for k, b in bases.items()}
    try:
        ms = [check_int("m", m, 1) for m in m_values]
    except TypeError:
        raise InvalidInputError(f"m_values must be a sequence of positive integers, got {m_values!r}") from None
    if not ms:
        raise InvalidInputError("m_values must contain at least one dimension")
    max_m = min(B.shape[1] for B in mats.values())
    if max(ms) > max_m:
        raise InvalidInputError(f"every m must be at most the smallest basis size ({max_m}), got m = {max(ms)}")
    xi = check_float("xi", xi, low=0.0)
    n_samples = check_int("n_samples", n_samples, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    gen = as_generator(random_state)
    labels = clf.predict(x, batch_size=batch_size).cpu()
    x = x.to(clf.device)  # once: every fooling_rates call below then finds the points on the device

    rates = {name: torch.zeros(len(ms), n_samples, dtype=torch.float64) for name in mats}
    total = len(ms) * len(mats)
    done = 0
    for i, m in enumerate(ms):
        g = _coefficients(n_samples, m, gen)
        for name, B in mats.items():
            vs = (xi * g @ B[:, :m].T).reshape(n_samples, *clf.input_shape).to(x.dtype)
            rates[name][i] = fooling_rates(clf, x, vs, labels=labels, batch_size=batch_size)
            done += 1
            _call(progress, done / total, f"{name}: m = {m} ({done}/{total})")
    std = {
        k: (r.std(1, unbiased=True) if n_samples > 1 else torch.zeros(len(ms), dtype=torch.float64))
        for k, r in rates.items()
    }
    return FoolingCurve(
        m_values=torch.tensor(ms, dtype=torch.long),
        names=tuple(mats),
        mean={k: r.mean(1) for k, r in rates.items()},
        std=std,
        best={k: r.max(1).values for k, r in rates.items()},
        rates=rates,
        xi=xi,
        n_samples=n_samples,
        n_points=len(x),
    )
