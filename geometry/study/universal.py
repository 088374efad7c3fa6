"""Universal perturbations (ICLR 2018 §5, Fig. 7b, 8, 9; Theorems 1–2; CVPR 2017 Alg. 1).

:func:`universal_study`: random vectors of norm ξ from S_c, S_f and a random subspace against the
UAP algorithm on held-out points, and the theorems' inputs. :func:`universal_samples`: K vectors of
one m for the gallery (Fig. 8) and the diversity plot (Fig. 9). Used by the "Universal
perturbations" page, the command line's ``report`` (fooling rate versus m) and
``docs/scripts/reproduce_universal.py``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..classifier import Classifier
from ..curvature import Subspace, random_subspace
from ..deepfool import deepfool
from ..errors import AtlasError
from ..progress import ProgressFn
from ..universal import (
    FoolingCurve,
    UniversalResult,
    fooling_rate,
    fooling_rate_vs_m,
    fooling_rates,
    sample_subspace,
    universal_perturbation,
)
from .cache import cached_result
from .curvature import _check_points, estimation_deepfool, study_subspaces
from .noise import median_norm, noise_norm, resolve_h, vectors_xi
from .points import StudyPoints, data_fingerprint, network_fingerprint
from .settings import CurvatureSettings, HScale, UniversalSettings, m_grid

__all__ = [
    "UniversalStudy",
    "universal_study",
    "fooling_curve",
    "theorem_rows",
    "UniversalSamples",
    "universal_samples",
    "pushed_into",
]


@dataclass(frozen=True)
class UniversalStudy:
    """What the "Universal perturbations" page shows for one network and one setting (plain data).

    Attributes
    ----------
    curve : geometry.universal.FoolingCurve — fooling rate versus m of random vectors of norm ξ from
        S_c, S_f and a random subspace, on the held-out points (Fig. 7b)
    xi : float — ξ = noise_quantile / xi_divisor (pixel units); share, noise_quantile,
        infinite_share, noise_max_norm — from the :class:`geometry.universal.NoiseNormResult` given
    h : float — finite-difference scale of S_c (pixel units)
    curved, flat, random : geometry.curvature.Subspace
    uap : geometry.universal.UniversalResult — CVPR 2017 Alg. 1 at ξ on ``n_uap`` training points
    uap_heldout : float — its fooling rate on the held-out points
    uap_in_curved : (M,) float — ‖P v‖/‖v‖ of the UAP's v projected on the first m directions of S_c,
        for m in curve.m_values; uap_in_random the same for the random subspace (≈ √(m/d))
    r_norms : (N,) float64 — DeepFool ‖r(x)‖₂ of the converged held-out points
    theorems : list of dicts, one per m — Theorem 1 / 2 inputs and norms (see the page's caption)
    n_estimate, n_dropped, n_heldout, n_uap : int; accuracy : float or None; seconds : float
    xi_ratio : float or None — the settings' ξ / ‖x‖ (None: ξ from the noise norm, Fig. 7b)
    x_norm : float — the median ‖x‖₂ of the noise points (pixel units), the ‖x‖ of ``xi_ratio``
    """

    curve: FoolingCurve
    xi: float
    share: float
    noise_quantile: float
    infinite_share: float
    noise_max_norm: float
    h: float
    curved: Subspace
    flat: Subspace
    random: Subspace
    uap: UniversalResult
    uap_heldout: float
    uap_in_curved: list
    uap_in_random: list
    r_norms: torch.Tensor
    theorems: list
    n_estimate: int
    n_dropped: int
    n_heldout: int
    n_uap: int
    accuracy: float | None
    seconds: float
    h_text: str = ""
    source: str = ""
    xi_ratio: float | None = None
    x_norm: float = math.nan


def theorem_rows(
    curve: FoolingCurve,
    curved: Subspace,
    flat: Subspace,
    normals: torch.Tensor,
    r_norms: torch.Tensor,
    xi: float,
    delta: float,
) -> list[dict[str, float]]:
    """Theorem 1 / 2 norms from measured quantities, one row per m of the curve (plain floats).

    ``normals`` (N, d) DeepFool perturbations and ``r_norms`` (N,) their ‖r‖₂ on held-out points;
    ξ of Theorem 1 from the normals' fit to S_f (:func:`geometry.theory.normal_fit_xi`), κ of
    Theorem 2 from S_c's re-evaluated normal curvature (:func:`geometry.theory.theorem2_kappa`),
    both bounds rescaled to pixel units with the median ‖r‖ (ICLR 2018 Theorems 1–2).
    """
    from .. import theory

    med = float(torch.quantile(r_norms.double(), 0.5)) if len(r_norms) else float("nan")
    rows = []
    for i, m in enumerate(int(v) for v in curve.m_values):
        row = {
            "m": m,
            "delta": delta,
            "r_median": med,
            "xi_norm": xi,
            "xi_in_r": xi / med if med else float("nan"),
            "S_c_mean": float(curve.mean["S_c"][i]),
            "S_c_best": float(curve.best["S_c"][i]),
            "S_f_mean": float(curve.mean["S_f"][i]),
            "S_f_best": float(curve.best["S_f"][i]),
        }
        fit = float("nan")
        if len(normals) and m <= flat.m:
            fit = theory.normal_fit_xi(normals, flat.first(m).basis, share=1.0)
        row["fit_xi"] = fit
        rho1 = theory.theorem1_norm(m, delta, fit) if 0.0 <= fit < 1.0 else float("inf")
        row["rho1"] = rho1
        row["rho1_px"] = theory.to_pixel_units(rho1, r_norms) if math.isfinite(rho1) and len(r_norms) else rho1
        kappa_normal = float(curved.kappas[:m].mean())
        row["kappa_normal"] = kappa_normal
        kappa = (
            theory.theorem2_kappa(kappa_normal, med)
            if math.isfinite(kappa_normal) and math.isfinite(med)
            else float("nan")
        )
        row["kappa"] = kappa
        rho2 = theory.theorem2_norm(m, delta, kappa) if kappa > 0 else float("inf")
        row["rho2"] = rho2
        row["rho2_px"] = theory.to_pixel_units(rho2, r_norms) if math.isfinite(rho2) and len(r_norms) else rho2
        rows.append(row)
    return rows


def fooling_curve(
    clf: Classifier,
    points: StudyPoints,
    subspaces: dict[str, Subspace],
    *,
    m_values: Sequence[int],
    xi: float,
    n_samples: int,
    seed: int,
    progress: ProgressFn | None = None,
) -> FoolingCurve:
    """Fooling rate versus m of random vectors of norm ξ from each subspace, on the held-out points
    (:func:`geometry.universal.fooling_rate_vs_m`, Fig. 7b), cached under (network, points, subspaces, ξ)."""
    key = {
        "network": network_fingerprint(clf),
        "heldout": points.heldout_key,
        "xi": repr(float(xi)),
        "m": [int(m) for m in m_values],
        "n_samples": int(n_samples),
        "seed": int(seed),
        "subspaces": {k: data_fingerprint(s.basis) for k, s in subspaces.items()},
    }
    return cached_result(
        "fooling",
        key,
        lambda: fooling_rate_vs_m(
            clf,
            points.heldout,
            subspaces,
            list(m_values),
            xi=float(xi),
            n_samples=n_samples,
            random_state=seed,
            progress=progress,
        ),
        disk=False,
    )


def universal_study(
    clf: Classifier, points: StudyPoints, settings: UniversalSettings, *, progress: ProgressFn | None = None
) -> UniversalStudy:
    """Fig. 7b for one network: random vectors of norm ξ from S_c, S_f and a random subspace against
    the UAP algorithm, plus the theorems' inputs (ICLR 2018 §5, Fig. 7b; CVPR 2017 Alg. 1).

    ξ = ``settings.xi_ratio`` · the median ‖x‖₂ of the noise points (default 0.04, CVPR 2017 §3's ImageNet
    ratio), or with ``xi_ratio=None`` (noise norm fooling ``settings.share`` of the noise points) / 5
    (:func:`geometry.study.noise.noise_norm`; ICLR 2018 Fig. 7b); S_c at the h of ``settings.scale`` (finite
    differences, z = x + r(x), tangent-projected; disk cache shared with the curvature page when
    the settings agree; every r(x) by ``settings.rx``: box-constrained DeepFool by default, the paper's
    unconstrained one with ``rx="unconstrained"``); the UAP algorithm (5 passes at most, batched) on ``points.uap``, its
    fooling rate measured on the held-out points.

    Returns
    -------
    UniversalStudy — cached in memory and on disk under (network fingerprint, points, settings, h).

    Raises
    ------
    AtlasError
        ξ from the noise norm (``xi_ratio=None``) and the noise quantile is infinite (ξ undefined), or there
        are no UAP points (``n_uap = 0``).
    InvalidInputError
        ``points`` were chosen for another split.
    """
    _check_points(points, settings.points)
    if len(points.uap) == 0:
        raise AtlasError("the universal study needs UAP points: set PointSplit.n_uap ≥ 1")
    noise = noise_norm(clf, points, settings.share)
    if settings.xi_ratio is None and not math.isfinite(noise.quantile):
        raise AtlasError(
            f"random noise fools fewer than {noise.share:.0%} of the held-out points even at ‖noise‖₂ = "
            f"{noise.max_norm:.3g} ({noise.infinite_share:.0%} of random rays never change the label), so ξ is "
            "undefined: try a smaller share"
        )
    resolved = resolve_h(clf, settings.scale, points)
    h = resolved.h
    key = {
        "network": network_fingerprint(clf),
        "estimate": points.estimate_key,
        "heldout": points.heldout_key,
        "uap": points.uap_key,
        "noise": points.noise_key,
        "settings": settings.key(),
        "h": repr(h),
    }

    def compute() -> UniversalStudy:
        t0 = time.perf_counter()
        report = progress or (lambda f, msg: None)
        seed = settings.points.seed
        xi = vectors_xi(noise, points, settings.xi_ratio)
        est, held = points.estimate, points.heldout
        report(0.0, f"DeepFool on the {len(est)} estimation points")
        df_est = estimation_deepfool(clf, points, rx=settings.rx)
        # S_c at this study's h (finite differences, z = x + r(x), tangent-projected) and S_f: the curvature
        # study's own subspaces and disk-cache entries
        curved, flat = study_subspaces(
            clf,
            points,
            CurvatureSettings(
                points=settings.points, m_max=settings.m_max, scale=HScale("custom", float(h)), rx=settings.rx
            ),
            deepfool_result=df_est,
            progress=lambda f, msg: report(0.03 + 0.5 * f, f"S_c: {msg}"),
        )
        rand = random_subspace(clf.d, settings.m_max, random_state=seed, input_shape=clf.input_shape)
        ms = [m for m in m_grid(settings.m_max) if m <= flat.m]
        curve = fooling_rate_vs_m(
            clf,
            held,
            {"S_c": curved, "S_f": flat, "random": rand},
            ms,
            xi=xi,
            n_samples=settings.n_samples,
            random_state=seed,
            progress=lambda f, msg: report(0.55 + 0.15 * f, f"fooling rate versus m: {msg}"),
        )
        uap = universal_perturbation(
            clf,
            points.uap,
            xi=xi,
            norm=2,
            delta=settings.delta,
            max_passes=5,
            batch_size=64,
            random_state=seed,
            progress=lambda f, msg: report(0.7 + 0.22 * f, f"UAP algorithm: {msg}"),
        )
        uap_heldout = fooling_rate(clf, held, uap.v)
        v = uap.v.reshape(-1).double()
        vn = float(torch.linalg.vector_norm(v)) or 1.0
        in_c = [float(torch.linalg.vector_norm(curved.basis[:, :m].T @ v)) / vn for m in ms]
        in_r = [float(torch.linalg.vector_norm(rand.basis[:, :m].T @ v)) / vn for m in ms]
        report(0.93, f"DeepFool on the {len(held)} held-out points (‖r‖ and normals for the theorems)")
        df_held = deepfool(clf, held, clip=settings.rx == "box")
        ok = df_held.converged
        r_norms = df_held.norms[ok].double()
        normals = df_held.r[ok].reshape(int(ok.sum()), -1)
        rows = theorem_rows(curve, curved, flat, normals, r_norms, xi, settings.delta)
        report(1.0, "done")
        return UniversalStudy(
            curve=curve,
            xi=xi,
            share=noise.share,
            noise_quantile=noise.quantile,
            infinite_share=noise.infinite_share,
            noise_max_norm=noise.max_norm,
            h=float(h),
            curved=curved,
            flat=flat,
            random=rand,
            uap=uap,
            uap_heldout=uap_heldout,
            uap_in_curved=in_c,
            uap_in_random=in_r,
            r_norms=r_norms,
            theorems=rows,
            n_estimate=len(est),
            n_dropped=int(curved.n_dropped),
            n_heldout=len(held),
            n_uap=len(points.uap),
            accuracy=clf.test_accuracy,
            seconds=time.perf_counter() - t0,
            h_text=resolved.text,
            source=points.source,
            xi_ratio=settings.xi_ratio,
            x_norm=median_norm(points),
        )

    return cached_result("universal", key, compute)


@dataclass(frozen=True)
class UniversalSamples:
    """Random vectors of norm ξ from S_c and S_f at one m, with what the gallery and the diversity
    plot need (plain data).

    Attributes
    ----------
    m : int
    curved, flat : (K, C, H, W) — K vectors each (same random coefficients for both)
    curved_rates, flat_rates : (K,) float — one-sided fooling rates on the held-out points
    curved_two_sided, flat_two_sided : (K,) float — ``k̂(x + v) ≠ k̂(x) or k̂(x − v) ≠ k̂(x)`` (Eq. 2)
    gram : (K, K) float — normalised inner products between the S_c vectors (Fig. 9)
    mean_abs_cos : float — mean |gram| off the diagonal (NaN for K = 1)
    best : int — index of the S_c vector with the highest fooling rate (shown in the gallery)
    gallery_images : (G, C, H, W) — the first G held-out images; gallery_labels (G,) k̂(x)
    gallery : dict name → dict(v, new_labels (G,), rate, dominant, dominant_share, dominant_of_all)
    """

    m: int
    curved: torch.Tensor
    flat: torch.Tensor
    curved_rates: torch.Tensor
    flat_rates: torch.Tensor
    curved_two_sided: torch.Tensor
    flat_two_sided: torch.Tensor
    gram: torch.Tensor
    mean_abs_cos: float
    best: int
    gallery_images: torch.Tensor
    gallery_labels: torch.Tensor
    gallery: dict[str, dict[str, Any]]


def pushed_into(clf: Classifier, held: torch.Tensor, labels: torch.Tensor, v: torch.Tensor) -> dict[str, Any]:
    """Where a perturbation sends the held-out points: new labels, the dominant new label among the
    fooled points and its share. ``v`` (C, H, W); ``labels`` (N,) k̂ of ``held``."""
    new = clf.predict(held + v.to(held.dtype)).cpu()
    fooled = new != labels
    out = {
        "rate": float(fooled.double().mean()),
        "dominant": None,
        "dominant_share": float("nan"),
        "dominant_of_all": float("nan"),
        "new_all": new,
    }
    if bool(fooled.any()):
        counts = torch.bincount(new[fooled], minlength=int(new.max()) + 1)
        top = int(counts.argmax())
        out.update(
            dominant=top,
            dominant_share=float(counts[top]) / int(fooled.sum()),
            dominant_of_all=float((new == top).double().mean()),
        )
    return out


def universal_samples(
    clf: Classifier, study: UniversalStudy, points: StudyPoints, *, m: int, k: int = 8, n_gallery: int = 8
) -> UniversalSamples:
    """K random vectors of norm ξ from the first m directions of S_c (and of S_f, same coefficients),
    their fooling rates (one- and two-sided), their normalised inner products (ICLR 2018 Fig. 9) and
    the gallery (Fig. 8) for the UAP and the best S_c vector, on ``points.heldout`` (N, C, H, W)."""
    seed = int(points.split.seed)
    held = points.heldout
    m = int(min(max(int(m), 1), study.flat.m, study.curved.m))
    shape = tuple(clf.input_shape)
    vc = sample_subspace(study.curved, m, study.xi, n_samples=k, random_state=seed + 2, shape=shape).float()
    vf = sample_subspace(study.flat, m, study.xi, n_samples=k, random_state=seed + 2, shape=shape).float()
    labels = clf.predict(held).cpu()
    rc = fooling_rates(clf, held, vc, labels=labels)
    rf = fooling_rates(clf, held, vf, labels=labels)
    rc2 = fooling_rates(clf, held, vc, labels=labels, two_sided=True)
    rf2 = fooling_rates(clf, held, vf, labels=labels, two_sided=True)
    flat_c = vc.reshape(k, -1).double()
    unit = flat_c / torch.linalg.vector_norm(flat_c, dim=1, keepdim=True).clamp_min(1e-30)
    gram = unit @ unit.T
    off = gram[~torch.eye(k, dtype=torch.bool)].abs()
    mean_abs_cos = float(off.mean()) if k > 1 else float("nan")
    best = int(rc.argmax())
    g = min(n_gallery, len(held))
    gallery = {}
    for name, v in (("UAP", study.uap.v), (f"S_c vector (m = {m})", vc[best])):
        p = pushed_into(clf, held, labels, v)
        gallery[name] = {"v": v, "new_labels": p.pop("new_all")[:g], **p}
    return UniversalSamples(
        m=m,
        curved=vc,
        flat=vf,
        curved_rates=rc,
        flat_rates=rf,
        curved_two_sided=rc2,
        flat_two_sided=rf2,
        gram=gram,
        mean_abs_cos=mean_abs_cos,
        best=best,
        gallery_images=held[:g],
        gallery_labels=labels[:g],
        gallery=gallery,
    )
