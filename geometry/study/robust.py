"""Robust training side by side (CURE, CVPR 2019, Fig. 1–2 and Table 1; DESIGN §7; issues 11, 21).

:func:`robust_study` measures one network on labelled test points: clean accuracy, ℓ∞ PGD accuracy
at ε, DeepFool's ρ_adv (unconstrained, as in the DeepFool paper) next to the distance to the
boundary that stays meaningful on robust networks — per point the smallest of the minimal-norm
ensemble (box DeepFool, its refinement on the boundary, FMN, DDN; :func:`geometry.minimal.minimal_perturbation`,
issue 21 item 2) with the attack that won — and the curvature profile of the loss (exact Lanczos
eigenvalues and the finite-difference curvature at scale h, :func:`geometry.profile.curvature_profile`).
:func:`ensemble_study` gives, on the first :attr:`EnsembleSettings.n_points` points, the robust
accuracy of the AutoAttack-style ensemble (:func:`geometry.autoattack.autoattack`) beside PGD's on
the same points, and the masking flags (:mod:`geometry.masking`); it is slower than PGD, so the pages
run it as its own background job. Cached in memory and on disk by the weights', the points' and the
settings' fingerprints. :func:`point_study` gives, at one x, the loss along the boundary direction and
along a random direction (CURE Fig. 1) and the normal cross-section.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..attacks import RobustAccuracy, pgd, robust_accuracy
from ..autoattack import DEFAULT_ENSEMBLE, ENSEMBLE_ATTACKS, autoattack
from ..classifier import Classifier
from ..deepfool import deepfool, rho_adv
from ..errors import InvalidInputError
from ..masking import MaskingFlag, deepfool_flags, ensemble_flags, model_flags
from ..minimal import MINIMAL_ATTACKS, MinimalPerturbation, minimal_perturbation
from ..profile import CurvatureProfile, curvature_profile, loss_along
from ..progress import ProgressFn, stage
from ..sections import Section, normal_section, random_direction
from ..validation import check_float, check_int
from .cache import cached_result
from .certify import structure_fingerprint
from .points import data_fingerprint, network_fingerprint
from .settings import _Settings

__all__ = [
    "RobustSettings",
    "RobustStudy",
    "EnsembleSettings",
    "EnsembleStudy",
    "ensemble_study",
    "PointStudy",
    "robust_study",
    "point_study",
    "point_distance",
    "DEFAULT_EPS",
    "fmn_stepsize",
]

#: ℓ∞ radius of the PGD accuracy by input size (d): digits 0.1, MNIST 0.3, CIFAR-10 8/255.
DEFAULT_EPS = {64: 0.1, 784: 0.3, 3072: 8 / 255}


def fmn_stepsize(d: int) -> float:
    """FMN's initial step for inputs of dimension ``d`` (pixel units): foolbox's 1.0 on MNIST-sized inputs
    (d ≥ 784), 0.1 on the 8×8 digits, where distances are ≈ 0.5 (the page's and the command line's rule)."""
    return 1.0 if d >= 784 else 0.1


@dataclass(frozen=True)
class RobustSettings(_Settings):
    """The protocol of the robust-training comparison.

    Attributes
    ----------
    n_points : int ≥ 1 — labelled test points (the first ``n_points`` of a seeded permutation).
    eps : float > 0 — ℓ∞ radius of the PGD accuracy (pixel units).
    pgd_steps, restarts : PGD settings (step 2.5ε/steps, random start).
    k : int ≥ 1 — Hessian eigenvalues per point.
    h : float > 0 — scale of the finite-difference curvature ‖∇ℓ(x + hz) − ∇ℓ(x)‖/h (pixel ℓ2).
    attacks : tuple of names of :data:`geometry.minimal.MINIMAL_ATTACKS` for the boundary distance
        (default all four: box DeepFool, its refinement, FMN, DDN — per point the smallest).
    fmn_steps, fmn_max_stepsize : FMN settings (DDN runs its 100 steps from norm 1).
    eps_factors : multiples of ``eps`` of the robust accuracy vs ε curve (0 is always added).
    seed : int ≥ 0.
    """

    n_points: int = 50
    eps: float = 0.1
    pgd_steps: int = 20
    restarts: int = 1
    k: int = 10
    h: float = 0.5
    attacks: tuple[str, ...] = MINIMAL_ATTACKS
    fmn_steps: int = 100
    fmn_max_stepsize: float = 1.0
    eps_factors: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n_points", self.n_points, 1, plain=True)
        check_int("pgd_steps", self.pgd_steps, 1, plain=True)
        check_int("restarts", self.restarts, 1, plain=True)
        check_int("k", self.k, 1, plain=True)
        check_int("fmn_steps", self.fmn_steps, 1, plain=True)
        check_int("seed", self.seed, 0, 2**63 - 1, plain=True)
        for name in ("eps", "h", "fmn_max_stepsize"):
            check_float(name, getattr(self, name), low=0.0, low_open=True, plain=True)
        if any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 10 for f in self.eps_factors):
            raise InvalidInputError(f"eps_factors must be numbers in (0, 10], got {self.eps_factors!r}")
        if not self.attacks or any(a not in MINIMAL_ATTACKS for a in self.attacks):
            raise InvalidInputError(f"attacks must be names among {', '.join(MINIMAL_ATTACKS)}, got {self.attacks!r}")


@dataclass(frozen=True)
class EnsembleSettings(_Settings):
    """The robust accuracy by the AutoAttack-style ensemble (issue 21 item 1), beside PGD's.

    The radius, PGD's steps and restarts and the seed are the :class:`RobustSettings`' (the same ε).

    Attributes
    ----------
    n_points : int ≥ 1 — test points of the comparison (the same seeded choice as
        :attr:`RobustSettings.n_points`, so at equal counts the same points; the ensemble costs ≈ 1000
        gradient steps per point plus Square's queries on the points left robust).
    attacks : names of :data:`geometry.autoattack.ENSEMBLE_ATTACKS`, run in this order (default
        APGD-CE, APGD-T, Square).
    square_queries : int ≥ 1 — Square's query budget (AutoAttack: 5000).
    """

    n_points: int = 50
    attacks: tuple[str, ...] = DEFAULT_ENSEMBLE
    square_queries: int = 5000

    def __post_init__(self) -> None:
        check_int("n_points", self.n_points, 1, plain=True)
        check_int("square_queries", self.square_queries, 1, plain=True)
        names = tuple(self.attacks)
        if not names or len(set(names)) != len(names) or any(a not in ENSEMBLE_ATTACKS for a in names):
            raise InvalidInputError(
                f"attacks must be distinct names among {', '.join(ENSEMBLE_ATTACKS)}, got {self.attacks!r}"
            )


@dataclass(frozen=True)
class RobustStudy:
    """One network's row of the comparison (result of :func:`robust_study`).

    Attributes
    ----------
    profile : CurvatureProfile — at the points, loss with their true labels.
    clean_accuracy, pgd_accuracy : float in [0, 1] — on the points; PGD ℓ∞ at ``eps``.
    eps : float.
    rho_adv : float — mean ‖r‖₂/‖x‖₂ of unconstrained DeepFool (converged points).
    deepfool_left_box : float — share of points where unconstrained DeepFool's x + r leaves the box.
    distance : (N,) float64 — the boundary distance: per point the smallest successful attack of the
        minimal-norm ensemble (ℓ2 pixel units, inf where every attack failed).
    rho_boundary : float — mean distance/‖x‖₂ over the points where an attack succeeded.
    wins : dict attack → number of points where it gave the distance (ties go to the first listed).
    n_points : int.
    curve : RobustAccuracy — PGD accuracy at ε = 0 and ``eps_factors · eps``.
    optimality : dict attack → AttackBench optimality against the ensemble's distance (Cinà et al.,
        AAAI 2025; 1 = always the best), ``"ensemble"`` included.
    flags : tuple of MaskingFlag — ``deepfool_fails`` when box DeepFool found no adversarial on more
        than 1 % of the points (:func:`geometry.masking.deepfool_flags`).
    winner : tuple of N str — per point the attack that gave the distance ("" where none succeeded).
    """

    profile: CurvatureProfile
    clean_accuracy: float
    pgd_accuracy: float
    eps: float
    rho_adv: float
    deepfool_left_box: float
    distance: torch.Tensor
    rho_boundary: float
    wins: dict
    n_points: int
    curve: RobustAccuracy
    optimality: dict = dataclasses.field(default_factory=dict)
    flags: tuple = ()
    winner: tuple = ()


@contextlib.contextmanager
def _threads_for(clf: Classifier) -> Iterator[None]:
    """One intra-op thread for tiny inputs (d < 256, 8×8 digits), as the zoo trains them: per-sample
    Lanczos HVPs and attack steps are too small to amortise thread synchronisation, and on a busy 2-core
    machine two threads were measured 5–15× slower (curvature profile of 50 points: 50 s vs 3 s)."""
    before = torch.get_num_threads()
    if clf.d < 256:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_points(clf: Classifier, xs: torch.Tensor, labels: torch.Tensor) -> None:
    if tuple(xs.shape[1:]) != tuple(clf.input_shape):
        raise InvalidInputError(
            f"{clf.name} takes images of shape {tuple(clf.input_shape)}, the points have {tuple(xs.shape[1:])}"
        )
    if labels.shape != (xs.shape[0],):
        raise InvalidInputError(f"labels must hold one label per point ({xs.shape[0]}), got {tuple(labels.shape)}")


def robust_study(
    clf: Classifier,
    xs: torch.Tensor,
    labels: torch.Tensor,
    settings: RobustSettings,
    *,
    progress: ProgressFn | None = None,
) -> RobustStudy:
    """Clean / PGD accuracy, ρ_adv, boundary distance and curvature profile of ``clf`` on ``xs``.

    Parameters
    ----------
    xs : (N, C, H, W) pixel-space test images (the first ``settings.n_points`` are used);
    labels : (N,) their true labels.

    Raises
    ------
    InvalidInputError
        points of another shape than the network's input, or labels that do not match.
    """
    xs = xs[: settings.n_points]
    labels = torch.as_tensor(labels)[: settings.n_points].long()
    _check_points(clf, xs, labels)
    key = {
        "network": network_fingerprint(clf),
        "structure": structure_fingerprint(clf),  # an upload of the same weights may be another graph
        "points": data_fingerprint(xs),
        "labels": data_fingerprint(labels.double()),
        "settings": settings.key(),
    }
    report = progress or (lambda f, m: None)

    def compute() -> RobustStudy:
        report(0.0, "PGD accuracy")
        adv = pgd(
            clf,
            xs,
            labels,
            eps=settings.eps,
            steps=settings.pgd_steps,
            restarts=settings.restarts,
            random_state=settings.seed,
        )
        report(0.05, "robust accuracy vs ε")
        curve = robust_accuracy(
            clf,
            xs,
            labels,
            [0.0, *(f * settings.eps for f in settings.eps_factors)],
            steps=settings.pgd_steps,
            restarts=settings.restarts,
            random_state=settings.seed,
        )
        report(0.15, "DeepFool ρ_adv")
        df = deepfool(clf, xs)
        lo, hi = clf.bounds
        xa = xs + df.r
        left = ((xa < lo - 1e-6) | (xa > hi + 1e-6)).flatten(1).any(1) & df.converged
        report(0.25, f"distance to the boundary (best of {', '.join(settings.attacks)})")
        bd = _minimal(clf, xs, settings)
        found = torch.isfinite(bd.distance)
        xn = torch.linalg.vector_norm(xs.flatten(1).double(), dim=1)
        rho_b = float((bd.distance[found] / xn[found]).mean()) if bool(found.any()) else math.nan
        profile = curvature_profile(
            clf,
            xs,
            labels,
            k=settings.k,
            h=settings.h,
            random_state=settings.seed,
            progress=lambda f, m: report(0.45 + 0.55 * f, m),
        )
        return RobustStudy(
            profile=profile,
            clean_accuracy=clf.accuracy(xs, labels),
            pgd_accuracy=float((~adv.success).double().mean()),
            eps=float(settings.eps),
            rho_adv=rho_adv(df, xs),
            deepfool_left_box=float(left.double().mean()),
            distance=bd.distance,
            rho_boundary=rho_b,
            wins={a: bd.wins(a) for a in bd.attacks},
            n_points=int(xs.shape[0]),
            curve=curve,
            optimality=bd.optimality(),
            flags=_deepfool_flags(bd),
            winner=tuple(bd.winner),
        )

    def compute_threads() -> RobustStudy:
        with _threads_for(clf):
            return compute()

    return cached_result("robust", key, compute_threads)


def _minimal(clf: Classifier, xs: torch.Tensor, settings: RobustSettings) -> MinimalPerturbation:
    """The minimal-norm ensemble with the settings' attacks, moving away from ``k_hat(x)``."""
    return minimal_perturbation(
        clf, xs, attacks=settings.attacks, fmn_steps=settings.fmn_steps, fmn_max_stepsize=settings.fmn_max_stepsize
    )


