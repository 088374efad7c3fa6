"""Certified versus empirical radii (issue 12, DESIGN §8): ε_cert(x) ≤ distance ≤ ‖r(x)‖.

The Lipschitz-margin certificate (Tsuzuku et al., NeurIPS 2018) is a *lower* bound on the distance
to the decision boundary, the smallest successful attack (box-constrained DeepFool and foolbox's
FMN, :func:`geometry.attacks.boundary_distance`) an *upper* bound. One study computes both on the
first test points, the certified accuracy and the attack robustness versus ε, and checks the
inequality at every point; :func:`certified_section` draws both radii on one point's normal
cross-section. Used by the "Certified vs empirical" page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx

from ..attacks import boundary_distance
from ..certify import Certificate, SanityCheck, certified_accuracy, certify, check_certificates
from ..classifier import Classifier
from ..crown import CrownNetwork
from ..deepfool import deepfool
from ..errors import InvalidInputError
from ..lipschitz import LipschitzBound, UnsupportedLayerError, lipschitz_bound
from ..progress import ProgressFn
from ..sections import MAX_RESOLUTION, Section, normal_section, random_direction
from ..validation import check_int
from .cache import cached_result
from .points import data_fingerprint, network_fingerprint
from .settings import _Settings

__all__ = [
    "AttackStudy",
    "CertifySettings",
    "CertifyStudy",
    "CertifiedSection",
    "attack_study",
    "certify_study",
    "certified_section",
    "lipschitz_study",
    "structure_fingerprint",
]


@dataclass(frozen=True)
class CertifySettings(_Settings):
    """What defines the certified-versus-empirical comparison.

    Attributes
    ----------
    n_points : int ≥ 1 — the first test points used
    n_eps : int ≥ 2 — radii of the accuracy curves, from 0 to the largest attack distance
    attacks : tuple of str — :func:`geometry.attacks.boundary_distance` attacks for ‖r(x)‖, per point the
        smallest successful (default box DeepFool, FMN and DDN: the strong minimal-norm attack of issue 21)
    fmn_max_stepsize : float or None — FMN's initial step (pixel units); None: 0.1 for inputs of
        fewer than 256 entries (8×8 digits, distances ≈ 0.5), else foolbox's 1.0
    n_power : int ≥ 1 — power iterations per layer for the (unsound) estimate of L
    seed : int ≥ 0 — power iteration start vectors
    crown_norm : "l2", "linf" or "none" — the ball of the CROWN certificate (:mod:`geometry.crown`); an ℓ∞
        radius is also an ℓ2 certificate (the ℓ2 ball lies inside the ℓ∞ ball of the same radius), so both
        sit on the same ℓ2 ladder; "none" skips CROWN
    crown_points : int ≥ 0 — CROWN on the first ``crown_points`` of the points (a bisection of full CROWN
        passes per point: seconds per point on a LeNet); the others have no CROWN radius
    crown_tol : float in (0, 1) — relative width at which CROWN's bisection on ε stops
    """

    n_points: int = 200
    n_eps: int = 41
    attacks: tuple = ("deepfool_box", "fmn", "ddn")
    fmn_max_stepsize: float | None = None
    n_power: int = 50
    seed: int = 0
    crown_norm: str = "l2"
    crown_points: int = 20
    crown_tol: float = 0.01

    def __post_init__(self) -> None:
        check_int("n_points", self.n_points, 1, 100_000, plain=True)
        check_int("n_eps", self.n_eps, 2, 10_000, plain=True)
        check_int("n_power", self.n_power, 1, 100_000, plain=True)
        check_int("seed", self.seed, 0, 2**63 - 1, plain=True)
        if not self.attacks:
            raise InvalidInputError("attacks must name at least one attack")
        if self.fmn_max_stepsize is not None and not (0 < float(self.fmn_max_stepsize) < math.inf):
            raise InvalidInputError(f"fmn_max_stepsize must be a finite number > 0, got {self.fmn_max_stepsize!r}")
        if self.crown_norm not in ("l2", "linf", "none"):
            raise InvalidInputError(f"crown_norm must be 'l2', 'linf' or 'none', got {self.crown_norm!r}")
        check_int("crown_points", self.crown_points, 0, 100_000, plain=True)
        if not (0 < float(self.crown_tol) < 1):
            raise InvalidInputError(f"crown_tol must lie in (0, 1), got {self.crown_tol!r}")


@dataclass(frozen=True)
class CertifyStudy:
    """Certified and empirical radii of the same points.

    Attributes
    ----------
    certificate : Certificate — ε_cert(x) (sound; plain, pairwise) and the power-iteration radius
    check : SanityCheck — ε_cert(x) ≤ ‖r(x)‖₂ at every point where an attack succeeded, violations listed
    distance : (N,) float64 — ‖r(x)‖₂ of the smallest successful attack (inf where none succeeded)
    winner : tuple of N str — which attack found it
    labels : (N,) int64 — true labels
    eps : (E,) float64 — radii of the curves (pixel units, ℓ2)
    certified_accuracy : (E,) — mean[k̂ = y ∧ ε_cert ≥ ε]
    attack_accuracy : (E,) — mean[k̂ = y ∧ ‖r‖ > ε] (robust accuracy against these attacks: an upper
        bound of the true robust accuracy)
    crown : (N,) float64 or None — CROWN's certified radius of k̂(x) (:func:`geometry.crown.crown_radius`;
        NaN beyond ``crown_points``), None when CROWN was skipped or refused the network
    crown_norm : "l2" or "linf" — CROWN's ball
    crown_note : str — how CROWN ran (intermediate bounds, points), or why it did not

    The check compares the *best* certificate (:attr:`best`: the largest of every sound radius at a
    point) with the attack: every certificate ≤ every successful attack's radius is the one inequality
    that must hold.
    """

    certificate: Certificate
    check: SanityCheck
    distance: np.ndarray
    winner: tuple
    labels: np.ndarray
    eps: np.ndarray
    certified_accuracy: np.ndarray
    attack_accuracy: np.ndarray
    crown: np.ndarray | None = None
    crown_norm: str = "l2"
    crown_note: str = ""

    @property
    def crown_name(self) -> str:
        return "CROWN ℓ2" if self.crown_norm == "l2" else "CROWN ℓ∞"

    def ladder(self) -> dict[str, np.ndarray]:
        """Every sound radius per point, by name (pixel units, ℓ2; NaN where not computed), then "best certificate"."""
        cert = self.certificate
        rungs = {"global Lipschitz": np.asarray(cert.radius_plain, dtype=np.float64)}
        if cert.radius_pair is not None:
            rungs["LMT pair"] = np.asarray(cert.radius_pair, dtype=np.float64)
        if self.crown is not None:
            rungs[self.crown_name] = np.asarray(self.crown, dtype=np.float64)
        rungs["best certificate"] = self.best
        return rungs

    @property
    def best(self) -> np.ndarray:
        """(N,) the largest sound radius at each point (*the* certificate)."""
        best = np.asarray(self.certificate.radius, dtype=np.float64)
        if self.crown is not None:
            best = np.fmax(best, np.asarray(self.crown, dtype=np.float64))
        return best

    @property
    def best_name(self) -> tuple[str, ...]:
        """(N,) which bound gives :attr:`best` at each point."""
        rungs = {k: v for k, v in self.ladder().items() if k != "best certificate"}
        names = list(rungs)
        stack = np.vstack([np.nan_to_num(rungs[k], nan=-np.inf) for k in names])
        return tuple(names[i] for i in stack.argmax(0))

    def ladder_accuracy(self, name: str) -> np.ndarray:
        """(E,) certified accuracy of one rung at :attr:`eps`, over the points where it was computed."""
        radius = self.ladder()[name]
        done = np.isfinite(radius)
        correct = (self.certificate.label == self.labels) & done
        n = max(int(done.sum()), 1)
        return np.array([float(np.sum(correct & (radius >= e))) / n for e in self.eps])


def structure_fingerprint(clf: Classifier) -> str:
    """SHA-256 (16 hex digits) of the network's structure: every module's class, its ``extra_repr`` and,
    for fx / TorchScript modules, their code.

    The weights' fingerprint alone does not define the graph a bound was computed on: a TorchScript
    upload of the zoo's weights cannot be bounded, and the same weights under another forward have
    another Lipschitz constant — a cached bound must never be reused across them.
    """
    h = hashlib.sha256()
    for name, m in clf.network.named_modules():
        code = getattr(m, "code", "") if isinstance(m, (fx.GraphModule, torch.jit.ScriptModule)) else ""
        h.update(f"{name}|{type(m).__module__}.{type(m).__qualname__}|{m.extra_repr()}|{code}\n".encode())
    return h.hexdigest()[:16]


def lipschitz_study(clf: Classifier, *, n_power: int = 50, seed: int = 0) -> LipschitzBound:
    """:func:`geometry.lipschitz.lipschitz_bound`, cached in memory and on disk (weights' and structure's
    fingerprints)."""
    key = {
        "network": network_fingerprint(clf),
        "structure": structure_fingerprint(clf),
        "n_power": int(n_power),
        "seed": int(seed),
        "version": 2,
    }
    return cached_result("lipschitz", key, lambda: lipschitz_bound(clf, n_power=n_power, random_state=seed))


def _fmn_step(clf: Classifier, settings: CertifySettings) -> float:
    if settings.fmn_max_stepsize is not None:
        return float(settings.fmn_max_stepsize)
    return 0.1 if clf.d < 256 else 1.0


def certify_study(
    clf: Classifier,
    xs: torch.Tensor,
    labels: torch.Tensor | np.ndarray,
    settings: CertifySettings,
    *,
    progress: ProgressFn | None = None,
) -> CertifyStudy:
    """ε_cert(x) and ‖r(x)‖ on the first ``settings.n_points`` of ``xs``, the curves and the check.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) test images (pixel space); labels : (N,) their true labels
    settings : CertifySettings
    progress : ``progress(fraction, message)``

    Returns
    -------
    CertifyStudy — cached in memory and on disk under (network fingerprint, points, settings).

    Raises
    ------
    UnsupportedLayerError
        the network has a layer that cannot be bounded (the message names it).

    References: Tsuzuku et al., NeurIPS 2018, Prop. 1, §4.1; DESIGN §7 (pitfall 2), §8.
    """
    report = progress or (lambda f, msg: None)
    n = min(settings.n_points, len(xs))
    x = xs[:n]
    y = np.asarray(labels)[:n].astype(np.int64)
    key = {
        "network": network_fingerprint(clf),
        "structure": structure_fingerprint(clf),
        "points": data_fingerprint(x),
        "settings": settings.key(),
        "version": 4,
    }

    def compute() -> CertifyStudy:
        report(0.05, "bounding the Lipschitz constant layer by layer")
        bound = lipschitz_study(clf, n_power=settings.n_power, seed=settings.seed)
        cert = certify(clf, x, bound=bound)
        report(0.2, f"attacking {n} points ({', '.join(settings.attacks)})")
        bd = boundary_distance(clf, x, attacks=settings.attacks, fmn_max_stepsize=_fmn_step(clf, settings))
        distance = bd.distance.numpy().astype(np.float64)
        ok = np.isfinite(distance)
        crown, note = _crown_radii(clf, x, cert, distance, settings, report)
        best = cert.radius if crown is None else np.fmax(cert.radius, crown)
        check = check_certificates(
            dataclasses.replace(cert, radius=best), distance, ok, attack=" / ".join(settings.attacks)
        )
        finite = distance[ok]
        top = float(np.quantile(finite, 0.98)) if len(finite) else 1.0
        eps = np.linspace(0.0, max(top, float(np.nanmax(best)), 1e-6), settings.n_eps)
        correct = cert.label == y
        attack_acc = np.array([float(np.mean(correct & (distance > e))) for e in eps])
        report(1.0, "done")
        return CertifyStudy(
            certificate=cert,
            check=check,
            distance=distance,
            winner=tuple(bd.winner),
            labels=y,
            eps=eps,
            certified_accuracy=certified_accuracy(cert, y, eps),
            attack_accuracy=attack_acc,
            crown=crown,
            crown_norm="linf" if settings.crown_norm == "linf" else "l2",
            crown_note=note,
        )

    return cached_result("certify", key, compute)


def _crown_radii(
    clf: Classifier,
    x: torch.Tensor,
    cert: Certificate,
    distance: np.ndarray,
    settings: CertifySettings,
    report: ProgressFn,
) -> tuple[np.ndarray | None, str]:
    """CROWN's radius of k̂(x) on the first ``settings.crown_points`` points (NaN beyond), and a note.

    The bisection's bracket starts at the Lipschitz certificate (below) and the attack's radius
    (above: no sound radius exceeds it); a network CROWN cannot read gives (None, the reason).
    """
    if settings.crown_norm == "none" or settings.crown_points == 0:
        return None, "CROWN not run (crown_norm = 'none' or crown_points = 0)"
    try:
        net = CrownNetwork(clf, tuple(clf.input_shape))
    except UnsupportedLayerError as exc:
        return None, f"CROWN not available for this network: {exc}"
    m = min(settings.crown_points, len(x))
    out = np.full(len(x), np.nan)
    labels = torch.as_tensor(cert.label[:m])
    chunk = 10
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        report(0.3 + 0.65 * start / m, f"CROWN ({settings.crown_norm}) on points {start + 1}–{stop} of {m}")
        finite = distance[start:stop][np.isfinite(distance[start:stop])]
        upper = float(finite.max()) if len(finite) else None
        lower = float(np.min(cert.radius[start:stop])) if settings.crown_norm == "l2" else None
        r = net.radius(
            x[start:stop],
            labels[start:stop],
            norm=settings.crown_norm,
            lower=lower,
            upper=upper,
            tol=settings.crown_tol,
        )
        out[start:stop] = r.numpy()
    how = "CROWN for layers up to 4096 neurons, IBP beside it" if net.intermediate == "auto" else net.intermediate
    return out, (
        f"CROWN ({'ℓ2' if settings.crown_norm == 'l2' else 'ℓ∞'} ball; intermediate bounds: {how}) on the first {m} "
        f"of {len(x)} points, bisection on ε to a relative {settings.crown_tol:g}"
    )


@dataclass(frozen=True)
class AttackStudy:
    """The empirical side alone, for a network whose Lipschitz constant cannot be bounded.

    Attributes
    ----------
    distance : (N,) float64 — ‖r(x)‖₂ of the smallest successful attack (inf where none succeeded)
    winner : tuple of N str — which attack found it
    labels : (N,) int64 — true labels
    eps : (E,) float64 — radii of the curve (pixel units, ℓ2)
    attack_accuracy : (E,) — mean[k̂ = y ∧ ‖r‖ > ε] (an upper bound of the true robust accuracy)
    """

    distance: np.ndarray
    winner: tuple
    labels: np.ndarray
    eps: np.ndarray
    attack_accuracy: np.ndarray


def attack_study(
    clf: Classifier,
    xs: torch.Tensor,
    labels: torch.Tensor | np.ndarray,
    settings: CertifySettings,
    *,
    progress: ProgressFn | None = None,
) -> AttackStudy:
    """‖r(x)‖ on the first ``settings.n_points`` of ``xs`` and the accuracy under attack against ε.

    The half of :func:`certify_study` that needs no Lipschitz bound (networks with a layer that cannot
    be bounded, e.g. TorchScript uploads); cached under (network fingerprint, points, settings).
    """
    report = progress or (lambda f, msg: None)
    n = min(settings.n_points, len(xs))
    x = xs[:n]
    y = np.asarray(labels)[:n].astype(np.int64)
    key = {"network": network_fingerprint(clf), "points": data_fingerprint(x), "settings": settings.key(), "version": 1}

    def compute() -> AttackStudy:
        report(0.1, f"attacking {n} points ({', '.join(settings.attacks)})")
        bd = boundary_distance(clf, x, attacks=settings.attacks, fmn_max_stepsize=_fmn_step(clf, settings))
        distance = bd.distance.numpy().astype(np.float64)
        finite = distance[np.isfinite(distance)]
        top = float(np.quantile(finite, 0.98)) if len(finite) else 1.0
        eps = np.linspace(0.0, max(top, 1e-6), settings.n_eps)
        with torch.no_grad():
            correct = clf.predict(x).numpy() == y
        report(1.0, "done")
        return AttackStudy(
            distance=distance,
            winner=tuple(bd.winner),
            labels=y,
            eps=eps,
            attack_accuracy=np.array([float(np.mean(correct & (distance > e))) for e in eps]),
        )

    return cached_result("attack-distances", key, compute)


@dataclass(frozen=True)
class CertifiedSection:
    """One point's normal cross-section with both radii.

    Attributes
    ----------
    section : Section — regions on the plane (r(x), v), r from DeepFool, v random
    radius : float — the sound certified radius ε_cert(x) (the certified disk)
    radius_estimate : float — with the power-iteration L (not sound)
    r_norm : float — DeepFool's ‖r(x)‖₂ along the plane's first axis (inf if it failed)
    """

    section: Section
    radius: float
    radius_estimate: float
    r_norm: float


def certified_section(
    clf: Classifier, x: torch.Tensor, *, n_power: int = 50, seed: int = 0, resolution: int = 96
) -> CertifiedSection:
    """The normal cross-section of ``x`` (C, H, W) along (r(x), random v) over ±1.5·‖r(x)‖, with ε_cert(x).

    The certified disk of radius ε_cert(x) lies inside the region of k̂(x) in *every* plane through x.
    """
    check_int("resolution", resolution, 2, MAX_RESOLUTION)
    bound = lipschitz_study(clf, n_power=n_power, seed=seed)
    cert = certify(clf, x.unsqueeze(0), bound=bound)
    key = {
        "network": network_fingerprint(clf),
        "structure": structure_fingerprint(clf),
        "x": data_fingerprint(x.unsqueeze(0)),
        "seed": seed,
        "res": resolution,
    }

    def compute() -> CertifiedSection:
        df = deepfool(clf, x.unsqueeze(0))
        r = df.r[0]
        v = random_direction(x.shape, random_state=seed).to(x.dtype)
        extent = 1.5 * max(float(r.norm()), float(cert.radius[0]), 1e-3)
        sec = normal_section(clf, x, r, v, extent=extent, resolution=resolution)
        return CertifiedSection(
            section=sec,
            radius=float(cert.radius[0]),
            radius_estimate=float(cert.radius_estimate[0]),
            r_norm=float(df.norms[0]) if bool(df.converged[0]) else math.inf,
        )

    return cached_result("certified-section", key, compute, disk=False)
