"""ξ and h: the random-noise norm of a network, and the finite-difference scale a setting asks for.

ICLR 2018 Fig. 7b: "ξ is 1/5 of the norm of the random noise required to fool most data points".
:func:`noise_norm` measures that norm once per (network, noise points, share, seed) —
:func:`geometry.universal.random_noise_norm` over the study's noise points, searched up to the
pixel cube's diameter and, if fewer than ``share`` of the points are fooled there, up to
:data:`~geometry.study.settings.NOISE_RANGE_FACTOR` times it — and :func:`xi` divides it by
:data:`~geometry.study.settings.XI_DIVISOR`. :func:`resolve_h` turns an
:class:`~geometry.study.settings.HScale` into a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..classifier import Classifier
from ..hessian import default_h
from ..universal import NoiseNormResult, random_noise_norm
from .cache import cached_result
from .points import StudyPoints, network_fingerprint
from .settings import NOISE_RANGE_FACTOR, XI_DIVISOR, HScale

__all__ = ["noise_norm", "xi", "median_norm", "vectors_xi", "ResolvedH", "resolve_h"]


def noise_norm(clf: Classifier, points: StudyPoints, share: float) -> NoiseNormResult:
    """The ℓ2 norm of random noise that fools ``share`` of ``points.noise`` (cached; module docstring).

    Returns
    -------
    NoiseNormResult — ``quantile`` is +inf when even the extended search fools fewer than
    ``share`` of the points; ``max_norm`` says how far it searched.
    """
    seed = int(points.split.seed)
    key = {
        "network": network_fingerprint(clf),
        "points": points.noise_key,
        "share": repr(float(share)),
        "seed": seed,
        "range_factor": NOISE_RANGE_FACTOR,
    }

    def compute() -> NoiseNormResult:
        noise = random_noise_norm(clf, points.noise, share=float(share), random_state=seed)
        if math.isfinite(noise.quantile):
            return noise
        return random_noise_norm(
            clf, points.noise, share=float(share), random_state=seed, max_norm=NOISE_RANGE_FACTOR * noise.max_norm
        )

    return cached_result("noise", key, compute)


def xi(noise: NoiseNormResult) -> float:
    """ξ = noise quantile / :data:`~geometry.study.settings.XI_DIVISOR` (pixel units; +inf if undefined)."""
    return noise.quantile / XI_DIVISOR


def median_norm(points: StudyPoints) -> float:
    """The median ℓ2 norm ‖x‖₂ (pixel units) of ``points.noise`` — the typical image norm ξ / ‖x‖ refers to."""
    xs = points.noise if len(points.noise) else points.heldout
    return float(torch.linalg.vector_norm(xs.flatten(1).double(), dim=1).median())


def vectors_xi(noise: NoiseNormResult, points: StudyPoints, xi_ratio: float | None) -> float:
    """ξ, the ℓ2 norm of the universal vectors (pixel units): ``xi_ratio`` · :func:`median_norm` (CVPR 2017 §3's
    ratio by default, :data:`~geometry.study.settings.XI_RATIO`), or, with ``xi_ratio=None``, :func:`xi` of the
    noise norm (ICLR 2018 Fig. 7b; +inf if undefined)."""
    if xi_ratio is None:
        return xi(noise)
    return float(xi_ratio) * median_norm(points)


@dataclass(frozen=True)
class ResolvedH:
    """A finite-difference scale h and how it was chosen.

    Attributes
    ----------
    h : float — pixel-space ℓ2 distance
    text : str — for captions ("authors' h", "h = ξ", "custom h", or why ξ fell back)
    preset : str — the preset actually used ("authors" when "xi" was undefined)
    noise : NoiseNormResult or None — the noise measurement behind h = ξ
    """

    h: float
    text: str
    preset: str
    noise: NoiseNormResult | None = None


def resolve_h(clf: Classifier, scale: HScale, points: StudyPoints) -> ResolvedH:
    """The h an :class:`~geometry.study.settings.HScale` asks for, on this network and these points.

    ``"authors"``: 10·√d/512 (:func:`geometry.hessian.default_h`); ``"custom"``: ``scale.value``;
    ``"xi"``: ξ at ``scale.noise_share`` (:func:`noise_norm`), falling back to the authors' h (and
    saying so in ``text``) when the noise never fools that share of the points.
    """
    if scale.preset == "custom":
        return ResolvedH(float(scale.value), "custom h", "custom")  # type: ignore[arg-type]
    if scale.preset == "xi":
        noise = noise_norm(clf, points, scale.noise_share)
        if math.isfinite(noise.quantile):
            text = "h = ξ" if scale.xi_factor == 1.0 else f"h = {scale.xi_factor:g}·ξ"
            return ResolvedH(scale.xi_factor * xi(noise), text, "xi", noise)
        return ResolvedH(
            default_h(clf),
            f"authors' h (random noise fools fewer than {scale.noise_share:.0%} of the "
            "points at any norm tried, so ξ is undefined)",
            "authors",
            noise,
        )
    return ResolvedH(default_h(clf), "authors' h", "authors")
