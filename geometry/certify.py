"""Lipschitz-margin certificates: a lower bound on the distance to the decision boundary (DESIGN §8).

If ``L`` bounds the ℓ2 Lipschitz constant of the logits, the margin ``M(x) = f_y(x) − max_{j≠y} f_j(x)``
cannot be closed by any perturbation smaller than ``ε_cert(x) = M(x) / (√2 · L)`` (Tsuzuku, Sato,
Sugiyama, "Lipschitz-Margin Training", NeurIPS 2018, Prop. 1). LMT's refinement uses the last layer's
rows: ``ε_pair(x) = min_j (f_y − f_j) / (L_body · ‖w_y − w_j‖)`` (§4.1), never smaller than ε_cert.

An attack that changes the label with a perturbation ``r(x)`` proves ``distance ≤ ‖r(x)‖``, so a sound
certificate satisfies ``ε_cert(x) ≤ ‖r(x)‖₂`` at every point. :func:`check_certificates` computes
that inequality for every point and lists each violation (a violation proves the bound unsound).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from .classifier import Classifier, check_images
from .errors import InvalidInputError
from .lipschitz import LipschitzBound, lipschitz_bound

__all__ = [
    "CARD_EPS",
    "Certificate",
    "SanityCheck",
    "certified_card",
    "certify",
    "certified_accuracy",
    "check_certificates",
]


@dataclass(frozen=True)
class Certificate:
    """Certified ℓ2 radii of a batch of points (numpy float64 arrays, pixel units).

    Attributes
    ----------
    label : (N,) int64 — the predicted label k̂(x) the radii protect
    margin : (N,) — ``f_k̂(x) − max_{j≠k̂} f_j(x)`` ≥ 0
    radius : (N,) — the best sound radius, ``max(radius_plain, radius_pair)``
    radius_plain : (N,) — ``M / (√2 · L)`` with the sound ``L`` (LMT Prop. 1)
    radius_pair : (N,) or None — the pairwise refinement with the sound body bound (None when the
        logits do not come from a Linear layer)
    radius_estimate : (N,) — the same best radius with the power-iteration estimates L̂ (not sound)
    bound : LipschitzBound
    """

    label: np.ndarray
    margin: np.ndarray
    radius: np.ndarray
    radius_plain: np.ndarray
    radius_pair: np.ndarray | None
    radius_estimate: np.ndarray
    bound: LipschitzBound

    def __len__(self) -> int:
        return len(self.label)


@dataclass(frozen=True)
class SanityCheck:
    """The inequality ε_cert(x) ≤ ‖r(x)‖₂ at every point where the attack succeeded.

    Attributes
    ----------
    r_norm : (N,) float64 — ‖r(x)‖₂ of the attack (inf where it failed)
    success : (N,) bool — the attack changed the label
    n_checked : int — points with a successful attack
    violations : (V,) int64 — indices where ε_cert(x) > ‖r(x)‖₂ (the bound is unsound there)
    ratio : (N,) float64 — ‖r(x)‖ / ε_cert(x) (inf where ε_cert = 0 or the attack failed)
    attack : str — which attack measured ‖r(x)‖
    """

    r_norm: np.ndarray
    success: np.ndarray
    n_checked: int
    violations: np.ndarray
    ratio: np.ndarray
    attack: str

    @property
    def sound(self) -> bool:
        return len(self.violations) == 0


def certify(
    clf: Classifier, xs: torch.Tensor, *, bound: LipschitzBound | None = None, batch_size: int = 1024
) -> Certificate:
    """Certified ℓ2 radii ε_cert(x) of the predicted labels of ``xs``.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) pixel-space images
    bound : a precomputed :func:`~geometry.lipschitz.lipschitz_bound` of ``clf`` (else computed)

    Returns
    -------
    Certificate

    Raises
    ------
    UnsupportedLayerError
        (from :func:`lipschitz_bound`) a layer that cannot be bounded.

    References: Tsuzuku et al., NeurIPS 2018, Prop. 1 and §4.1; DESIGN §8.
    """
    xs = check_images(xs, clf.input_shape)
    if len(xs) == 0:
        raise InvalidInputError("certify needs at least one image, got an empty batch")
    bound = bound if bound is not None else lipschitz_bound(clf)
    logits = clf.logits(xs, batch_size=batch_size).to(torch.float64)
    label = logits.argmax(1)
    top = logits.gather(1, label[:, None])
    gaps = top - logits  # (N, L): f_k̂ − f_j ≥ 0
    gaps.scatter_(1, label[:, None], math.inf)
    margin = gaps.min(1).values
    plain = margin / (math.sqrt(2.0) * bound.upper)
    est = margin / (math.sqrt(2.0) * bound.estimate)
    pair = None
    pair_norms = bound.pair_norms
    if pair_norms is not None and bound.body_upper is not None and bound.body_estimate is not None:
        norms = pair_norms[label].clamp_min(1e-300)  # (N, L): ‖w_k̂ − w_j‖
        pair = (gaps / (bound.body_upper * norms)).min(1).values
        est = torch.maximum(est, (gaps / (bound.body_estimate * norms)).min(1).values)
    best = plain if pair is None else torch.maximum(plain, pair)
    as_np = lambda t: t.detach().cpu().numpy().astype(np.float64)
    return Certificate(
        label=label.cpu().numpy(),
        margin=as_np(margin),
        radius=as_np(best),
        radius_plain=as_np(plain),
        radius_pair=None if pair is None else as_np(pair),
        radius_estimate=as_np(est),
        bound=bound,
    )


def certified_accuracy(cert: Certificate, labels: ArrayLike, eps: float | ArrayLike) -> np.ndarray:
    """Fraction of points classified correctly *and* certified at each ε: ``mean[k̂ = y ∧ ε_cert ≥ ε]``.

    Parameters
    ----------
    cert : Certificate of N points
    labels : (N,) true labels
    eps : float or (E,) radii (pixel units, ℓ2)

    Returns
    -------
    (E,) float64 in [0, 1].
    """
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(cert):
        raise InvalidInputError(f"{len(labels)} labels for {len(cert)} certified points")
    eps = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    ok = cert.label == labels
    return np.array([float(np.mean(ok & (cert.radius >= e))) for e in eps])


def check_certificates(
    cert: Certificate, r_norm: ArrayLike, success: ArrayLike, *, attack: str = "DeepFool"
) -> SanityCheck:
    """ε_cert(x) ≤ ‖r(x)‖₂ at every point where the attack changed the label; violations listed.

    Parameters
    ----------
    cert : Certificate of N points
    r_norm : (N,) ℓ2 norms of successful perturbations (pixel units)
    success : (N,) bool — the attack changed the label (other points are not checked)
    attack : name of the attack (shown with the result)

    Returns
    -------
    SanityCheck — ``violations`` holds every index where the sound radius exceeds ‖r(x)‖.
    """
    r = np.asarray(r_norm, dtype=np.float64).reshape(-1)
    ok = np.asarray(success, dtype=bool).reshape(-1)
    if len(r) != len(cert) or len(ok) != len(cert):
        raise InvalidInputError(f"{len(r)} norms and {len(ok)} success flags for {len(cert)} certified points")
    r = np.where(ok, r, np.inf)
    violations = np.flatnonzero(ok & (cert.radius > r))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ok & (cert.radius > 0), r / cert.radius, np.inf)
    return SanityCheck(r_norm=r, success=ok, n_checked=int(ok.sum()), violations=violations, ratio=ratio, attack=attack)


#: ℓ2 radii of a model card's certified accuracies, per input size (multiples of the LMT margin scale)
CARD_EPS = (0.01, 0.03, 0.05, 0.1)


def certified_card(clf: Classifier, xs: torch.Tensor, labels: ArrayLike, *, eps: Sequence[float] | None = None) -> dict:
    """Certified accuracy at a few ℓ2 radii (sound bound), for a zoo model card.

    Radii default to :data:`CARD_EPS` scaled by √(d / 64) (so the same numbers on 8×8 digits and
    larger inputs mean the same per-pixel change). Returns plain JSON values.
    """
    cert = certify(clf, xs)
    if eps is None:
        eps = [round(e * math.sqrt(clf.d / 64), 4) for e in CARD_EPS]
    acc = certified_accuracy(cert, np.asarray(labels), eps)
    return {
        "eps": [float(e) for e in eps],
        "certified_accuracy": [float(a) for a in acc],
        "points": len(cert),
        "lipschitz_upper": cert.bound.upper,
        "lipschitz_estimate": cert.bound.estimate,
        "median_radius": float(np.median(cert.radius)),
    }
