"""Geometry in 2-D: toy data in the plane, a flat or curved model, DeepFool step by step, the normal
r(x), the osculating circle, and universal vectors — the flat model's S_f against the curved
model's S_c (DESIGN §9; ICLR 2018 Fig. 3; the talk's "flat model" / "curved model" slides)."""

from __future__ import annotations

import streamlit as st

from geometry.errors import AtlasError
from geometry.plotting import lab_figure, universal_figure
from geometry.study.toy2d import LabSettings, lab_study, toy_model, universal_panel
from geometry.toy2d import TOY_DATASETS, TOY_MODELS, direction_vector, nearest_point, vector_from_click
from pages.ui import downloads as _downloads
from pages.ui import layout as _layout
from pages.ui import tour as _tour
from pages.ui.sidebar import user_errors
from pages.ui.state import init_state, share

#: widget bounds (each defined once: drawn with them, URL values clamped into them)
G2_N = dict(min_value=40, max_value=600, step=20)
G2_NOISE = dict(min_value=0.0, max_value=0.5, step=0.01)
G2_SEED = dict(min_value=0, max_value=1000, step=1)
G2_ANGLE = dict(min_value=-180, max_value=180, step=1)
G2_XI = dict(min_value=0.05, max_value=2.0, step=0.01)
G2_KINDS = {"S_f": "S_f (flat: the normals' shared direction)", "S_c": "S_c (curved subspace)", "custom": "my own v"}
FLAT, CURVED = "linear", "mlp-tanh"

st.title("Geometry in 2-D")
st.caption(
    "In the plane the decision boundary is a curve: DeepFool linearises the classifier at x, steps to that line, and "
    "repeats; r(x) ends on the boundary, orthogonal to it, and the osculating circle shows how the boundary bends "
    "there (positive κ: it bends around x). A flat boundary lets one *direction* fool every point on one side "
    "(Theorem 1); a boundary that curves around the data lets short vectors of the curved directions fool many "
    "points (Theorem 2)."
)


with st.expander(f"Guided tour: {len(_tour.TOUR)} views for a 10-minute lecture", expanded=False):
    st.markdown(_tour.tour_links())


@st.cache_resource(max_entries=16, show_spinner="Training the toy model …")
def _model(dataset: str, model: str, n: int, noise: float, seed: int):
    settings = LabSettings(dataset=dataset, model=model, n_points=n, noise=noise, seed=seed)
    return toy_model(settings)[1]


@st.cache_resource(max_entries=32, show_spinner=False)
def _lab(dataset: str, model: str, n: int, noise: float, seed: int, point: int):
    settings = LabSettings(dataset=dataset, model=model, n_points=n, noise=noise, seed=seed, point=point)
    return lab_study(settings, clf=_model(dataset, model, n, noise, seed))


@st.cache_resource(max_entries=64, show_spinner=False)
def _panel(dataset: str, model: str, n: int, noise: float, seed: int, kind: str, xi: float, angle: float):
    lab = _lab(dataset, model, n, noise, seed, 0)
    v = direction_vector(angle, xi) if kind == "custom" else None
    return universal_panel(lab.clf, lab.data, kind=kind, xi=xi, v=v, model=model)


def _clicked(chart_key: str) -> tuple[float, float] | None:
    """(x1, x2) of the point just clicked on a chart drawn with ``on_select`` (None: a deselection)."""
    points = st.session_state[chart_key]["selection"]["points"]
    if not points:
        return None
    return float(points[0]["x"]), float(points[0]["y"])


def _data_points():
    ss = st.session_state
    return _lab(ss.g2_data, ss.g2_model, int(ss.g2_n), float(ss.g2_noise), int(ss.g2_seed), 0).data.x.numpy()


def _click_sets_point() -> None:
    """on_select of the lab figure: the clicked data point (the nearest one) becomes x."""
    click = _clicked("g2_click_pt")
    if click is not None:
        st.session_state.g2_pt = nearest_point(click, _data_points())


def _click_sets_v() -> None:
    """on_select of the universal figure: v = click − the data's centroid (where v is drawn from)."""
    click = _clicked("g2_click_v")
    if click is None:
        return
    try:
        angle, norm = vector_from_click(
            click, _data_points().mean(0), norm_range=(G2_XI["min_value"], G2_XI["max_value"]), norm_step=G2_XI["step"]
        )
    except AtlasError:
        return  # a click exactly on the centroid: no direction, keep v
    st.session_state.g2_dir, st.session_state.g2_ang, st.session_state.g2_xi = "custom", int(angle), norm


