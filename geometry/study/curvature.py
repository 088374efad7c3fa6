"""Curvature versus m (ICLR 2018 §5, Fig. 7a): S_c, S_f and a random subspace, and K_S on held-out points.

One function, :func:`curvature_study`, used by the "Curvature vs m" page, the cross-section page's
subspace picker (through :func:`study_subspaces`), the command line's ``report`` and
``docs/scripts/reproduce_curvature.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..classifier import Classifier
from ..curvature import CurvatureCurve, Subspace, average_curvature, random_subspace
from ..deepfool import DeepFoolResult, deepfool
from ..errors import InvalidInputError
from ..hessian import default_beta
from ..progress import ProgressFn
from .cache import cached_result, cached_subspace
from .noise import resolve_h
from .points import StudyPoints, network_fingerprint
from .settings import CurvatureSettings, m_grid

__all__ = ["CurvatureStudy", "curvature_study", "study_subspaces", "estimation_deepfool"]


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


def _check_points(points: StudyPoints, split) -> None:
    if points.split != split:
        raise InvalidInputError(f"these points were chosen for {points.split}, the settings ask for {split}")


def _scale(clf: Classifier, settings: CurvatureSettings, points: StudyPoints):
    """(h, beta, h_text) of the settings' estimator on this network."""
    if settings.method == "finite_difference":
        r = resolve_h(clf, settings.scale, points)
        return r.h, None, r.text
    if settings.method == "smoothed":
        beta = settings.beta if settings.beta is not None else default_beta(clf)
        return None, float(beta), f"β = {beta:.3g}"
    return None, None, "exact Hessian"


def estimation_deepfool(clf: Classifier, points: StudyPoints) -> DeepFoolResult:
    """DeepFool (CVPR 2016 Alg. 2, default settings) on ``points.estimate``: the boundary points
    z = x + r(x) that S_c and S_f are estimated from (ICLR 2018 §5).

    Computed once per (network fingerprint, estimation points) and kept in memory, so the curvature
    study, the universal study and the pixel-box share of :mod:`geometry.study.provenance` share one
    DeepFool run. Treat the result as read-only.
    """
    key = {"network": network_fingerprint(clf), "estimate": points.estimate_key}
    return cached_result("deepfool-estimate", key, lambda: deepfool(clf, points.estimate), disk=False)


def study_subspaces(
    clf: Classifier,
    points: StudyPoints,
    settings: CurvatureSettings,
    *,
    progress: ProgressFn | None = None,
    deepfool_result=None,
) -> tuple[Subspace, Subspace]:
    """(S_c, S_f) exactly as :func:`curvature_study` computes them (same points, same disk-cache entries).

    S_f has ``min(m_max, converged DeepFool points)`` directions.
    """
    _check_points(points, settings.points)
    h, beta, _ = _scale(clf, settings, points)
    df = deepfool_result if deepfool_result is not None else estimation_deepfool(clf, points)
    S_c = cached_subspace(
        "curved",
        clf,
        points.estimate,
        settings.m_max,
        data_key=points.estimate_key,
        method=settings.method,
        h=h,
        beta=beta,
        point=settings.point,
        tangent=settings.tangent,
        random_state=settings.points.seed,
        deepfool_result=df,
        progress=progress,
    )
    S_f = cached_subspace(
        "flat",
        clf,
        points.estimate,
        min(settings.m_max, int(df.converged.sum())),
        data_key=points.estimate_key,
        deepfool_result=df,
    )
    return S_c, S_f


