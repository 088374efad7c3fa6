"""Background jobs in the app: a page's long computation, shown while it runs, found again when the page
is reopened; the sidebar's and Home's view of background work; the first-start MNIST training.

The work itself runs in :mod:`geometry.runtime.jobs` (one registry per server process, shared by every
session and rerun). A page calls :func:`result_of` (through ``pages/ui/cached.py``): the job for the
given key is submitted — or found, if it is queued or running — and the script polls it, moving a
progress bar with the job's message, elapsed time and ETA, until it is done. Leaving the page stops
only the polling, never the job; opening the page again polls the same job. Results go to the disk
cache through the study layer and the zoo, so a new process finds them.

Issue 13, item 4: on first start, if MNIST is on this machine and ``mnist-lenet`` is not
trained yet, it is trained in the background; ``digits-lenet`` stays the default until it is ready,
then ``mnist-lenet`` is the default for new sessions (``$ATLAS_BACKGROUND_TRAINING=0`` turns this off).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
import time
from collections.abc import Collection, Iterator
from typing import Any

import streamlit as st

from geometry import zoo
from geometry.cache import cache_dir, cache_key
from geometry.data import load_dataset, shared_data_root
from geometry.errors import AtlasError
from geometry.runtime import jobs
from geometry.study import network_fingerprint

#: The network that shows the paper's effect (docs/teaching.md) and the embedded one used until it is ready.
PREFERRED_MODEL = "mnist-lenet"
FALLBACK_MODEL = "digits-lenet"
#: A job that finishes within this many seconds (a cache hit) shows no progress bar at all.
QUICK_SECONDS = 0.3
#: How often a waiting page / the background panels refresh (seconds).
POLL_SECONDS = 0.5
PANEL_SECONDS = 2.0
#: How long a page's script waits for its job before it stops and polls with a fragment instead
#: (None: until done — the page then continues with the result in the same run).
WAIT_SECONDS: float | None = None
#: Rough training times on a busy 2-core CPU (s), shown before a job's own progress gives an ETA;
#: measured here: digits networks 1.5–16 s, mnist-lenet 180–500 s (cards' train_seconds).
EXPECTED_TRAIN_SECONDS = {"digits": 15.0, "mnist": 300.0, "cifar10": 1200.0}
#: Rough durations of the Curvature vs m study at its default settings (s); measured here: digits-lenet 0.5 s
#: (12.8 s under load ≈ 10), mnist-lenet ≈ 45 s under load; CIFAR-10 not measured.
EXPECTED_CURVATURE_SECONDS = {"digits": 15.0, "mnist": 60.0}


class JobFailedError(AtlasError):
    """A page's background job failed; the message is the job's error."""


# ------------------------------------------------------------------ formatting
def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = max(float(seconds), 0.0)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min" if s >= 120 else f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{s / 3600:.1f} h"


def status_line(job: jobs.Job) -> str:
    """One line: state, elapsed time, ETA (and the jobs ahead of a queued one)."""
    s = job.status()
    if s.state == "queued":
        ahead = jobs.registry().ahead(job)
        wait = jobs.registry().eta_until_done(job)
        head = f"waiting for {len(ahead)} job{'s' if len(ahead) != 1 else ''} ahead" if ahead else "starting"
        return f"{head} · done in ≈ {_duration(wait)}" if wait is not None else head
    if s.state == "running":
        eta = "" if s.eta is None else f" · about {_duration(s.eta)} left"
        return f"running for {_duration(s.elapsed)}{eta}"
    if s.state == "done":
        return f"done in {_duration(s.elapsed)}"
    return f"{s.state}: {s.error}"


def bar_text(title: str, job: jobs.Job) -> str:
    """A progress bar's text: ``title``, the running job's message, then :func:`status_line`."""
    s = job.status()
    msg = s.message if s.state == "running" else ""
    return f"{title} — {msg + ' · ' if msg else ''}{status_line(job)}"


# ------------------------------------------------------------------ a page's job
def study_key(kind: str, clf, points, settings, **extra: Any) -> str:
    """The job key of a study: its kind, the network's fingerprint, the points' and the settings' keys."""
    parts = {
        "points": [points.estimate_key, points.heldout_key, points.noise_key, getattr(points, "uap_key", None)],
        "settings": settings.key(),
        **extra,
    }
    return f"{kind}:{network_fingerprint(clf)}:{cache_key(parts)}"


def result_of(key: str, title: str, fn, *args: Any, **kwargs: Any) -> Any:
    """The result of ``fn(*args, progress=…, **kwargs)`` run as the background job ``key``.

    Submits the job to the page lane (or finds the queued / running / finished one under ``key``),
    draws its progress bar (message, elapsed time, ETA) while it runs and returns its result. If the
    script is left (another page, another widget) the job keeps running; the next call finds it.

    Raises
    ------
    JobFailedError
        the job failed with an :class:`AtlasError` (its message) or was cancelled; the next call retries.
        Any other exception of the work (a bug) is raised again here, as if computed in the page.
    """
    job = jobs.registry().submit(key, fn, *args, label=title, lane="page", front=True, owner=session_owner(), **kwargs)
    with waiting_on(job):
        if not job.wait(QUICK_SECONDS) and not _wait_in_script(job, title, WAIT_SECONDS):
            _poll_fragment(key, title)  # still running after WAIT_SECONDS: poll without holding the script
            st.stop()
    return _result(job)


