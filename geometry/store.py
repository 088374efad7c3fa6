"""Disk-cached subspaces: compute S_c / S_f once per (network, data, settings), reuse everywhere.

Estimating S_c is the slow step of the atlas (n boundary points × tens of Lanczos iterations of
batched Hessian-vector products). :func:`cached_subspace` keeps each result in
``cache_dir("subspaces")`` under a key that holds everything that defines it — the network (zoo
recipe hash or upload hash), the dataset and split, the indices of the points, m, method, h / β,
boundary point, tangent projection and seed — so a restart or another page reuses it, and a
changed setting never returns a stale subspace. Files are written atomically, contain no
pickled code and carry a SHA-256 (:func:`geometry.curvature.save_subspace`); a damaged file is
deleted and recomputed, never returned.

:func:`curvature_study` bundles what the "Curvature vs m" page shows (paper ICLR 2018 §5, Fig. 7a):
S_c and S_f from n training points, a random subspace of the same dimension, and the average
curvature K_S(x) on held-out points as a function of m for all three. :func:`universal_study` and
:func:`universal_samples` do the same for the "Universal perturbations" page (Fig. 7b, 8, 9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .cache import CorruptFileError, cache_dir, cache_key, discard_damaged
from .classifier import Classifier
from .curvature import (
    Subspace,
    average_curvature,
    curved_subspace,
    flat_subspace,
    load_subspace,
    random_subspace,
    save_subspace,
)
from .deepfool import deepfool
from .errors import InvalidInputError
from .hessian import default_beta, default_h

__all__ = ["model_key", "choose_points", "cached_subspace", "CurvatureStudy", "curvature_study", "m_grid",
           "UniversalStudy", "theorem_rows", "universal_study", "UniversalSamples", "pushed_into", "universal_samples"]

Progress = Callable[[float, str], None]


def model_key(clf: Classifier) -> str:
    """A string that changes whenever the network's weights could: zoo cache file (recipe hash) or
    upload hash, plus the name."""
    return "|".join(str(v) for v in (clf.name, clf.info.get("cache_file", ""), clf.info.get("sha256", ""),
                                     clf.info.get("recipe", "")))


def choose_points(n_total: int, n: int, *, random_state: int = 0) -> torch.Tensor:
    """``n`` distinct indices out of ``n_total``, seeded (sorted, so the set defines the key).

    Raises InvalidInputError if ``n`` is not in [1, n_total].
    """
    if not 1 <= int(n) <= int(n_total):
        raise InvalidInputError(f"need between 1 and {n_total} points, got n = {n}")
    gen = torch.Generator().manual_seed(int(random_state))
    return torch.sort(torch.randperm(int(n_total), generator=gen)[: int(n)]).values


def _resolved_scale(clf: Classifier, method: str, h: float | None, beta: float | None):
    if method == "finite_difference":
        return (float(h) if h is not None else default_h(clf)), None
    if method == "smoothed":
        return None, (float(beta) if beta is not None else default_beta(clf))
    return None, None


def cached_subspace(
    kind: str,
    clf: Classifier,
    xs: torch.Tensor,
    m: int,
    *,
    data_key: str,
    method: str = "finite_difference",
    h: float | None = None,
    beta: float | None = None,
    point: str = "boundary",
    tangent: bool = True,
    random_state: int = 0,
    progress: Progress | None = None,
    deepfool_result=None,
) -> Subspace:
    """S_c (``kind="curved"``) or S_f (``kind="flat"``) of ``clf`` on ``xs``, read from or written to disk.

    Parameters
    ----------
    kind : "curved" | "flat"
    xs : (n, C, H, W) — the points (pixel space); ``data_key`` must identify them uniquely
        (e.g. ``"mnist/train/" + hash of the indices``)
    m : subspace dimension
    method, h, beta, point, tangent, random_state : as :func:`geometry.curvature.curved_subspace`
        (ignored for ``kind="flat"``)

    Returns
    -------
    Subspace — as computed by :func:`curved_subspace` / :func:`flat_subspace`. A damaged cache file
    (truncated, failing its SHA-256, old format, NaN basis) is deleted with a
    :class:`geometry.cache.DamagedCacheWarning` and recomputed.
    """
    if kind not in ("curved", "flat"):
        raise InvalidInputError(f"kind must be 'curved' or 'flat', got {kind!r}")
    h_, beta_ = _resolved_scale(clf, method, h, beta)
    desc = {"kind": kind, "model": model_key(clf), "data": data_key, "n": int(len(xs)), "m": int(m), "format": 2}
    if kind == "curved":
        desc.update(method=method, h=h_, beta=beta_, point=point, tangent=bool(tangent), seed=int(random_state))
    path = cache_dir("subspaces") / f"{kind}-{cache_key(desc)}.safetensors"
    try:
        s = load_subspace(path)
    except FileNotFoundError:
        pass
    except CorruptFileError as exc:  # a damaged cache file is recomputed, never trusted
        discard_damaged(path, exc)
    else:
        if progress is not None:
            progress(1.0, f"S_{'c' if kind == 'curved' else 'f'} read from the disk cache")
        return s
    if kind == "curved":
        s = curved_subspace(clf, xs, m, method=method, h=h_, beta=beta_, point=point, tangent=tangent,
                            random_state=random_state, progress=progress, deepfool_result=deepfool_result)
    else:
        s = flat_subspace(clf, xs, m, deepfool_result=deepfool_result)
    save_subspace(path, s)
    return s


def m_grid(m_max: int, *, points: int = 12) -> list[int]:
    """Values of m from 1 to ``m_max``: all of them when few, else a roughly geometric grid."""
    m_max = int(m_max)
    if m_max <= points:
        return list(range(1, m_max + 1))
    grid = {1, m_max}
    ratio = m_max ** (1 / (points - 1))
    v = 1.0
    while v < m_max:
        v *= ratio
        grid.add(min(m_max, max(1, round(v))))
    return sorted(grid)


@dataclass(frozen=True)
class CurvatureStudy:
    """Everything Fig. 7a needs, for one network and one setting.

    Attributes
    ----------
    curved, flat, random : Subspace — S_c, S_f (from the estimation points) and a random subspace,
        each of dimension ``m_max``
    curves : dict name → CurvatureCurve — ``"S_c"``, ``"S_f"``, ``"random"``: K_S(x) versus m on
        the held-out points
    m_values : list of int
    method : str; h : float or None (pixel units); beta : float or None; point : str
    n_estimate, n_heldout : int — points used for the subspaces / for the curves
    """

    curved: Subspace
    flat: Subspace
    random: Subspace
    curves: dict
    m_values: list
    method: str
    h: float | None
    beta: float | None
    point: str
    n_estimate: int
    n_heldout: int


def curvature_study(
    clf: Classifier,
    estimate_xs: torch.Tensor,
    heldout_xs: torch.Tensor,
    *,
    data_key: str,
    m_max: int = 20,
    method: str = "finite_difference",
    h: float | None = None,
    beta: float | None = None,
    point: str = "boundary",
    tangent: bool = True,
    n_directions: int = 10,
    m_values: Sequence[int] | None = None,
    random_state: int = 0,
    progress: Progress | None = None,
) -> CurvatureStudy:
    """S_c, S_f and random subspaces, and K_S versus m on held-out points (ICLR 2018 §5, Fig. 7a).

    Parameters
    ----------
    estimate_xs : (n, C, H, W) — points whose boundary Hessians define S_c and normals define S_f
        (training points in the paper)
    heldout_xs : (n', C, H, W) — points on which the average curvature is measured
    data_key : identifies ``estimate_xs`` for the disk cache
    m_max : dimension of the subspaces; m_values default :func:`m_grid` (m_max)
    method, h, beta, point, tangent : curvature estimator (see :mod:`geometry.hessian`); the same
        estimator is used for S_c and for the held-out curvature
    n_directions : random unit directions per m and point

    Returns
    -------
    CurvatureStudy
    """
    report = progress or (lambda f, msg: None)
    h_, beta_ = _resolved_scale(clf, method, h, beta)
    df_est = deepfool(clf, estimate_xs)
    report(0.02, "DeepFool on the estimation points")
    S_c = cached_subspace("curved", clf, estimate_xs, m_max, data_key=data_key, method=method, h=h_, beta=beta_,
                          point=point, tangent=tangent, random_state=random_state, deepfool_result=df_est,
                          progress=lambda f, msg: report(0.02 + 0.6 * f, f"S_c: {msg}"))
    S_f = cached_subspace("flat", clf, estimate_xs, min(m_max, int(df_est.converged.sum())), data_key=data_key,
                          deepfool_result=df_est)
    S_r = random_subspace(clf.d, m_max, random_state=random_state, input_shape=clf.input_shape)
    ms = list(m_values) if m_values is not None else m_grid(m_max)
    df_held = deepfool(clf, heldout_xs)
    curves = {}
    for i, (name, s) in enumerate((("S_c", S_c), ("S_f", S_f), ("random", S_r))):
        ms_s = [m for m in ms if m <= s.basis.shape[1]]
        curves[name] = average_curvature(
            clf, heldout_xs, s, ms_s, n_directions=n_directions, method=method, h=h_, beta=beta_,
            random_state=random_state, point=point, deepfool_result=df_held,
            progress=lambda f, msg, i=i, name=name: report(0.62 + 0.38 * (i + f) / 3, f"K_S on {name}: {msg}"),
        )
    report(1.0, "done")
    return CurvatureStudy(curved=S_c, flat=S_f, random=S_r, curves=curves, m_values=ms, method=method, h=h_,
                          beta=beta_, point=point, n_estimate=len(estimate_xs), n_heldout=len(heldout_xs))


# ----------------------------------------------------------------------------- universal study (Fig. 7b)
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
    """

    curve: object
    xi: float
    share: float
    noise_quantile: float
    infinite_share: float
    noise_max_norm: float
    h: float
    curved: object
    flat: object
    random: object
    uap: object
    uap_heldout: float
    uap_in_curved: list
    uap_in_random: list
    r_norms: object
    theorems: list
    n_estimate: int
    n_dropped: int
    n_heldout: int
    n_uap: int
    accuracy: float | None
    seconds: float


def theorem_rows(curve, curved, flat, normals, r_norms, xi: float, delta: float) -> list:
    """Theorem 1 / 2 norms from measured quantities, one row per m of the curve (plain floats).

    ``normals`` (N, d) DeepFool perturbations and ``r_norms`` (N,) their ‖r‖₂ on held-out points;
    ξ of Theorem 1 from the normals' fit to S_f (:func:`geometry.theory.normal_fit_xi`), κ of
    Theorem 2 from S_c's re-evaluated normal curvature (:func:`geometry.theory.theorem2_kappa`),
    both bounds rescaled to pixel units with the median ‖r‖ (ICLR 2018 Theorems 1–2).
    """
    from . import theory

    med = float(torch.quantile(r_norms.double(), 0.5)) if len(r_norms) else float("nan")
    rows = []
    for i, m in enumerate(int(v) for v in curve.m_values):
        row = {"m": m, "delta": delta, "r_median": med, "xi_norm": xi, "xi_in_r": xi / med if med else float("nan"),
               "S_c_mean": float(curve.mean["S_c"][i]), "S_c_best": float(curve.best["S_c"][i]),
               "S_f_mean": float(curve.mean["S_f"][i]), "S_f_best": float(curve.best["S_f"][i])}
        fit = float("nan")
        if len(normals) and m <= flat.m:
            fit = theory.normal_fit_xi(normals, flat.first(m).basis, share=1.0)
        row["fit_xi"] = fit
        rho1 = theory.theorem1_norm(m, delta, fit) if 0.0 <= fit < 1.0 else float("inf")
        row["rho1"] = rho1
        row["rho1_px"] = theory.to_pixel_units(rho1, r_norms) if math.isfinite(rho1) and len(r_norms) else rho1
        kappa_normal = float(curved.kappas[:m].mean())
        row["kappa_normal"] = kappa_normal
        kappa = theory.theorem2_kappa(kappa_normal, med) if math.isfinite(kappa_normal) and math.isfinite(med) else float("nan")
        row["kappa"] = kappa
        rho2 = theory.theorem2_norm(m, delta, kappa) if kappa > 0 else float("inf")
        row["rho2"] = rho2
        row["rho2_px"] = theory.to_pixel_units(rho2, r_norms) if math.isfinite(rho2) and len(r_norms) else rho2
        rows.append(row)
    return rows


def universal_study(
    clf: Classifier,
    estimate_xs: torch.Tensor,
    heldout_xs: torch.Tensor,
    uap_xs: torch.Tensor,
    noise,
    *,
    data_key: str,
    m_max: int = 20,
    h: float,
    n_samples: int = 10,
    xi_divisor: float = 5.0,
    delta: float = 0.2,
    random_state: int = 0,
    progress: Progress | None = None,
) -> UniversalStudy:
    """Fig. 7b for one network: random vectors of norm ξ from S_c, S_f and a random subspace against
    the UAP algorithm, plus the theorems' inputs (ICLR 2018 §5, Fig. 7b; CVPR 2017 Alg. 1).

    Parameters
    ----------
    estimate_xs : (n, C, H, W) — points defining S_c / S_f (``data_key`` identifies them for the disk cache)
    heldout_xs : (n', C, H, W) — points the fooling rates are measured on
    uap_xs : (n'', C, H, W) — points the UAP algorithm runs on
    noise : :class:`geometry.universal.NoiseNormResult` with a finite ``quantile``; ξ = quantile / xi_divisor
    h : finite-difference scale of S_c (pixel units); boundary point z = x + r(x), tangent-projected
    delta : the UAP's target 1 − δ (5 passes at most, batched)

    Raises
    ------
    AtlasError
        the noise quantile is infinite (ξ undefined).
    """
    import math
    import time

    from .errors import AtlasError
    from .universal import fooling_rate, fooling_rate_vs_m, universal_perturbation

    t0 = time.perf_counter()
    report = progress or (lambda f, msg: None)
    seed = random_state
    if not math.isfinite(noise.quantile):
        raise AtlasError(
            f"random noise fools fewer than {noise.share:.0%} of the held-out points even at ‖noise‖₂ = "
            f"{noise.max_norm:.3g} ({noise.infinite_share:.0%} of random rays never change the label), so ξ is "
            "undefined: try a smaller share")
    xi = noise.quantile / xi_divisor
    est, held = estimate_xs, heldout_xs
    report(0.0, f"DeepFool on the {len(est)} estimation points")
    df_est = deepfool(clf, est)
    curved = cached_subspace("curved", clf, est, m_max, data_key=data_key, method="finite_difference", h=float(h),
                             point="boundary", tangent=True, random_state=seed, deepfool_result=df_est,
                             progress=lambda f, msg: report(0.03 + 0.5 * f, f"S_c: {msg}"))
    flat = cached_subspace("flat", clf, est, min(m_max, int(df_est.converged.sum())), data_key=data_key,
                           deepfool_result=df_est)
    rand = random_subspace(clf.d, m_max, random_state=seed, input_shape=clf.input_shape)
    ms = [m for m in m_grid(m_max) if m <= flat.m]
    curve = fooling_rate_vs_m(clf, held, {"S_c": curved, "S_f": flat, "random": rand}, ms, xi=xi,
                              n_samples=n_samples, random_state=seed,
                              progress=lambda f, msg: report(0.55 + 0.15 * f, f"fooling rate versus m: {msg}"))
    uap = universal_perturbation(clf, uap_xs, xi=xi, norm=2, delta=delta, max_passes=5, batch_size=64,
                                 random_state=seed,
                                 progress=lambda f, msg: report(0.7 + 0.22 * f, f"UAP algorithm: {msg}"))
    uap_heldout = fooling_rate(clf, held, uap.v)
    v = uap.v.reshape(-1).double()
    vn = float(torch.linalg.vector_norm(v)) or 1.0
    in_c = [float(torch.linalg.vector_norm(curved.basis[:, :m].T @ v)) / vn for m in ms]
    in_r = [float(torch.linalg.vector_norm(rand.basis[:, :m].T @ v)) / vn for m in ms]
    report(0.93, f"DeepFool on the {len(held)} held-out points (‖r‖ and normals for the theorems)")
    df_held = deepfool(clf, held)
    ok = df_held.converged
    r_norms = df_held.norms[ok].double()
    normals = df_held.r[ok].reshape(int(ok.sum()), -1)
    rows = theorem_rows(curve, curved, flat, normals, r_norms, xi, delta)
    report(1.0, "done")
    return UniversalStudy(curve=curve, xi=xi, share=noise.share, noise_quantile=noise.quantile,
                          infinite_share=noise.infinite_share, noise_max_norm=noise.max_norm, h=float(h), curved=curved,
                          flat=flat, random=rand,
                          uap=uap, uap_heldout=uap_heldout, uap_in_curved=in_c, uap_in_random=in_r, r_norms=r_norms,
                          theorems=rows, n_estimate=len(est), n_dropped=int(curved.n_dropped), n_heldout=len(held),
                          n_uap=len(uap_xs), accuracy=clf.test_accuracy, seconds=time.perf_counter() - t0)


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
    curved: object
    flat: object
    curved_rates: object
    flat_rates: object
    curved_two_sided: object
    flat_two_sided: object
    gram: object
    mean_abs_cos: float
    best: int
    gallery_images: object
    gallery_labels: object
    gallery: dict


def pushed_into(clf, held, labels, v) -> dict:
    """Where a perturbation sends the held-out points: new labels, the dominant new label among the
    fooled points and its share. ``v`` (C, H, W); ``labels`` (N,) k̂ of ``held``."""
    new = clf.predict(held + v.to(held.dtype)).cpu()
    fooled = new != labels
    out = {"rate": float(fooled.double().mean()), "dominant": None, "dominant_share": float("nan"),
           "dominant_of_all": float("nan"), "new_all": new}
    if bool(fooled.any()):
        counts = torch.bincount(new[fooled], minlength=int(new.max()) + 1)
        top = int(counts.argmax())
        out.update(dominant=top, dominant_share=float(counts[top]) / int(fooled.sum()),
                   dominant_of_all=float((new == top).double().mean()))
    return out


def universal_samples(clf: Classifier, study: UniversalStudy, heldout_xs: torch.Tensor, *, m: int, k: int = 8,
                      n_gallery: int = 8, random_state: int = 0) -> UniversalSamples:
    """K random vectors of norm ξ from the first m directions of S_c (and of S_f, same coefficients),
    their fooling rates (one- and two-sided), their normalised inner products (ICLR 2018 Fig. 9) and
    the gallery (Fig. 8) for the UAP and the best S_c vector, on ``heldout_xs`` (N, C, H, W)."""
    from .universal import fooling_rates, sample_subspace

    seed = random_state
    held = heldout_xs
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
    return UniversalSamples(m=m, curved=vc, flat=vf, curved_rates=rc, flat_rates=rf, curved_two_sided=rc2,
                            flat_two_sided=rf2, gram=gram, mean_abs_cos=mean_abs_cos, best=best, gallery_images=held[:g],
                            gallery_labels=labels[:g], gallery=gallery)