def _deepfool_flags(bd: MinimalPerturbation) -> tuple[MaskingFlag, ...]:
    """``deepfool_fails`` from box DeepFool's successes (when it was run)."""
    if "deepfool_box" not in bd.attacks:
        return ()
    return deepfool_flags(bd.success[bd.attacks.index("deepfool_box")])


@dataclass(frozen=True)
class EnsembleStudy:
    """Robust accuracy by PGD and by the ensemble on the same points (result of :func:`ensemble_study`).

    Attributes
    ----------
    n_points : int — points used; eps : float — ℓ∞ radius (pixel units).
    clean_accuracy, pgd_accuracy, ensemble_accuracy : float in [0, 1] — on these points; PGD with the
        :class:`RobustSettings`' steps and restarts; the ensemble per point the strongest attack.
    attacks : tuple of str — the ensemble's attacks, in order.
    accuracy_after : tuple of float — robust accuracy after each attack of the cascade.
    broken_by : dict attack → number of points that attack was the first to break.
    passes_per_point : float — network evaluations per point the ensemble used (forward images / N).
    flags : tuple of MaskingFlag — :func:`geometry.masking.model_flags` (randomised output,
        probabilities, zero gradients, dynamic forward) and :func:`geometry.masking.ensemble_flags`
        (a black-box attack beating the white-box ones).
    """

    n_points: int
    eps: float
    clean_accuracy: float
    pgd_accuracy: float
    ensemble_accuracy: float
    attacks: tuple
    accuracy_after: tuple
    broken_by: dict
    passes_per_point: float
    flags: tuple

    @property
    def gap(self) -> float:
        """PGD's accuracy minus the ensemble's (≥ 0 up to PGD's randomness: by how much PGD overestimates)."""
        return self.pgd_accuracy - self.ensemble_accuracy


