"""Certified vs empirical: the Lipschitz-margin certificate ε_cert(x) (a lower bound on the distance to
the boundary) beside the smallest successful attack ‖r(x)‖ (an upper bound) — Tsuzuku et al., NeurIPS 2018.

The view (:class:`pages.ui.robust_views.CertifyView`) → :class:`geometry.study.certify.CertifySettings` →
one background job (the study, or the attacks alone for a network without a Lipschitz bound) → figures.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from geometry.plotting import (
    accuracy_vs_eps_figure,
    certificate_ladder_figure,
    certified_scatter_figure,
    certified_section_figure,
    ladder_accuracy_figure,
    layer_norms_figure,
    narrow,
    radius_ratio_figure,
)
from geometry.study.certify import AttackStudy, CertifySettings, CertifyStudy
from geometry.study.readings import (
    VISIBLE_SHARE,
    certificate_ladder_reading,
    certified_section_reading,
    certify_pair_reading,
    certify_reading,
    disk_share,
)
from pages.ui import cached as _cached
from pages.ui import downloads as _downloads
from pages.ui import layout as _layout
from pages.ui import masking as _masking
from pages.ui import robust_views as _views
from pages.ui import sidebar as _sidebar
from pages.ui import timing as _timing
from pages.ui.sidebar import model_label


def _attacks_only(attacks: AttackStudy, settings: CertifySettings) -> None:
    """A network whose Lipschitz constant cannot be bounded: the empirical side alone."""
    finite = attacks.distance[np.isfinite(attacks.distance)]
    st.metric("median ‖r(x)‖", f"{np.median(finite):.3g}" if len(finite) else "—")
    st.subheader("Accuracy under attack against ε")
    _layout.chart(accuracy_vs_eps_figure(attacks))
    st.caption(
        f"{len(attacks.distance)} test points. ‖r(x)‖: the smallest successful of {', '.join(settings.attacks)} — "
        "an upper bound on the distance to the boundary; without a Lipschitz bound there is no lower bound to "
        "put beside it."
    )


def _beside(sel: _sidebar.Selection, study: CertifyStudy, settings: CertifySettings) -> None:
    """The same certificate for another network of the dataset (``cert_vs`` in the URL; the tour's step 8
    puts the standard network beside the LMT one), read at this network's median radius."""
    none = "(none)"
    options = [none, *(n for n in _cached.compatible_models(sel.dataset_key) if n != sel.model_name)]
    wanted = st.query_params.get("cert_vs", none)
    vs = st.selectbox(
        "Beside another network",
        options,
        index=options.index(wanted) if wanted in options else 0,
        help="Certify the same test points with another network and compare the certified accuracy at this "
        "network's median certified radius.",
    )
    if vs == none:
        return
    other = _views.certify(_cached.get_model(vs), sel.dataset, settings)
    if other.study is None:
        st.warning(f"No certificate for {vs}: {other.unsupported}")
        return
    st.info(
        certify_pair_reading({model_label(sel.model_name): study, model_label(vs): other.study}),
        icon=":material/compare_arrows:",
    )


def render() -> None:
    """The "Certified vs empirical" page."""
    st.title("Certified vs empirical")
    st.caption(
        "If L bounds the network's ℓ2 Lipschitz constant (pixels → logits, normalisation included), no perturbation "
        "smaller than ε_cert(x) = margin / (√2·L) can change the label (Lipschitz-margin training, Tsuzuku et al. "
        "2018). An attack that does change it with a perturbation r(x) proves the boundary is no farther than ‖r(x)‖. "
        "The true distance lies between the two: a sound certificate never exceeds ‖r(x)‖."
    )

    sel = _sidebar.selection()
    if sel is None:
        return
    _study_view(sel)  # a fragment: the page's controls rerun only it, not the sidebar (issue 20)


