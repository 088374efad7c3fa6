"""Geometry in 2-D: toy data in the plane, a flat or curved model, DeepFool step by step, the normal
r(x), the osculating circle, the certificate ladder at x against the exact distance (issue 21 item 5), and
universal vectors — the flat model's S_f against the curved
model's S_c (DESIGN §9; ICLR 2018 Fig. 3; the talk's "flat model" / "curved model" slides).

The view (:class:`pages.ui.robust_views.LabView`, :class:`pages.ui.robust_views.LabVectorView`) →
:class:`geometry.study.toy2d.LabSettings` → background jobs (the toy model and the lab; the universal
vectors) → figures.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import streamlit as st

from geometry import study
from geometry.errors import InvalidInputError
from geometry.plotting import lab_figure, ladder_figure, universal_figure
from geometry.regions2d import BoundarySegments, boundary_segments, linear_regions
from geometry.study.readings import ladder_reading
from geometry.study.toy2d import CertificateLadder, LabStudy, certificate_ladder, ladder_window, universal_panel
from geometry.toy2d import TOY_DATASETS, TOY_MODELS, decision_regions
from pages.ui import downloads as _downloads
from pages.ui import layout as _layout
from pages.ui import masking as _masking
from pages.ui import robust_views as _views
from pages.ui import tour as _tour
from pages.ui.lab2d.lab2d import lab2d, lab_box
from pages.ui.robust_views import G2_XI, LabVectorView, LabView
from pages.ui.sidebar import user_errors
from pages.ui.state import param, share

#: Session / URL key of a dragged x ("x1,x2", data units); empty or absent: x is the data point g2_pt.
X_KEY = "g2_x"


#: the lab canvas' height (CSS px): normal, and in present mode (1.5× text under the tour's banner at 1280 × 800)
LAB_HEIGHT = 520
LAB_HEIGHT_PRESENT = 460


def _field(state: Any, name: str) -> Any:
    """A value the component reported (its session-state entry is a dict-like result)."""
    if state is None:
        return None
    getter = getattr(state, "get", None)
    return getter(name) if callable(getter) else getattr(state, name, None)


def _x_dragged() -> None:
    """on_x_change of the lab component: keep the dragged x (session and URL)."""
    x = _field(st.session_state.get("g2_lab"), "x")
    if x is not None:
        st.session_state[X_KEY] = f"{float(x[0])!r},{float(x[1])!r}"


def _point_moved() -> None:
    """The point slider moved: x is that data point again (the dragged x is dropped, in the URL too)."""
    st.session_state[X_KEY] = ""


def _v_changed() -> None:
    """on_v_change of the universal component: its direction, ξ and angle become the view's (URL, side panels)."""
    v = _field(st.session_state.get("g2_uni"), "v")
    if not v:
        return
    lo, hi = G2_XI["min_value"], G2_XI["max_value"]
    st.session_state.g2_dir = str(v["kind"])
    st.session_state.g2_xi = round(min(max(float(v["xi"]), lo), hi), 10)
    st.session_state.g2_ang = round(float(v["angle"]))


def _start_x(lab: LabStudy) -> list[float]:
    """Where x starts: the dragged x kept in the session / URL (inside the region box), else the data point."""
    if X_KEY not in st.session_state:
        st.session_state[X_KEY] = param(X_KEY, "", str)
    raw = str(st.session_state.get(X_KEY) or "")
    try:
        x = [float(t) for t in raw.split(",")]
    except ValueError:
        x = []
    box = lab_box(lab.data.x.numpy())
    if len(x) != 2 or not all(math.isfinite(t) for t in x):
        st.session_state[X_KEY] = ""
        return [float(lab.x[0]), float(lab.x[1])]
    return [min(max(x[0], box[0]), box[1]), min(max(x[1], box[2]), box[3])]


def _directions(view: LabView, lab: LabStudy) -> dict[str, np.ndarray]:
    """Unit vectors of S_f and S_c (:func:`geometry.study.toy2d.universal_panel` at ξ = 1) for the component,
    which picks the sign and scales by ξ itself; kept in memory per data and model (not per point)."""

    def compute() -> dict[str, np.ndarray]:
        return {k: universal_panel(lab.clf, lab.data, kind=k, xi=1.0, model=view.model).v for k in ("S_f", "S_c")}

    return study.cached_result("app-toy-directions", {"settings": view.settings(point=0).key()}, compute, disk=False)


