"""The upload form (Home → Your model): a model file, its data, checked and loaded into this
browser session only; it then appears in every page's network picker."""

from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
from collections.abc import Iterator

import streamlit as st

from geometry import data as data_mod
from geometry.errors import AtlasError

from .cached import DATASET_LABELS, _builtin_dataset, dataset_problem, user_datasets, user_models
from .jobs import session_owner
from .sidebar import UPLOAD_PICKED, user_errors
from .state import USER_PREFIX

UPLOAD_LIMIT_MB = 200  # also the server's limit: .streamlit/config.toml server.maxUploadSize
NO_ARCHITECTURE = "(not needed: TorchScript / export)"
FORMATS = ["auto", "torchscript", "export", "onnx", "state_dict", "safetensors"]
_LOADED = "_upload_loaded"  # session key: the upload whose success message the next run shows
MODEL_TYPES = ["pt", "pth", "pt2", "onnx", "safetensors", "ts", "jit", "bin", "ckpt"]


def upload_architectures() -> list[str]:
    from geometry.loading import architecture_names

    return [NO_ARCHITECTURE, *architecture_names()]


#: the warm-up's thread, started once per server process by :func:`warm_up_server`
_WARM_UP: dict[str, threading.Thread | None] = {"thread": None}
_WARM_UP_LOCK = threading.Lock()
#: Streamlit's own modules that Home's first run with the upload form imports (its emoji catalogue: read for
#: any label with a non-ASCII character); a Streamlit that moved one only costs the import later
STREAMLIT_MODULES = ("streamlit.emojis",)


def warm_up_server(*, block: bool = False) -> threading.Thread:
    """Do, once per server process and in a background thread, the imports that the upload form and the first
    upload would otherwise do in the middle of other sessions' clicks (issue 22, item 2); returns the thread
    (the same one on every call). ``block``: wait until it has finished.

    What it imports: torchvision (the form's architecture list, :func:`upload_architectures`: ≈ 3.8 s of CPU
    and ≈ 1070 modules, measured on this project's machine), the upload path's modules
    (:func:`geometry.runtime.uploads.preload`) and :data:`STREAMLIT_MODULES`. Each module imported while
    sessions are open costs every open session a pass of Streamlit's source watcher over all of
    ``sys.modules`` at its next run (see :func:`~geometry.runtime.uploads.preload`), on the server's event
    loop; done here, at the app's first run, before any upload (the form is drawn by a run of the app, which
    starts this first), those passes happen once, while the server has few sessions.

    The rule for a normal user: no page run waits for the warm-up as a whole, and the thread runs at the
    server's own priority, not lower. A page run that needs a module the thread is importing (Home's form needs torchvision) waits on
    Python's import lock for that module until the thread has finished it; a thread at niceness 19 would get
    almost no CPU on a busy server and make that page wait for minutes (priority inversion), and an
    unprivileged process cannot raise a thread's priority back. At normal priority the page waits at most
    for the import it would have done itself. Never raises (a failed import is only a later import)."""
    with _WARM_UP_LOCK:
        thread = _WARM_UP["thread"]
        if thread is None:
            thread = threading.Thread(target=_warm_up, name="atlas-warm-up", daemon=True)
            _WARM_UP["thread"] = thread
            thread.start()
    if block:
        thread.join()
    return thread


def _warm_up() -> None:
    with contextlib.suppress(Exception):  # the form says what is wrong when it is drawn
        upload_architectures()
    from geometry.runtime import uploads

    uploads.preload()
    uploads.preload(STREAMLIT_MODULES)


def _floats(text: str, what: str) -> tuple[float, ...] | None:
    text = text.strip()
    if not text:
        return None
    try:
        return tuple(float(t) for t in text.replace(";", ",").split(",") if t.strip())
    except ValueError as exc:
        raise AtlasError(f"{what} must be comma-separated numbers, got {text!r}") from exc


def _unzip_image_folder(data: bytes, name: str = "uploaded zip") -> data_mod.Dataset:
    """The uploaded zip of class folders as a test-split dataset: :func:`geometry.data.load_zip_upload`
    (limits checked before decoding; the temporary folder is removed on success and on failure)."""
    return data_mod.load_zip_upload(data, name=name, split="test")


