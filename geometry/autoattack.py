"""Robust accuracy a reviewer accepts: an AutoAttack-style ensemble, per point the strongest attack.

:func:`autoattack` runs, in order, on the points every earlier attack failed on (AutoAttack's
cascade):

* ``"apgd-ce"`` — APGD on the cross-entropy: PGD with momentum 0.75 and a step size that starts at
  2ε and is halved at checkpoints ``p_j`` (p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1}
  − 0.03, 0.06)) when fewer than ρ = 0.75 of the steps since the last checkpoint increased the loss,
  restarting from the best point (Croce & Hein, ICML 2020, Algorithm 1 and §3.2);
* ``"apgd-t"`` — the same on the targeted DLR loss ``−(z_y − z_t) / (z_π1 − ½(z_π3 + z_π4))``, one
  run per target among the 9 highest other classes (§4, Eq. 7);
* ``"fab-t"`` — targeted FAB (Croce & Hein, ICML 2020b), part of AutoAttack's *standard* version;
* ``"square"`` — the gradient-free Square Attack, 5000 queries (Andriushchenko, Croce, Flammarion,
  Hein, ECCV 2020, Algorithms 1–3): a black-box attack that does not use gradients, so it is the
  check for gradient masking (:mod:`geometry.masking`);
* ``"apgd-dlr"`` — untargeted APGD on the DLR loss (AutoAttack's *plus* version).

The attacks themselves are the authors' implementation as packaged on PyPI (``pyautoattack``,
MIT licence), run with AutoAttack's standard settings. This module adapts them to the atlas's
conventions: pixel space with the classifier's ``bounds`` (the package assumes [0, 1], so the
network is seen through the affine map ``u ↦ lo + (hi − lo)·u`` and ε is divided by ``hi − lo``),
any floating dtype, randomness from ``random_state`` (the package seeds the *global* generator: it
runs inside :func:`torch.random.fork_rng`, so the caller's global state is left as it was), and
each adversarial example is re-checked here (label changed, inside the ε-ball and the box) before
it counts.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .classifier import Classifier, check_images
from .errors import InvalidInputError
from .progress import ProgressFn
from .validation import as_generator, check_int, check_norm

__all__ = [
    "ENSEMBLE_ATTACKS",
    "DEFAULT_ENSEMBLE",
    "STANDARD_AUTOATTACK",
    "AutoAttackResult",
    "autoattack",
]

#: the attacks :func:`autoattack` knows, in AutoAttack's names
ENSEMBLE_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square", "apgd-dlr")
#: the atlas's ensemble: two white-box APGD runs and the black-box Square as the masking check
DEFAULT_ENSEMBLE = ("apgd-ce", "apgd-t", "square")
#: AutoAttack's standard version (Croce & Hein 2020, §5), the reference
STANDARD_AUTOATTACK = ("apgd-ce", "apgd-t", "fab-t", "square")

#: relative slack for the re-check of ‖x_adv − x‖ ≤ ε (the package works in float32)
_EPS_SLACK = 1e-5


@dataclass(frozen=True)
class AutoAttackResult:
    """Result of :func:`autoattack` (CPU tensors).

    Attributes
    ----------
    x_adv : (N, C, H, W), dtype of the input — for a broken point the adversarial image found
        (in ``bounds``, ‖x_adv − x‖_p ≤ eps); otherwise ``x`` itself.
    robust : (N,) bool — correctly classified and no attack changed the label within the ε-ball.
    clean : (N,) bool — correctly classified without perturbation.
    broken_by : tuple of N str — the first attack (in ``attacks`` order) that broke the point;
        ``"clean"`` for a point misclassified already, ``""`` for a robust one.
    attacks : tuple of A str — the attacks run, in order.
    success : (A, N) bool — attack a changed the label of point n (an attack only runs on the points
        the earlier ones left robust, unless ``cascade=False``).
    accuracy_after : (A,) float64 — robust accuracy after attacks 0..a (the last entry is
        :attr:`robust_accuracy`), in [0, 1].
    eps : float — radius in pixel units; norm : 2.0 or inf.
    n_forward : int — images passed through the network (forward passes per point ≈ n_forward / N).
    messages : tuple of str — warnings the attacks raised (e.g. zero gradients), verbatim.
    """

    x_adv: Tensor
    robust: Tensor
    clean: Tensor
    broken_by: tuple[str, ...]
    attacks: tuple[str, ...]
    success: Tensor
    accuracy_after: Tensor
    eps: float
    norm: float
    n_forward: int
    messages: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.robust.shape[0])

    @property
    def robust_accuracy(self) -> float:
        """Fraction of points no attack broke (the ensemble's robust accuracy), in [0, 1]."""
        return float(self.robust.double().mean()) if len(self) else float("nan")

    @property
    def clean_accuracy(self) -> float:
        """Fraction of points correctly classified without perturbation, in [0, 1]."""
        return float(self.clean.double().mean()) if len(self) else float("nan")

    def broken(self, attack: str) -> int:
        """Number of points that ``attack`` was the first to break."""
        return sum(b == attack for b in self.broken_by)


class _UnitBox(nn.Module):
    """The network seen from the unit box: ``u ∈ [0, 1]^d ↦ f(lo + (hi − lo)·u)``, float32 logits.

    Counts the images it is given (``n_images``), so the caller can report forward passes.
    """

    def __init__(self, network: nn.Module, lo: float, hi: float, dtype: torch.dtype, device: torch.device):
        super().__init__()
        self.network = network
        self.lo, self.scale = float(lo), float(hi - lo)
        self.dtype, self.device = dtype, device
        self.n_images = 0

    def forward(self, u: Tensor) -> Tensor:
        self.n_images += int(u.shape[0])
        x = self.lo + self.scale * u.to(device=self.device, dtype=self.dtype)
        return self.network(x).float()


def _make_attack(
    name: str,
    model: nn.Module,
    *,
    eps: float,
    norm: str,
    seed: int,
    n_iter: int,
    n_target_classes: int,
    square_queries: int,
    device: torch.device,
) -> Any:
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    from pyautoattack.fab_pt import FABAttack_PT
    from pyautoattack.square import SquareAttack

    if name in ("apgd-ce", "apgd-dlr"):
        return APGDAttack(
            model,
            n_iter=n_iter,
            norm=norm,
            n_restarts=1,
            eps=eps,
            seed=seed,
            loss="ce" if name == "apgd-ce" else "dlr",
            eot_iter=1,
            rho=0.75,
            device=device,
        )
    if name == "apgd-t":
        attack = APGDAttack_targeted(
            model, n_iter=n_iter, norm=norm, n_restarts=1, eps=eps, seed=seed, eot_iter=1, rho=0.75, device=device
        )
        attack.n_target_classes = n_target_classes
        return attack
    if name == "fab-t":
        return FABAttack_PT(
            model,
            norm=norm,
            n_restarts=1,
            n_iter=n_iter,
            eps=eps,
            seed=seed,
            targeted=True,
            device=device,
            n_target_classes=n_target_classes,
        )
    return SquareAttack(
        model,
        norm=norm,
        n_queries=square_queries,
        eps=eps,
        p_init=0.8,
        n_restarts=1,
        seed=seed,
        device=device,
        resc_schedule=False,
    )


def _check_eps(eps: float) -> float:
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise InvalidInputError(f"eps must be a number > 0, got {eps!r}") from None
    if not math.isfinite(e) or e <= 0:
        raise InvalidInputError(f"eps must be a finite number > 0, got {eps!r}")
    return e


def autoattack(
    clf: Classifier,
    xs: Tensor,
    labels: Tensor,
    *,
    eps: float,
    norm: float = math.inf,
    attacks: Sequence[str] = DEFAULT_ENSEMBLE,
    n_iter: int = 100,
    n_target_classes: int = 9,
    square_queries: int = 5000,
    cascade: bool = True,
    random_state: int | torch.Generator = 0,
    batch_size: int = 500,
    progress: ProgressFn | None = None,
) -> AutoAttackResult:
    """Robust accuracy at radius ``eps`` from an ensemble of attacks, AutoAttack's way.

    Each attack in ``attacks`` runs on the correctly classified points that no earlier attack broke
    (``cascade=False``: on every correctly classified point, so each attack's own success rate is
    known — the masking check compares them). A point is robust when no attack changed its label;
    every adversarial example is re-checked here: label ≠ ``labels``, ‖x_adv − x‖_p ≤ eps (relative
    slack 1e-5 for the float32 arithmetic of the attacks), inside ``clf.bounds``.

    Parameters
    ----------
    clf : Classifier — differentiated through ``clf.network`` (logits).
    xs : (N, C, H, W) pixel-space images in ``clf.bounds`` (never modified).
    labels : (N,) int — ground-truth labels.
    eps : float > 0 — radius of the ℓp ball, pixel units.
    norm : 2 or inf.
    attacks : names among :data:`ENSEMBLE_ATTACKS`, distinct, run in this order; default
        :data:`DEFAULT_ENSEMBLE` (APGD-CE, APGD-T, Square); :data:`STANDARD_AUTOATTACK` adds FAB-T
        (the reference).
    n_iter : iterations of APGD / FAB (AutoAttack: 100).
    n_target_classes : targets of APGD-T / FAB-T (AutoAttack: 9), capped at L − 1.
    square_queries : queries of Square (AutoAttack: 5000).
    cascade : bool — run an attack only on the points the earlier ones left robust (default).
    random_state : int or torch.Generator — seeds the attacks (the global RNG is restored after).
    batch_size : points per chunk.
    progress : called ``progress(fraction, message)`` after each attack's chunk (the share of the
        attacks done; an attack's cost depends on how many points the earlier ones left).

    Returns
    -------
    AutoAttackResult

    Raises
    ------
    InvalidInputError
        bad images, labels, eps, norm, unknown or repeated attack names, fewer than 4 classes with a
        DLR attack (its denominator needs the 3rd and 4th largest logits), ℓ2 Square on images
        smaller than 5×5.

    References
    ----------
    Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
    parameter-free attacks", ICML 2020 (Algorithm 1, Eq. 6–7, §5 standard version); Andriushchenko
    et al., "Square Attack", ECCV 2020; implementation: ``pyautoattack`` (github.com/fra31/auto-attack).
    """
    p = check_norm(norm)
    eps = _check_eps(eps)
    names = tuple(str(a) for a in attacks)
    if not names or len(set(names)) != len(names) or any(a not in ENSEMBLE_ATTACKS for a in names):
        raise InvalidInputError(
            f"attacks must be distinct names among {', '.join(ENSEMBLE_ATTACKS)}, got {list(attacks)!r}"
        )
    if clf.num_classes < 4 and any(a in ("apgd-t", "apgd-dlr") for a in names):
        raise InvalidInputError(f"the DLR loss needs at least 4 classes, the classifier has {clf.num_classes}")
    if "square" in names and not math.isinf(p) and min(clf.input_shape[1:]) < 5:
        raise InvalidInputError(
            f"Square's ℓ2 version needs images of at least 5×5 pixels (its initial stripes), got {clf.input_shape[1:]}"
        )
    n_iter = check_int("n_iter", n_iter, 1)
    n_target_classes = min(check_int("n_target_classes", n_target_classes, 1), clf.num_classes - 1)
    square_queries = check_int("square_queries", square_queries, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach().cpu()
    n = x.shape[0]
    y = torch.as_tensor(labels).reshape(-1)
    if y.shape != (n,) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise InvalidInputError(f"labels must be {n} integers (one per image), got shape {tuple(y.shape)} {y.dtype}")
    y = y.long().cpu()
    lo, hi = clf.bounds
    scale = hi - lo
    if not math.isfinite(scale):
        raise InvalidInputError(f"autoattack needs finite bounds, the classifier has {clf.bounds}")
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=as_generator(random_state)))
    dev = clf.device
    model = _UnitBox(clf.network, lo, hi, clf.dtype, dev)
    norm_name = "Linf" if math.isinf(p) else "L2"

    clean = clf.predict(x).cpu() == y
    robust = clean.clone()
    success = torch.zeros((len(names), n), dtype=torch.bool)
    broken_by = ["" if bool(c) else "clean" for c in clean]
    x_adv = x.clone()
    acc_after = []
    messages: list[str] = []
    fork_devices = [dev] if dev.type == "cuda" else []
    report = progress or (lambda f, m: None)
    for a, name in enumerate(names):
        todo = (robust if cascade else clean).nonzero().squeeze(1)
        report(a / len(names), f"{name} on {todo.numel()} points")
        for s in range(0, todo.numel(), batch_size):
            idx = todo[s : s + batch_size]
            u = ((x[idx] - lo) / scale).to(device=dev, dtype=torch.float32).clamp(0.0, 1.0)
            attack = _make_attack(
                name,
                model,
                eps=eps / scale,
                norm=norm_name,
                seed=seed,
                n_iter=n_iter,
                n_target_classes=n_target_classes,
                square_queries=square_queries,
                device=dev,
            )
            with torch.random.fork_rng(devices=fork_devices), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.random.manual_seed(seed)
                u_adv = attack.perturb(u, y[idx].to(dev))
            messages.extend(f"{name}: {w.message}" for w in caught)
            xa = (lo + scale * u_adv.detach().to(torch.float64)).cpu().clamp(lo, hi).to(x.dtype)
            delta = (xa - x[idx]).flatten(1).double()
            within = torch.linalg.vector_norm(delta, ord=p, dim=1) <= eps * (1 + _EPS_SLACK) + 1e-12
            ok = within & (clf.predict(xa).cpu() != y[idx])
            success[a, idx] = ok
            newly = ok & robust[idx]
            for i in idx[newly].tolist():
                broken_by[i] = name
            x_adv[idx[newly]] = xa[newly]
            robust[idx[ok]] = False
            done = min(s + batch_size, todo.numel()) / max(1, todo.numel())
            report((a + done) / len(names), f"{name}: {min(s + batch_size, todo.numel())} of {todo.numel()} points")
        acc_after.append(float(robust.double().mean()) if n else math.nan)
    return AutoAttackResult(
        x_adv=x_adv,
        robust=robust,
        clean=clean,
        broken_by=tuple(broken_by),
        attacks=names,
        success=success,
        accuracy_after=torch.tensor(acc_after, dtype=torch.float64),
        eps=eps,
        norm=p,
        n_forward=model.n_images,
        messages=tuple(dict.fromkeys(messages)),
    )
