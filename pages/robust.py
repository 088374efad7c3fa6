"""Robust training: standard, adversarially trained (PGD, FGSM) and CURE networks side by side — accuracy
under attack, distance to the boundary and the curvature of the loss (CURE, CVPR 2019; DESIGN §7).

The view (:class:`pages.ui.robust_views.RobustView`) → :class:`geometry.study.robust.RobustSettings` →
one background job per network (:func:`geometry.study.robust.robust_study`) and one for the datapoint's
sections → table and figures. The robust accuracy of the AutoAttack-style ensemble beside PGD's
(:func:`geometry.study.robust.ensemble_study`, slower) is one more background job per network, awaited last
and drawn in its place under the table; every masking flag is a banner above the table (issue 21).
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from geometry import zoo
from geometry.cache import cache_key
from geometry.plotting import (
    curvature_profile_figure,
    finite_difference_figure,
    loss_along_figure,
    narrow,
    robust_accuracy_figure,
    section_figure,
)
from geometry.study import data_fingerprint, network_fingerprint
from geometry.study.readings import ensemble_reading, robust_reading
from geometry.study.robust import EnsembleStudy, RobustSettings, RobustStudy
from pages.ui import cached as _cached
from pages.ui import downloads as _downloads
from pages.ui import jobs as _jobs
from pages.ui import layout as _layout
from pages.ui import masking as _masking
from pages.ui import nav
from pages.ui import robust_views as _views
from pages.ui import sidebar as _sidebar
from pages.ui import timing as _timing
from pages.ui.sidebar import model_label

REGIME_LABELS = {"standard": "standard", "pgd-at": "PGD-AT", "fgsm-at": "FGSM-AT", "cure": "CURE"}


def _regime(name: str) -> str:
    entry = zoo.ZOO.get(name)
    return REGIME_LABELS.get(entry.regime, entry.regime) if entry else "uploaded"


def _default_networks(model_name: str, dataset_key: str, names: list[str]) -> list[str]:
    """The sidebar network's regime family (standard, PGD-AT, CURE), else the dataset's LeNet family."""
    family = next(
        (f for f in zoo.REGIME_FAMILIES.values() if model_name in f.values()),
        zoo.REGIME_FAMILIES.get(f"{dataset_key}-lenet"),
    )
    defaults = [family[r] for r in ("standard", "pgd-at", "cure")] if family else [model_name]
    return [n for n in defaults if n in names] or [model_name]


def _controls(names: list[str]) -> None:
    """The network picker and the settings' widgets (keys of :class:`pages.ui.robust_views.RobustView`)."""
    st.multiselect(
        "Networks (two to four)",
        names,
        key="rob_nets",
        max_selections=4,
        format_func=lambda n: f"{model_label(n)} ({_regime(n)})",
        help="Zoo networks of this dataset (trained on first use) and your uploads with the same input shape "
        "(Home page, Your model). The zoo's regimes: digits-lenet / mnist-lenet (standard), *-pgd, *-fgsm, *-cure.",
    )
    with st.expander("Settings: points, ε, h, ensemble", expanded=False):
        c1, c2, c3, c4 = st.columns(4)
        c1.slider("test points", **_views.ROB_N, key="rob_n")
        c2.number_input(
            "ℓ∞ ε of the PGD accuracy",
            **_views.ROB_EPS,
            format="%.4f",
            key="rob_eps",
            help="Pixel units (inputs in [0, 1]). Zoo defaults: 0.1 on 8×8 digits, 0.3 on MNIST, 8/255 on CIFAR-10.",
        )
        c3.number_input(
            "h: scale of the finite-difference curvature",
            **_views.ROB_H,
            format="%.3f",
            key="rob_h",
            help="CURE's ‖∇ℓ(x + h z) − ∇ℓ(x)‖₂ / h with z = sign(∇ℓ)/‖sign(∇ℓ)‖: curvature at the attack's scale "
            "(pixel ℓ2).",
        )
        c4.slider("PGD steps", **_views.ROB_STEPS, key="rob_steps")
        st.slider(
            "ensemble test points",
            **_views.ROB_ENS,
            key="rob_ens",
            help="The first test points on which the AutoAttack-style ensemble (APGD-CE, APGD-T, Square) measures "
            "robust accuracy beside PGD's: ≈ 1000 gradient steps per point plus Square's 5000 queries on the points "
            "left robust, so it runs after the rest of the page.",
        )


