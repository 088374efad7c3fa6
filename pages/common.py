"""Shared UI pieces of the app: the sidebar (dataset, network, datapoint), cached loaders,
shareable view state in ``st.query_params``, and error display.

Pages stay thin (DESIGN §3): read widgets → one cached backend call → one plotting call.
Models live in ``st.cache_resource`` (frozen, never mutated); results in ``st.cache_data`` keyed by
plain values and bounded. Nothing here computes geometry.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import streamlit as st

from geometry import data as data_mod
from geometry import zoo
from geometry.classifier import Classifier
from geometry.errors import AtlasError

DEFAULT_MODEL = "digits-lenet"
DATASET_LABELS = {"digits": "8×8 digits (embedded)", "mnist": "MNIST 28×28", "cifar10": "CIFAR-10 32×32"}


@dataclass(frozen=True)
class Selection:
    """What the sidebar selected: a network, its dataset's test split, and one datapoint."""

    model_name: str
    clf: Classifier
    dataset: data_mod.Dataset  # the test split (held-out points)
    index: int

    @property
    def x(self):
        return self.dataset.images[self.index]

    @property
    def true_label(self) -> int:
        return int(self.dataset.labels[self.index])


# ------------------------------------------------------------------ cached loaders
USER_PREFIX = "upload:"  # keys of a browser session's own models and datasets


def user_models() -> dict:
    """This browser session's uploaded models: key → {"clf", "dataset"} (never shared across sessions)."""
    return st.session_state.setdefault("_user_models", {})


def user_datasets() -> dict:
    """This browser session's uploaded datasets: key → Dataset."""
    return st.session_state.setdefault("_user_datasets", {})


@st.cache_resource(show_spinner=False, max_entries=8)
def _builtin_dataset(name: str, split: str) -> data_mod.Dataset:
    return data_mod.load_dataset(name, split=split)


def get_dataset(name: str, split: str = "test") -> data_mod.Dataset:
    """A built-in dataset's split, or this session's uploaded dataset (one split only)."""
    if name.startswith(USER_PREFIX):
        return user_datasets()[name]
    return _builtin_dataset(name, split)


@st.cache_data(show_spinner=False, max_entries=8)
def dataset_problem(name: str) -> str | None:
    """None if the dataset can be loaded here, else the message saying where we looked."""
    try:
        data_mod.load_dataset(name, split="test", limit=4)
    except AtlasError as exc:
        return str(exc)
    return None


@st.cache_resource(show_spinner=False, max_entries=8)
def _cached_model(name: str) -> Classifier:
    return zoo.load_model(name, train=False)


def get_model(name: str) -> Classifier:
    """A zoo network (trained on first use with a progress bar, then read from the disk cache), or
    one of this session's uploaded models."""
    if name.startswith(USER_PREFIX):
        return user_models()[name]["clf"]
    if not zoo.is_cached(name):
        with st.status(f"Training **{name}** — first use only; it is cached on disk afterwards.", expanded=True) as status:
            bar = st.progress(0.0, text="starting")
            zoo.load_model(name, progress=lambda f, msg: bar.progress(min(max(float(f), 0.0), 1.0), text=msg))
            status.update(label=f"{name} trained and cached.", state="complete", expanded=False)
    return _cached_model(name)


# ------------------------------------------------------------------ query params (shareable views)
def param(key: str, default, cast=str):
    """The value of ``key`` in the URL's query string, cast, or ``default`` if absent / malformed."""
    raw = st.query_params.get(key)
    if raw is None:
        return default
    try:
        return cast(raw)
    except (TypeError, ValueError):
        return default


def init_state(key: str, default, cast=str):
    """Initialise a widget's session state from the URL once (first run of the session)."""
    if key not in st.session_state:
        st.session_state[key] = param(key, default, cast)


def share(**values) -> None:
    """Write the view's defining values into the URL (so a view is a shareable link)."""
    for k, v in values.items():
        st.query_params[k] = str(v)


