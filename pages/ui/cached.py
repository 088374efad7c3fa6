"""Models, datasets and study calls of the app, cached.

* Networks and datasets live in ``st.cache_resource`` (networks frozen, never mutated); a browser
  session's uploads live in its session state only, as stand-ins whose model runs in the session's
  worker process (:mod:`geometry.runtime.uploads`): every study call below on an upload is sent there
  whole (background jobs through :meth:`geometry.runtime.jobs.JobRegistry.submit`, the rest through
  :func:`~geometry.runtime.uploads.in_worker`).
* :func:`study_points` is the one point split of :mod:`geometry.study` for the sidebar's dataset.
* The study functions of :mod:`geometry.study` cache their results themselves (in memory and on
  disk, keyed by the weights' and the points' fingerprints and the settings' key), so the wrappers
  here only draw a progress bar or a spinner; the few per-view computations the study layer does
  not cache (a cross-section, the gallery, angles at one m, the fooling matrix) are kept in its
  in-memory LRU (:func:`geometry.study.cached_result`, ``disk=False``).

A progress bar moved from inside ``st.cache_data`` breaks the next rerun (CacheReplayClosureError):
none of the study calls below is an ``st.cache_data`` function.
"""

from __future__ import annotations

import streamlit as st
import torch

from geometry import data as data_mod
from geometry import study, zoo
from geometry.cache import cache_key
from geometry.classifier import Classifier
from geometry.compare import transfer_sections as _transfer_sections
from geometry.errors import AtlasError
from geometry.hessian import CurvatureEstimator
from geometry.runtime.uploads import in_worker
from geometry.study import data_fingerprint, network_fingerprint
from geometry.study.settings import check_rx

from . import jobs as _jobs
from .state import USER_PREFIX

DATASET_LABELS = {"digits": "8×8 digits (embedded)", "mnist": "MNIST 28×28", "cifar10": "CIFAR-10 32×32"}


# ------------------------------------------------------------------ datasets and networks
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
    # a background job (pages/ui/jobs.py): leaving the page never restarts it, "Prepare networks" shares it
    _jobs.ensure_trained(name, f"Training {name} — first use only; it is cached on disk afterwards")
    return _cached_model(name)


def compatible_models(dataset: str) -> list[str]:
    """Networks that can be compared on ``dataset``: the zoo's networks of that dataset, then this
    session's uploads whose input shape equals the dataset's image shape."""
    names = list(zoo.model_names(dataset)) if not dataset.startswith(USER_PREFIX) else []
    try:
        shape = tuple(get_dataset(dataset, "test").input_shape)
    except Exception:  # an unavailable dataset: the sidebar already says so
        return names
    return names + [k for k, u in user_models().items() if tuple(u["clf"].input_shape) == shape and k not in names]


@st.cache_resource(show_spinner=False, max_entries=32)
def _split_points(dataset: str, split: study.PointSplit) -> study.StudyPoints:
    if dataset.startswith(USER_PREFIX):
        return study.split_points(get_dataset(dataset), None, split)
    return study.split_points(get_dataset(dataset, "test"), get_dataset(dataset, "train"), split)


def study_points(dataset: str, split: study.PointSplit) -> study.StudyPoints:
    """The study's points on the sidebar's dataset (:func:`geometry.study.split_points`): a built-in
    dataset's training and test splits, or an uploaded dataset's two seeded halves."""
    return _split_points(dataset, split)


# ------------------------------------------------------------------ in-memory per-view results
def _memo(kind: str, key: dict, compute):
    """A per-view result in the study layer's in-memory LRU (shared by sessions; read-only)."""
    return study.cached_result(f"app-{kind}", key, compute, disk=False)


def unconstrained_box_share(clf: Classifier, x: torch.Tensor) -> study.BoxShare:
    """:func:`geometry.study.provenance.unconstrained_box_share` of one point (C, H, W), in the in-memory LRU (an
    upload's DeepFool in its worker)."""
    key = {"network": network_fingerprint(clf), "x": data_fingerprint(x)}
    return _memo("unconstrained-box", key, lambda: in_worker(study.provenance.unconstrained_box_share, clf, x))


# ------------------------------------------------------------------ ξ and h
def _noise_norm(clf: Classifier, points: study.StudyPoints, share: float, *, progress=None):
    return study.noise_norm(clf, points, share)  # one vectorised search: no intermediate progress to report


def noise_norm(clf: Classifier, points: study.StudyPoints, share: float):
    """:func:`geometry.study.noise_norm` as a background job (ξ = its quantile / 5: :func:`geometry.study.xi`)."""
    key = f"noise:{network_fingerprint(clf)}:{points.noise_key}:{points.split.seed}:{float(share)!r}"
    return _jobs.result_of(key, "Measuring the random-noise norm", _noise_norm, clf, points, share)