def _summary(clfs: dict, studies: dict[str, RobustStudy], view: _views.RobustView) -> list[dict]:
    """One row per network: accuracy, distance to the boundary, curvature, cost (numbers read from the studies)."""
    rows = []
    for name, clf in clfs.items():
        r = studies[model_label(name)]
        secs = clf.info.get("train_seconds")
        rob = clf.info.get("robustness") or {}
        total = (secs or 0.0) + float(rob.get("base_train_seconds") or 0.0) if secs is not None else None
        prof = r.profile
        rows.append(
            {
                "network": model_label(name),
                "regime": _regime(name),
                "clean accuracy": r.clean_accuracy,
                f"PGD accuracy (ℓ∞ ε = {view.eps:g})": r.pgd_accuracy,
                "ρ_adv (DeepFool)": r.rho_adv,
                "DeepFool left the box": r.deepfool_left_box,
                "ρ boundary (minimal ensemble)": r.rho_boundary,
                "median distance (ℓ2)": float(r.distance[r.distance.isfinite()].median())
                if bool(r.distance.isfinite().any())
                else math.nan,
                "mean ‖H‖₂ (exact)": float(prof.spectral_norm.mean()),
                "median ‖H‖₂ (exact)": float(prof.spectral_norm.median()),
                f"mean curvature at h = {view.h:g}": float(prof.finite_difference.mean()),
                "mean tr H (Hutchinson)": float(prof.trace.mean()),
                "training time (s)": total,
            }
        )
    return rows


def _short(column: str) -> tuple[str, str]:
    """(short header, hover help) of a summary column: the tables fit at 1280 px, the full name and the detail are
    in the header's help (the DataFrame keeps the full names: downloads and tests read those)."""
    if column.startswith("PGD accuracy"):
        eps = column[column.index("ε") :].rstrip(")") if "ε" in column else ""
        return (
            f"PGD acc. ({eps})",
            f"{column}: robust accuracy under PGD in the ℓ∞ ball (pixel units, inputs in [0, 1]).",
        )
    if column.startswith("mean curvature at h"):
        h = column.split("=")[-1].strip()
        return f"curvature (h = {h})", (
            f"{column}: CURE's finite-difference curvature ‖∇ℓ(x + h z) − ∇ℓ(x)‖₂ / h, mean over the points."
        )
    if column.startswith("first broken by "):
        attack = column.removeprefix("first broken by ")
        return attack, f"{column}: points this attack was the first of the cascade to break (count)."
    return _SHORT.get(column, (column, column))


_SHORT = {
    "clean accuracy": ("clean acc.", "clean accuracy on the test points"),
    "ρ_adv (DeepFool)": ("ρ_adv", "ρ_adv (DeepFool): mean ‖r‖₂ / ‖x‖₂ of unconstrained DeepFool (converged points)"),
    "DeepFool left the box": (
        "left box",
        "DeepFool left the box: share of points where unconstrained DeepFool's x + r leaves [0, 1]",
    ),
    "ρ boundary (minimal ensemble)": (
        "ρ boundary",
        "ρ boundary (minimal ensemble): mean distance / ‖x‖₂ over the points where a minimal-norm attack succeeded",
    ),
    "median distance (ℓ2)": (
        "median ‖r‖₂",
        "median distance to the boundary, ℓ2, pixel units (smallest successful attack)",
    ),
    "mean ‖H‖₂ (exact)": ("mean ‖H‖₂", "mean ‖H‖₂ (exact): spectral norm of the loss Hessian at the points, mean"),
    "median ‖H‖₂ (exact)": ("median ‖H‖₂", "median ‖H‖₂ (exact): spectral norm of the loss Hessian, median"),
    "mean tr H (Hutchinson)": ("mean tr H", "mean tr H (Hutchinson): the Hessian's trace by Hutchinson's estimator"),
    "training time (s)": ("training", "training time in seconds (n/a: unknown, e.g. an upload)"),
    "ensemble robust accuracy": ("ensemble acc.", "ensemble robust accuracy: robust only if every attack failed"),
    "PGD − ensemble": ("PGD − ens.", "PGD − ensemble: how much PGD alone overestimates robust accuracy (points of %)"),
    "passes per point": ("passes / pt", "passes per point: network evaluations per point the ensemble used"),
    "points": ("points", "test points of the ensemble (true labels)"),
}


