"""Cross-sections: decision regions in the plane (r(x), v) around one datapoint (paper Fig. 5, 6, 13),
along a random direction or a direction of the curved / flat subspace (ICLR 2018 §4–5), with the
curvature of the boundary along v at z = x + r(x)."""

from __future__ import annotations

import math

import streamlit as st

from geometry.curvature import curvature_along
from geometry.deepfool import deepfool
from geometry.errors import AtlasError
from geometry.plotting import perturbation_display, section_figure, to_display_image
from geometry.sections import normal_section, random_direction
from geometry.universal import sample_subspace
from pages import common

#: direction kinds: URL value → label
DIRECTIONS = {
    "random": "random v (uniform on the sphere of R^d, seeded)",
    "sc": "S_c eigenvector i (curved subspace)",
    "sc_mix": "random v in the first m directions of S_c (seeded)",
    "sf": "S_f vector i (flat subspace: normals)",
}


def direction_label(direction: str, vec: int, sub_m: int, seed: int) -> str:
    """How the second axis direction is named in the figure and captions."""
    return {"random": f"random v (seed {seed})", "sc": f"S_c eigenvector {vec}",
            "sc_mix": f"random v in S_c, m = {sub_m} (seed {seed})", "sf": f"S_f vector {vec}"}[direction]


@st.cache_data(show_spinner=False, max_entries=64)
def compute_section(model_name: str, dataset: str, index: int, seed: int, extent_factor: float, resolution: int,
                    direction: str = "random", vec: int = 1, sub_m: int = 1, n: int = 100, m: int = 20,
                    method: str = "finite_difference", h: float | None = None, point: str = "boundary",
                    n_heldout: int = 50, _subspace=None):
    """DeepFool at one test point, the direction v, the normal section along (r(x), v) and the
    curvature of the boundary along v (same method / h / boundary point as S_c). Cached by plain
    values: ``_subspace`` (S_c or S_f for directions other than "random", from
    :func:`pages.common.subspace`) is not hashed, it is defined by (model, dataset, n, m, method,
    h, point, n_heldout), which are. ``dataset`` is the sidebar's dataset key (a built-in name or
    an upload key).

    Returns (DeepFoolResult, Section, CurvatureAlong or None) — None when DeepFool did not converge.
    """
    clf = common.get_model(model_name)
    x = common.get_dataset(dataset, "test").images[index]
    df = deepfool(clf, x.unsqueeze(0))
    if direction == "random":
        v = random_direction(x.shape, random_state=seed)
    else:
        s = _subspace
        if s is None:
            raise AtlasError(f"direction {direction!r} needs the subspace")
        if direction == "sc_mix":
            v = sample_subspace(s, min(sub_m, s.m), 1.0, n_samples=1, random_state=seed, shape=clf.input_shape)[0]
        else:
            if not 1 <= vec <= s.m:
                raise AtlasError(f"the subspace has {s.m} vectors, asked for vector {vec}")
            v = s.images()[vec - 1]
    v = v.to(x.dtype)
    r = df.r[0]
    sec = normal_section(clf, x, r, v, extent=extent_factor * float(r.norm()), resolution=resolution)
    along = None  # no boundary point to measure the curvature at when DeepFool did not converge
    if bool(df.converged[0]) and int(df.label[0]) != int(df.adv_label[0]):
        along = curvature_along(clf, x, v, method=method, h=h, deepfool_result=df, point=point)
    return df, sec, along


def _fmt(value: float, spec: str = "+.3g") -> str:
    return format(value, spec) if math.isfinite(value) else "n/a"


st.title("Normal cross-sections")
st.caption(
    "The plane through a datapoint x spanned by its DeepFool normal r(x) (horizontal) and a second direction v "
    "(vertical, made orthogonal to r(x)). Colours are the network's predicted classes; the black line is the "
    "decision boundary. A flat boundary is a straight vertical line through z = x + r(x); a boundary that bends "
    "back around x is *positively curved* (paper Fig. 3, 5). Directions of the curved subspace S_c should bend it, "
    "random ones barely (paper §5)."
)

common.keep_curvature_settings()
sel = common.selection()
if sel is None:
    st.stop()

