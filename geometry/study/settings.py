"""The settings of each figure's protocol: frozen dataclasses with a stable :meth:`key`.

Issue 10: a protocol — which points estimate a subspace and which are held out, the m grid, ξ, the
h presets — is defined once here and used alike by the app, the command line and
``docs/scripts/``. A settings object holds plain values only (ints, floats, strings, nested
settings); its :meth:`~_Settings.key` is a SHA-256 of its JSON description (class name, fields,
:data:`PROTOCOL_VERSION`), so two equal settings give the same cache key in any process, and a
changed protocol never reuses a stale result.

Conventions (ICLR 2018 §5; DESIGN §4):

* ξ (``xi``) = the ℓ2 norm of random noise that fools ``share`` of the held-out points, divided
  by :data:`XI_DIVISOR` = 5 (Fig. 7b: "ξ is 1/5 of the norm of the random noise required to fool
  most data points"); the noise norm is measured on the first :data:`NOISE_POINTS` held-out
  points (:func:`geometry.study.noise.noise_norm`).
* h, the finite-difference scale of the boundary Hessian (pixel-space ℓ2 distance), is chosen by
  an :class:`HScale`: ``"authors"`` (10·√d/512, the authors' code), ``"xi"`` (h = ξ at
  ``noise_share``), or ``"custom"``.
* m values of a curve: :func:`m_grid`.
* r(x), the boundary points z = x + r(x) and S_c's points come from DeepFool under an ``rx`` protocol
  (:data:`RX_PROTOCOLS`): ``"box"`` (the default, issue 23: every DeepFool iterate clamped to the pixel
  box, so z is an image of the data domain) or ``"unconstrained"`` (the paper's protocol, CVPR 2016
  Alg. 2 as the ICLR 2018 paper uses it: z may leave the box).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, get_args

from ..cache import cache_key
from ..errors import InvalidInputError
from ..validation import (
    BOUNDARY_POINTS,
    CURVATURE_METHODS,
    H_PRESETS,
    BoundaryPoint,
    CurvatureMethod,
    HPreset,
    check_int,
    check_share,
)

__all__ = [
    "PROTOCOL_VERSION",
    "XI_DIVISOR",
    "XI_RATIO",
    "check_xi_ratio",
    "UAP_DELTA",
    "NOISE_POINTS",
    "NOISE_RANGE_FACTOR",
    "H_PRESETS",
    "CURVATURE_METHODS",
    "BOUNDARY_POINTS",
    "m_grid",
    "PointSplit",
    "HScale",
    "CurvatureSettings",
    "UniversalSettings",
    "CompareSettings",
    "COMPARE_XI_FACTOR",
    "RX_PROTOCOLS",
    "RX_LABELS",
    "RxProtocol",
]

#: How r(x) is computed: ``"box"`` — DeepFool with every iterate clamped to the classifier's pixel box
#: (``deepfool(..., clip=True)``), so z = x + r(x) is an image; ``"unconstrained"`` — the paper's protocol,
#: DeepFool as in CVPR 2016 Alg. 2, whose z may leave the box (ICLR 2018 §5 estimates S_c from such points).
RxProtocol: TypeAlias = Literal["box", "unconstrained"]
RX_PROTOCOLS: tuple[RxProtocol, ...] = get_args(RxProtocol)
#: The names the pages, the command line and the reports give the two protocols.
RX_LABELS: dict[str, str] = {
    "box": "Box-constrained DeepFool (z = x + r(x) inside the pixel box)",
    "unconstrained": "Paper's protocol (unconstrained DeepFool)",
}


def check_xi_ratio(value: Any) -> None:
    """Raise :class:`InvalidInputError` unless ``value`` is None or a number in (0, 10] (ξ / ‖x‖)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 10.0:
        raise InvalidInputError(f"xi_ratio (ξ / ‖x‖) must be None or a number in (0, 10], got {value!r}")


def check_rx(value: Any) -> None:
    """Raise :class:`InvalidInputError` unless ``value`` is one of :data:`RX_PROTOCOLS`."""
    if value not in RX_PROTOCOLS:
        raise InvalidInputError(f"rx must be one of {', '.join(RX_PROTOCOLS)}, got {value!r}")