def _column_config(columns: list[str]) -> dict:
    """Short headers with the full names and the units as hover help (:func:`_short`)."""
    config: dict = {"network": st.column_config.TextColumn("network", pinned=True)}
    for c in columns:
        if c != "network":
            label, help_text = _short(c)
            config[c] = st.column_config.Column(label, help=help_text if help_text != c else None)
    return config


def _tables(rows: list[dict]) -> None:
    table = pd.DataFrame(rows)
    pct = {c: "{:.1%}" for c in table.columns if "accuracy" in c or "left the box" in c}
    fmt = {**pct, **{c: "{:.3g}" for c in table.columns if c not in pct and c not in ("network", "regime")}}
    fmt["median distance (ℓ2)"] = "{:.3g} px"  # ℓ2 in pixel units
    fmt["training time (s)"] = "{:.0f} s"
    split = list(table.columns).index("mean ‖H‖₂ (exact)")
    for cols in (list(table.columns[:split]), ["network", *table.columns[split:]]):
        part = table[cols]
        st.dataframe(
            part.style.format({c: f for c, f in fmt.items() if c in cols}, na_rep="n/a"),
            hide_index=True,
            width="stretch",
            column_config=_column_config(cols),
        )


ATTACK_LABELS = {
    "deepfool_box": "box DeepFool",
    "deepfool_refined": "DeepFool refined",
    "fmn": "FMN",
    "ddn": "DDN",
    "apgd-ce": "APGD-CE",
    "apgd-t": "APGD-T",
    "fab-t": "FAB-T",
    "square": "Square",
    "apgd-dlr": "APGD-DLR",
}


def _won_by(studies: dict[str, RobustStudy]) -> pd.DataFrame:
    """One row per network and minimal-norm attack: the points it won and its AttackBench optimality.

    Long, not wide: four columns whatever the number of networks and attacks (one row per network had
    1 + 2 × attacks columns, wider than the page at 1280 px)."""
    rows = []
    for name, r in studies.items():
        for a, v in r.optimality.items():
            if a != "ensemble":
                rows.append(
                    {
                        "network": name,
                        "attack": ATTACK_LABELS.get(a, a),
                        "points won": r.wins.get(a, 0),
                        "optimality": v,
                    }
                )
    return pd.DataFrame(rows, columns=["network", "attack", "points won", "optimality"])


def _ensemble_table(ens: dict[str, EnsembleStudy]) -> pd.DataFrame:
    rows = []
    for name, e in ens.items():
        row: dict = {
            "network": name,
            "points": e.n_points,
            "clean accuracy": e.clean_accuracy,
            f"PGD accuracy (ℓ∞ ε = {e.eps:g})": e.pgd_accuracy,
            "ensemble robust accuracy": e.ensemble_accuracy,
            "PGD − ensemble": e.gap,
        }
        for a, k in e.broken_by.items():
            row[f"first broken by {ATTACK_LABELS.get(a, a)}"] = k
        row["passes per point"] = e.passes_per_point
        rows.append(row)
    return pd.DataFrame(rows)


