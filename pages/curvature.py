"""Curvature vs m: the curved subspace S_c, the flat subspace S_f, and the average curvature of
held-out boundary points along random directions of each (paper ICLR 2018 §5, Fig. 7a)."""

from __future__ import annotations

import streamlit as st

from geometry.plotting import curvature_vs_m_figure, ritz_figure
from pages import _cached, _sidebar
from pages._controls import curvature_controls
from pages._state import CURVATURE_METHODS

st.title("Curvature vs m")
st.caption(
    "S_c: the top-m eigenvectors of the boundary Hessian averaged over n training points' boundary points "
    "z = x + r(x) (tangent-projected). For held-out points we draw random unit directions v in the first m directions "
    "of S_c, of S_f (the normals' subspace) and of a random subspace, and average the curvature (Pv)ᵀH(Pv)/‖Pv‖². "
    "Positive means the other class wraps around x — the case that makes small universal perturbations possible."
)

sel = _sidebar.selection()
if sel is None:
    st.stop()

with _sidebar.user_errors():
    _, settings, points, _ = curvature_controls(sel)
    study = _cached.curvature_study(sel.clf, points, settings)
    normalised = st.toggle(
        "Show the normal curvature κ = K_S/‖∇F(z)‖ (1/pixel distance) instead of the paper's K_S", value=False
    )
    st.plotly_chart(curvature_vs_m_figure(study.curves, normalised=normalised), width="stretch")
    c = study.curves
    for col, name in zip(st.columns(3), ("S_c", "S_f", "random"), strict=True):
        col.metric(
            f"{name}: K_S at m = 1",
            f"{float(c[name].mean[0]):+.3g}",
            help=f"share of held-out points with positive curvature: {float(c[name].share_positive[0]):.0%}",
        )
    st.caption(
        f"S_c and S_f from n = {study.n_estimate} training points ({study.curved.n_dropped} dropped: DeepFool did not "
        f"converge); curves on {study.n_heldout} held-out test points × {settings.n_directions} random directions per "
        f"m. Method: {CURVATURE_METHODS[study.method]}"
        + (f", h = {study.h:.4g}" if study.h else "")
        + (f", β = {study.beta:.3g}" if study.beta else "")
        + f"; {study.curved.n_hvp:,} Hessian-vector products for S_c "
        f"({study.curved.solver})."
    )
    st.plotly_chart(ritz_figure(study.curved), width="stretch")
