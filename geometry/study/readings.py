"""Readings: the sentences that say what a study's figure shows, computed from that study's numbers.

One small pure function per study. Each takes the study's result (as on screen) and returns plain
sentences that quote only numbers of that result, say plainly when the paper's effect does not show
at the current settings, and name the knob that moves it. Pages, the tour and the CLI report call
these instead of fixed sentences, so no page states a number computed for another network (issue 23,
item 1).

A claim is made only when the numbers clear a stated margin: two standard errors for a difference
of means (curvature, fooling rates), two baseline standard deviations for a principal cosine (the
criterion of :meth:`geometry.compare.SubspaceComparison.above_baseline`). In between, the reading
says the data do not decide.

References: ICLR 2018 (Moosavi-Dezfooli, Fawzi, Fawzi, Frossard, Soatto, "Robustness of classifiers to
universal perturbations: a geometric perspective") Fig. 7a (curvature vs m), Fig. 7b (fooling rate vs
m), Fig. 10 (principal angles), Fig. 2 / 5 (normal sections); CVPR 2019 (CURE); Tsuzuku et al.,
NeurIPS 2018 (LMT certified radius).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from ..compare import SubspaceComparison
    from ..curvature import CurvatureCurve
    from ..universal import FoolingCurve
    from .certify import CertifiedSection, CertifyStudy
    from .curvature import CurvatureStudy
    from .fig5 import UniversalSections
    from .robust import EnsembleStudy, RobustStudy
    from .sections import SectionStudy
    from .toy2d import CertificateLadder, LabStudy
    from .universal import UniversalStudy

#: Margin, in standard errors of a difference of means, before a reading says "more" or "less".
N_SE = 2.0
#: Margin, in baseline standard deviations, before a principal cosine counts as above / below chance.
N_STD = 2.0
#: |κ|·‖r‖ below this reads as "flat" (radius of curvature more than 20× the distance to the boundary).
FLAT_KAPPA_R = 0.05
#: ξ/‖x‖ up to this reads as a small perturbation (this module's choice: a tenth of the image's norm).
SMALL_XI_RATIO = 0.1
#: When no subspace's random vectors fool more than this share of the points on average, at any m, the reading
#: says the fooling effect only shows at a larger ξ (this module's choice: one point in five).
FOOLING_FLOOR = 0.2
#: The knob that raises ξ, as the Universal page and the command line name it.
XI_KNOB = (
    "raise ξ (the Universal page's 'ξ' control: a larger share of ‖x‖, or the paper's Fig. 7b rule, 1/5 of the "
    "noise norm; --xi-ratio / --xi-from-noise on the command line)"
)
#: A disk narrower than this share of the plot's shorter axis is called too small to see (and the page zooms): at
#: 0.02 a digits-lenet disk of 4.7 % (ε_cert = 0.043 on a ±0.92 plot, ~15 px of a ~320-px square) was drawn as
#: "visible" yet looked like x's own marker; 10 % is ~30 px there, twice the marker (issue 23 item 4)
VISIBLE_SHARE = 0.1

_H_KNOB = "the curvature scale h (the h controls) moves it"


def _pct(v: float) -> str:
    return f"{100 * v:.0f} %"


def _paired(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, int]:
    """Mean and standard error of ``a − b`` over the entries finite in both (a paired difference)."""
    a64, b64 = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    ok = torch.isfinite(a64) & torch.isfinite(b64)
    diff = (a64 - b64)[ok]
    n = int(diff.numel())
    if n == 0:
        return math.nan, math.nan, 0
    se = float(diff.std(unbiased=True)) / math.sqrt(n) if n > 1 else math.inf
    return float(diff.mean()), se, n


def _compare(diff: float, se: float) -> int:
    """+1 / −1 when ``diff`` clears ``N_SE`` standard errors above / below zero, else 0."""
    if not math.isfinite(diff) or math.isnan(se):
        return 0
    if diff > N_SE * se:
        return 1
    if diff < -N_SE * se:
        return -1
    return 0


def _h_text(method: str | None, h: float | None) -> str:
    if h:
        return f"at h = {h:.3g}"
    return f"with the {method} estimator" if method else "at these settings"


# --------------------------------------------------------------------------- Fig. 7a
def curvature_reading(study: CurvatureStudy, *, m: int = 1) -> str:
    """What the curvature-vs-m figure (Fig. 7a) shows at dimension ``m``.

    Compares the mean curvature K_S of held-out boundary points along random directions of the first
    m vectors of S_c with the same along a random subspace (a paired difference over the points).

    Parameters
    ----------
    study : CurvatureStudy — its ``curves`` ("S_c", "random") and ``h`` / ``method``.
    m : int — the dimension read (must be one of the curves' ``m_values``; default 1).

    Returns
    -------
    str — one or two sentences; says whether S_c is more curved than random directions (the paper's
    Fig. 7a effect) with both means, and names h as the knob when it is not.

    Raises
    ------
    KeyError — ``m`` is not evaluated.
    """
    sc: CurvatureCurve = study.curves["S_c"]
    rnd: CurvatureCurve = study.curves["random"]
    ms = [int(v) for v in sc.m_values]
    if m not in ms:
        raise KeyError(f"m = {m} is not among the evaluated dimensions {ms}")
    i = ms.index(m)
    diff, se, n = _paired(sc.per_point[i], rnd.per_point[i])
    a, b = float(sc.mean[i]), float(rnd.mean[i])
    where = _h_text(study.method, study.h)
    head = f"At m = {m}, S_c's mean curvature K_S = {a:+.3g} against {b:+.3g} along random directions ({n} points, {where})"
    verdict = _compare(diff, se)
    if verdict > 0:
        text = f"{head}: S_c is more curved than random directions here, as in the paper's Fig. 7a."
    elif verdict < 0:
        text = f"{head}: S_c is less curved than random directions here — the paper's effect does not show; {_H_KNOB}."
    else:
        text = (
            f"{head}: within {N_SE:g} standard errors ({se:.2g}), so S_c is not measurably more curved here — the "
            f"paper's effect does not show; {_H_KNOB}."
        )
    share = float(sc.share_positive[i])
    if share > 0.5:
        side = "the boundary bends towards x (the other class wraps around x) for most points"
    elif share < 0.5:
        side = "the boundary bends away from x for most points"
    else:
        side = "towards x for half the points, away for the other half"
    return f"{text} {_pct(share)} of the points have positive curvature along S_c: {side}."


# --------------------------------------------------------------------------- Fig. 7b
def universal_reading(study: UniversalStudy, *, x_norm: float | None = None) -> str:
    """What the Universal page's fooling-rate-vs-m figure (Fig. 7b) shows, and how small ξ is.

    :func:`fooling_reading` of the study's ``curve`` at its ``xi`` and ``h``.
    """
    return fooling_reading(study.curve, xi=study.xi, h=study.h, x_norm=x_norm)


def fooling_reading(curve: FoolingCurve, *, xi: float, h: float | None, x_norm: float | None = None) -> str:
    """What a fooling-rate-vs-m curve (Fig. 7b) shows, and how small ξ is.

    Reads the dimension m at which S_c's random vectors fool most on average, and compares their
    mean fooling rate with S_f's and the random subspace's at that m (standard errors over the
    ``n_samples`` random vectors of each).

    Parameters
    ----------
    curve : FoolingCurve — with "S_c" and at least one of "S_f", "random".
    xi : float — the vectors' ℓ2 norm, pixel units.
    h : float or None — the finite-difference scale S_c was estimated at (pixel units).
    x_norm : float, optional — a typical ‖x‖₂ of the points (e.g. the median), pixel units; when given,
        ξ is also stated as ξ/‖x‖ and called small or not (``SMALL_XI_RATIO``).

    Returns
    -------
    str — sentences; says whether S_c's vectors fool more than S_f's (the paper's Fig. 7b effect) and
    names ξ and h as the knobs when they do not; when no subspace fools more than :data:`FOOLING_FLOOR` of
    the points at any m, says the effect only shows at a larger ξ and names that knob (:data:`XI_KNOB`). Without S_f, the comparison is with the random subspace.
    """
    ms = [int(v) for v in curve.m_values]
    sc = np.asarray(curve.mean["S_c"], dtype=np.float64)
    i = int(np.argmax(sc))
    k = max(int(curve.n_samples), 1)

    def se(name: str) -> float:
        return float(np.asarray(curve.std[name], dtype=np.float64)[i]) / math.sqrt(k) if k > 1 else math.inf

    parts = []
    verdicts = {}
    for other in ("S_f", "random"):
        if other not in curve.mean:
            continue
        o = float(np.asarray(curve.mean[other], dtype=np.float64)[i])
        verdicts[other] = _compare(sc[i] - o, math.hypot(se("S_c"), se(other)))
        parts.append(f"{other} {_pct(o)}")
    at_h = f" at h = {h:.3g}" if h else ""
    head = (
        f"Random vectors of S_c of norm ξ = {xi:.3g} fool {_pct(sc[i])} of the held-out points on average "
        f"(at m = {ms[i]}, their best m), against " + " and ".join(parts) + at_h
    )
    rival = "S_f" if "S_f" in verdicts else "random"
    verdict = verdicts.get(rival, 0)
    top = max(float(np.nanmax(np.asarray(v, dtype=np.float64))) for v in curve.mean.values())
    if top < FOOLING_FLOOR:  # nothing is fooled at this ξ: the comparison says nothing about Fig. 7b (issue 23)
        text = (
            f"{head}: at this ξ no subspace's random vectors fool more than {_pct(top)} of the points at any m, so the "
            f"paper's Fig. 7b effect cannot show — the fooling effect only shows at a larger ξ: {XI_KNOB}."
        )
    elif verdict > 0:
        text = f"{head}: S_c's random vectors are better universal perturbations than {rival}'s, as in the paper's Fig. 7b."
    else:
        how = "fewer than" if verdict < 0 else "not measurably more than"
        text = (
            f"{head}: S_c's vectors fool {how} {rival}'s here — the paper's effect does not show at these settings; "
            f"ξ (the Universal page's 'ξ' control) and the curvature scale h (the h controls) move it."
        )
    if x_norm is not None and x_norm > 0:
        ratio = xi / x_norm
        small = "small" if ratio <= SMALL_XI_RATIO else "not small"
        text += f" ξ is {_pct(ratio)} of a typical ‖x‖ = {x_norm:.3g}: {small}"
        text += (
            "."
            if ratio <= SMALL_XI_RATIO
            else " — the effect is measured with a perturbation the size of a large part of the image."
        )
    return text


# --------------------------------------------------------------------------- Fig. 10
def compare_reading(comparisons: Mapping[str, SubspaceComparison]) -> str:
    """Whether two networks share S_c (and S_f): the first principal cosine against the random baseline.

    Parameters
    ----------
    comparisons : dict kind → SubspaceComparison — "curved" (S_c) and/or "flat" (S_f), as
        :func:`geometry.study.compare.compare_angles` returns.

    Returns
    -------
    str — one sentence per kind: above the baseline by more than ``N_STD`` baseline stds ("shared"),
    below by more than that ("less aligned than chance"), or within ("no evidence"); the knobs are h
    and m.
    """
    out = []
    for kind, name in (("curved", "S_c"), ("flat", "S_f")):
        c = comparisons.get(kind)
        if c is None or c.k == 0:
            continue
        cos, mean, std = float(c.cosines[0]), float(c.baseline.mean[0]), float(c.baseline.std[0])
        z = (cos - mean) / std if std > 0 else math.copysign(math.inf, cos - mean)
        n_above = int(c.above_baseline(N_STD).sum())
        head = (
            f"{name}'s first principal cosine between {c.names[0]} and {c.names[1]} is {cos:.2f} against the random "
            f"baseline {mean:.2f} ± {std:.2f} (m = {c.p}, {z:+.1f} std; {n_above} of its {c.k} cosines lie more than "
            f"{N_STD:g} std above chance)"
        )
        if z > N_STD:
            fig = ", as in the paper's Fig. 10" if kind == "curved" else ""
            out.append(f"{head}: above chance — the two networks share this subspace{fig}.")
        else:
            which = "below chance" if z < -N_STD else "within chance"
            knob = _H_KNOB if kind == "curved" else "m (the compared dimension) moves it"
            out.append(f"{head}: {which} — not shared at these settings; {knob}.")
    return " ".join(out)


# --------------------------------------------------------------------------- normal sections
def _bend(kappa: float, distance: float, where: str) -> str:
    """A sentence on a signed normal curvature κ (1/distance) at a boundary point ``distance`` from x."""
    if not math.isfinite(kappa):
        return f"The curvature {where} is undefined (no boundary point)."
    kr = kappa * distance
    if abs(kr) < FLAT_KAPPA_R:
        return (
            f"The boundary {where} is flat at this scale: κ = {kappa:+.3g} per unit, a radius of curvature "
            f"{1 / abs(kappa) if kappa else math.inf:.3g} against ‖r‖ = {distance:.3g} (|κ|·‖r‖ < {FLAT_KAPPA_R:g})."
        )
    side = (
        "towards x: the other class wraps around x" if kappa > 0 else "away from x: x's class wraps around the boundary"
    )
    return (
        f"The boundary {where} bends {side} (κ = {kappa:+.3g} per unit, radius of curvature {1 / abs(kappa):.3g} "
        f"against ‖r‖ = {distance:.3g})."
    )


def section_reading(study: SectionStudy) -> str:
    """What a normal cross-section shows at its boundary point z = x + r(x) (ICLR 2018 Fig. 2 / 5).

    Parameters
    ----------
    study : SectionStudy — ``along`` (curvature along the section's second direction; None when
        DeepFool did not change the label) and ``section.r_norm``.

    Returns
    -------
    str — the sign and size of the normal curvature κ along the section's direction, compared with
    the distance ‖r(x)‖ ("flat" when |κ|·‖r‖ < ``FLAT_KAPPA_R``).
    """
    along = study.along
    if along is None or not bool(along.converged.reshape(-1)[0]):
        return "DeepFool did not reach the boundary at this point: the section has no boundary point to read."
    kappa = float(along.kappa.reshape(-1)[0])
    at = "at z = x + r(x)" if getattr(along, "point", "boundary") == "boundary" else "(its level set at x + 0.8·r(x))"
    return _bend(kappa, float(study.section.r_norm), f"{at} along this plane's second direction")


def fig5_reading(grid: UniversalSections, *, h: float | None = None, method: str | None = None) -> str:
    """What the Fig. 5 grid shows: the boundary along one universal vector against random vectors of the same norm.

    Parameters
    ----------
    grid : UniversalSections — ``universal.kappa`` / ``random.kappa`` (N,) float64, the normal curvature (1/pixel
        distance) along the UAP and along each point's own random vector at z_i = x_i + r(x_i) (NaN: no boundary
        point); ``fooled`` (N,) bool; ``v_norm`` the vectors' ℓ2 norm.
    h, method : the curvature estimator's scale / name, quoted in the sentence.

    Returns
    -------
    str — the paired mean difference of κ (universal − random, over the points with both finite) judged at
    ``N_SE`` standard errors: "bends more along the universal vector" (the paper's Fig. 5 effect), "less", or
    "not measurably different" with the knob (h) that moves it; then how many points each row's vector fools.

    References
    ----------
    ICLR 2018 Fig. 5 (normal sections along a universal perturbation vs random directions).
    """
    uk, rk = grid.universal.kappa, grid.random.kappa
    diff, se, n = _paired(uk, rk)
    n_pts = int(uk.numel())
    fooled = (
        f" The universal vector (‖v‖ = {grid.v_norm:.3g}) changes the label at {int(grid.universal.fooled.sum())} of "
        f"{n_pts} points, random vectors of the same norm at {int(grid.random.fooled.sum())}."
    )
    if n == 0:
        return "No point of the grid has a boundary point in both rows: the curvatures cannot be compared." + fooled
    mu, mr = float(torch.nanmean(uk.double())), float(torch.nanmean(rk.double()))
    head = f"Mean κ along the universal vector {mu:+.3g} against {mr:+.3g} along random ones ({n} points, {_h_text(method, h)}): "
    verdict = _compare(diff, se)
    if verdict > 0:
        body = "the boundary bends more along the universal vector — the paper's Fig. 5 effect shows here."
    elif verdict < 0:
        body = f"the boundary bends less along the universal vector — the paper's Fig. 5 effect does not show here; {_H_KNOB}."
    else:
        body = (
            f"within {N_SE:g} standard errors ({N_SE * se:.2g}), so the universal vector is not measurably more curved "
            f"here — the paper's Fig. 5 effect does not show at these settings; {_H_KNOB}."
        )
    return head + body + fooled


def lab_reading(study: LabStudy) -> str:
    """What the 2-D lab shows at the chosen point: DeepFool's distance and the osculating circle.

    Parameters
    ----------
    study : LabStudy — ``converged``, ``distance`` and ``osculating`` (None when not computed).

    Returns
    -------
    str — whether DeepFool reached the boundary, and the boundary's bend at z (as
    :func:`section_reading`).
    """
    if not study.converged:
        return "DeepFool did not reach the boundary from this point within its iteration limit."
    if study.osculating is None:
        return f"DeepFool reaches the boundary at distance ‖r(x)‖ = {study.distance:.3g}."
    return _bend(float(study.osculating.kappa), float(study.distance), "at z = x + r(x)")


def ladder_reading(ladder: CertificateLadder) -> str:
    """What the certificate ladder at one point shows: the tightest certificate and how far below the truth
    each bound sits, and how far above it each attack stops.

    Parameters
    ----------
    ladder : CertificateLadder — its ``exact`` distance (NaN for a smooth model: then the bounds are read
        against the best attack radius, which only bounds the truth from above).

    Returns
    -------
    str — names the tightest certificate with its share of the exact distance, each other certificate's
    share, each attack's excess, and flags any certificate above the exact distance or above an attack
    (an unsound bound: a bug).
    """
    certs = [r for r in ladder.of("certificate") if math.isfinite(r.radius)]
    attacks = [r for r in ladder.of("attack") if math.isfinite(r.radius)]
    best_attack = ladder.best_attack
    truth = ladder.exact if math.isfinite(ladder.exact) else (best_attack.radius if best_attack else math.nan)
    if not math.isfinite(truth) or truth <= 0:
        return "Neither the exact distance nor any attack radius is available at this point: nothing to compare."
    exact_known = math.isfinite(ladder.exact)
    ref = "the exact distance" if exact_known else f"the best attack radius ({best_attack.name if best_attack else ''})"
    parts = [
        f"The exact distance from x to the boundary is {ladder.exact:.3g}."
        if exact_known
        else f"This model is not piecewise affine, so there is no exact distance; the best attack radius "
        f"{truth:.3g} only bounds it from above."
    ]
    tol = 1e-9 * max(1.0, truth)
    broken = [r for r in certs if exact_known and r.radius > ladder.exact + tol]
    broken += [r for r in certs if best_attack is not None and r.radius > best_attack.radius + tol and r not in broken]
    if broken:
        parts.append(
            "UNSOUND: "
            + ", ".join(f"{r.name} ({r.radius:.3g})" for r in broken)
            + f" exceeds {ref} — a certificate above the truth is a bug."
        )
    if certs:
        best = max(certs, key=lambda r: r.radius)
        parts.append(
            f"The tightest certificate is {best.name} at {best.radius:.3g}, {_pct(best.radius / truth)} of {ref}"
        )
        others = [r for r in certs if r is not best]
        if others:
            parts[-1] += "; " + "; ".join(f"{r.name} {r.radius:.3g} ({_pct(r.radius / truth)})" for r in others)
        parts[-1] += "."
    else:
        parts.append("No certificate could be computed for this model.")
    if exact_known and attacks:
        parts.append(
            "Attacks stop at or above it: "
            + "; ".join(
                f"{r.name} {r.radius:.3g} ("
                + ("exact" if r.radius / ladder.exact - 1 < 5e-4 else f"+{_pct(r.radius / ladder.exact - 1)}")
                + ")"
                for r in attacks
            )
            + "."
        )
    return " ".join(parts)


# --------------------------------------------------------------------------- robust training
def robust_reading(studies: Mapping[str, RobustStudy]) -> list[str]:
    """What the robust-training comparison shows, each network against the first one (the reference).

    Claims read: curvature of the loss (median exact spectral norm ‖H‖₂ of the input Hessian, and
    the mean finite-difference curvature at the profile's scale h, the quantity CURE penalises —
    less curved or not), robustness (PGD accuracy at ε), the share of the most robust network's gain that
    each other network buys, and the order of the median boundary distances.

    Parameters
    ----------
    studies : dict name → RobustStudy — in the page's order; the first is the reference (the standard
        network by default). At least two.

    Returns
    -------
    list of str — one sentence per claim.

    Raises
    ------
    ValueError — fewer than two networks.
    """
    names = list(studies)
    if len(names) < 2:
        raise ValueError("a comparison needs at least two networks")
    ref = names[0]

    def median(t: object) -> float:
        """The median of the finite entries (NaN if none), as the page's table computes it."""
        v = torch.as_tensor(t, dtype=torch.float64)
        v = v[v.isfinite()]
        return float(v.median()) if v.numel() else math.nan

    exact = {n: median(s.profile.spectral_norm) for n, s in studies.items()}
    exact_mean = {
        n: float(torch.as_tensor(s.profile.spectral_norm, dtype=torch.float64).mean()) for n, s in studies.items()
    }
    at_h = {
        n: float(torch.as_tensor(s.profile.finite_difference, dtype=torch.float64).mean()) for n, s in studies.items()
    }
    h = studies[ref].profile.h
    acc = {n: float(s.pgd_accuracy) for n, s in studies.items()}
    eps = studies[ref].eps
    out = []

    def word(a: float, b: float) -> str:
        return "less curved" if a < b else "more curved" if a > b else "as curved"

    for n in names[1:]:
        e, f = word(exact[n], exact[ref]), word(at_h[n], at_h[ref])
        text = (
            f"{n}'s loss is {e} than {ref}'s by the exact ‖H‖₂ (median {exact[n]:.3g} vs {exact[ref]:.3g}"
            + (
                f"; by its mean {word(exact_mean[n], exact_mean[ref])}, {exact_mean[n]:.3g} vs {exact_mean[ref]:.3g}"
                if word(exact_mean[n], exact_mean[ref]) != e
                else ""
            )
            + f") and {f} "
            f"at scale h = {h:g} (mean ‖∇ℓ(x + h z) − ∇ℓ(x)‖/h {at_h[n]:.3g} vs {at_h[ref]:.3g})"
        )
        if acc[n] > acc[ref] and f != "less curved":
            text += " — the paper's 'robust means less curved' does not show at this h; the scale h moves it"
        out.append(text + ".")
    best = max(names, key=lambda n: acc[n])
    gain = acc[best] - acc[ref]
    out.append("PGD accuracy at ε = " + f"{eps:g}: " + ", ".join(f"{n} {100 * acc[n]:.1f} %" for n in names) + ".")
    if gain > 0:
        for n in names[1:]:
            if n == best:
                continue
            part = (acc[n] - acc[ref]) / gain
            much = "much of" if part >= 0.5 else "little of" if part > 0 else "none of"
            out.append(f"{n} buys {much} {best}'s robustness ({_pct(max(part, 0.0))} of its gain over {ref}).")
    else:
        out.append(f"No network is more robust than {ref} at ε = {eps:g}; a smaller ε shows the differences.")
    med = {n: median(s.distance) for n, s in studies.items()}
    order = sorted(names, key=lambda n: med[n])
    attacks = list(dict.fromkeys(a for s in studies.values() for a in s.wins))
    how = f" (per point the smallest of {', '.join(attacks)})" if attacks else ""
    out.append(f"Median distance to the boundary{how}: " + " < ".join(f"{n} {med[n]:.3g}" for n in order) + ".")
    return out


