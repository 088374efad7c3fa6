"""The class palette (geometry.plotting.CLASS_COLORS) stays distinguishable for colour-blind readers:
the minimal pairwise CIELAB distance of its 10 colours, with normal vision and under the three
dichromacies simulated with Machado, Oliveira & Fernandes (IEEE TVCG 2009, severity 1.0)."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.plotting import CLASS_COLORS

# Machado et al. 2009, Table 1, severity 1.0: linear-RGB → linear-RGB as a dichromat sees it.
MACHADO = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
}
SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
D65 = np.array([0.95047, 1.0, 1.08883])
#: ΔE*ab (CIE76) below which two flat region colours are easily confused; ~10 is "clearly different"
MIN_DELTA_E = 12.0
#: the palette before issue 14 (Tableau 10): two reds a deuteranope cannot tell apart
TABLEAU_10 = [
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#EECA3B",
    "#B279A2",
    "#FF9DA6",
    "#9D755D",
    "#BAB0AC",
]


def _linear(rgb: np.ndarray) -> np.ndarray:
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def _hex(colors) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in colors])


def _lab(linear_rgb: np.ndarray) -> np.ndarray:
    xyz = np.clip(linear_rgb, 0, 1) @ SRGB_TO_XYZ.T / D65
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def min_delta_e(colors, vision: str) -> float:
    """Smallest CIE76 distance between two of ``colors`` as seen with ``vision``."""
    lin = _linear(_hex(colors))
    if vision != "normal":
        lin = lin @ np.asarray(MACHADO[vision]).T
    lab = _lab(lin)
    d = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    return float(d[~np.eye(len(colors), dtype=bool)].min())


def test_ten_distinct_colours():
    assert len(CLASS_COLORS) == 10
    assert len({c.lower() for c in CLASS_COLORS}) == 10


@pytest.mark.parametrize("vision", ["normal", *MACHADO])
def test_palette_distinguishable_with_colour_blindness(vision):
    assert min_delta_e(CLASS_COLORS, vision) > MIN_DELTA_E


def test_the_measure_rejects_the_old_palette():
    """The check can fail: Tableau 10's red and green merge for a deuteranope."""
    assert min_delta_e(TABLEAU_10, "normal") > MIN_DELTA_E  # fine with normal vision …
    assert min_delta_e(TABLEAU_10, "deuteranopia") < 5  # … not for a deuteranope


def test_simulation_keeps_grey_and_merges_red_green():
    """The simulation itself: greys are unchanged; pure red and green become close for a deuteranope."""
    grey = _linear(_hex(["#777777"]))
    for m in MACHADO.values():
        np.testing.assert_allclose(grey @ np.asarray(m).T, grey, atol=2e-3)
    assert min_delta_e(["#FF0000", "#00FF00"], "normal") > 100
    assert min_delta_e(["#CC3311", "#669900"], "deuteranopia") < min_delta_e(["#CC3311", "#669900"], "normal") / 3
