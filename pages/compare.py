"""Compare networks: is the curved subspace S_c shared across networks (paper ICLR 2018 §5, Fig. 10),
and does it transfer (Appendix C.2, Fig. 13)?"""

from __future__ import annotations

import dataclasses
import math

import streamlit as st

from geometry.compare import RANDOM_ROW
from geometry.hessian import default_h
from geometry.plotting import narrow, principal_angles_figure, section_figure, transfer_matrix_figure
from geometry.study import xi as xi_of
from geometry.study.readings import compare_reading
from pages.ui import cached as _cached
from pages.ui import downloads as _downloads
from pages.ui import jobs as _jobs
from pages.ui import layout as _layout
from pages.ui import sidebar as _sidebar
from pages.ui import state
from pages.ui import timing as _timing
from pages.ui.controls import H_SCALE_LABEL, box_share_note, h_scale_labels, rx_radio, xi_share_radio
from pages.ui.sidebar import model_label

#: r_B(x)'s protocol in the Fig. 13 caption (settings.rx).
RX_WORDS = {"box": "box-constrained DeepFool", "unconstrained": "unconstrained DeepFool (the paper's protocol)"}


def narrow_section(*args, **kwargs):
    """A cross-section for one of two columns (titles and legend wrapped for ~200 px)."""
    return narrow(section_figure(*args, **kwargs))


def render() -> None:
    """Draw the Compare networks page."""
    st.title("Compare networks")
    st.caption(
        "Is the curved subspace S_c a property of the data rather than of one network? S_c (top-m eigenvectors of the "
        "boundary Hessian averaged over n training points, tangent-projected) and S_f (top-m singular vectors of the "
        "DeepFool normals) are estimated for two networks on the *same* points with the *same* finite-difference scale h, "
        "then compared by the cosines of their principal angles (1 = a shared direction) against two random subspaces "
        "(paper §5, Fig. 10); the reading under the charts says whether these two networks share it at this h. A shared "
        "S_c explains why universal perturbations transfer across networks (Appendix C.2, Fig. 13)."
    )

    sel = _sidebar.selection()
    if sel is None:
        st.stop()
    _study_view(sel)  # a fragment: the page's controls rerun only it, not the sidebar (issue 20)