#: Widget bounds (drawn with them; the URL's values are clamped into them by common.init_state)
SEED = dict(min_value=0, max_value=10_000, step=1)
EXTENT = dict(min_value=1.0, max_value=20.0, step=0.5)
RESOLUTION = dict(options=[64, 128, 256])

common.init_state("seed", 0, int, **SEED)
common.init_state("extent", 3.0, float, **EXTENT)
common.init_state("res", 256, int, **RESOLUTION)
common.init_state("dir", "random", options=list(DIRECTIONS))

with st.expander("S_c / S_f and curvature settings (shared with the Curvature vs m page)", expanded=False):
    cv = common.curvature_settings(sel.clf, sel.model_name)
    st.caption("S_c and S_f are computed once from n training points and cached on disk; the curvature along v "
               "uses the same Hessian-vector products and boundary point.")

m_max = cv["m"]
SUBSPACE_INDEX = dict(min_value=1, max_value=m_max)  # vec and sub_m: 1 … m
common.init_state("vec", 1, int, **SUBSPACE_INDEX)
common.init_state("sub_m", 1, int, **SUBSPACE_INDEX)
d1, d2 = st.columns([2, 1])
direction = d1.selectbox("Direction v", list(DIRECTIONS), key="dir", format_func=DIRECTIONS.get,
                         help="The second axis of the plane. S_c: top eigenvectors of the average tangent Hessian at "
                              "the boundary points of n training points (most positively curved first). S_f: top "
                              "singular vectors of their normals r(x)/‖r(x)‖.")
vec, sub_m = int(st.session_state["vec"]), int(st.session_state["sub_m"])
if direction in ("sc", "sf"):
    vec = d2.slider("i: which vector", **SUBSPACE_INDEX, key="vec",
                    help="1 = the most curved eigenvector of S_c / the largest singular vector of S_f.")
elif direction == "sc_mix":
    sub_m = d2.slider("m: dimension of S_c used", **SUBSPACE_INDEX, key="sub_m",
                      help="v is uniform on the unit sphere of the span of the first m S_c eigenvectors.")

c1, c2, c3 = st.columns(3)
seed = c1.number_input("Random direction seed", **SEED, key="seed",
                       disabled=direction in ("sc", "sf"),
                       help="Random directions are drawn with this seed (uniform on the sphere of R^d, or of the "
                            "first m directions of S_c).")
extent = c2.slider("Extent (multiples of ‖r(x)‖)", **EXTENT, key="extent",
                   help="Half-width of the plotted window, in units of the distance from x to the boundary.")
resolution = c3.select_slider("Resolution", **RESOLUTION, key="res",
                              help="Grid points per side. Adaptive refinement only evaluates cells near the boundary.")
common.share(seed=int(seed), extent=float(extent), res=int(resolution), dir=direction, vec=int(st.session_state["vec"]),
             sub_m=int(st.session_state["sub_m"]), cv_n=cv["n"], cv_m=cv["m"], cv_method=cv["method"],
             cv_point=cv["point"], cv_scale=cv["scale"], cv_h=st.session_state["cv_h"])

