"""Universal perturbations: random vectors of the curved subspace S_c versus the flat subspace S_f and
a random subspace as universal perturbations, next to the UAP algorithm (paper ICLR 2018 §5,
Fig. 7b, 8, 9), and Theorems 1–2 evaluated on measured quantities."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from geometry.hessian import default_h
from geometry.plotting import fooling_rate_vs_m_figure, inner_product_figure, universal_gallery_figure
from geometry.study import NOISE_RANGE_FACTOR, UAP_DELTA
from geometry.study.readings import universal_reading
from pages.ui import cached as _cached
from pages.ui import downloads as _downloads
from pages.ui import jobs as _jobs
from pages.ui import layout as _layout
from pages.ui import sidebar as _sidebar
from pages.ui import timing as _timing
from pages.ui.controls import H_SCALE_LABEL, box_share_note, h_scale_labels, rx_radio, xi_share_radio
from pages.ui.state import (
    CV_M,
    CV_N,
    H_INPUT,
    UV_SAMPLES,
    UV_SHARES,
    UV_XI,
    UniversalView,
    bound,
    option_value,
    synced,
)


def render() -> None:
    """Draw the Universal perturbations page (its widgets bound to the URL)."""
    st.title("Universal perturbations")
    st.caption(
        "A universal perturbation is one vector v that changes the label of most inputs: k̂(x + v) ≠ k̂(x). "
        "Theorem 2 of the paper predicts that *random* vectors of the curved subspace S_c (directions along which the "
        "decision boundary bends around the data, see Curvature vs m) are universal perturbations. We draw random vectors "
        "of norm ξ from the first m directions of S_c, of S_f (the subspace of the normals r(x), what Theorem 1 uses) and "
        "of a random subspace, and count how many held-out points each one fools; the dotted line is the UAP algorithm "
        "(Moosavi-Dezfooli et al., CVPR 2017) at the same ξ. By default ξ is 4 % of a typical image's norm ‖x‖, the "
        "ratio of that paper (ξ = 2000 on ImageNet images of norm ≈ 5·10⁴: a quasi-imperceptible perturbation); the "
        "ICLR 2018 Fig. 7b rule, 1/5 of the norm of random noise that fools most points, is one choice away."
    )
    sel = _sidebar.selection()
    if sel is None:
        st.stop()
    _study_view(sel)  # a fragment: the page's controls rerun only it, not the sidebar (issue 20)


@st.fragment
@_timing.timed("universal")
def _study_view(sel: _sidebar.Selection) -> None:
    """The settings, the fooling-rate curves with their numbers and reading, the gallery (Fig. 8), the diversity
    (Fig. 9), the theorems and the downloads: a fragment, so a change of one of its controls reruns only this part;
    each figure is built once per study (and gallery m) and kept (:func:`pages.ui.layout.cached_figure`)."""
    clf = sel.clf
    notice = st.container()  # above the controls: a stand-in's box is on the first screen (issue 20, item 3)
    h_authors = default_h(clf)
    view = UniversalView.read(h_authors)
    d = UniversalView.DEFAULTS
    c1, c2, c3, c4 = st.columns(4)
    c1.slider(
        "n: points used for S_c",
        **CV_N,
        **bound("uv_n", d["uv_n"]),
        help="Training points whose boundary Hessians are averaged to find S_c (and whose normals give S_f). The "
        "paper used n = 100. The same points and disk cache as the Curvature vs m page.",
    )
    c2.slider(
        "maximum m",
        **CV_M,
        **bound("uv_m", d["uv_m"]),
        help="Dimension of the subspaces; curves go from m = 1 to this.",
    )
    c3.slider(
        "random vectors per m",
        **UV_SAMPLES,
        **bound("uv_samples", d["uv_samples"]),
        help="How many random unit vectors of each subspace are tried at each m: the line is their mean fooling "
        "rate, the dashed line the best of them.",
    )
    xi_share_radio(
        c4,
        "uv_share",
        UV_SHARES["options"],
        help="With ξ set as a share of ‖x‖ (the default), this share sets only h (its 'Fig. 7b ξ' preset).",
        label="noise norm / 5 that fools (Fig. 7b's ξ; sets h)",
    )
    st.selectbox(
        "ξ: the ℓ2 norm of every universal vector",
        list(UV_XI),
        **synced("uv_xi"),
        format_func=UV_XI.get,
        help="How large 'small' is. The papers' universal perturbations are quasi-imperceptible: CVPR 2017 uses "
        "ξ = 2000 on ImageNet images whose ℓ2 norm is about 5·10⁴ (4 %). ICLR 2018 Fig. 7b sets ξ to 1/5 of the "
        "norm of random noise that fools most points, which on MNIST-sized inputs can be as large as the image.",
    )
    s1, s2 = st.columns([2, 1])
    scales = h_scale_labels(h_authors, "h = the Fig. 7b ξ (1/5 of the noise norm fooling the share above)")
    s1.radio(
        H_SCALE_LABEL,
        list(scales),
        **synced("uv_scale"),
        format_func=scales.get,
        help="S_c uses finite differences of gradients at scale h. S_c beats S_f as a source of universal "
        "perturbations mostly when h is about the perturbation norm ξ (measured on an MNIST LeNet: "
        "docs/reproduction-universal.md).",
    )
    s2.number_input(
        "h", **H_INPUT, **bound("uv_h", round(h_authors, 4)), format="%.4f", disabled=view.scale != "custom"
    )
    rx_radio(st, "uv_rx")
    settings = view.settings()

    with _sidebar.user_errors():
        points = _cached.study_points(sel.dataset_key, settings.points)
        try:  # the study, or meanwhile the last finished one (issue 20, item 3): the page never waits long for it
            shown = _cached.universal_study_or_ready(
                clf, points, settings, name=sel.model_name, dataset=sel.dataset_key, notice=notice
            )
        except _jobs.JobFailedError:
            _xi_defined(clf, points, settings)  # ξ undefined: said as before; any other failure is raised below
            raise
        if shown.own:
            _xi_defined(clf, points, settings)  # the noise norm is the study's: read from its cache
        study, key = shown.result, shown.key  # the study's key: its figures' too
        clf, points, settings = shown.inputs  # a stand-in's network, points and settings (its study_box says so)
        model_name, share_pct = shown.name, round(settings.share * 100)
        curve = study.curve
        ms = [int(m) for m in curve.m_values]
        chart_slot = _layout.figure_first()  # present mode (tour step 6): the fooling-rate chart above the metrics
        cols = _layout.metric_columns(5)  # one wrapping row: no value cut at 800 px
        widened = study.noise_max_norm > math.sqrt(clf.d) * clf.bounds_range * 1.0001
        cols[0].metric(
            "ξ (pixel ℓ2)",
            f"{study.xi:.3g}",
            help=(
                f"{study.xi_ratio:.0%} of {study.x_norm:.3g}, the median ‖x‖₂ of {len(points.noise)} held-out images "
                f"(CVPR 2017's ratio is 4 %). For comparison, 1/5 of the noise norm (ICLR 2018 Fig. 7b) would be "
                f"{study.noise_quantile / 5:.3g}: "
                if study.xi_ratio is not None
                else ""
            )
            + f"1/5 of {study.noise_quantile:.3g}, the norm of random noise that fools {share_pct} % of "
            f"{len(points.noise)} held-out points (one random ray each, searched up to ‖noise‖₂ = "
            f"{study.noise_max_norm:.3g}"
            + (
                f", {NOISE_RANGE_FACTOR:g}× the pixel cube's diameter because "
                f"within the diameter fewer than {share_pct} % of the "
                "points are fooled"
                if widened
                else ""
            )
            + f"). Median DeepFool ‖r(x)‖ = {study.theorems[0]['r_median']:.3g}, so ξ = "
            f"{study.theorems[0]['xi_in_r']:.2g} ‖r‖.",
        )
        cols[1].metric(
            "random rays that never fool",
            f"{study.infinite_share:.0%}",
            help=f"Share of random rays x + t·u along which the label never changes (up to ‖t·u‖ = "
            f"{study.noise_max_norm:.3g}): a ReLU network is positively homogeneous, so far out the label is "
            "that of u. They count as infinite noise norms.",
        )
        cols[2].metric(
            "UAP algorithm",
            f"{study.uap_heldout:.0%}",
            help=f"Fooling rate on the {study.n_heldout} held-out points of the UAP (CVPR 2017 Alg. 1, ℓ2, ξ, "
            f"target 1 − δ = {1 - UAP_DELTA:.0%}) computed on {study.n_uap} training points: "
            f"{study.uap.n_passes} passes, training fooling rates "
            + ", ".join(f"{r:.0%}" for r in study.uap.fooling_rates)
            + " (best pass kept).",
        )
        for col, name in zip(cols[3:], ("S_c", "S_f"), strict=True):
            i = int(curve.best[name].argmax())
            col.metric(
                f"best {name} vector",
                f"{float(curve.best[name][i]):.0%}",
                help=f"Best single random vector of {name} over all m (at m = {ms[i]}); the best mean over the "
                f"{curve.n_samples} vectors is {float(curve.mean[name].max()):.0%}.",
            )
        _layout.chart(
            _layout.cached_figure(
                f"fooling-vs-m|{key}", lambda: fooling_rate_vs_m_figure(curve, uap_rate=study.uap_heldout, h=study.h)
            ),
            chart_slot,
        )
        x_norm = float(points.heldout.flatten(1).norm(dim=1).median())  # a typical ‖x‖ of the held-out points
        st.info(universal_reading(study, x_norm=x_norm), icon=":material/tune:")  # this network's curve (issue 23)
        acc = f" (test accuracy {study.accuracy:.1%})" if study.accuracy is not None else ""
        scale_text = {
            "authors": "the authors' default 10·√d/512",
            "xi": "h = 1/5 of the noise norm, Fig. 7b's ξ",
            "custom": "custom",
        }[settings.scale.preset]
        st.caption(
            f"{model_name}{acc}. S_c: top-m eigenvectors of the tangent-projected boundary Hessian averaged over "
            f"n = {study.n_estimate} training points' boundary points z = x + r(x) ({study.n_dropped} dropped: DeepFool did not "
            f"converge), finite differences at h = {study.h:.3g} ({scale_text}); S_f: the top-m left "
            f"singular vectors of their normals r(x)/‖r(x)‖; random: a uniformly random subspace. Each point of a curve: "
            f"{curve.n_samples} random vectors uniform on the sphere of radius ξ = {study.xi:.3g} of the first m directions "
            f"(the same random coefficients for the three subspaces), evaluated on {curve.n_points} held-out test points "
            f"(one-sided: k̂(x + v) ≠ k̂(x), no clipping to the pixel range). The UAP's v lies "
            f"{study.uap_in_curved[-1]:.0%} in S_c (m = {ms[-1]}) against {study.uap_in_random[-1]:.0%} in the random "
            f"subspace (‖P v‖/‖v‖). Computed in {study.seconds:.0f} s."
        )
        box_share_note(st, clf, points, settings.rx)  # the paper's protocol's share outside, either way

        # ------------------------------------------------------------------ gallery (Fig. 8)
        st.subheader("Perturbed images (Fig. 8)")
        # default: the m ≥ 2 with the highest mean S_c fooling rate (at m = 1 all vectors are ±one direction)
        best_m = max((m for m in ms if m >= 2), key=lambda m: float(curve.mean["S_c"][ms.index(m)]), default=ms[-1])
        options = [0, *ms]
        option_value("uv_gm", 0, options, int)  # the options move with m
        gm = st.selectbox(
            "m for the S_c vectors below",
            options,
            **synced("uv_gm"),
            format_func=lambda v: f"m = {best_m}: highest mean S_c fooling rate among m ≥ 2" if v == 0 else f"m = {v}",
            help="The S_c vectors of the gallery, the diversity plot and the theorems are drawn from the "
            "first m directions of S_c.",
        )
        samples = _cached.universal_samples(clf, study, points, settings, m=best_m if gm == 0 else int(gm))
        names = clf.class_names
        rows = []
        for name, g in samples.gallery.items():
            dom = (
                f"most frequent new label '{_sidebar.class_name(names, g['dominant'])}': {g['dominant_share']:.0%} of "
                f"the fooled points ({g['dominant_of_all']:.0%} of all)"
                if g["dominant"] is not None
                else "fools no point"
            )
            rows.append(
                {
                    "name": name,
                    "v": g["v"],
                    "images": samples.gallery_images,
                    "labels": samples.gallery_labels,
                    "new_labels": g["new_labels"],
                    "subtitle": f"{name}: fools {g['rate']:.0%} of held-out points; {dom}",
                }
            )
        rms = study.xi / math.sqrt(clf.d)
        st.markdown(  # how small "small" is, beside the images (issue 23, item 3)
            f"Every perturbation below has ‖v‖₂ = ξ = **{study.xi:.3g}**, that is **{study.xi / x_norm:.0%} of ‖x‖** "
            f"(median ‖x‖₂ = {x_norm:.3g} of the held-out images) and a root-mean-square change of {rms:.3g} per pixel "
            f"({rms / clf.bounds_range:.0%} of the pixel range, over {clf.d} pixels)."
        )
        _layout.chart(
            _layout.cached_figure(f"gallery|{key}|{samples.m}", lambda: universal_gallery_figure(rows, names))
        )
        st.caption(
            f"Left: the perturbation, shown as 0.5 + v/(2·max|v|) (grey = 0; its ℓ2 norm is ξ = {study.xi:.3g}). Then the "
            f"first {len(samples.gallery_labels)} held-out images plus v, titled k̂(x) → k̂(x + v) (red: the label changed); "
            "images are clipped to the pixel range for display only, labels are those of the unclipped x + v, as in the "
            f"fooling rates. The S_c vector is the best of {len(samples.curved_rates)} random vectors of S_c at m = "
            f"{samples.m} (selected on these held-out points, so its rate is optimistic; their mean is "
            f"{float(samples.curved_rates.mean()):.0%})."
        )

        # ------------------------------------------------------------------ diversity (Fig. 9)
        st.subheader("Diversity (Fig. 9)")
        d1, d2 = st.columns([3, 2])
        k = len(samples.curved_rates)
        labels = [f"v{i + 1} ({float(r):.0%})" for i, r in enumerate(samples.curved_rates)]
        _layout.chart(
            _layout.cached_figure(
                f"inner-products|{key}|{samples.m}",
                lambda: inner_product_figure(
                    samples.gram,
                    labels=labels,
                    title=f"Normalised inner products of {k} random S_c vectors (m = {samples.m})",
                ),
            ),
            d1,
        )
        d2.metric(
            "mean |cos| between different S_c vectors",
            f"{samples.mean_abs_cos:.2f}",
            help=f"For random unit vectors of an m-dimensional subspace the expected |cos| is ≈ √(2/(π m)) = "
            f"{math.sqrt(2 / (math.pi * samples.m)):.2f} at m = {samples.m}.",
        )
        d2.metric(
            "their fooling rates",
            f"{float(samples.curved_rates.min()):.0%} – {float(samples.curved_rates.max()):.0%}",
            help="One-sided fooling rate of each of the vectors on the held-out points.",
        )
        d2.caption(
            "Fig. 9 of the paper: many different universal perturbations come out of one subspace S_c (the paper reports "
            "normalised inner products below 0.1 on CIFAR-10). Vectors that are nearly orthogonal but all fool many "
            "points explain why fine-tuning against one universal perturbation does not remove the others. Labels give "
            "each vector's fooling rate."
        )

        # ------------------------------------------------------------------ theorems
        st.subheader("Theorems 1 and 2 on measured quantities")
        row = next(r for r in study.theorems if r["m"] == samples.m)
        t1, t2, t3, t4 = _layout.metric_columns(4)

        def _fmt(v: float, unit: str = "") -> str:
            return "∞ (not applicable)" if not math.isfinite(v) else f"{v:.3g}{unit}"

        t1.metric(
            f"Theorem 1 ρ at m = {samples.m}",
            _fmt(row["rho1_px"]),
            help=f"= {_fmt(row['rho1'])} ‖r‖ with fit ξ₁ = {row['fit_xi']:.3g} (1 − ξ₁ = smallest ‖P_S r̂(x)‖ over "
            f"held-out normals, S = first m directions of S_f), δ = {UAP_DELTA:g}.",
        )
        t2.metric(
            f"Theorem 2 ρ at m = {samples.m}",
            _fmt(row["rho2_px"]),
            help=f"= {_fmt(row['rho2'])} ‖r‖ with κ = {row['kappa']:.3g} (normal curvature {row['kappa_normal']:.3g} "
            f"per pixel along S_c's first m directions × median ‖r‖ / 2), δ = {UAP_DELTA:g}.",
        )
        t3.metric(
            "measured: ξ of the S_c vectors",
            f"{study.xi:.3g}",
            help=f"= {row['xi_in_r']:.3g} ‖r‖; mean fooling rate of S_c vectors at this m: {row['S_c_mean']:.0%} "
            f"(two-sided {float(samples.curved_two_sided.mean()):.0%}); S_f vectors: {row['S_f_mean']:.0%} "
            f"(two-sided {float(samples.flat_two_sided.mean()):.0%}).",
        )
        t4.metric(
            "measured: ‖v‖ of the UAP",
            f"{float(study.uap.v.norm()):.3g}",
            help=f"fooling rate {study.uap_heldout:.0%} on held-out points.",
        )
        table = pd.DataFrame(
            [
                {
                    "m": r["m"],
                    "ξ₁ (normals' misfit to S_f)": r["fit_xi"],
                    "Thm 1 ρ (‖r‖)": r["rho1"],
                    "Thm 1 ρ (pixels)": r["rho1_px"],
                    "κ normal (1/pixel)": r["kappa_normal"],
                    "κ (Thm 2 units)": r["kappa"],
                    "Thm 2 ρ (‖r‖)": r["rho2"],
                    "Thm 2 ρ (pixels)": r["rho2_px"],
                    "measured ξ (pixels)": r["xi_norm"],
                    "S_c fooling (mean)": r["S_c_mean"],
                    "S_f fooling (mean)": r["S_f_mean"],
                }
                for r in study.theorems
            ]
        )
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_config={c: st.column_config.NumberColumn(format="%.3g") for c in table.columns if c != "m"}
            | {
                c: st.column_config.NumberColumn(format="percent") for c in ("S_c fooling (mean)", "S_f fooling (mean)")
            },
        )
        st.caption(
            "Both theorems give a norm ρ, in units of the distance ‖r(x)‖ to the boundary (converted to pixels with the "
            f"median DeepFool ‖r(x)‖ = {row['r_median']:.3g} of the held-out points), that *suffices* for a fooling rate "
            f"of at least 1 − δ = {1 - UAP_DELTA:.0%}; compare them with the norm ξ at which the perturbations above "
            "were actually found. **Theorem 1** (flat boundaries) is about universal *directions*: if every normal r̂(x) "
            "lies within ξ₁ of an m-dimensional subspace S (here ξ₁ is measured on the held-out normals against the first "
            "m directions of S_f), a random direction of S of norm ρ = √(e·m)/(δ(1 − ξ₁)) changes the label of x + v *or* "
            "x − v for most x (hence the two-sided rates); it is ∞ when some normal is orthogonal to S (ξ₁ = 1). "
            "**Theorem 2** (curved boundaries) is about universal *vectors*: if the boundary curves towards x with "
            "curvature ≥ κ along most directions of S, a random vector of S of norm ρ = √(2 ln(2/δ))/(κ√m) + κ^(−1/2) fools "
            "most points. κ here is the *mean* normal curvature re-evaluated along S_c's first m directions at scale h "
            "(not a lower bound, and measured at scale h, not at ρ), converted to the theorem's units (κ = κ_normal·‖r‖/2); "
            "∞ when it is not positive. κ > 1 is outside the proof's range. Formulas reconstructed from the paper's "
            "garbled text and checked against its proofs: see geometry/theory.py."
        )
        if not shown.own:
            return  # no downloads of a stand-in: they would carry this page's network's name
        _downloads.offer(
            "universal",
            sel,
            {"study": study, "samples": samples},
            {
                "Fooling rate vs m": lambda: fooling_rate_vs_m_figure(curve, uap_rate=study.uap_heldout, h=study.h),
                "Perturbed images": lambda: universal_gallery_figure(rows, names),
                "Inner products": lambda: inner_product_figure(samples.gram, labels=labels),
            },
            settings,
            title="Universal perturbations",
            h=study.h,
            main_table="study.curve",
        )


def _xi_defined(clf, points, settings) -> None:
    """Stop the page with a warning when ξ is set from the noise norm and random noise never fools the chosen share
    of the held-out points (the noise norm is a job of its own; once the study ran, a cache hit)."""
    noise = _cached.noise_norm(clf, points, settings.share)
    if settings.xi_ratio is None and not math.isfinite(noise.quantile):
        st.warning(
            f"Random noise fools fewer than {round(settings.share * 100)} % of the held-out points even at ‖noise‖₂ = "
            f"{noise.max_norm:.3g} ({noise.infinite_share:.0%} of random rays never change the label), so ξ "
            "is undefined here: try the 50 % share, or ξ as a share of ‖x‖."
        )
        st.stop()


if __name__ == "__main__":  # run as a script: see pages/ui/__init__.py (legacy pages/ discovery)
    from app import main

    main()
