"""Home: what the atlas is for, the selected network's model card, sample predictions."""

from __future__ import annotations

import streamlit as st
import torch

from geometry.plotting import to_display_image
from pages import common

st.title("Boundary Atlas")
st.markdown(
    "**Why is a network fooled by one small perturbation?** Boundary Atlas shows the geometry of a "
    "classifier's decision boundary around real images — the DeepFool normal r(x), normal "
    "cross-sections, and the few shared, positively curved directions that make small *universal* "
    "perturbations possible (Moosavi-Dezfooli et al., ICLR 2018)."
)

sel = common.selection()
if sel is None:
    st.stop()

clf = sel.clf
st.subheader(f"Model card — {sel.model_name}")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Test accuracy", "—" if clf.test_accuracy is None else f"{clf.test_accuracy:.1%}",
          help=f"On the {clf.info.get('dataset', '')} test split ({len(sel.dataset)} images).")
c2.metric("Parameters", f"{clf.info.get('parameters', sum(p.numel() for p in clf.model.parameters())):,}")
c3.metric("Input d = C·H·W", f"{clf.d:,}", help=f"Input shape {clf.input_shape}, pixels in {list(clf.bounds)}")
c4.metric("Classes", clf.num_classes)
recipe = clf.info.get("recipe", {})
st.markdown(
    f"- **Architecture:** `{clf.info.get('architecture', type(clf.model).__name__)}` — "
    f"{clf.info.get('description', '')}\n"
    f"- **Dataset:** {common.DATASET_LABELS.get(clf.info.get('dataset', ''), clf.info.get('dataset', ''))}; "
    f"normalisation inside the model: mean {tuple(round(v, 3) for v in clf.mean or ())}, "
    f"std {tuple(round(v, 3) for v in clf.std or ())}\n"
    + (f"- **Training:** SGD, momentum {recipe.get('momentum')}, lr {recipe.get('lr')} ({recipe.get('lr_schedule')}), "
       f"weight decay {recipe.get('weight_decay')}, {recipe.get('epochs')} epochs, batch {recipe.get('batch_size')}, "
       f"seed {recipe.get('seed')}"
       + (f" — trained here in {clf.info['train_seconds']:.0f} s" if clf.info.get("train_seconds") else "")
       if recipe else "")
)

st.subheader("Sample test images")
n_show = 12
start = min(sel.index, max(len(sel.dataset) - n_show, 0))
xs = sel.dataset.images[start : start + n_show]
pred = clf.predict(xs)
cols = st.columns(n_show // 2)
for j in range(len(xs)):
    true = int(sel.dataset.labels[start + j])
    p = int(pred[j])
    ok = "✅" if p == true else "❌"
    cols[j % len(cols)].image(
        to_display_image(xs[j], size=96),
        caption=f"#{start + j} · true {clf.class_names[true]} · pred {clf.class_names[p]} {ok}",
    )

st.subheader("Pages")
st.markdown(
    "- **Cross-sections** — the decision regions in the plane spanned by the DeepFool normal r(x) and a second "
    "direction v (paper Fig. 5): is the boundary flat or curved around this datapoint?"
)