@st.fragment
@_timing.timed("certify")
def _study_view(sel: _sidebar.Selection) -> None:
    """Everything below the sidebar: the controls, the readings and figures of the study, the certified section of
    the datapoint and the downloads — a fragment, so a change of the test points or CROWN's ball reruns only this
    part; each figure is built once per study (or datapoint) and kept (:func:`pages.ui.layout.cached_figure`)."""
    notice = st.container()  # above the controls: a stand-in's box is on the first screen (issue 20, item 3)
    with _sidebar.user_errors():
        view = _views.CertifyView.read()  # the slider below shows (and sets) the same session value
        st.slider(
            "Test points", **_views.CERT_N, key="cert_n", help="The first test points; both radii for each of them."
        )
        st.selectbox(
            "CROWN ball",
            _views.CERT_CROWN,
            key="cert_crown",
            format_func=lambda v: {"l2": "ℓ2", "linf": "ℓ∞ (also an ℓ2 certificate)", "none": "off"}[v],
            help="The ball of CROWN's local certificate (linear bound propagation), run on the first "
            f"{view.settings().crown_points} points. An ℓ∞ radius is also an ℓ2 one: the ℓ2 ball lies "
            "inside the ℓ∞ ball of the same radius.",
        )
        view.share()
        settings = view.settings()
        # the study, or meanwhile the last finished one with the job's progress (issue 20, item 3)
        shown = _views.certify_or_ready(
            sel.clf, sel.dataset, settings, name=sel.model_name, dataset_key=sel.dataset_key, notice=notice
        )
        outcome, settings, key = shown.result, shown.inputs[-1], shown.key  # the study's key: its figures' too
        if outcome.study is None:
            whose = "this network" if shown.own else model_label(shown.name)
            st.error(f"**No certificate for {whose}:** {outcome.unsupported}")
            assert outcome.attacks is not None
            _attacks_only(outcome.attacks, settings)
            return
        study = outcome.study

        def figure(name: str, build):
            return _layout.cached_figure(f"certify-{name}|{key}", build)

        _masking.banners({model_label(shown.name): _masking.certified_flags(study)}, number="certified radii")
        cert, check, bound = study.certificate, study.check, study.certificate.bound
        ladder_slot = _layout.figure_first()  # present mode (tour step 8): the ladder's two charts on the first screen

        if not check.sound:
            st.error(
                f"**Unsound bound:** the best certificate > ‖r(x)‖ at {len(check.violations)} of {check.n_checked} "
                f"points (test indices {check.violations[:20].tolist()}{' …' if len(check.violations) > 20 else ''}). "
                "An attack crossed the boundary inside a 'certified' radius: one of the bounds (Lipschitz or CROWN) "
                "is wrong for this network — a bug."
            )
        else:
            st.success(certify_reading(study))
        finite = check.ratio[np.isfinite(check.ratio)]
        c1, c2, c3, c4 = _layout.metric_columns(4)
        c1.metric("L (sound upper bound)", f"{bound.upper:.4g}", help=bound.method)
        c2.metric("L (power iteration)", f"{bound.estimate:.4g}", help="A lower estimate: not a certificate.")
        c3.metric("median ‖r‖ / ε_cert", f"{np.median(finite):.3g}×" if len(finite) else "—")
        c4.metric(
            "median ε_cert",
            f"{np.median(study.best):.3g}",
            help="Best sound radius: max of the plain M/(√2L), LMT's last-layer pairwise refinement and CROWN.",
        )

        st.subheader("A ladder of certificates")
        st.info(certificate_ladder_reading(study), icon=":material/stairs:")
        left, right = (ladder_slot if ladder_slot is not None else st).columns(2)
        with left:
            _layout.chart(figure("ladder", lambda: narrow(certificate_ladder_figure(study))))
        with right:
            _layout.chart(figure("ladder-accuracy", lambda: narrow(ladder_accuracy_figure(study))))
        st.caption(
            "Every sound lower bound on the distance to the boundary, per point: the global Lipschitz certificate "
            "M/(√2·L), LMT's last-layer pair refinement, and CROWN's local bound by linear bound propagation (Zhang "
            f"et al. 2018; {study.crown_note}). The best of them is the certificate; the smallest successful attack "
            "sits above. Sound bounds need not be ordered among themselves; every one must stay below the attack."
        )

        if shown.own:
            _beside(sel, study, settings)  # a stand-in is compared with nothing: it is not the chosen network
        left, right = st.columns(2)
        with left:
            st.subheader("Certified radius against attack distance")
            _layout.chart(figure("scatter", lambda: narrow(certified_scatter_figure(study))))
        with right:
            st.subheader("Accuracy against ε")
            _layout.chart(figure("accuracy", lambda: narrow(accuracy_vs_eps_figure(study))))
        left, right = st.columns(2)
        with left:
            st.subheader("The gap ‖r(x)‖ / ε_cert(x)")
            _layout.chart(figure("ratio", lambda: narrow(radius_ratio_figure(study))))
        with right:
            st.subheader("Per-layer Lipschitz constants")
            _layout.chart(figure("layers", lambda: narrow(layer_norms_figure(bound))))
        wins = {w: study.winner.count(w) for w in sorted(set(study.winner)) if w}
        pair = (
            " The pairwise refinement (last layer's rows) raises the median radius "
            f"{np.median(cert.radius_pair / np.maximum(cert.radius_plain, 1e-300)):.2f}×."
            if cert.radius_pair is not None
            else " No pairwise refinement: the logits do not come from a Linear layer."
        )
        st.caption(
            f"{len(cert)} test points. ‖r(x)‖: the smallest successful of {', '.join(settings.attacks)} "
            f"(won: {', '.join(f'{k} {v}' for k, v in wins.items())}). L = product of per-layer bounds over the graph "
            "(sums over residual branches); the estimate replaces each sound spectral norm by power iteration." + pair
        )

        if not shown.own:
            return  # the section of the chosen point and the downloads come with the network's own result
        st.subheader(f"Test point {sel.index}: both radii on a normal cross-section")
        cs = _views.certified_section(sel.clf, sel.x)
        cs_key = _views.certified_section_key(sel.clf, sel.x)  # its figures are built once per datapoint
        names = sel.clf.class_names
        if cs.radius > 0 and disk_share(cs) < VISIBLE_SHARE:  # issue 23 item 4: a disk one can see
            full, zoom = st.columns(2)
            _layout.chart(
                _layout.cached_figure(
                    f"certified-section-narrow|{cs_key}", lambda: narrow(certified_section_figure(cs, names))
                ),
                full,
            )
            half = 3 * max(cs.radius, cs.radius_estimate)

            def zoomed():
                fig = certified_section_figure(cs, names, height=520)
                fig.update_xaxes(range=[-half, half]).update_yaxes(range=[-half, half])
                fig.update_layout(title=dict(text=f"Zoom on x: ±{half:.3g} (pixel ℓ2)"))
                return narrow(fig)

            _layout.chart(_layout.cached_figure(f"certified-section-zoom|{cs_key}", zoomed), zoom)
        else:
            _layout.chart(
                _layout.cached_figure(f"certified-section|{cs_key}", lambda: certified_section_figure(cs, names))
            )
        st.caption(
            "Plane through x spanned by DeepFool's r(x) and a random direction; the certified disk holds in every "
            "plane through x, DeepFool's ‖r(x)‖ is dashed. " + certified_section_reading(cs)
        )
        _downloads.offer(
            "certify",
            sel,
            {"certify": study, "section": cs},
            {
                "Certified vs attack radius": lambda: certified_scatter_figure(study),
                "Accuracy vs ε": lambda: accuracy_vs_eps_figure(study),
                "Radius ratio": lambda: radius_ratio_figure(study),
                "Per-layer Lipschitz": lambda: layer_norms_figure(bound),
                "Certificate ladder": lambda: certificate_ladder_figure(study),
                "Certified accuracy per bound": lambda: ladder_accuracy_figure(study),
                "Certified section": lambda: certified_section_figure(cs, sel.clf.class_names),
            },
            settings,
            title="Certified vs empirical",
        )


if __name__ == "__main__":  # run as a script: see pages/ui/__init__.py (legacy pages/ discovery)
    from app import main

    main()
