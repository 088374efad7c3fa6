"""Curvature vs m: the curved subspace S_c, the flat subspace S_f, and the average curvature of
held-out boundary points along random directions of each (paper ICLR 2018 §5, Fig. 7a)."""

from __future__ import annotations

import streamlit as st

from geometry.plotting import constrained_ratio_figure, curvature_vs_m_figure, ritz_figure
from geometry.study.constrained import ConstrainedRatio, ConstrainedSettings
from geometry.study.points import StudyPoints
from geometry.study.readings import curvature_reading
from pages.ui import cached as _cached
from pages.ui import downloads as _downloads
from pages.ui import jobs as _jobs
from pages.ui import layout as _layout
from pages.ui import sidebar as _sidebar
from pages.ui import state as _state
from pages.ui import timing as _timing
from pages.ui.controls import box_share_note, curvature_controls
from pages.ui.sidebar import Selection
from pages.ui.state import CURVATURE_METHODS


def constrained_section(sel: Selection, points: StudyPoints) -> ConstrainedRatio | None:
    """The constrained-DeepFool section (NIPS 2016): a toggle, then ‖r_S‖/‖r‖ against m at the class defaults
    of :class:`ConstrainedSettings` (computed as a background job); returns the result shown (None while off)."""
    st.subheader("The space of adversarial perturbations: DeepFool restricted to a subspace")
    st.caption(
        "DeepFool with every gradient projected on a random m-dimensional subspace S finds the smallest perturbation "
        "inside S. Where the boundary is locally flat, ‖r_S‖/‖r‖ = ‖w‖/‖P_S w‖ ≈ √(d/m) (Fawzi, Moosavi-Dezfooli, "
        "Frossard, NIPS 2016): adversarial perturbations exist in every subspace, only √(d/m) times longer. At m = 1–2 "
        "the ratio is heavy-tailed (for a flat boundary its mean is infinite at m = 1), so read the larger m."
    )
    _state.seed_flag("cv_rs")  # links written before the URL binding say cv_rs=on / off
    if not st.toggle("Compute ‖r_S‖/‖r‖ against m (about 5 s on digits)", **_state.bound("cv_rs", False)):
        return None
    settings = ConstrainedSettings()
    ratio = _cached.constrained_study(sel.clf, points, settings)  # a background job with progress
    _layout.chart(constrained_ratio_figure(ratio))
    st.caption(
        f"{min(settings.n_points, len(points.heldout))} held-out points × {settings.n_subspaces} random subspaces "
        f"per m; the constrained DeepFool converged for {float(ratio.converged_share.min()):.0%} or more of them."
    )
    return ratio


@st.fragment
@_timing.timed("curvature-vs-m chart")
def _curves_chart(curves, key: str) -> None:
    """The curves of Fig. 7a with their K_S / κ toggle: a fragment, so the toggle redraws only this chart
    (``key``: the study's, under which each of the two figures is built once)."""
    normalised = st.toggle(
        "Show the normal curvature κ = K_S/‖∇F(z)‖ (1/pixel distance) instead of the paper's K_S",
        value=False,
        key="cv_norm",
    )
    figure = _layout.cached_figure(
        f"curvature-vs-m|{key}|{normalised}", lambda: curvature_vs_m_figure(curves, normalised=normalised)
    )
    _layout.chart(figure)


def render() -> None:
    """Draw the Curvature vs m page (its widgets bound to the URL)."""
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
    _study_view(sel)  # a fragment: the page's controls rerun only it, not the sidebar (issue 20)


@st.fragment
@_timing.timed("curvature")
def _study_view(sel: Selection) -> None:
    """The settings, the study's curves, numbers and readings, the Ritz values, the constrained DeepFool
    section and the downloads: a fragment, so a change of n, m, the estimator or h reruns only this part."""
    with _sidebar.user_errors():
        _, settings, points, _ = curvature_controls(sel)
        study = _cached.curvature_study(sel.clf, points, settings)
        key = _jobs.study_key("curvature", sel.clf, points, settings)  # the study's key: its figures' too
        _curves_chart(study.curves, key)  # a fragment: the κ / K_S toggle reruns only the chart (issue 14)
        c = study.curves
        for col, name in zip(_layout.metric_columns(3), ("S_c", "S_f", "random"), strict=True):
            col.metric(
                f"{name}: K_S at m = 1",
                f"{float(c[name].mean[0]):+.3g}",
                help=f"share of held-out points with positive curvature: {float(c[name].share_positive[0]):.0%}",
            )
        st.info(curvature_reading(study), icon=":material/tune:")  # read from this network's curves (issue 23)
        st.caption(
            f"S_c and S_f from n = {study.n_estimate} training points ({study.curved.n_dropped} dropped: DeepFool did not "
            f"converge); curves on {study.n_heldout} held-out test points × {settings.n_directions} random directions per "
            f"m. Method: {CURVATURE_METHODS[study.method]}"
            + (f", h = {study.h:.4g}" if study.h else "")
            + (f", β = {study.beta:.3g}" if study.beta else "")
            + f"; {study.curved.n_hvp:,} Hessian-vector products for S_c "
            f"({study.curved.solver})."
        )
        box_share_note(st, sel.clf, points, settings.rx)  # the paper's protocol's share outside, either way
        _layout.chart(_layout.cached_figure(f"ritz|{key}", lambda: ritz_figure(study.curved)))
        with st.expander("Advanced: how to read this chart (Ritz values, operator asymmetry, K vs κ)"):
            st.markdown(
                "- **Ritz values** (grey): the eigenvalues the solver (scipy `eigsh`) reports for the averaged tangent "
                "Hessian; **re-evaluated curvature** (red): the mean K along each returned direction, measured again "
                "on the n boundary points. Where the two disagree, the direction is less curved than the solver claims.\n"
                "- **Operator asymmetry**: finite differences of gradients give a Hessian estimate that is not exactly "
                "symmetric; the number in the title, Σ|uᵀAv − vᵀAu| / Σ(|uᵀAv| + |vᵀAu|) over probe vectors, is 0 for a "
                "symmetric operator; at a large finite-difference scale h it is not small, since a difference of gradients "
                "at scale h is neither linear nor symmetric in the direction — read the red bars then.\n"
                "- **K vs κ**: K(v) = (Pv)ᵀH(Pv)/‖Pv‖² is the paper's quantity (logit / pixel², Fig. 7a); the normal "
                "curvature κ = K / ‖∇F(z)‖ is a geometric curvature (1 / pixel distance, 1/radius of the osculating "
                "circle) that can be compared across networks whose logits have different scales."
            )

        ratio = constrained_section(sel, points)  # subspace-constrained DeepFool (NIPS 2016)
        constrained_on = ratio is not None
        _downloads.offer(
            "curvature",
            sel,
            {"study": study, **({"constrained": ratio} if constrained_on else {})},
            {
                # the toggle lives in a fragment: read its value when the button is pressed
                "Curvature vs m": lambda: curvature_vs_m_figure(
                    study.curves, normalised=bool(st.session_state.get("cv_norm"))
                ),
                "Ritz values": lambda: ritz_figure(study.curved),
                **({"‖r_S‖/‖r‖ vs m": lambda: constrained_ratio_figure(ratio)} if constrained_on else {}),
            },
            settings,
            title="Curvature vs m",
            h=study.h,
            main_table="study.curves",
        )


if __name__ == "__main__":  # run as a script: see pages/ui/__init__.py (legacy pages/ discovery)
    from app import main

    main()
