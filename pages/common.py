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
@st.cache_resource(show_spinner=False, max_entries=8)
def get_dataset(name: str, split: str = "test") -> data_mod.Dataset:
    return data_mod.load_dataset(name, split=split)


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
    """A zoo network; trained on first use with a progress bar, then read from the disk cache."""
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
    init_state("model", DEFAULT_MODEL)
    if st.session_state["model"] not in zoo.ZOO:
        st.session_state["model"] = DEFAULT_MODEL
    current = zoo.ZOO[st.session_state["model"]].dataset
    init_state("dataset", current)
    if st.session_state["dataset"] not in DATASET_LABELS:
        st.session_state["dataset"] = current
    dataset = sb.selectbox("Dataset", list(DATASET_LABELS), key="dataset", format_func=DATASET_LABELS.get,
                           help="Where the datapoints come from. digits ships inside scikit-learn; MNIST and "
                                "CIFAR-10 are read from $BOUNDARY_ATLAS_DATA.")
    names = zoo.model_names(dataset)
    if st.session_state["model"] not in names:
        st.session_state["model"] = names[0]
    model_name = sb.selectbox("Network", names, key="model",
                              help="Zoo networks are trained on first use (seconds for digits, minutes for "
                                   "CIFAR-10) and cached on disk.")
    problem = dataset_problem(dataset)
    if problem:
        st.error(f"The {DATASET_LABELS[dataset]} dataset is not available here.\n\n{problem}")
        return None
    ds = get_dataset(dataset, "test")
    init_state("i", 0, int)
    st.session_state["i"] = min(max(int(st.session_state["i"]), 0), len(ds) - 1)
    index = sb.number_input(f"Datapoint (test image 0–{len(ds) - 1})", min_value=0, max_value=len(ds) - 1,
                            step=1, key="i", help="Index into the held-out test split.")
    entry = zoo.ZOO[model_name]
    sb.caption(f"{entry.architecture} · {entry.description}")
    share(model=model_name, i=int(index))
    return {"model": model_name, "dataset": dataset, "index": int(index)}


@contextlib.contextmanager
def user_errors():
    """Show an :class:`AtlasError` as a message instead of a traceback."""
    try:
        yield
    except AtlasError as exc:
        st.error(str(exc))


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