@contextlib.contextmanager
def waiting_on(job: jobs.Job) -> Iterator[None]:
    """While the script waits for ``job``: when it is a job on an upload (the ``upload`` lane, whose threads wait on
    the sessions' workers), this page run does not count as a visitor's for the upload pool's pauses
    (:func:`geometry.runtime.uploads.waiting_on_worker`) — a page must never stop the worker it waits for."""
    uploads = sys.modules.get("geometry.runtime.uploads")  # never imported here: no upload pool exists without it
    if uploads is None or job.lane != jobs.UPLOAD_LANE:
        yield
        return
    with uploads.waiting_on_worker():
        yield


def session_owner() -> str:
    """This browser session's id: the owner of the jobs it submits (issue 22, item 4); "" outside a session."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return "" if ctx is None else str(ctx.session_id)


def _result(job: jobs.Job) -> Any:
    if job.state == "done":
        return job.result
    exc = job.exception
    if exc is not None and not isinstance(exc, AtlasError):
        raise exc  # a bug, not a user error: raised as if computed here (as before jobs), never hidden
    raise JobFailedError(job.error or f"{job.label}: {job.state}")


def _wait_in_script(job: jobs.Job, title: str, limit: float | None) -> bool:
    """Poll ``job`` with a progress bar until done (True) or ``limit`` seconds (False)."""
    bar = st.progress(job.status().fraction, text=bar_text(title, job))
    cancel = st.empty()
    if cancel.button(
        "Cancel",
        key=f"_job_cancel_{job.key}",
        help="Stop this computation. Otherwise it goes on in the background when you leave the page, and the "
        "page shows it again when you come back.",
    ):
        jobs.registry().cancel(job.key, owner=session_owner())  # stops it only if no other session waits on it
        bar.empty()
        cancel.info("Cancelled. It starts again at the next change on this page.")
        st.stop()
    start = time.monotonic()
    while not job.wait(POLL_SECONDS):
        bar.progress(job.status().fraction, text=bar_text(title, job))  # also where a rerun interrupts
        if limit is not None and time.monotonic() - start >= limit:
            return False
    bar.empty()
    cancel.empty()
    return True


@st.fragment(run_every=POLL_SECONDS * 2)
def _poll_fragment(key: str, title: str) -> None:
    job = jobs.registry().get(key)
    if job is None or job.finished:
        st.rerun()  # the whole page again: it now finds the result
        return
    st.progress(job.status().fraction, text=bar_text(title, job))
    st.caption(f"This runs in the background ({job.id}): you can leave the page and come back.")


def ensure_trained(name: str, title: str) -> None:
    """Train the zoo network ``name`` as a background job (key ``train:<name>``) unless it is cached,
    showing its progress; a job started by "Prepare networks" or the first start is found, not repeated."""
    if zoo.is_cached(name):
        return
    jobs.registry().forget(f"train:{name}")  # a finished job whose file is gone (deleted, damaged) runs again
    result_of(f"train:{name}", title, _train, name, expected_seconds=_expected(name))


def _train(name: str, *, progress) -> str:
    try:
        zoo.load_model(name, progress=progress)
    except jobs.JobCancelledError:
        raise
    except Exception as exc:  # said on the page that waits (issue 22, item 4), never a silent restart
        detail = str(exc) if isinstance(exc, AtlasError) else f"{type(exc).__name__}: {exc}"
        raise JobFailedError(
            f"training {name} stopped: {detail}. Its last finished epoch is kept: the next try resumes from there"
        ) from exc
    return name


#: Training-time estimate (issue 20): seconds per epoch of a standard-regime LeNet on a busy 2-core CPU, per dataset
#: (EXPECTED_TRAIN_SECONDS over the zoo's epochs: mnist-lenet 300 s / 4 epochs, cards 227–499 s at load 7–11) …
EPOCH_SECONDS = {
    ds: EXPECTED_TRAIN_SECONDS[ds] / zoo.ZOO[f"{ds}-lenet"].epochs for ds in ("digits", "mnist", "cifar10")
}
#: … times the architecture's cost per epoch relative to a LeNet (mnist-nin: 27.7 min for 2 epochs against
#: mnist-lenet-seed1's 4.9 min for 4, docs/reproduction-compare.md) …
ARCHITECTURE_FACTOR = {"nin": 11.0}
#: … times the regime's cost per epoch relative to standard training (benchmarks/robust.py on digits,
#: docs/reproduction-robust.md: PGD-AT with 5 steps 3.6×, i.e. ≈ 1 + 0.52 per step; FGSM-AT 1.2×; CURE 3.2×).
#: LMT's ratio was not measured: 2× is assumed.
REGIME_FACTOR = {"fgsm-at": 1.2, "cure": 3.2, "lmt": 2.0}
PGD_STEP_FACTOR = 0.52


def _cost_factor(name: str) -> float:
    """The training cost of ``name`` in LeNet-epochs of its dataset: epochs × :data:`ARCHITECTURE_FACTOR` × the
    regime's factor (PGD-AT: 1 + :data:`PGD_STEP_FACTOR` per step)."""
    entry = zoo.ZOO[name]
    if entry.regime == "pgd-at":
        regime = 1.0 + PGD_STEP_FACTOR * int(entry.regime_params.get("steps", 7))
    else:
        regime = REGIME_FACTOR.get(entry.regime, 1.0)
    return entry.epochs * ARCHITECTURE_FACTOR.get(entry.architecture, 1.0) * regime