# ------------------------------------------------------------------ sidebar
def sidebar() -> dict | None:
    """Draw the shared sidebar; returns the chosen ``model``, ``dataset`` and ``index`` (plain values),
    or None (with an error shown) if the dataset is unusable. The model itself is loaded by
    :func:`selection`, inside the page, so a page paints its text before any training starts."""
    sb = st.sidebar
    uploads = user_models()
    init_state("model", DEFAULT_MODEL)
    if st.session_state["model"] not in zoo.ZOO and st.session_state["model"] not in uploads:
        st.session_state["model"] = DEFAULT_MODEL
    current = (uploads[st.session_state["model"]]["dataset"] if st.session_state["model"] in uploads
               else zoo.ZOO[st.session_state["model"]].dataset)
    labels = {**DATASET_LABELS, **{k: f"Your data: {k[len(USER_PREFIX):]}" for k in user_datasets()}}
    init_state("dataset", current)
    if st.session_state["dataset"] not in labels:
        st.session_state["dataset"] = current
    dataset = sb.selectbox("Dataset", list(labels), key="dataset", format_func=labels.get,
                           help="Where the datapoints come from. digits ships inside scikit-learn; MNIST and "
                                "CIFAR-10 are read from $BOUNDARY_ATLAS_DATA; your uploads appear here too.")
    names = zoo.model_names(dataset) + [k for k, u in uploads.items() if u["dataset"] == dataset]
    if not names:
        st.warning("No network for this dataset yet: upload one on the Home page (Your model).")
        return None
    if st.session_state["model"] not in names:
        st.session_state["model"] = names[0]
    model_name = sb.selectbox("Network", names, key="model",
                              format_func=lambda n: f"📤 {n[len(USER_PREFIX):]}" if n.startswith(USER_PREFIX) else n,
                              help="Zoo networks are trained on first use (seconds for digits, minutes for "
                                   "CIFAR-10) and cached on disk. 📤 marks your uploads (this browser session only).")
    if not dataset.startswith(USER_PREFIX):
        problem = dataset_problem(dataset)
        if problem:
            st.error(f"The {DATASET_LABELS[dataset]} dataset is not available here.\n\n{problem}")
            return None
    ds = get_dataset(dataset, "test")
    init_state("i", 0, int)
    st.session_state["i"] = min(max(int(st.session_state["i"]), 0), len(ds) - 1)
    index = sb.number_input(f"Datapoint (test image 0–{len(ds) - 1})", min_value=0, max_value=len(ds) - 1,
                            step=1, key="i", help="Index into the held-out test split.")
    if model_name in zoo.ZOO:
        entry = zoo.ZOO[model_name]
        sb.caption(f"{entry.architecture} · {entry.description}")
        share(model=model_name, i=int(index))
    else:
        sb.caption("Your uploaded model (this browser session only; views of it are not shareable links).")
    return {"model": model_name, "dataset": dataset, "index": int(index)}


@contextlib.contextmanager
def user_errors():
    """Show an :class:`AtlasError` as a message instead of a traceback."""
    try:
        yield
    except AtlasError as exc:
        st.error(str(exc))


def selection_dataset() -> str:
    """The sidebar's dataset key (a built-in name or an upload key)."""
    chosen = st.session_state.get("_sidebar") or {}
    return chosen.get("dataset", "digits")


def selection() -> Selection | None:
    """The sidebar's choice with its network loaded (trained first, with a progress bar, if needed)."""
    chosen = st.session_state.get("_sidebar")
    if chosen is None:
        return None
    with user_errors():
        clf = get_model(chosen["model"])
        return Selection(model_name=chosen["model"], clf=clf, dataset=get_dataset(chosen["dataset"], "test"),
                         index=chosen["index"])
    return None


# ------------------------------------------------------------------ uploads (Home → Your model)
UPLOAD_LIMIT_MB = 200  # also the server's limit: .streamlit/config.toml server.maxUploadSize
_MAX_ZIP_UNPACKED = 1 << 30  # 1 GiB of images


NO_ARCHITECTURE = "(not needed: TorchScript / export)"


def upload_architectures() -> list[str]:
    from geometry.loading import architecture_names

    return [NO_ARCHITECTURE] + architecture_names()


def class_name(names, i: int) -> str:
    """``names[i]``, or the index itself when a label lies outside the model's class names."""
    i = int(i)
    return str(names[i]) if 0 <= i < len(names) else f"#{i}"


def _floats(text: str, what: str) -> tuple[float, ...] | None:
    text = text.strip()
    if not text:
        return None
    try:
        return tuple(float(t) for t in text.replace(";", ",").split(",") if t.strip())
    except ValueError as exc:
        raise AtlasError(f"{what} must be comma-separated numbers, got {text!r}") from exc


