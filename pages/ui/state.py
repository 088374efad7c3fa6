"""View state ⇄ URL: one small typed view per page, read from the session, turned into the study's
settings object (:mod:`geometry.study`).

The URL is kept by Streamlit itself: each widget that defines a view is drawn with
``bind="query-params"`` (:func:`bound`), so its value is its query parameter, a value at its default is
left out of the link, and a change replaces the browser's history entry instead of pushing one (the
Back button then leaves the page instead of stepping through its reruns). Option widgets with a
``format_func`` are the exception (a bound one writes its label): :func:`option_value` and
:func:`synced` keep their short values in the URL, written only when the user changes them. What this module adds is
the coercion Streamlit does not do: a link's out-of-range number is clamped into the widget's bounds
(Streamlit would drop it) and a value kept from an earlier run is re-checked where bounds move (the
datapoint index with the dataset, a direction index with m) — :func:`widget_value`.

Every widget's bounds are defined once here: the widget is drawn with them and :func:`widget_value` clamps
the URL's value into them, so a link cannot hold a value the widget refuses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import streamlit as st

from geometry.study import (
    RX_LABELS,
    RX_PROTOCOLS,
    CompareSettings,
    CurvatureSettings,
    HScale,
    PointSplit,
    SectionSettings,
    UniversalSettings,
)

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
#: How r(x) is computed (radio options, issue 23 item 2): box-constrained DeepFool, or the paper's protocol.
RX_OPTIONS = {rx: RX_LABELS[rx] for rx in RX_PROTOCOLS}
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
#: Universal: ξ, the norm of the universal vectors — a share of the median ‖x‖₂ ("0.04": CVPR 2017's ratio, the
#: default), or "noise": 1/5 of the random-noise norm fooling the share above (ICLR 2018 Fig. 7b). Issue 23, item 3.
UV_XI = {
    "0.04": "4 % of ‖x‖ (CVPR 2017's ratio: ξ = 2000 on ImageNet images of ‖x‖ ≈ 5·10⁴)",
    "0.1": "10 % of ‖x‖",
    "0.2": "20 % of ‖x‖",
    "0.5": "50 % of ‖x‖",
    "noise": "1/5 of the noise norm that fools the share below (ICLR 2018 Fig. 7b)",
}


def xi_option(xi_ratio: float | None) -> str:
    """The ξ option (a key of :data:`UV_XI`) of a settings' ``xi_ratio``."""
    return "noise" if xi_ratio is None else repr(float(xi_ratio))


UV_POINTS = dict(min_value=10, max_value=10_000)
#: Compare: S_c / S_f are estimated with this many directions (the Curvature page's default m).
CMP_M_ESTIMATED = 20
CMP_HELDOUT = 200  # held-out test points of the fooling matrix (and the noise norm)
CMP_N = dict(min_value=20, max_value=500, step=10)
CMP_DIRECTION = dict(min_value=1, max_value=CMP_M_ESTIMATED, step=1)
CMP_SHARES = dict(options=[0.5, 0.8, 0.9])
CMP_VECTORS = dict(min_value=1, max_value=100)

_CURVATURE, _UNIVERSAL = CurvatureSettings(), UniversalSettings()  # the protocols' defaults (one place)

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
    """Write values into the URL, in one update and only those that changed, for views not (yet) drawn
    with bound widgets (:func:`bound`). Each change pushes a browser history entry (Streamlit's
    ``page_info_changed``): prefer :func:`bound`, whose changes replace the entry."""
    changed = {k: str(v) for k, v in values.items() if st.query_params.get(k) != str(v)}
    if changed:
        st.query_params.update(changed)


# ------------------------------------------------------------------ widgets bound to the URL
BIND = "query-params"
_DEFAULTS = "_bound_defaults"  # session key: {query key: the default its widget was last drawn with}


def bound(key: str, default: Any, options: Sequence[Any] | None = None) -> dict[str, Any]:
    """The keyword arguments that bind a widget to the URL: ``key`` (also the query parameter's name),
    its default (``value=``, or ``index=`` into ``options`` for a selectbox / radio) and
    ``bind="query-params"``. Streamlit then keeps the query parameter: absent at the default, set
    (replacing the history entry) when the user changes the value, read on a link's first load.

    Raises ValueError if ``default`` is not among ``options``.
    """
    st.session_state.setdefault(_DEFAULTS, {})[key] = default
    if options is not None:
        return dict(key=key, index=list(options).index(default), bind=BIND)
    return dict(key=key, value=default, bind=BIND)


