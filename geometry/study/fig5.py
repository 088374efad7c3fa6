"""Normal sections of several datapoints along one universal perturbation v against random directions
(ICLR 2018 Fig. 5; the talk's "normal sections for different datapoints along a single direction").

For each point x: the plane (r(x), v) with its decision regions, the boundary's normal curvature
along v at z = x + r(x), and whether ``x + v`` changes the label. The top row uses the *same*
universal v for every point; the bottom row draws a random direction per point, scaled to ‖v‖.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..classifier import Classifier, check_images
from ..curvature import curvature_along
from ..deepfool import DeepFoolResult, deepfool
from ..errors import InvalidInputError
from ..sections import Section, normal_section, random_direction
from ..validation import CurvatureMethod

__all__ = ["SectionRow", "UniversalSections", "universal_sections"]


@dataclass(frozen=True)
class SectionRow:
    """One row of the grid (one section per point).

    Attributes
    ----------
    sections : list of Section — plane (r(x_i), v_i), window ±extent_factor·‖r(x_i)‖ on both axes
    kappa : (N,) float64 — normal curvature along v_i at z_i (1/pixel distance; NaN: no boundary point)
    fooled : (N,) bool — ``k̂(x_i + v_i) ≠ k̂(x_i)``
    directions : (N, C, H, W) — the v_i used (norm ‖v‖)
    """

    sections: list
    kappa: torch.Tensor
    fooled: torch.Tensor
    directions: torch.Tensor


@dataclass(frozen=True)
class UniversalSections:
    """Fig. 5: ``universal`` — every point along the same v; ``random`` — each along its own random v."""

    universal: SectionRow
    random: SectionRow
    v_norm: float


def _row(
    clf: Classifier,
    xs: torch.Tensor,
    V: torch.Tensor,
    *,
    extent_factor: float,
    resolution: int,
    method: CurvatureMethod,
    h: float | None,
) -> SectionRow:
    df = deepfool(clf, xs)
    secs: list[Section] = []
    kappa = torch.full((len(xs),), float("nan"), dtype=torch.float64)
    for i in range(len(xs)):
        r = df.r[i]
        ext = extent_factor * max(float(r.norm()), 1e-12)
        secs.append(normal_section(clf, xs[i], r, V[i], extent=ext, resolution=resolution))
        if bool(df.converged[i]):
            sub = _select(df, i)
            ca = curvature_along(clf, xs[i], V[i], method=method, h=h, deepfool_result=sub)
            kappa[i] = float(ca.kappa[0, 0])
    fooled = clf.predict(xs + V.to(xs.dtype)).cpu() != df.label
    return SectionRow(sections=secs, kappa=kappa, fooled=fooled, directions=V)


def _select(df: DeepFoolResult, i: int) -> DeepFoolResult:
    """The per-sample fields of a DeepFoolResult restricted to sample i (batch of one)."""
    j = slice(i, i + 1)
    return replace(
        df,
        r=df.r[j],
        x_adv=df.x_adv[j],
        label=df.label[j],
        adv_label=df.adv_label[j],
        n_iter=df.n_iter[j],
        converged=df.converged[j],
        norms=df.norms[j],
    )


def universal_sections(
    clf: Classifier,
    xs: torch.Tensor,
    v: torch.Tensor,
    *,
    extent_factor: float = 3.0,
    resolution: int = 64,
    method: CurvatureMethod = "finite_difference",
    h: float | None = None,
    random_state: int = 0,
) -> UniversalSections:
    """Normal sections of ``xs`` along one universal ``v`` and along random directions of the same norm.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) — datapoints (pixel space), N in [1, 16]; not modified
    v : (C, H, W) — the universal perturbation (e.g. the UAP of :func:`geometry.study.universal_study`)
    extent_factor : float > 0 — half-width of each window in multiples of ‖r(x_i)‖₂
    resolution : int — grid points per axis
    method, h : the curvature estimator (:func:`geometry.curvature.curvature_along`)
    random_state : int — seeds the random row (point i uses ``random_state + i``)

    Raises
    ------
    InvalidInputError — shapes, N outside [1, 16], zero v.

    Source: ICLR 2018 Fig. 5.
    """
    x = check_images(xs, clf.input_shape, name="xs")
    if not 1 <= len(x) <= 16:
        raise InvalidInputError(f"universal_sections draws 1 to 16 points, got {len(x)}")
    vv = torch.as_tensor(v).detach().reshape(clf.input_shape).to(x.dtype)
    norm = float(vv.norm())
    if not norm > 0:
        raise InvalidInputError("the universal perturbation v is zero: no direction to cut along")
    U = vv.unsqueeze(0).expand(len(x), *clf.input_shape).clone()
    R = torch.stack(
        [random_direction(clf.input_shape, random_state=int(random_state) + i, dtype=x.dtype) for i in range(len(x))]
    )
    R = R / R.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1) * norm
    ef, res = float(extent_factor), int(resolution)
    return UniversalSections(
        universal=_row(clf, x, U, extent_factor=ef, resolution=res, method=method, h=h),
        random=_row(clf, x, R, extent_factor=ef, resolution=res, method=method, h=h),
        v_norm=norm,
    )
