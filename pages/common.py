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
def _number(value, cast):
    """``value`` (a URL string or a session value) as a finite ``int`` / ``float``, else None.

    Ints also accept numbers written as floats ("1e9", "2.5"; rounded to the nearest int), so a
    huge value is clamped rather than refused; NaN, ±inf and non-numbers give None."""
    import math

    if isinstance(value, bool):
        return None
    if cast is int:
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):
            pass
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return int(round(number)) if cast is int else number


def coerce(value, default, cast=str, *, min_value=None, max_value=None, step=None, options=None):
    """``value`` made valid for a widget, or ``default`` where it cannot be.

    Parameters
    ----------
    value : a raw URL string, a session value, or None (absent)
    default : the widget's default (returned, itself clamped, for absent / malformed values)
    cast : ``str``, ``int`` or ``float`` — the widget's value type
    min_value, max_value, step : the widget's own bounds (numbers): the value is clamped into
        [min_value, max_value] and, with ``step``, floored onto the grid ``min_value + k·step``
    options : the widget's options (selectbox, radio, select_slider): a value not among them
        gives ``default``

    Non-finite (NaN, ±inf), empty and non-numeric values of an ``int`` / ``float`` widget give
    ``default``; finite numbers out of range (1e308, 10**30, −5) are clamped. Never raises.
    """
    if cast in (int, float):
        number = None if value is None else _number(value, cast)
        if number is None:
            number = _number(default, cast)
            if number is None:
                return default
    else:
        try:
            number = default if value is None else cast(value)
        except (TypeError, ValueError):
            number = default
    if options is not None:
        return number if number in list(options) else default
    if min_value is not None and number < min_value:
        number = min_value
    if max_value is not None and number > max_value:
        number = max_value
    if step is not None and min_value is not None:
        import math

        k = math.floor((number - min_value) / step + 1e-9)  # 1e-9: round-off of float steps
        number = min_value + k * step
        if cast is float:
            number = round(number, 12)
    return cast(number) if cast in (int, float) else number


def param(key: str, default, cast=str, **bounds):
    """The value of ``key`` in the URL's query string, made valid by :func:`coerce` (``bounds``:
    the widget's ``min_value`` / ``max_value`` / ``step`` / ``options``), or ``default`` if absent
    or malformed."""
    return coerce(st.query_params.get(key), default, cast, **bounds)


def init_state(key: str, default, cast=str, **bounds):
    """Initialise a widget's session state from the URL once (first run of the session), and keep it
    valid for the widget on every run.

    ``bounds`` are the widget's own ``min_value`` / ``max_value`` / ``step`` / ``options`` — pass
    the same dict the widget is drawn with, so the two cannot drift apart. Out-of-range numbers are
    clamped, NaN / inf / malformed values and unknown options give ``default`` (:func:`coerce`);
    a value kept from an earlier run is re-checked too, since some bounds move (the datapoint index
    with the dataset, a direction index with m).
    """
    if key not in st.session_state:
        st.session_state[key] = param(key, default, cast, **bounds)
    elif bounds:
        value = st.session_state[key]
        valid = coerce(value, default, cast, **bounds)
        if valid != value or type(valid) is not type(value):
            st.session_state[key] = valid


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
    init_state("model", DEFAULT_MODEL, options=[*zoo.ZOO, *uploads])
    current = (uploads[st.session_state["model"]]["dataset"] if st.session_state["model"] in uploads
               else zoo.ZOO[st.session_state["model"]].dataset)
    labels = {**DATASET_LABELS, **{k: f"Your data: {k[len(USER_PREFIX):]}" for k in user_datasets()}}
    init_state("dataset", current, options=list(labels))
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
    index_bounds = dict(min_value=0, max_value=len(ds) - 1, step=1)
    init_state("i", 0, int, **index_bounds)
    index = sb.number_input(f"Datapoint (test image 0–{len(ds) - 1})", **index_bounds, key="i",
                            help="Index into the held-out test split.")
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