def widget_value(key: str, default: Any, cast: type = str, **bounds: Any) -> Any:
    """The value the widget bound to ``key`` shows in this run, made valid for it (``bounds``: the
    widget's ``min_value`` / ``max_value`` / ``step`` / ``options``, as for :func:`coerce`).

    On a link's first load the URL's value is coerced and put into the session (Streamlit's binding
    would drop an out-of-range number; a valid one it seeds the same way). Streamlit then removes the
    refused raw value from the URL: the link shows the value again once the user moves the widget. A value kept from an
    earlier run is re-checked, since some bounds move (the datapoint index with the dataset, a
    direction index with m). Without either, the widget's default.
    """
    ss = st.session_state
    if key in ss:
        value = ss[key]
        valid = coerce(value, default, cast, **bounds)
        if valid != value or type(valid) is not type(value):
            ss[key] = valid
        return ss[key]
    raw = st.query_params.get(key)
    if raw is None:
        return default
    ss[key] = coerce(raw, default, cast, **bounds)
    return ss[key]


_WRITTEN = "_url_written"  # session key: {query key: the URL value last read or written for an option widget}


def option_value(key: str, default: Any, options: Sequence[Any] | None = None, cast: type = str, **bounds: Any) -> Any:
    """The value of an option widget (selectbox / radio with a ``format_func``) kept in the URL by the app,
    not by Streamlit's binding: a bound option widget writes its *label* into the URL, and some labels
    hold numbers of the network (the authors' h), so a link would not survive a change of network.

    The session value is set before the widget is drawn (from the URL on first use, else ``default``);
    when the URL's value moved since it was last read or written (Back / Forward, a link), the URL
    wins. The widget writes the URL only when the user changes it (:func:`synced`): one history entry
    per change, none per rerun, and Back undoes the change.

    Integer number inputs take this path too (``options`` None, ``bounds`` their min / max / step):
    Streamlit 1.67's binding raises OverflowError on a link such as ``?i=inf`` before any coercion.
    """
    if options is not None:
        bounds = {**bounds, "options": options}
    ss = st.session_state
    written = ss.setdefault(_WRITTEN, {})
    ss.setdefault(_DEFAULTS, {})[key] = default
    raw = st.query_params.get(key)
    if key not in ss or raw != written.get(key):
        ss[key] = coerce(raw, default, cast, **bounds)
        written[key] = raw
    else:  # the options or bounds may have moved
        valid = coerce(ss[key], default, cast, **bounds)
        if valid != ss[key] or type(valid) is not type(ss[key]):
            ss[key] = valid
    return ss[key]


def _write_option(key: str) -> None:
    ss = st.session_state
    value = ss.get(key)
    want = None if value == ss.get(_DEFAULTS, {}).get(key) or not shareable(str(value)) else str(value)
    if want is None:
        st.query_params.pop(key, None)
    else:
        st.query_params[key] = want
    ss.setdefault(_WRITTEN, {})[key] = want


def synced(key: str) -> dict[str, Any]:
    """The keyword arguments of an option widget whose value :func:`option_value` keeps in the URL: its
    ``key`` and an ``on_change`` that writes the new value (absent at the default)."""
    return dict(key=key, on_change=_write_option, args=(key,))


def seed_flag(key: str) -> None:
    """Read a toggle's ``on`` / ``off`` from a link written before toggles were bound to the URL (a
    bound toggle spells its value ``true`` / ``false`` and would drop the old spelling)."""
    raw = st.query_params.get(key)
    if key not in st.session_state and raw in ("on", "off"):
        st.session_state[key] = raw == "on"


def carried(keys: Iterable[str]) -> dict[str, str]:
    """The session's non-default values of ``keys`` (bound widgets drawn on several pages), as query
    parameters for a link to another page: the link carries the view there, so the page's bound
    widgets read it from the URL instead of Streamlit writing it after the switch (one more history
    entry per value)."""
    ss = st.session_state
    defaults = {**CurvatureView.DEFAULTS, **ss.get(_DEFAULTS, {})}  # the page may not have run yet
    out = {}
    for key in keys:
        if key in ss and (key not in defaults or ss[key] != defaults[key]) and shareable(str(ss[key])):
            out[key] = str(ss[key])
    return out


def shareable(name: str) -> bool:
    """Whether a network name may go into the URL (zoo networks; uploads live in one session only)."""
    return not name.startswith(USER_PREFIX)


