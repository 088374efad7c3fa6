"""One normal cross-section (ICLR 2018 Fig. 5, 6): DeepFool at x, the second direction v, the
decision regions in the plane (r(x), v), and the curvature of the boundary along v.

Used by the "Cross-sections" page and by the report (:func:`geometry.study.report.build_report`, with
``direction="random"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias, get_args

import torch

from ..classifier import Classifier
from ..curvature import CurvatureAlong, Subspace, curvature_along
from ..deepfool import DeepFoolResult, deepfool
from ..errors import InvalidInputError
from ..hessian import CurvatureEstimator
from ..sections import MAX_RESOLUTION, Section, normal_section, random_direction
from ..universal import sample_subspace
from ..validation import (
    BOUNDARY_POINTS,
    CURVATURE_METHODS,
    BoundaryPoint,
    CurvatureMethod,
    check_choice,
    check_float,
    check_int,
)
from .settings import RxProtocol, _Settings, check_rx

__all__ = ["SECTION_DIRECTIONS", "SectionSettings", "SectionStudy", "section_study"]

#: Kinds of second direction v: random on the sphere, eigenvector i of S_c, a random vector of the
#: first m directions of S_c, vector i of S_f, a given universal perturbation (paper Fig. 5).
SectionDirection: TypeAlias = Literal["random", "sc", "sc_mix", "sf", "uap"]
SECTION_DIRECTIONS: tuple[SectionDirection, ...] = get_args(SectionDirection)


@dataclass(frozen=True)
class SectionSettings(_Settings):
    """What defines a cross-section at a given point.

    Attributes
    ----------
    direction : one of :data:`SECTION_DIRECTIONS`
    vec : int ≥ 1 — which S_c / S_f vector ("sc", "sf")
    sub_m : int ≥ 1 — dimension sampled ("sc_mix")
    seed : int ≥ 0 — random v ("random", "sc_mix")
    extent_factor : float > 0 — half-width of the window in multiples of ‖r(x)‖₂
    resolution : int — grid points per axis (2 … MAX_RESOLUTION); default 256, the Cross-sections page's
    method, h, point : the curvature estimator along v (as the subspace's)
    rx : "box" (default: r(x) by box-constrained DeepFool, z = x + r(x) inside the pixel box) or
        "unconstrained" (the paper's protocol) — :data:`~geometry.study.settings.RX_PROTOCOLS`
    """

    direction: SectionDirection = "random"
    vec: int = 1
    sub_m: int = 1
    seed: int = 0
    extent_factor: float = 3.0
    resolution: int = 256
    method: CurvatureMethod = "finite_difference"
    h: float | None = None
    point: BoundaryPoint = "boundary"
    rx: RxProtocol = "box"

    def __post_init__(self) -> None:
        check_rx(self.rx)
        check_choice("direction", self.direction, SECTION_DIRECTIONS)
        check_int("vec", self.vec, 1, plain=True)
        check_int("sub_m", self.sub_m, 1, plain=True)
        check_int("seed", self.seed, 0, 2**63 - 1, plain=True)
        check_int("resolution", self.resolution, 2, MAX_RESOLUTION, plain=True)
        check_float("extent_factor", self.extent_factor, low=0.0, low_open=True)
        check_choice("method", self.method, CURVATURE_METHODS)
        check_choice("point", self.point, BOUNDARY_POINTS)


@dataclass(frozen=True)
class SectionStudy:
    """A cross-section and what the page shows beside it.

    Attributes
    ----------
    deepfool : DeepFoolResult of the single point x (batch of one)
    section : Section — decision regions on the plane (r(x), v), pixel-space distances
    v : (C, H, W) — the second direction as chosen (before orthogonalisation against r(x))
    along : CurvatureAlong or None — curvature of the boundary along v at the boundary point; None
        when DeepFool did not change the label (no boundary point)
    """

    deepfool: DeepFoolResult
    section: Section
    v: torch.Tensor
    along: CurvatureAlong | None


def section_study(
    clf: Classifier,
    x: torch.Tensor,
    settings: SectionSettings,
    *,
    subspace: Subspace | None = None,
    perturbation: torch.Tensor | None = None,
) -> SectionStudy:
    """DeepFool at ``x`` (C, H, W) (box-constrained or unconstrained: ``settings.rx``), the direction v of ``settings``, the normal section along
    (r(x), v) over ±extent_factor·‖r(x)‖₂ and the curvature along v (ICLR 2018 §4, Fig. 5).

    ``perturbation`` (C, H, W): the universal perturbation v of ``direction="uap"`` (e.g. the UAP of
    :func:`geometry.study.universal_study`).

    Raises
    ------
    InvalidInputError
        a subspace direction without ``subspace``, ``"uap"`` without ``perturbation``, or a vector
        index beyond the subspace's dimension.
    """
    df = deepfool(clf, x.unsqueeze(0), clip=settings.rx == "box")
    if settings.direction == "random":
        v = random_direction(x.shape, random_state=settings.seed)
    elif settings.direction == "uap":
        if perturbation is None:
            raise InvalidInputError("direction 'uap' needs the universal perturbation v")
        v = torch.as_tensor(perturbation).detach().reshape(x.shape)
    else:
        if subspace is None:
            raise InvalidInputError(f"direction {settings.direction!r} needs the subspace (S_c or S_f)")
        if settings.direction == "sc_mix":
            v = sample_subspace(
                subspace,
                min(settings.sub_m, subspace.m),
                1.0,
                n_samples=1,
                random_state=settings.seed,
                shape=clf.input_shape,
            )[0]
        else:
            if settings.vec > subspace.m:
                raise InvalidInputError(f"the subspace has {subspace.m} vectors, asked for vector {settings.vec}")
            v = subspace.images()[settings.vec - 1]
    v = v.to(x.dtype)
    r = df.r[0]
    sec = normal_section(clf, x, r, v, extent=settings.extent_factor * float(r.norm()), resolution=settings.resolution)
    along = None
    if bool(df.converged[0]) and int(df.label[0]) != int(df.adv_label[0]):
        along = curvature_along(
            clf,
            x,
            v,
            estimator=CurvatureEstimator(method=settings.method, h=settings.h, point=settings.point),
            deepfool_result=df,
        )
    return SectionStudy(deepfool=df, section=sec, v=v, along=along)
