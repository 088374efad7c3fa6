"""Cross-sections: decision regions in the plane (r(x), v) around one datapoint (paper Fig. 5, 6, 13),
along a random direction or a direction of the curved / flat subspace (ICLR 2018 §4–5), with the
curvature of the boundary along v at z = x + r(x)."""

from __future__ import annotations

import math

import streamlit as st

from geometry.errors import InvalidInputError
from geometry.hessian import default_h
from geometry.plotting import (
    perturbation_display,
    section_figure,
    section_grid_figure,
    to_display_image,
    with_click_targets,
)
from geometry.runtime.uploads import in_worker
from geometry.sections import Section, direction_through, plane_point
from geometry.study.fig5 import universal_sections
from geometry.study.provenance import box_excess, left_box, rx_provenance
from geometry.study.readings import fig5_reading, section_reading
from pages.ui import cached as _cached
from pages.ui import downloads as _downloads
from pages.ui import layout as _layout
from pages.ui import sidebar as _sidebar
from pages.ui import state as _state
from pages.ui import timing as _timing
from pages.ui.controls import curvature_controls
from pages.ui.state import CURVATURE_METHODS, DIRECTIONS, EXTENT, RESOLUTION, SEED, CrossSectionView, bound


def _fmt(value: float, spec: str = "+.3g") -> str:
    return format(value, spec) if math.isfinite(value) else "n/a"


FIG5_POINTS = 5  # datapoints of the Fig. 5 grid