def resolve_h(clf: Classifier, scale: study.HScale, points: study.StudyPoints) -> study.ResolvedH:
    """:func:`geometry.study.resolve_h`; when h = ξ needs the random-noise norm, that runs as a background job
    first (:func:`noise_norm`), so resolving h afterwards reads it from the study cache."""
    if scale.preset == "xi":
        noise_norm(clf, points, scale.noise_share)
    return in_worker(study.resolve_h, clf, scale, points)  # an upload: in its worker (issue 22)


# ------------------------------------------------------------------ studies
def curvature_study(clf: Classifier, points: study.StudyPoints, settings: study.CurvatureSettings):
    """:func:`geometry.study.curvature_study` with a progress bar."""
    return _jobs.result_of(  # a background job: reopening the page finds it (pages/ui/jobs.py)
        _jobs.study_key("curvature", clf, points, settings),
        "Computing S_c, S_f and curvature versus m",
        study.curvature_study,
        clf,
        points,
        settings,
    )


def constrained_study(clf: Classifier, points: study.StudyPoints, settings: study.ConstrainedSettings):
    """:func:`geometry.study.constrained_study` as a background job with a progress bar."""
    return _jobs.result_of(
        _jobs.study_key("constrained", clf, points, settings),
        "DeepFool in random subspaces of every dimension",
        study.constrained_study,
        clf,
        points,
        settings,
    )


def study_subspaces(clf: Classifier, points: study.StudyPoints, settings: study.CurvatureSettings, *, text: str):
    """(S_c, S_f) exactly as the Curvature vs m page computes them (:func:`geometry.study.study_subspaces`)."""
    key = {
        "network": network_fingerprint(clf),
        "estimate": points.estimate_key,
        "noise": points.noise_key,
        "settings": settings.key(),
    }
    return _jobs.result_of(  # a background job: reopening the page finds it (pages/ui/jobs.py)
        _jobs.study_key("subspaces", clf, points, settings),
        text,
        lambda progress: _memo(
            "subspaces", key, lambda: in_worker(study.study_subspaces, clf, points, settings, progress=progress)
        ),
    )


def _section_key(clf: Classifier, x: torch.Tensor, settings: study.SectionSettings, subspace, perturbation) -> dict:
    return {
        "network": network_fingerprint(clf),
        "x": data_fingerprint(x),
        "settings": settings.key(),
        "subspace": None if subspace is None else data_fingerprint(subspace.basis),
        "perturbation": None if perturbation is None else data_fingerprint(perturbation),
    }


def section_key(clf: Classifier, x: torch.Tensor, settings: study.SectionSettings, subspace=None, perturbation=None):
    """A hex key of what :func:`section_study` computes from (network, datapoint, settings, subspace, UAP): one
    key per section result, e.g. for the figure drawn from it (:func:`pages.ui.layout.cached_figure`)."""
    return cache_key(_section_key(clf, x, settings, subspace, perturbation))


def section_study(clf: Classifier, x: torch.Tensor, settings: study.SectionSettings, subspace=None, perturbation=None):
    """:func:`geometry.study.section_study` at one datapoint, with a spinner (``perturbation``: the UAP)."""
    key = _section_key(clf, x, settings, subspace, perturbation)
    with st.spinner("Computing DeepFool, the cross-section and the curvature along v…"):
        return _memo(
            "section",
            key,
            lambda: in_worker(study.section_study, clf, x, settings, subspace=subspace, perturbation=perturbation),
        )


def universal_study(clf: Classifier, points: study.StudyPoints, settings: study.UniversalSettings):
    """:func:`geometry.study.universal_study` with a progress bar."""
    return _jobs.result_of(  # a background job: reopening the page finds it (pages/ui/jobs.py)
        _jobs.study_key("universal", clf, points, settings),
        UNIVERSAL_TITLE,
        study.universal_study,
        clf,
        points,
        settings,
    )


UNIVERSAL_TITLE = "Computing S_c, S_f, fooling rates and the UAP"


def universal_study_or_ready(
    clf: Classifier,
    points: study.StudyPoints,
    settings: study.UniversalSettings,
    *,
    name: str,
    dataset: str,
    notice=None,
) -> _jobs.Shown:
    """:func:`universal_study`, or while it runs the last finished universal study shown by a page
    (:func:`pages.ui.jobs.result_or_ready`): ``.inputs`` = (network, points, settings) of the result shown."""
    return _jobs.result_or_ready(
        "universal",
        _jobs.study_key("universal", clf, points, settings),
        UNIVERSAL_TITLE,
        study.universal_study,
        clf,
        points,
        settings,
        name=name,
        dataset=dataset,
        settings=settings,
        notice=notice,
    )


