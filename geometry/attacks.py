"""Adversarial attacks for robustness: PGD (ℓ∞ / ℓ2), robust accuracy, and distances to the boundary.

* :func:`pgd` — projected gradient descent on the cross-entropy loss with random start and restarts
  (Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards deep learning models resistant to adversarial
  attacks", ICLR 2018, §2–3), batched, in pixel space, iterates clipped to ``clf.bounds``.
* :func:`robust_accuracy` — accuracy under PGD at a list of ε (the robust accuracy vs ε curve).
* :func:`boundary_distance` — the distance to the decision boundary that stays meaningful on robust
  networks: the smallest successful ℓ2 perturbation among box-constrained DeepFool
  (:func:`geometry.deepfool.deepfool` with ``clip=True``) and foolbox's minimum-norm attack FMN
  (Pintor, Roli, Brendel, Biggio, "Fast minimum-norm adversarial attacks through adaptive norm
  constraints", NeurIPS 2021; ``foolbox.attacks.L2FMNAttack``), with which attack won. Unconstrained
  DeepFool (``"deepfool"``) may be added; its perturbation counts only where ``x + r`` stays in the
  pixel box (DESIGN §7, measured pitfall 2: on a PGD-trained MNIST net its median ‖r‖₂ was 35).

The PGD inner loop is also the inner maximisation of adversarial training (:mod:`geometry.regimes`),
through :func:`pgd_perturbation`, which works on a plain module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .classifier import Classifier, check_images
from .errors import InvalidInputError
from .validation import as_generator, check_float, check_int, check_labels, check_norm

__all__ = [
    "PGDResult",
    "RobustAccuracy",
    "BoundaryDistance",
    "BOUNDARY_ATTACKS",
    "pgd",
    "pgd_perturbation",
    "robust_accuracy",
    "boundary_distance",
]

BOUNDARY_ATTACKS = ("deepfool_box", "fmn", "deepfool", "ddn")


# ---------------------------------------------------------------------------- core
def _project(delta: Tensor, eps: float, p: float) -> Tensor:
    """Projection of ``delta`` (n, ...) onto the ℓp ball of radius ``eps`` (p = 2 or inf)."""
    if math.isinf(p):
        return delta.clamp(-eps, eps)
    n = torch.linalg.vector_norm(delta.flatten(1), dim=1).clamp_min(1e-12)
    factor = (eps / n).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


def _random_start(x: Tensor, eps: float, p: float, gen: torch.Generator) -> Tensor:
    """A uniform random point of the ℓp ball of radius ``eps`` (p = inf: uniform in the cube;
    p = 2: uniform in the ball: Gaussian direction, radius ∝ U^(1/d))."""
    if math.isinf(p):
        u = torch.rand(x.shape, generator=gen, dtype=torch.float64)
        return ((2 * u - 1) * eps).to(x)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    g = g / torch.linalg.vector_norm(g.flatten(1), dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
    d = x[0].numel()
    radius = torch.rand(x.shape[0], generator=gen, dtype=torch.float64) ** (1.0 / d) * eps
    return (g * radius.view(-1, *([1] * (x.dim() - 1)))).to(x)


def pgd_perturbation(
    network: nn.Module,
    x: Tensor,
    labels: Tensor,
    *,
    eps: float,
    norm: float,
    steps: int,
    step_size: float,
    bounds: tuple[float, float],
    generator: torch.Generator | None,
    stop_on_success: bool = False,
) -> tuple[Tensor, Tensor, int]:
    """One PGD run on a plain module (pixels → logits): returns ``(x_adv, success, n_steps_run)``.

    ``generator`` None: no random start (starts at ``x``). ``stop_on_success``: a sample whose label
    already differs from ``labels`` is frozen (attack evaluation); False: every sample takes every
    step (adversarial training, Madry et al. 2018). ``x_adv`` is detached; ``success`` (n,) bool is
    ``argmax f(x_adv) ≠ labels``. Parameters' gradients are not touched.
    """
    lo, hi = bounds
    x = x.detach()
    delta = torch.zeros_like(x) if generator is None else _random_start(x, eps, norm, generator)
    delta = (x + delta).clamp(lo, hi) - x
    active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    success = torch.zeros_like(active)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    n_run = 0
    for _ in range(steps):
        idx = active.nonzero().squeeze(1) if stop_on_success else None
        xa = (x + delta) if idx is None else (x[idx] + delta[idx])
        ya = labels if idx is None else labels[idx]
        if xa.shape[0] == 0:
            break
        xa = xa.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = network(xa)
            (g,) = torch.autograd.grad(loss_fn(logits, ya), xa)
        n_run += 1
        if idx is not None:
            hit = logits.detach().argmax(1) != ya
            success[idx[hit]] = True
            active[idx[hit]] = False
            keep = ~hit
            idx, g = idx[keep], g[keep]
            if idx.numel() == 0:
                break
        if math.isinf(norm):
            step = step_size * g.sign()
        else:
            gn = torch.linalg.vector_norm(g.flatten(1), dim=1).clamp_min(1e-12)
            step = step_size * g / gn.view(-1, *([1] * (g.dim() - 1)))
        if idx is None:
            new = _project(delta + step, eps, norm)
            delta = (x + new).clamp(lo, hi) - x
        else:
            new = _project(delta[idx] + step, eps, norm)
            delta[idx] = (x[idx] + new).clamp(lo, hi) - x[idx]
    x_adv = (x + delta).detach()
    with torch.no_grad():
        success = network(x_adv).argmax(1) != labels
    return x_adv, success, n_run


# ---------------------------------------------------------------------------- PGD
@dataclass(frozen=True)
class PGDResult:
    """Result of :func:`pgd` (CPU tensors, in the dtype of the input images).

    Attributes
    ----------
    x_adv : (N, C, H, W) — adversarial images in ``clf.bounds`` with ‖x_adv − x‖_p ≤ eps; for a
        sample no restart fooled, the last restart's final iterate.
    success : (N,) bool — ``k_hat(x_adv) ≠ labels`` (a misclassified x counts as a success at once).
    norms : (N,) — ‖x_adv − x‖_p in pixel units.
    eps, norm, steps, step_size, restarts — the settings (norm 2.0 or inf).
    n_forward : int — batched forward passes with gradient (one per PGD step).
    """

    x_adv: Tensor
    success: Tensor
    norms: Tensor
    eps: float
    norm: float
    steps: int
    step_size: float
    restarts: int
    n_forward: int

    def __len__(self) -> int:
        return int(self.success.shape[0])


def _check_eps(eps: object, name: str = "eps") -> float:
    return check_float(name, eps, low=0.0)


def pgd(
    clf: Classifier,
    xs: Tensor,
    labels: Tensor,
    *,
    eps: float,
    norm: float = math.inf,
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    random_state: int | torch.Generator = 0,
    batch_size: int = 512,
) -> PGDResult:
    """Projected gradient descent on the cross-entropy loss (ℓ∞ or ℓ2 ball), batched.

    Each restart starts at a uniform random point of the ε-ball (clipped to ``clf.bounds``), then
    takes ``steps`` steps ``δ ← Proj_ε(δ + α · sign(∇ℓ))`` (ℓ∞) or ``δ ← Proj_ε(δ + α ∇ℓ/‖∇ℓ‖₂)``
    (ℓ2), with ``x + δ`` clipped to the box after each step. A sample is frozen as soon as its label
    differs from ``labels`` (so the attack is at least as strong as the final-iterate variant), and
    later restarts only run on samples not yet fooled.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) pixel-space images (never modified).
    labels : (N,) int — the labels to move away from (ground truth for robust accuracy, or
        ``clf.predict(xs)``).
    eps : float ≥ 0 — radius of the ℓp ball, pixel units.
    norm : 2 or inf.
    steps : int ≥ 0; step_size : α in pixel units, default ``2.5 · eps / steps`` (Madry et al.).
    restarts : int ≥ 1; random_state : int or torch.Generator (random starts).
    batch_size : samples per chunk.

    Returns
    -------
    PGDResult

    Raises
    ------
    InvalidInputError
        bad images, labels, eps, norm, steps, restarts or step size.

    References
    ----------
    Madry et al., ICLR 2018, Eq. (2) and §3 (PGD with random restarts).
    """
    p = check_norm(norm)
    eps = _check_eps(eps)
    steps = check_int("steps", steps, 0)
    restarts = check_int("restarts", restarts, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach()
    y = check_labels(labels, x.shape[0])
    alpha = 2.5 * eps / max(steps, 1) if step_size is None else _check_eps(step_size, "step_size")
    gen = as_generator(random_state)
    dev = next((t.device for t in clf.network.parameters()), torch.device("cpu"))
    wdtype = clf.dtype
    in_dtype = x.dtype
    x_adv = x.clone()
    success = torch.zeros(x.shape[0], dtype=torch.bool)
    n_fwd = 0
    for _ in range(restarts):
        todo = (~success).nonzero().squeeze(1)
        for s in range(0, todo.numel(), batch_size):
            idx = todo[s : s + batch_size]
            xb = x[idx].to(device=dev, dtype=wdtype)
            xa, ok, n_run = pgd_perturbation(
                clf.network,
                xb,
                y[idx].to(dev),
                eps=eps,
                norm=p,
                steps=steps,
                step_size=alpha,
                bounds=clf.bounds,
                generator=gen,
                stop_on_success=True,
            )
            n_fwd += n_run + 1
            x_adv[idx] = xa.detach().cpu().to(in_dtype)
            success[idx] = ok.cpu()
    norms = torch.linalg.vector_norm((x_adv - x).flatten(1), ord=p, dim=1)
    return PGDResult(
        x_adv=x_adv,
        success=success,
        norms=norms,
        eps=eps,
        norm=p,
        steps=steps,
        step_size=alpha,
        restarts=restarts,
        n_forward=n_fwd,
    )


@dataclass(frozen=True)
class RobustAccuracy:
    """Accuracy under PGD at each ε (result of :func:`robust_accuracy`).

    Attributes
    ----------
    eps : (K,) float64 — the radii, pixel units (ε = 0 gives the clean accuracy).
    accuracy : (K,) float64 — fraction of points correctly classified at every PGD iterate, in [0, 1].
    clean_accuracy : float
    norm, steps, restarts — attack settings; n : number of points.
    """

    eps: Tensor
    accuracy: Tensor
    clean_accuracy: float
    norm: float
    steps: int
    restarts: int
    n: int


def robust_accuracy(
    clf: Classifier,
    xs: Tensor,
    labels: Tensor,
    eps_list: Sequence[float],
    *,
    norm: float = math.inf,
    steps: int = 40,
    restarts: int = 1,
    random_state: int | torch.Generator = 0,
    batch_size: int = 512,
) -> RobustAccuracy:
    """Robust accuracy vs ε: the fraction of ``xs`` that PGD (:func:`pgd`) cannot push off ``labels``.

    Raises
    ------
    InvalidInputError
        empty ``eps_list`` or any argument :func:`pgd` refuses.

    References
    ----------
    Madry et al., ICLR 2018, Fig. 4 (accuracy vs ε); CURE, CVPR 2019, Table 1 (PGD accuracy).
    """
    eps_values = [_check_eps(e) for e in eps_list]
    if not eps_values:
        raise InvalidInputError("eps_list must hold at least one radius")
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs")
    y = check_labels(labels, x.shape[0])
    gen = as_generator(random_state)
    clean = clf.predict(x) == y
    acc = []
    for e in eps_values:
        if e == 0:
            acc.append(float(clean.double().mean()))
            continue
        res = pgd(clf, x, y, eps=e, norm=norm, steps=steps, restarts=restarts, random_state=gen, batch_size=batch_size)
        acc.append(float((~res.success).double().mean()))
    return RobustAccuracy(
        eps=torch.tensor(eps_values, dtype=torch.float64),
        accuracy=torch.tensor(acc, dtype=torch.float64),
        clean_accuracy=float(clean.double().mean()),
        norm=check_norm(norm),
        steps=steps,
        restarts=restarts,
        n=int(x.shape[0]),
    )


# ---------------------------------------------------------------------------- boundary distance
@dataclass(frozen=True)
class BoundaryDistance:
    """Distance to the decision boundary per point: the smallest successful ℓ2 perturbation of several attacks.

    Attributes
    ----------
    distance : (N,) float64 — smallest successful ‖δ‖₂ in pixel units (inf where no attack succeeded).
    delta : (N, C, H, W) — the winning perturbation (zeros where none succeeded); ``x + delta`` lies in
        ``bounds`` unless the winner is ``"deepfool"`` — which only counts inside the box, so always.
    winner : tuple of N str — the attack that found ``distance`` ("" where none succeeded).
    attacks : tuple of A str — the attacks run, in order.
    norms : (A, N) float64 — each attack's ‖δ‖₂, inf where it failed (or, for unconstrained
        DeepFool, left the pixel box).
    success : (A, N) bool.
    label : (N,) int64 — k_hat(x), the label the attacks move away from.
    left_box : (N,) bool — unconstrained DeepFool's ``x + r`` left ``bounds`` (all False if
        ``"deepfool"`` was not run).
    """

    distance: Tensor
    delta: Tensor
    winner: tuple[str, ...]
    attacks: tuple[str, ...]
    norms: Tensor
    success: Tensor
    label: Tensor
    left_box: Tensor

    def __len__(self) -> int:
        return int(self.distance.shape[0])

    def wins(self, attack: str) -> int:
        """Number of points where ``attack`` gave the smallest distance."""
        return sum(w == attack for w in self.winner)


def _fmn(clf: Classifier, x: Tensor, label: Tensor, *, steps: int, max_stepsize: float) -> tuple[Tensor, Tensor]:
    """foolbox's ``L2FMNAttack`` on ``clf.network`` within ``clf.bounds``: (x_adv, success)."""
    import foolbox as fb  # an optional-feeling import kept local: foolbox pulls in eagerpy, gitpython

    dev = next((t.device for t in clf.network.parameters()), torch.device("cpu"))
    fmodel = fb.PyTorchModel(clf.network, bounds=clf.bounds, device=dev)
    attack = fb.attacks.L2FMNAttack(steps=steps, max_stepsize=max_stepsize)
    xd = x.to(device=dev, dtype=clf.dtype)
    _, clipped, ok = attack(fmodel, xd, fb.criteria.Misclassification(label.to(dev)), epsilons=None)
    return clipped.detach().cpu(), ok.detach().cpu()


