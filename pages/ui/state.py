"""View state ⇄ query parameters: one small typed view per page, built from the session (or the URL
on a session's first run), written back to ``st.query_params`` so that a view is a shareable link,
and turned into the study's settings object (:mod:`geometry.study`).

Every widget's bounds are defined once here: the widget is drawn with them and :func:`init_state`
clamps the URL's value into them, so a link cannot hold a value the widget refuses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import streamlit as st

from geometry.study import CompareSettings, CurvatureSettings, HScale, PointSplit, SectionSettings, UniversalSettings

# ------------------------------------------------------------------ widget bounds (each defined once)
#: n: training points used for S_c / S_f (slider; Curvature, Cross-sections, Universal).
CV_N = dict(min_value=10, max_value=500, step=10)
#: maximum subspace dimension m (slider).
CV_M = dict(min_value=2, max_value=50)
#: custom finite-difference scale h, pixel-space ℓ2 distance (number input; every page's "h").
H_INPUT = dict(min_value=1e-3, max_value=100.0)
#: held-out points of the curvature curves (URL only, no widget).
CV_HELDOUT = dict(min_value=1, max_value=10_000)
CURVATURE_METHODS = {
    "finite_difference": "finite differences (scale h)",
    "smoothed": "smoothed twin (softplus, β)",
    "exact": "exact (smooth networks)",
}
CURVATURE_POINTS = {"boundary": "z = x + r(x)", "inside": "x + 0.8·r(x) (authors' code)"}
#: How the finite-difference scale h is chosen (radio options; labels depend on the page and the network).
H_SCALES = ("authors", "xi", "custom")
#: Cross-sections: random direction seed, window half-width (× ‖r(x)‖), grid points per side.
SEED = dict(min_value=0, max_value=10_000, step=1)
EXTENT = dict(min_value=1.0, max_value=20.0, step=0.5)
RESOLUTION = dict(options=[64, 128, 256])
#: Cross-sections: which direction v spans the plane with r(x) (URL value → label).
DIRECTIONS = {
    "random": "random v (uniform on the sphere of R^d, seeded)",
    "sc": "S_c eigenvector i (curved subspace)",
    "sc_mix": "random v in the first m directions of S_c (seeded)",
    "sf": "S_f vector i (flat subspace: normals)",
    "uap": "the universal perturbation (UAP of the Universal perturbations page)",
}
#: Universal: random vectors per m (slider), % of points the noise norm fools (radio), held-out / UAP points (URL).
UV_SAMPLES = dict(min_value=1, max_value=50)
UV_SHARES = dict(options=[50, 80])
UV_POINTS = dict(min_value=10, max_value=10_000)
#: Compare: S_c / S_f are estimated with this many directions (the Curvature page's default m).
CMP_M_ESTIMATED = 20
CMP_HELDOUT = 200  # held-out test points of the fooling matrix (and the noise norm)
CMP_N = dict(min_value=20, max_value=500, step=10)
CMP_DIRECTION = dict(min_value=1, max_value=CMP_M_ESTIMATED, step=1)
CMP_SHARES = dict(options=[0.5, 0.8, 0.9])
CMP_VECTORS = dict(min_value=1, max_value=100)

USER_PREFIX = "upload:"  # keys of a browser session's own models and datasets (never put into links)


# ------------------------------------------------------------------ query params
def _number(value, cast):
    """``value`` (a URL string or a session value) as a finite ``int`` / ``float``, else None.

    Ints also accept numbers written as floats ("1e9", "2.5"; rounded to the nearest int), so a
    huge value is clamped rather than refused; NaN, ±inf and non-numbers give None."""
    if isinstance(value, bool):
        return None
    if cast is int:
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):
            pass
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return round(number) if cast is int else number


def coerce(value, default, cast=str, *, min_value=None, max_value=None, step=None, options=None):
    """``value`` made valid for a widget, or ``default`` where it cannot be.

    Parameters
    ----------
    value : a raw URL string, a session value, or None (absent)
    default : the widget's default (returned, itself clamped, for absent / malformed values)
    cast : ``str``, ``int`` or ``float`` — the widget's value type
    min_value, max_value, step : the widget's own bounds (numbers): the value is clamped into
        [min_value, max_value] and, with ``step``, floored onto the grid ``min_value + k·step``
    options : the widget's options (selectbox, radio, select_slider): a value not among them
        gives ``default``

    Non-finite (NaN, ±inf), empty and non-numeric values of an ``int`` / ``float`` widget give
    ``default``; finite numbers out of range (1e308, 10**30, −5) are clamped. Never raises.
    """
    if cast in (int, float):
        number = None if value is None else _number(value, cast)
        if number is None:
            number = _number(default, cast)
            if number is None:
                return default
    else:
        try:
            number = default if value is None else cast(value)
        except (TypeError, ValueError):
            number = default
    if options is not None:
        return number if number in list(options) else default
    if min_value is not None and number < min_value:
        number = min_value
    if max_value is not None and number > max_value:
        number = max_value
    if step is not None and min_value is not None:
        k = math.floor((number - min_value) / step + 1e-9)  # 1e-9: round-off of float steps
        number = min_value + k * step
        if cast is float:
            number = round(number, 12)
    return cast(number) if cast in (int, float) else number


def param(key: str, default, cast=str, **bounds):
    """The value of ``key`` in the URL's query string, made valid by :func:`coerce` (``bounds``:
    the widget's ``min_value`` / ``max_value`` / ``step`` / ``options``), or ``default`` if absent
    or malformed."""
    return coerce(st.query_params.get(key), default, cast, **bounds)


def init_state(key: str, default, cast=str, **bounds):
    """Initialise a widget's session state from the URL once (first run of the session), and keep it
    valid for the widget on every run; returns the value.

    ``bounds`` are the widget's own ``min_value`` / ``max_value`` / ``step`` / ``options`` — pass
    the same dict the widget is drawn with, so the two cannot drift apart. Out-of-range numbers are
    clamped, NaN / inf / malformed values and unknown options give ``default`` (:func:`coerce`);
    a value kept from an earlier run is re-checked too, since some bounds move (the datapoint index
    with the dataset, a direction index with m).
    """
    if key not in st.session_state:
        st.session_state[key] = param(key, default, cast, **bounds)
    elif bounds:
        value = st.session_state[key]
        valid = coerce(value, default, cast, **bounds)
        if valid != value or type(valid) is not type(value):
            st.session_state[key] = valid
    return st.session_state[key]


def share(**values) -> None:
    """Write the view's defining values into the URL (so a view is a shareable link)."""
    for k, v in values.items():
        st.query_params[k] = str(v)