def _unzip_image_folder(data: bytes, name: str = "uploaded zip") -> data_mod.Dataset:
    """The uploaded zip of class folders as a test-split dataset: :func:`geometry.data.load_zip_upload`
    (limits checked before decoding; the temporary folder is removed on success and on failure)."""
    return data_mod.load_zip_upload(data, name=name, split="test")


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
        ds = (_unzip_image_folder(raw, data_file.name) if data_kind.startswith("zip")
              else data_mod.load_npz(data_file, split="test"))
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
        return ds.images[est], ds.images[held], f"{dataset}/{seed}/{n_estimate}+{n_heldout}"  # both define the points
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


def memo_with_progress(max_entries: int = 16):
    """Memoise a slow function that reports progress through a ``_progress`` argument.

    ``st.cache_data`` replays the Streamlit calls a cached function made; a progress bar drawn
    outside and moved from inside it then fails on the next rerun (``CacheReplayClosureError``).
    This memo lives in ``st.cache_resource`` (shared by sessions, like ``st.cache_data``), is keyed
    by every argument except ``_progress``, holds at most ``max_entries`` results (least recently
    used dropped first), and never replays anything. Results must be treated as read-only.
    """
    import functools
    import threading
    from collections import OrderedDict

    def decorate(fn):
        @st.cache_resource(show_spinner=False)
        def store():
            return OrderedDict(), threading.Lock()

        @functools.wraps(fn)
        def wrapper(*args, _progress=None, **kwargs):
            key = (args, tuple(sorted(kwargs.items())))
            results, lock = store()
            with lock:
                if key in results:
                    results.move_to_end(key)
                    return results[key]
            value = fn(*args, _progress=_progress, **kwargs)
            with lock:
                results[key] = value
                while len(results) > max_entries:
                    results.popitem(last=False)
            return value

        wrapper.clear = lambda: store()[0].clear()
        return wrapper

    return decorate


@memo_with_progress(max_entries=16)
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


# ------------------------------------------------------------------ curvature settings shared by pages
#: Session keys of the curvature settings (the "Curvature vs m" page's widgets); the cross-section
#: page shows the same keys so the two pages use one S_c / S_f and one curvature estimator.
CURVATURE_KEYS = ("cv_n", "cv_m", "cv_method", "cv_scale", "cv_h", "cv_point")
CURVATURE_METHODS = {"finite_difference": "finite differences (scale h)", "smoothed": "smoothed twin (softplus, β)",
                     "exact": "exact (smooth networks)"}
CURVATURE_POINTS = {"boundary": "z = x + r(x)", "inside": "x + 0.8·r(x) (authors' code)"}
#: How the finite-difference scale h is chosen (radio options; labels depend on the network).
H_SCALES = ("authors", "xi", "custom")
# Widget bounds, each defined once: the widget is drawn with them and :func:`init_state` clamps the
# URL's value into them (so a link cannot hold a value the widget refuses).
#: n: training points used for S_c / S_f (slider).
CV_N = dict(min_value=10, max_value=500, step=10)
#: maximum subspace dimension m (slider).
CV_M = dict(min_value=2, max_value=50)
#: custom finite-difference scale h, pixel-space ℓ2 distance (number input; every page's "h").
H_INPUT = dict(min_value=1e-3, max_value=100.0)
#: held-out points of the curvature curves (URL only, no widget).
CV_HELDOUT = dict(min_value=1, max_value=10_000)


