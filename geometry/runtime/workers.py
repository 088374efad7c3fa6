"""Uploaded models run only in resource-limited worker processes (issue 22, items 1 and 2).

The server process holds an :class:`UploadHandle` — the screened file's path and its load options —
never the model. :meth:`WorkerPool.run` sends the handle and the *whole* call (a study function, its
settings and data) to a worker, which loads the upload itself (:func:`geometry.loading.load_classifier`
with the screen, in that process), runs ``fn(classifier, *args, **kwargs)`` there and returns the
result. Workers are :class:`concurrent.futures.ProcessPoolExecutor` processes started with the
``spawn`` context (a fresh interpreter, never a fork of the threaded server), so the messages are the
standard library's pickles, not a protocol of ours.

Limits of a worker (:class:`WorkerLimits`), set in the worker after its imports:

* CPU time per call — ``RLIMIT_CPU``'s soft limit is moved to "CPU used so far + budget" before each
  call, so the model's work is measured, not the machine's load; at the limit the kernel ends the
  worker (SIGXCPU);
* memory — ``RLIMIT_AS`` above what the interpreter and torch map after import: an allocation past it
  fails (the call raises) and the worker is replaced;
* a per-call deadline (wall clock, ``signal.alarm`` in the worker: SIGALRM ends it) as a backstop;
* files — a private empty working folder (also ``TMPDIR`` and ``HOME``), ``RLIMIT_FSIZE`` 0 (no file
  can be written) and no core dumps; one intra-op thread.

On a breach the worker is gone; the pool notices (:class:`~concurrent.futures.process.BrokenProcessPool`),
starts a fresh one for the next call, and raises :class:`WorkerLimitError` naming the limit and the
input (the function and the shapes of its arguments). A worker's own CPU time is never the server's:
the server process only waits.

Fair share: each browser session has its own single-process executor — its calls queue there, one
at a time, so one session's upload never takes more than one worker's CPU — and at most
:attr:`WorkerPool.max_sessions` sessions hold a worker (the least recently used idle one is closed).

Zoo networks and the command line's ``--trust-model-code`` keep running in-process; only uploads go
through here. Arguments go to the worker with :mod:`multiprocessing`'s pickler, which puts tensors in
shared memory (torch's reducers); results come back as plain pickle bytes (copied), because the
worker may not create the shared-memory file (``RLIMIT_FSIZE`` 0) — results are small (logits, radii,
sections).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib
import math
import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..errors import AtlasError

__all__ = [
    "DEFAULT_WORKER_LIMITS",
    "UploadHandle",
    "WorkerLimitError",
    "WorkerLimits",
    "WorkerPool",
    "describe_call",
    "loaded_upload",
]


class WorkerLimitError(AtlasError):
    """An uploaded model broke a worker's limit; the message names the limit and the input."""


@dataclasses.dataclass(frozen=True)
class WorkerLimits:
    """Limits of one upload worker.

    Attributes
    ----------
    cpu_seconds : int — CPU time (s, all threads) one call may spend (``RLIMIT_CPU``)
    memory_bytes : int — address space (bytes) beyond what the worker maps after importing torch
        (``RLIMIT_AS``)
    deadline_seconds : float — wall-clock backstop of one call (s); passing it usually means the
        server was busy
    """

    cpu_seconds: int = 60
    memory_bytes: int = 3 * 2**30
    deadline_seconds: float = 600.0

    def describe(self) -> str:
        """One line for the page: "60 s CPU and 3.0 GiB per call (deadline 600 s)"."""
        return (
            f"{self.cpu_seconds:g} s CPU and {self.memory_bytes / 2**30:.1f} GiB per call "
            f"(deadline {self.deadline_seconds:g} s)"
        )


DEFAULT_WORKER_LIMITS = WorkerLimits()


@dataclasses.dataclass(frozen=True)
class UploadHandle:
    """What the server keeps of an upload: the screened file and how to load it (picklable).

    Attributes
    ----------
    path : str — the model file (already screened and probed by :mod:`geometry.loading.sandbox`)
    options : keyword arguments of :func:`geometry.loading.load_classifier` (``input_shape``,
        ``format``, ``mean``, ``std``, ...), without ``isolate`` / ``limits``
    display : the name shown in messages
    """

    path: str
    options: Mapping[str, Any]
    display: str = "uploaded model"