#: Bumped whenever a study's protocol changes what it computes (part of every key).
PROTOCOL_VERSION = 1
#: ξ = noise quantile / XI_DIVISOR (ICLR 2018 Fig. 7b: one fifth).
XI_DIVISOR = 5.0
#: The UAP algorithm's target fooling rate is 1 − UAP_DELTA (CVPR 2017 Alg. 1); the theorems use the same δ.
UAP_DELTA = 0.2
#: ξ / ‖x‖ of a universal perturbation in the papers: CVPR 2017 (Moosavi-Dezfooli, Fawzi, Fawzi, Frossard,
#: "Universal adversarial perturbations", §3) sets the ℓ2 norm ξ = 2000 on ImageNet images whose average ℓ2
#: norm is ≈ 5·10⁴ (its footnote), "quasi-imperceptible"; ICLR 2018 Fig. 8 keeps "ℓ2 norm of 2,000". No paper
#: gives a ratio for MNIST or the 8×8 digits, so the ImageNet ratio 2000 / 5·10⁴ = 0.04 is used for every
#: dataset (issue 23, item 3: "small" means small).
XI_RATIO = 0.04
#: Held-out points on which the random-noise norm (and so ξ) is measured.
NOISE_POINTS = 200
#: If noise within the pixel cube's diameter fools fewer than ``share`` of the points, the noise search
#: goes on up to this multiple of the diameter (perturbations are not clipped in this geometric setting).
NOISE_RANGE_FACTOR = 10.0
#: Points of a curve's m grid (at most; all m up to this many).
M_GRID_POINTS = 12
#: "Compare networks" with h tied to ξ takes h = ξ/2 (both networks share S_c at h ≈ ξ/2 but not at the authors'
#: h, docs/reproduction-compare.md): :meth:`CompareSettings.half_xi`.
COMPARE_XI_FACTOR = 0.5


def m_grid(m_max: int, *, points: int = M_GRID_POINTS) -> list[int]:
    """The values of m at which a curve versus m is evaluated: 1 … ``m_max``.

    All of them when ``m_max ≤ points``, else a roughly geometric grid of about ``points`` values,
    always including 1 and ``m_max``.

    Raises
    ------
    InvalidInputError
        ``m_max`` < 1 or ``points`` < 2.
    """
    m_max, points = int(m_max), int(points)
    if m_max < 1 or points < 2:
        raise InvalidInputError(f"m_grid needs m_max ≥ 1 and points ≥ 2, got m_max={m_max}, points={points}")
    if m_max <= points:
        return list(range(1, m_max + 1))
    grid = {1, m_max}
    ratio = m_max ** (1 / (points - 1))
    v = 1.0
    while v < m_max:
        v *= ratio
        grid.add(min(m_max, max(1, round(v))))
    return sorted(grid)


def _plain(value: Any) -> Any:
    if isinstance(value, _Settings):
        return value.describe()
    if isinstance(value, float):
        return repr(value)  # exact: 0.1 and 0.1000000000000001 are different settings
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Settings:
    """Mixin: a JSON description and a stable key."""

    def describe(self) -> dict:
        """The settings as plain JSON values, with the class name and the protocol version."""
        out: dict[str, Any] = {"settings": type(self).__name__, "protocol": PROTOCOL_VERSION}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = _plain(getattr(self, f.name))
        return out

    def key(self) -> str:
        """A 16-hex-digit SHA-256 of :meth:`describe` (stable across processes and runs)."""
        return cache_key(self.describe())


def _int(name: str, value: Any, low: int, high: int | None = None) -> None:
    check_int(name, value, low, high, plain=True)  # settings hold plain JSON values: Python ints only


def _share(name: str, value: Any) -> None:
    check_share(name, value)


@dataclass(frozen=True)
class PointSplit(_Settings):
    """Which points a study uses (:func:`geometry.study.points.split_points`).

    Attributes
    ----------
    n_estimate : int ≥ 1 — points whose boundary Hessians define S_c and whose normals define S_f
        (the paper's training points x_1 … x_n)
    n_heldout : int ≥ 1 — points on which curvature and fooling rates are measured
    n_uap : int ≥ 0 — points the UAP algorithm runs on (0: no UAP)
    seed : int ≥ 0 — the random choice of points (and every other random choice of the study)
    """

    n_estimate: int = 100
    n_heldout: int = 50
    n_uap: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        _int("n_estimate", self.n_estimate, 1)
        _int("n_heldout", self.n_heldout, 1)
        _int("n_uap", self.n_uap, 0)
        _int("seed", self.seed, 0, 2**63 - 1)