def keep_curvature_settings() -> None:
    """Keep the curvature settings across page switches.

    Streamlit drops a widget's session value at the end of a run in which no widget with that key
    was drawn; re-assigning the values at the top of a page keeps them (the documented multipage
    workaround)."""
    for key in CURVATURE_KEYS + ("cv_heldout",):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def curvature_settings(clf: Classifier, model_name: str, container=None) -> dict:
    """Draw the curvature settings (n, m, method, boundary point, scale h) with the keys of the
    "Curvature vs m" page and return them as plain values.

    Returns a dict with ``n``, ``m``, ``method``, ``point``, ``scale``, ``h`` (float or None: None
    for the exact / smoothed methods) and ``h_text`` (how h was chosen, for captions).
    """
    import math

    from geometry.hessian import default_h

    box = container if container is not None else st
    h_authors = default_h(clf)
    init_state("cv_n", 100, int, **CV_N)
    init_state("cv_m", 20, int, **CV_M)
    init_state("cv_method", "finite_difference", options=list(CURVATURE_METHODS))
    init_state("cv_scale", "authors", options=H_SCALES)
    init_state("cv_h", round(h_authors, 4), float, **H_INPUT)
    init_state("cv_point", "boundary", options=list(CURVATURE_POINTS))
    init_state("cv_heldout", 50, int, **CV_HELDOUT)
    c1, c2, c3, c4 = box.columns(4)
    n = c1.slider("n: points used for S_c", **CV_N, key="cv_n",
                  help="Training points whose boundary Hessians are averaged (paper: training points).")
    m = c2.slider("maximum m", **CV_M, key="cv_m", help="Dimension of the subspaces S_c and S_f.")
    method = c3.selectbox("Hessian-vector products", list(CURVATURE_METHODS), key="cv_method",
                          format_func=CURVATURE_METHODS.get,
                          help="A ReLU network's exact Hessian is zero almost everywhere: finite differences of "
                               "gradients at scale h measure the curvature at that scale.")
    point = c4.selectbox("boundary point", list(CURVATURE_POINTS), key="cv_point", format_func=CURVATURE_POINTS.get)
    h, h_text = None, ""
    scales = {"authors": f"authors' default h = 10·√d/512 = {h_authors:.3g}",
              "xi": "match h to ξ (1/5 of the random-noise norm fooling 50 %)", "custom": "custom h"}  # H_SCALES
    if method == "finite_difference":
        s1, s2 = box.columns([2, 1])
        scale = s1.radio("scale h (pixel-space distance)", list(scales), key="cv_scale", format_func=scales.get)
        if scale == "authors":
            h, h_text = h_authors, "authors' h"
        elif scale == "xi":
            with st.spinner("Measuring the random-noise norm…"):
                noise = noise_norm(model_name, selection_dataset(), 0.5)
            if math.isfinite(noise.quantile):
                h, h_text = noise.quantile / 5, "h = ξ"
                s2.metric("ξ = h", f"{h:.3g}", help=f"random noise of norm {noise.quantile:.3g} fools 50 % of held-out "
                                                     f"points; {noise.infinite_share:.0%} of random rays never change the label")
            else:
                box.warning("Random noise fools fewer than 50 % of points even at the largest norm tried; "
                            "using the authors' h.")
                h, h_text = h_authors, "authors' h"
        else:
            h = float(s2.number_input("h", **H_INPUT, key="cv_h", format="%.4f"))
            h_text = "custom h"
    return {"n": int(n), "m": int(m), "method": method, "point": point, "scale": st.session_state["cv_scale"],
            "h": None if h is None else float(h), "h_text": h_text}