def ensemble_reading(studies: Mapping[str, EnsembleStudy]) -> list[str]:
    """What PGD's robust accuracy and the ensemble's say, network by network (issue 21, item 1).

    Both are measured on the same points, so the difference is a count of points: PGD overestimates
    robustness by the points only the ensemble broke. A network where PGD is *below* the ensemble is
    said so (PGD's random start found what the cascade missed).

    Parameters
    ----------
    studies : dict name → EnsembleStudy (``n_points``, ``pgd_accuracy``, ``ensemble_accuracy``, ``eps``).

    Returns
    -------
    list of str — one sentence per network.
    """
    out = []
    for n, e in studies.items():
        k = round((e.pgd_accuracy - e.ensemble_accuracy) * e.n_points)
        both = f"PGD {100 * e.pgd_accuracy:.1f} %, ensemble {100 * e.ensemble_accuracy:.1f} %"
        if k > 0:
            out.append(
                f"{n} at ε = {e.eps:g}: {both} — PGD overestimates robust accuracy by {k} of {e.n_points} points "
                f"({100 * (e.pgd_accuracy - e.ensemble_accuracy):.1f} points); the ensemble's is the number to report."
            )
        elif k == 0:
            out.append(f"{n} at ε = {e.eps:g}: {both} — PGD and the ensemble agree on these {e.n_points} points.")
        else:
            out.append(
                f"{n} at ε = {e.eps:g}: {both} — PGD broke {-k} of {e.n_points} points more than the ensemble "
                "(its random start); the lower of the two is the better upper bound on robust accuracy."
            )
    return out