@dataclass(frozen=True)
class HScale(_Settings):
    """How the finite-difference scale h (pixel-space ℓ2 distance) is chosen.

    Attributes
    ----------
    preset : "authors" | "xi" | "custom"
    value : float > 0 — h for ``"custom"`` (ignored otherwise)
    noise_share : float in (0, 1] — for ``"xi"``: ξ = (noise norm fooling this share) / 5
    xi_factor : float > 0 — for ``"xi"``: h = xi_factor · ξ (1: the curvature and universal pages;
        :data:`COMPARE_XI_FACTOR` = 0.5: the comparison page, where two networks share S_c at h ≈ ξ/2)

    The preset ``"xi"`` always means h = ``xi_factor`` · ξ; :attr:`label` says which (``"h = ξ"``,
    ``"h = ξ/2"``), so a page or a report never calls h = ξ/2 "ξ".
    """

    preset: HPreset = "authors"
    value: float | None = None
    noise_share: float = 0.5
    xi_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.preset not in H_PRESETS:
            raise InvalidInputError(f"h preset must be one of {', '.join(H_PRESETS)}, got {self.preset!r}")
        if self.preset == "custom":
            if self.value is None or not math.isfinite(float(self.value)) or float(self.value) <= 0:
                raise InvalidInputError(f"a custom h must be a positive number, got {self.value!r}")
        elif self.value is not None:
            object.__setattr__(self, "value", None)  # only "custom" uses it: equal settings, equal keys
        _share("noise_share", self.noise_share)
        if not (isinstance(self.xi_factor, (int, float)) and math.isfinite(self.xi_factor) and self.xi_factor > 0):
            raise InvalidInputError(f"xi_factor must be a positive number, got {self.xi_factor!r}")
        if self.preset != "xi":
            object.__setattr__(self, "noise_share", 0.5)
            object.__setattr__(self, "xi_factor", 1.0)

    @property
    def label(self) -> str:
        """What h is, in words: ``"authors' h"``, ``"custom h = 0.156"``, ``"h = ξ"`` or ``"h = ξ/2"`` (ξ at
        ``noise_share``)."""
        if self.preset == "custom":
            return f"custom h = {self.value:g}"
        if self.preset == "authors":
            return "authors' h"
        factor = {1.0: "", 0.5: "/2"}.get(float(self.xi_factor))
        h = f"h = ξ{factor}" if factor is not None else f"h = {self.xi_factor:g}·ξ"
        return f"{h} (ξ = 1/{XI_DIVISOR:g} of the noise norm fooling {self.noise_share:.0%})"


@dataclass(frozen=True)
class CurvatureSettings(_Settings):
    """Protocol of "Curvature vs m" (ICLR 2018 §5, Fig. 7a).

    Attributes
    ----------
    points : PointSplit — estimation points (S_c, S_f) and held-out points (curves)
    m_max : int ≥ 1 — dimension of S_c, S_f and the random subspace
    method : one of :data:`CURVATURE_METHODS`
    scale : HScale — h of the finite-difference method (ignored by the others); default h = ξ (ξ at 50 %): on
        digits-lenet only there is S_c more curved than random (docs/reproduction.md)
    beta : float or None — softplus β of the smoothed method (None: the default)
    point : one of :data:`BOUNDARY_POINTS`
    tangent : bool — project the Hessian on the boundary's tangent space
    n_directions : int ≥ 1 — random unit directions per m and held-out point
    rx : one of :data:`RX_PROTOCOLS` — how r(x) (and so z = x + r(x) of the estimation and held-out points)
        is computed; default ``"box"`` (z inside the pixel box); ``"unconstrained"``: the paper's protocol
    """

    points: PointSplit = field(default_factory=PointSplit)
    m_max: int = 20
    method: CurvatureMethod = "finite_difference"
    scale: HScale = field(default_factory=lambda: HScale("xi"))
    beta: float | None = None
    point: BoundaryPoint = "boundary"
    tangent: bool = True
    n_directions: int = 10
    rx: RxProtocol = "box"

    def __post_init__(self) -> None:
        _int("m_max", self.m_max, 1)
        _int("n_directions", self.n_directions, 1)
        check_rx(self.rx)
        if self.method not in CURVATURE_METHODS:
            raise InvalidInputError(f"method must be one of {', '.join(CURVATURE_METHODS)}, got {self.method!r}")
        if self.point not in BOUNDARY_POINTS:
            raise InvalidInputError(f"point must be one of {', '.join(BOUNDARY_POINTS)}, got {self.point!r}")
        if self.method != "finite_difference" and self.scale != HScale():
            object.__setattr__(self, "scale", HScale())  # h is not used: equal settings, equal keys
        if self.method != "smoothed" and self.beta is not None:
            object.__setattr__(self, "beta", None)


