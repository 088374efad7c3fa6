"""Background jobs: long computations (training, S_c, studies, the UAP) that survive a page's navigation.

Issue 14, item 2 (DESIGN §2, "The study layer"; issue 13, item 4). A job is keyed by what defines its
work — the zoo entry's name for training, the network fingerprint, the points' fingerprints and the
settings' ``.key()`` for a study — so submitting a key that is queued or running returns the *same*
:class:`Job` and never starts the work twice. A page that is left while its job runs, and opened
again, finds the job and shows its progress; the finished result goes to the disk cache through the
study layer (:func:`geometry.study.cached_result`, :func:`geometry.study.cached_subspace`) or the zoo
(:func:`geometry.zoo.load_model`), so a new process finds it too.

One process-wide :class:`JobRegistry` (:func:`registry`) holds the jobs in *lanes*, each with a fixed
number of worker threads; the rest wait in order (:data:`LANES`):

* ``"page"`` (2 workers) — work a page is waiting for (a user looks at its progress bar). Two, so
  that a page whose result is already on disk waits behind at most one other user's long job;
* ``"background"`` (1 worker) — work nobody is waiting for yet ("Prepare networks", the first-start
  training), one job at a time.

A page that asks for a job queued in the background lane moves it to the front of the page lane.

Threads and PyTorch: jobs run in plain threads of the server process and share PyTorch's intra-op
thread pool with the pages (``torch.set_num_threads`` is process-wide and is left as it is; the
zoo's trainer sets one thread for tiny inputs itself). At most three jobs run at once.

Clean stop (issue 22, item 5): a process that ends while jobs run — the server stopped, a script or
a test run ending — must not leave a worker thread inside PyTorch while the interpreter finalises
(that aborted with ``terminate called without an active exception``, exit status 134). Every
registry that started a worker is shut down by an :mod:`atexit` hook (:meth:`JobRegistry.shutdown`):
queued jobs are cancelled, running ones are asked to stop (they raise :class:`JobCancelledError` at
their next progress report) and the workers are joined. Cache files are written atomically
(:func:`geometry.cache.atomic_write`), so a stopped job leaves a whole entry or none.
:func:`stop_cleanly_on_sigterm` makes SIGTERM end a plain process the same way (exit status 0);
Streamlit handles SIGTERM itself (it stops the server, the process then exits normally).

This module imports no Streamlit: the app's display lives in ``pages/ui/jobs.py``.
"""

from __future__ import annotations

import atexit
import collections
import functools
import itertools
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import AtlasError, InvalidInputError
from .uploads import in_worker, involves_upload

__all__ = [
    "BACKGROUND_ENV",
    "LANES",
    "Job",
    "JobCancelledError",
    "JobRegistry",
    "JobStatus",
    "PreferredDefault",
    "background_training_allowed",
    "registry",
    "start_background_training",
    "stop_cleanly_on_sigterm",
]

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
#: Lanes in order of priority, with their number of worker threads. Jobs on uploaded models go to the
#: ``upload`` lane whatever lane they ask for (issue 22, item 2): its threads only wait on the sessions'
#: worker processes (one per session, so one session's uploads use at most one CPU), and a slow or hostile
#: upload never holds a ``page`` thread that other sessions' studies need.
LANES = {"page": 2, "background": 1, "upload": 8}
UPLOAD_LANE = "upload"
#: Environment variable: ``0`` / ``false`` / ``no`` / ``off`` turns the first-start background training
#: off and keeps the fallback network the default (tests set it; see ``tests/conftest.py``).
BACKGROUND_ENV = "ATLAS_BACKGROUND_TRAINING"
#: An ETA is only estimated from progress beyond this fraction (earlier estimates are noise).
ETA_MIN_FRACTION = 0.05

_log = logging.getLogger(__name__)
_IDS = itertools.count(1)
#: Seconds :meth:`JobRegistry.shutdown` waits at exit for running jobs to reach their next progress report.
SHUTDOWN_SECONDS = 60.0
_LIVE: weakref.WeakSet[JobRegistry] = weakref.WeakSet()  # registries whose workers were started
_ATEXIT = threading.Lock()
_atexit_registered = False