def _universal_section(view: LabView, lab: LabStudy) -> None:
    """The universal vector (the component: v's direction, ‖v‖ and angle controls and a draggable arrow, all
    drawn in the browser) and the flat-vs-curved figures, run as a fragment (issue 14: latency): the end of a
    drag of v or of a control change reruns only this function, for the side panels and the URL."""
    with user_errors():
        st.subheader("Universal vectors")
        st.caption(
            "One vector v added to every point: the black rings are the points whose label it changes. Choose its "
            "direction from the model's flat subspace S_f (the top singular vector of the normals r(x)/‖r(x)‖), its "
            "curved subspace S_c (the most positively curved direction of the average boundary Hessian), or set your "
            "own: drag the tip of the arrow (v runs from the data's centroid), or use the angle and ‖v‖ controls. "
            "The fooling rate is recomputed in your browser as you drag."
        )
        vector = LabVectorView.read()
        directions = _directions(view, lab)
        lab2d(
            lab.clf,
            lab.data.x.numpy(),
            model=view.model,
            key="g2_uni",
            mode="universal",
            h=lab.settings.h,
            resolution=lab.settings.resolution,
            directions=directions,
            kind=vector.kind,
            xi=vector.xi,
            angle=vector.angle,
            xi_range=(G2_XI["min_value"], G2_XI["max_value"], G2_XI["step"]),
            title=f"{lab.clf.name}: a universal vector v and the points it fools",
            scale=_layout.figure_scale(),  # present mode: the canvas' text, markers and lines grow with the page's
            on_change=_v_changed,
        )
        panels = _views.lab_panels(view, vector)  # a background job

        st.subheader("Flat model vs curved model (the talk)")
        st.caption(
            f"The same data and the same ‖v‖ = {vector.xi:g}: the linear model's universal *direction* S_f against a "
            "curved model's (smooth tanh MLP) most curved direction S_c. On a flat boundary only the points within ξ "
            "of the line, on the side v points away from, can be fooled; on a boundary that bends around the data a "
            "short vector fools points all along the curve where it bends toward them. Which one wins depends on the "
            "data and on ξ: try circles (curved around the inner class) against XOR blobs."
        )
        f1, f2 = st.columns(2)
        for col, (other, p) in ((f1, panels.flat), (f2, panels.curved)):
            _layout.chart(
                universal_figure(
                    other,
                    p,
                    title=f"{TOY_MODELS[other.settings.model].split(' (')[0]}, v along {p.kind}",
                    height=440,
                ),
                col,
            )
        _downloads.offer(
            "geometry_2d",
            None,
            {"lab": lab, "universal_vector": panels.panel},
            {
                "2-D lab": lambda: lab_figure(lab),
                "Universal vector": lambda: universal_figure(lab, panels.panel, title=f"v along {vector.kind}"),
            },
            lab.settings,
            title="2-D lab",
            report=False,
        )
        view.share(vector)


def _controls(n: int) -> None:
    """The data / model widgets (keys of :class:`pages.ui.robust_views.LabView`)."""
    c1, c2, c3, c4, c5 = st.columns([2, 2, 1.2, 1.2, 1])
    c1.selectbox("toy data", list(TOY_DATASETS), format_func=lambda k: TOY_DATASETS[k], key="g2_data")
    c2.selectbox(
        "model",
        list(TOY_MODELS),
        format_func=lambda k: TOY_MODELS[k],
        key="g2_model",
        help="The linear model and the analytic affine classifier have a flat boundary; the MLPs learn a curved one "
        "(ReLU: made of straight pieces, curvature measured by finite differences at scale h = 0.1; tanh: smooth, "
        "exact curvature); the analytic circle is curved by 1/R everywhere.",
    )
    c3.slider("points", **_views.G2_N, key="g2_n")
    c4.slider("noise", **_views.G2_NOISE, key="g2_noise")
    c5.number_input("seed", **_views.G2_SEED, key="g2_seed")


def _lab_section(view: LabView, lab: LabStudy) -> None:
    """The lab component (x, DeepFool's iterates, r(x) and the osculating circle, drawn and recomputed in the
    browser) and its notes, run as a fragment: the end of a drag of x reruns only this function, which
    keeps the dragged x in the URL."""
    x = _start_x(lab)
    lab2d(
        lab.clf,
        lab.data.x.numpy(),
        model=view.model,
        key="g2_lab",
        mode="lab",
        x=x,
        h=lab.settings.h,
        resolution=lab.settings.resolution,
        title=f"{lab.clf.name}: decision regions, DeepFool from x, r(x) and the osculating circle",
        scale=_layout.figure_scale(),  # present mode: the canvas' text, markers and lines grow with the page's
        # present mode at 1280 × 800: the canvas and the readout under it below the tour's banner, on the first screen
        height=LAB_HEIGHT_PRESENT if _tour.presenting() else LAB_HEIGHT,
        on_change=_x_dragged,
    )
    if lab.accuracy is not None:
        (cell,) = _layout.metric_columns(1)
        cell.metric("training accuracy", f"{lab.accuracy:.0%}")
    st.caption(
        "Drag x (the green star) anywhere, or press a spot to move it there: the regions, DeepFool's iterates "
        "x0 → x1 → … (dashed), r(x) (green arrow) and the osculating circle at z = x + r(x) (purple) are computed "
        "in your browser as you drag. Dotted grey lines: the linearised boundary of each DeepFool step (the line "
        "the step jumps to). On a flat boundary one step lands on it; where it curves toward x, the linearised "
        "step overshoots; where it curves away, the iterates creep up on it. The point slider puts x back on a "
        "data point."
    )
    _ladder_section(view, lab, x)
    _share_x()