label = direction_label(direction, vec, sub_m, int(seed))
with common.user_errors():
    n_heldout = int(st.session_state.get("cv_heldout", 50))
    data_key = common.selection_dataset()  # built-in name or upload key (sel.dataset.name is "npz" for uploads)
    subspace = None
    if direction != "random":
        kind = "flat" if direction == "sf" else "curved"
        bar, update = common.progress_bar(f"S_{'f' if kind == 'flat' else 'c'} from n = {cv['n']} training points "
                                          "(first use only; cached on disk)")
        subspace = common.subspace(kind, sel.model_name, data_key, cv["n"], cv["m"], cv["method"], cv["h"],
                                   cv["point"], n_heldout, progress=update)
        bar.empty()
    with st.spinner("Computing DeepFool, the cross-section and the curvature along v…"):
        df, sec, along = compute_section(sel.model_name, data_key, sel.index, int(seed), float(extent),
                                         int(resolution), direction, vec, sub_m, cv["n"], cv["m"], cv["method"],
                                         cv["h"], cv["point"], n_heldout, _subspace=subspace)
    nan = float("nan")
    kappa = float(along.kappa[0, 0]) if along is not None else nan
    K = float(along.curvature[0, 0]) if along is not None else nan
    grad_norm = float(along.grad_norm[0]) if along is not None else nan
    tangent = float(along.tangent_fraction[0, 0]) if along is not None else nan
    names = sel.clf.class_names
    if along is not None and along.h is not None:
        scale_text = f"finite differences, h = {along.h:.3g} ({cv['h_text']})"
    elif along is not None and along.beta is not None:
        scale_text = f"smoothed twin, β = {along.beta:.3g}"
    else:
        scale_text = common.CURVATURE_METHODS[cv["method"]] + (f", h = {cv['h']:.3g}" if cv["h"] else "")
    left, right = st.columns([3, 1])
    with left:
        fig = section_figure(sec, names, direction_label=label, curvature=kappa,
                             title=f"Normal cross-section along (r(x), {label})<br>")  # κ goes on a second line
        # room for the two-line title, and the class legend below the α-axis title instead of over it
        fig.update_layout(margin=dict(t=80, b=130), legend=dict(yanchor="top", y=-0.17))
        st.plotly_chart(fig, width="stretch")
        m1, m2, m3 = st.columns(3)
        m1.metric("κ along v (1/pixel distance)", _fmt(kappa),
                  help="Normal curvature of the boundary at z along the tangent part Pv of v: "
                       "(Pv)ᵀH(Pv) / (‖Pv‖² ‖∇F(z)‖). Positive: the other class wraps around x.")
        m2.metric("paper's K(v) (logit / pixel²)", _fmt(K),
                  help="(Pv)ᵀH(Pv)/‖Pv‖², the quantity averaged in the paper's K_S (Fig. 7a): κ without the ‖∇F(z)‖ "
                       f"factor (‖∇F(z)‖ = {_fmt(grad_norm, '.3g')}).")
        m3.metric("tangent share ‖Pv‖/‖v‖", _fmt(tangent, ".3f"),
                  help="How much of v lies in the tangent space of the boundary at z (the rest is along the normal).")
        extra = ""
        if subspace is not None:
            s = subspace
            extra = f" Subspace: {s.kind}, m = {s.m}, from n = {s.n} training points ({s.n_dropped} dropped)"
            if direction == "sc":
                extra += (f"; mean K along this eigenvector over those n boundary points = "
                          f"{_fmt(float(s.curvatures[vec - 1]))} (κ {_fmt(float(s.kappas[vec - 1]))})")
            extra += "."
        st.caption(
            f"Curvature at {'z = x + r(x)' if cv['point'] == 'boundary' else 'x + 0.8·r(x)'} by {scale_text}"
            + ("" if along is not None else " (not measured: DeepFool found no boundary point)") + ". "
            f"{sec.n_forward:,} network evaluations for a {resolution}×{resolution} grid "
            f"({sec.n_forward / sec.dense_forward:.1%} of the dense {sec.dense_forward:,}); "
            f"cos(v, r) before orthogonalisation = {sec.cos_v_r:+.3f}." + extra
        )
    with right:
        k, j = int(df.label[0]), int(df.adv_label[0])
        st.image(to_display_image(sel.x, size=128), caption=f"x — predicted {common.class_name(names, k)} (true {common.class_name(sel.dataset.class_names, sel.true_label)})")
        img, scale = perturbation_display(df.r[0], size=128)
        st.image(img, caption=f"r(x), shown ×{scale:.3g} around grey — ‖r(x)‖₂ = {float(df.norms[0]):.4f}")
        st.image(to_display_image(df.x_adv[0], size=128), caption=f"x + r(x) — predicted {common.class_name(names, j)}")
        if not bool(df.converged[0]):
            st.warning("DeepFool did not change the label within its iteration limit: r(x) is not a boundary normal here.")
        st.metric("‖r(x)‖₂ / ‖x‖₂", f"{float(df.norms[0]) / float(sel.x.norm()):.4f}",
                  help="Relative size of the minimal perturbation (DeepFool, CVPR 2016, Table 1's ρ_adv for one point).")