@st.fragment
def _universal_section(data_key: str, model_key: str, n: int, noise: float, seed: int, point: int) -> None:
    """The universal-vector controls and their three figures, as a fragment (issue 14: latency): a change
    of v's direction, ‖v‖ or angle, or a click on the figure, reruns only this function — the lab figure
    above is neither rebuilt nor re-sent. The shareable URL is updated from here too."""
    lab = _lab(data_key, model_key, n, noise, seed, point)
    with user_errors():
        st.subheader("Universal vectors")
        st.caption(
            "One vector v added to every point: the black rings are the points whose label it changes. Choose its "
            "direction from the model's flat subspace S_f (the top singular vector of the normals r(x)/‖r(x)‖), its curved "
            "subspace S_c (the most positively curved direction of the average boundary Hessian), or set your own: with "
            "the angle and ‖v‖ sliders, or by clicking in the plot below — v then runs from the data's centroid to the "
            "click. (Dragging the arrow itself is not possible: Streamlit's Plotly charts report clicks and selections, "
            "not drags, without a custom component.)"
        )
        init_state("g2_dir", "S_f", options=list(G2_KINDS))
        init_state("g2_xi", 0.3, float, **G2_XI)
        init_state("g2_ang", 0, int, **G2_ANGLE)
        u1, u2, u3 = st.columns(3)
        u1.radio("direction of v", list(G2_KINDS), format_func=G2_KINDS.get, key="g2_dir")
        u2.slider("‖v‖ = ξ (data units)", **G2_XI, key="g2_xi")
        u3.slider("angle of my own v (degrees)", **G2_ANGLE, key="g2_ang", disabled=st.session_state.g2_dir != "custom")
        kind, xi, angle = st.session_state.g2_dir, float(st.session_state.g2_xi), int(st.session_state.g2_ang)
        panel = _panel(data_key, model_key, n, noise, seed, kind, xi, angle)
        st.plotly_chart(
            universal_figure(lab, panel, title=f"v along {kind}", clickable=True),
            width="stretch",
            key="g2_click_v",
            on_select=_click_sets_v,
            selection_mode="points",
        )

        st.subheader("Flat model vs curved model (the talk)")
        st.caption(
            f"The same data and the same ‖v‖ = {xi:g}: the linear model's universal *direction* S_f against a curved "
            "model's (smooth tanh MLP) most curved direction S_c. On a flat boundary only the points within ξ of the line, "
            "on the side v points away from, can be fooled; on a boundary that bends around the data a short vector fools "
            "points all along the curve where it bends toward them. Which one wins depends on the data and on ξ: try "
            "circles (curved around the inner class) against XOR blobs."
        )
        f1, f2 = st.columns(2)
        for col, mkey, skind in ((f1, FLAT, "S_f"), (f2, CURVED, "S_c")):
            other = _lab(data_key, mkey, n, noise, seed, 0)
            p = _panel(data_key, mkey, n, noise, seed, skind, xi, 0)
            col.plotly_chart(
                universal_figure(other, p, title=f"{TOY_MODELS[mkey].split(' (')[0]}, v along {skind}", height=440),
                width="stretch",
            )
        _downloads.offer(
            "geometry_2d",
            None,
            {"lab": lab, "universal_vector": panel},
            {
                "2-D lab": lambda: lab_figure(lab),
                "Universal vector": lambda: universal_figure(lab, panel, title=f"v along {kind}"),
            },
            lab.settings,
            title="2-D lab",
            report=False,
        )
    _share_view(data_key, model_key, n, noise, seed)


def _share_view(data_key: str, model_key: str, n: int, noise: float, seed: int) -> None:
    share(
        g2_data=data_key,
        g2_model=model_key,
        g2_n=n,
        g2_noise=noise,
        g2_seed=seed,
        g2_pt=st.session_state.get("g2_pt", 1),
        g2_dir=st.session_state.get("g2_dir", "S_f"),
        g2_xi=st.session_state.get("g2_xi", 0.3),
        g2_ang=st.session_state.get("g2_ang", 0),
    )


data_key = init_state("g2_data", "circles", options=list(TOY_DATASETS))
model_key = init_state("g2_model", "mlp-tanh", options=list(TOY_MODELS))
init_state("g2_n", 200, int, **G2_N)
init_state("g2_noise", 0.08, float, **G2_NOISE)
init_state("g2_seed", 0, int, **G2_SEED)

c1, c2, c3, c4, c5 = st.columns([2, 2, 1.2, 1.2, 1])
c1.selectbox("toy data", list(TOY_DATASETS), format_func=TOY_DATASETS.get, key="g2_data")
c2.selectbox(
    "model",
    list(TOY_MODELS),
    format_func=TOY_MODELS.get,
    key="g2_model",
    help="The linear model and the analytic affine classifier have a flat boundary; the MLPs learn a curved one "
    "(ReLU: made of straight pieces, curvature measured by finite differences at scale h = 0.1; tanh: smooth, exact "
    "curvature); the analytic circle is curved by 1/R everywhere.",
)
c3.slider("points", **G2_N, key="g2_n")
c4.slider("noise", **G2_NOISE, key="g2_noise")
c5.number_input("seed", **G2_SEED, key="g2_seed")
n, noise, seed = int(st.session_state.g2_n), float(st.session_state.g2_noise), int(st.session_state.g2_seed)
data_key, model_key = st.session_state.g2_data, st.session_state.g2_model
# default point 1: an inner-circle point of the default data, where the boundary bends around x
point = init_state("g2_pt", 1, int, min_value=0, max_value=n - 1, step=1)

with user_errors():
    st.slider(
        "point x (index)",
        min_value=0,
        max_value=n - 1,
        step=1,
        key="g2_pt",
        help="The point whose DeepFool path, normal r(x) and osculating circle are drawn.",
    )
    point = int(st.session_state.g2_pt)
    lab = _lab(data_key, model_key, n, noise, seed, point)
    left = st.container()  # the chart at full width, its numbers in one wrapping row below (legible at 800 px)
    left.plotly_chart(
        lab_figure(lab, clickable=True),
        width="stretch",
        key="g2_click_pt",
        on_select=_click_sets_point,
        selection_mode="points",
    )
    left.caption("Click a point of the plot to make it x (the nearest data point is taken).")
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
    if lab.note:
        st.info(lab.note)
    st.caption(
        "Dotted grey lines: the linearised boundary of each DeepFool step (the line the step jumps to). On a flat "
        "boundary one step lands on it; where it curves toward x, the linearised step overshoots; where it curves "
        "away, the iterates creep up on it."
    )

    _universal_section(data_key, model_key, n, noise, seed, point)

_share_view(data_key, model_key, n, noise, seed)
