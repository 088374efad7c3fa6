"""Disk-cached subspaces: compute S_c / S_f once per (network, data, settings), reuse everywhere.

Estimating S_c is the slow step of the atlas (n boundary points × tens of Lanczos iterations of
batched Hessian-vector products). :func:`cached_subspace` keeps each result in
``cache_dir("subspaces")`` under a key that holds everything that defines it — the network (zoo
recipe hash or upload hash), the dataset and split, the indices of the points, m, method, h / β,
boundary point, tangent projection and seed — so a restart or another page reuses it, and a
changed setting never returns a stale subspace. Files are written atomically and contain no
pickled code (:func:`geometry.curvature.save_subspace`).

:func:`curvature_study` bundles what the "Curvature vs m" page shows (paper ICLR 2018 §5, Fig. 7a):
S_c and S_f from n training points, a random subspace of the same dimension, and the average
curvature K_S(x) on held-out points as a function of m for all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .cache import cache_dir, cache_key
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

__all__ = ["model_key", "choose_points", "cached_subspace", "CurvatureStudy", "curvature_study", "m_grid"]

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
    Subspace — as computed by :func:`curved_subspace` / :func:`flat_subspace`.
    """
    if kind not in ("curved", "flat"):
        raise InvalidInputError(f"kind must be 'curved' or 'flat', got {kind!r}")
    h_, beta_ = _resolved_scale(clf, method, h, beta)
    desc = {"kind": kind, "model": model_key(clf), "data": data_key, "n": int(len(xs)), "m": int(m), "format": 1}
    if kind == "curved":
        desc.update(method=method, h=h_, beta=beta_, point=point, tangent=bool(tangent), seed=int(random_state))
    path = cache_dir("subspaces") / f"{kind}-{cache_key(desc)}.safetensors"
    if path.exists():
        try:
            s = load_subspace(path)
            if progress is not None:
                progress(1.0, f"S_{'c' if kind == 'curved' else 'f'} read from the disk cache")
            return s
        except Exception:  # a damaged cache file is recomputed, never trusted
            path.unlink(missing_ok=True)
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