@st.fragment
@_timing.timed("compare")
def _study_view(sel: _sidebar.Selection) -> None:
    """The networks, the principal angles (Fig. 10), the transferred sections (Fig. 13, a fragment of its own) and
    the fooling-rate matrix with the downloads: a fragment, so a change of A, B, m, n, h or the matrix's settings
    reruns only this part, not the sidebar."""
    names = _cached.compatible_models(sel.dataset_key)
    if len(names) < 2:
        st.warning("Comparing needs two networks for this dataset: upload another one on the Home page (Your model).")
        st.stop()
    notice = st.container()  # the box of a comparison shown meanwhile (issue 20, item 3): on the first screen

    view = state.CompareView.read(names, sel.model_name, sel.dataset_key, sel.clf.d, default_h(sel.clf))
    d = state.CompareView.DEFAULTS
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
    c1.selectbox(
        "Network A",
        names,
        key="cmp_a",
        format_func=model_label,
        help="Defaults to the sidebar's network. Zoo networks of this dataset and your uploads with the same input shape.",
    )
    c2.selectbox(
        "Network B",
        [nm for nm in names if nm != view.a],
        key="cmp_b",
        format_func=model_label,
        help="The NiN-style net (other architecture, BatchNorm, other learning rate) or the same LeNet trained from "
        "another seed.",
    )
    c3.slider(
        "m: directions compared",
        **state.CompareView.m_bounds(sel.clf.d),
        **state.bound("cmp_m", d["cmp_m"]),
        help=f"Principal angles between the first m directions of each subspace (both estimated with "
        f"{state.CMP_M_ESTIMATED} directions, so changing m recomputes nothing).",
    )
    c4.slider(
        "n: points for S_c, S_f",
        **state.CMP_N,
        **state.bound("cmp_n", d["cmp_n"]),
        help="Training points whose boundary Hessians (S_c) and normals (S_f) are used — the same for both networks.",
    )
    rx_radio(st, "cmp_rx")  # both networks' boundary points and B's r_B(x) below (issue 23, item 2)

    with _sidebar.user_errors():  # zoo networks are trained here on first use (progress shown outside the caches)
        clf_a = _cached.get_model(view.a) if view.a != sel.model_name else sel.clf
        stand_in = _jobs.ready_or_stand_in(view.b, exclude=(view.a,))  # B still training: the nearest trained one
        if stand_in is None:
            _jobs.fallback_meanwhile(view.b)  # nothing of this dataset stands in for B: offer the digits networks
            st.stop()
        chosen, view = view, dataclasses.replace(view, b=stand_in)
        clf_b = _cached.get_model(view.b)
        h_authors = default_h(clf_a)
        settings = view.settings()
        points = _cached.study_points(sel.dataset_key, settings.points)
        scales = h_scale_labels(h_authors, "h = ξ/2, ξ = 1/5 of the random-noise norm fooling 50 % of A's points")
        with st.expander("Estimator settings (scale h)", expanded=view.scale != "authors"):
            e1, e2, e3 = st.columns([2, 1, 2])
            e1.radio(
                H_SCALE_LABEL,
                list(scales),
                **state.synced("cmp_scale"),
                format_func=scales.get,
                help="The same h is used for every network, so the comparison does not mix scales. On MNIST, LeNet "
                "and NiN share S_c at h ≈ ξ/2 but not at the authors' h (docs/reproduction-compare.md).",
            )
            if view.scale == "custom":
                e2.number_input("h", **state.H_INPUT, **state.bound("cmp_h", round(h_authors, 4)), format="%.4f")
            resolved = _cached.resolve_h(clf_a, settings.scale, points)
            h = resolved.h
            if view.scale == "xi" and resolved.preset == "xi":
                e2.metric(
                    "h = ξ/2",
                    f"{h:.3g}",
                    help=f"random noise of norm {resolved.noise.quantile:.3g} fools 50 % of A's held-out points",
                )
            elif view.scale == "xi":
                st.warning("Random noise fools fewer than 50 % of A's points at any norm tried; using the authors' h.")
            e3.caption(
                "S_c: finite-difference Hessian-vector products of F = f_j − f_k̂ at z = x + r(x), averaged tangent "
                "Hessian, top eigenvectors (dense solve for d ≤ 100, else Lanczos). S_f: SVD of the unit normals."
            )
        chosen.share()  # the URL keeps the chosen B, not its stand-in
        a_label, b_label, m = model_label(view.a), model_label(view.b), view.m

        # ---------------------------------------------------------------- (a) principal angles, Fig. 10
        st.subheader("Principal angles between the subspaces (Fig. 10)")
        shown = _cached.compare_study_or_ready(  # or meanwhile the last finished comparison (issue 20, item 3)
            clf_a,
            clf_b,
            points,
            settings,
            text=f"Estimating S_c and S_f of {a_label} and {b_label}",
            name=f"{view.a} and {view.b}",
            dataset=sel.dataset_key,
            notice=notice,
        )
        both, n = shown.result, view.n
        if not shown.own:  # a stand-in's networks, points and settings (its box above says whose)
            clf_a, clf_b, points, settings = shown.inputs
            a_label, b_label = (model_label(nm) for nm in shown.name.split(" and ", 1))
            h, n, m = both.h if both.h is not None else h, settings.points.n_estimate, min(m, both.m_estimated)
        result = _cached.compare_angles(both, settings, m=m)
        left, right = st.columns(2)
        for col, kind in ((left, "curved"), (right, "flat")):
            cmp_ = result[kind]
            _layout.chart(narrow(principal_angles_figure(cmp_, height=420)), col)
            col.metric(
                f"{'S_c' if kind == 'curved' else 'S_f'}: largest cosine",
                f"{float(cmp_.cosines[0]):.3f}",
                delta=f"random {float(cmp_.baseline.mean[0]):.3f} ± {float(cmp_.baseline.std[0]):.3f}: "
                f"{float(cmp_.z_scores[0]):+.1f} std",
                delta_color="off",
                help=f"cos θ_1 between the two subspaces, next to the mean ± std of the largest cosine between two "
                f"random {m}-dimensional subspaces of R^{cmp_.d} ({settings.n_baseline} pairs) and its distance "
                "from that mean in baseline standard deviations.",
            )
        st.info(compare_reading(result), icon=":material/tune:")  # these two networks' answer (issue 23)
        Sa, Sb = both.subspaces["curved"]
        st.caption(
            f"d = {result['curved'].d}; S_c and S_f from the same n = {n} training points "
            f"({Sa.n_dropped} / {Sb.n_dropped} dropped where DeepFool did not converge), finite differences at h = {h:.4g}. "
            f"{int(result['curved'].above_baseline(2.0).sum())} of the {m} S_c cosines lie more than 2 baseline std above "
            f"the random mean. Mean normal curvature κ along the first S_c direction: {float(Sa.kappas[0]):+.3g} "
            f"({a_label}), {float(Sb.kappas[0]):+.3g} ({b_label}) per pixel distance. When d is small (8×8 digits: "
            f"d = 64) even random subspaces share directions: the baseline is high."
        )
        for clf, label in ((clf_a, a_label), (clf_b, b_label)):  # the paper's protocol's share outside, either way
            box_share_note(st, clf, points, settings.rx, network=label)
        if not shown.own:  # the sections and the matrix need the chosen pair's S_c; no downloads of a stand-in
            st.caption(
                f"B's cross-sections along A's S_c (Fig. 13), the fooling-rate matrix (Appendix C.2) and the downloads "
                f"follow when the comparison of {model_label(view.a)} and {model_label(view.b)} is ready."
            )
            return

        # ------------------------------------------------------------ (b) transferred cross-sections, Fig. 13
        st.subheader("B's boundary along A's curved directions (Fig. 13)")
        st.caption(
            f"Normal cross-sections of **{b_label}** at the sidebar's datapoint (test image {sel.index}): horizontal = its "
            f"own normal r(x) by {RX_WORDS[settings.rx]}, vertical = a direction of S_c({a_label}) (left) or a random direction (right). If "
            f"S_c transfers, B's boundary bends around x along A's direction (positive curvature) but hardly along the "
            f"random one."
        )
        results = {"comparison": both, "angles": result}  # + the fragment's latest sections, for the downloads
        shown: dict = {}
        _transfer_view(
            sel, clf_b, Sa, h=h, rx=settings.rx, a_label=a_label, b_label=b_label, results=results, shown=shown
        )

        # ------------------------------------------------------------ (c) fooling-rate matrix, Appendix C.2
        st.subheader("Do universal perturbations transfer? (Appendix C.2)")
        st.caption(
            "Random vectors of norm ξ drawn uniformly from the first m directions of each network's S_c (the recipe of "
            "Fig. 7b), applied to every network, on held-out test points. Row = whose S_c, column = the network fooled; "
            "the diagonal is each network's own S_c, off-diagonal cells measure transfer; the last row (random vectors "
            "of the whole space, same norm) is the baseline."
        )
        f1, f2, f3 = st.columns([3, 2, 2])
        f1.multiselect(
            "more networks (each needs its own S_c)",
            [nm for nm in names if nm not in (view.a, view.b)],
            key="cmp_nets",
            format_func=model_label,
            help="Networks of the zoo are trained on first use; each adds a row and a column.",
        )
        xi_share_radio(f2, "cmp_share", state.CMP_SHARES["options"], fractions=True, help="Measured on network A.")
        f3.slider("random vectors per row", **state.CMP_VECTORS, **state.bound("cmp_vectors", d["cmp_vectors"]))
        share_, n_vectors = view.noise_share, view.vectors
        clfs = {view.a: clf_a, view.b: clf_b, **{nm: _cached.get_model(nm) for nm in view.nets}}  # trained on first use
        noise = _cached.noise_norm(clf_a, points, float(share_))
        if not math.isfinite(noise.quantile):
            st.warning(
                f"Random noise fools fewer than {share_:.0%} of the points even at the largest norm tried "
                f"({noise.infinite_share:.0%} of random rays never change A's label): pick a smaller share."
            )
            st.stop()
        xi = xi_of(noise)
        tm = _cached.fooling_matrix(clfs, points, settings, h=h, m=m, xi=xi, n_vectors=int(n_vectors))
        _layout.chart(transfer_matrix_figure(tm))
        st.caption(
            f"ξ = {xi:.4g} = 1/5 of {noise.quantile:.4g}, the ℓ2 norm of random noise that fools {share_:.0%} of "
            f"{len(points.noise)} held-out points of {a_label} ({noise.infinite_share:.0%} of random rays never change its "
            f"label). On {b_label}: vectors from A's S_c fool {tm.rate(view.a, view.b):.0%}, from its own S_c "
            f"{tm.rate(view.b, view.b):.0%}, random vectors {tm.rate(RANDOM_ROW, view.b):.0%}. m = {m} directions, "
            f"{n_vectors} vectors per row, {tm.n_points} held-out test points; fooling = the network's own prediction changes."
        )
        results["fooling_matrix"] = tm
        _downloads.offer(
            "compare",
            sel,
            results,
            {
                "Principal angles, S_c": lambda: principal_angles_figure(result["curved"], height=420),
                "Principal angles, S_f": lambda: principal_angles_figure(result["flat"], height=420),
                "B along S_c(A)": lambda: section_figure(
                    results["transfer_sections"].subspace_section,
                    clf_b.class_names,
                    direction_label=f"S_c(A) direction {shown['k']}",
                ),
                "B along a random v": lambda: section_figure(
                    results["transfer_sections"].random_section,
                    clf_b.class_names,
                    direction_label=f"random v (seed {shown['seed']})",
                ),
                "Fooling-rate matrix": lambda: transfer_matrix_figure(tm),
            },
            settings,
            title="Compare networks",
            h=h,
        )


