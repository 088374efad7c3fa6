"""Geometry in 2-D: toy data in the plane, a flat or curved model, DeepFool step by step, the normal
r(x), the osculating circle, and universal vectors — the flat model's S_f against the curved
model's S_c (DESIGN §9; ICLR 2018 Fig. 3; the talk's "flat model" / "curved model" slides).

The view (:class:`pages.ui.robust_views.LabView`, :class:`pages.ui.robust_views.LabVectorView`) →
:class:`geometry.study.toy2d.LabSettings` → background jobs (the toy model and the lab; the universal
vectors) → figures.
"""

from __future__ import annotations

import streamlit as st

from geometry.errors import AtlasError
from geometry.plotting import lab_figure, universal_figure
from geometry.study.toy2d import LabStudy
from geometry.toy2d import TOY_DATASETS, TOY_MODELS, nearest_point, vector_from_click
from pages.ui import downloads as _downloads
from pages.ui import layout as _layout
from pages.ui import robust_views as _views
from pages.ui import tour as _tour
from pages.ui.robust_views import G2_KINDS, G2_XI, LabVectorView, LabView
from pages.ui.sidebar import user_errors


def _clicked(chart_key: str) -> tuple[float, float] | None:
    """(x1, x2) of the point just clicked on a chart drawn with ``on_select`` (None: a deselection)."""
    points = st.session_state[chart_key]["selection"]["points"]
    if not points:
        return None
    return float(points[0]["x"]), float(points[0]["y"])


def _click_sets_point() -> None:
    """on_select of the lab figure: the clicked data point (the nearest one) becomes x."""
    click = _clicked("g2_click_pt")
    if click is not None:
        st.session_state.g2_pt = nearest_point(click, _views.lab_data_points(LabView.read()))


def _click_sets_v() -> None:
    """on_select of the universal figure: v = click − the data's centroid (where v is drawn from)."""
    click = _clicked("g2_click_v")
    if click is None:
        return
    try:
        angle, norm = vector_from_click(
            click,
            _views.lab_data_points(LabView.read()).mean(0),
            norm_range=(G2_XI["min_value"], G2_XI["max_value"]),
            norm_step=G2_XI["step"],
        )
    except AtlasError:
        return  # a click exactly on the centroid: no direction, keep v
    st.session_state.g2_dir, st.session_state.g2_ang, st.session_state.g2_xi = "custom", int(angle), norm


def _universal_section(view: LabView, lab: LabStudy) -> None:
    """The universal-vector controls and their three figures, run as a fragment (issue 14: latency): a change
    of v's direction, ‖v‖ or angle, or a click on the figure, reruns only this function — the lab figure
    above is neither rebuilt nor re-sent. The shareable URL is updated from here too."""
    with user_errors():
        st.subheader("Universal vectors")
        st.caption(
            "One vector v added to every point: the black rings are the points whose label it changes. Choose its "
            "direction from the model's flat subspace S_f (the top singular vector of the normals r(x)/‖r(x)‖), its "
            "curved subspace S_c (the most positively curved direction of the average boundary Hessian), or set your "
            "own: with the angle and ‖v‖ sliders, or by clicking in the plot below — v then runs from the data's "
            "centroid to the click. (Dragging the arrow itself is not possible: Streamlit's Plotly charts report "
            "clicks and selections, not drags, without a custom component.)"
        )
        vector = LabVectorView.read()
        u1, u2, u3 = st.columns(3)
        u1.radio("direction of v", list(G2_KINDS), format_func=lambda k: G2_KINDS[k], key="g2_dir")
        u2.slider("‖v‖ = ξ (data units)", **G2_XI, key="g2_xi")
        u3.slider("angle of my own v (degrees)", **_views.G2_ANGLE, key="g2_ang", disabled=vector.kind != "custom")
        panels = _views.lab_panels(view, vector)  # a background job
        st.plotly_chart(
            universal_figure(lab, panels.panel, title=f"v along {vector.kind}", clickable=True),
            width="stretch",
            key="g2_click_v",
            on_select=_click_sets_v,
            selection_mode="points",
        )

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
            col.plotly_chart(
                universal_figure(
                    other,
                    p,
                    title=f"{TOY_MODELS[other.settings.model].split(' (')[0]}, v along {p.kind}",
                    height=440,
                ),
                width="stretch",
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


def _metrics(lab: LabStudy) -> None:
    (right,) = _layout.metric_columns(1)
    right.metric(
        "‖r(x)‖", f"{lab.distance:.3f}" if lab.converged else "—", help="DeepFool's distance from x to the boundary."
    )
    right.metric("DeepFool steps", f"{len(lab.steps)}")
    if lab.osculating is not None:
        osc = lab.osculating
        right.metric(
            "κ at z = x + r(x)",
            f"{osc.kappa:+.3f}",
            help="Normal curvature of the boundary along its tangent (1/distance); positive: the other class wraps "
            f"around x. Method: {osc.method}" + (f", h = {osc.h:g}" if osc.h else ""),
        )
        right.metric(
            "radius 1/|κ|",
            "∞ (straight)" if osc.radius == float("inf") else f"{osc.radius:.3f}",
            help="Radius of the osculating circle (purple): the circle that best fits the boundary at z.",
        )
    if lab.accuracy is not None:
        right.metric("training accuracy", f"{lab.accuracy:.0%}")


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
            help="The point whose DeepFool path, normal r(x) and osculating circle are drawn.",
        )
        lab = _views.lab(view.settings())  # a background job: the toy model and the lab at x
        left = st.container()  # the chart at full width, its numbers in one wrapping row below (legible at 800 px)
        left.plotly_chart(
            lab_figure(lab, clickable=True),
            width="stretch",
            key="g2_click_pt",
            on_select=_click_sets_point,
            selection_mode="points",
        )
        left.caption("Click a point of the plot to make it x (the nearest data point is taken).")
        _metrics(lab)
        if lab.note:
            st.info(lab.note)
        st.caption(
            "Dotted grey lines: the linearised boundary of each DeepFool step (the line the step jumps to). On a flat "
            "boundary one step lands on it; where it curves toward x, the linearised step overshoots; where it curves "
            "away, the iterates creep up on it."
        )
        st.fragment(_universal_section)(view, lab)  # wrapped here: importing the page calls no st. function
    view.share(LabVectorView.read())


if __name__ == "__main__":  # run as a file by st.Page("pages/geometry_2d.py"); st.Page(render) imports it
    render()
