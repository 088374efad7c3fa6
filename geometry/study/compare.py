"""Comparing networks (ICLR 2018 §5, Fig. 10; Appendix C.2, Fig. 13).

:func:`compare_study` estimates both networks' S_c and S_f on the same points with the same h
(disk-cached per network, shared with the other pages) and passes them to
:func:`geometry.compare.compare_networks`, which compares them by principal angles against random
subspaces; :func:`fooling_matrix` applies random vectors of each network's S_c to
every network. Used by the "Compare networks" page and ``docs/scripts/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..classifier import Classifier
from ..compare import (
    NetworkComparison,
    TransferMatrix,
    check_comparison,
    compare_bases,
    compare_networks,
    flat_dimension,
    transfer_matrix,
)
from ..curvature import Subspace
from ..deepfool import DeepFoolResult
from ..errors import InvalidInputError
from ..hessian import CurvatureEstimator
from ..progress import ProgressFn
from .cache import cached_result, cached_subspace
from .curvature import _check_points, estimation_deepfool
from .noise import resolve_h
from .points import StudyPoints, network_fingerprint
from .settings import CompareSettings

__all__ = ["compare_study", "compare_angles", "fooling_matrix"]


def compare_study(
    clf_a: Classifier,
    clf_b: Classifier,
    points: StudyPoints,
    settings: CompareSettings,
    *,
    progress: ProgressFn | None = None,
) -> NetworkComparison:
    """S_c and S_f (``m_estimated`` directions) of two networks on ``points.estimate``, at the h of
    ``settings.scale`` resolved on network A, each from the disk cache (:func:`cached_subspace`)
    and compared by :func:`geometry.compare.compare_networks`.

    Both networks' boundary points z = x + r(x) (S_c) and normals (S_f) come from DeepFool under
    ``settings.rx`` (:func:`~geometry.study.curvature.estimation_deepfool`, shared with the curvature and
    universal studies): box-constrained by default, the paper's unconstrained DeepFool with
    ``rx="unconstrained"``, whose subspaces keep the disk-cache entries written before the protocol existed.

    The returned comparison's angles are those of the first direction; :func:`compare_angles`
    gives them for any m ≤ ``m_estimated`` without recomputing a subspace.

    Raises
    ------
    InvalidInputError
        different input shapes, ``points`` chosen for another split, no DeepFool convergence.
    """
    _check_points(points, settings.points)
    h = resolve_h(clf_a, settings.scale, points).h
    est = CurvatureEstimator(h=h).resolve(clf_a)
    key = {
        "a": network_fingerprint(clf_a),
        "b": network_fingerprint(clf_b),
        "estimate": points.estimate_key,
        "settings": settings.key(),
        "h": repr(est.h),
    }

    def compute() -> NetworkComparison:
        xs, m, m_est, kinds = check_comparison(
            clf_a, clf_b, points.estimate, m=1, m_estimated=settings.m_estimated, kinds=("curved", "flat")
        )
        subspaces: dict[str, list[Subspace]] = {kind: [] for kind in kinds}
        dfs: list[DeepFoolResult | None] = [None, None]
        steps = [(kind, i) for kind in kinds for i in range(2)]
        for s, (kind, i) in enumerate(steps):
            clf = (clf_a, clf_b)[i]
            lo, hi = s / len(steps), (s + 1) / len(steps)
            label = f"S_{'c' if kind == 'curved' else 'f'} of {clf.name}"

            def sub(f: float, msg: str, lo: float = lo, hi: float = hi, label: str = label) -> None:
                if progress is not None:
                    progress(float(min(max(lo + (hi - lo) * f, 0.0), 1.0)), f"{label}: {msg}")

            df = dfs[i]
            if df is None:
                sub(0.0, f"DeepFool on {len(xs)} points")
                df = dfs[i] = estimation_deepfool(clf, points, rx=settings.rx)
            mm = m_est if kind == "curved" else flat_dimension(clf, df, len(xs), m=m, m_estimated=m_est)
            subspaces[kind].append(
                cached_subspace(
                    kind,
                    clf,
                    xs,
                    mm,
                    data_key=points.estimate_key,
                    estimator=est,
                    random_state=settings.points.seed,
                    progress=sub,
                    deepfool_result=df,
                    rx=settings.rx,
                )
            )
            sub(1.0, "done")
        return compare_networks(
            subspaces,
            names=(clf_a.name, clf_b.name),
            m=m,
            n=len(xs),
            estimator=est,
            n_baseline=2,
            random_state=settings.points.seed,
        )

    result = cached_result("compare", key, compute, disk=False)
    # the cache is keyed by weights: the same weights under other names get this call's names
    return dataclasses.replace(result, names=(clf_a.name, clf_b.name))


def compare_angles(comparison: NetworkComparison, settings: CompareSettings, *, m: int) -> dict:
    """Principal angles between the first m directions, and the random baseline, for S_c and S_f.

    Returns
    -------
    dict kind → :class:`geometry.compare.SubspaceComparison` (``"curved"``, ``"flat"``)
    """
    if not 1 <= int(m) <= settings.m_estimated:
        raise InvalidInputError(f"m must be in [1, {settings.m_estimated}], got {m}")
    return {
        kind: compare_bases(
            a,
            b,
            m=int(m),
            n_samples=settings.n_baseline,
            random_state=settings.points.seed,
            kind=kind,
            names=comparison.names,
        )
        for kind, (a, b) in comparison.subspaces.items()
    }


def fooling_matrix(
    clfs: dict[str, Classifier],
    points: StudyPoints,
    settings: CompareSettings,
    *,
    h: float,
    m: int,
    xi: float,
    n_vectors: int,
    progress: ProgressFn | None = None,
) -> TransferMatrix:
    """Random vectors of norm ξ from the first m directions of each network's S_c (estimated on
    ``points.estimate`` at ``h``, boundary points under ``settings.rx`` as in :func:`compare_study`), applied
    to every network on ``points.heldout`` (Appendix C.2).

    Parameters
    ----------
    clfs : display name → Classifier (rows and columns, in order)
    h : finite-difference scale of every S_c (pixel units; the same for all networks)
    m : directions sampled; xi : vector norm (pixel units); n_vectors : vectors per row
    """
    _check_points(points, settings.points)
    report = progress or (lambda f, msg: None)
    names: Sequence[str] = list(clfs)
    bases = {}
    for i, name in enumerate(names):
        lo, hi = 0.8 * i / len(names), 0.8 * (i + 1) / len(names)

        def on_progress(f: float, msg: str, lo: float = lo, hi: float = hi, name: str = name) -> None:
            report(lo + (hi - lo) * f, f"S_c of {name}: {msg}")

        bases[name] = cached_subspace(
            "curved",
            clfs[name],
            points.estimate,
            settings.m_estimated,
            data_key=points.estimate_key,
            estimator=CurvatureEstimator(h=h),
            random_state=settings.points.seed,
            progress=on_progress,
            rx=settings.rx,  # DeepFool under this protocol only when S_c is not on disk
        )
    return transfer_matrix(
        clfs,
        bases,
        points.heldout,
        xi=xi,
        m=m,
        n_samples=n_vectors,
        random_state=settings.points.seed,
        progress=lambda f, msg: report(0.8 + 0.2 * f, msg),
    )
