"""Curvature versus m (ICLR 2018 §5, Fig. 7a): S_c, S_f and a random subspace, and K_S on held-out points.

One function, :func:`curvature_study`, used by the "Curvature vs m" page, the cross-section page's
subspace picker (through :func:`study_subspaces`), the command line's ``report`` and ``study
curvature`` (one process, or ``torchrun``) and ``docs/scripts/reproduce_curvature.py``. The protocol
lives here once; where the per-point work runs is an executor argument
(:class:`geometry.curvature.PointExecutor`: this process by default,
:class:`geometry.runtime.distributed.ShardContext` under ``torchrun``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..classifier import Classifier
from ..curvature import PointExecutor, Subspace, average_curvature, random_subspace
from ..deepfool import DeepFoolResult, deepfool
from ..errors import InvalidInputError
from ..hessian import CurvatureEstimator
from ..progress import ProgressFn
from .cache import cached_result, cached_subspace
from .noise import resolve_h
from .points import StudyPoints, network_fingerprint
from .settings import CurvatureSettings, RxProtocol, check_rx, m_grid

__all__ = ["CurvatureStudy", "curvature_study", "study_subspaces", "estimation_deepfool", "study_estimator"]


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
    h_text : str — how h was chosen; source : str — how the points were chosen
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
    h_text: str = ""
    source: str = ""


def _check_points(points: StudyPoints, split: object) -> None:
    if points.split != split:
        raise InvalidInputError(f"these points were chosen for {points.split}, the settings ask for {split}")


def study_estimator(
    clf: Classifier, settings: CurvatureSettings, points: StudyPoints
) -> tuple[CurvatureEstimator, str]:
    """The settings' curvature estimator on this network, resolved, and how its scale was chosen.

    The h of ``settings.scale`` (:func:`~geometry.study.noise.resolve_h`: the authors' h, h = ξ or
    a custom one) for finite differences, ``settings.beta`` (default :func:`geometry.hessian.default_beta`)
    for the smoothed twin; ``point`` and ``tangent`` from the settings.

    Returns
    -------
    (CurvatureEstimator, str) — resolved (:meth:`~geometry.hessian.CurvatureEstimator.resolve`), and
    the caption of its scale ("authors' h", "β = 10", "exact Hessian", ...)
    """
    h = None
    text = "exact Hessian"
    if settings.method == "finite_difference":
        r = resolve_h(clf, settings.scale, points)
        h, text = r.h, r.text
    est = CurvatureEstimator(
        method=settings.method, h=h, beta=settings.beta, point=settings.point, tangent=settings.tangent
    ).resolve(clf)
    if est.method == "smoothed":
        text = f"β = {est.beta:.3g}"
    return est, text


def estimation_deepfool(clf: Classifier, points: StudyPoints, *, rx: RxProtocol) -> DeepFoolResult:
    """DeepFool (CVPR 2016 Alg. 2, default settings) on ``points.estimate``: the boundary points
    z = x + r(x) that S_c and S_f are estimated from (ICLR 2018 §5).

    ``rx``: ``"box"`` — every iterate clamped to ``clf.bounds`` (z is an image); ``"unconstrained"`` — the
    paper's protocol (:data:`~geometry.study.settings.RX_PROTOCOLS`).

    Computed once per (network fingerprint, estimation points, rx) and kept in memory, so the curvature
    study, the universal study and the pixel-box share of :mod:`geometry.study.provenance` share one
    DeepFool run per protocol. Treat the result as read-only.
    """
    check_rx(rx)
    key = {"network": network_fingerprint(clf), "estimate": points.estimate_key, "rx": rx}
    return cached_result("deepfool-estimate", key, lambda: deepfool(clf, points.estimate, clip=rx == "box"), disk=False)


def study_subspaces(
    clf: Classifier,
    points: StudyPoints,
    settings: CurvatureSettings,
    *,
    progress: ProgressFn | None = None,
    deepfool_result: DeepFoolResult | None = None,
    executor: PointExecutor | None = None,
) -> tuple[Subspace, Subspace]:
    """(S_c, S_f) exactly as :func:`curvature_study` computes them (same points, same disk-cache entries).

    S_f has ``min(m_max, converged DeepFool points)`` directions. ``executor``: where S_c's
    per-point work runs (default this process). ``deepfool_result`` must follow ``settings.rx``.
    """
    _check_points(points, settings.points)
    est, _ = study_estimator(clf, settings, points)
    df = deepfool_result if deepfool_result is not None else estimation_deepfool(clf, points, rx=settings.rx)
    S_c = cached_subspace(
        "curved",
        clf,
        points.estimate,
        settings.m_max,
        data_key=points.estimate_key,
        estimator=est,
        random_state=settings.points.seed,
        deepfool_result=df,
        progress=progress,
        executor=executor,
        rx=settings.rx,
    )
    S_f = cached_subspace(
        "flat",
        clf,
        points.estimate,
        min(settings.m_max, int(df.converged.sum())),
        data_key=points.estimate_key,
        deepfool_result=df,
        executor=executor,
        rx=settings.rx,
    )
    return S_c, S_f


def curvature_study(
    clf: Classifier,
    points: StudyPoints,
    settings: CurvatureSettings,
    *,
    progress: ProgressFn | None = None,
    executor: PointExecutor | None = None,
) -> CurvatureStudy:
    """S_c, S_f and a random subspace of dimension ``m_max``, and K_S versus m on held-out points.

    Every r(x) (estimation and held-out points) follows ``settings.rx``: box-constrained DeepFool by default
    (z = x + r(x) inside the pixel box), the paper's unconstrained DeepFool with ``rx="unconstrained"``.

    ICLR 2018 §5, Fig. 7a: S_c = top eigenvectors of the average (tangent-projected) boundary
    Hessian of the estimation points, S_f = top singular vectors of their DeepFool normals, and the
    average curvature K_S(x) = E_v (Pv)ᵀH(Pv)/‖Pv‖² over random unit v of the first m directions,
    for m in :func:`~geometry.study.settings.m_grid` (m_max), measured with the same estimator
    (:func:`study_estimator`) — the random subspace seeded by the points' seed.

    Parameters
    ----------
    clf : Classifier
    points : StudyPoints — from :func:`~geometry.study.points.split_points` with ``settings.points``
    settings : CurvatureSettings
    progress : ``progress(fraction, message)``
    executor : PointExecutor, optional — where the per-point work runs: DeepFool, the average
        Hessian of S_c (all-reduced) and K_S (gathered) split over its workers, each part resumable
        from its shard cache (:class:`geometry.runtime.distributed.ShardContext`). The result is the
        one-process one up to floating-point summation order (bitwise with one worker). Default:
        this process, with the whole result cached in memory and on disk

    Returns
    -------
    CurvatureStudy — without an executor cached in memory and on disk under (network fingerprint,
    points, settings); with one, S_c is cached (the leader's file) and the parts by the executor.

    Raises
    ------
    InvalidInputError
        ``points`` were chosen for another split.
    """
    _check_points(points, settings.points)
    report = progress or (lambda f, msg: None)
    est, h_text = study_estimator(clf, settings, points)
    seed = settings.points.seed

    def compute() -> CurvatureStudy:
        report(0.0, f"DeepFool on the {len(points.estimate)} estimation points")
        clip = settings.rx == "box"
        if executor is None:
            df_est = estimation_deepfool(clf, points, rx=settings.rx)
        else:
            df_est = executor.deepfool(clf, points.estimate, clip=clip)
        S_c, S_f = study_subspaces(
            clf,
            points,
            settings,
            deepfool_result=df_est,
            progress=lambda f, msg: report(0.02 + 0.6 * f, f"S_c: {msg}"),
            executor=executor,
        )
        report(0.62, f"DeepFool on the {len(points.heldout)} held-out points")
        df_held = (
            deepfool(clf, points.heldout, clip=clip)
            if executor is None
            else executor.deepfool(clf, points.heldout, clip=clip)
        )
        S_r = random_subspace(clf.d, settings.m_max, random_state=seed, input_shape=clf.input_shape)
        ms = m_grid(settings.m_max)
        curves = {}
        for i, (name, s) in enumerate((("S_c", S_c), ("S_f", S_f), ("random", S_r))):

            def on_progress(f: float, msg: str, i: int = i, name: str = name) -> None:
                report(0.62 + 0.38 * (i + f) / 3, f"K_S on {name}: {msg}")

            curves[name] = average_curvature(
                clf,
                points.heldout,
                s,
                [m for m in ms if m <= s.basis.shape[1]],
                estimator=est,
                n_directions=settings.n_directions,
                random_state=seed,
                deepfool_result=df_held,
                progress=on_progress,
                executor=executor,
            )
        report(1.0, "done")
        return CurvatureStudy(
            curved=S_c,
            flat=S_f,
            random=S_r,
            curves=curves,
            m_values=ms,
            method=est.method,
            h=est.h,
            beta=est.beta,
            point=est.point,
            n_estimate=len(points.estimate),
            n_heldout=len(points.heldout),
            h_text=h_text,
            source=points.source,
        )

    if executor is not None:  # every worker computes (collectives); parts are cached by the executor
        return compute()
    key = {
        "network": network_fingerprint(clf),
        "estimate": points.estimate_key,
        "heldout": points.heldout_key,
        "settings": settings.key(),
        "h": repr(est.h),
        "beta": repr(est.beta),
    }
    return cached_result("curvature", key, compute)
