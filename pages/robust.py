"""Robust training: standard, adversarially trained (PGD, FGSM) and CURE networks side by side — accuracy
under attack, distance to the boundary and the curvature of the loss (CURE, CVPR 2019; DESIGN §7)."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from geometry import zoo
from geometry.plotting import (
    curvature_profile_figure,
    finite_difference_figure,
    loss_along_figure,
    narrow,
    robust_accuracy_figure,
    section_figure,
)
from geometry.study import choose_points
from geometry.study.robust import DEFAULT_EPS, RobustSettings, point_distance, point_study, robust_study
from pages.ui import cached as _cached
from pages.ui import downloads as _downloads
from pages.ui import sidebar as _sidebar
from pages.ui import state
from pages.ui.sidebar import model_label

N_POINTS = dict(min_value=10, max_value=300, step=10)
EPS_INPUT = dict(min_value=0.001, max_value=1.0)
H_INPUT = dict(min_value=0.01, max_value=10.0)
STEPS = dict(min_value=5, max_value=100, step=5)
REGIME_LABELS = {"standard": "standard", "pgd-at": "PGD-AT", "fgsm-at": "FGSM-AT", "cure": "CURE"}

st.title("Robust training")
st.caption(
    "Robustness and curvature, *and vice versa*: adversarial training (PGD-AT, Madry et al. 2018; FGSM-AT, Wong et "
    "al. 2020) makes the loss far less curved in input space, and penalising that curvature directly (CURE, "
    "Moosavi-Dezfooli et al., CVPR 2019) buys much of AT's robustness. Pick two to four networks — regimes of one "
    "architecture from the zoo, or your uploads — and compare their accuracy under attack, their distance to the "
    "boundary and the curvature profile of their loss on the same test points."
)

sel = _sidebar.selection()
if sel is None:
    st.stop()
names = _cached.compatible_models(sel.dataset_key)
family = next(
    (f for f in zoo.REGIME_FAMILIES.values() if sel.model_name in f.values()),
    zoo.REGIME_FAMILIES.get(f"{sel.dataset_key}-lenet"),
)
defaults = [family[r] for r in ("standard", "pgd-at", "cure")] if family else [sel.model_name]
defaults = [n for n in defaults if n in names] or [sel.model_name]
if "rob_nets" not in st.session_state:
    from_url = [t for t in state.param("rob_nets", "").split(",") if t in names]
    st.session_state["rob_nets"] = from_url[:4] if len(from_url) >= 2 else defaults
st.session_state["rob_nets"] = [n for n in st.session_state["rob_nets"] if n in names][:4]


def _regime(name: str) -> str:
    entry = zoo.ZOO.get(name)
    return REGIME_LABELS.get(entry.regime, entry.regime) if entry else "uploaded"


st.multiselect(
    "Networks (two to four)",
    names,
    key="rob_nets",
    max_selections=4,
    format_func=lambda n: f"{model_label(n)} ({_regime(n)})",
    help="Zoo networks of this dataset (trained on first use) and your uploads with the same input shape "
    "(Home page, Your model). The zoo's regimes: digits-lenet / mnist-lenet (standard), *-pgd, *-fgsm, *-cure.",
)
chosen = list(st.session_state["rob_nets"])
d = sel.clf.d
with st.expander("Settings: points, ε, h", expanded=False):
    c1, c2, c3, c4 = st.columns(4)
    n_points = c1.slider("test points", **N_POINTS, value=state.init_state("rob_n", 50, int, **N_POINTS), key="rob_n_w")
    eps = c2.number_input(
        "ℓ∞ ε of the PGD accuracy",
        **EPS_INPUT,
        value=state.init_state("rob_eps", DEFAULT_EPS.get(d, 0.1), float, **EPS_INPUT),
        format="%.4f",
        key="rob_eps_w",
        help="Pixel units (inputs in [0, 1]). Zoo defaults: 0.1 on 8×8 digits, 0.3 on MNIST, 8/255 on CIFAR-10.",
    )
    h = c3.number_input(
        "h: scale of the finite-difference curvature",
        **H_INPUT,
        value=state.init_state("rob_h", 0.5, float, **H_INPUT),
        format="%.3f",
        key="rob_h_w",
        help="CURE's ‖∇ℓ(x + h z) − ∇ℓ(x)‖₂ / h with z = sign(∇ℓ)/‖sign(∇ℓ)‖: curvature at the attack's scale "
        "(pixel ℓ2).",
    )
    steps = c4.slider("PGD steps", **STEPS, value=state.init_state("rob_steps", 20, int, **STEPS), key="rob_steps_w")
state.share(
    rob_n=n_points, rob_eps=eps, rob_h=h, rob_steps=steps, rob_nets=",".join(n for n in chosen if state.shareable(n))
)

if len(chosen) < 2:
    st.info("Choose at least two networks to compare.")
    st.stop()

with _sidebar.user_errors():
    settings = RobustSettings(
        n_points=int(n_points),
        eps=float(eps),
        pgd_steps=int(steps),
        h=float(h),
        fmn_max_stepsize=1.0 if d >= 784 else 0.1,
        seed=0,
    )
    clfs = {n: _cached.get_model(n) for n in chosen}  # zoo networks are trained on first use
    test = sel.dataset
    perm = choose_points(len(test.images), min(int(n_points), len(test.images)), random_state=0)
    xs, ys = test.images[perm], test.labels[perm]
    studies = {}
    for name, clf in clfs.items():
        bar, update = _cached.progress_bar(f"Measuring {model_label(name)}")
        studies[model_label(name)] = robust_study(clf, xs, ys, settings, progress=update)
        bar.empty()

    # ------------------------------------------------------------------ table
    st.subheader("Accuracy, distance to the boundary, curvature, cost")
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
                f"PGD accuracy (ℓ∞ ε = {eps:g})": r.pgd_accuracy,
                "ρ_adv (DeepFool)": r.rho_adv,
                "DeepFool left the box": r.deepfool_left_box,
                "ρ boundary (box DeepFool / FMN)": r.rho_boundary,
                "median distance (ℓ2)": float(r.distance[r.distance.isfinite()].median())
                if bool(r.distance.isfinite().any())
                else math.nan,
                "mean ‖H‖₂ (exact)": float(prof.spectral_norm.mean()),
                "median ‖H‖₂ (exact)": float(prof.spectral_norm.median()),
                f"mean curvature at h = {h:g}": float(prof.finite_difference.mean()),
                "mean tr H (Hutchinson)": float(prof.trace.mean()),
                "training time (s)": total,
            }
        )
    table = pd.DataFrame(rows)
    pct = {c: "{:.1%}" for c in table.columns if "accuracy" in c or "left the box" in c}
    fmt = {**pct, **{c: "{:.3g}" for c in table.columns if c not in pct and c not in ("network", "regime")}}
    split = list(table.columns).index("mean ‖H‖₂ (exact)")
    for cols in (list(table.columns[:split]), ["network", *table.columns[split:]]):
        part = table[cols]
        st.dataframe(
            part.style.format({c: f for c, f in fmt.items() if c in cols}, na_rep="n/a"),
            hide_index=True,
            width="stretch",
        )
    left_box = [n for n, r in studies.items() if r.deepfool_left_box > 0]
    wins = "; ".join(f"{n}: " + ", ".join(f"{a} {k}" for a, k in r.wins.items()) for n, r in studies.items())
    st.caption(
        f"{settings.n_points} test points of {sel.dataset_key} (seeded choice), true labels. PGD: ℓ∞, {steps} steps of "
        f"2.5ε/{steps}, random start. ρ_adv = mean ‖r(x)‖₂/‖x‖₂ of unconstrained DeepFool (DeepFool paper, Table 1); "
        "ρ boundary = the same with the smallest successful of box-constrained DeepFool and foolbox's minimum-norm "
        f"attack FMN (points won — {wins}). ‖H‖₂: top |eigenvalue| of the exact input Hessian of the loss "
        f"(double backprop, Lanczos). Training time: as recorded in the zoo's model card (CURE includes the standard "
        "network it fine-tunes); n/a for uploads."
    )
    if left_box:
        st.warning(
            "Unconstrained DeepFool left the pixel box [0, 1] on some points of "
            + ", ".join(f"{n} ({studies[n].deepfool_left_box:.0%})" for n in left_box)
            + ": there its ‖r(x)‖ is no distance to an image the network could see. The ρ boundary column and "
            "everything below use the box-constrained distance instead."
        )

    st.plotly_chart(robust_accuracy_figure(studies), width="stretch")

    # ------------------------------------------------------------------ profiles
    st.subheader("Curvature profiles (CURE Fig. 2)")
    p1, p2 = st.columns(2)
    p1.plotly_chart(narrow(curvature_profile_figure(studies)), width="stretch")
    p2.plotly_chart(narrow(finite_difference_figure(studies)), width="stretch")
    st.caption(
        f"Left: eigenvalues of the exact input Hessian ∇²ₓℓ at each point (top {settings.k} by magnitude; mean over "
        "points, band 25–75 %). For ReLU networks it is Jᵀ(diag p − ppᵀ)J almost everywhere and vanishes where the "
        f"network is confident, so it can barely separate regimes. Right: curvature at scale h = {h:g} (pixel ℓ2), "
        "the quantity CURE penalises — the one that separates them (DESIGN §7)."
    )

    # ------------------------------------------------------------------ one datapoint
    st.subheader(f"At the sidebar's datapoint (test image {sel.index})")
    q1, q2 = st.columns(2)
    v_seed = q1.number_input(
        "random direction seed",
        **state.SEED,
        value=state.init_state("rob_seed", 0, int, **state.SEED),
        key="rob_seed_w",
    )
    factor = q2.slider("window (multiples of the largest distance)", 1.5, 6.0, 3.0, 0.5, key="rob_extent")
    with st.spinner("Boundary distance at x…"):
        at_x = [float(point_distance(c, sel.x, settings).distance[0]) for c in clfs.values()]
    dist = max((v for v in at_x if math.isfinite(v)), default=1.0)
    extent = float(factor) * dist
    with st.spinner("Loss along directions and cross-sections…"):
        pts = {
            model_label(n): point_study(c, sel.x, settings, extent=extent, v_seed=int(v_seed)) for n, c in clfs.items()
        }
    st.plotly_chart(loss_along_figure(pts), width="stretch")
    st.caption(
        "Solid: the loss ℓ(x + t u) along the unit boundary normal u = δ/‖δ‖ (δ the smallest successful perturbation); "
        "dotted: along a random unit direction through the same x (CURE Fig. 1). A standard network's loss rises "
        "steeply and curves along the normal; a robust one's stays low and nearly linear over the same distance."
    )
    per_row = 2 if len(pts) != 3 else 3
    items = list(pts.items())
    for start in range(0, len(items), per_row):
        cols = st.columns(per_row)
        for col, (name, p) in zip(cols, items[start : start + per_row], strict=False):
            col.plotly_chart(
                section_figure(
                    p.section,
                    clfs[next(n for n in clfs if model_label(n) == name)].class_names,
                    direction_label=f"random v (seed {int(v_seed)})",
                    title=f"{name}<br><sup>distance {p.distance:.3g} ({p.winner})</sup>",
                    height=460,
                ),
                width="stretch",
            )
    st.caption(
        f"Normal cross-sections through x (0, 0) on the plane (δ, v) of each network, the same random v and the same "
        f"window ±{extent:.3g} (pixel ℓ2). To look closer at one network, choose it in the sidebar and open "
        "Cross-sections, Curvature vs m or Universal perturbations."
    )
    l1, l2, l3 = st.columns(3)
    l1.page_link("pages/cross_sections.py", label="Cross-sections", icon=":material/content_cut:")
    l2.page_link("pages/curvature.py", label="Curvature vs m", icon=":material/show_chart:")
    l3.page_link("pages/universal.py", label="Universal perturbations", icon=":material/public:")
    _downloads.offer(
        "robust",
        sel,
        {"summary": rows, "networks": studies, "at_datapoint": pts},
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
