"""Minimal ℓ2 perturbations that are minimal: the distance to the boundary as the best of an ensemble.

A minimal-norm attack gives an *upper bound* on the distance to the decision boundary ``‖r*(x)‖₂``;
one attack alone may stop far from it (on a PGD-trained MNIST net box DeepFool's median was 2.4×
the best attack's, issue 21). :func:`minimal_perturbation` runs several attacks and keeps, per
point, the smallest successful perturbation and which attack found it:

* ``"deepfool_box"`` — DeepFool with every iterate clipped to the pixel box
  (:func:`geometry.deepfool.deepfool`, ``clip=True``; Moosavi-Dezfooli et al., CVPR 2016, Alg. 2);
* ``"deepfool_refined"`` — the same, then :func:`refine_on_boundary`: a bisection along the segment
  back to the boundary (removes the overshoot) and projection steps along the boundary normal
  (the nearest point of the linearised boundary at z, the idea of SuperDeepFool: Abdollahi et al.,
  "Revisiting DeepFool", 2024, which alternates DeepFool with such projections);
* ``"fmn"`` — foolbox's fast minimum-norm attack (Pintor et al., NeurIPS 2021);
* ``"ddn"`` — :func:`ddn`, decoupled direction and norm (Rony et al., CVPR 2019, Algorithm 1);
* ``"ddn_refined"`` — only with a pass budget (``minimal_perturbation(..., budget=B)``): DDN's result
  finished by :func:`refine_on_boundary` (see :func:`budget_plan` for how B is split).

:func:`optimality` scores each attack as AttackBench does (Cinà et al., "AttackBench", AAAI 2025,
§3: the local optimality of an attack on x is the ratio of the areas under the per-point security
curves, ``‖δ*‖ / ‖δ_a‖`` for a successful attack and 0 for a failed one), averaged over the points
some attack broke.

All distances are ℓ2 in pixel space; every perturbation keeps ``x + δ`` in ``clf.bounds``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .classifier import Classifier, check_images
from .errors import InvalidInputError
from .validation import check_int

__all__ = [
    "MINIMAL_ATTACKS",
    "MinimalAttackResult",
    "MinimalPerturbation",
    "BudgetPlan",
    "budget_plan",
    "ddn",
    "refine_on_boundary",
    "minimal_perturbation",
    "optimality",
]

MINIMAL_ATTACKS = ("deepfool_box", "deepfool_refined", "fmn", "ddn")


def _view(t: Tensor, like: Tensor) -> Tensor:
    return t.view(-1, *([1] * (like.dim() - 1)))


def _norms(delta: Tensor) -> Tensor:
    return torch.linalg.vector_norm(delta.flatten(1), dim=1)


@dataclass(frozen=True)
class MinimalAttackResult:
    """One minimal-norm attack's result (CPU tensors, dtype of the input images).

    Attributes
    ----------
    delta : (N, C, H, W) — the smallest adversarial perturbation found (zeros where none);
        ``x + delta`` lies in ``clf.bounds``.
    success : (N,) bool — ``k_hat(x + delta) ≠ labels``.
    norms : (N,) float64 — ‖delta‖₂ in pixel units, inf where the attack failed.
    n_forward, n_backward : int — forward / backward passes per point (each over the whole batch).
    """

    delta: Tensor
    success: Tensor
    norms: Tensor
    n_forward: int
    n_backward: int


def _check_labels(clf: Classifier, x: Tensor, labels: Tensor | None) -> Tensor:
    if labels is None:
        return clf.predict(x).cpu()
    y = torch.as_tensor(labels).reshape(-1)
    if y.shape != (x.shape[0],) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise InvalidInputError(
            f"labels must be {x.shape[0]} integers (one per image), got shape {tuple(y.shape)} {y.dtype}"
        )
    return y.long().cpu()


def _finish(x: Tensor, delta: Tensor, success: Tensor, n_fwd: int, n_bwd: int) -> MinimalAttackResult:
    delta = torch.where(_view(success, delta), delta, torch.zeros_like(delta)).to(x.dtype)
    nrm = _norms(delta.double())
    return MinimalAttackResult(
        delta=delta,
        success=success,
        norms=torch.where(success, nrm, torch.full_like(nrm, math.inf)),
        n_forward=n_fwd,
        n_backward=n_bwd,
    )


def ddn(
    clf: Classifier,
    xs: Tensor,
    labels: Tensor | None = None,
    *,
    steps: int = 100,
    init_norm: float = 1.0,
    gamma: float = 0.05,
    alpha: float = 1.0,
    alpha_min: float = 0.01,
) -> MinimalAttackResult:
    """Decoupled direction and norm (DDN): a minimal ℓ2 adversarial perturbation, batched.

    Per step k: the gradient g of the cross-entropy at ``x + δ`` gives the direction
    (``δ ← δ + α_k g/‖g‖``, α_k cosine-annealed from ``alpha`` to ``alpha_min``); the norm is a
    separate variable ε, multiplied by ``1 − gamma`` while ``x + δ`` is adversarial (starting from
    ``min(ε, ‖δ‖)``) and by ``1 + gamma`` otherwise; then ``δ ← ε δ/‖δ‖`` and ``x + δ`` is clipped
    to the box. The smallest adversarial δ seen is returned.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) pixel-space images.
    labels : (N,) int or None — the labels to move away from (default ``k_hat(x)``).
    steps : iterations K (one forward and one backward pass each).
    init_norm : ε₀ in pixel units (ℓ2).
    gamma : the norm's multiplicative step γ ∈ (0, 1).
    alpha, alpha_min : the direction step's cosine schedule, pixel units.

    Returns
    -------
    MinimalAttackResult

    Raises
    ------
    InvalidInputError
        bad images / labels, steps < 1, gamma not in (0, 1), non-positive norms or steps.

    References
    ----------
    Rony, Hafemann, Oliveira, Ben Ayed, Sabourin, Granger, "Decoupling direction and norm for
    efficient gradient-based L2 adversarial attacks and defenses", CVPR 2019, Algorithm 1.
    """
    steps = check_int("steps", steps, 1)
    if not 0 < gamma < 1:
        raise InvalidInputError(f"gamma must lie in (0, 1), got {gamma!r}")
    if not (init_norm > 0 and alpha > 0 and 0 < alpha_min <= alpha):
        raise InvalidInputError(
            f"init_norm, alpha must be > 0 and 0 < alpha_min ≤ alpha, got {init_norm!r}, {alpha!r}, {alpha_min!r}"
        )
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach()
    y = _check_labels(clf, x, labels)
    lo, hi = clf.bounds
    dev, wdtype = clf.device, clf.dtype
    x0 = x.to(device=dev, dtype=wdtype)
    yd = y.to(dev)
    n = x0.shape[0]
    delta = torch.zeros_like(x0)
    eps = torch.full((n,), float(init_norm), dtype=wdtype, device=dev)
    best = torch.full((n,), math.inf, dtype=wdtype, device=dev)
    best_delta = torch.zeros_like(x0)
    for k in range(steps):
        a_k = alpha_min + (alpha - alpha_min) * (1 + math.cos(math.pi * k / steps)) / 2
        d = delta.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = clf.network(x0 + d)
            (g,) = torch.autograd.grad(F.cross_entropy(logits, yd, reduction="sum"), d)
        nrm = _norms(delta)
        adv = logits.detach().argmax(1) != yd
        better = adv & (nrm < best)
        best = torch.where(better, nrm, best)
        best_delta[better] = delta[better]
        eps = torch.where(adv, (1 - gamma) * torch.minimum(eps, nrm), (1 + gamma) * eps)
        gn = _norms(g).clamp_min(1e-12)
        delta = delta + a_k * g / _view(gn, g)
        delta = delta * _view(eps / _norms(delta).clamp_min(1e-12), delta)
        delta = (x0 + delta).clamp(lo, hi) - x0
    with torch.no_grad():  # the last iterate
        adv = clf.network(x0 + delta).argmax(1) != yd
        nrm = _norms(delta)
        better = adv & (nrm < best)
        best = torch.where(better, nrm, best)
        best_delta[better] = delta[better]
    success = torch.isfinite(best).cpu()
    return _finish(x, best_delta.cpu(), success, steps + 1, steps)


def _boundary_label_gap(clf: Classifier, z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``F(z) = max_{j≠y} f_j(z) − f_y(z)`` and ``∇F(z)`` (the boundary function of DESIGN §4)."""
    zr = z.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = clf.network(zr)
        other = logits.clone()
        other[torch.arange(len(y)), y] = -math.inf
        j = other.argmax(1)
        gap = logits.gather(1, j[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)
        (w,) = torch.autograd.grad(gap.sum(), zr)
    return gap.detach(), w


def _bisect(clf: Classifier, x0: Tensor, delta: Tensor, y: Tensor, steps: int) -> Tensor:
    """Smallest ``t ∈ [0, 1]`` found by bisection with ``x + t δ`` adversarial (δ adversarial)."""
    t_lo = torch.zeros(len(y), dtype=x0.dtype, device=x0.device)
    t_hi = torch.ones_like(t_lo)
    for _ in range(steps):
        mid = (t_lo + t_hi) / 2
        with torch.no_grad():
            adv = clf.network(x0 + _view(mid, delta) * delta).argmax(1) != y
        t_hi = torch.where(adv, mid, t_hi)
        t_lo = torch.where(adv, t_lo, mid)
    return t_hi


def _box_projection(x0: Tensor, w: Tensor, c: Tensor, lo: float, hi: float, *, n_bisect: int = 40) -> Tensor:
    """The smallest ℓ2 step s with ``wᵀs = c`` and ``x0 + s`` in [lo, hi] (per sample).

    KKT: ``s(λ) = clip(λ w, lo − x0, hi − x0)``, and ``wᵀs(λ)`` is non-decreasing in λ ≥ 0, so λ is
    found by bisection (``c`` ≤ 0 gives s = 0; a ``c`` out of reach gives the box corner, the best
    the box allows). No network evaluations.
    """
    low, high = lo - x0, hi - x0
    reach = (w * torch.where(w > 0, high, low)).flatten(1).sum(1)  # wᵀs(∞)
    target = torch.minimum(c, reach)
    wn2 = (w * w).flatten(1).sum(1).clamp_min(1e-24)
    lam_hi = (target / wn2).clamp_min(0.0)  # unclipped step: a lower bound on λ; grow it until it reaches
    for _ in range(60):
        got = (w * torch.clamp(_view(lam_hi, w) * w, low, high)).flatten(1).sum(1)
        short = got < target * (1 - 1e-9)
        if not bool(short.any()):
            break
        lam_hi = torch.where(short, lam_hi * 2 + 1e-12, lam_hi)
    lam_lo = torch.zeros_like(lam_hi)
    for _ in range(n_bisect):
        mid = (lam_lo + lam_hi) / 2
        got = (w * torch.clamp(_view(mid, w) * w, low, high)).flatten(1).sum(1)
        enough = got >= target
        lam_hi = torch.where(enough, mid, lam_hi)
        lam_lo = torch.where(enough, lam_lo, mid)
    return torch.clamp(_view(lam_hi, w) * w, low, high)


def refine_on_boundary(
    clf: Classifier,
    xs: Tensor,
    delta: Tensor,
    labels: Tensor | None = None,
    *,
    iters: int = 3,
    deepfool_steps: int = 3,
    search_steps: int = 10,
    overshoot: float = 0.02,
) -> MinimalAttackResult:
    """Shorten adversarial perturbations: back to the boundary, then project along its normal.

    For each δ with ``k_hat(x + δ) ≠ labels``: bisection on ``x + tδ``, t ∈ [0, 1], to the boundary
    (``search_steps`` forward passes); then ``iters`` times, at the boundary point ``z = x + δ``
    with ``F(z) = max_{j≠y} f_j(z) − f_y(z)`` and ``w = ∇F(z)``, the nearest point of the
    linearised boundary ``{u : F(z) + wᵀ(u − z) = 0}`` to x *within the box*: ``δ' = clip(λw, lo − x,
    hi − x)`` with λ set so that ``wᵀδ' = (1 + overshoot)(wᵀ(z − x) − F(z))`` (the KKT solution of the
    box-constrained projection onto a hyperplane; without the box, the orthogonal projection); where that point is not adversarial (the boundary curves),
    up to ``deepfool_steps`` DeepFool steps from it cross the boundary, as SuperDeepFool alternates
    the two; the result is bisected back to the boundary and kept where it is adversarial and shorter. On an affine classifier one projection lands on the exact minimal
    perturbation. Points where δ is not adversarial are returned unchanged as failures.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W); delta : (N, C, H, W) — starting perturbations (e.g. box DeepFool's r).
    labels : (N,) int or None (default ``k_hat(x)``).
    iters : projection steps (one forward + backward each, up to ``deepfool_steps`` more, plus
        ``search_steps`` forwards).
    search_steps : bisection steps; overshoot : relative step beyond the linearised boundary.

    Returns
    -------
    MinimalAttackResult — never longer than the input where the input was adversarial.

    References
    ----------
    Moosavi-Dezfooli et al., CVPR 2016, Eq. (3) (projection onto an affine boundary); Abdollahi,
    Sheikholeslami, Frossard, Moosavi-Dezfooli, "Revisiting DeepFool: generalization and
    improvement" (SuperDeepFool), 2024, §3 (projection steps along the normal).
    """
    iters = check_int("iters", iters, 0)
    deepfool_steps = check_int("deepfool_steps", deepfool_steps, 0)
    search_steps = check_int("search_steps", search_steps, 0)
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach()
    d0 = check_images(delta, clf.input_shape, allow_single=True, name="delta").detach()
    if d0.shape != x.shape:
        raise InvalidInputError(f"delta must have the shape of xs {tuple(x.shape)}, got {tuple(d0.shape)}")
    y = _check_labels(clf, x, labels)
    lo, hi = clf.bounds
    dev, wdtype = clf.device, clf.dtype
    x0 = x.to(device=dev, dtype=wdtype)
    yd = y.to(dev)
    cur = ((x0 + d0.to(device=dev, dtype=wdtype)).clamp(lo, hi) - x0).detach()
    with torch.no_grad():
        ok = clf.network(x0 + cur).argmax(1) != yd
    n_fwd, n_bwd = 1, 0
    cur = torch.where(_view(ok, cur), cur, torch.zeros_like(cur))
    t = _bisect(clf, x0, cur, yd, search_steps)
    n_fwd += search_steps
    cur = cur * _view(t, cur)
    for _ in range(iters):
        z = x0 + cur
        gap, w = _boundary_label_gap(clf, z, yd)
        n_fwd, n_bwd = n_fwd + 1, n_bwd + 1
        wf = w.flatten(1)
        c = (wf * cur.flatten(1)).sum(1) - gap  # the linearised boundary at z: wᵀδ = c
        cand = _box_projection(x0, w, (1 + overshoot) * c, lo, hi)
        for _ in range(deepfool_steps + 1):  # DeepFool steps from the projection until it crosses
            with torch.no_grad():
                adv = clf.network(x0 + cand).argmax(1) != yd
            n_fwd += 1
            todo = ok & ~adv
            if not bool(todo.any()) or _ == deepfool_steps:
                break
            gap_u, w_u = _boundary_label_gap(clf, x0 + cand, yd)
            n_fwd, n_bwd = n_fwd + 1, n_bwd + 1
            step = _box_projection(x0 + cand, w_u, (1 + overshoot) * (-gap_u + 1e-4), lo, hi)
            cand = torch.where(_view(todo, cand), cand + step, cand)
        tc = _bisect(clf, x0, cand, yd, search_steps)
        n_fwd += search_steps
        cand = cand * _view(tc, cand)
        take = ok & adv & (_norms(cand) < _norms(cur))
        cur = torch.where(_view(take, cur), cand, cur)
    with torch.no_grad():  # bisection keeps the adversarial side; re-check in case of ties at the boundary
        final_ok = ok & (clf.network(x0 + cur).argmax(1) != yd)
    n_fwd += 1
    return _finish(x, cur.cpu(), final_ok.cpu(), n_fwd, n_bwd)


def _fmn(clf: Classifier, x: Tensor, y: Tensor, *, steps: int, max_stepsize: float) -> MinimalAttackResult:
    """foolbox's ``L2FMNAttack`` within ``clf.bounds``."""
    import foolbox as fb  # kept local: foolbox pulls in eagerpy and gitpython

    dev = clf.device
    fmodel = fb.PyTorchModel(clf.network, bounds=clf.bounds, device=dev)
    attack = fb.attacks.L2FMNAttack(steps=steps, max_stepsize=max_stepsize)
    xd = x.to(device=dev, dtype=clf.dtype)
    _, clipped, _ = attack(fmodel, xd, fb.criteria.Misclassification(y.to(dev)), epsilons=None)
    xa = clipped.detach().cpu().to(x.dtype)
    ok = clf.predict(xa).cpu() != y
    return _finish(x, xa - x, ok, steps + 2, steps)  # foolbox's steps + 1 forwards, and the check above


@dataclass(frozen=True)
class MinimalPerturbation:
    """Per point the smallest successful ℓ2 perturbation of an ensemble (result of :func:`minimal_perturbation`).

    Attributes
    ----------
    distance : (N,) float64 — smallest successful ‖δ‖₂, pixel units (inf where every attack failed):
        an upper bound on the distance to the decision boundary within the box.
    delta : (N, C, H, W) — the winning perturbation (zeros where none); ``x + delta`` in ``bounds``.
    winner : tuple of N str — the attack that found ``distance`` ("" where none succeeded).
    attacks : tuple of A str; norms : (A, N) float64 (inf = failed); success : (A, N) bool.
    label : (N,) int64 — the labels moved away from.
    passes : (A,) int64 — forward + backward passes per point each attack used (``deepfool_refined``
        counts its own refinement only: it starts from ``deepfool_box``'s result; ``ddn_refined`` likewise
        from ``ddn``'s).
    total_passes : int — forward + backward passes per point of the whole call: the attacks' passes, box
        DeepFool's where only its refinement is listed, and the one forward pass that predicts the labels
        when none are given. FMN's count is foolbox's iterations (steps + 1) plus the atlas's check of its result.
    """

    distance: Tensor
    delta: Tensor
    winner: tuple[str, ...]
    attacks: tuple[str, ...]
    norms: Tensor
    success: Tensor
    label: Tensor
    passes: Tensor
    total_passes: int

    def __len__(self) -> int:
        return int(self.distance.shape[0])

    def wins(self, attack: str) -> int:
        """Number of points where ``attack`` gave the smallest distance (ties go to the first listed)."""
        return sum(w == attack for w in self.winner)

    def optimality(self, reference: Tensor | None = None) -> dict[str, float]:
        """AttackBench optimality of each attack and of the ensemble (``"ensemble"``), see :func:`optimality`.

        ``reference`` : (N,) — best known distances (default: this ensemble's ``distance``).
        """
        best = self.distance if reference is None else torch.minimum(self.distance, torch.as_tensor(reference).double())
        scores = optimality(self.norms, best)
        out = {a: float(s) for a, s in zip(self.attacks, scores, strict=True)}
        out["ensemble"] = float(optimality(self.distance[None], best)[0])
        return out


def optimality(norms: Tensor, best: Tensor) -> Tensor:
    """AttackBench-style optimality of each attack, in [0, 1].

    Per point the local optimality of attack a is ``best / ‖δ_a‖`` (1 for the best attack, 0 where a
    failed: its security curve never drops), averaged over the points with a finite ``best``.

    Parameters
    ----------
    norms : (A, N) — each attack's ‖δ‖, inf where it failed.
    best : (N,) — the best known distance per point (inf where nothing succeeded; such points are
        left out).

    Returns
    -------
    (A,) float64 — nan if no point has a finite ``best``.

    References
    ----------
    Cinà, Rony, Pintor, Demetrio, Demontis, Biggio, Ben Ayed, Roli, "AttackBench: evaluating
    gradient-based attacks for adversarial examples", AAAI 2025, §3 (local and global optimality).
    """
    norms = torch.as_tensor(norms).double()
    best = torch.as_tensor(best).double()
    keep = torch.isfinite(best)
    if not bool(keep.any()):
        return torch.full((norms.shape[0],), math.nan, dtype=torch.float64)
    ratio = best[keep][None] / norms[:, keep]
    ratio = torch.where(torch.isfinite(norms[:, keep]), ratio, torch.zeros_like(ratio))
    return ratio.clamp(0.0, 1.0).mean(1)


@dataclass(frozen=True)
class BudgetPlan:
    """How :func:`minimal_perturbation` spends a budget of forward + backward passes per point.

    Attributes
    ----------
    budget : int — the budget B.
    label_passes : int — 1 when the labels are predicted (``labels=None``), else 0.
    ddn_steps : int — DDN's iterations S (2S + 1 passes).
    refine_iters, refine_deepfool_steps, refine_search_steps : :func:`refine_on_boundary`'s settings
        (``refine_iters = 0`` with no refinement at all: then ``refine_passes = 0``).
    refine_passes : int — the refinement's worst case ``2 + T + I(3 + 3D + T)`` (I iterations, D DeepFool
        steps, T bisection steps; the refinement may stop its DeepFool steps early and use fewer).
    """

    budget: int
    label_passes: int
    ddn_steps: int
    refine_iters: int
    refine_deepfool_steps: int
    refine_search_steps: int
    refine_passes: int

    @property
    def worst_case_passes(self) -> int:
        """The most passes per point the plan can use (≤ ``budget``)."""
        return self.label_passes + 2 * self.ddn_steps + 1 + self.refine_passes


# the finishing step of a budgeted run: one projection, one DeepFool step, 8 bisection steps (24 passes)
_FINISH_ITERS, _FINISH_DEEPFOOL, _FINISH_SEARCH = 1, 1, 8
_FINISH_MIN_DDN_STEPS = 20


def _refine_passes(iters: int, deepfool_steps: int, search_steps: int) -> int:
    """Worst-case passes per point of :func:`refine_on_boundary` (its loop structure, counted)."""
    if iters == 0:
        return 2 + search_steps  # the check, the first bisection, the final check
    return 2 + search_steps + iters * (3 + 3 * deepfool_steps + search_steps)


def budget_plan(budget: int, *, labels_given: bool = True) -> BudgetPlan:
    """Split a budget of B forward + backward passes per point between DDN and a finishing refinement.

    The rule (reasoned, not fitted to a score):

    1. one forward pass predicts the labels when none are given;
    2. the finishing step is :func:`refine_on_boundary` on DDN's result with 1 projection along the
       boundary normal, 1 DeepFool step and T = 8 bisection steps — 24 passes at most. DDN changes its
       norm by a factor 1 ± γ (γ = 0.05) per step, so its best adversarial iterate lies up to ≈ 5 %
       beyond the boundary along its own ray: 8 bisection steps resolve the segment to 2⁻⁸ ≈ 0.4 %, well
       inside that band; one projection removes the first-order error of DDN's direction (exact where
       the boundary is affine), and one DeepFool step recovers a projection that the boundary's
       curvature leaves on the clean side;
    3. DDN gets the rest: S = ⌊(B − labels − 24 − 1) / 2⌋ steps (2S + 1 passes);
    4. if that leaves DDN fewer than 20 steps, there is no refinement and DDN takes the whole budget,
       S = ⌊(B − labels − 1) / 2⌋: from its first norm ε₀ DDN needs ln(r/ε₀)/ln(1 + γ) ≈ 10 steps just to
       reach a boundary at r = 1.6 ε₀, and as many to settle on it; a refinement of a DDN run that has
       not settled buys less than the DDN steps it would cost.

    At B = 100 with the labels given: DDN 37 steps (75 passes) + refinement (≤ 24) = 99 passes.
    Measured (docs/reproduction-robust.md, 200 MNIST test points, 1000-step reference): 0.982 optimality on
    the standard LeNet, 0.62 on the PGD-trained one — where DDN alone with all 100 passes (49 steps) does
    as well (standard, 0.983) or better (PGD-AT, 0.764): the finishing step's premise did not hold there.

    Parameters
    ----------
    budget : int ≥ 3 (+1 without labels) — passes per point; one DDN step and its final check need 3.
    labels_given : whether the caller passes the labels (else one forward pass predicts them).

    Returns
    -------
    BudgetPlan — ``worst_case_passes ≤ budget``.

    Raises
    ------
    InvalidInputError
        budget not an integer or below the minimum.
    """
    label_passes = 0 if labels_given else 1
    b = check_int("budget", budget, 3 + label_passes)
    finish = _refine_passes(_FINISH_ITERS, _FINISH_DEEPFOOL, _FINISH_SEARCH)
    steps = (b - label_passes - finish - 1) // 2
    if steps >= _FINISH_MIN_DDN_STEPS:
        return BudgetPlan(b, label_passes, steps, _FINISH_ITERS, _FINISH_DEEPFOOL, _FINISH_SEARCH, finish)
    return BudgetPlan(b, label_passes, (b - label_passes - 1) // 2, 0, 0, 0, 0)


def minimal_perturbation(
    clf: Classifier,
    xs: Tensor,
    labels: Tensor | None = None,
    *,
    attacks: Sequence[str] | None = None,
    budget: int | None = None,
    overshoot: float = 0.02,
    max_iter: int = 50,
    refine_iters: int = 3,
    fmn_steps: int = 100,
    fmn_max_stepsize: float = 1.0,
    ddn_steps: int = 100,
    ddn_init_norm: float = 1.0,
) -> MinimalPerturbation:
    """The distance to the boundary as the best of an ensemble of minimal-norm ℓ2 attacks.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) pixel-space images in ``clf.bounds``.
    labels : (N,) int or None — the labels to move away from (default ``k_hat(x)``).
    attacks : distinct names among :data:`MINIMAL_ATTACKS` (default: all four; ``"deepfool_refined"``
        starts from box DeepFool's perturbation, computed even when ``"deepfool_box"`` is not listed).
    budget : int or None — forward + backward passes per point for the whole call. None (default): the
        attacks run with their own settings (≈ 650 passes per point on MNIST LeNet). An integer B: the
        attacks are planned by :func:`budget_plan` instead — DDN with most of B, then
        ``"ddn_refined"``, :func:`refine_on_boundary` on DDN's result — so ``total_passes ≤ B``
        (``attacks`` must then be None; the plan sets DDN's steps and the refinement, and the DeepFool,
        FMN, ``ddn_steps`` and ``refine_iters`` settings are not used).
    overshoot, max_iter : DeepFool's settings (``overshoot`` also the refinement's);
        refine_iters : projection steps of the refinement.
    fmn_steps, fmn_max_stepsize : FMN's iterations and largest step (pixel units; ≈ 0.1 suits 8×8
        digits, where distances are ≈ 0.5).
    ddn_steps, ddn_init_norm : DDN's iterations and first norm.

    Returns
    -------
    MinimalPerturbation

    Raises
    ------
    InvalidInputError
        unknown or repeated attack names; bad images or labels; a budget that is not an integer ≥ 3
        (≥ 4 without labels), or a budget together with ``attacks``.

    References
    ----------
    Issue 21 item 2; Moosavi-Dezfooli et al., CVPR 2016; Pintor et al., NeurIPS 2021; Rony et al.,
    CVPR 2019; Cinà et al., AAAI 2025 (optimality).
    """
    from .deepfool import deepfool

    if budget is not None:
        if attacks is not None:
            raise InvalidInputError("give either attacks or a budget (the budget plans the attacks itself), not both")
        return _budgeted(clf, xs, labels, budget, overshoot=overshoot, ddn_init_norm=ddn_init_norm)
    if attacks is None:
        attacks = MINIMAL_ATTACKS
    names = tuple(str(a) for a in attacks)
    if not names or len(set(names)) != len(names) or any(a not in MINIMAL_ATTACKS for a in names):
        raise InvalidInputError(
            f"attacks must be distinct names among {', '.join(MINIMAL_ATTACKS)}, got {list(attacks)!r}"
        )
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach().cpu()
    y = _check_labels(clf, x, labels)
    n = x.shape[0]
    results: dict[str, MinimalAttackResult] = {}
    df_passes = 0
    if "deepfool_box" in names or "deepfool_refined" in names:
        res = deepfool(clf, x, norm=2, overshoot=overshoot, max_iter=max_iter, clip=True)
        ok = res.converged & (res.label == y)  # DeepFool moves away from k_hat(x)
        df_passes = -(-(res.n_forward + res.n_backward) // max(1, math.ceil(n / 256)))
        results["deepfool_box"] = _finish(x, res.r, ok, res.n_forward, res.n_backward)
        if "deepfool_refined" in names:
            ref = refine_on_boundary(clf, x, res.r, y, iters=refine_iters, overshoot=overshoot)
            results["deepfool_refined"] = ref
    if "fmn" in names:
        results["fmn"] = _fmn(clf, x, y, steps=fmn_steps, max_stepsize=fmn_max_stepsize)
    if "ddn" in names:
        results["ddn"] = ddn(clf, x, y, steps=ddn_steps, init_norm=ddn_init_norm)
    passes = [df_passes if a == "deepfool_box" else results[a].n_forward + results[a].n_backward for a in names]
    total = sum(passes) + (df_passes if "deepfool_box" not in names and df_passes else 0)
    return _ensemble(x, y, names, results, passes, total + (1 if labels is None else 0))


def _ensemble(
    x: Tensor, y: Tensor, names: tuple[str, ...], results: dict[str, MinimalAttackResult], passes: list[int], total: int
) -> MinimalPerturbation:
    """Per point the smallest successful perturbation among ``results``."""
    n = x.shape[0]
    norms = torch.stack([results[a].norms for a in names])
    success = torch.stack([results[a].success for a in names])
    best = norms.argmin(0)
    distance = norms.gather(0, best[None]).squeeze(0)
    stacked = torch.stack([results[a].delta for a in names])
    delta = stacked[best, torch.arange(n)]
    found = torch.isfinite(distance)
    delta = torch.where(_view(found, delta), delta, torch.zeros_like(delta))
    winner = tuple(names[int(b)] if bool(f) else "" for b, f in zip(best, found, strict=True))
    return MinimalPerturbation(
        distance=distance,
        delta=delta,
        winner=winner,
        attacks=names,
        norms=norms,
        success=success,
        label=y,
        passes=torch.tensor(passes, dtype=torch.long),
        total_passes=int(total),
    )


def _budgeted(
    clf: Classifier,
    xs: Tensor,
    labels: Tensor | None,
    budget: int,
    *,
    overshoot: float,
    ddn_init_norm: float,
) -> MinimalPerturbation:
    """:func:`minimal_perturbation` within ``budget`` passes per point (the plan of :func:`budget_plan`)."""
    plan = budget_plan(budget, labels_given=labels is not None)
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach().cpu()
    y = _check_labels(clf, x, labels)
    results = {"ddn": ddn(clf, x, y, steps=plan.ddn_steps, init_norm=ddn_init_norm)}
    names: tuple[str, ...] = ("ddn",)
    if plan.refine_iters:
        results["ddn_refined"] = refine_on_boundary(
            clf,
            x,
            results["ddn"].delta,
            y,
            iters=plan.refine_iters,
            deepfool_steps=plan.refine_deepfool_steps,
            search_steps=plan.refine_search_steps,
            overshoot=overshoot,
        )
        names = ("ddn", "ddn_refined")
    passes = [results[a].n_forward + results[a].n_backward for a in names]
    total = plan.label_passes + sum(passes)
    if total > plan.budget:  # the plan's worst case is ≤ budget by construction; a broken count must not pass silently
        raise RuntimeError(f"budgeted minimal perturbation used {total} passes per point, budget {plan.budget}")
    return _ensemble(x, y, names, results, passes, total)