# ------------------------------------------------------------------ the worker's side
_WORKER_MODELS: dict[str, Any] = {}  # in a worker: the uploads it has loaded


def _worker_init(memory_bytes: int, folder: str) -> None:  # pragma: no cover - runs in the worker
    """Initializer of a worker: private folder, one thread, memory / file limits (after torch's import)."""
    import resource

    import torch

    os.chdir(folder)
    for name in ("TMPDIR", "HOME", "BOUNDARY_ATLAS_CACHE"):
        os.environ[name] = folder
    tempfile.tempdir = folder
    torch.set_num_threads(1)
    importlib.import_module("geometry.loading")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails (EFBIG) instead of ending the worker
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the deadline ends the worker
    used = _vm_bytes()
    resource.setrlimit(resource.RLIMIT_AS, (used + int(memory_bytes), used + int(memory_bytes)))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _vm_bytes() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _resolve(fn: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(fn):
        return fn
    module, _, name = fn.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


#: uploads a worker keeps loaded at once (a call may name two: Compare with two uploads)
WORKER_MODELS = 4


def loaded_upload(handle: UploadHandle) -> Any:  # pragma: no cover - runs in the worker
    """In a worker: the :class:`~geometry.classifier.Classifier` of ``handle``, loaded (screened and
    validated, :func:`geometry.loading.load_classifier` with ``isolate=False``: this process is the
    isolation) on first use and kept for the next calls (at most :data:`WORKER_MODELS`)."""
    from geometry.loading import load_classifier

    key = repr(handle)
    clf = _WORKER_MODELS.pop(key, None)
    if clf is None:
        clf = load_classifier(handle.path, isolate=False, **dict(handle.options))
    _WORKER_MODELS[key] = clf  # most recently used last
    while len(_WORKER_MODELS) > WORKER_MODELS:
        _WORKER_MODELS.pop(next(iter(_WORKER_MODELS)))
    return clf


def _worker_call(
    handle: UploadHandle,
    fn: Callable[..., Any] | str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    cpu_seconds: int,
    deadline_seconds: float,
) -> tuple[str, Any]:  # pragma: no cover - runs in the worker
    """One call in a worker: limits armed, the upload loaded (once per worker), ``fn(clf, ...)`` run.
    Returns ``("ok", pickled result)`` or ``("memory", message)`` when an allocation hit the memory limit."""
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(used.ru_utime + used.ru_stime) + int(cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
    signal.alarm(max(1, math.ceil(deadline_seconds)))
    try:
        clf = loaded_upload(handle)
        # plain pickle bytes: torch's multiprocessing reducers would put tensors in a shared-memory
        # file, which the worker may not write (RLIMIT_FSIZE 0)
        return "ok", pickle.dumps(_resolve(fn)(clf, *args, **kwargs), protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError as exc:
        return "memory", str(exc)
    except RuntimeError as exc:
        if "can't allocate memory" in str(exc) or "bad_alloc" in str(exc) or "out of memory" in str(exc):
            lines = [ln for ln in str(exc).splitlines() if "alloc" in ln or "memory" in ln]
            return "memory", (lines[-1] if lines else "").strip()[:200]
        raise
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


# ------------------------------------------------------------------ the server's side
def describe_call(fn: Callable[..., Any] | str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """``module:function(tensor (2, 1, 8, 8), int, k=float)``: a call named with its arguments' shapes and types."""
    name = fn if isinstance(fn, str) else f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', fn)}"

    def one(v: Any) -> str:
        shape = getattr(v, "shape", None)
        return f"tensor {tuple(shape)}" if shape is not None else type(v).__name__

    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


class _Session:
    def __init__(self, limits: WorkerLimits) -> None:
        self.folder = tempfile.mkdtemp(prefix="atlas-worker-")
        self.executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(limits.memory_bytes, self.folder),
        )
        self.busy = 0
        self.used = time.monotonic()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.folder, ignore_errors=True)


class WorkerPool:
    """Worker processes for uploaded models, one per browser session at a time.

    Parameters
    ----------
    limits : each call's CPU time, memory and deadline (default :data:`DEFAULT_WORKER_LIMITS`)
    max_sessions : sessions holding a worker at once; the least recently used idle one is closed
        to make room (a busy one never is)
    """

    def __init__(self, limits: WorkerLimits = DEFAULT_WORKER_LIMITS, *, max_sessions: int = 8) -> None:
        self.limits = limits
        self.max_sessions = max(int(max_sessions), 1)
        self._lock = threading.Lock()
        self._sessions: collections.OrderedDict[str, _Session] = collections.OrderedDict()

    def _session(self, owner: str) -> _Session:
        # caller holds self._lock
        session = self._sessions.get(owner)
        if session is None:
            idle = [k for k, s in self._sessions.items() if s.busy == 0]
            while len(self._sessions) >= self.max_sessions and idle:
                self._sessions.pop(idle.pop(0)).close()
            session = self._sessions[owner] = _Session(self.limits)
        self._sessions.move_to_end(owner)
        session.used = time.monotonic()
        return session

    def run(
        self,
        owner: str,
        handle: UploadHandle,
        fn: Callable[..., Any] | str,
        *args: Any,
        _what: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(classifier, *args, **kwargs)`` on the upload ``handle`` in ``owner``'s worker.

        Parameters
        ----------
        owner : the browser session's id (its calls queue in its own worker, one at a time)
        handle : the upload
        fn : a module-level function (pickled by reference) or ``"module:function"``; called with
            the loaded :class:`~geometry.classifier.Classifier` first
        args, kwargs : its arguments (picklable: tensors, settings, data)
        _what : how the call is named in a limit's message (default: ``fn`` and its arguments' shapes)

        Returns
        -------
        What ``fn`` returned (pickled back).

        Raises
        ------
        WorkerLimitError
            the call passed the CPU-time limit, the memory limit or the deadline (the worker is
            replaced; the message names the limit, the model and the input).
        AtlasError and other exceptions raised by ``fn`` or the load, as they were raised.
        """
        with self._lock:
            session = self._session(owner)
            session.busy += 1
        what = _what or describe_call(fn, args, kwargs)
        lim = self.limits
        t0 = time.monotonic()
        try:
            future = session.executor.submit(
                _worker_call, handle, fn, tuple(args), dict(kwargs), lim.cpu_seconds, lim.deadline_seconds
            )
            try:
                status, value = future.result(timeout=lim.deadline_seconds + 60.0)
            except BrokenProcessPool:
                waited = time.monotonic() - t0
                self._replace(owner, session)
                if waited >= lim.deadline_seconds - 1.0:
                    raise WorkerLimitError(
                        f"{handle.display!r} did not finish {what} within the {lim.deadline_seconds:g} s deadline "
                        "(wall clock; a backstop — the server may have been busy); its worker was stopped"
                    ) from None
                raise WorkerLimitError(
                    f"{handle.display!r} used more than its {lim.cpu_seconds} s of CPU time on {what}; "
                    "its worker was stopped (does forward loop for a very long time on this input?)"
                ) from None
            except TimeoutError:
                self._replace(owner, session)
                raise WorkerLimitError(
                    f"{handle.display!r} did not finish {what} within the {lim.deadline_seconds:g} s deadline "
                    "(wall clock); its worker was stopped"
                ) from None
        finally:
            with self._lock:
                session.busy -= 1
        if status == "memory":
            self._replace(owner, session)
            raise WorkerLimitError(
                f"{handle.display!r} needed more than {lim.memory_bytes / 2**30:.1f} GiB of memory on {what} "
                f"(the limit of an upload's worker; {value}); its worker was restarted"
            )
        return pickle.loads(value)  # bytes made by our worker code (fn's result)

    def _replace(self, owner: str, session: _Session) -> None:
        """Drop ``owner``'s worker (broken or over a limit); the next call starts a fresh one."""
        with self._lock:
            if self._sessions.get(owner) is session:
                del self._sessions[owner]
        session.executor.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(session.folder, ignore_errors=True)

    def close(self, owner: str | None = None) -> None:
        """Stop ``owner``'s worker (a session ended), or every worker when ``owner`` is None."""
        with self._lock:
            owners = list(self._sessions) if owner is None else [owner]
            closing = [self._sessions.pop(o) for o in owners if o in self._sessions]
        for session in closing:
            session.close()

    def owners(self) -> list[str]:
        """The sessions that hold a worker now, least recently used first."""
        with self._lock:
            return list(self._sessions)
