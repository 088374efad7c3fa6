"""Widget groups shared by several pages: the curvature settings of "Curvature vs m", also drawn on
"Cross-sections" with the same keys, so that both pages use one S_c / S_f and one estimator."""

from __future__ import annotations

import streamlit as st

from geometry.classifier import Classifier
from geometry.hessian import default_h
from geometry.runtime.uploads import in_worker
from geometry.study import CurvatureSettings, ResolvedH, StudyPoints
from geometry.study.provenance import box_share_text, estimation_box_share

from . import cached as _cached
from .sidebar import Selection
from .state import (
    CURVATURE_METHODS,
    CURVATURE_POINTS,
    CV_M,
    CV_N,
    H_INPUT,
    RX_OPTIONS,
    CurvatureView,
    bound,
    synced,
)
from .tour import presenting

#: The same setting gets the same label, wording and widget on every page (issue 14 item 4).
H_SCALE_LABEL = "curvature scale h (pixel-space ℓ2)"
XI_SHARE_LABEL = "ξ = 1/5 of the noise norm that fools"
RX_LABEL = "r(x): how DeepFool finds the boundary point z = x + r(x)"
RX_HELP = (
    "Box-constrained (default): every DeepFool iterate is clamped to the pixel box, so z = x + r(x) is an image "
    "and the curvature is measured inside the data domain. Paper's protocol: unconstrained DeepFool (CVPR 2016 "
    "Alg. 2), as the ICLR 2018 paper estimates S_c; its z may leave the pixel box. The share of boundary points "
    "that leave it under the paper's protocol is shown below either way."
)
XI_SHARE_HELP = (
    "ξ, the norm of the universal vectors, is 1/5 of the ℓ2 norm of random noise that changes the label of this "
    "share of held-out points (the paper: 'most data points'). It changes a lot between 50 % and 80 %."
)


def h_scale_labels(h_authors: float, xi_text: str) -> dict[str, str]:
    """The options of the h-scale radio (keys: ``H_SCALES``); ``xi_text`` says what "xi" means on the page."""
    return {"authors": f"authors' default h = 10·√d/512 = {h_authors:.3g}", "xi": xi_text, "custom": "custom h"}


def rx_radio(container, key: str) -> None:
    """The r(x)-protocol switch (issue 23, item 2): box-constrained DeepFool or the paper's unconstrained one,
    kept in the URL by :func:`~pages.ui.state.synced` (read with :func:`~pages.ui.state.option_value` first)."""
    container.radio(
        RX_LABEL, list(RX_OPTIONS), **synced(key), format_func=RX_OPTIONS.get, horizontal=True, help=RX_HELP
    )


def box_share_note(container, clf: Classifier, points: StudyPoints, rx: str, *, network: str | None = None) -> None:
    """The share of S_c's boundary points (``points.estimate``) that the paper's unconstrained DeepFool puts outside
    the pixel box, under either protocol (issue 23, item 2): a warning where the page's ``rx`` is that protocol and
    some leave, else a caption (:func:`~geometry.study.provenance.box_share_text`); ``network`` names the network
    where a page shows several."""
    box = in_worker(estimation_box_share, clf, points)  # an upload: in its worker
    text = box_share_text(box, rx=rx)
    (container.warning if box.n_outside and rx == "unconstrained" else container.caption)(
        f"**{network}** — {text}" if network else text
    )


def xi_share_radio(
    container, key: str, options, *, fractions: bool = False, help: str = "", label: str = XI_SHARE_LABEL
) -> None:
    """The ξ-share control: a horizontal radio of shares shown as "50 %" (``options`` in percent, or
    fractions when ``fractions``), kept in the URL by :func:`~pages.ui.state.synced` (its value is read
    with :func:`~pages.ui.state.option_value` first)."""
    container.radio(
        label,
        options,
        **synced(key),
        horizontal=True,
        format_func=(lambda s: f"{round(100 * s)} %") if fractions else (lambda s: f"{s} %"),
        help=XI_SHARE_HELP + (" " + help if help else ""),
    )


def curvature_controls(sel: Selection) -> tuple[CurvatureView, CurvatureSettings, StudyPoints, ResolvedH | None]:
    """Draw n, m, the Hessian estimator, the boundary point and (finite differences) the scale h.

    Returns the view (its widgets bound to the URL), its :class:`~geometry.study.CurvatureSettings`,
    the study's points on the sidebar's dataset and the resolved h (None for the methods without
    one). For h = ξ the measured ξ is shown beside the choice, or a warning when it is undefined.
    """
    h_authors = default_h(sel.clf)
    view = CurvatureView.read(h_authors)
    d = CurvatureView.DEFAULTS
    c1, c2, c3, c4 = st.columns(4)
    c1.slider(
        "n: points used for S_c",
        **CV_N,
        **bound("cv_n", d["cv_n"]),
        help="Training points whose boundary Hessians are averaged (paper: training points).",
    )
    c2.slider(
        "maximum m",
        **CV_M,
        **bound("cv_m", d["cv_m"]),
        help="Dimension of the subspaces; curves go from m = 1 to this.",
    )
    c3.selectbox(
        "Hessian-vector products",
        list(CURVATURE_METHODS),
        **synced("cv_method"),
        format_func=CURVATURE_METHODS.get,
        help="A ReLU network's exact Hessian is zero almost everywhere: finite differences of gradients "
        "at scale h measure the curvature at that scale.",
    )
    c4.selectbox(
        "boundary point",
        list(CURVATURE_POINTS),
        **synced("cv_point"),
        format_func=CURVATURE_POINTS.get,
    )
    rx_radio(st, "cv_rx")
    settings = view.settings()
    points = _cached.study_points(sel.dataset_key, settings.points)
    resolved = None
    if view.method == "finite_difference":
        s1, s2 = st.columns([2, 1])
        scales = h_scale_labels(h_authors, "h = ξ (1/5 of the random-noise norm fooling 50 %)")
        s1.radio(H_SCALE_LABEL, list(scales), **synced("cv_scale"), format_func=scales.get)
        if view.scale == "custom":
            s2.number_input("h", **H_INPUT, **bound("cv_h", round(h_authors, 4)), format="%.4f")
        resolved = _cached.resolve_h(sel.clf, settings.scale, points)
        if view.scale == "xi" and resolved.preset == "xi":
            noise = resolved.noise
            # present mode hides the controls, and this number with them (the chart's title gives h): the chart is
            # then on the first screen at 1280 × 800
            if not presenting():
                s2.metric(
                    "ξ = h",
                    f"{resolved.h:.3g}",
                    help=f"random noise of norm {noise.quantile:.3g} fools 50 % of held-out points; "
                    f"{noise.infinite_share:.0%} of random rays never change the label",
                )
        elif view.scale == "xi":
            st.warning(
                "Random noise fools fewer than 50 % of points even at the largest norm tried; using the authors' h."
            )
    return view, settings, points, resolved