_MEASURED: dict[str, float | None] = {}  # zoo name → its card's train_seconds (read once per trained network)


def _measured_seconds(name: str) -> float | None:
    if name not in _MEASURED:
        card = zoo.card(name)
        seconds = None if card is None else card.get("train_seconds")
        if card is None:
            return None  # not trained yet: asked again later
        _MEASURED[name] = float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else None
    return _MEASURED[name]


def measured_epoch_seconds(dataset: str, trained: Collection[str] | None = None) -> tuple[float, int] | None:
    """Seconds per LeNet-epoch of ``dataset`` measured **on this machine**: the median, over the networks of that
    dataset trained here whose card records their training time, of ``train_seconds`` / :func:`_cost_factor` — with
    how many trainings it comes from; None when none was trained here (then the estimate is the rough
    :data:`EPOCH_SECONDS`). ``trained``: the networks to count as trained (default :func:`trained_names`; the
    sidebar passes the set read at its run's start, so a label does not change within a run)."""
    import statistics

    rates = []
    known = trained_names() if trained is None else trained
    for name in zoo.model_names(dataset):
        if name in known:
            seconds = _measured_seconds(name)
            if seconds is not None:
                rates.append(seconds / _cost_factor(name))
    return (statistics.median(rates), len(rates)) if rates else None


def estimated_train_seconds(name: str, trained: Collection[str] | None = None) -> float | None:
    """An estimate of the seconds training the zoo network ``name`` takes here (None for an upload): its cost in
    LeNet-epochs (:func:`_cost_factor`) × the seconds per LeNet-epoch **measured on this machine** for its dataset
    (:func:`measured_epoch_seconds`, from the model cards of the networks trained here) or, when none was trained
    here, the rough :data:`EPOCH_SECONDS` (measured once on a shared, loaded machine: a quiet one is several times
    faster); plus its base network's estimate when it fine-tunes one that is not trained yet.
    :func:`estimate_basis` says which; ``trained`` as in :func:`measured_epoch_seconds`."""
    entry = zoo.ZOO.get(name)
    if entry is None:
        return None
    measured = measured_epoch_seconds(entry.dataset, trained)
    per_epoch = measured[0] if measured else EPOCH_SECONDS.get(entry.dataset, EPOCH_SECONDS["cifar10"])
    seconds = _cost_factor(name) * per_epoch
    if entry.init_from and not zoo.is_cached(entry.init_from):
        seconds += estimated_train_seconds(entry.init_from, trained) or 0.0
    return seconds


def estimate_basis(name: str) -> str:
    """How :func:`estimated_train_seconds` of ``name`` was made, in words for the page: scaled from the trainings
    measured on this machine (how many), or a rough estimate (none measured here yet)."""
    entry = zoo.ZOO.get(name)
    measured = None if entry is None else measured_epoch_seconds(entry.dataset)
    if measured is None:
        return "a rough estimate: no network of this dataset was trained on this machine yet to time"
    n = measured[1]
    return (
        f"scaled from {n} training{'s' if n != 1 else ''} of {entry.dataset} networks timed on this machine "
        "(their epochs, architecture and training regime)"
    )


def _expected(name: str) -> float | None:
    return estimated_train_seconds(name)


def cost_label(name: str, trained: bool, among: Collection[str] | None = None) -> str:
    """How a network is marked in pickers: "trained", or what choosing it costs ("trains ≈ 8 min": an estimate,
    :func:`estimated_train_seconds`, scaled from trainings timed on this machine; "trains ≈ 8 min, rough" when none
    of its dataset was timed here yet; the pickers' help says so — the label is kept short for the sidebar).
    ``among``: the networks trained here as the picker read them (:func:`measured_epoch_seconds`' ``trained``)."""
    if trained:
        return "trained"
    seconds = estimated_train_seconds(name, among)
    if seconds is None:
        return "not trained"
    rough = measured_epoch_seconds(zoo.ZOO[name].dataset, among) is None  # nothing of its dataset timed here yet
    return f"trains ≈ {_duration(seconds)}{', rough' if rough else ''}"


# ------------------------------------------------------------------ first start (issue 13, item 4)
_DEFAULT: jobs.PreferredDefault | None = None
_DEFAULT_LOCK = threading.Lock()