def boundary_distance(
    clf: Classifier,
    xs: Tensor,
    *,
    attacks: Sequence[str] = ("deepfool_box", "fmn"),
    overshoot: float = 0.02,
    max_iter: int = 50,
    fmn_steps: int = 100,
    fmn_max_stepsize: float = 1.0,
    ddn_steps: int = 100,
    ddn_init_norm: float = 1.0,
    box_tolerance: float = 1e-6,
) -> BoundaryDistance:
    """The ℓ2 distance from each x to the decision boundary of ``k_hat(x)``: the smallest successful attack.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) pixel-space images.
    attacks : names from :data:`BOUNDARY_ATTACKS`:
        ``"deepfool_box"`` — DeepFool (ℓ2) with every iterate clipped to ``clf.bounds``;
        ``"fmn"`` — foolbox's ``L2FMNAttack`` (``fmn_steps`` steps, initial step ``fmn_max_stepsize``
        in pixel units: foolbox's default 1.0 suits MNIST; on 8×8 digits, where distances are ≈ 0.5,
        0.1 finds ≈ 30 % smaller perturbations);
        ``"deepfool"`` — unconstrained DeepFool; counted only where ``x + r`` stays in the box
        (within ``box_tolerance``), and ``left_box`` marks where it did not;
        ``"ddn"`` — decoupled direction and norm (:func:`geometry.minimal.ddn`, ``ddn_steps`` steps from
        the norm ``ddn_init_norm``, pixel units): the strong minimal-norm attack of issue 21's ensemble,
        the per-point winner on 90–95 % of MNIST points (``docs/reproduction-robust.md``).
    overshoot, max_iter : DeepFool settings.

    Returns
    -------
    BoundaryDistance

    Raises
    ------
    InvalidInputError
        unknown or repeated attack names, or bad images.

    References
    ----------
    DESIGN §7 (measured pitfall 2); Moosavi-Dezfooli et al., CVPR 2016, Alg. 2; Pintor et al.,
    NeurIPS 2021 (FMN); Rony et al., CVPR 2019 (DDN).
    """
    from .deepfool import deepfool

    names = tuple(str(a) for a in attacks)
    if not names or len(set(names)) != len(names) or any(a not in BOUNDARY_ATTACKS for a in names):
        raise InvalidInputError(
            f"attacks must be distinct names among {', '.join(BOUNDARY_ATTACKS)}, got {list(attacks)!r}"
        )
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach()
    n = x.shape[0]
    lo, hi = clf.bounds
    label = clf.predict(x).cpu()
    norms = torch.full((len(names), n), math.inf, dtype=torch.float64)
    success = torch.zeros((len(names), n), dtype=torch.bool)
    deltas = []
    left_box = torch.zeros(n, dtype=torch.bool)
    for a, name in enumerate(names):
        if name in ("deepfool", "deepfool_box"):
            res = deepfool(clf, x, norm=2, overshoot=overshoot, max_iter=max_iter, clip=name == "deepfool_box")
            delta = res.r
            ok = res.converged.clone()
            if name == "deepfool":
                xa = x + delta
                outside = ((xa < lo - box_tolerance) | (xa > hi + box_tolerance)).flatten(1).any(1)
                left_box = outside & ok
                ok &= ~outside
        elif name == "ddn":
            from .minimal import ddn

            by_ddn = ddn(clf, x.cpu(), label, steps=ddn_steps, init_norm=ddn_init_norm)
            delta = by_ddn.delta.to(device=x.device, dtype=x.dtype)
            ok = by_ddn.success.clone()
        else:
            x_adv, ok = _fmn(clf, x, label, steps=fmn_steps, max_stepsize=fmn_max_stepsize)
            delta = x_adv.to(x.dtype) - x
            ok = ok & (clf.predict(x_adv.to(x.dtype)).cpu() != label)
        success[a] = ok
        nrm = torch.linalg.vector_norm(delta.flatten(1).double(), dim=1)
        norms[a] = torch.where(ok, nrm, torch.full_like(nrm, math.inf))
        deltas.append(delta)
    best = norms.argmin(0)
    distance = norms.gather(0, best[None]).squeeze(0)
    stacked = torch.stack(deltas)  # (A, N, C, H, W)
    delta = stacked[best, torch.arange(n)]
    found = torch.isfinite(distance)
    delta = torch.where(found.view(-1, *([1] * (delta.dim() - 1))), delta, torch.zeros_like(delta))
    winner = tuple(names[int(b)] if bool(f) else "" for b, f in zip(best, found, strict=True))
    return BoundaryDistance(
        distance=distance,
        delta=delta,
        winner=winner,
        attacks=names,
        norms=norms,
        success=success,
        label=label,
        left_box=left_box,
    )
