"""Curvature vs m: the curved subspace S_c, the flat subspace S_f, and the average curvature of
held-out boundary points along random directions of each (paper ICLR 2018 §5, Fig. 7a)."""

from __future__ import annotations

import math

import streamlit as st

from geometry.hessian import default_h
from geometry.plotting import curvature_vs_m_figure, ritz_figure
from pages import common

st.title("Curvature vs m")
st.caption(
    "S_c: the top-m eigenvectors of the boundary Hessian averaged over n training points' boundary points "
    "z = x + r(x) (tangent-projected). For held-out points we draw random unit directions v in the first m directions "
    "of S_c, of S_f (the normals' subspace) and of a random subspace, and average the curvature (Pv)ᵀH(Pv)/‖Pv‖². "
    "Positive means the other class wraps around x — the case that makes small universal perturbations possible."
)

sel = common.selection()
if sel is None:
    st.stop()

clf = sel.clf
h_authors = default_h(clf)
methods = common.CURVATURE_METHODS
common.init_state("cv_n", 100, int, **common.CV_N)
common.init_state("cv_m", 20, int, **common.CV_M)
common.init_state("cv_method", "finite_difference", options=list(methods))
common.init_state("cv_scale", "authors", options=common.H_SCALES)
common.init_state("cv_h", round(h_authors, 4), float, **common.H_INPUT)
common.init_state("cv_point", "boundary", options=list(common.CURVATURE_POINTS))
common.init_state("cv_heldout", 50, int, **common.CV_HELDOUT)

c1, c2, c3, c4 = st.columns(4)
n = c1.slider("n: points used for S_c", **common.CV_N, key="cv_n",
              help="Training points whose boundary Hessians are averaged (paper: training points).")
m_max = c2.slider("maximum m", **common.CV_M, key="cv_m",
                  help="Dimension of the subspaces; curves go from m = 1 to this.")
method = c3.selectbox("Hessian-vector products", list(methods), key="cv_method", format_func=methods.get,
                      help="A ReLU network's exact Hessian is zero almost everywhere: finite differences of gradients "
                           "at scale h measure the curvature at that scale.")
point = c4.selectbox("boundary point", list(common.CURVATURE_POINTS), key="cv_point",
                     format_func=common.CURVATURE_POINTS.get)

h = None
if method == "finite_difference":
    s1, s2, s3 = st.columns([2, 1, 1])
    scales = {"authors": f"authors' default h = 10·√d/512 = {h_authors:.3g}",
              "xi": "match h to ξ (1/5 of the random-noise norm fooling 50 %)", "custom": "custom h"}  # H_SCALES
    scale = s1.radio("scale h (pixel-space distance)", list(scales), key="cv_scale", format_func=scales.get,
                     horizontal=False)
    if scale == "authors":
        h = h_authors
    elif scale == "xi":
        with st.spinner("Measuring the random-noise norm…"):
            noise = common.noise_norm(sel.model_name, common.selection_dataset(), 0.5)
        if math.isfinite(noise.quantile):
            h = noise.quantile / 5
            s2.metric("ξ = h", f"{h:.3g}", help=f"random noise of norm {noise.quantile:.3g} fools 50 % of held-out points; "
                                                   f"{noise.infinite_share:.0%} of random rays never change the label")
        else:
            st.warning("Random noise fools fewer than 50 % of points even at the largest norm tried; using the authors' h.")
            h = h_authors
    else:
        h = s2.number_input("h", **common.H_INPUT, key="cv_h", format="%.4f")
n_heldout = st.session_state["cv_heldout"]
common.share(cv_n=n, cv_m=m_max, cv_method=method, cv_point=point, cv_scale=st.session_state["cv_scale"],
             cv_h=st.session_state["cv_h"])

with common.user_errors():
    bar, update = common.progress_bar("Computing S_c, S_f and curvature versus m")
    study = common.curvature_study(sel.model_name, common.selection_dataset(), int(n), int(m_max), method,
                                   None if h is None else float(h), point, int(n_heldout), 10, _progress=update)
    bar.empty()
    normalised = st.toggle("Show the normal curvature κ = K_S/‖∇F(z)‖ (1/pixel distance) instead of the paper's K_S",
                           value=False)
    st.plotly_chart(curvature_vs_m_figure(study.curves, normalised=normalised), width="stretch")
    c = study.curves
    cols = st.columns(3)
    for col, name in zip(cols, ("S_c", "S_f", "random")):
        col.metric(f"{name}: K_S at m = 1", f"{float(c[name].mean[0]):+.3g}",
                   help=f"share of held-out points with positive curvature: {float(c[name].share_positive[0]):.0%}")
    st.caption(
        f"S_c and S_f from n = {study.n_estimate} training points ({study.curved.n_dropped} dropped: DeepFool did not "
        f"converge); curves on {study.n_heldout} held-out test points × 10 random directions per m. "
        f"Method: {methods[method]}" + (f", h = {study.h:.4g}" if study.h else "") +
        (f", β = {study.beta:.3g}" if study.beta else "") + f"; {study.curved.n_hvp:,} Hessian-vector products for S_c "
        f"({study.curved.solver})."
    )
    st.plotly_chart(ritz_figure(study.curved), width="stretch")
