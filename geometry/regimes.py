"""Training regimes of the zoo: what loss one training step minimises (issue 11, DESIGN §7).

A regime is a function ``step(ctx, xb, yb) -> loss`` (a scalar tensor to back-propagate) registered
in :data:`TRAINING_REGIMES` under its name. A :class:`geometry.zoo.ZooEntry` names its regime and
parameters (``regime="pgd-at", regime_params={"eps": 0.1, "steps": 5}``); both go into the recipe,
so the cache key changes with them. ``xb`` are *pixel-space* images in ``ctx.bounds`` and
``ctx.network`` maps pixels to logits with the normalisation inside (train mode), so attacks and
curvature are measured in pixel units, as everywhere in the atlas.

Registered regimes
------------------
``standard``
    cross-entropy ``ℓ(x) = CE(f(x), y)``.
``pgd-at``
    Madry et al., "Towards deep learning models resistant to adversarial attacks", ICLR 2018, Eq. (2.1):
    ``min_θ E max_{‖δ‖∞ ≤ ε} ℓ(x + δ)``, the inner maximisation by ℓ∞ PGD with random start.
    Parameters: ``eps``, ``steps``, ``step_size`` (default ``2.5 ε / steps``; with a warm-up it
    scales with the current ε), ``eps_ramp_epochs`` (ε grows linearly over the first epochs; 0: none —
    without it, a LeNet at MNIST ε = 0.3 collapsed to one class in 4 epochs, measured).
``fgsm-at``
    Wong, Rice, Kolter, "Fast is better than free: revisiting adversarial training", ICLR 2020, Alg. 3:
    ``δ ~ U[−ε, ε]``, one FGSM step of size ``α = 1.25 ε``, projected back to the ε-cube.
    Parameters: ``eps``, ``alpha_factor`` (default 1.25).
``cure``
    Moosavi-Dezfooli, Fawzi, Uesato, Frossard, "Robustness via curvature regularization, and vice
    versa", CVPR 2019, §4, Eq. (5)–(6): ``ℓ + λ ‖∇ℓ(x + h z) − ∇ℓ(x)‖₂²`` with
    ``z = sign(∇ℓ(x)) / ‖sign(∇ℓ(x))‖₂`` (held fixed), trained by double backprop, usually as
    fine-tuning (``ZooEntry.init_from``). Parameters: ``lambda_`` (λ), ``h`` (final scale, pixel
    units), ``h_start`` (the scale of the first epoch; ``h`` rises linearly to the final value over
    ``h_ramp_epochs`` epochs, default all).

Registering another regime (e.g. Lipschitz-margin training)
-----------------------------------------------------------
::

    from geometry.regimes import TRAINING_REGIMES, RegimeContext

    def lmt_step(ctx: RegimeContext, xb, yb):
        logits = ctx.network(xb)
        ...  # use ctx.params, ctx.epoch, ctx.generator (never the global RNG)
        return loss

    TRAINING_REGIMES["lmt"] = lmt_step

then a ``ZooEntry(..., regime="lmt", regime_params={...})``. ``ctx.model`` is the module being
trained (without normalisation), for regimes that need its layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .attacks import pgd_perturbation
from .errors import InvalidInputError

__all__ = ["RegimeContext", "RegimeStep", "TRAINING_REGIMES", "cure_penalty", "cure_h", "check_regime"]


@dataclass(frozen=True)
class RegimeContext:
    """What a regime step may use besides the batch.

    Attributes
    ----------
    network : callable — pixels (n, C, H, W) → logits (n, L), normalisation included, train mode.
    model : nn.Module — the module being trained (what the zoo stores).
    bounds : (low, high) — the pixel box.
    params : dict — the entry's ``regime_params``.
    epoch, epochs : int — current epoch (0-based) and total.
    generator : torch.Generator — the training run's seeded generator.
    """

    network: Callable[[Tensor], Tensor]
    model: nn.Module
    bounds: tuple[float, float]
    params: dict = field(default_factory=dict)
    epoch: int = 0
    epochs: int = 1
    generator: torch.Generator | None = None


RegimeStep = Callable[[RegimeContext, Tensor, Tensor], Tensor]


def _standard(ctx: RegimeContext, xb: Tensor, yb: Tensor) -> Tensor:
    return F.cross_entropy(ctx.network(xb), yb)


def _pgd_at(ctx: RegimeContext, xb: Tensor, yb: Tensor) -> Tensor:
    eps = float(ctx.params["eps"])
    ramp = int(ctx.params.get("eps_ramp_epochs", 0))
    if ramp > 0:  # ε warm-up: ε·(epoch+1)/ramp for the first ``ramp`` epochs
        eps *= min(1.0, (ctx.epoch + 1) / ramp)
    steps = int(ctx.params.get("steps", 7))
    full = float(ctx.params["eps"])
    alpha = float(ctx.params.get("step_size", 2.5 * full / max(steps, 1))) * (eps / full if full > 0 else 1.0)
    x_adv, _, _ = pgd_perturbation(
        ctx.network,  # type: ignore[arg-type]
        xb,
        yb,
        eps=eps,
        norm=math.inf,
        steps=steps,
        step_size=alpha,
        bounds=ctx.bounds,
        generator=ctx.generator,
    )
    return F.cross_entropy(ctx.network(x_adv), yb)


def _fgsm_at(ctx: RegimeContext, xb: Tensor, yb: Tensor) -> Tensor:
    eps = float(ctx.params["eps"])
    alpha = float(ctx.params.get("alpha_factor", 1.25)) * eps
    lo, hi = ctx.bounds
    u = torch.rand(xb.shape, generator=ctx.generator, dtype=torch.float64).to(xb)
    delta = ((2 * u - 1) * eps).requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(F.cross_entropy(ctx.network((xb + delta).clamp(lo, hi)), yb), delta)
    delta = (delta.detach() + alpha * g.sign()).clamp(-eps, eps)
    return F.cross_entropy(ctx.network((xb + delta).clamp(lo, hi)), yb)


def cure_h(params: dict, epoch: int, epochs: int) -> float:
    """The CURE scale ``h`` of ``epoch`` (0-based): linear from ``h_start`` to ``h`` over ``h_ramp_epochs``."""
    h = float(params.get("h", 1.5))
    h0 = float(params.get("h_start", h))
    ramp = int(params.get("h_ramp_epochs", epochs))
    if ramp <= 1:
        return h
    t = min(epoch / (ramp - 1), 1.0)
    return h0 + t * (h - h0)


def cure_penalty(
    loss: Callable[[Tensor], Tensor], xs: Tensor, *, h: float, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """CURE's curvature penalty ``L_r(x) = ‖∇ℓ(x + h z) − ∇ℓ(x)‖₂²`` per point, and ``ℓ(x)``.

    Parameters
    ----------
    loss : callable (n, ...) → (n,) — per-sample loss of independent samples (e.g. cross-entropy
        with ``reduction="none"``).
    xs : (n, ...) inputs (pixel space).
    h : float > 0 — the finite-difference scale, input units.
    create_graph : keep the graph (double backprop) so the penalty can be trained.

    Returns
    -------
    (penalty (n,), loss (n,)) — ``z = sign(∇ℓ(x)) / ‖sign(∇ℓ(x))‖₂`` is held fixed (detached), as
    in the paper. For a loss linear in x the penalty is 0; for ``ℓ = ½ xᵀAx`` it is ``h² ‖A z‖²``.

    References
    ----------
    Moosavi-Dezfooli et al., CVPR 2019, §4, Eq. (5)–(6) and the choice of z below Eq. (6).
    """
    if not (isinstance(h, (int, float)) and math.isfinite(h) and h > 0):
        raise InvalidInputError(f"h must be a finite number > 0, got {h!r}")
    x = xs.detach().requires_grad_(True)
    with torch.enable_grad():
        lx = loss(x)
        (g,) = torch.autograd.grad(lx.sum(), x, create_graph=create_graph)
        s = g.detach().sign()
        z = s / torch.linalg.vector_norm(s.flatten(1), dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        xh = (x.detach() + h * z).requires_grad_(True)
        (gh,) = torch.autograd.grad(loss(xh).sum(), xh, create_graph=create_graph)
    penalty = (gh - g).flatten(1).square().sum(1)
    return penalty, lx


def _cure(ctx: RegimeContext, xb: Tensor, yb: Tensor) -> Tensor:
    lam = float(ctx.params.get("lambda_", 4.0))
    h = cure_h(ctx.params, ctx.epoch, ctx.epochs)
    penalty, lx = cure_penalty(
        lambda x: F.cross_entropy(ctx.network(x), yb, reduction="none"), xb, h=h, create_graph=True
    )
    return lx.mean() + lam * penalty.mean()


TRAINING_REGIMES: dict[str, RegimeStep] = {
    "standard": _standard,
    "pgd-at": _pgd_at,
    "fgsm-at": _fgsm_at,
    "cure": _cure,
}

_REQUIRED = {"pgd-at": ("eps",), "fgsm-at": ("eps",)}


def check_regime(regime: str, params: dict) -> RegimeStep:
    """The step function of ``regime``.

    Raises
    ------
    InvalidInputError
        unknown regime, or a required parameter missing.
    """
    if regime not in TRAINING_REGIMES:
        raise InvalidInputError(f"unknown training regime {regime!r}; registered: {', '.join(TRAINING_REGIMES)}")
    missing = [k for k in _REQUIRED.get(regime, ()) if k not in params]
    if missing:
        raise InvalidInputError(f"training regime {regime!r} needs the parameters {missing}, got {sorted(params)}")
    return TRAINING_REGIMES[regime]