# --------------------------------------------------------------------------- certified radius
def certify_reading(study: CertifyStudy) -> str:
    """How the certified radius compares with the attack's distance over the test points (LMT).

    Parameters
    ----------
    study : CertifyStudy — ``certificate.radius`` and ``check`` (ratio ‖r(x)‖/ε_cert, violations).

    Returns
    -------
    str — the median gap ‖r(x)‖/ε_cert and whether the bound held at every attacked point.
    """
    check = study.check
    ratio = np.asarray(check.ratio, dtype=np.float64)
    finite = ratio[np.isfinite(ratio)]
    radius = np.asarray(study.best, dtype=np.float64)
    gap = f"The median certified radius (the best sound bound) is {np.median(radius):.3g}"
    if finite.size:
        gap += f"; the attack's distance ‖r(x)‖ is a median {np.median(finite):.3g}× larger ({finite.size} points)"
    if check.sound:
        return (
            f"ε_cert(x) ≤ ‖r(x)‖ holds at all {check.n_checked} points where an attack succeeded "
            f"({len(radius) - check.n_checked} where none did), as a sound bound must. {gap}."
        )
    return (
        f"ε_cert(x) exceeded ‖r(x)‖ at {len(check.violations)} of {check.n_checked} attacked points — the bound is "
        f"not sound for this network. {gap}."
    )


