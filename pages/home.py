"""Home: what the atlas is for, the selected network's model card, sample predictions."""

from __future__ import annotations

import streamlit as st

from geometry.device import device_label
from geometry.errors import AtlasError
from geometry.plotting import to_display_image
from pages.ui import cached as _cached
from pages.ui import jobs as _jobs
from pages.ui import layout as _layout
from pages.ui import sidebar as _sidebar
from pages.ui import tour as _tour
from pages.ui import upload as _upload


def render() -> None:
    """Draw Home: the introduction, the selected network's model card, sample predictions, the upload form."""
    st.title("Boundary Atlas")
    st.markdown(
        "**Why is a network fooled by one small perturbation?** Boundary Atlas shows the geometry of a "
        "classifier's decision boundary around real images — the DeepFool normal r(x), normal "
        "cross-sections, and the few shared, positively curved directions that make small *universal* "
        "perturbations possible (Moosavi-Dezfooli et al., ICLR 2018)."
    )

    _jobs.first_start_notice()  # issue 13: mnist-lenet trained in the background on first start
    _jobs.prepare_networks_panel()  # issue 14: train / compute a chosen set in the background
    _tour.prepare_lecture_panel()  # issue 23: exactly the guided tour's pinned networks and studies

    sel = _sidebar.selection()
    if sel is None:
        st.stop()

    clf = sel.clf
    st.subheader(f"Model card — {sel.model_name}")
    c1, c2, c3, c4 = _layout.metric_columns(4)
    c1.metric(
        "Test accuracy",
        "—" if clf.test_accuracy is None else f"{clf.test_accuracy:.1%}",
        help=f"On the {clf.info.get('dataset', '')} test split ({len(sel.dataset)} images).",
    )
    c2.metric("Parameters", f"{clf.info.get('parameters', sum(p.numel() for p in clf.model.parameters())):,}")
    c3.metric("Input d = C·H·W", f"{clf.d:,}", help=f"Input shape {clf.input_shape}, pixels in {list(clf.bounds)}")
    c4.metric("Classes", clf.num_classes)
    recipe = clf.info.get("recipe", {})
    st.markdown(
        f"- **Architecture:** `{clf.info.get('architecture', type(clf.model).__name__)}` — "
        f"{clf.info.get('description', '')}\n"
        f"- **Dataset:** {_cached.DATASET_LABELS.get(clf.info.get('dataset', ''), clf.info.get('dataset', ''))}; "
        f"normalisation inside the model: mean {tuple(round(v, 3) for v in clf.mean or ())}, "
        f"std {tuple(round(v, 3) for v in clf.std or ())}\n"
        f"- **Device:** {device_label(clf.device)} (choose it in the sidebar)\n"
        + (
            f"- **Training:** SGD, momentum {recipe.get('momentum')}, lr {recipe.get('lr')} ({recipe.get('lr_schedule')}), "
            f"weight decay {recipe.get('weight_decay')}, {recipe.get('epochs')} epochs, batch {recipe.get('batch_size')}, "
            f"seed {recipe.get('seed')}"
            + (f" — trained here in {clf.info['train_seconds']:.0f} s" if clf.info.get("train_seconds") else "")
            if recipe
            else ""
        )
    )

    st.subheader("Sample test images")
    n_show = 12
    start = min(sel.index, max(len(sel.dataset) - n_show, 0))
    xs = sel.dataset.images[start : start + n_show]
    try:
        pred = clf.predict(xs)  # an upload: in its worker, which may stop it at a limit (issue 22)
    except AtlasError as exc:
        st.error(str(exc))
        st.stop()
    cols = st.columns(n_show // 2)
    for j in range(len(xs)):
        true = int(sel.dataset.labels[start + j])
        p = int(pred[j])
        ok = "" if p == true else "— WRONG"  # text: emoji render as boxes without an emoji font
        cols[j % len(cols)].image(
            to_display_image(xs[j], size=96),
            caption=f"#{start + j} · true {_sidebar.class_name(sel.dataset.class_names, true)} · pred {_sidebar.class_name(clf.class_names, p)} {ok}",
        )

    st.subheader("Pages")
    st.markdown(
        "- **Cross-sections** — the decision regions in the plane spanned by the DeepFool normal r(x) and a second "
        "direction v — random, or from the curved / flat subspace (paper Fig. 5): is the boundary flat or curved "
        "around this datapoint?\n"
        "- **Curvature vs m** — the curved subspace S_c and the average curvature of held-out points along it, "
        "against the flat subspace S_f and random directions (Fig. 7a).\n"
        "- **Universal perturbations** — random vectors of S_c as universal perturbations, against S_f, random "
        "vectors and the UAP algorithm (Fig. 7b, 8, 9), with the two theorems' bounds.\n"
        "- **Compare networks** — principal angles between two networks' S_c, transfer of S_c directions and of "
        "fooling (Fig. 10, 13)."
    )

    # ---------------------------------------------------------------------------------- your model
    st.subheader("Your model")
    _upload.upload_form()


if __name__ == "__main__":  # run as a script: see pages/ui/__init__.py (legacy pages/ discovery)
    from app import main

    main()