def _segments(view: LabView, lab: LabStudy) -> BoundarySegments | None:
    """The model's exact decision boundary in the lab's box (linear regions), kept in memory per data and model;
    None for a model that is not piecewise affine (tanh, the analytic circle)."""

    def compute() -> BoundarySegments | None:
        try:
            return boundary_segments(linear_regions(lab.clf, lab_box(lab.data.x.numpy())))
        except InvalidInputError:
            return None

    return study.cached_result("app-toy-segments", {"settings": view.settings(point=0).key()}, compute, disk=False)


_KINDS = {"exact": "truth", "certificate": "certificate ≤ truth", "attack": "attack ≥ truth"}


def _ladder_table(ladder: CertificateLadder) -> list[dict[str, Any]]:
    """One row per rung: what it is, its radius and its ratio to the exact distance."""
    rows = []
    for r in ladder.rows:
        ratio = ladder.ratio(r)
        rows.append(
            {
                "bound": r.name,
                "radius (ℓ2)": None if math.isnan(r.radius) else r.radius,
                "÷ exact": None if math.isnan(ratio) else ratio,
                "kind": _KINDS[r.kind],
                "how": r.note,
            }
        )
    return rows


def _ladder_section(view: LabView, lab: LabStudy, x: list[float]) -> None:
    """The certificate ladder at x, computed on the server for the x of the last finished drag (or the data point).

    Why on the server: the certificates and the minimal-perturbation ensemble run the atlas's own code
    (:func:`geometry.study.toy2d.certificate_ladder`, about a second), and the exact distance needs the model's
    linear regions; computing them during a drag would stall it. The drag stays in the browser, and its end —
    which already reports x to the page (the component's ``x`` state) — reruns this fragment for the new x.
    """
    st.subheader("The certificate ladder at x")
    st.caption(
        "Every sound certificate is a disk around x that no point of the other class can enter, so it must sit "
        "inside the exact distance to the boundary (black circle, computed by enumerating the network's linear "
        "regions); every attack found a point of the other class, so its circle lies outside. Computed for x where "
        "your last drag ended."
    )
    segments = _segments(view, lab)
    key = {"settings": view.settings(point=0).key(), "x": [round(float(v), 12) for v in x]}

    def compute() -> CertificateLadder:
        return certificate_ladder(lab.clf, np.asarray(x), box=tuple(lab_box(lab.data.x.numpy())), segments=segments)

    with st.spinner("Computing the certificates, the attacks and the exact distance at x…"):
        ladder = study.cached_result("app-toy-ladder", key, compute, disk=False)
    _masking.banners({lab.clf.name: _masking.ladder_flags(ladder)}, number="certified radii")
    window = ladder_window(ladder)
    regions = decision_regions(lab.clf, window, resolution=120)
    _layout.chart(ladder_figure(ladder, window=window, regions=regions, segments=segments))
    st.markdown(ladder_reading(ladder))
    st.dataframe(
        _ladder_table(ladder),
        hide_index=True,
        column_config={
            "radius (ℓ2)": st.column_config.NumberColumn(format="%.4g", help="data units"),
            "÷ exact": st.column_config.NumberColumn(format="%.3f", help="radius / exact distance"),
        },
    )


def render() -> None:
    """The "Geometry in 2-D" page."""
    st.title("Geometry in 2-D")
    st.caption(
        "In the plane the decision boundary is a curve: DeepFool linearises the classifier at x, steps to that line, "
        "and repeats; r(x) ends on the boundary, orthogonal to it, and the osculating circle shows how the boundary "
        "bends there (positive κ: it bends around x). A flat boundary lets one *direction* fool every point on one "
        "side (Theorem 1); a boundary that curves around the data lets short vectors of the curved directions fool "
        "many points (Theorem 2)."
    )
    with st.expander(f"Guided tour: {len(_tour.TOUR)} views for a 10-minute lecture", expanded=False):
        st.markdown(_tour.tour_links())

    view = LabView.read()
    _controls(view.n)
    with user_errors():
        st.slider(
            "point x (index)",
            **LabView.point_bounds(view.n),
            key="g2_pt",
            on_change=_point_moved,
            help="The data point x starts from (drag it in the plot to move it anywhere).",
        )
        lab = _views.lab(view.settings())  # a background job: the toy model and the lab at x
        st.fragment(_lab_section)(view, lab)  # the end of a drag of x reruns only the fragment
        st.fragment(_universal_section)(view, lab)  # wrapped here: importing the page calls no st. function
    view.share(LabVectorView.read())
    _share_x()


def _share_x() -> None:
    """The dragged x in the URL (none: x is the data point g2_pt)."""
    if st.session_state.get(X_KEY):
        share(**{X_KEY: st.session_state[X_KEY]})
    elif X_KEY in st.query_params:
        del st.query_params[X_KEY]


if __name__ == "__main__":  # run as a script: see pages/ui/__init__.py (legacy pages/ discovery)
    from app import main

    main()