def subspace(kind: str, model_name: str, dataset: str, n: int, m: int, method: str, h: float | None, point: str,
             n_heldout: int = 50, seed: int = 0, progress=None):
    """S_c (``kind="curved"``) or S_f (``"flat"``) exactly as :func:`curvature_study` computes them
    (same points, same disk-cache key), so both pages share one subspace. ``n_heldout`` matters only
    for an uploaded dataset, whose estimation points depend on it (:func:`study_points`).

    Not an ``st.cache_data`` function on purpose: ``progress`` moves a progress bar drawn outside,
    and Streamlit cannot replay such calls from its cache (CacheReplayClosureError). The disk cache
    (``geometry.store.cached_subspace``) makes a repeated call a small file read.
    """
    from geometry.deepfool import deepfool
    from geometry.errors import InvalidInputError
    from geometry.store import cached_subspace

    est, _, key = study_points(dataset, n, n_heldout, seed)
    clf = get_model(model_name)
    if kind == "curved":
        return cached_subspace("curved", clf, est, m, data_key=key, method=method, h=h, point=point,
                               random_state=seed, progress=progress)
    try:  # the usual case: at least m of the n DeepFool runs converged → key of m (read from disk if cached)
        return cached_subspace("flat", clf, est, m, data_key=key)
    except InvalidInputError:  # fewer usable normals than m: the curvature page's min(m, converged)
        df = deepfool(clf, est)
        return cached_subspace("flat", clf, est, min(m, int(df.converged.sum())), data_key=key, deepfool_result=df)


# ------------------------------------------------------------------ universal perturbations (Fig. 7b, 8, 9)
#: ξ = the random-noise norm that fools ``share`` of the points / XI_DIVISOR (paper Fig. 7b: 1/5).
#: Divided (not multiplied by 0.2) so that h = ξ is bit-identical to the curvature page's h = ξ and
#: the two pages share S_c's disk-cache entry.
XI_DIVISOR = 5
#: The UAP algorithm's target fooling rate is 1 − UAP_DELTA; the theorems use the same δ.
UAP_DELTA = 0.2
#: Held-out points of the "Curvature vs m" page (its ``cv_heldout``): for an uploaded dataset the
#: estimation points depend on it (:func:`study_points`), so S_c is read from the same disk-cache entry.
_CURVATURE_HELDOUT = 50


#: If random noise within the pixel cube's diameter fools fewer than ``share`` of the points, the
#: search for the noise norm goes on up to this multiple of the diameter (perturbations are never
#: clipped to the pixel range in this geometric setting, so the diameter is only a convention).
NOISE_RANGE_FACTOR = 10.0


@st.cache_data(show_spinner=False, max_entries=32)
def universal_noise_norm(model_name: str, dataset: str, share: float, n_points: int = 200, seed: int = 0):
    """:func:`noise_norm` (search range: the pixel cube's diameter √d·range, the curvature page's ξ), or,
    when that fools fewer than ``share`` of the points, the same search up to NOISE_RANGE_FACTOR × the
    diameter. ``max_norm`` of the result says which."""
    import math

    from geometry.universal import random_noise_norm

    # the same cache entry as the curvature page's call (Streamlit keys on the arguments as passed)
    noise = noise_norm(model_name, dataset, share) if (n_points, seed) == (200, 0) else \
        noise_norm(model_name, dataset, share, n_points, seed)
    if math.isfinite(noise.quantile):
        return noise
    _, held, _ = study_points(dataset, 1, n_points, seed)
    return random_noise_norm(get_model(model_name), held, share=share, random_state=seed,
                             max_norm=NOISE_RANGE_FACTOR * noise.max_norm)