def _show_ensemble(ens: dict[str, EnsembleStudy]) -> None:
    table = _ensemble_table(ens)
    pct = {c: "{:.1%}" for c in table.columns if "accuracy" in c or c == "PGD − ensemble"}
    broken = {c: "{:.0f} pts" for c in table.columns if c.startswith("first broken by")}
    st.dataframe(
        table.style.format({**pct, **broken, "passes per point": "{:,.0f}"}, na_rep="n/a"),
        hide_index=True,
        width="stretch",
        column_config=_column_config(list(table.columns)),
    )
    first = next(iter(ens.values()))
    st.caption(
        f"{first.n_points} test points (the seeded choice of the table above: the same points when both counts "
        "agree), true labels. Ensemble (Croce & Hein, ICML 2020; the "
        f"authors' code, pyautoattack): {', '.join(ATTACK_LABELS.get(a, a) for a in first.attacks)} in a cascade, "
        "each on the points the earlier ones left robust; a point counts as robust only if every attack failed, so "
        "the ensemble's number is at most PGD's up to PGD's randomness. Square uses no gradients: if it breaks points "
        "the gradient attacks left, the gradients are masked (a banner above says so)."
    )
    st.info("\n".join(f"- {line}" for line in ensemble_reading(ens)), icon=":material/verified_user:")


def render() -> None:
    """The "Robust training" page."""
    st.title("Robust training")
    st.caption(
        "Robustness and curvature, *and vice versa*: the papers report that adversarial training (PGD-AT, Madry et "
        "al. 2018; FGSM-AT, Wong et al. 2020) makes the loss less curved in input space, and that penalising that "
        "curvature directly (CURE, Moosavi-Dezfooli et al., CVPR 2019) buys much of AT's robustness; the reading under "
        "the table says whether the networks chosen here show it. Pick two to four networks — regimes of one "
        "architecture from the zoo, or your uploads — and compare their accuracy under attack, their distance to the "
        "boundary and the curvature profile of their loss on the same test points."
    )

    sel = _sidebar.selection()
    if sel is None:
        return
    _study_view(sel)  # a fragment: the page's controls rerun only it, not the sidebar (issue 20)