def shareable(name: str) -> bool:
    """Whether a network name may go into the URL (zoo networks; uploads live in one session only)."""
    return not name.startswith(USER_PREFIX)


def _h_scale(preset: str, h: float, **xi) -> HScale:
    return HScale(preset, value=float(h) if preset == "custom" else None, **(xi if preset == "xi" else {}))


# ------------------------------------------------------------------ Curvature vs m (shared with Cross-sections)
#: Session keys of the curvature settings: the Cross-sections page draws the same widgets so that
#: both pages use one S_c / S_f and one curvature estimator.
CURVATURE_KEYS = ("cv_n", "cv_m", "cv_method", "cv_scale", "cv_h", "cv_point", "cv_heldout")


def keep_curvature_settings() -> None:
    """Keep the curvature settings across page switches.

    Streamlit drops a widget's session value at the end of a run in which no widget with that key
    was drawn; re-assigning the values at the top of a run keeps them (the documented multipage
    workaround)."""
    for key in CURVATURE_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


@dataclass(frozen=True)
class CurvatureView:
    """The "Curvature vs m" view (keys ``cv_*``): S_c / S_f from ``n`` training points, ``m``
    directions, the Hessian estimator and its scale, curves on ``heldout`` test points."""

    n: int
    m: int
    method: str
    point: str
    scale: str
    h: float
    heldout: int

    @classmethod
    def read(cls, h_default: float) -> CurvatureView:
        """The view from the session (the URL on first use), every value valid for its widget."""
        return cls(
            n=init_state("cv_n", 100, int, **CV_N),
            m=init_state("cv_m", 20, int, **CV_M),
            method=init_state("cv_method", "finite_difference", options=list(CURVATURE_METHODS)),
            point=init_state("cv_point", "boundary", options=list(CURVATURE_POINTS)),
            # h = ξ by default: on digits-lenet only there is S_c more curved than random (docs/reproduction.md)
            scale=init_state("cv_scale", "xi", options=H_SCALES),
            h=init_state("cv_h", round(h_default, 4), float, **H_INPUT),
            heldout=init_state("cv_heldout", 50, int, **CV_HELDOUT),
        )

    def share(self) -> None:
        share(cv_n=self.n, cv_m=self.m, cv_method=self.method, cv_point=self.point, cv_scale=self.scale, cv_h=self.h)

    def settings(self) -> CurvatureSettings:
        """Fig. 7a's protocol: the first ``heldout`` test images, 10 random directions per m, seed 0."""
        return CurvatureSettings(
            points=PointSplit(self.n, self.heldout, 0, 0),
            m_max=self.m,
            method=self.method,
            scale=_h_scale(self.scale, self.h),
            point=self.point,
            n_directions=10,
        )