def _unzip_image_folder(data: bytes) -> data_mod.Dataset:
    """Extract an uploaded zip of class folders safely (no absolute paths / '..', size-limited)."""
    import io
    import tempfile
    import zipfile
    from pathlib import Path, PurePosixPath

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise AtlasError(f"the data upload is not a readable zip file ({exc})") from exc
    total = sum(i.file_size for i in zf.infolist())
    if total > _MAX_ZIP_UNPACKED:
        raise AtlasError(f"the zip unpacks to {total:,} bytes, over the limit of {_MAX_ZIP_UNPACKED:,}")
    tmp = Path(tempfile.mkdtemp(prefix="atlas-upload-"))
    for info in zf.infolist():
        p = PurePosixPath(info.filename)
        if p.is_absolute() or ".." in p.parts:
            raise AtlasError(f"refusing zip entry {info.filename!r}: paths must stay inside the archive")
        if info.is_dir() or p.name.startswith(".") or "__MACOSX" in p.parts:
            continue
        dest = tmp.joinpath(*p.parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(zf.read(info))
    root = tmp
    # a single top-level folder holding the class folders (or train/test) is unwrapped
    entries = [e for e in root.iterdir() if e.is_dir()]
    while len(entries) == 1 and not any(f.is_file() for f in entries[0].iterdir()) and entries[0].name not in ("train", "test"):
        root = entries[0]
        entries = [e for e in root.iterdir() if e.is_dir()]
    return data_mod.load_dataset("imagefolder", root=root, split="test")


def register_upload(*, model_file, fmt, architecture, data_kind, builtin, data_file, shape_text, mean_text, std_text,
                    names_text) -> str:
    """Load and validate an uploaded model (and data) into this session; returns the model's key.

    The key holds a hash of the file and of every setting, so cached results of two different
    uploads can never be confused, across sessions too.
    """
    import hashlib

    from geometry.loading import load_classifier

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
        ds = _unzip_image_folder(raw) if data_kind.startswith("zip") else data_mod.load_npz(data_file, split="test")
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
    clf = load_classifier(
        model_file, format=None if fmt == "auto" else fmt,
        architecture=None if architecture == NO_ARCHITECTURE else architecture, input_shape=shape, mean=mean,
        std=std, class_names=names, name=key, max_bytes=UPLOAD_LIMIT_MB * 1024 * 1024,
    )
    clf.info.setdefault("dataset", dataset_key)
    if dataset_key.startswith(USER_PREFIX):
        user_datasets()[dataset_key] = ds
    user_models()[key] = {"clf": clf, "dataset": dataset_key}
    return key


# ------------------------------------------------------------------ shared heavy computations (cached)
def study_points(dataset: str, n_estimate: int, n_heldout: int, seed: int = 0):
    """Estimation points (training split; the paper's x_1..x_n) and held-out points (test split).

    For an uploaded dataset (one split only) the two sets are disjoint halves of it.
    Returns (estimate_xs, heldout_xs, data_key).
    """
    from geometry.store import choose_points

    if dataset.startswith(USER_PREFIX):
        ds = get_dataset(dataset)
        n_estimate = min(n_estimate, len(ds) // 2)
        n_heldout = min(n_heldout, len(ds) - n_estimate)
        idx = choose_points(len(ds), n_estimate + n_heldout, random_state=seed)
        est, held = idx[:n_estimate], idx[n_estimate:]
        return ds.images[est], ds.images[held], f"{dataset}/{seed}/{n_estimate}"
    train, test = get_dataset(dataset, "train"), get_dataset(dataset, "test")
    n_estimate, n_heldout = min(n_estimate, len(train)), min(n_heldout, len(test))
    est = choose_points(len(train), n_estimate, random_state=seed)
    return train.images[est], test.images[:n_heldout], f"{dataset}/train/seed{seed}/n{n_estimate}"


@st.cache_data(show_spinner=False, max_entries=32)
def noise_norm(model_name: str, dataset: str, share: float, n_points: int = 200, seed: int = 0):
    """The ℓ2 norm of random noise that fools ``share`` of held-out points (universal.random_noise_norm)."""
    from geometry.universal import random_noise_norm

    _, held, _ = study_points(dataset, 1, n_points, seed)
    return random_noise_norm(get_model(model_name), held, share=share, random_state=seed)


@st.cache_data(show_spinner=False, max_entries=16)
def curvature_study(model_name: str, dataset: str, n: int, m_max: int, method: str, h: float | None,
                    point: str, n_heldout: int, n_directions: int, seed: int = 0, _progress=None):
    """geometry.store.curvature_study for plain-valued settings (S_c/S_f are also cached on disk)."""
    from geometry.store import curvature_study as study

    est, held, key = study_points(dataset, n, n_heldout, seed)
    return study(get_model(model_name), est, held, data_key=key, m_max=m_max, method=method, h=h, point=point,
                 n_directions=n_directions, random_state=seed, progress=_progress)


def progress_bar(text: str):
    """A progress bar and a callback ``(fraction, message)`` that moves it."""
    bar = st.progress(0.0, text=text)

    def update(fraction: float, message: str) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=f"{text} — {message}")

    return bar, update