@st.fragment
@_timing.timed("compare sections")
def _transfer_view(
    sel, clf_b, Sa, *, h: float, rx: str, a_label: str, b_label: str, results: dict, shown: dict
) -> None:
    """B's normal cross-sections along A's S_c direction k and along a random direction (Fig. 13) with their
    controls: a fragment, so a change of the direction, the seed or the resolution reruns only these two figures
    (issue 20). ``Sa``: A's S_c estimate (``basis`` (d, m), ``kappas`` (m,)); h: the finite-difference scale; rx:
    the r(x) protocol. The sections shown go into ``results["transfer_sections"]`` and ``shown`` (``k``,
    ``seed``): the page's downloads read both when a button is pressed, so they follow a rerun of this fragment."""
    d = state.CompareView.DEFAULTS
    k = state.option_value("cmp_k", d["cmp_k"], None, int, **state.CMP_DIRECTION)
    seed = state.option_value("cmp_seed", d["cmp_seed"], None, int, **state.SEED)
    resolution = state.widget_value("cmp_res", d["cmp_res"], int, **state.RESOLUTION)
    s1, s2, s3 = st.columns(3)
    s1.number_input("direction of S_c(A) (1 = most curved for A)", **state.CMP_DIRECTION, **state.synced("cmp_k"))
    s2.number_input("random direction seed", **state.SEED, **state.synced("cmp_seed"))
    s3.select_slider("resolution", **state.RESOLUTION, **state.bound("cmp_res", d["cmp_res"]))
    direction = Sa.basis[:, k - 1]
    args = dict(seed=seed, resolution=resolution, h=h, rx=rx)
    ts = _cached.transfer_sections(clf_b, sel.x, direction, **args)
    results["transfer_sections"] = ts
    shown.update(k=k, seed=seed)
    kappa = [float(v) for v in ts.kappa]
    key = f"{_cached.transfer_sections_key(clf_b, sel.x, direction, **args)}|{a_label}|{b_label}|{k}|{seed}"

    def _kappa(v: float) -> str:
        return f"κ = {v:+.3g} per pixel distance" if math.isfinite(v) else "κ undefined"

    left, right = st.columns(2)
    _layout.chart(
        _layout.cached_figure(
            f"compare-along-sc|{key}",
            lambda: narrow_section(
                ts.subspace_section,
                clf_b.class_names,
                direction_label=f"S_c(A) direction {k}",
                title=f"{b_label} along S_c({a_label}) direction {k}<br><sup>{_kappa(kappa[0])}</sup>",
            ),
        ),
        left,
    )
    _layout.chart(
        _layout.cached_figure(
            f"compare-along-random|{key}",
            lambda: narrow_section(
                ts.random_section,
                clf_b.class_names,
                direction_label=f"random v (seed {seed})",
                title=f"{b_label} along a random direction<br><sup>{_kappa(kappa[1])}</sup>",
            ),
        ),
        right,
    )
    if not ts.converged:
        st.warning("DeepFool did not change B's label at this point: r(x) is not a boundary normal and κ is undefined.")
    st.caption(
        f"κ: normal curvature of B's boundary at z = x + r_B(x) along each direction (finite differences at h = "
        f"{h:.4g}; 1/pixel distance; positive = the other class wraps around x). For comparison, A's own mean κ along "
        f"its S_c direction {k} over the n points: {float(Sa.kappas[k - 1]):+.3g}. ‖r_B(x)‖₂ = {ts.r_norm:.4g}."
    )


if __name__ == "__main__":  # run as a script: see pages/ui/__init__.py (legacy pages/ discovery)
    from app import main

    main()