def register_upload(
    *, model_file, fmt, architecture, data_kind, builtin, data_file, shape_text, mean_text, std_text, names_text
) -> str:
    """Load and validate an uploaded model (and data) into this session; returns the model's key.

    The key holds a hash of the file and of every setting, so cached results of two different
    uploads can never be confused, across sessions too.
    """
    from geometry.runtime import uploads

    if model_file is None:
        raise AtlasError("choose a model file to upload")
    h = hashlib.sha256(model_file.getvalue())
    if data_kind == "built-in dataset":
        problem = dataset_problem(builtin)
        if problem:
            raise AtlasError(f"the {DATASET_LABELS[builtin]} dataset is not available here: {problem}")
        ds = _builtin_dataset(builtin, "test")
        dataset_key = builtin
    else:
        if data_file is None:
            raise AtlasError("choose a data file (zip or npz), or use a built-in dataset")
        raw = data_file.getvalue()
        ds = (
            _unzip_image_folder(raw, data_file.name)
            if data_kind.startswith("zip")
            else data_mod.load_npz(data_file, split="test")
        )
        dataset_key = f"{USER_PREFIX}{data_file.name}-{hashlib.sha256(raw).hexdigest()[:10]}"
        h.update(dataset_key.encode())
    shape = _floats(shape_text, "input shape")
    shape = tuple(int(v) for v in shape) if shape else tuple(ds.input_shape)
    names = [t.strip() for t in names_text.split(",") if t.strip()] or list(ds.class_names)
    mean, std = _floats(mean_text, "mean"), _floats(std_text, "std")
    h.update(repr((fmt, architecture, shape, mean, std, names)).encode())
    if tuple(shape) != tuple(ds.input_shape):
        raise AtlasError(f"the model's input shape {shape} differs from the data's image shape {tuple(ds.input_shape)}")
    stem = model_file.name.rsplit(".", 1)[0]
    key = f"{USER_PREFIX}{stem}-{h.hexdigest()[:10]}"
    # issue 22: the model is loaded, screened, probed and run only in this session's worker process;
    # the session keeps a stand-in (geometry/runtime/uploads.py) whose studies are sent there whole
    clf = uploads.register(
        model_file.getvalue(),
        owner=session_owner(),
        display=model_file.name,
        input_shape=shape,
        options=dict(
            format=None if fmt == "auto" else fmt,
            architecture=None if architecture == NO_ARCHITECTURE else architecture,
            mean=mean,
            std=std,
            class_names=names,
            name=key,
            max_bytes=UPLOAD_LIMIT_MB * 1024 * 1024,
        ),
    )
    clf.info.setdefault("dataset", dataset_key)
    if dataset_key.startswith(USER_PREFIX):
        user_datasets()[dataset_key] = ds
    models = user_models()
    for old in [k for k in models if k != key and k.rsplit("-", 1)[0] == key.rsplit("-", 1)[0]]:
        uploads.discard(models.pop(old)["clf"])  # a new file of the same name replaces the old: its file goes
    models[key] = {"clf": clf, "dataset": dataset_key}
    return key


@contextlib.contextmanager
def page_run() -> Iterator[None]:
    """Mark this script run as a page run of this browser session while the block runs, so that the upload
    pool pauses *other* sessions' busy upload workers meanwhile (:class:`geometry.runtime.workers.YieldToPages`:
    uploads get the CPU in the gaps between visitors' runs; issue 22, item 2). A no-op until the upload path
    has been imported (no upload pool can exist before it) — this never imports it."""
    uploads = sys.modules.get("geometry.runtime.uploads")
    if uploads is None:
        yield
        return
    with uploads.page_run(session_owner()):
        yield


def reap_ended_sessions() -> list[str]:
    """Remove the uploaded files and stop the workers of browser sessions that have ended (issue 22);
    returns their ids. A no-op outside a Streamlit server (and under AppTest)."""
    from streamlit import runtime

    from geometry.runtime import uploads

    if not runtime.exists():
        return []
    rt = runtime.get_instance()
    if not isinstance(rt, runtime.Runtime):  # AppTest's stand-in runtime: no sessions to ask about
        return []
    manager = getattr(rt, "_session_mgr", None)  # also keeps a disconnected session that may reconnect

    def alive(owner: str) -> bool:
        if rt.is_active_session(owner):
            return True
        return manager is not None and manager.get_session_info(owner) is not None

    return uploads.reap(alive)