def mnist_available() -> bool:
    """True if MNIST is on this machine: ``$BOUNDARY_ATLAS_DATA`` / ``../shared/data`` or the download cache.

    Nothing is downloaded for the first-start training (README: nothing is downloaded at run time); a
    user who picks MNIST in the sidebar gets torchvision's download as before, and the next start trains.
    """
    for root in (shared_data_root(), cache_dir("datasets")):
        if root is None:
            continue
        try:
            load_dataset("mnist", root=root, split="test", limit=4)
            return True
        except (AtlasError, OSError):
            continue
    return False


def first_start() -> jobs.PreferredDefault:
    """Once per server process: start training ``mnist-lenet`` in the background if it is not trained
    and MNIST is available (unless ``$ATLAS_BACKGROUND_TRAINING=0``). Returns the default's holder."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            enabled = jobs.background_training_allowed()
            cached = enabled and zoo.is_cached(PREFERRED_MODEL)
            job = jobs.start_background_training(
                jobs.registry(),
                PREFERRED_MODEL,
                lambda progress: _train(PREFERRED_MODEL, progress=progress),
                cached=lambda: cached,
                data_available=mnist_available,
                expected_seconds=_expected(PREFERRED_MODEL),
            )
            ready = cached and mnist_available()
            if enabled:
                _queue_after_default()
            _DEFAULT = jobs.PreferredDefault(PREFERRED_MODEL, FALLBACK_MODEL, ready=ready, job=job, enabled=enabled)
        return _DEFAULT


#: After the default network, the MNIST networks the other pages open with, in the order a visitor meets them
#: (issue 20): Compare's B (NiN), Robust training's PGD-AT and CURE, Certified vs empirical's LMT.
PREPARE_AFTER_DEFAULT = ("mnist-nin", "mnist-lenet-pgd", "mnist-lenet-cure", "mnist-lenet-lmt")


def _queue_after_default() -> list[jobs.Job]:
    """Queue the training of :data:`PREPARE_AFTER_DEFAULT` in the background lane (one at a time, after the
    default network's job), skipping the trained ones; nothing when MNIST is not here."""
    available: list[bool] = []

    def data_available() -> bool:  # read MNIST's presence once, not per network
        if not available:
            available.append(mnist_available())
        return available[0]

    queued = []
    for name in PREPARE_AFTER_DEFAULT:
        job = jobs.start_background_training(
            jobs.registry(),
            name,
            lambda progress, name=name: _train(name, progress=progress),
            cached=lambda name=name: zoo.is_cached(name),
            data_available=data_available,
            expected_seconds=estimated_train_seconds(name),
        )
        if job is not None:
            queued.append(job)
    return queued


def default_model() -> str:
    """The default network of a new session: ``mnist-lenet`` once trained here, else ``digits-lenet``."""
    return first_start().current()


# ------------------------------------------------------------------ background work: sidebar and Home
def _active_background() -> list[jobs.Job]:
    return [j for j in jobs.registry().jobs() if j.lane == "background" and not j.finished]


def sidebar_status() -> None:
    """In the sidebar, while background jobs run: each one's progress (refreshed every few seconds)."""
    default = first_start()
    if not _active_background() and not (default.job is not None and default.job.state == "failed"):
        return
    with st.sidebar:
        _sidebar_panel()


@st.fragment(run_every=PANEL_SECONDS)
def _sidebar_panel() -> None:
    default = first_start()
    active = _active_background()
    for job in active[:3]:
        s = job.status()
        st.progress(s.fraction, text=f"Background: {s.label} — {status_line(job)}")
    if len(active) > 3:
        st.caption(f"… and {len(active) - 3} more (Home → Prepare networks)")
    job = default.job
    if job is not None and job in active:
        st.caption(
            f"{PREFERRED_MODEL} becomes the default network for new sessions when ready; "
            f"{FALLBACK_MODEL} is used until then (the effect shows on MNIST: docs/teaching.md)."
        )
    elif job is not None and job.state == "failed":
        st.caption(
            f"Training {PREFERRED_MODEL} in the background failed: {job.error}. The default stays {FALLBACK_MODEL}."
        )
    elif job is not None and job.state == "done":
        st.caption(f"{PREFERRED_MODEL} is trained: the default network of new sessions.")


def _default_curvature_settings():
    """The Curvature vs m page's settings with every control at its default (pages/_state.CurvatureView)."""
    from geometry.study import CurvatureSettings, HScale, PointSplit

    return CurvatureSettings(
        points=PointSplit(100, 50, 0, 0),
        m_max=20,
        method="finite_difference",
        scale=HScale("xi"),
        point="boundary",
        n_directions=10,
    )


def _prepare_curvature(name: str, *, progress) -> str:
    """Queue the Curvature vs m study of ``name`` at the page's default settings in the background lane,
    under the same key the page uses (so the page finds it); returns that key."""
    from geometry import study

    progress(0.0, f"loading {name} and its points")
    clf = zoo.load_model(name)  # trained by the job queued before this one (or waits for it: file lock)
    settings = _default_curvature_settings()
    dataset = zoo.ZOO[name].dataset
    points = study.split_points(
        load_dataset(dataset, split="test"), load_dataset(dataset, split="train"), settings.points
    )
    key = study_key("curvature", clf, points, settings)
    jobs.registry().submit(
        key,
        study.curvature_study,
        clf,
        points,
        settings,
        label=f"S_c, S_f and curvature vs m of {name}",
        lane="background",
        expected_seconds=EXPECTED_CURVATURE_SECONDS.get(dataset),
    )
    return key


def prepare_networks_panel() -> None:
    """Home: choose zoo networks (and the S_c / curvature study at default settings) to prepare in the
    background — e.g. before a lecture — and follow their progress."""
    with st.expander("Prepare networks in the background (e.g. before a lecture)", expanded=bool(_active_background())):
        st.caption(
            "Training and S_c run in the background of this server: leave this page, keep working, or close the "
            "tab; the results are cached on disk for every later session. Jobs run one at a time."
        )
        trained = trained_names()
        names = list(zoo.ZOO)
        st.caption(
            f"**Ready here** ({len(trained)} of {len(names)}): "
            + (", ".join(n for n in names if n in trained) or "none yet")
            + ". The others train on first use; the list below gives each one's estimated time."
        )
        chosen = st.multiselect(
            "Networks",
            names,
            default=[],
            key="prep_nets",
            format_func=lambda n: f"{n} ({cost_label(n, n in trained, set(trained))})",
            help="Zoo networks not yet trained are trained with their recipe; the time is the network's epochs, "
            "architecture and training regime times the seconds per epoch timed on this machine's earlier trainings "
            "of that dataset ('rough': none yet, a figure from a busy 2-core CPU). Trained ones are only loaded.",
        )
        with_curvature = st.checkbox(
            "also compute S_c, S_f and curvature vs m at the default settings",
            value=False,
            key="prep_curvature",
            help="The Curvature vs m page's default view (n = 100, m ≤ 20, h = ξ): the page then opens at once. "
            "Cross-sections and Universal perturbations reuse the same S_c from the disk cache.",
        )
        if st.button("Prepare in the background", disabled=not chosen, key="prep_go"):
            for name in chosen:
                registry = jobs.registry()
                if name not in trained:
                    registry.submit(
                        f"train:{name}",
                        _train,
                        name,
                        label=f"training {name}",
                        lane="background",
                        owner=session_owner(),
                        expected_seconds=_expected(name),
                    )
                if with_curvature:
                    registry.forget(f"prepare-curvature:{name}")  # its study job is keyed by the study itself
                    registry.submit(
                        f"prepare-curvature:{name}",
                        _prepare_curvature,
                        name,
                        label=f"queue S_c / curvature of {name}",
                        lane="background",
                        owner=session_owner(),
                        expected_seconds=2.0,
                    )
            st.rerun()  # the sidebar (drawn before this button) shows the new background work at once
        _jobs_table()


@st.fragment(run_every=PANEL_SECONDS)
def _jobs_table() -> None:
    registry = jobs.registry()
    listed = [j for j in registry.jobs(owner=session_owner()) if j.lane == "background" or not j.finished]
    # in the order they run: running, then queued (by place in the queue), then finished (newest first)
    listed.sort(key=lambda j: (j.finished, j.state != "running", len(registry.ahead(j)) if j.state == "queued" else 0))
    if not listed:
        st.caption("No background work yet.")
        return
    for job in listed[:12]:
        s = job.status()
        c1, c2 = st.columns([3, 1])
        c1.progress(s.fraction, text=f"{s.label} — {status_line(job)}")
        others = job.owners - {session_owner()}
        if s.active and not others and c2.button("Cancel", key=f"cancel-{job.id}"):
            jobs.registry().cancel(job.key, owner=session_owner())
            st.rerun(scope="fragment")


def trained_names() -> set[str]:
    """Zoo networks trained here (each verified once per session; a trained network stays trained)."""
    known = st.session_state.setdefault("_prep_trained", set())
    for name in zoo.ZOO:
        if name not in known and zoo.is_cached(name):
            known.add(name)
    return known


def _switch_to_preferred() -> None:
    """Button callback (runs before the script, so the sidebar's widgets may still be set)."""
    st.session_state["dataset"] = zoo.ZOO[PREFERRED_MODEL].dataset
    st.session_state["model"] = PREFERRED_MODEL


def first_start_notice() -> None:
    """Home: while the first-start training of ``mnist-lenet`` runs (or failed), say so."""
    default = first_start()
    job = default.job
    if job is None:
        return
    if job.state == "done":
        if st.session_state.get("model") == FALLBACK_MODEL and zoo.is_cached(PREFERRED_MODEL):
            st.success(
                f"**{PREFERRED_MODEL} is trained** (in the background, {_duration(job.elapsed())}): new sessions start "
                "on it, where the paper's effect shows. This session keeps the network it has.",
                icon=":material/check_circle:",
            )
            st.button(f"Switch this session to {PREFERRED_MODEL}", on_click=_switch_to_preferred, key="_switch_default")
        return
    if job.state == "failed":
        st.warning(
            f"Training {PREFERRED_MODEL} in the background failed: {job.error} The default stays {FALLBACK_MODEL}."
        )
        return
    st.info(
        f"**{PREFERRED_MODEL} is being trained in the background** (first start of this server; progress in the "
        f"sidebar). On the 8×8 digits network ({FALLBACK_MODEL}, the default until then) random S_c vectors do not "
        "fool more than S_f vectors at any h we tried; on the MNIST LeNet they do at h ≈ ξ (docs/teaching.md). New "
        "sessions start on the MNIST network once it is ready; pick it in the sidebar then to switch this one.",
        icon=":material/hourglass_top:",
    )


# ------------------------------------------------------------------ a network not ready yet (issue 20, item 3)
def nearest_ready(name: str, *, exclude: tuple[str, ...] = (), same_dataset: bool = False) -> str | None:
    """The trained zoo network a page shows while ``name`` trains: one of the same dataset (same regime, then same
    architecture first), else (unless ``same_dataset``) a digits network (likewise), else None. ``exclude``: networks
    not to offer (e.g. Compare's A when B is missing)."""
    entry = zoo.ZOO.get(name)
    if entry is None:
        return None
    trained = trained_names() - {name, *exclude}
    order = list(zoo.ZOO)

    def closeness(n: str) -> tuple:
        e = zoo.ZOO[n]
        return (e.regime != entry.regime, e.architecture != entry.architecture, order.index(n))

    for dataset in dict.fromkeys((entry.dataset,) if same_dataset else (entry.dataset, "digits")):
        ready = [n for n in zoo.model_names(dataset) if n in trained]
        if ready:
            return min(ready, key=closeness)
    return None


def train_in_background(name: str) -> jobs.Job:
    """The training job of ``name`` (key ``train:<name>``, the one "Prepare networks" and the first start use),
    submitted to the front of the background lane or found; never waited for here. A failed job is returned as it
    is (no retry loop: :func:`training_box` offers a retry).

    The background lane, not the page lane: the page shows a stand-in meanwhile, so nobody waits on this job, and a
    long training (mnist-nin ≈ 28 min, mnist-lenet-pgd ≈ 46 min, estimated) in the page lane held one of its two
    workers — two such trainings (Compare's B, then Robust's PGD-AT on a fresh start, measured by
    benchmarks/fresh_start.py) held both, and every other page's study waited behind them ("waiting for 2 jobs
    ahead" on Certified vs empirical for the whole training)."""
    registry = jobs.registry()
    key = f"train:{name}"
    job = registry.get(key)
    if job is not None and job.state == "failed":
        return job
    if job is not None and job.finished and not zoo.is_cached(name):
        registry.forget(key)  # done but its file is gone, or cancelled: train again
    return registry.submit(
        key,
        _train,
        name,
        label=f"training {name}",
        lane="background",
        front=True,
        owner=session_owner(),
        expected_seconds=estimated_train_seconds(name),
    )


def _retry(key: str) -> None:
    jobs.registry().forget(key)


#: A network whose estimated training is shorter than this trains in the page, with its progress bar, as before (the
#: digits networks: ≤ 82 s estimated); a longer one trains as a job while a trained network stands in.
STAND_IN_AFTER_SECONDS = 120.0


def is_ready(name: str) -> bool:
    """True for a trained zoo network or an upload."""
    return name not in zoo.ZOO or name in trained_names()


def needs_stand_in(name: str) -> bool:
    """True for a zoo network not trained yet whose estimated training (:func:`estimated_train_seconds`) is at least
    :data:`STAND_IN_AFTER_SECONDS`: the page shows a trained one meanwhile instead of waiting."""
    if is_ready(name):
        return False
    seconds = estimated_train_seconds(name)
    return seconds is not None and seconds >= STAND_IN_AFTER_SECONDS


def ready_or_stand_in(name: str, *, exclude: tuple[str, ...] = ()) -> str | None:
    """``name`` unless it :func:`needs_stand_in`; else its training starts as a job, the training box is drawn and the
    nearest trained network of the same dataset (not in ``exclude``) is returned — None when there is none."""
    if not needs_stand_in(name):
        return name  # trained, or quick to train: the page trains it with its progress bar
    stand_in = nearest_ready(name, exclude=exclude, same_dataset=True)
    train_in_background(name)
    training_box(name, stand_in)
    return stand_in


def _switch_to_fallback() -> None:
    """Button callback (runs before the script, so the sidebar's widgets may still be set)."""
    st.session_state["dataset"] = zoo.ZOO[FALLBACK_MODEL].dataset
    st.session_state["model"] = FALLBACK_MODEL


def fallback_meanwhile(name: str) -> bool:
    """Under a training box that has no stand-in (no other trained network of ``name``'s dataset, e.g. Compare's B =
    mnist-nin on a fresh start, where mnist-lenet is A): a button that moves this session to :data:`FALLBACK_MODEL`'s
    dataset, whose networks are ready in seconds, while ``name`` goes on training. Nothing (False) for a network of
    that dataset already."""
    entry = zoo.ZOO.get(name)
    fallback = zoo.ZOO[FALLBACK_MODEL]
    if entry is None or entry.dataset == fallback.dataset:
        return False
    st.button(
        f"Meanwhile, look at the {fallback.dataset} networks ({FALLBACK_MODEL} and its twins: ready in seconds)",
        key=f"_meanwhile_{name}",
        on_click=_switch_to_fallback,
        icon=":material/fast_forward:",
        help=f"Switches the sidebar to {fallback.dataset} / {FALLBACK_MODEL}; {name} keeps training in the background "
        f"(its progress is in the sidebar). Choose {entry.dataset} in the sidebar again when it is ready.",
    )
    return True


@st.fragment(run_every=PANEL_SECONDS)
def training_box(name: str, fallback: str | None, meanwhile: str | None = None) -> None:
    """While ``name`` trains: its progress, and that the page shows ``fallback`` meanwhile (None: nothing, the page
    waits for it; ``meanwhile`` replaces that sentence); polls the job registry and reruns the page once the job
    ends, so the page switches to ``name`` by itself."""
    job = jobs.registry().get(f"train:{name}")
    if job is None or job.state in ("done", "cancelled"):
        st.rerun()  # the whole page again: it now finds the trained network (or submits the job again)
        return
    if job.state == "failed":
        st.error(f"Training {name} failed: {job.error} This page shows {fallback} instead.")
        st.button("Try training it again", key=f"_retry_{name}", on_click=_retry, args=(f"train:{name}",))
        return
    s = job.status()
    estimate = estimated_train_seconds(name)
    meanwhile = meanwhile or (
        f"Meanwhile this page shows **{fallback}** in its place, the nearest network that is ready: every number below "
        f"that would be {name}'s is {fallback}'s."
        if fallback is not None
        else "No trained network can stand in for it here."
    )
    st.info(
        f"**{name} is being trained** ({'first use; ' if estimate is None else f'≈ {_duration(estimate)}, {estimate_basis(name)}; '}"
        f"cached on disk afterwards). {meanwhile} The page switches to {name} by itself when the training ends; you "
        "can also leave and come back.",
        icon=":material/hourglass_top:",
    )
    st.progress(s.fraction, text=f"training {name} — {s.message + ' · ' if s.message else ''}{status_line(job)}")


# ------------------------------------------------------------------ a study not ready yet (issue 20, item 3)
#: How long a page waits in its script for its study before it shows the last finished result of that study in
#: its place (seconds; None: never, the page waits with its progress bar as before). ``$ATLAS_STUDY_MEANWHILE``
#: sets it ("0" / "off": never — the test suite's setting, tests/conftest.py, where every run expects its own
#: result). Short enough that the page's first paint (≤ 2 s, issue 20) never waits on a long study.
MEANWHILE_AFTER_SECONDS: float | None = 1.5
#: Finished results kept per study kind as stand-ins (each holds its network and points, already in memory).
READY_KEPT = 4


def _meanwhile_from_env() -> float | None:
    import os

    raw = os.environ.get("ATLAS_STUDY_MEANWHILE", "").strip().lower()
    if raw in ("0", "off", "no", "false", "none"):
        return None
    try:
        return float(raw) if raw else MEANWHILE_AFTER_SECONDS
    except ValueError:
        return MEANWHILE_AFTER_SECONDS


MEANWHILE_AFTER_SECONDS = _meanwhile_from_env()


@dataclasses.dataclass(frozen=True)
class Shown:
    """What a study page draws: its own study's result (``own``), or the last finished result of the same kind of
    study standing in while its own job runs. ``inputs`` are the arguments that result was computed from (network,
    points, settings…, as the page passed them), ``name`` / ``dataset`` the network and dataset it belongs to, ``key``
    its job key."""

    result: Any
    own: bool
    inputs: tuple
    name: str
    dataset: str
    key: str


_READY: dict[str, list[Shown]] = {}  # study kind → its last finished results shown by a page, newest first
_READY_LOCK = threading.Lock()


def _remember(kind: str, shown: Shown) -> None:
    """Keep ``shown`` (a page's own finished result) as the newest stand-in of ``kind``; never one of an upload (it
    belongs to one browser session), nor of a pair of networks with an upload in it."""
    from .state import USER_PREFIX

    if USER_PREFIX in shown.name or shown.dataset.startswith(USER_PREFIX):  # "A and upload:…" on Compare
        return
    with _READY_LOCK:
        kept = [s for s in _READY.get(kind, []) if s.key != shown.key]
        _READY[kind] = [shown, *kept][:READY_KEPT]


def last_ready(kind: str, name: str, dataset: str, *, exclude: str = "") -> Shown | None:
    """The stand-in for a study of ``kind`` on network ``name`` (dataset ``dataset``) that is not ready: the newest
    finished result of that kind on the same network (other settings), else on the same dataset, else any; never
    the result keyed ``exclude`` (the one being computed)."""
    with _READY_LOCK:
        kept = [s for s in _READY.get(kind, []) if s.key != exclude]
    for fits in (lambda s: s.name == name, lambda s: s.dataset == dataset, lambda s: True):
        found = next((s for s in kept if fits(s)), None)
        if found is not None:
            return found
    return None


def settings_difference(shown: Any, wanted: Any) -> list[str]:
    """The settings (``describe()`` leaves) where ``shown`` differs from ``wanted``, as "name value (chosen: value)"
    — e.g. ``["estimation points 20 (chosen: 100)"]`` (names from :data:`SETTING_LABELS`); [] when equal or not
    comparable."""

    def leaves(d: Any, out: dict, prefix: str = "") -> dict:
        for k, v in d.items():
            if k in ("settings", "protocol"):
                continue
            if isinstance(v, dict):
                leaves(v, out, prefix)
            else:
                out[f"{prefix}{k}"] = v
        return out

    if not (hasattr(shown, "describe") and hasattr(wanted, "describe")):
        return []
    a, b = leaves(shown.describe(), {}), leaves(wanted.describe(), {})
    return [f"{SETTING_LABELS.get(k, k)} {a.get(k)} (chosen: {b.get(k)})" for k in b if a.get(k) != b.get(k)]


#: the words a visitor reads for a study setting (the pages' control labels); others keep their field name
SETTING_LABELS = {
    "n_estimate": "estimation points",
    "n_heldout": "held-out points",
    "n_uap": "UAP training points",
    "m_max": "largest m",
    "preset": "h preset",
    "value": "h",
    "noise_share": "noise share",
    "xi_factor": "ξ factor",
    "xi_ratio": "ξ / ‖x‖",
    "n_samples": "random samples",
    "rx": "r(x) protocol",
    "n_points": "test points",
    "n_eps": "ε grid points",
    "fmn_max_stepsize": "FMN step",
    "n_power": "power iterations",
    "crown_norm": "CROWN norm",
    "crown_points": "CROWN points",
    "crown_tol": "CROWN tolerance",
}


def result_or_ready(
    kind: str,
    key: str,
    title: str,
    fn,
    *args: Any,
    name: str,
    dataset: str,
    settings: Any = None,
    notice: Any = None,
    **kwargs: Any,
) -> Shown:
    """The study ``fn(*args)`` run as the job ``key`` (as :func:`result_of`), or — when it is not done within
    :data:`MEANWHILE_AFTER_SECONDS` and a finished result of the same ``kind`` is kept (:func:`last_ready`) — that
    result in its place: a box (:func:`study_box`) says whose result is shown and with which settings, shows the
    job's progress, and reruns the page when the job ends, so the page's own result replaces the stand-in by itself.
    Without a stand-in the page waits with its progress bar as before (and, for a network of another dataset than
    the digits, offers :func:`fallback_meanwhile`). ``settings``: the page's settings (compared with the stand-in's,
    the last of its ``inputs``); ``notice``: the container the box goes in (e.g. one made above the page's controls,
    so it is on the first screen; default: here). Raises :class:`JobFailedError` as :func:`result_of` does."""
    registry = jobs.registry()
    job = registry.submit(key, fn, *args, label=title, lane="page", front=True, owner=session_owner(), **kwargs)
    wait = MEANWHILE_AFTER_SECONDS
    stand_in = None
    with waiting_on(job):
        quick = wait is None or job.wait(min(QUICK_SECONDS, wait))
    if not quick:
        stand_in = last_ready(kind, name, dataset, exclude=key)
        with waiting_on(job):
            finished = stand_in is None or job.wait(max((wait or 0.0) - QUICK_SECONDS, 0.0))
        if not finished:
            with notice if notice is not None else st.container():
                study_box(key, title, name, stand_in.name, settings_difference(stand_in.inputs[-1], settings))
            return dataclasses.replace(stand_in, own=False)  # kept as some page's own result: not this page's
    if wait is not None and stand_in is None and not job.finished:
        fallback_meanwhile(name)  # nothing stands in: offer the digits networks (ready in seconds)
    shown = Shown(result_of(key, title, fn, *args, **kwargs), True, args, name, dataset, key)
    _remember(kind, shown)
    return shown


@st.fragment(run_every=PANEL_SECONDS)
def study_box(key: str, title: str, name: str, stand_in: str, differences: list[str]) -> None:
    """While the study ``key`` of network ``name`` runs: that the page shows ``stand_in``'s last finished result of
    the same study meanwhile (with the settings that differ), and the job's progress; reruns the page once the job
    ends, so its own result replaces the stand-in."""
    job = jobs.registry().get(key)
    if job is None or job.state == "done":
        st.rerun()  # the whole page again: it now finds its result
        return
    if job.finished:  # failed or cancelled: said here, not retried by a rerun of its own (a failing job would loop)
        st.error(
            f"{title} of {name} stopped: {job.error or job.state}. The page still shows {stand_in}'s result below; any "
            "change on the page tries again."
        )
        return
    differ = f", with {'; '.join(differences)}" if differences else ""
    st.info(
        f"**This study of {name} is being computed** (progress below). Meanwhile this page shows the last finished "
        f"result of the same study on **{stand_in}**{differ}: every number and chart below is that result's, not the "
        f"one you chose. {name}'s own result replaces it by itself when the job ends; you can also leave and come "
        "back.",
        icon=":material/hourglass_top:",
    )
    st.progress(job.status().fraction, text=bar_text(title, job))
    st.caption(f"This runs in the background ({job.id}): you can leave the page and come back.")