def _h_scale(preset: str, h: float, **xi) -> HScale:
    return HScale(preset, value=float(h) if preset == "custom" else None, **(xi if preset == "xi" else {}))


# ------------------------------------------------------------------ Curvature vs m (shared with Cross-sections)
#: Session keys of the curvature settings: the Cross-sections page draws the same widgets so that
#: both pages use one S_c / S_f and one curvature estimator.
CURVATURE_KEYS = ("cv_n", "cv_m", "cv_method", "cv_scale", "cv_h", "cv_point", "cv_heldout", "cv_rx")


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
    rx: str = _CURVATURE.rx

    #: the widgets' defaults (cv_h: the network's authors' h, see :meth:`read`)
    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        cv_n=_CURVATURE.points.n_estimate,
        cv_m=_CURVATURE.m_max,
        cv_method=_CURVATURE.method,
        cv_point=_CURVATURE.point,
        # h = ξ by default: on digits-lenet only there is S_c more curved than random (docs/reproduction.md)
        cv_scale=_CURVATURE.scale.preset,
        cv_heldout=_CURVATURE.points.n_heldout,
        # box-constrained DeepFool by default: z = x + r(x) inside the pixel box (issue 23, item 2)
        cv_rx=_CURVATURE.rx,
    )

    @classmethod
    def read(cls, h_default: float) -> CurvatureView:
        """The view from the session (the URL on first use), every value valid for its widget."""
        d = cls.DEFAULTS
        return cls(
            n=widget_value("cv_n", d["cv_n"], int, **CV_N),
            m=widget_value("cv_m", d["cv_m"], int, **CV_M),
            method=option_value("cv_method", d["cv_method"], list(CURVATURE_METHODS)),
            point=option_value("cv_point", d["cv_point"], list(CURVATURE_POINTS)),
            scale=option_value("cv_scale", d["cv_scale"], H_SCALES),
            h=widget_value("cv_h", round(h_default, 4), float, **H_INPUT),
            heldout=init_state("cv_heldout", d["cv_heldout"], int, **CV_HELDOUT),  # URL only, no widget
            rx=option_value("cv_rx", d["cv_rx"], list(RX_OPTIONS)),
        )

    def settings(self) -> CurvatureSettings:
        """Fig. 7a's protocol: the first ``heldout`` test images, 10 random directions per m, seed 0."""
        return CurvatureSettings(
            points=PointSplit(self.n, self.heldout, 0, 0),
            m_max=self.m,
            method=self.method,
            scale=_h_scale(self.scale, self.h),
            point=self.point,
            n_directions=10,
            rx=self.rx,
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

    DEFAULTS: ClassVar[dict[str, Any]] = dict(dir="random", vec=1, sub_m=1, seed=0, extent=3.0, res=256)

    @classmethod
    def read(cls, m_max: int) -> CrossSectionView:
        index = dict(min_value=1, max_value=m_max)  # vec and sub_m: 1 … m (bounds that move with m)
        d = cls.DEFAULTS
        return cls(
            direction=option_value("dir", d["dir"], list(DIRECTIONS)),
            vec=widget_value("vec", d["vec"], int, **index),
            sub_m=widget_value("sub_m", d["sub_m"], int, **index),
            seed=option_value("seed", d["seed"], None, int, **SEED),
            extent=widget_value("extent", d["extent"], float, **EXTENT),
            resolution=widget_value("res", d["res"], int, **RESOLUTION),
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
            rx=curvature.rx,
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
    rx: str = _UNIVERSAL.rx
    xi: str = xi_option(_UNIVERSAL.xi_ratio)

    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        uv_n=_UNIVERSAL.points.n_estimate,
        uv_m=_UNIVERSAL.m_max,
        uv_samples=_UNIVERSAL.n_samples,
        # 80 % share and h = ξ by default: where S_c's random vectors out-fool S_f's on the MNIST LeNet (the
        # default network once trained; 83.7 % vs 69.6 %, docs/reproduction-universal.md, issue 13)
        uv_share=round(100 * _UNIVERSAL.share),
        uv_scale=_UNIVERSAL.scale.preset,
        uv_heldout=_UNIVERSAL.points.n_heldout,
        uv_uap=_UNIVERSAL.points.n_uap,
        uv_rx=_UNIVERSAL.rx,
        # ξ = 4 % of ‖x‖ by default (CVPR 2017's ratio): "small" means small (issue 23, item 3)
        uv_xi=xi_option(_UNIVERSAL.xi_ratio),
    )

    @classmethod
    def read(cls, h_default: float) -> UniversalView:
        d = cls.DEFAULTS
        return cls(
            n=widget_value("uv_n", d["uv_n"], int, **CV_N),
            m=widget_value("uv_m", d["uv_m"], int, **CV_M),
            samples=widget_value("uv_samples", d["uv_samples"], int, **UV_SAMPLES),
            share_pct=option_value("uv_share", d["uv_share"], UV_SHARES["options"], int),
            scale=option_value("uv_scale", d["uv_scale"], H_SCALES),
            h=widget_value("uv_h", round(h_default, 4), float, **H_INPUT),
            heldout=init_state("uv_heldout", d["uv_heldout"], int, **UV_POINTS),  # URL only, no widget
            uap=init_state("uv_uap", d["uv_uap"], int, **UV_POINTS),  # URL only, no widget
            rx=option_value("uv_rx", d["uv_rx"], list(RX_OPTIONS)),
            xi=option_value("uv_xi", d["uv_xi"], list(UV_XI)),
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
            rx=self.rx,
            xi_ratio=None if self.xi == "noise" else float(self.xi),
        )


# ------------------------------------------------------------------ Compare networks
@dataclass(frozen=True)
class CompareView:
    """The "Compare networks" view (keys ``cmp_*``): networks A and B, m compared, n points, the scale h;
    the transferred sections' direction k, seed and resolution; the fooling matrix's noise share (``noise_share``),
    vectors per row and extra networks ``nets``; the r(x) protocol ``rx`` of every boundary point on the page."""

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
    rx: str = CompareSettings().rx

    #: the bound widgets' defaults (A, B and the extra networks are written by :meth:`share`: uploads stay out)
    DEFAULTS: ClassVar[dict[str, Any]] = dict(
        cmp_m=10,
        cmp_n=CompareSettings().points.n_estimate,
        cmp_scale=CompareSettings().scale.preset,
        cmp_k=1,
        cmp_seed=0,
        cmp_res=128,
        cmp_share=0.5,
        cmp_vectors=20,
        # box-constrained DeepFool by default: both networks' z = x + r(x) inside the pixel box (issue 23, item 2)
        cmp_rx=CompareSettings().rx,
    )

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
        df = cls.DEFAULTS
        return cls(
            a=a,
            b=b,
            m=widget_value("cmp_m", df["cmp_m"], int, **cls.m_bounds(d)),
            n=widget_value("cmp_n", df["cmp_n"], int, **CMP_N),
            scale=option_value("cmp_scale", df["cmp_scale"], H_SCALES),
            h=widget_value("cmp_h", round(h_default, 4), float, **H_INPUT),
            k=option_value("cmp_k", df["cmp_k"], None, int, **CMP_DIRECTION),
            seed=option_value("cmp_seed", df["cmp_seed"], None, int, **SEED),
            resolution=widget_value("cmp_res", df["cmp_res"], int, **RESOLUTION),
            noise_share=option_value("cmp_share", df["cmp_share"], CMP_SHARES["options"], float),
            vectors=widget_value("cmp_vectors", df["cmp_vectors"], int, **CMP_VECTORS),
            nets=tuple(ss["cmp_nets"]),
            rx=option_value("cmp_rx", df["cmp_rx"], list(RX_OPTIONS)),
        )

    @staticmethod
    def m_bounds(d: int) -> dict:
        """m: directions compared (slider), at most the directions estimated and below d."""
        return dict(min_value=1, max_value=max(1, min(CMP_M_ESTIMATED, d - 1)))

    def share(self) -> None:
        """Write the networks A, B and the extra ones into the URL (uploads, which live in one session only, are
        left out; the other settings are bound widgets)."""
        share(
            **({"cmp_a": self.a} if shareable(self.a) else {}),
            **({"cmp_b": self.b} if shareable(self.b) else {}),
            cmp_nets=",".join(nm for nm in self.nets if shareable(nm)),
        )

    def settings(self) -> CompareSettings:
        """Fig. 10's protocol: both networks on the same n training points, h = ξ/2 for the "xi" preset."""
        return CompareSettings(
            points=PointSplit(self.n, CMP_HELDOUT, 0, 0),
            m_estimated=CMP_M_ESTIMATED,
            scale=_h_scale(self.scale, self.h, noise_share=0.5, xi_factor=0.5),
            n_baseline=200,
            rx=self.rx,
        )