def _clicked_point(event) -> tuple[float, float] | None:
    """(α, β) of the last point clicked on the section (Streamlit's plotly selection state), or None."""
    try:
        point = event["selection"]["points"][-1]
        return float(point["x"]), float(point["y"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _probe(sel: _sidebar.Selection, sec: Section, clicked: tuple[float, float]) -> None:
    """The image at the clicked point of the plane, its class, and what "v through that point" means here."""
    a, b = clicked
    p = plane_point(sec, sel.x, a, b)
    k = int(sel.clf.predict(p.unsqueeze(0))[0])
    names = sel.clf.class_names
    dist = math.hypot(a, b)
    angle = math.degrees(math.atan2(b, a))
    c1, c2 = st.columns([1, 3])
    c1.image(to_display_image(p, size=112), caption=f"x + α e1 + β e2 — predicted {_sidebar.class_name(names, k)}")
    try:
        direction_through(sec, a, b)
        within = (
            "The direction from x through this point, made orthogonal to r(x), is "
            + ("v⊥ itself" if b > 0 else "−v⊥")
            + ": it lies in this plane, so the section along it is this one"
            + ("" if b > 0 else " mirrored (β → −β)")
            + " — choose a new plane with 'Direction v' above."
        )
    except InvalidInputError:
        within = "This point lies on the r(x) axis: its direction is r(x) itself, with no part orthogonal to r(x)."
    lo, hi = sel.clf.bounds
    outside = float((p - p.clamp(lo, hi)).norm())
    c2.markdown(
        f"**Clicked point** α = {a:+.3f}, β = {b:+.3f} (pixel ℓ2): ‖p − x‖₂ = {dist:.3f} "
        f"({dist / sec.r_norm:.2f} ‖r(x)‖), {angle:+.0f}° from r(x); the network predicts "
        f"**{_sidebar.class_name(names, k)}** there"
        + (f"; p leaves the pixel box [{lo:g}, {hi:g}] by {outside:.3g} (ℓ2)." if outside > 0 else ".")
    )
    c2.caption(within)


@st.cache_resource(max_entries=8, show_spinner="Cutting sections along the universal perturbation …")
def _fig5_grid(_clf, _xs, _v, *, key: str, method: str, h):
    """:func:`geometry.study.fig5.universal_sections`, cached per (network, points, UAP settings, estimator)."""
    return in_worker(universal_sections, _clf, _xs, _v, method=method, h=h, resolution=64)  # an upload: its worker


def render() -> None:
    """Draw the Cross-sections page (its widgets bound to the URL)."""
    st.title("Normal cross-sections")
    st.caption(
        "The plane through a datapoint x spanned by its DeepFool normal r(x) (horizontal) and a second direction v "
        "(vertical, made orthogonal to r(x)). Colours are the network's predicted classes; the black line is the "
        "decision boundary. A flat boundary is a straight vertical line through z = x + r(x); a boundary that bends "
        "back around x is *positively curved* (paper Fig. 3, 5). Directions of the curved subspace S_c should bend it, "
        "random ones barely (paper §5)."
    )

    sel = _sidebar.selection()
    if sel is None:
        st.stop()

    with _sidebar.user_errors():
        with st.expander("S_c / S_f and curvature settings (shared with the Curvature vs m page)", expanded=False):
            cv, cv_settings, points, resolved = curvature_controls(sel)
            st.caption(
                "S_c and S_f are computed once from n training points and cached on disk; the curvature along v "
                "uses the same Hessian-vector products and boundary point."
            )
        _section_view(sel, cv, cv_settings, points, resolved)  # a fragment: its controls rerun only it (issue 20)


@st.fragment
@_timing.timed("cross-section")
def _section_view(sel: _sidebar.Selection, cv, cv_settings, points, resolved) -> None:
    """Everything below the S_c / S_f settings: the direction, seed, extent and resolution controls with the
    section, its readings, the images, the Fig. 5 grid and the downloads — a fragment, so changing one of these
    controls reruns only this part (not the sidebar nor the settings), and the readings stay with the figure."""
    with _sidebar.user_errors():
        view = CrossSectionView.read(cv.m)
        index = dict(min_value=1, max_value=cv.m)
        d = CrossSectionView.DEFAULTS
        d1, d2 = st.columns([2, 1])
        d1.selectbox(
            "Direction v",
            list(DIRECTIONS),
            **_state.synced("dir"),
            format_func=DIRECTIONS.get,
            help="The second axis of the plane. S_c: top eigenvectors of the average tangent Hessian at the "
            "boundary points of n training points (most positively curved first). S_f: top singular "
            "vectors of their normals r(x)/‖r(x)‖.",
        )
        if view.direction in ("sc", "sf"):
            d2.slider(
                "i: which vector",
                **index,
                **bound("vec", d["vec"]),
                help="1 = the most curved eigenvector of S_c / the largest singular vector of S_f.",
            )
        elif view.direction == "sc_mix":
            d2.slider(
                "m: dimension of S_c used",
                **index,
                **bound("sub_m", d["sub_m"]),
                help="v is uniform on the unit sphere of the span of the first m S_c eigenvectors.",
            )
        c1, c2, c3 = st.columns(3)
        c1.number_input(
            "Random direction seed",
            **SEED,
            **_state.synced("seed"),
            disabled=view.direction in ("sc", "sf", "uap"),
            help="Random directions are drawn with this seed (uniform on the sphere of R^d, or of the first m "
            "directions of S_c).",
        )
        c2.slider(
            "Extent (multiples of ‖r(x)‖)",
            **EXTENT,
            **bound("extent", d["extent"]),
            help="Half-width of the plotted window, in units of the distance from x to the boundary.",
        )
        c3.select_slider(
            "Resolution",
            **RESOLUTION,
            **bound("res", d["res"]),
            help="Grid points per side. Adaptive refinement only evaluates cells near the boundary.",
        )

        subspace = perturbation = None
        if view.direction == "uap":  # the Universal page's UAP (its settings, its disk cache)
            uv_settings = _state.UniversalView.read(default_h(sel.clf)).settings()
            uv_points = _cached.study_points(sel.dataset_key, uv_settings.points)
            perturbation = _cached.universal_study(sel.clf, uv_points, uv_settings).uap.v
        elif view.direction != "random":  # S_c / S_f exactly as Curvature vs m computes them (one disk-cache entry)
            S_c, S_f = _cached.study_subspaces(
                sel.clf,
                points,
                cv_settings,
                text=(f"S_c and S_f from n = {cv.n} training points (first use only; cached on disk)"),
            )
            subspace = S_f if view.direction == "sf" else S_c
        h = resolved.h if resolved is not None else None
        result = _cached.section_study(sel.clf, sel.x, view.settings(cv_settings, h), subspace, perturbation)
        section_key = _cached.section_key(sel.clf, sel.x, view.settings(cv_settings, h), subspace, perturbation)
        df, sec, along = result.deepfool, result.section, result.along
        nan = float("nan")
        kappa = float(along.kappa[0, 0]) if along is not None else nan
        K = float(along.curvature[0, 0]) if along is not None else nan
        grad_norm = float(along.grad_norm[0]) if along is not None else nan
        tangent = float(along.tangent_fraction[0, 0]) if along is not None else nan
        names = sel.clf.class_names
        if along is not None and along.h is not None:
            scale_text = f"finite differences, h = {along.h:.3g} ({resolved.text if resolved else 'authors'})"
        elif along is not None and along.beta is not None:
            scale_text = f"smoothed twin, β = {along.beta:.3g}"
        else:
            scale_text = CURVATURE_METHODS[cv.method] + (f", h = {h:.3g}" if h else "")
        label = view.label()
        left, right = st.columns([3, 1])
        with left:
            # a click on the plane shows the image there (issue 20 item 4); one key per section, so a new section
            # starts without a stale click
            click_key = f"section_click_{sel.model_name}_{sel.index}_{view.settings(cv_settings, h).key()}"
            clicked = _clicked_point(st.session_state.get(click_key))

            def build():
                fig = section_figure(
                    sec,
                    names,
                    direction_label=label,
                    curvature=kappa,
                    title=f"Normal cross-section along (r(x), {label})<br>",
                )  # κ goes on a second line
                # the class legend below the α-axis title instead of over it (the title's room: legible)
                fig.update_layout(margin=dict(b=130), legend=dict(yanchor="top", y=-0.17))
                return with_click_targets(fig, sec, clicked=clicked)

            # built once per section, direction label and clicked point: a rerun that returns to a section
            # (a datapoint or seed changed back and forth) draws it without building it again
            fig = _layout.cached_figure(f"section|{section_key}|{label}|{clicked}", build)
            _layout.chart(fig, key=click_key, on_select="rerun", selection_mode="points")
            if clicked is not None:
                _probe(sel, sec, clicked)
            else:
                st.caption("Click a point of the plane to see the image x + α e1 + β e2 there and its class.")
            st.info(section_reading(result), icon=":material/tune:")  # this section's κ, read (issue 23)
            _layout.metric_row(
                [
                    (
                        "κ along v",
                        _fmt(kappa),
                        "Normal curvature of the boundary at z along the tangent part Pv of v, in 1/pixel distance: "
                        "(Pv)ᵀH(Pv) / (‖Pv‖² ‖∇F(z)‖). Positive: the other class wraps around x. κ is a geometric "
                        "curvature (1/radius); the paper's K is the same quotient without the ‖∇F(z)‖ factor.",
                    ),
                    (
                        "paper's K(v)",
                        _fmt(K),
                        "(Pv)ᵀH(Pv)/‖Pv‖², in logit / pixel²: the quantity averaged in the paper's K_S (Fig. 7a), i.e. "
                        f"κ without the ‖∇F(z)‖ factor (‖∇F(z)‖ = {_fmt(grad_norm, '.3g')}).",
                    ),
                    (
                        "tangent share",
                        _fmt(tangent, ".3f"),
                        "‖Pv‖/‖v‖: how much of v lies in the tangent space of the boundary at z (the rest is along "
                        "the normal); 1 = v is fully tangent.",
                    ),
                ]
            )
            extra = ""
            if subspace is not None:
                s = subspace
                extra = f" Subspace: {s.kind}, m = {s.m}, from n = {s.n} training points ({s.n_dropped} dropped)"
                if view.direction == "sc":
                    extra += (
                        f"; mean K along this eigenvector over those n boundary points = "
                        f"{_fmt(float(s.curvatures[view.vec - 1]))} (κ {_fmt(float(s.kappas[view.vec - 1]))})"
                    )
                extra += "."
            st.caption(
                f"Curvature at {'z = x + r(x)' if cv.point == 'boundary' else 'x + 0.8·r(x)'} by {scale_text}"
                + ("" if along is not None else " (not measured: DeepFool found no boundary point)")
                + ". "
                f"{sec.n_forward:,} network evaluations for a {view.resolution}×{view.resolution} grid "
                f"({sec.n_forward / sec.dense_forward:.1%} of the dense {sec.dense_forward:,}); "
                f"cos(v, r) before orthogonalisation = {sec.cos_v_r:+.3f}." + extra
            )
        with right:
            k, j = int(df.label[0]), int(df.adv_label[0])
            st.image(
                to_display_image(sel.x, size=128),
                caption=f"x — predicted {_sidebar.class_name(names, k)} (true "
                f"{_sidebar.class_name(sel.dataset.class_names, sel.true_label)})",
            )
            img, scale = perturbation_display(df.r[0], size=128)
            st.image(img, caption=f"r(x), shown ×{scale:.3g} around grey — ‖r(x)‖₂ = {float(df.norms[0]):.4f}")
            st.image(
                to_display_image(df.x_adv[0], size=128), caption=f"x + r(x) — predicted {_sidebar.class_name(names, j)}"
            )
            st.metric(
                "‖r(x)‖₂ / ‖x‖₂",
                f"{float(df.norms[0]) / float(sel.x.norm()):.4f}",
                help="Relative size of the minimal perturbation (DeepFool, CVPR 2016, Table 1's ρ_adv for one point).",
            )
        # r(x)'s provenance and the pixel box, at full width (the image column is narrow)
        lo, hi = sel.clf.bounds
        if not bool(df.converged[0]):
            st.warning(
                "DeepFool did not change the label within its iteration limit"
                + (" inside the pixel box" if cv_settings.rx == "box" else "")
                + ": r(x) is not a boundary normal here."
            )
        elif bool(left_box(sel.clf, sel.x, df.r[0])[0]):
            excess = float(box_excess(sel.clf, sel.x, df.r[0])[0])
            st.warning(
                f"x + r(x) leaves the pixel box [{lo:g}, {hi:g}] (‖z − clip(z)‖₂ = {excess:.3g}, "
                f"{excess / float(df.norms[0]):.0%} of ‖r(x)‖): z and its curvature lie outside the data domain. "
                "Box-constrained DeepFool (the default r(x), in the settings above) keeps z inside."
            )
        else:
            text = f"x + r(x) lies inside the pixel box [{lo:g}, {hi:g}]."
            if cv_settings.rx == "box":  # what the paper's protocol would do at this point (issue 23, item 2)
                paper = _cached.unconstrained_box_share(sel.clf, sel.x)
                text += (
                    f" Under the paper's protocol (unconstrained DeepFool) it would leave it by "
                    f"{paper.median_excess:.0%} of ‖r(x)‖ (‖z − clip(z)‖₂ / ‖r(x)‖₂)."
                    if paper.n_outside
                    else " The paper's protocol (unconstrained DeepFool) keeps it inside too."
                )
            st.caption(text)
        st.caption(rx_provenance(cv_settings.rx) + ".")

        # ------------------------------------------------------------ Fig. 5: sections along one universal perturbation
        st.subheader("Along one universal perturbation (paper Fig. 5)")
        st.caption(
            "Top row: normal sections of several held-out points along the *same* vector v — the UAP of the Universal "
            "perturbations page (CVPR 2017 Alg. 1 at its ξ and settings); bottom row: each point along its own random "
            "direction of the same norm. Each title gives the curvature κ along v at z = x + r(x) and whether x + v "
            "changes the label. Whether the universal row bends more than the random one depends on the network and on "
            "h; the reading under the grid says what this network shows."
        )
        _state.seed_flag("fig5")  # links written before the URL binding say fig5=on / off
        fig5_on = st.toggle(
            "Show the Fig. 5 grid (computes the Universal page's UAP once; cached on disk)",
            **bound("fig5", False),
        )
        if fig5_on:
            uv_settings = _state.UniversalView.read(default_h(sel.clf)).settings()
            uv_points = _cached.study_points(sel.dataset_key, uv_settings.points)
            uv_study = _cached.universal_study(sel.clf, uv_points, uv_settings)
            grid = _fig5_grid(
                sel.clf,
                uv_points.heldout[:FIG5_POINTS],
                uv_study.uap.v,
                key=f"{sel.model_name}|{uv_points.heldout_key}|{uv_settings.key()}|{cv_settings.method}|{h}",
                method=cv_settings.method,
                h=h,
            )
            _layout.chart(section_grid_figure(grid, names))
            st.caption(
                f"‖v‖₂ = {grid.v_norm:.3g} (UAP fooling rate on held-out points {uv_study.uap_heldout:.0%}); "
                f"fooled in the top row: {int(grid.universal.fooled.sum())}/{FIG5_POINTS}, bottom row: "
                f"{int(grid.random.fooled.sum())}/{FIG5_POINTS}; mean κ along v "
                f"{float(grid.universal.kappa.nanmean()):+.3g} (universal) vs {float(grid.random.kappa.nanmean()):+.3g} "
                "(random), 1/pixel distance."
            )
            st.info(fig5_reading(grid, h=h, method=cv_settings.method), icon=":material/tune:")
        section_fig = fig
        _downloads.offer(
            "cross_sections",
            sel,
            {
                "section": result,
                **({"subspace": subspace} if subspace is not None else {}),
                **({"universal_perturbation": perturbation} if perturbation is not None else {}),
                **({"fig5": grid} if fig5_on else {}),
            },
            {
                "Cross-section": lambda: section_fig,
                **({"Fig. 5 grid": lambda: section_grid_figure(grid, names)} if fig5_on else {}),
            },
            cv_settings,
            title="Cross-sections",
            h=h,
        )


if __name__ == "__main__":  # run as a script: see pages/ui/__init__.py (legacy pages/ discovery)
    from app import main

    main()