#: SoK (Li, Xie, Li, "SoK: Certified Robustness for Deep Neural Networks", IEEE S&P 2023): product-of-norms
#: (global Lipschitz) certificates are 15–50× below CROWN's on small MNIST networks
SOK_LIPSCHITZ_GAP = (15.0, 50.0)


def certificate_ladder_reading(study: CertifyStudy) -> str:
    """The ladder of certificates over the test points: which sound bound is the best, and how far below the
    attack radius each one sits.

    Parameters
    ----------
    study : CertifyStudy — its :meth:`~geometry.study.certify.CertifyStudy.ladder` (global Lipschitz, LMT pair,
        CROWN, best), ``distance`` (attack radius) and ``check``.

    Returns
    -------
    str — the bound that is best at most points, the median attack/certificate ratio of the best certificate
    and of each bound (points where both are finite and the attack succeeded), CROWN against the global
    Lipschitz bound beside the SoK benchmark's 15–50× (and says when that gap does not show), and any
    certificate above an attack radius (a bug).
    """
    ladder = study.ladder()
    dist = np.asarray(study.distance, dtype=np.float64)
    names = [n for n in ladder if n != "best certificate"]
    done = np.all([np.isfinite(ladder[n]) for n in names], axis=0)  # every rung computed
    if not done.any():
        done = np.isfinite(ladder["global Lipschitz"])
    best_names = np.asarray(study.best_name)[done]
    counts = {n: int(np.sum(best_names == n)) for n in names}
    top = max(counts, key=lambda n: counts[n])
    parts = [f"{top} is the best sound bound at {counts[top]} of {int(done.sum())} points"]
    others = [f"{n} at {c}" for n, c in counts.items() if n != top and c]
    if others:
        parts[-1] += " (" + ", ".join(others) + ")"
    parts[-1] += "."

    def med_ratio(radius: np.ndarray) -> tuple[float, int]:
        ok = done & np.isfinite(dist) & np.isfinite(radius) & (radius > 0)
        return (float(np.median(dist[ok] / radius[ok])) if ok.any() else math.nan), int(ok.sum())

    ratio, k = med_ratio(ladder["best certificate"])
    if k:
        each = "; ".join(f"{n} {r:.3g}×" for n in names if math.isfinite(r := med_ratio(ladder[n])[0]))
        parts.append(f"The attack radius is a median {ratio:.3g}× the best certificate ({k} points; {each}).")
    crown = next((n for n in names if n.startswith("CROWN")), None)
    if crown is not None:
        ok = done & (ladder["global Lipschitz"] > 0)
        if ok.any():
            gain = float(np.median(ladder[crown][ok] / ladder["global Lipschitz"][ok]))
            lo, hi = SOK_LIPSCHITZ_GAP
            verdict = (
                "within the SoK benchmark's 15–50× for product-of-norms bounds on small MNIST nets"
                if lo <= gain <= hi
                else f"not the SoK benchmark's {lo:.0f}–{hi:.0f}× on small MNIST nets"
            )
            below = int(np.sum(ladder[crown][ok] < ladder["global Lipschitz"][ok]))
            parts.append(
                f"{crown} is a median {gain:.3g}× the global Lipschitz certificate — {verdict}"
                + (f"; at {below} points it is below it (sound bounds are not ordered)." if below else ".")
            )
    if not study.check.sound:
        parts.append(
            f"UNSOUND: a certificate exceeds the attack radius at {len(study.check.violations)} points — a bug."
        )
    return " ".join(parts)