# ------------------------------------------------------------------ Cross-sections
@dataclass(frozen=True)
class CrossSectionView:
    """The "Cross-sections" view: direction kind, vector index / dimension, seed, window, grid."""

    direction: str
    vec: int
    sub_m: int
    seed: int
    extent: float
    resolution: int

    @classmethod
    def read(cls, m_max: int) -> CrossSectionView:
        index = dict(min_value=1, max_value=m_max)  # vec and sub_m: 1 … m
        return cls(
            direction=init_state("dir", "random", options=list(DIRECTIONS)),
            vec=init_state("vec", 1, int, **index),
            sub_m=init_state("sub_m", 1, int, **index),
            seed=init_state("seed", 0, int, **SEED),
            extent=init_state("extent", 3.0, float, **EXTENT),
            resolution=init_state("res", 256, int, **RESOLUTION),
        )

    def share(self) -> None:
        share(
            seed=self.seed,
            extent=float(self.extent),
            res=self.resolution,
            dir=self.direction,
            vec=self.vec,
            sub_m=self.sub_m,
        )

    def settings(self, curvature: CurvatureSettings, h: float | None) -> SectionSettings:
        """The section, with the curvature along v measured by the subspace's estimator at ``h``."""
        return SectionSettings(
            direction=self.direction,
            vec=self.vec,
            sub_m=self.sub_m,
            seed=self.seed,
            extent_factor=float(self.extent),
            resolution=self.resolution,
            method=curvature.method,
            h=h,
            point=curvature.point,
        )

    def label(self) -> str:
        """How the second axis direction is named in the figure and captions."""
        return {
            "random": f"random v (seed {self.seed})",
            "sc": f"S_c eigenvector {self.vec}",
            "sc_mix": f"random v in S_c, m = {self.sub_m} (seed {self.seed})",
            "sf": f"S_f vector {self.vec}",
            "uap": "the universal perturbation v",
        }[self.direction]


# ------------------------------------------------------------------ Universal perturbations
@dataclass(frozen=True)
class UniversalView:
    """The "Universal perturbations" view (keys ``uv_*``); ``share_pct`` is 50 or 80 (%)."""

    n: int
    m: int
    samples: int
    share_pct: int
    scale: str
    h: float
    heldout: int
    uap: int

    @classmethod
    def read(cls, h_default: float) -> UniversalView:
        return cls(
            n=init_state("uv_n", 100, int, **CV_N),
            m=init_state("uv_m", 20, int, **CV_M),
            samples=init_state("uv_samples", 10, int, **UV_SAMPLES),
            # 80 % share and h = ξ by default: where S_c's random vectors out-fool S_f's on the MNIST LeNet (the
            # default network once trained; 83.7 % vs 69.6 %, docs/reproduction-universal.md, issue 13)
            share_pct=init_state("uv_share", 80, int, **UV_SHARES),
            scale=init_state("uv_scale", "xi", options=H_SCALES),
            h=init_state("uv_h", round(h_default, 4), float, **H_INPUT),
            heldout=init_state("uv_heldout", 1000, int, **UV_POINTS),
            uap=init_state("uv_uap", 1000, int, **UV_POINTS),
        )

    def share(self) -> None:
        share(
            uv_n=self.n, uv_m=self.m, uv_samples=self.samples, uv_share=self.share_pct, uv_scale=self.scale, uv_h=self.h
        )

    def settings(self) -> UniversalSettings:
        """Fig. 7b's protocol: S_c from the same estimation points as Curvature vs m (n, seed 0),
        ξ = 1/5 of the noise norm fooling ``share_pct`` %, h = ξ at that share for the "xi" preset."""
        share_ = self.share_pct / 100
        return UniversalSettings(
            points=PointSplit(self.n, self.heldout, self.uap, 0),
            m_max=self.m,
            scale=_h_scale(self.scale, self.h, noise_share=share_),
            share=share_,
            n_samples=self.samples,
        )


