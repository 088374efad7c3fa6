"""Readings (issue 23, item 1): each sentence flips when the numbers cross its claim.

Results are built directly (the result dataclasses the readings read; outer containers whose other
fields the readings never touch as SimpleNamespace), and the normal-section and 2-D readings also
from analytic classifiers of geometry.testing (sphere: κ = ±1/R; affine: κ = 0).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from geometry.certify import SanityCheck
from geometry.compare import SubspaceComparison
from geometry.curvature import CurvatureCurve
from geometry.study import readings
from geometry.study.sections import SectionSettings, section_study
from geometry.subspaces import RandomBaseline
from geometry.testing import affine_classifier, sphere_classifier
from geometry.toy2d import Osculating
from geometry.universal import FoolingCurve


# ----------------------------------------------------------------------------- Fig. 7a
def _curve(per_point: list[list[float]], kind: str) -> CurvatureCurve:
    pp = torch.tensor(per_point, dtype=torch.float64)
    M = pp.shape[0]
    return CurvatureCurve(
        m_values=torch.arange(1, M + 1),
        mean=pp.mean(1),
        std=pp.std(1, unbiased=False),
        per_point=pp,
        share_positive=(pp > 0).double().mean(1),
        kappa_mean=pp.mean(1),
        kappa_std=pp.std(1, unbiased=False),
        kappa_per_point=pp,
        n=pp.shape[1],
        n_dropped=0,
        n_directions=4,
        n_hvp=0,
        kind=kind,
        method="finite_difference",
        h=0.5,
        beta=None,
        point="boundary",
    )


def _curvature_study(sc: list[float], rnd: list[float]) -> SimpleNamespace:
    return SimpleNamespace(
        curves={"S_c": _curve([sc], "curved"), "random": _curve([rnd], "random")}, method="finite_difference", h=0.5
    )


def test_curvature_reading_flips_with_the_difference():
    rnd = [-1.0, -0.9, -1.1, -1.0, -0.8, -1.2]
    above = readings.curvature_reading(_curvature_study([0.3, 0.2, 0.25, 0.35, 0.1, 0.3], rnd))
    assert "more curved than random directions here" in above and "does not show" not in above
    assert "+0.25" in above and "-1" in above and "h = 0.5" in above
    below = readings.curvature_reading(_curvature_study([-3.0, -3.2, -2.9, -3.1, -3.3, -2.8], rnd))
    assert "less curved" in below and "does not show" in below and "curvature scale h" in below
    # a noisy tie: the same mean difference as zero within two standard errors
    tie = readings.curvature_reading(_curvature_study([-0.5, -1.5, -0.2, -1.8, -1.0, -1.0], rnd))
    assert "not measurably more curved" in tie and "does not show" in tie


def test_curvature_reading_sign_sentence_flips():
    rnd = [0.0] * 4
    assert "towards x" in readings.curvature_reading(_curvature_study([1.0, 2.0, 1.5, -0.1], rnd))
    assert "away from x for most" in readings.curvature_reading(_curvature_study([-1.0, -2.0, -1.5, 0.1], rnd))
    assert "half the points" in readings.curvature_reading(_curvature_study([-1.0, -2.0, 1.5, 0.1], rnd))


def test_curvature_reading_refuses_an_unevaluated_m():
    with pytest.raises(KeyError):
        readings.curvature_reading(_curvature_study([1.0, 2.0], [0.0, 0.0]), m=3)


# ----------------------------------------------------------------------------- Fig. 7b
def _fooling(sc: list[float], sf: list[float], rnd: list[float], std: float = 0.02) -> FoolingCurve:
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in (("S_c", sc), ("S_f", sf), ("random", rnd))}
    return FoolingCurve(
        m_values=torch.arange(1, len(sc) + 1),
        names=("S_c", "S_f", "random"),
        mean=t,
        std={k: torch.full_like(v, std) for k, v in t.items()},
        best={k: v + std for k, v in t.items()},
        rates={k: v[:, None].repeat(1, 10) for k, v in t.items()},
        xi=2.0,
        n_samples=10,
        n_points=100,
    )


def _universal(curve: FoolingCurve, xi: float = 2.0) -> SimpleNamespace:
    return SimpleNamespace(curve=curve, xi=xi, h=xi)


def test_universal_reading_flips_with_s_c_against_s_f():
    yes = readings.universal_reading(_universal(_fooling([0.5, 0.84, 0.7], [0.6, 0.70, 0.6], [0.1, 0.1, 0.1])))
    assert "better universal perturbations than S_f's" in yes and "84 %" in yes and "m = 2" in yes
    assert "S_f 70 %" in yes and "does not show" not in yes
    no = readings.universal_reading(_universal(_fooling([0.12, 0.3], [0.4, 0.5], [0.1, 0.1])))
    assert "fewer than S_f's" in no and "does not show" in no and "ξ" in no and "curvature scale h" in no
    tie = readings.universal_reading(_universal(_fooling([0.5], [0.49], [0.1], std=0.1)))
    assert "not measurably more than" in tie and "does not show" in tie


def test_universal_reading_says_when_xi_is_not_small():
    curve = _fooling([0.8], [0.5], [0.1])
    small = readings.universal_reading(_universal(curve, xi=0.5), x_norm=9.0)
    assert "6 % of a typical ‖x‖ = 9: small." in small
    large = readings.universal_reading(_universal(curve, xi=9.37), x_norm=9.0)
    assert "104 % of a typical ‖x‖" in large and "not small" in large
    assert "‖x‖" not in readings.universal_reading(_universal(curve))


def test_universal_reading_says_the_effect_only_shows_at_a_larger_xi():
    # ξ = 4 % of ‖x‖ (the default ratio): nothing is fooled, so the S_c / S_f comparison means nothing
    tiny = readings.universal_reading(
        _universal(_fooling([0.02, 0.05], [0.03, 0.04], [0.0, 0.01]), xi=0.37), x_norm=9.3
    )
    assert "only shows at a larger ξ" in tiny and "no subspace's random vectors fool more than 5 %" in tiny
    assert "--xi-ratio" in tiny and "'ξ' control" in tiny and "4 % of a typical ‖x‖ = 9.3: small." in tiny
    assert "better universal" not in tiny and "fewer than" not in tiny
    # just above the floor (20 %) the reading compares S_c with S_f again
    enough = readings.universal_reading(_universal(_fooling([0.1, 0.25], [0.03, 0.04], [0.0, 0.01]), xi=2.0))
    assert "only shows at a larger ξ" not in enough and "better universal perturbations than S_f's" in enough
    below = readings.universal_reading(_universal(_fooling([0.1, 0.19], [0.03, 0.04], [0.0, 0.01]), xi=2.0))
    assert "only shows at a larger ξ" in below


def test_fooling_reading_without_s_f_compares_with_random():
    curve = _fooling([0.8], [0.5], [0.1])
    curve = FoolingCurve(
        **{**curve.__dict__, "names": ("S_c", "random"), "mean": {k: v for k, v in curve.mean.items() if k != "S_f"}}
    )
    text = readings.fooling_reading(curve, xi=2.0, h=None)
    assert "than random's" in text and "S_f" not in text and "h =" not in text


# ----------------------------------------------------------------------------- Fig. 10
def _comparison(cos: float, mean: float = 0.2, std: float = 0.02, kind: str = "curved") -> SubspaceComparison:
    base = RandomBaseline(
        mean=torch.tensor([mean]),
        std=torch.tensor([std]),
        samples=torch.zeros(10, 1),
        d=64,
        p=5,
        q=5,
        edge=1.0,
    )
    return SubspaceComparison(
        cosines=torch.tensor([cos]),
        baseline=base,
        z_scores=torch.tensor([(cos - mean) / std]),
        d=64,
        p=5,
        q=5,
        kind=kind,
        names=("net-a", "net-b"),
    )


def test_compare_reading_flips_around_the_baseline():
    below = readings.compare_reading({"curved": _comparison(0.134)})
    assert "0.13" in below and "0.20 ± 0.02" in below and "-3.3 std; 0 of its 1 cosines" in below
    assert "below chance" in below and "not shared" in below and "curvature scale h" in below
    above = readings.compare_reading({"curved": _comparison(0.5)})
    assert "above chance" in above and "share" in above and "not shared" not in above and "1 of its 1" in above
    within = readings.compare_reading({"curved": _comparison(0.21)})
    assert "within chance" in within and "not shared" in within
    both = readings.compare_reading({"curved": _comparison(0.5), "flat": _comparison(0.1, kind="flat")})
    assert both.index("S_c's") < both.index("S_f's") and "m (the compared dimension)" in both


# ----------------------------------------------------------------------------- sections and the 2-D lab
def _section(clf, x: torch.Tensor):
    # the analytic boundaries (the unit circle, x_1 = 1) reach outside the pixel box [0, 1]^d: the paper's
    # unconstrained DeepFool finds the exact boundary point there, the box-constrained default cannot
    return section_study(clf, x, SectionSettings(resolution=16, seed=0, rx="unconstrained"))


def test_section_reading_from_analytic_boundaries():
    shape = (1, 1, 2)
    sphere = sphere_classifier(torch.zeros(2), 1.0, input_shape=shape)
    inside = _section(sphere, torch.tensor([0.5, 0.0], dtype=torch.float64).reshape(shape))
    text = readings.section_reading(inside)
    assert "bends towards x" in text and "κ = +" in text  # κ = +1/R' > 0, R' the level set's radius through z
    outside = _section(sphere, torch.tensor([1.5, 0.0], dtype=torch.float64).reshape(shape))
    assert "bends away from x" in readings.section_reading(outside)
    plane = affine_classifier(torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([0.0, -1.0]), input_shape=shape)
    flat = _section(plane, torch.tensor([0.2, 0.3], dtype=torch.float64).reshape(shape))
    assert "flat at this scale" in readings.section_reading(flat)


def test_section_reading_without_a_boundary_point():
    assert "did not reach the boundary" in readings.section_reading(SimpleNamespace(along=None))


# ----------------------------------------------------------------------------- Fig. 5 grid
def _fig5(universal: list[float], random: list[float], fooled_u: int = 0, fooled_r: int = 0):
    from geometry.study.fig5 import SectionRow, UniversalSections

    def row(kappa: list[float], k: int) -> SectionRow:
        n = len(kappa)
        return SectionRow(
            sections=[],
            kappa=torch.tensor(kappa, dtype=torch.float64),
            fooled=torch.arange(n) < k,
            directions=torch.zeros(n, 1, 2, 2),
        )

    return UniversalSections(universal=row(universal, fooled_u), random=row(random, fooled_r), v_norm=1.5)


def test_fig5_reading_flips_with_the_paired_curvature_difference():
    more = readings.fig5_reading(_fig5([0.30, 0.32, 0.29, 0.31, 0.33], [0.01, -0.02, 0.0, 0.02, -0.01], 4, 1), h=0.5)
    assert "bends more along the universal vector" in more and "effect shows here" in more
    assert "at 4 of 5 points" in more and "random vectors of the same norm at 1" in more
    less = readings.fig5_reading(_fig5([-0.3, -0.32, -0.29, -0.31, -0.33], [0.01, -0.02, 0.0, 0.02, -0.01]), h=0.5)
    assert "bends less" in less and "does not show" in less and "curvature scale h" in less
    # noisy: one large difference, the rest of the other sign — inside two standard errors
    tie = readings.fig5_reading(_fig5([1.0, -0.1, -0.1, -0.1, -0.1], [0.0, 0.0, 0.0, 0.0, 0.0]), h=0.5)
    assert "not measurably more curved" in tie and "does not show at these settings" in tie


def test_fig5_reading_without_boundary_points():
    nan = math.nan
    text = readings.fig5_reading(_fig5([nan, 0.1], [0.2, nan]))
    assert "cannot be compared" in text and "at 0 of 2 points" in text


def _osc(kappa: float) -> Osculating:
    return Osculating(
        z=np.zeros(2),
        normal=np.array([1.0, 0.0]),
        kappa=kappa,
        center=np.zeros(2),
        radius=1 / abs(kappa) if kappa else math.inf,
        method="exact",
        h=None,
    )


def test_lab_reading_flips_with_kappa():
    lab = lambda k, conv=True: SimpleNamespace(converged=conv, distance=0.5, osculating=_osc(k))
    assert "towards x" in readings.lab_reading(lab(2.0))
    assert "away from x" in readings.lab_reading(lab(-2.0))
    assert "flat" in readings.lab_reading(lab(0.01))
    assert "did not reach" in readings.lab_reading(lab(2.0, conv=False))


# ----------------------------------------------------------------------------- robust training
def _robust(spectral: float, pgd: float, distance: float, at_h: float | None = None) -> SimpleNamespace:
    full = lambda v: torch.full((5,), v, dtype=torch.float64)
    return SimpleNamespace(
        profile=SimpleNamespace(
            spectral_norm=full(spectral), finite_difference=full(spectral if at_h is None else at_h), h=0.5
        ),
        pgd_accuracy=pgd,
        eps=0.3,
        distance=torch.full((5,), distance, dtype=torch.float64),
        wins={"deepfool_box": 1, "fmn": 0, "ddn": 4},
    )


def test_robust_reading_states_what_the_table_shows():
    # the MNIST case: PGD-AT *more* curved, CURE buys none of AT's robustness
    mnist = readings.robust_reading(
        {"standard": _robust(0.156, 0.0, 1.0), "pgd-at": _robust(1.01, 0.9, 2.0), "cure": _robust(0.1, 0.0, 1.5)}
    )
    text = " ".join(mnist)
    assert "pgd-at's loss is more curved than standard's by the exact ‖H‖₂ (median 1.01 vs 0.156)" in text
    assert "'robust means less curved' does not show at this h" in text
    assert "cure buys none of pgd-at's robustness" in text
    assert "standard 1 < cure 1.5 < pgd-at 2" in text
    assert "Median distance to the boundary (per point the smallest of deepfool_box, fmn, ddn)" in text
    # the paper's picture: AT less curved, CURE buys much of it
    paper = " ".join(
        readings.robust_reading(
            {"standard": _robust(1.0, 0.0, 1.0), "pgd-at": _robust(0.1, 0.9, 2.0), "cure": _robust(0.2, 0.6, 1.8)}
        )
    )
    assert "pgd-at's loss is less curved than standard's by the exact" in paper and "does not show" not in paper
    # exact Hessian and curvature at h disagree: both are stated
    split = readings.robust_reading({"standard": _robust(0.156, 0.0, 1.0, 2.0), "pgd-at": _robust(1.01, 0.9, 2.0, 0.3)})
    assert "more curved than standard's by the exact" in split[0] and "less curved at scale h = 0.5" in split[0]
    assert "does not show" not in split[0] and "by its mean" not in split[0]
    # median and mean of ‖H‖₂ disagree (a few very curved points): both are stated
    skew = _robust(0.0, 0.0, 1.0)
    skew.profile.spectral_norm = torch.tensor([0.01, 0.01, 0.01, 0.01, 60.0], dtype=torch.float64)
    mixed = readings.robust_reading({"standard": skew, "pgd-at": _robust(0.4, 0.9, 2.0, 0.3)})
    assert (
        "more curved than standard's by the exact ‖H‖₂ (median 0.4 vs 0.01; by its mean less curved, 0.4 vs 12"
        in mixed[0]
    )
    assert "cure buys much of pgd-at's robustness (67 % of its gain" in paper
    none = " ".join(readings.robust_reading({"a": _robust(1.0, 0.5, 1.0), "b": _robust(1.0, 0.2, 1.0)}))
    assert "No network is more robust than a" in none


def test_ensemble_reading_counts_the_points_pgd_overestimates():
    e = lambda pgd, ens: SimpleNamespace(n_points=50, eps=0.1, pgd_accuracy=pgd, ensemble_accuracy=ens)
    over, same, under = readings.ensemble_reading({"a": e(0.54, 0.50), "b": e(0.8, 0.8), "c": e(0.78, 0.8)})
    assert "PGD 54.0 %, ensemble 50.0 %" in over and "overestimates robust accuracy by 2 of 50 points" in over
    assert "agree on these 50 points" in same
    assert "PGD broke 1 of 50 points more than the ensemble" in under


def test_robust_reading_needs_two_networks():
    with pytest.raises(ValueError):
        readings.robust_reading({"a": _robust(1.0, 0.5, 1.0)})


# ----------------------------------------------------------------------------- certified radius
def _check(ratio: list[float], violations: list[int]) -> SanityCheck:
    r = np.array(ratio)
    return SanityCheck(
        r_norm=r,
        success=np.isfinite(r),
        n_checked=int(np.isfinite(r).sum()),
        violations=np.array(violations, dtype=np.int64),
        ratio=r,
        attack="deepfool",
    )


def test_certify_reading_flips_with_soundness():
    cert = SimpleNamespace(radius=np.array([0.02, 0.03, 0.04]))
    ok = readings.certify_reading(
        SimpleNamespace(certificate=cert, best=cert.radius, check=_check([40.0, 50.0, math.inf], []))
    )
    assert "0.03" in ok and "45×" in ok and "ε_cert(x) ≤ ‖r(x)‖ holds at all 2 points" in ok and "(1 where none" in ok
    bad = readings.certify_reading(
        SimpleNamespace(certificate=cert, best=cert.radius, check=_check([0.5, 50.0, 60.0], [0]))
    )
    assert "exceeded ‖r(x)‖ at 1 of 3" in bad and "holds" not in bad and "not sound" in bad


def _cs(radius: float, r_norm: float, half: float) -> SimpleNamespace:
    axis = torch.linspace(-half, half, 5, dtype=torch.float64)
    return SimpleNamespace(section=SimpleNamespace(alpha=axis, beta=axis), radius=radius, r_norm=r_norm)


def test_certified_section_reading_says_when_the_disk_is_too_small():
    tiny = readings.certified_section_reading(_cs(0.027, 1.2, 3.5))
    assert "lies inside x's region" in tiny and "too small to see at this scale" in tiny and "0.8%" in tiny
    assert readings.disk_share(_cs(0.027, 1.2, 3.5)) == pytest.approx(0.054 / 7.0)
    # a disk no wider than x's marker (digits-lenet, test point 0: ε_cert = 0.043 on a ±0.92 plot, 4.7 %) is too small
    assert "too small to see" in readings.certified_section_reading(_cs(0.043, 0.615, 0.92))
    seen = readings.certified_section_reading(_cs(0.5, 1.2, 3.5))
    assert "lies inside" in seen and "too small" not in seen
    past = readings.certified_section_reading(_cs(2.0, 1.2, 3.5))
    assert "reaches past" in past and "not sound" in past
    assert "certifies no disk" in readings.certified_section_reading(_cs(0.0, 1.2, 3.5))


def _certified(radius: list[float], correct: list[bool]) -> SimpleNamespace:
    r = np.array(radius)
    labels = np.zeros(len(r), dtype=np.int64)
    return SimpleNamespace(certificate=SimpleNamespace(radius=r, label=np.where(correct, 0, 1)), labels=labels)


def test_certify_pair_reading_flips_with_the_certified_shares():
    lmt = _certified([0.1, 0.2, 0.3, 0.4], [True, True, True, False])  # median radius 0.25
    std = _certified([0.01, 0.02, 0.3, 0.03], [True, True, True, True])
    text = readings.certify_pair_reading({"lmt": lmt, "standard": std})
    assert "ε = 0.25" in text and "lmt certifies 25 %" in text and "standard certifies 25 %" in text
    assert "does not certify more" in text  # a tie is no win
    better = _certified([0.1, 0.3, 0.3, 0.4], [True, True, True, True])
    assert "lmt certifies more" in readings.certify_pair_reading({"lmt": better, "standard": std})
    with pytest.raises(ValueError):
        readings.certify_pair_reading({"lmt": lmt})


def _ladder_study(crown: np.ndarray, distance: np.ndarray):
    from geometry.certify import Certificate, check_certificates
    from geometry.study.certify import CertifyStudy

    n = len(distance)
    plain = np.full(n, 0.01)
    cert = Certificate(
        label=np.zeros(n, dtype=int), margin=np.ones(n), radius=plain * 2, radius_plain=plain, radius_pair=plain * 2,
        radius_estimate=plain * 3, bound=None,
    )  # fmt: skip
    best = np.fmax(cert.radius, crown)
    check = check_certificates(_with_radius(cert, best), distance, np.isfinite(distance))
    eps = np.linspace(0, 1, 5)
    return CertifyStudy(
        certificate=cert, check=check, distance=distance, winner=("fmn",) * n, labels=np.zeros(n, dtype=int), eps=eps,
        certified_accuracy=eps, attack_accuracy=eps, crown=crown, crown_norm="l2", crown_note="test",
    )  # fmt: skip


def _with_radius(cert, radius):
    import dataclasses

    return dataclasses.replace(cert, radius=radius)


def test_the_ladder_reading_names_the_best_bound_and_the_sok_gap():
    # CROWN 0.3 = 30× the plain Lipschitz 0.01 (inside SoK's 15–50×), best at every point; attack 0.6 = 2× CROWN
    study = _ladder_study(np.full(4, 0.3), np.full(4, 0.6))
    text = readings.certificate_ladder_reading(study)
    assert "CROWN ℓ2 is the best sound bound at 4 of 4 points" in text
    assert "median 2× the best certificate" in text and "global Lipschitz 60×" in text
    assert "30× the global Lipschitz certificate — within the SoK" in text and "UNSOUND" not in text
    # CROWN below LMT's pair bound (0.02) at three points: LMT pair wins there, the gap is not SoK's, the order is said
    low = _ladder_study(np.array([0.005, 0.005, 0.005, 0.3]), np.array([0.6, 0.6, 0.6, 0.01]))
    text = readings.certificate_ladder_reading(low)
    assert "LMT pair is the best sound bound at 3 of 4 points (CROWN ℓ2 at 1)" in text
    assert "not the SoK benchmark's 15–50×" in text
    assert "below it (sound bounds are not ordered)" in text
    assert "UNSOUND: a certificate exceeds the attack radius at 1 points" in text  # 0.3 > 0.01 at the last point