class JobCancelledError(AtlasError):
    """Raised inside a job's progress callback once the job has been cancelled (the work stops there)."""


@dataclass(frozen=True)
class JobStatus:
    """A consistent snapshot of one job (for display).

    Attributes
    ----------
    id, key, label, lane : the job's identity (``id`` is unique in the process, e.g. ``"job-7"``)
    state : "queued" | "running" | "done" | "failed" | "cancelled"
    fraction : progress in [0, 1], never decreasing
    message : the work's last progress message
    elapsed : seconds since the job started (None while queued)
    eta : estimated seconds left (None when unknown): while running, elapsed·(1 − f)/f from the
        progress f (f ≥ :data:`ETA_MIN_FRACTION`), else the expected duration given at submission
    error : the failure's message (an :class:`AtlasError`'s text, or "TypeName: text"), else None
    """

    id: str
    key: str
    label: str
    lane: str
    state: JobState
    fraction: float
    message: str
    elapsed: float | None
    eta: float | None
    error: str | None

    @property
    def active(self) -> bool:
        """True while queued or running."""
        return self.state in ("queued", "running")


class Job:
    """One unit of background work: ``fn(*args, progress=callback, **kwargs)`` run in a worker thread.

    Obtain jobs from :meth:`JobRegistry.submit`; read them with :meth:`status`, :meth:`wait` and
    :attr:`result`. Thread-safe.
    """

    def __init__(
        self,
        key: str,
        fn: Callable[..., Any],
        args: tuple,
        kwargs: dict,
        *,
        label: str,
        lane: str,
        expected_seconds: float | None,
        clock: Callable[[], float],
    ) -> None:
        self.id = f"job-{next(_IDS)}"
        self.key = key
        self.label = label
        self.lane = lane
        self.expected_seconds = None if expected_seconds is None else max(float(expected_seconds), 0.0)
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._clock = clock
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._cancel = threading.Event()
        self._owners: set[str] = set()  # the sessions waiting on this job (guarded by the registry's lock)
        self._state: JobState = "queued"
        self._fraction = 0.0
        self._message = "waiting for a worker"
        self._submitted = clock()
        self._started: float | None = None
        self._ended: float | None = None
        self._result: Any = None
        self._error: str | None = None
        self._exception: Exception | None = None

    # -------------------------------------------------------------- reading
    @property
    def state(self) -> JobState:
        return self._state

    @property
    def finished(self) -> bool:
        """True once done, failed or cancelled."""
        return self._finished.is_set()

    @property
    def result(self) -> Any:
        """The work's return value.

        Raises
        ------
        InvalidInputError
            the job is not done (still queued or running, failed, or cancelled).
        """
        if self._state != "done":
            raise InvalidInputError(f"{self.label}: no result, the job is {self._state}")
        return self._result

    @property
    def error(self) -> str | None:
        """The failure's message (an :class:`AtlasError`'s text, else "TypeName: text"), or None."""
        return self._error

    @property
    def exception(self) -> Exception | None:
        """The exception a failed job raised (for callers that re-raise unexpected ones), or None."""
        return self._exception

    def elapsed(self) -> float | None:
        """Seconds since the job started (up to its end); None while queued."""
        with self._lock:
            return self._elapsed()

    def _elapsed(self) -> float | None:
        if self._started is None:
            return None
        return max((self._ended if self._ended is not None else self._clock()) - self._started, 0.0)

    def eta(self) -> float | None:
        """Estimated seconds until done (None when unknown; 0 once finished). See :class:`JobStatus`."""
        with self._lock:
            return self._eta()

    def _eta(self) -> float | None:
        if self._finished.is_set():
            return 0.0
        elapsed = self._elapsed()
        if elapsed is not None and self._fraction >= ETA_MIN_FRACTION:
            return elapsed * (1.0 - self._fraction) / self._fraction
        if self.expected_seconds is not None:
            return max(self.expected_seconds - (elapsed or 0.0), 0.0)
        return None

    def status(self) -> JobStatus:
        """A consistent snapshot (state, progress, elapsed time, ETA, error)."""
        with self._lock:
            return JobStatus(
                id=self.id,
                key=self.key,
                label=self.label,
                lane=self.lane,
                state=self._state,
                fraction=self._fraction,
                message=self._message,
                elapsed=self._elapsed(),
                eta=self._eta(),
                error=self._error,
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (or ``timeout`` seconds passed); True if finished."""
        return self._finished.wait(timeout)

    @property
    def owners(self) -> frozenset[str]:
        """The sessions (browser session ids) that submitted this job and still wait on it; empty for
        shared work nobody waits on (e.g. the first-start training)."""
        return frozenset(self._owners)

    # -------------------------------------------------------------- control
    def cancel(self) -> None:
        """Ask the job to stop: a queued job is cancelled at once, a running one at its next progress report."""
        self._cancel.set()

    def _progress(self, fraction: float, message: str) -> None:
        if self._cancel.is_set():
            raise JobCancelledError(f"{self.label}: cancelled")
        try:
            f = min(max(float(fraction), 0.0), 1.0)
        except (TypeError, ValueError):
            f = self._fraction
        with self._lock:
            self._fraction = max(self._fraction, f)  # never backwards: a sub-step restarting at 0 keeps the bar
            self._message = str(message)

    def _run(self) -> None:
        with self._lock:
            if self._cancel.is_set():
                self._finish("cancelled", error="cancelled before it started")
                return
            self._state = "running"
            self._started = self._clock()
            self._message = "started"
        try:
            result = self._fn(*self._args, progress=self._progress, **self._kwargs)
        except JobCancelledError as exc:
            with self._lock:
                self._finish("cancelled", error=str(exc))
        except AtlasError as exc:
            with self._lock:
                self._exception = exc
                self._finish("failed", error=str(exc))
        except Exception as exc:  # an unexpected bug: its message for display, the traceback for the log
            _log.exception("background job %s (%s) failed", self.id, self.label)
            with self._lock:
                self._exception = exc
                self._finish("failed", error=f"{type(exc).__name__}: {exc}")
        else:
            with self._lock:
                self._result = result
                self._fraction = 1.0
                self._finish("done", message="done")
        finally:
            self._fn, self._args, self._kwargs = _noop, (), {}  # drop the inputs (networks, points)

    def _finish(self, state: JobState, *, error: str | None = None, message: str | None = None) -> None:
        # caller holds self._lock
        self._state = state
        self._error = error
        if message is not None:
            self._message = message
        now = self._clock()
        if self._started is None:
            self._started = now
        self._ended = now
        self._finished.set()

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.label!r}, {self._state}, {self._fraction:.0%})"


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


class JobRegistry:
    """Jobs keyed by what defines their work; one worker thread per lane.

    Parameters
    ----------
    lanes : lane name → number of worker threads, in order of priority (default :data:`LANES`)
    keep_finished : finished jobs kept (oldest dropped first), so that a page can still read a
        result; a dropped job's next submission runs again (and usually finds the disk cache)
    clock : seconds, monotone (default :func:`time.monotonic`); tests pass a fake clock
    """

    def __init__(
        self,
        lanes: Mapping[str, int] = LANES,
        *,
        keep_finished: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not lanes or any(int(n) < 1 for n in lanes.values()):
            raise InvalidInputError(f"a job registry needs at least one lane of at least one worker, got {dict(lanes)}")
        self.lanes = tuple(lanes)
        self._sizes = {lane: int(n) for lane, n in lanes.items()}
        self._keep = max(int(keep_finished), 0)
        self._clock = clock
        self._lock = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, collections.deque[Job]] = {lane: collections.deque() for lane in self.lanes}
        self._running: dict[str, list[Job]] = {lane: [] for lane in self.lanes}
        self._workers: dict[str, list[threading.Thread]] = {lane: [] for lane in self.lanes}
        self._finished_order: collections.deque[str] = collections.deque()
        self._closed = False

    # -------------------------------------------------------------- submitting
    def submit(
        self,
        key: str,
        fn: Callable[..., Any],
        *args: Any,
        label: str | None = None,
        lane: str | None = None,
        front: bool = False,
        expected_seconds: float | None = None,
        owner: str | None = None,
        **kwargs: Any,
    ) -> Job:
        """The job for ``key``: the queued, running or kept finished one, else a new one running
        ``fn(*args, progress=callback, **kwargs)``.

        Parameters
        ----------
        key : what defines the work (e.g. ``"train:mnist-lenet"``, or a study's fingerprints and
            settings key); one job per key at a time
        fn : the work; receives ``progress(fraction in [0, 1], message)`` as the keyword ``progress``
        label : a short description for display (default: the key)
        lane : one of :attr:`lanes` (default: the first, highest priority)
        front : queue before the lane's other waiting jobs
        expected_seconds : an estimate of the duration shown before progress gives one
        owner : the submitting session's id (issue 22, item 4): added to the job's :attr:`Job.owners`,
            also when the job already exists (a second session waiting on shared work)
        args, kwargs : passed to ``fn``. When an uploaded classifier (:mod:`geometry.runtime.uploads`) is
            among them, ``fn`` runs whole in that upload's worker process (:func:`~geometry.runtime.uploads.in_worker`;
            ``fn`` must then be a module-level function; its progress is forwarded from the worker)

        Returns
        -------
        Job. A failed or cancelled job under ``key`` is replaced by a new one (a retry); a done one
        is returned as it is. A queued job asked for in a higher-priority lane moves there (front).

        Raises
        ------
        InvalidInputError
            unknown lane.
        """
        lane = self.lanes[0] if lane is None else lane
        if involves_upload(*args, **kwargs):  # an uploaded model runs only in its session's worker (issue 22)
            fn = functools.partial(in_worker, fn)
            lane = UPLOAD_LANE if UPLOAD_LANE in self._queues else lane
        if lane not in self._queues:
            raise InvalidInputError(f"unknown job lane {lane!r}; the lanes are {', '.join(self.lanes)}")
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.state in ("queued", "running", "done"):
                if owner is not None:
                    job._owners.add(owner)
                higher = self.lanes.index(lane) < self.lanes.index(job.lane)
                if job.state == "queued" and (higher or (front and job.lane == lane)):
                    self._move(job, lane, front=True)  # a page asks for it: it runs next
                return job
            job = Job(
                key,
                fn,
                args,
                kwargs,
                label=label or key,
                lane=lane,
                expected_seconds=expected_seconds,
                clock=self._clock,
            )
            if owner is not None:
                job._owners.add(owner)
            self._jobs[key] = job
            if self._closed:  # the process is stopping: nothing new starts
                job.cancel()
                with job._lock:
                    job._finish("cancelled", error="cancelled: the process is stopping")
                return job
            with_front = self._queues[lane].appendleft if front else self._queues[lane].append
            with_front(job)
            self._ensure_worker(lane)
            self._lock.notify_all()
            return job

    def _move(self, job: Job, lane: str, *, front: bool) -> None:
        # caller holds self._lock
        self._queues[job.lane].remove(job)
        job.lane = lane
        (self._queues[lane].appendleft if front else self._queues[lane].append)(job)
        self._ensure_worker(lane)
        self._lock.notify_all()

    def _ensure_worker(self, lane: str) -> None:
        # caller holds self._lock
        _shutdown_at_exit(self)
        alive = [w for w in self._workers[lane] if w.is_alive()]
        while len(alive) < self._sizes[lane]:
            worker = threading.Thread(target=self._work, args=(lane,), name=f"atlas-jobs-{lane}", daemon=True)
            alive.append(worker)
            worker.start()
        self._workers[lane] = alive

    def _work(self, lane: str) -> None:
        while True:
            with self._lock:
                while not self._queues[lane] and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                job = self._queues[lane].popleft()
                self._running[lane].append(job)
            try:
                job._run()
            finally:
                with self._lock:
                    self._running[lane].remove(job)
                    self._retire(job)
                    self._lock.notify_all()

    def _retire(self, job: Job) -> None:
        # caller holds self._lock: keep at most ``keep_finished`` finished jobs
        self._finished_order.append(job.key)
        while len(self._finished_order) > self._keep:
            old = self._finished_order.popleft()
            kept = self._jobs.get(old)
            if kept is not None and kept.finished and old not in self._finished_order:
                del self._jobs[old]

    # -------------------------------------------------------------- reading and control
    def get(self, key: str) -> Job | None:
        """The job kept under ``key`` (queued, running or finished), or None."""
        with self._lock:
            return self._jobs.get(key)

    def jobs(self, owner: str | None = None) -> list[Job]:
        """The kept jobs, most recently submitted first: all of them, or with ``owner`` those it waits
        on and the shared ones nobody waits on (a session never sees another session's own work)."""
        with self._lock:
            kept = list(reversed(self._jobs.values()))
            if owner is None:
                return kept
            return [j for j in kept if owner in j._owners or not j._owners]

    def ahead(self, job: Job) -> list[Job]:
        """The jobs that run before ``job`` in its lane (the running one first); empty once it runs."""
        with self._lock:
            queue = self._queues.get(job.lane, collections.deque())
            if job not in queue:
                return []
            before = list(itertools.takewhile(lambda j: j is not job, queue))
            return list(self._running[job.lane]) + before

    def eta_until_done(self, job: Job) -> float | None:
        """Seconds until ``job`` is done (None if unknown): its own ETA plus, while it waits, the ETAs of the
        jobs ahead of it in its lane shared among the lane's workers (a rough estimate)."""
        own = job.eta()
        ahead = [j.eta() for j in self.ahead(job)]
        if own is None or any(e is None for e in ahead):
            return None
        return own + sum(e for e in ahead if e is not None) / self._sizes[job.lane]

    def cancel(self, key: str, *, owner: str | None = None) -> bool:
        """Cancel the job under ``key`` if queued or running; True if it was cancelled.

        With ``owner`` (a session's id; issue 22, item 4) the session stops waiting on the job, and
        the job is cancelled only if no other session waits on it: a session can never cancel
        another's work (a job it does not wait on, which has owners, is left alone). Without
        ``owner`` (the process itself, tests) the job is cancelled."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.finished:
                return False
            if owner is not None:
                if job._owners and owner not in job._owners:
                    return False
                job._owners.discard(owner)
                if job._owners:
                    return False
            job.cancel()
            if job in self._queues[job.lane]:  # never started: finished at once
                self._queues[job.lane].remove(job)
                with job._lock:
                    job._finish("cancelled", error="cancelled before it started")
                self._retire(job)
            return True

    def forget(self, key: str) -> None:
        """Drop a finished job, so that the next :meth:`submit` of ``key`` runs the work again."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.finished:
                del self._jobs[key]

    def shutdown(self, timeout: float | None = SHUTDOWN_SECONDS) -> bool:
        """Stop: cancel the queued jobs, ask the running ones to stop, end the workers and wait for them.

        A running job stops at its next progress report (:class:`JobCancelledError`); one that
        reports no progress within ``timeout`` seconds is left (False is returned). Jobs submitted
        afterwards are cancelled at once. Called for every registry by an :mod:`atexit` hook.

        Returns
        -------
        bool — True when every worker thread has ended.
        """
        with self._lock:
            self._closed = True
            for lane, queue in self._queues.items():
                for job in list(queue):
                    job.cancel()
                    with job._lock:
                        job._finish("cancelled", error="cancelled: the process is stopping")
                    self._retire(job)
                queue.clear()
                for job in self._running[lane]:
                    job.cancel()
            workers = [w for ws in self._workers.values() for w in ws]
            self._lock.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in workers:
            if worker is not threading.current_thread():
                worker.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        return not any(w.is_alive() for w in workers if w is not threading.current_thread())

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running (or ``timeout`` passed); True if idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while any(self._queues.values()) or any(self._running.values()):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(left)
            return True


_REGISTRY: JobRegistry | None = None
_REGISTRY_LOCK = threading.Lock()


def registry() -> JobRegistry:
    """The process-wide registry (shared by every session and rerun of the app)."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            _REGISTRY = JobRegistry()
        return _REGISTRY


def _shutdown_at_exit(jobs: JobRegistry) -> None:
    """Remember ``jobs`` for the exit hook (registered once per process)."""
    global _atexit_registered
    with _ATEXIT:
        _LIVE.add(jobs)
        if not _atexit_registered:
            atexit.register(_shutdown_all)
            _atexit_registered = True


def _shutdown_all() -> None:
    """The :mod:`atexit` hook: shut every started registry down before the interpreter finalises."""
    for jobs in list(_LIVE):
        if not jobs.shutdown(SHUTDOWN_SECONDS):
            _log.warning("background jobs still running at exit after %.0f s: %s", SHUTDOWN_SECONDS, jobs.jobs())


def stop_cleanly_on_sigterm() -> bool:
    """Make SIGTERM end this process like a normal exit (``SystemExit(0)`` in the main thread), so that
    the exit hook cancels the jobs and the status is 0. Only from the main thread, and only where
    SIGTERM still has its default action (a server that handles it, such as Streamlit's, is left
    alone). Returns True when the handler was installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
    return True


# ------------------------------------------------------------------ first start (issue 13, item 4)
def background_training_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """False when ``$ATLAS_BACKGROUND_TRAINING`` is ``0`` / ``false`` / ``no`` / ``off`` (tests set it), else True."""
    env = os.environ if environ is None else environ
    return env.get(BACKGROUND_ENV, "").strip().lower() not in ("0", "false", "no", "off")


def start_background_training(
    jobs: JobRegistry,
    name: str,
    train: Callable[..., Any],
    *,
    cached: Callable[[], bool],
    data_available: Callable[[], bool],
    environ: Mapping[str, str] | None = None,
    expected_seconds: float | None = None,
) -> Job | None:
    """Start training the network ``name`` in the background lane, unless there is no need or no way.

    Parameters
    ----------
    jobs : the registry
    name : the network (the job's key is ``"train:<name>"``, the same key a page uses)
    train : ``train(progress=callback)`` trains and caches it (e.g. :func:`geometry.zoo.load_model`)
    cached : True if it is already trained (then nothing starts)
    data_available : True if its training data can be read here (else nothing starts)
    environ : the environment to read :data:`BACKGROUND_ENV` from (default ``os.environ``)
    expected_seconds : the usual training time, for the ETA shown before progress gives one

    Returns
    -------
    The training job, or None when background training is switched off, the network is cached, or
    its data is missing (checked in that order; the later checks are not made).
    """
    if not background_training_allowed(environ) or cached() or not data_available():
        return None
    return jobs.submit(
        f"train:{name}",
        train,
        label=f"training {name}",
        lane="background",
        expected_seconds=expected_seconds,
    )


class PreferredDefault:
    """The app's default network: ``preferred`` once it is ready, ``fallback`` until then.

    Issue 13, item 4: on the embedded 8×8 digits the paper's effect is absent, on MNIST it shows;
    the MNIST LeNet is trained in the background on first start and becomes the default for new
    sessions when its training job is done (sessions that already chose a network keep it).

    Parameters
    ----------
    preferred, fallback : network names
    ready : the preferred network is usable now (trained and its data present)
    job : its background training job (None: none was started)
    enabled : False keeps ``fallback`` whatever happens (background training switched off)
    """

    def __init__(self, preferred: str, fallback: str, *, ready: bool, job: Job | None, enabled: bool = True) -> None:
        self.preferred = preferred
        self.fallback = fallback
        self.job = job
        self.enabled = bool(enabled)
        self._ready = bool(ready) and self.enabled

    @property
    def ready(self) -> bool:
        """True once the preferred network can be the default (stays True)."""
        if not self._ready and self.enabled and self.job is not None and self.job.state == "done":
            self._ready = True
        return self._ready

    def current(self) -> str:
        """The default network for a new session now."""
        return self.preferred if self.ready else self.fallback
