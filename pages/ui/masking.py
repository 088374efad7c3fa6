"""Masking flags as banners (issue 21, item 3): every page that shows a white-box robustness number raises
each flag of :mod:`geometry.masking` as a ``st.warning`` with what was measured and the remedy.

The flags themselves are computed by the studies (:func:`geometry.study.robust.ensemble_study`,
:func:`geometry.study.robust.robust_study`, :func:`flags_for_certificate`); this module only draws them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import streamlit as st

from geometry.masking import MaskingFlag, certificate_flags, deepfool_flags

__all__ = ["TITLES", "banners", "certified_flags", "flags_for_certificate", "ladder_flags"]

#: the banner's headline per flag code (:data:`geometry.masking.FLAG_CODES`)
TITLES = {
    "randomised_output": "the network's output is random",
    "probability_output": "the network returns probabilities, not logits",
    "zero_gradient": "zero gradients at some test points",
    "black_box_wins": "a gradient-free attack beats the gradient attacks",
    "dynamic_forward": "the forward pass computes gradients",
    "deepfool_fails": "DeepFool fails on more than 1 % of the points",
    "certificate_exceeds_attack": "a certificate exceeds an attack radius",
}


def banners(flags: Mapping[str, Sequence[MaskingFlag]], *, number: str = "white-box robustness numbers") -> int:
    """One ``st.warning`` per flag: ``{network: flags}`` → "Gradient masking? net: headline — what was measured.
    Remedy: …". Duplicate flags of one network (same code and message) are drawn once.

    ``number`` names what the flag puts in doubt on this page. Returns the number of banners drawn.
    """
    drawn = 0
    for network, raised in flags.items():
        seen: set[tuple[str, str]] = set()
        for flag in raised:
            if (flag.code, flag.message) in seen:
                continue
            seen.add((flag.code, flag.message))
            title = TITLES.get(flag.code, flag.code)
            st.warning(
                f"**Masking flag — {network}: {title}.** {flag.message}. The {number} of {network} may be "
                f"too optimistic.\n\n**Remedy:** {flag.remedy}",
                icon=":material/gpp_maybe:",
            )
            drawn += 1
    return drawn


def flags_for_certificate(
    certificates: Mapping[str, np.ndarray], attack_radius: np.ndarray, deepfool_success: np.ndarray | None = None
) -> tuple[MaskingFlag, ...]:
    """The Certified page's flags: ``certificate_exceeds_attack`` (a sound radius above a successful attack's,
    :func:`geometry.masking.certificate_flags`) and, given box DeepFool's per-point success, ``deepfool_fails``.

    certificates : {name: (N,) ℓ2 radii}; attack_radius : (N,) the smallest successful attack's ‖r‖₂ (inf where
    none); deepfool_success : (N,) bool or None.
    """
    flags = certificate_flags(dict(certificates), np.asarray(attack_radius, dtype=np.float64))
    if deepfool_success is not None:
        flags = (*flags, *deepfool_flags(np.asarray(deepfool_success, dtype=bool)))
    return flags


def certified_flags(study: Any) -> tuple[MaskingFlag, ...]:
    """The flags of a :class:`geometry.study.certify.CertifyStudy`: every rung of its ladder of certificates
    (:meth:`~geometry.study.certify.CertifyStudy.ladder`: the global Lipschitz certificate, LMT's pair refinement,
    CROWN, and the best of them per point — *the* certificate) against the smallest successful attack's ‖r‖₂.

    A rung not computed at a point (NaN: CROWN beyond its points) is not compared there.
    """
    return flags_for_certificate(study.ladder(), np.asarray(study.distance, dtype=np.float64))


def ladder_flags(ladder: Any) -> tuple[MaskingFlag, ...]:
    """The 2-D lab's flags at one point: every certificate of a :class:`geometry.study.toy2d.CertificateLadder`
    and the best of them against its best (smallest successful) attack radius (inf when every attack failed)."""
    rows = [r for r in ladder.of("certificate") if math.isfinite(r.radius)]
    if not rows:
        return ()
    radii = {r.name: np.array([r.radius]) for r in rows}
    radii["best certificate"] = np.array([max(r.radius for r in rows)])
    best = ladder.best_attack
    return flags_for_certificate(radii, np.array([best.radius if best is not None else math.inf]))