def ensemble_study(
    clf: Classifier,
    xs: torch.Tensor,
    labels: torch.Tensor,
    settings: RobustSettings,
    ensemble: EnsembleSettings,
    *,
    progress: ProgressFn | None = None,
) -> EnsembleStudy:
    """Robust accuracy at ``settings.eps`` (ℓ∞) by PGD and by the ensemble on the first ``ensemble.n_points``
    of ``xs`` (true ``labels``), with the masking flags.

    Parameters
    ----------
    xs : (N, C, H, W) pixel-space test images; labels : (N,) true labels.
    settings : RobustSettings — ε, PGD's steps and restarts, the seed (its other fields are not used).
    ensemble : EnsembleSettings.

    Raises
    ------
    InvalidInputError
        points of another shape than the network's input, labels that do not match, fewer than 4
        classes with a DLR attack (APGD-T).

    References
    ----------
    Croce & Hein, ICML 2020 (AutoAttack); Madry et al., ICLR 2018 (PGD); issue 21 items 1 and 3.
    """
    xs = xs[: ensemble.n_points]
    labels = torch.as_tensor(labels)[: ensemble.n_points].long()
    _check_points(clf, xs, labels)
    used = {"eps": repr(float(settings.eps)), "steps": settings.pgd_steps, "restarts": settings.restarts}
    key = {
        "network": network_fingerprint(clf),
        "structure": structure_fingerprint(clf),  # an upload of the same weights may be another graph
        "points": data_fingerprint(xs),
        "labels": data_fingerprint(labels.double()),
        "settings": {**used, "seed": settings.seed, "ensemble": ensemble.key()},
    }
    report = progress or (lambda f, m: None)

    def compute() -> EnsembleStudy:
        report(0.0, "masking checks")
        flags = model_flags(clf, xs, labels)
        report(0.02, "PGD accuracy")
        adv = pgd(
            clf,
            xs,
            labels,
            eps=settings.eps,
            steps=settings.pgd_steps,
            restarts=settings.restarts,
            random_state=settings.seed,
        )
        ens = autoattack(
            clf,
            xs,
            labels,
            eps=settings.eps,
            attacks=ensemble.attacks,
            square_queries=ensemble.square_queries,
            random_state=settings.seed,
            progress=stage(report, 0.05, 1.0, "ensemble"),
        )
        n = max(1, len(ens))
        return EnsembleStudy(
            n_points=len(ens),
            eps=float(settings.eps),
            clean_accuracy=ens.clean_accuracy,
            pgd_accuracy=float((~adv.success).double().mean()),
            ensemble_accuracy=ens.robust_accuracy,
            attacks=tuple(ens.attacks),
            accuracy_after=tuple(float(a) for a in ens.accuracy_after),
            broken_by={a: ens.broken(a) for a in ens.attacks},
            passes_per_point=ens.n_forward / n,
            flags=(*flags, *ensemble_flags(ens)),
        )

    def compute_threads() -> EnsembleStudy:
        with _threads_for(clf):
            return compute()

    return cached_result("robust-ensemble", key, compute_threads)