@st.fragment
@_timing.timed("robust")
def _study_view(sel: _sidebar.Selection) -> None:
    """Everything below the sidebar: the networks and settings, the tables, readings and figures of the studies, the
    datapoint's seed and window with its curves and sections, the ensemble and the downloads — a fragment, so a
    change of one of its controls reruns only this part; each figure is built once per result and kept
    (:func:`pages.ui.layout.cached_figure`)."""
    names = _cached.compatible_models(sel.dataset_key)
    d = sel.clf.d
    view = _views.RobustView.read(names, _default_networks(sel.model_name, sel.dataset_key, names), d)
    _controls(names)  # the widgets show (and set) the view's session values
    view.share()
    if len(view.nets) < 2:
        st.info("Choose at least two networks to compare.")
        return

    with _sidebar.user_errors():
        settings: RobustSettings = view.settings(d)
        training = [n for n in view.nets if _jobs.needs_stand_in(n)]  # quick ones train here, as before
        for n in training:  # trained as jobs; the others are compared meanwhile (issue 20, item 3)
            _jobs.train_in_background(n)
            _jobs.training_box(n, None, "Meanwhile the page compares the chosen networks that are ready.")
        nets = [n for n in view.nets if n not in training]
        if len(nets) < 2:
            st.info("Fewer than two of the chosen networks are trained yet: the comparison appears when they are.")
            _jobs.fallback_meanwhile(training[0])  # on a fresh start: the digits regimes, ready in seconds
            st.stop()
        clfs = {n: _cached.get_model(n) for n in nets}
        xs, ys = _views.robust_test_points(sel.dataset, view.n)
        by_name = _views.robust_studies(clfs, xs, ys, settings, label=model_label)  # background jobs
        studies = {model_label(n): s for n, s in by_name.items()}
        # what the studies are computed from (networks, their labels, points, settings): their figures' key
        key = cache_key(
            {
                "networks": {n: network_fingerprint(clf) for n, clf in clfs.items()},
                "labels": list(studies),
                "points": data_fingerprint(xs),
                "settings": settings.key(),
            }
        )

        # ------------------------------------------------------------------ table
        # present mode (the tour's step 7): the robust-accuracy chart first, on the projector's first screen
        accuracy_slot = _layout.figure_first()
        flag_slot = st.container()  # masking banners: the studies' now, the ensemble's when it is done
        with flag_slot:
            _masking.banners({n: r.flags for n, r in studies.items()}, number="DeepFool distances")
        st.subheader("Accuracy, distance to the boundary, curvature, cost")
        rows = _summary(clfs, studies, view)
        _tables(rows)
        left_box = [n for n, r in studies.items() if r.deepfool_left_box > 0]
        st.caption(
            f"{settings.n_points} test points of {sel.dataset_key} (seeded choice), true labels. PGD: ℓ∞, "
            f"{view.steps} steps of 2.5ε/{view.steps}, random start. ρ_adv = mean ‖r(x)‖₂/‖x‖₂ of unconstrained "
            "DeepFool (DeepFool paper, Table 1); ρ boundary and the median distance: the distance to the boundary as "
            "per point the smallest successful perturbation of the minimal-norm ensemble — box-constrained DeepFool, "
            "the same refined on the boundary (bisection and projection along the normal), FMN (Pintor et al. 2021) "
            "and DDN (Rony et al. 2019); the table below says which attack won where. ‖H‖₂: top |eigenvalue| of the "
            "exact input Hessian of the loss (double backprop, Lanczos). Training time: as recorded in the zoo's model "
            "card (CURE includes the standard network it fine-tunes); n/a for uploads."
        )
        st.markdown("**Distance to the boundary: which attack won**")
        won = _won_by(studies)
        st.dataframe(
            won,
            hide_index=True,
            width="content",
            column_config={
                "points won": st.column_config.NumberColumn(help="points where this attack gave the smallest distance"),
                "optimality": st.column_config.NumberColumn(
                    format="%.3f", help="mean over points of best distance / this attack's (1 = always the best)"
                ),
            },
        )
        st.caption(
            "Points won: where the attack gave the smallest distance (ties go to the first listed). Optimality: "
            "AttackBench's (Cinà et al., AAAI 2025) mean over points of best distance / the attack's distance (0 where "
            "it failed; 1 = always the best)."
        )
        st.subheader("Robust accuracy: PGD and the AutoAttack-style ensemble")
        ens_slot = st.container()  # filled last: the ensemble is the slowest study of the page
        if left_box:
            st.warning(
                "Unconstrained DeepFool left the pixel box [0, 1] on some points of "
                + ", ".join(f"{n} ({studies[n].deepfool_left_box:.0%})" for n in left_box)
                + ": there its ‖r(x)‖ is no distance to an image the network could see. The ρ boundary column and "
                "everything below use the box-constrained distance instead."
            )

        st.info(
            "\n".join(f"- {line}" for line in robust_reading(studies)),
            icon=":material/insights:",
        )
        _layout.chart(
            _layout.cached_figure(f"robust-accuracy|{key}", lambda: robust_accuracy_figure(studies)), accuracy_slot
        )

        # ------------------------------------------------------------------ profiles
        st.subheader("Curvature profiles (CURE Fig. 2)")
        p1, p2 = st.columns(2)
        _layout.chart(
            _layout.cached_figure(f"robust-hessian|{key}", lambda: narrow(curvature_profile_figure(studies))), p1
        )
        _layout.chart(_layout.cached_figure(f"robust-fd|{key}", lambda: narrow(finite_difference_figure(studies))), p2)
        st.caption(
            f"Left: eigenvalues of the exact input Hessian ∇²ₓℓ at each point (top {settings.k} by magnitude; mean "
            "over points, band 25–75 %). For ReLU networks it is Jᵀ(diag p − ppᵀ)J almost everywhere and vanishes "
            f"where the network is confident, so it can barely separate regimes. Right: curvature at scale h = "
            f"{view.h:g} (pixel ℓ2), the quantity CURE penalises — the one that separates them (DESIGN §7)."
        )

        # ------------------------------------------------------------------ one datapoint
        st.subheader(f"At the sidebar's datapoint (test image {sel.index})")
        q1, q2 = st.columns(2)
        q1.number_input("random direction seed", **_views.ROB_SEED, key="rob_seed")
        q2.slider("window (multiples of the largest distance)", **_views.ROB_EXTENT, key="rob_extent")
        at_x = _views.robust_points(clfs, sel.x, settings, factor=view.extent, v_seed=view.seed)  # a background job
        pts = {model_label(n): p for n, p in at_x.points.items()}
        # the datapoint's figures: built once per (studies, x, window, seed) and kept
        at_key = f"{key}|{data_fingerprint(sel.x)}|{view.extent!r}|{view.seed}"
        _layout.chart(_layout.cached_figure(f"robust-loss-along|{at_key}", lambda: loss_along_figure(pts)))
        st.caption(
            "Solid: the loss ℓ(x + t u) along the unit boundary normal u = δ/‖δ‖ (δ the smallest successful "
            "perturbation); dotted: along a random unit direction through the same x. In CURE's Fig. 1 a standard "
            "network's loss rises steeply and curves along the normal while a robust one's stays low and nearly linear "
            "over the same distance; compare with the curves above."
        )
        per_row = 2 if len(pts) != 3 else 3
        items = list(at_x.points.items())
        for start in range(0, len(items), per_row):
            cols = st.columns(per_row)
            for col, (name, p) in zip(cols, items[start : start + per_row], strict=False):
                _layout.chart(
                    _layout.cached_figure(
                        f"robust-section|{at_key}|{name}",
                        lambda p=p, name=name: section_figure(
                            p.section,
                            clfs[name].class_names,
                            direction_label=f"random v (seed {view.seed})",
                            title=f"{model_label(name)}<br><sup>distance {p.distance:.3g} ({p.winner})</sup>",
                            height=460,
                        ),
                    ),
                    col,
                )
        st.caption(
            f"Normal cross-sections through x (0, 0) on the plane (δ, v) of each network, the same random v and the "
            f"same window ±{at_x.extent:.3g} (pixel ℓ2). To look closer at one network, choose it in the sidebar and "
            "open Cross-sections, Curvature vs m or Universal perturbations."
        )
        l1, l2, l3 = st.columns(3)
        nav.link(l1, "cross_sections", label="Cross-sections", icon=":material/content_cut:")
        nav.link(l2, "curvature", label="Curvature vs m", icon=":material/show_chart:")
        nav.link(l3, "universal", label="Universal perturbations", icon=":material/public:")

        # ------------------------------------------------------------------ the ensemble, last (slowest)
        with ens_slot:
            xe, ye = _views.robust_test_points(sel.dataset, view.ens_n)
            ens_by_name = _views.ensemble_studies(
                clfs, xe, ye, settings, view.ensemble_settings(), label=model_label
            )  # background jobs, their progress drawn here
            ens = {model_label(n): e for n, e in ens_by_name.items()}
            _show_ensemble(ens)
        with flag_slot:
            _masking.banners({n: e.flags for n, e in ens.items()}, number="PGD and DeepFool numbers")
        _downloads.offer(
            "robust",
            sel,
            {"summary": rows, "networks": studies, "ensemble": ens, "at_datapoint": pts},
            {
                "Accuracy vs ε": lambda: robust_accuracy_figure(studies),
                "Hessian eigenvalues": lambda: curvature_profile_figure(studies),
                "Curvature at h": lambda: finite_difference_figure(studies),
                "Loss along the normal": lambda: loss_along_figure(pts),
            },
            settings,
            title="Robust training",
            main_table="summary",
        )


if __name__ == "__main__":  # run as a script: see pages/ui/__init__.py (legacy pages/ discovery)
    from app import main

    main()
