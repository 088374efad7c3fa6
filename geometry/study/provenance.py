"""Which r(x) a page used, and whether z = x + r(x) stays in the pixel box (issue 11, deliverable 2;
issue 23, item 2).

The boundary points of the atlas's curvature pages — the points whose Hessians define S_c (ICLR 2018
§5), the point of a normal cross-section (ICLR 2018 Fig. 5) — come from DeepFool under the settings'
``rx`` protocol (:data:`~geometry.study.settings.RX_PROTOCOLS`): box-constrained by default (every
iterate clamped to the pixel box, so z is an image of the data domain), or the paper's *unconstrained*
DeepFool (CVPR 2016 Alg. 2), whose z may leave the box: on the digits and MNIST networks most of S_c's
boundary points do, and on an adversarially trained network r(x) is long and z leaves [0, 1]^d further
(DESIGN §7, measured pitfall 2), so the geometry there is that of the network's extension outside the
data domain. These helpers say which protocol a page used and how many unconstrained boundary points
leave the box — under either protocol, so the share is shown either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..classifier import Classifier, check_images
from ..deepfool import DeepFoolResult, deepfool
from ..errors import InvalidInputError
from ..validation import check_float
from .cache import cached_result
from .curvature import estimation_deepfool
from .points import StudyPoints, network_fingerprint
from .settings import check_rx

RX_PROVENANCE = "r(x): unconstrained DeepFool (CVPR 2016 Alg. 2)"
"""The caption of r(x) under the paper's protocol (``rx="unconstrained"``)."""

RX_PROVENANCE_BOX = "r(x): box-constrained DeepFool (CVPR 2016 Alg. 2, every iterate clamped to the pixel box)"
"""The caption of r(x) under the default protocol (``rx="box"``)."""


def rx_provenance(rx: str) -> str:
    """The caption of r(x) for an ``rx`` protocol: :data:`RX_PROVENANCE_BOX` or :data:`RX_PROVENANCE`.

    Raises
    ------
    InvalidInputError
        ``rx`` not one of :data:`~geometry.study.settings.RX_PROTOCOLS`.
    """
    check_rx(rx)
    return RX_PROVENANCE_BOX if rx == "box" else RX_PROVENANCE


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
    """Share of S_c's boundary points z = x + r(x) (the estimation points') outside the pixel box under the
    paper's protocol (unconstrained DeepFool).

    The same DeepFool run as :func:`curvature_study` and :func:`universal_study` use for S_c with
    ``rx="unconstrained"`` (:func:`~geometry.study.curvature.estimation_deepfool`, ICLR 2018 §5), so the count
    is that of the points S_c is estimated from under that protocol; under the default box-constrained
    protocol it is how many of them the box constraint moved (:func:`box_share_text` says which).

    Parameters
    ----------
    clf : Classifier
    points : StudyPoints — ``points.estimate`` are used.

    Returns
    -------
    BoxShare — cached in memory and on disk under (network fingerprint, estimation points).
    """
    key = {"network": network_fingerprint(clf), "estimate": points.estimate_key}
    return cached_result(
        "boxshare", key, lambda: _box_share(clf, points.estimate, estimation_deepfool(clf, points, rx="unconstrained"))
    )


def _box_share(clf: Classifier, xs: Tensor, df: DeepFoolResult) -> BoxShare:
    conv = df.converged.cpu()
    out = left_box(clf, xs, df.r) & conv
    n_conv = int(conv.sum())
    rel = box_excess(clf, xs, df.r) / df.norms.cpu().double().clamp_min(1e-300)
    median = float(rel[out].median()) if bool(out.any()) else math.nan
    return BoxShare(
        n=len(xs),
        n_converged=n_conv,
        n_outside=int(out.sum()),
        share=float(out.sum()) / n_conv if n_conv else 0.0,
        median_excess=median,
    )


def unconstrained_box_share(clf: Classifier, xs: Tensor) -> BoxShare:
    """How many boundary points z = x + r(x) of the paper's unconstrained DeepFool (CVPR 2016 Alg. 2) leave
    the pixel box, for any points ``xs`` (N, C, H, W) or (C, H, W) — e.g. the one point of a cross-section,
    whose page uses the box-constrained r(x) by default and still states what the paper's protocol would do.

    Returns
    -------
    BoxShare — computed (one DeepFool run on ``xs``), not cached.

    Raises
    ------
    InvalidInputError
        images that do not fit the classifier.
    """
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs")
    return _box_share(clf, x, deepfool(clf, x))


def box_share_text(share: BoxShare, *, rx: str = "unconstrained") -> str:
    """One caption sentence: which r(x) the page used (``rx``) and the share of the paper's unconstrained
    boundary points outside the box (:func:`estimation_box_share`), under either protocol.

    Raises
    ------
    InvalidInputError
        ``rx`` not one of :data:`~geometry.study.settings.RX_PROTOCOLS`.
    """
    if rx_provenance(rx) == RX_PROVENANCE_BOX:
        text = f"{RX_PROVENANCE_BOX}: every boundary point z = x + r(x) of S_c lies in the pixel box. "
        if not share.n_outside:
            return text + (
                f"The paper's protocol (unconstrained DeepFool) keeps all {share.n_converged} inside it too."
            )
        return text + (
            f"Under the paper's protocol (unconstrained DeepFool) {share.n_outside} of S_c's {share.n_converged} "
            f"boundary points ({share.share:.0%}) would leave it (median ‖z − clip(z)‖₂ = {share.median_excess:.0%} "
            "of ‖r(x)‖)."
        )
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
