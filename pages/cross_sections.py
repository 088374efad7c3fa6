"""Cross-sections: decision regions in the plane (r(x), v) around one datapoint (paper Fig. 5, 6, 13)."""

from __future__ import annotations

import streamlit as st
import torch

from geometry.deepfool import deepfool
from geometry.plotting import perturbation_display, section_figure, to_display_image
from geometry.sections import normal_section, random_direction
from pages import common


@st.cache_data(show_spinner=False, max_entries=64)
def compute_section(model_name: str, dataset: str, index: int, seed: int, extent_factor: float, resolution: int):
    """DeepFool at one test point, then the normal section along (r(x), random v). Cached by plain values."""
    clf = common.get_model(model_name)
    x = common.get_dataset(dataset, "test").images[index]
    df = deepfool(clf, x.unsqueeze(0))
    v = random_direction(x.shape, random_state=seed)
    r = df.r[0]
    sec = normal_section(clf, x, r, v, extent=extent_factor * float(r.norm()), resolution=resolution)
    return df, sec


st.title("Normal cross-sections")
st.caption(
    "The plane through a datapoint x spanned by its DeepFool normal r(x) (horizontal) and a second direction v "
    "(vertical, made orthogonal to r(x)). Colours are the network's predicted classes; the black line is the "
    "decision boundary. A flat boundary is a straight vertical line through z = x + r(x); a boundary that bends "
    "back around x is *positively curved* (paper Fig. 3, 5)."
)

sel = common.selection()
if sel is None:
    st.stop()

common.init_state("seed", 0, int)
common.init_state("extent", 3.0, float)
common.init_state("res", 256, int)
c1, c2, c3 = st.columns(3)
seed = c1.number_input("Random direction seed", min_value=0, max_value=10_000, step=1, key="seed",
                       help="v is drawn uniformly on the unit sphere of R^d with this seed.")
extent = c2.slider("Extent (multiples of ‖r(x)‖)", min_value=1.0, max_value=20.0, step=0.5, key="extent",
                   help="Half-width of the plotted window, in units of the distance from x to the boundary.")
if st.session_state["res"] not in (64, 128, 256):
    st.session_state["res"] = 256
resolution = c3.select_slider("Resolution", options=[64, 128, 256], key="res",
                              help="Grid points per side. Adaptive refinement only evaluates cells near the boundary.")
common.share(seed=int(seed), extent=float(extent), res=int(resolution))

with common.user_errors():
    with st.spinner("Computing DeepFool and the cross-section…"):
        df, sec = compute_section(sel.model_name, sel.dataset.name, sel.index, int(seed), float(extent), int(resolution))
    names = sel.clf.class_names
    left, right = st.columns([3, 1])
    with left:
        fig = section_figure(sec, names, direction_label=f"random v (seed {seed})")
        st.plotly_chart(fig, width="stretch")
        st.caption(
            f"{sec.n_forward:,} network evaluations for a {resolution}×{resolution} grid "
            f"({sec.n_forward / sec.dense_forward:.1%} of the dense {sec.dense_forward:,}); "
            f"cos(v, r) before orthogonalisation = {sec.cos_v_r:+.3f}."
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