def disk_share(cs: CertifiedSection) -> float:
    """The certified disk's diameter 2·ε_cert as a share of the section plot's shorter axis (inf: no axis).

    Parameters
    ----------
    cs : CertifiedSection — ``radius`` and the section's ``alpha`` / ``beta`` (pixel ℓ2 units).

    Returns
    -------
    float ≥ 0 — below ``VISIBLE_SHARE`` the disk is too small to see at the plot's scale.
    """
    span = min(
        float(cs.section.alpha.max() - cs.section.alpha.min()), float(cs.section.beta.max() - cs.section.beta.min())
    )
    return 2 * cs.radius / span if span > 0 else math.inf


def certified_section_reading(cs: CertifiedSection) -> str:
    """What the certified cross-section shows: the disk of radius ε_cert(x) against ‖r(x)‖ and the plot.

    Parameters
    ----------
    cs : CertifiedSection — ``radius`` (ε_cert), ``r_norm`` and the section's axes (``alpha``, ``beta``).

    Returns
    -------
    str — the disk's radius against DeepFool's ‖r(x)‖ (inside x's region or not) and whether the disk is
    visible at the plot's scale (diameter ≥ ``VISIBLE_SHARE`` of the shorter axis) or too small to see.
    """
    if cs.radius <= 0:
        return "ε_cert = 0 here: x's margin certifies no disk."
    text = f"The certified disk (ε_cert = {cs.radius:.3g})"
    if math.isfinite(cs.r_norm):
        if cs.radius <= cs.r_norm:
            text += (
                f" lies inside x's region: DeepFool's boundary point is ‖r(x)‖ = {cs.r_norm:.3g} away, "
                f"{cs.r_norm / cs.radius:.3g}× its radius"
            )
        else:
            text += f" reaches past DeepFool's boundary point (‖r(x)‖ = {cs.r_norm:.3g}): the bound is not sound here"
    share = disk_share(cs)
    if share < VISIBLE_SHARE:
        text += f"; its diameter is {share:.1%} of the plot's shorter axis, too small to see at this scale."
    else:
        text += "."
    return text


