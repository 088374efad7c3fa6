"""The shared sidebar (dataset, network, datapoint), the selection it makes, and error display."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import streamlit as st

from geometry import zoo
from geometry.classifier import Classifier
from geometry.data import Dataset
from geometry.device import available_devices
from geometry.errors import AtlasError

from . import jobs as _jobs
from .cached import DATASET_LABELS, dataset_problem, get_dataset, get_model, user_datasets, user_models
from .jobs import default_model
from .state import USER_PREFIX, bound, option_value, synced, widget_value

DEFAULT_MODEL = "digits-lenet"
UPLOAD_PICKED = "_upload_picked"  # session key: the upload to select on the next run (pages/ui/upload.py)


@dataclass(frozen=True)
class Selection:
    """What the sidebar selected: a network, its dataset's test split, and one datapoint."""

    model_name: str
    clf: Classifier
    dataset: Dataset  # the test split (held-out points)
    dataset_key: str  # a built-in name or an upload key (``dataset.name`` is e.g. "npz" for uploads)
    index: int
    #: the network the sidebar chose while it is being trained (this selection holds the nearest ready one)
    waiting_for: str | None = None

    @property
    def x(self):
        return self.dataset.images[self.index]

    @property
    def true_label(self) -> int:
        return int(self.dataset.labels[self.index])


def model_label(name: str) -> str:
    """How a network is named in pickers: zoo names as they are, uploads marked "(upload)" (text, not an
    emoji: headless browsers without an emoji font draw those as empty boxes)."""
    return f"{name[len(USER_PREFIX) :]} (upload)" if name.startswith(USER_PREFIX) else name


#: The trained zoo networks as of the start of the last sidebar run: the labels' one source, so a label never changes
#: between two runs on its own (the browser sends an index, but AppTest maps the value through the label again,
#: between runs, and fails when a network trained during the run changed it).
_TRAINED_AT_RUN_START: frozenset[str] = frozenset()


def _network_label(name: str) -> str:
    """A zoo network with what choosing it costs ("trained" / "trains ≈ 8 min"); uploads as model_label."""
    if name not in zoo.ZOO:
        return model_label(name)
    return f"{name} ({_jobs.cost_label(name, name in _TRAINED_AT_RUN_START, _TRAINED_AT_RUN_START)})"


def class_name(names, i: int) -> str:
    """``names[i]``, or the index itself when a label lies outside the model's class names."""
    i = int(i)
    return str(names[i]) if 0 <= i < len(names) else f"#{i}"


def sidebar() -> dict | None:
    """Draw the shared sidebar; returns the chosen ``model``, ``dataset`` and ``index`` (plain values),
    or None (with an error shown) if the dataset is unusable. The model itself is loaded by
    :func:`selection`, inside the page, so a page paints its text before any training starts."""
    sb = st.sidebar
    uploads = user_models()
    picked = st.session_state.pop(UPLOAD_PICKED, None)  # set by the upload form just before its st.rerun()
    if picked in uploads:  # select the new upload before the pickers are drawn (it is in their options)
        st.session_state["model"], st.session_state["dataset"] = picked, uploads[picked]["dataset"]
    # digits-lenet, or mnist-lenet once trained here (issue 13: where the effect shows; pages/ui/jobs.py)
    model_default = default_model()
    widget_value("model", model_default, options=[*zoo.ZOO, *uploads])
    model = st.session_state.get("model", model_default)
    current = uploads[model]["dataset"] if model in uploads else zoo.ZOO[model].dataset
    labels = {**DATASET_LABELS, **{k: f"Your data: {k[len(USER_PREFIX) :]}" for k in user_datasets()}}
    option_value("dataset", current, list(labels))  # by default the network's own dataset
    dataset = sb.selectbox(
        "Dataset",
        list(labels),
        **synced("dataset"),
        format_func=labels.get,
        help="Where the datapoints come from. digits ships inside scikit-learn; MNIST and "
        "CIFAR-10 are read from $BOUNDARY_ATLAS_DATA; your uploads appear here too.",
    )
    names = zoo.model_names(dataset) + [k for k, u in uploads.items() if u["dataset"] == dataset]
    if not names:
        st.warning("No network for this dataset yet: upload one on the Home page (Your model).")
        return None
    if st.session_state.get("model", model_default) not in names:
        st.session_state["model"] = names[0]
    global _TRAINED_AT_RUN_START
    _TRAINED_AT_RUN_START = frozenset(_jobs.trained_names())
    model_name = sb.selectbox(
        "Network",
        names,
        **bound("model", model_default if model_default in names else names[0], names),
        format_func=_network_label,
        help="Zoo networks are trained on first use and cached on disk: each says whether it is trained or about "
        "how long its training takes (its epochs, architecture and regime times the seconds per epoch timed on this "
        "machine's earlier trainings of that dataset; 'rough': none timed here yet). While one "
        'trains, pages show the nearest trained network and say so. "(upload)" marks your uploads (this browser '
        "session only).",
    )
    device = _device_select(sb)
    if not dataset.startswith(USER_PREFIX):
        problem = dataset_problem(dataset)
        if problem:
            st.error(f"The {DATASET_LABELS[dataset]} dataset is not available here.\n\n{problem}")
            return None
    ds = get_dataset(dataset, "test")
    index_bounds = dict(min_value=0, max_value=len(ds) - 1, step=1)
    option_value("i", 0, None, int, **index_bounds)  # bounds move with the dataset
    index = sb.number_input(
        f"Datapoint (test image 0–{len(ds) - 1})",
        **index_bounds,
        **synced("i"),
        help="Index into the held-out test split.",
    )
    if model_name in zoo.ZOO:
        entry = zoo.ZOO[model_name]
        sb.caption(f"{entry.architecture} · {entry.description}")
    else:
        sb.caption("Your uploaded model (this browser session only; views of it are not shareable links).")
    return {"model": model_name, "dataset": dataset, "index": int(index), "device": device}


def _device_select(sb) -> str:
    """The device select (issue 15): the devices PyTorch sees here, CUDA first when present; a
    disabled one-option select on a machine without a GPU."""
    devices = available_devices()
    options = [*devices[1:], devices[0]]  # cuda:0 … first (= "auto"), then cpu
    widget_value("device", options[0], options=options)
    return sb.selectbox(
        "Device",
        options,
        **bound("device", options[0], options),
        disabled=len(options) == 1,
        help="Where the geometry is computed. Results and their caches are the same on every device."
        + ("" if len(options) > 1 else " PyTorch sees no GPU on this machine, so the CPU is the only choice."),
    )


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
        name, dataset_key, index = chosen["model"], chosen["dataset"], chosen["index"]
        waiting = None
        if _jobs.needs_stand_in(name):
            fallback = _jobs.nearest_ready(name)
            if fallback is not None:  # show a trained network while this one trains (issue 20, item 3)
                _jobs.train_in_background(name)
                _jobs.training_box(name, fallback)
                waiting, name = name, fallback
                if zoo.ZOO[fallback].dataset != zoo.ZOO[waiting].dataset:
                    dataset_key = zoo.ZOO[fallback].dataset
                    index = min(index, len(get_dataset(dataset_key, "test")) - 1)
        clf = get_model(name).to(chosen.get("device", "auto"))
        return Selection(
            model_name=name,
            clf=clf,
            dataset=get_dataset(dataset_key, "test"),
            dataset_key=dataset_key,
            index=index,
            waiting_for=waiting,
        )
    return None