@dataclass(frozen=True)
class UniversalSettings(_Settings):
    """Protocol of "Universal perturbations" (ICLR 2018 §5, Fig. 7b–9; CVPR 2017 Alg. 1).

    Attributes
    ----------
    points : PointSplit — estimation (S_c, S_f), held-out (fooling rates) and UAP points
    m_max : int ≥ 1 — dimension of the subspaces
    scale : HScale — h of S_c (finite differences at z = x + r(x), tangent-projected); default h = 1/5 of the
        noise norm fooling 80 % (the Fig. 7b ξ at 80 %, where S_c out-fools S_f on the MNIST LeNet), whatever
        ``xi_ratio`` sets the vectors' norm to
    xi_ratio : float in (0, 10] or None — ξ, the norm of every universal vector, as a share of the median ‖x‖₂ of
        the noise points: ξ = xi_ratio · median ‖x‖₂; default :data:`XI_RATIO` = 0.04, the papers' ImageNet ratio
        (CVPR 2017 §3; issue 23, item 3). None: the ICLR 2018 Fig. 7b rule, ξ = (noise norm fooling ``share``) / 5
    share : float — the share of held-out points the random noise fools: ξ = (that noise norm) /
        :data:`XI_DIVISOR` when ``xi_ratio`` is None; default 0.8: where S_c's random vectors out-fool S_f's on the
        MNIST LeNet (83.7 % vs 69.6 % at ξ = 8.96, ≈ ‖x‖: docs/reproduction-universal.md, issue 13)
    n_samples : int ≥ 1 — random vectors per subspace and m
    delta : float — UAP target fooling rate 1 − δ (and the theorems' δ)
    rx : one of :data:`RX_PROTOCOLS` — r(x) of S_c's / S_f's estimation points and of the held-out points
        (theorems); default ``"box"``, ``"unconstrained"``: the paper's protocol
    """

    points: PointSplit = field(default_factory=lambda: PointSplit(100, 1000, 1000))
    m_max: int = 20
    scale: HScale = field(default_factory=lambda: HScale("xi", noise_share=0.8))
    xi_ratio: float | None = XI_RATIO
    share: float = 0.8
    n_samples: int = 10
    delta: float = UAP_DELTA
    rx: RxProtocol = "box"

    def __post_init__(self) -> None:
        _int("m_max", self.m_max, 1)
        _int("n_samples", self.n_samples, 1)
        _share("share", self.share)
        check_rx(self.rx)
        check_xi_ratio(self.xi_ratio)
        if not 0.0 < float(self.delta) < 1.0:
            raise InvalidInputError(f"delta must be in (0, 1), got {self.delta!r}")


@dataclass(frozen=True)
class CompareSettings(_Settings):
    """Protocol of "Compare networks" (ICLR 2018 §5, Fig. 10; Appendix C.2, Fig. 13).

    Both networks' S_c and S_f are estimated on the same points with the same h and
    ``m_estimated`` directions; principal angles are taken between their first m.

    Attributes
    ----------
    points : PointSplit — estimation points (both networks) and held-out points (fooling matrix)
    m_estimated : int ≥ 1 — directions estimated per subspace
    scale : HScale — h of S_c (the same for both networks); default the authors' h; :meth:`half_xi` gives the
        page's other preset, h = ξ/2 (labelled so: ``scale.label``)
    n_baseline : int ≥ 1 — random subspace pairs of the baseline
    rx : one of :data:`RX_PROTOCOLS` — r(x) of both networks' estimation points (the boundary points z = x + r(x)
        of S_c, the normals of S_f) and of network B's datapoint in the transferred sections; default ``"box"``
        (z inside the pixel box), ``"unconstrained"``: the paper's protocol
    """

    points: PointSplit = field(default_factory=lambda: PointSplit(100, 200, 0))
    m_estimated: int = 20
    scale: HScale = field(default_factory=HScale)
    n_baseline: int = 200
    rx: RxProtocol = "box"

    def __post_init__(self) -> None:
        _int("m_estimated", self.m_estimated, 1)
        _int("n_baseline", self.n_baseline, 1)
        check_rx(self.rx)

    @staticmethod
    def half_xi(noise_share: float = 0.5) -> HScale:
        """The comparison's h tied to ξ: h = ξ/2 (:data:`COMPARE_XI_FACTOR`), ξ at ``noise_share`` of network A's
        held-out points (ICLR 2018 Fig. 10; docs/reproduction-compare.md)."""
        return HScale("xi", noise_share=noise_share, xi_factor=COMPARE_XI_FACTOR)