# ------------------------------------------------------------------ Compare networks
@dataclass(frozen=True)
class CompareView:
    """The "Compare networks" view (keys ``cmp_*``): networks A and B, m compared, n points, the scale h;
    the transferred sections' direction k, seed and resolution; the fooling matrix's noise share (``noise_share``),
    vectors per row and extra networks ``nets``."""

    a: str
    b: str
    m: int
    n: int
    scale: str
    h: float
    k: int
    seed: int
    resolution: int
    noise_share: float
    vectors: int
    nets: tuple

    @classmethod
    def read(cls, names: list[str], sidebar_model: str, dataset: str, d: int, h_default: float) -> CompareView:
        """The view from the session (the URL on first use). A follows the sidebar's network whenever the
        sidebar changes, otherwise it keeps its own value; B defaults to another architecture or seed."""
        ss = st.session_state
        init_state("cmp_a", sidebar_model, options=names)
        if ss.get("_cmp_sidebar") not in (None, sidebar_model) or ss["cmp_a"] not in names:
            ss["cmp_a"] = sidebar_model if sidebar_model in names else names[0]
        ss["_cmp_sidebar"] = sidebar_model
        a = ss["cmp_a"]
        b_default = next(
            (c for c in (f"{dataset}-nin", f"{a}-seed1", f"{dataset}-lenet-seed1") if c in names and c != a), None
        ) or next(nm for nm in names if nm != a)
        init_state("cmp_b", b_default)
        if ss["cmp_b"] not in names or ss["cmp_b"] == a:
            ss["cmp_b"] = b_default
        b = ss["cmp_b"]
        if "cmp_nets" not in ss:
            ss["cmp_nets"] = [t for t in param("cmp_nets", "").split(",") if t]
        ss["cmp_nets"] = [t for t in ss["cmp_nets"] if t in names and t not in (a, b)]
        return cls(
            a=a,
            b=b,
            m=init_state("cmp_m", 10, int, **cls.m_bounds(d)),
            n=init_state("cmp_n", 100, int, **CMP_N),
            scale=init_state("cmp_scale", "authors", options=H_SCALES),
            h=init_state("cmp_h", round(h_default, 4), float, **H_INPUT),
            k=init_state("cmp_k", 1, int, **CMP_DIRECTION),
            seed=init_state("cmp_seed", 0, int, **SEED),
            resolution=init_state("cmp_res", 128, int, **RESOLUTION),
            noise_share=init_state("cmp_share", 0.5, float, **CMP_SHARES),
            vectors=init_state("cmp_vectors", 20, int, **CMP_VECTORS),
            nets=tuple(ss["cmp_nets"]),
        )

    @staticmethod
    def m_bounds(d: int) -> dict:
        """m: directions compared (slider), at most the directions estimated and below d."""
        return dict(min_value=1, max_value=max(1, min(CMP_M_ESTIMATED, d - 1)))

    def share(self) -> None:
        """Write the view into the URL (uploads, which live in one session only, are left out)."""
        share(
            **({"cmp_a": self.a} if shareable(self.a) else {}),
            **({"cmp_b": self.b} if shareable(self.b) else {}),
            cmp_m=self.m,
            cmp_n=self.n,
            cmp_scale=self.scale,
            cmp_h=float(self.h),
            cmp_k=self.k,
            cmp_seed=self.seed,
            cmp_res=self.resolution,
            cmp_share=self.noise_share,
            cmp_vectors=self.vectors,
            cmp_nets=",".join(nm for nm in self.nets if shareable(nm)),
        )

    def settings(self) -> CompareSettings:
        """Fig. 10's protocol: both networks on the same n training points, h = ξ/2 for the "xi" preset."""
        return CompareSettings(
            points=PointSplit(self.n, CMP_HELDOUT, 0, 0),
            m_estimated=CMP_M_ESTIMATED,
            scale=_h_scale(self.scale, self.h, noise_share=0.5, xi_factor=0.5),
            n_baseline=200,
        )