def universal_samples(clf: Classifier, result, points: study.StudyPoints, settings: study.UniversalSettings, *, m: int):
    """:func:`geometry.study.universal_samples` (8 vectors of S_c at one m) for ``result`` =
    :func:`universal_study` (clf, points, settings), with a spinner."""
    key = {
        "network": network_fingerprint(clf),
        "heldout": points.heldout_key,
        "settings": settings.key(),
        "xi": repr(float(result.xi)),
        "h": repr(float(result.h)),
        "m": int(m),
    }
    with st.spinner(f"Sampling 8 vectors of S_c at m = {m}…"):
        return _memo("samples", key, lambda: in_worker(study.universal_samples, clf, result, points, m=int(m)))


def compare_study_or_ready(
    clf_a: Classifier,
    clf_b: Classifier,
    points: study.StudyPoints,
    settings: study.CompareSettings,
    *,
    text: str,
    name: str,
    dataset: str,
    notice=None,
) -> _jobs.Shown:
    """:func:`geometry.study.compare_study` as a background job with a progress bar (it names the result after these
    two networks), or while it runs the last finished comparison shown by a page (:func:`pages.ui.jobs.result_or_ready`:
    the same pair ``name`` = "A and B", else the same dataset, else any): ``.result`` a NetworkComparison,
    ``.inputs`` = (network A, network B, points, settings) of the result shown."""
    return _jobs.result_or_ready(
        "compare",
        _jobs.study_key(
            "compare", clf_a, points, settings, b=network_fingerprint(clf_b), names=[clf_a.name, clf_b.name]
        ),
        text,
        study.compare_study,
        clf_a,
        clf_b,
        points,
        settings,
        name=name,
        dataset=dataset,
        settings=settings,
        notice=notice,
    )


def compare_angles(comparison, settings: study.CompareSettings, *, m: int) -> dict:
    """:func:`geometry.study.compare_angles` for the first m directions."""
    key = {
        "subspaces": [data_fingerprint(s.basis) for pair in comparison.subspaces.values() for s in pair],
        "names": list(comparison.names),
        "settings": settings.key(),
        "m": int(m),
    }
    return _memo("angles", key, lambda: study.compare_angles(comparison, settings, m=int(m)))


def _transfer_key(clf_b: Classifier, x, direction, *, seed: int, resolution: int, h: float, rx: str) -> dict:
    return {
        "network": network_fingerprint(clf_b),
        "x": data_fingerprint(x),
        "v": data_fingerprint(direction),
        "seed": int(seed),
        "resolution": int(resolution),
        "h": repr(float(h)),
        **({"rx": rx} if rx != "unconstrained" else {}),
    }


def transfer_sections_key(
    clf_b: Classifier, x: torch.Tensor, direction: torch.Tensor, *, seed: int, resolution: int, h: float, rx: str
) -> str:
    """A hex key of what :func:`transfer_sections` computes from (same arguments): e.g. for the figures drawn from
    its result (:func:`pages.ui.layout.cached_figure`)."""
    return cache_key(_transfer_key(clf_b, x, direction, seed=seed, resolution=resolution, h=h, rx=rx))


def transfer_sections(
    clf_b: Classifier,
    x: torch.Tensor,
    direction: torch.Tensor,
    *,
    seed: int,
    resolution: int,
    h: float,
    rx: str,
):
    """B's normal cross-sections at ``x`` along a direction and a random one (:func:`geometry.compare.transfer_sections`),
    with r_B(x) from DeepFool under ``rx`` (``"box"``: clamped to the pixel box)."""
    check_rx(rx)
    key = _transfer_key(clf_b, x, direction, seed=seed, resolution=resolution, h=h, rx=rx)
    with st.spinner("Cross-sections of network B…"):
        return _memo(
            "transfer-sections",
            key,
            lambda: in_worker(
                _transfer_sections,
                clf_b,
                x,
                direction,
                random_state=int(seed),
                resolution=int(resolution),
                estimator=CurvatureEstimator(h=float(h)),
                clip=rx == "box",
            ),
        )


def fooling_matrix(
    clfs: dict,
    points: study.StudyPoints,
    settings: study.CompareSettings,
    *,
    h: float,
    m: int,
    xi: float,
    n_vectors: int,
):
    """:func:`geometry.study.fooling_matrix` with a progress bar."""
    key = {
        "networks": [[name, network_fingerprint(c)] for name, c in clfs.items()],
        "estimate": points.estimate_key,
        "heldout": points.heldout_key,
        "settings": settings.key(),
        "h": repr(float(h)),
        "m": int(m),
        "xi": repr(float(xi)),
        "n_vectors": int(n_vectors),
    }

    def compute(*, progress=None):
        return _memo(
            "fooling-matrix",
            key,
            lambda: in_worker(
                study.fooling_matrix,
                clfs,
                points,
                settings,
                h=float(h),
                m=int(m),
                xi=float(xi),
                n_vectors=int(n_vectors),
                progress=progress,
            ),
        )

    # a background job like the other studies: leaving the page keeps the work (issue 19, item 5)
    return _jobs.result_of(f"fooling-matrix:{cache_key(key)}", "Fooling-rate matrix", compute)
