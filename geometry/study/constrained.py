"""Subspace-constrained DeepFool against m: ``‖r_S(x)‖ / ‖r(x)‖`` for random m-dimensional S, with
the flat-boundary law ``√(d/m)`` (Fawzi, Moosavi-Dezfooli, Frossard, "Robustness of classifiers: from
adversarial to random noise", NIPS 2016, Theorem 2; the talk's "space of adversarial perturbations").

For an affine classifier ``‖r_S‖ = ‖r‖ · ‖w‖ / ‖P_S w‖`` and, for a uniformly random S,
``‖P_S w‖² ≈ (m/d) ‖w‖²`` — so the ratio ≈ √(d/m); a deep network follows the same law where its
boundary is locally flat (DESIGN §9).

This module is also the smallest complete example of the study layer's promise (issue 19): a figure is
one settings class (:class:`ConstrainedSettings`), one study function (:func:`constrained_study`, cached
under the network's and the points' fingerprints and the settings' key), one figure builder
(:func:`geometry.plotting.constrained_ratio_figure`) and one page function (``constrained_section`` in
``pages/curvature.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..classifier import Classifier, check_images
from ..deepfool import deepfool
from ..errors import InvalidInputError
from ..progress import ProgressFn
from ..subspaces import random_subspace
from ..validation import check_int
from .cache import cached_result
from .points import StudyPoints, network_fingerprint
from .settings import _Settings

__all__ = ["ConstrainedSettings", "ConstrainedRatio", "constrained_ratio", "constrained_study", "dimensions"]


@dataclass(frozen=True)
class ConstrainedSettings(_Settings):
    """The protocol of ‖r_S‖/‖r‖ against m (the Curvature page's constrained-DeepFool section).

    Attributes
    ----------
    n_points : int ≥ 1 — the first ``n_points`` held-out points of the page's point split
    n_subspaces : int ≥ 1 — random subspaces S drawn per m
    max_iter : int ≥ 1 — DeepFool steps (a small S needs many)
    seed : int ≥ 0 — the subspaces' seed
    """

    n_points: int = 50
    n_subspaces: int = 3
    max_iter: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_points", "n_subspaces", "max_iter"):
            check_int(name, getattr(self, name), 1, plain=True)
        check_int("seed", self.seed, 0, plain=True)


def dimensions(d: int) -> list[int]:
    """The m of the curve: 1, 2, 4, … up to d, and d itself."""
    return sorted({min(2**k, d) for k in range(int(d).bit_length())} | {int(d)})


@dataclass(frozen=True)
class ConstrainedRatio:
    """``‖r_S‖/‖r‖`` against the dimension m of a random subspace S.

    Attributes
    ----------
    ms : (K,) int64 — subspace dimensions
    ratio : (K, n_subspaces, N) float64 — per subspace draw and point (NaN where either DeepFool
        run did not converge)
    mean, std : (K,) float64 — over all converged (draw, point) pairs
    theory : (K,) float64 — ``√(d/m)``
    d : int
    converged_share : (K,) float64 — share of (draw, point) pairs where the constrained DeepFool converged
    """

    ms: torch.Tensor
    ratio: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    theory: torch.Tensor
    d: int
    converged_share: torch.Tensor


def constrained_ratio(
    clf: Classifier,
    xs: torch.Tensor,
    ms: Sequence[int],
    *,
    n_subspaces: int = 3,
    max_iter: int = 100,
    random_state: int = 0,
    progress: ProgressFn | None = None,
) -> ConstrainedRatio:
    """``‖r_S(x)‖ / ‖r(x)‖`` for ``n_subspaces`` uniformly random m-dimensional S per m.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) — points (pixel space); not modified
    ms : sequence of int in [1, d]
    n_subspaces : int ≥ 1 — random subspaces drawn per m (seeded from ``random_state``)
    max_iter : int — DeepFool steps (a small S needs more)
    progress : ``progress(fraction, message)`` after each subspace's DeepFool run, or None

    Raises
    ------
    InvalidInputError — m outside [1, d], empty ``ms``, n_subspaces < 1.

    References: NIPS 2016 Theorem 2; DESIGN §9.
    """
    x = check_images(xs, clf.input_shape, name="xs")
    d = clf.d
    m_list = [int(m) for m in ms]
    if not m_list or any(m < 1 or m > d for m in m_list):
        raise InvalidInputError(f"ms must be a non-empty list of dimensions in [1, {d}], got {list(ms)}")
    n_subspaces = check_int("n_subspaces", n_subspaces, 1)
    full = deepfool(clf, x, max_iter=max_iter)
    base = full.norms.double()
    ratio = torch.full((len(m_list), int(n_subspaces), len(x)), float("nan"), dtype=torch.float64)
    conv = torch.zeros(len(m_list), int(n_subspaces), len(x), dtype=torch.bool)
    for i, m in enumerate(m_list):
        for j in range(int(n_subspaces)):
            B = random_subspace(d, m, random_state=int(random_state) + 1000 * i + j).basis
            df = deepfool(clf, x, subspace=B, max_iter=max_iter)
            ok = df.converged & full.converged
            ratio[i, j, ok] = df.norms.double()[ok] / base[ok]
            conv[i, j] = df.converged
            if progress is not None:
                done = i * int(n_subspaces) + j + 1
                progress(done / (len(m_list) * int(n_subspaces)), f"DeepFool in S, m = {m} ({j + 1}/{n_subspaces})")
    flat = ratio.flatten(1)
    mean = torch.nanmean(flat, dim=1)
    std = torch.tensor([float(row[~row.isnan()].std()) if int((~row.isnan()).sum()) > 1 else math.nan for row in flat])
    theory = torch.tensor([math.sqrt(d / m) for m in m_list], dtype=torch.float64)
    return ConstrainedRatio(
        ms=torch.tensor(m_list),
        ratio=ratio,
        mean=mean,
        std=std,
        theory=theory,
        d=d,
        converged_share=conv.flatten(1).double().mean(1),
    )


def constrained_study(
    clf: Classifier, points: StudyPoints, settings: ConstrainedSettings, *, progress: ProgressFn | None = None
) -> ConstrainedRatio:
    r""":func:`constrained_ratio` on the first ``settings.n_points`` held-out points at m = :func:`dimensions`\ (d),
    cached in memory and on disk under (network fingerprint, the held-out points' fingerprint, settings key).

    Returns
    -------
    ConstrainedRatio — as :func:`constrained_ratio`.

    References: NIPS 2016 Theorem 2; DESIGN §9.
    """
    key = {
        "network": network_fingerprint(clf),
        "points": points.heldout_key,
        "settings": settings.key(),
    }
    xs = points.heldout[: settings.n_points]
    return cached_result(
        "constrained",
        key,
        lambda: constrained_ratio(
            clf,
            xs,
            dimensions(clf.d),
            n_subspaces=settings.n_subspaces,
            max_iter=settings.max_iter,
            random_state=settings.seed,
            progress=progress,
        ),
    )