def curvature_study(
    clf: Classifier, points: StudyPoints, settings: CurvatureSettings, *, progress: ProgressFn | None = None
) -> CurvatureStudy:
    """S_c, S_f and a random subspace of dimension ``m_max``, and K_S versus m on held-out points.

    ICLR 2018 §5, Fig. 7a: S_c = top eigenvectors of the average (tangent-projected) boundary
    Hessian of the estimation points, S_f = top singular vectors of their DeepFool normals, and the
    average curvature K_S(x) = E_v (Pv)ᵀH(Pv)/‖Pv‖² over random unit v of the first m directions,
    for m in :func:`~geometry.study.settings.m_grid` (m_max), measured with the same estimator.

    Parameters
    ----------
    clf : Classifier
    points : StudyPoints — from :func:`~geometry.study.points.split_points` with ``settings.points``
    settings : CurvatureSettings
    progress : ``progress(fraction, message)``

    Returns
    -------
    CurvatureStudy — cached in memory and on disk under (network fingerprint, points, settings).

    Raises
    ------
    InvalidInputError
        ``points`` were chosen for another split.
    """
    _check_points(points, settings.points)
    report = progress or (lambda f, msg: None)
    h, beta, h_text = _scale(clf, settings, points)
    key = {
        "network": network_fingerprint(clf),
        "estimate": points.estimate_key,
        "heldout": points.heldout_key,
        "settings": settings.key(),
        "h": repr(h),
        "beta": repr(beta),
    }

    def compute() -> CurvatureStudy:
        seed = settings.points.seed
        report(0.0, f"DeepFool on the {len(points.estimate)} estimation points")
        df_est = estimation_deepfool(clf, points)
        S_c, S_f = study_subspaces(
            clf, points, settings, deepfool_result=df_est, progress=lambda f, msg: report(0.02 + 0.6 * f, f"S_c: {msg}")
        )
        df_held = deepfool(clf, points.heldout)

        def heldout_curve(s: Subspace, ms_s: list[int], on_progress: Callable[[float, str], None]):
            return average_curvature(
                clf,
                points.heldout,
                s,
                ms_s,
                n_directions=settings.n_directions,
                method=settings.method,
                h=h,
                beta=beta,
                random_state=seed,
                point=settings.point,
                deepfool_result=df_held,
                progress=on_progress,
            )

        return assemble_curvature_study(
            clf, points, settings, h=h, beta=beta, h_text=h_text, curved=S_c, flat=S_f, heldout_curve=heldout_curve,
            report=report,
        )  # fmt: skip

    return cached_result("curvature", key, compute)


def assemble_curvature_study(
    clf: Classifier,
    points: StudyPoints,
    settings: CurvatureSettings,
    *,
    h: float | None,
    beta: float | None,
    h_text: str,
    curved: Subspace,
    flat: Subspace,
    heldout_curve: Callable[[Subspace, list[int], Callable[[float, str], None]], CurvatureCurve],
    report: Callable[[float, str], None],
) -> CurvatureStudy:
    """The Fig. 7a protocol once S_c and S_f are estimated: the random subspace of dimension ``m_max``
    (seeded by the points' seed), the m grid (:func:`~geometry.study.settings.m_grid`), and K_S versus m
    of each subspace on the held-out points by ``heldout_curve(subspace, m_values, progress)`` — the
    single-process :func:`~geometry.curvature.average_curvature` here, its sharded twin in
    :func:`geometry.runtime.distributed.sharded_curvature_study`, so both runs follow one protocol.
    """
    S_r = random_subspace(clf.d, settings.m_max, random_state=settings.points.seed, input_shape=clf.input_shape)
    ms = m_grid(settings.m_max)
    curves = {}
    for i, (name, s) in enumerate((("S_c", curved), ("S_f", flat), ("random", S_r))):

        def on_progress(f: float, msg: str, i: int = i, name: str = name) -> None:
            report(0.62 + 0.38 * (i + f) / 3, f"K_S on {name}: {msg}")

        curves[name] = heldout_curve(s, [m for m in ms if m <= s.basis.shape[1]], on_progress)
    report(1.0, "done")
    return CurvatureStudy(
        curved=curved,
        flat=flat,
        random=S_r,
        curves=curves,
        m_values=ms,
        method=settings.method,
        h=h,
        beta=beta,
        point=settings.point,
        n_estimate=len(points.estimate),
        n_heldout=len(points.heldout),
        h_text=h_text,
        source=points.source,
    )