def upload_form() -> None:
    """The "Your model" expander: what is accepted, the safety limits, the form, and the result."""
    from geometry.runtime.uploads import APP_WORKER_LIMITS, app_cpu_quota, upload_pool

    with st.expander(
        "Upload a model to inspect — it appears in every page's network picker, for this browser session only",
        expanded=False,
    ):
        st.markdown(
            f"Formats: **TorchScript** (`torch.jit.save`), **torch.export** programs (`.pt2`), **ONNX** (`.onnx`, "
            f"e.g. from Keras, JAX or TensorFlow; converted with onnx2torch), or a **state_dict** "
            f"(`.pt`/`.pth`, read with `weights_only=True`, or `.safetensors`) plus its architecture. "
            f"Files up to **{UPLOAD_LIMIT_MB} MB**. A fully pickled module (`torch.save(model)`) is refused: "
            "loading it would run code from the file. The model takes pixels in [0, 1] (normalisation below is "
            "applied before it) and returns logits (N, L)."
        )
        st.caption(
            f"**Safety.** An uploaded model is code. TorchScript and `.pt2` files may call only pure tensor operators "
            f"(an allow-list: no file, network, random-state or threading operators), checked on the file and again on "
            f"the loaded graph. It is loaded, probed and run only in a worker process of your session (never in the "
            f"server), limited to **{APP_WORKER_LIMITS.describe()}**, with no file writes; a model that breaks a limit "
            "is stopped and you are told which limit and on which input. "
            + (f"This server: {upload_pool().quota.describe()}. " if app_cpu_quota() > 0 else "")
            + f"Data: at most {data_mod.MAX_IMAGES:,} images of at most {data_mod.MAX_IMAGE_PIXELS:,} pixels, "
            f"{data_mod.MAX_DECODED_BYTES / 2**30:.0f} GiB decoded, labels below {data_mod.MAX_CLASSES:,}."
        )
        with st.form("upload_form"):
            model_file = st.file_uploader("Model file", type=MODEL_TYPES)
            c1, c2 = st.columns(2)
            fmt = c1.selectbox("Format", FORMATS, help="auto: detected from the file's content (and its extension).")
            arch = c2.selectbox(
                "Architecture (state_dicts only)",
                upload_architectures(),
                help="The network the weights belong to. torchvision models take their num_classes "
                "from the class names.",
            )
            data_kind = st.radio(
                "Data to analyse",
                ["built-in dataset", "zip of an image folder", ".npz of images and labels"],
                horizontal=True,
            )
            c3, c4 = st.columns(2)
            builtin = c3.selectbox("Built-in dataset", list(DATASET_LABELS), format_func=DATASET_LABELS.get)
            data_file = c4.file_uploader(
                "Your data (zip: <class>/<image> folders; npz: images, labels[, class_names])", type=["zip", "npz"]
            )
            c5, c6, c7 = st.columns(3)
            shape_text = c5.text_input("Input shape C, H, W", "", help="Blank: the data's image shape.")
            mean_text = c6.text_input("Normalisation mean (per channel)", "", help="e.g. 0.5, 0.5, 0.5 — blank: none")
            std_text = c7.text_input("Normalisation std (per channel)", "", help="e.g. 0.5, 0.5, 0.5 — blank: none")
            names_text = st.text_input("Class names (comma-separated)", "", help="Blank: the data's class names.")
            submitted = st.form_submit_button("Load model")
        if submitted:
            with user_errors():
                with st.spinner("Loading and validating the model…"):
                    key = register_upload(
                        model_file=model_file,
                        fmt=fmt,
                        architecture=arch,
                        data_kind=data_kind,
                        builtin=builtin,
                        data_file=data_file,
                        shape_text=shape_text,
                        mean_text=mean_text,
                        std_text=std_text,
                        names_text=names_text,
                    )
                # Rerun at once: the sidebar (drawn before this page) then lists and selects the upload.
                st.session_state[UPLOAD_PICKED] = st.session_state[_LOADED] = key
                st.rerun()
        loaded = st.session_state.pop(_LOADED, None)
        if loaded is not None:
            st.success(
                f"Loaded **{loaded[len(USER_PREFIX) :]}** and selected it in the sidebar's *Network* list "
                '(marked "(upload)"); every page now accepts it.'
            )