@dataclass(frozen=True)
class PointStudy:
    """At one x: the loss along the boundary direction and a random one, and the normal section.

    Attributes
    ----------
    ts : (T,) float64 — steps along each direction (pixel ℓ2 units, from 0).
    loss_normal, loss_random : (T,) float64 — ``ℓ(x + t·u)`` with y = k_hat(x).
    distance : float — the boundary distance at x (inf: no attack succeeded; then the normal is
        the unconstrained DeepFool r(x)).
    winner : str — the attack that gave it ("deepfool" for the fallback).
    section : Section — decision regions on the plane (δ, v), δ the boundary perturbation.
    """

    ts: torch.Tensor
    loss_normal: torch.Tensor
    loss_random: torch.Tensor
    distance: float
    winner: str
    section: Section


def point_distance(clf: Classifier, x: torch.Tensor, settings: RobustSettings) -> MinimalPerturbation:
    """:func:`geometry.minimal.minimal_perturbation` at one x (C, H, W) with the settings' attacks (kept in memory)."""
    key = {
        "network": network_fingerprint(clf),
        "structure": structure_fingerprint(clf),
        "x": data_fingerprint(x),
        "settings": settings.key(),
    }

    def compute() -> MinimalPerturbation:
        with _threads_for(clf):
            return _minimal(clf, x.unsqueeze(0), settings)

    return cached_result("robust-distance", key, compute, disk=False)