def universal_points(dataset: str, n: int, n_heldout: int, n_uap: int, seed: int = 0):
    """Points of the universal-perturbation study: (estimate_xs, heldout_xs, uap_xs, data_key).

    The estimation points (S_c, S_f) and their ``data_key`` are exactly those of :func:`study_points`
    as the "Curvature vs m" page calls it, so S_c / S_f come from the same disk-cache entry.
    Built-in datasets: held-out = the first ``n_heldout`` test images, UAP points = ``n_uap`` seeded
    training images. Uploaded dataset (one split): held-out and UAP points are disjoint parts of the
    images not used for estimation (held-out first, at most half of them).
    """
    from geometry.store import choose_points

    if not dataset.startswith(USER_PREFIX):
        est, held, key = study_points(dataset, n, n_heldout, seed)
        train = get_dataset(dataset, "train")
        uap = train.images[choose_points(len(train), min(n_uap, len(train)), random_state=seed + 1)]
        return est, held, uap, key
    import torch

    est, _, key = study_points(dataset, n, _CURVATURE_HELDOUT, seed)
    ds = get_dataset(dataset)
    # the indices study_points drew (same arithmetic), so the rest is disjoint from the estimation points
    n_e = min(n, len(ds) // 2)
    idx = choose_points(len(ds), n_e + min(_CURVATURE_HELDOUT, len(ds) - n_e), random_state=seed)
    used = torch.zeros(len(ds), dtype=torch.bool)
    used[idx[:n_e]] = True
    rest = torch.nonzero(~used).flatten()
    rest = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed + 1))]
    n_h = max(1, min(n_heldout, len(rest) // 2))
    held_idx, uap_idx = rest[:n_h], rest[n_h:n_h + n_uap]
    if len(uap_idx) == 0:
        uap_idx = idx[:n_e]
    return est, ds.images[held_idx], ds.images[uap_idx], key


@memo_with_progress(max_entries=16)
def universal_study(model_name: str, dataset: str, n: int, m_max: int, h: float, share: float, n_samples: int,
                    n_heldout: int = 1000, n_uap: int = 1000, seed: int = 0, _progress=None):
    """:func:`geometry.store.universal_study` for plain-valued settings (S_c / S_f shared with the
    curvature page through the disk cache; ξ from :func:`universal_noise_norm`)."""
    from geometry.store import universal_study as study

    noise = universal_noise_norm(model_name, dataset, share, 200, seed)  # = the page's call
    est, held, uap_xs, key = universal_points(dataset, n, n_heldout, n_uap, seed)
    return study(get_model(model_name), est, held, uap_xs, noise, data_key=key, m_max=m_max, h=h,
                 n_samples=n_samples, xi_divisor=XI_DIVISOR, delta=UAP_DELTA, random_state=seed, progress=_progress)


@st.cache_data(show_spinner=False, max_entries=16)
def universal_samples(model_name: str, dataset: str, n: int, m_max: int, h: float, share: float, n_samples: int,
                      m: int, n_heldout: int = 1000, n_uap: int = 1000, seed: int = 0, k: int = 8,
                      n_gallery: int = 8, _study=None):
    """:func:`geometry.store.universal_samples` for plain-valued settings.

    ``_study`` is the :func:`universal_study` result for the same settings (not hashed: those
    settings define it); without it, it is recomputed / read from the memo here."""
    from geometry.store import universal_samples as samples

    study = _study if _study is not None else \
        universal_study(model_name, dataset, n, m_max, h, share, n_samples, n_heldout, n_uap, seed)
    _, held, _, _ = universal_points(dataset, n, n_heldout, n_uap, seed)
    return samples(get_model(model_name), study, held, m=m, k=k, n_gallery=n_gallery, random_state=seed)


# ------------------------------------------------------------------ comparing networks
def model_label(name: str) -> str:
    """How a network is named in pickers: zoo names as they are, uploads with the 📤 mark."""
    return f"📤 {name[len(USER_PREFIX):]}" if name.startswith(USER_PREFIX) else name


def compatible_models(dataset: str) -> list[str]:
    """Networks that can be compared on ``dataset``: the zoo's networks of that dataset, then this
    session's uploads whose input shape equals the dataset's image shape."""
    names = list(zoo.model_names(dataset)) if not dataset.startswith(USER_PREFIX) else []
    try:
        shape = tuple(get_dataset(dataset, "test").input_shape)
    except Exception:  # an unavailable dataset: the sidebar already says so
        return names
    return names + [k for k, u in user_models().items() if tuple(u["clf"].input_shape) == shape and k not in names]


def shareable(name: str) -> bool:
    """Whether a network name may go into the URL (zoo networks; uploads live in one session only)."""
    return not name.startswith(USER_PREFIX)
