"""Home: what the atlas is for, the selected network's model card, sample predictions."""

from __future__ import annotations

import streamlit as st

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
        caption=f"#{start + j} · true {common.class_name(sel.dataset.class_names, true)} · pred {common.class_name(clf.class_names, p)} {ok}",
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
with st.expander("Upload a model to inspect — it appears in every page's network picker, for this browser session only",
                 expanded=False):
    from geometry import data as data_limits
    from geometry.sandbox import DEFAULT_LIMITS

    st.markdown(
        f"Formats: **TorchScript** (`torch.jit.save`), **torch.export** programs (`.pt2`), **ONNX** (`.onnx`, "
        f"e.g. from Keras, JAX or TensorFlow; converted with onnx2torch), or a **state_dict** "
        f"(`.pt`/`.pth`, read with `weights_only=True`, or `.safetensors`) plus its architecture. "
        f"Files up to **{common.UPLOAD_LIMIT_MB} MB**. A fully pickled module (`torch.save(model)`) is refused: "
        "loading it would run code from the file. The model takes pixels in [0, 1] (normalisation below is applied "
        "before it) and returns logits (N, L)."
    )
    st.caption(
        f"**Safety.** An uploaded model is code. TorchScript and `.pt2` files may call only pure tensor operators "
        f"(an allow-list: no file, network, random-state or threading operators), checked on the file and again on "
        f"the loaded graph. It is then loaded and probed first in a separate process limited to "
        f"**{DEFAULT_LIMITS.describe()}**, with no file writes; only a model that passes is loaded here. "
        f"Data: at most {data_limits.MAX_IMAGES:,} images of at most {data_limits.MAX_IMAGE_PIXELS:,} pixels, "
        f"{data_limits.MAX_DECODED_BYTES / 2**30:.0f} GiB decoded, labels below {data_limits.MAX_CLASSES:,}."
    )
    with st.form("upload_form"):
        model_file = st.file_uploader("Model file", type=["pt", "pth", "pt2", "onnx", "safetensors", "ts", "jit",
                                                          "bin", "ckpt"])
        c1, c2 = st.columns(2)
        fmt = c1.selectbox("Format", ["auto", "torchscript", "export", "onnx", "state_dict", "safetensors"],
                           help="auto: detected from the file's content (and its extension).")
        arch = c2.selectbox("Architecture (state_dicts only)", common.upload_architectures(),
                            help="The network the weights belong to. torchvision models take their num_classes "
                                 "from the class names.")
        data_kind = st.radio("Data to analyse", ["built-in dataset", "zip of an image folder", ".npz of images and labels"],
                             horizontal=True)
        c3, c4 = st.columns(2)
        builtin = c3.selectbox("Built-in dataset", list(common.DATASET_LABELS), format_func=common.DATASET_LABELS.get)
        data_file = c4.file_uploader("Your data (zip: <class>/<image> folders; npz: images, labels[, class_names])",
                                     type=["zip", "npz"])
        c5, c6, c7 = st.columns(3)
        shape_text = c5.text_input("Input shape C, H, W", "", help="Blank: the data's image shape.")
        mean_text = c6.text_input("Normalisation mean (per channel)", "", help="e.g. 0.5, 0.5, 0.5 — blank: none")
        std_text = c7.text_input("Normalisation std (per channel)", "", help="e.g. 0.5, 0.5, 0.5 — blank: none")
        names_text = st.text_input("Class names (comma-separated)", "", help="Blank: the data's class names.")
        submitted = st.form_submit_button("Load model")
    if submitted:
        with common.user_errors():
            with st.spinner("Loading and validating the model…"):
                key = common.register_upload(
                    model_file=model_file, fmt=fmt, architecture=arch, data_kind=data_kind, builtin=builtin,
                    data_file=data_file, shape_text=shape_text, mean_text=mean_text, std_text=std_text,
                    names_text=names_text,
                )
            st.success(f"Loaded **{key[len(common.USER_PREFIX):]}**. Pick it in the sidebar's *Network* list "
                       "(📤); every page now accepts it.")