def point_study(
    clf: Classifier,
    x: torch.Tensor,
    settings: RobustSettings,
    *,
    extent: float,
    resolution: int = 96,
    steps: int = 41,
    v_seed: int = 0,
) -> PointStudy:
    """CURE Fig. 1 at ``x`` (C, H, W): the loss along the normal (the winning boundary perturbation,
    :func:`point_distance`) and along a random unit direction, for t in
    [0, extent]; and the normal cross-section over ±extent along (δ, v) with the same random v.

    ``extent`` (pixel ℓ2) is chosen by the caller, so several networks share one window.
    """
    key = {
        "network": network_fingerprint(clf),
        "structure": structure_fingerprint(clf),  # an upload of the same weights may be another graph
        "x": data_fingerprint(x),
        "settings": settings.key(),
        "extent": repr(float(extent)),
        "resolution": int(resolution),
        "steps": int(steps),
        "v": int(v_seed),
    }

    def compute() -> PointStudy:
        with _threads_for(clf):
            return compute_point()

    def compute_point() -> PointStudy:
        bd = point_distance(clf, x, settings)
        delta, winner, dist = bd.delta[0], bd.winner[0], float(bd.distance[0])
        if not math.isfinite(dist):
            delta, winner = deepfool(clf, x.unsqueeze(0)).r[0], "deepfool"
        v = random_direction(clf.input_shape, random_state=v_seed).to(x.dtype)
        ts = torch.linspace(0.0, float(extent), steps, dtype=torch.float64)
        label = int(bd.label[0])  # the loss of the predicted class
        curves = loss_along(clf, x, label, torch.stack([delta, v]), ts)
        sec = normal_section(clf, x, delta, v, extent=float(extent), resolution=int(resolution))
        return PointStudy(
            ts=ts, loss_normal=curves[0], loss_random=curves[1], distance=dist, winner=winner, section=sec
        )

    return cached_result("robust-point", key, compute, disk=False)
