"""Which r(x) a page used, and whether z = x + r(x) stays in the pixel box (issue 11, deliverable 2).

Every boundary point of the atlas's curvature pages — the points whose Hessians define S_c
(ICLR 2018 §5), the point of a normal cross-section (ICLR 2018 Fig. 5), ρ_adv (CVPR 2016
Table 1) — comes from *unconstrained* DeepFool (CVPR 2016 Alg. 2), whose iterates are not clipped
to the pixel box. On a standard network z = x + r(x) is almost always a valid image; on an
adversarially trained one r(x) is long and z often leaves [0, 1]^d (DESIGN §7, measured pitfall 2),
so the geometry there is that of the network's extension outside the data domain. These helpers let
a page say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..classifier import Classifier, check_images
from ..errors import InvalidInputError
from ..validation import check_float
from .cache import cached_result
from .curvature import estimation_deepfool
from .points import StudyPoints, network_fingerprint

RX_PROVENANCE = "r(x): unconstrained DeepFool (CVPR 2016 Alg. 2)"
"""The caption every page that uses r(x) shows."""

BOX_TOLERANCE = 1e-6
"""Pixel-value slack of :func:`left_box` (as in :func:`geometry.attacks.boundary_distance`)."""


def left_box(clf: Classifier, xs: Tensor, r: Tensor, *, tolerance: float = BOX_TOLERANCE) -> Tensor:
    """Where ``x + r`` leaves the classifier's pixel box ``clf.bounds``.

    Parameters
    ----------
    clf : Classifier — supplies ``bounds`` (low, high) and ``input_shape``.
    xs : (N, C, H, W) or (C, H, W) pixel-space images.
    r : perturbations of the same shape (e.g. ``deepfool(clf, xs).r``).
    tolerance : float ≥ 0 — pixel-value slack.

    Returns
    -------
    (N,) bool tensor — True where some pixel of ``x + r`` is below ``low − tolerance`` or above
    ``high + tolerance``.

    Raises
    ------
    InvalidInputError
        bad images, ``r`` of another shape, negative tolerance.
    """
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach()
    r = torch.as_tensor(r).detach()
    if r.shape != x.shape and r.shape != x.shape[1:]:
        raise InvalidInputError(f"r has shape {tuple(r.shape)}, the images {tuple(x.shape)}")
    tolerance = check_float("tolerance", tolerance, low=0.0, finite=False)
    lo, hi = clf.bounds
    z = x + r.to(x.dtype).reshape(x.shape)
    return ((z < lo - tolerance) | (z > hi + tolerance)).flatten(1).any(1).cpu()


def box_excess(clf: Classifier, xs: Tensor, r: Tensor) -> Tensor:
    """How far ``x + r`` lies outside the pixel box: ‖(x + r) − clip(x + r)‖₂ per point.

    Parameters
    ----------
    clf : Classifier — supplies ``bounds`` and ``input_shape``.
    xs : (N, C, H, W) or (C, H, W) pixel-space images; r : perturbations of the same shape.

    Returns
    -------
    (N,) float64 tensor — ℓ2 distance (pixel units) from x + r to the box; 0 inside it.

    Raises
    ------
    InvalidInputError
        bad images or ``r`` of another shape.
    """
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach()
    r = torch.as_tensor(r).detach()
    if r.shape != x.shape and r.shape != x.shape[1:]:
        raise InvalidInputError(f"r has shape {tuple(r.shape)}, the images {tuple(x.shape)}")
    lo, hi = clf.bounds
    z = (x + r.to(x.dtype).reshape(x.shape)).double()
    return torch.linalg.vector_norm((z - z.clamp(lo, hi)).flatten(1), dim=1).cpu()


@dataclass(frozen=True)
class BoxShare:
    """How many boundary points z = x + r(x) of a point set leave the pixel box.

    Attributes
    ----------
    n : int — points
    n_converged : int — points where DeepFool changed the label (the boundary points used)
    n_outside : int — converged points whose z leaves ``clf.bounds``
    share : float in [0, 1] — ``n_outside / n_converged`` (0 when none converged)
    median_excess : float — median over those outside points of ‖z − clip(z)‖₂ / ‖r(x)‖₂ (how far
        outside, relative to the perturbation; NaN when none is outside)
    provenance : str — which r(x) (:data:`RX_PROVENANCE`)
    """

    n: int
    n_converged: int
    n_outside: int
    share: float
    median_excess: float
    provenance: str = RX_PROVENANCE


def estimation_box_share(clf: Classifier, points: StudyPoints) -> BoxShare:
    """Share of S_c's boundary points z = x + r(x) (the estimation points') outside the pixel box.

    The same DeepFool run as :func:`curvature_study` and :func:`universal_study` use for S_c
    (:func:`~geometry.study.curvature.estimation_deepfool`, ICLR 2018 §5), so the count is that of
    the points S_c is estimated from.

    Parameters
    ----------
    clf : Classifier
    points : StudyPoints — ``points.estimate`` are used.

    Returns
    -------
    BoxShare — cached in memory and on disk under (network fingerprint, estimation points).
    """
    key = {"network": network_fingerprint(clf), "estimate": points.estimate_key}

    def compute() -> BoxShare:
        df = estimation_deepfool(clf, points)
        conv = df.converged.cpu()
        out = left_box(clf, points.estimate, df.r) & conv
        n_conv = int(conv.sum())
        rel = box_excess(clf, points.estimate, df.r) / df.norms.cpu().double().clamp_min(1e-300)
        median = float(rel[out].median()) if bool(out.any()) else math.nan
        return BoxShare(
            n=len(points.estimate),
            n_converged=n_conv,
            n_outside=int(out.sum()),
            share=float(out.sum()) / n_conv if n_conv else 0.0,
            median_excess=median,
        )

    return cached_result("boxshare", key, compute)


def box_share_text(share: BoxShare) -> str:
    """One caption sentence: provenance and the share of boundary points outside the box."""
    text = (
        f"{share.provenance}. {share.n_outside} of S_c's {share.n_converged} boundary points z = x + r(x) "
        f"({share.share:.0%}) leave the pixel box"
    )
    if share.n_outside:
        text += (
            f" (median ‖z − clip(z)‖₂ = {share.median_excess:.0%} of ‖r(x)‖): there the curvature is that of the "
            "network outside its data domain"
        )
    return text + "."