def certify_pair_reading(studies: Mapping[str, CertifyStudy]) -> str:
    """Certified accuracy of several networks at one radius: the first network's median ε_cert.

    Certified accuracy at ε = the share of points whose label is right *and* certified at radius ε
    (``certificate.radius ≥ ε``), as in LMT's comparison of trained and standard networks (Tsuzuku et
    al., NeurIPS 2018, §6).

    Parameters
    ----------
    studies : dict name → CertifyStudy — the first is the page's network; at least two, on the same
        points.

    Returns
    -------
    str — each network's certified accuracy at that ε, and whether the first certifies more than every
    other one.

    Raises
    ------
    ValueError — fewer than two networks.
    """
    names = list(studies)
    if len(names) < 2:
        raise ValueError("a comparison needs at least two networks")

    def certified(study: CertifyStudy, eps: float) -> float:
        cert = study.certificate
        ok = (np.asarray(cert.label) == np.asarray(study.labels)) & (np.asarray(cert.radius, dtype=np.float64) >= eps)
        return float(ok.mean()) if ok.size else math.nan

    first = names[0]
    eps = float(np.median(np.asarray(studies[first].certificate.radius, dtype=np.float64)))
    share = {n: certified(s, eps) for n, s in studies.items()}
    head = f"At ε = {eps:.3g} ({first}'s median certified radius), " + ", ".join(
        f"{n} certifies {_pct(share[n])} of the test points" for n in names
    )
    if all(share[first] > share[n] for n in names[1:]):
        return head + f": {first} certifies more at this radius."
    return head + f": {first} does not certify more here."
