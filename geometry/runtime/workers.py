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
* CPU time per forward pass — a budget that fits the model: when the worker loads an upload it measures
  the CPU time of a forward pass on the probe's batch (:func:`measure_forward`), and every later forward
  of that model on N images may spend :meth:`WorkerLimits.forward_budget` = max(floor, multiple × N × the
  measured cost per image) — seconds for a small network — before the kernel ends the worker (the same
  ``RLIMIT_CPU``, lowered for the forward and put back after it; never above the call's own limit). A
  forward that is cheap on random pixels and loops on a real digit is so stopped in seconds, while a
  whole study keeps the call's larger budget. CPU time, not wall clock: a busy machine slows a valid
  model's forward down but does not make it spend more CPU;
* memory — ``RLIMIT_AS`` above what the interpreter and torch map after import: an allocation past it
  fails (the call raises) and the worker is replaced;
* a per-call deadline (wall clock, ``signal.alarm`` in the worker: SIGALRM ends it) as a backstop;
* files — a private empty working folder (also ``TMPDIR`` and ``HOME``), ``RLIMIT_FSIZE`` 0 (no file
  can be written) and no core dumps; one intra-op thread;
* priority — before any of the model's code runs (the load, the probe, every call) the worker lowers
  every one of its threads to niceness :attr:`WorkerLimits.nice` (the app uses 19), so on a busy machine
  the server's page runs and every zoo computation go first and an upload gets the CPU that is left
  (issue 22, item 2's fair share). The interpreter's start and torch's import (trusted code) run at
  the server's priority, so a worker is not slow to start on a busy machine.

On a breach the worker is gone; the pool notices (:class:`~concurrent.futures.process.BrokenProcessPool`),
reads how the worker ended (its exit signal: SIGXCPU is the CPU-time limit, SIGALRM the deadline,
SIGKILL most likely the system's out-of-memory killer, SIGSEGV / SIGBUS / SIGABRT / SIGILL / SIGFPE a
native crash of the model's code), starts a fresh one for the next call, and raises
:class:`WorkerLimitError` naming what happened and the input (the function and the shapes of its
arguments). A worker's own CPU time is never the server's: the server process only waits.

Progress: a call may pass a ``progress(fraction, message)`` callback (:meth:`WorkerPool.run`'s
``_progress``). The worker's code reports into a :mod:`multiprocessing` manager queue of its session
(:func:`worker_progress`, throttled to one message per 0.1 s, the last always sent), and a thread of the
server forwards each message, in order, to the callback.

Fair share: each browser session has its own single-process executor — its calls queue there, one
at a time, so one session's upload never takes more than one worker's CPU — and at most
:attr:`WorkerPool.max_sessions` sessions hold a worker (the least recently used idle one is closed). With a
:class:`YieldToPages` (the app's pool has one) the busy workers are also stopped while another session's page
runs and for a grace after it: on a small machine a busy core slows the others' pages at any priority.

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
import logging
import math
import multiprocessing
import os
import pickle
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
import types
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, ProcessPoolExecutor
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
    "YieldToPages",
    "describe_call",
    "diagnose",
    "loaded_upload",
    "worker_progress",
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
    nice : int — niceness (0–19) the worker gives itself; higher yields the CPU to the server and its
        other sessions (the app uses 19; an upload then runs on the CPU nobody else wants)
    forward_multiple : float — a forward pass on N images may spend this many times N × the CPU time
        per image measured at load (0: no per-forward budget, only the call's)
    forward_floor_seconds : float — the per-forward budget is never below this (s of CPU): room for a
        first call's warm-up and the clock's one-second granularity
    """

    cpu_seconds: int = 60
    memory_bytes: int = 3 * 2**30
    deadline_seconds: float = 600.0
    nice: int = 0
    forward_multiple: float = 50.0
    forward_floor_seconds: float = 5.0

    def forward_budget(self, n_images: int, seconds_per_image: float) -> float:
        """CPU seconds one forward pass on ``n_images`` may spend, given the cost per image measured at
        load: ``max(forward_floor_seconds, forward_multiple × n_images × seconds_per_image)``, at most
        ``cpu_seconds``; ``cpu_seconds`` when the per-forward budget is off (``forward_multiple`` 0)."""
        if self.forward_multiple <= 0:
            return float(self.cpu_seconds)
        fit = self.forward_multiple * max(int(n_images), 1) * max(float(seconds_per_image), 0.0)
        return min(max(float(self.forward_floor_seconds), fit), float(self.cpu_seconds))

    def describe(self) -> str:
        """One line for the page: "60 s CPU and 3.0 GiB per call (deadline 600 s); one forward pass: …"."""
        line = (
            f"{self.cpu_seconds:g} s CPU and {self.memory_bytes / 2**30:.1f} GiB per call "
            f"(deadline {self.deadline_seconds:g} s)"
        )
        if self.forward_multiple > 0:
            line += (
                f"; one forward pass on N images: {self.forward_multiple:g} × N × its CPU time per image measured "
                f"at load, at least {self.forward_floor_seconds:g} s CPU"
            )
        return line


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
_PROGRESS: dict[str, Any] = {"queue": None, "call": None, "last": 0.0, "nice": 0}  # in a worker: its settings
#: in a worker: the limits of the call under way (``WorkerLimits``), the call's RLIMIT_CPU soft limit, and
#: the shared array where the armed limit is written for the server (see :data:`_ARMED_FIELDS`)
_BUDGET: dict[str, Any] = {"limits": None, "call_soft": None, "armed": None}
#: the fields of a session's shared "armed limit" array: 0 the call's limit, 1 a forward's; the budget (s of
#: CPU); the forward's batch size; the CPU time per image measured at load (s)
_ARMED_FIELDS = 4


def _worker_init(
    memory_bytes: int,
    folder: str,
    nice: int = 0,
    progress_queue: Any = None,
    armed: Any = None,
    cgroup_procs: str | None = None,
) -> None:  # pragma: no cover - runs in the worker
    """Initializer of a worker: its CPU-quota group (when the host delegates one), lower priority, private
    folder, one thread, memory / file limits (after torch's import), the session's progress queue and
    the array where the armed CPU limit is written."""
    import resource

    if cgroup_procs:
        with contextlib.suppress(OSError):  # the pool checked the group; a failure here leaves it unquota'd
            Path(cgroup_procs).write_text(f"{os.getpid()}\n")
    _PROGRESS["queue"] = progress_queue
    _PROGRESS["nice"] = nice
    _BUDGET["armed"] = armed

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


def _lower_priority(nice: int) -> None:  # pragma: no cover - runs in the worker
    """Set every thread of this process to niceness ``nice`` (Linux's niceness is per thread; a thread
    inherits its creator's). Raising one's own niceness needs no privilege."""
    if nice <= 0:
        return
    target = min(int(nice), 19)
    tids = [int(t.name) for t in Path("/proc/self/task").iterdir()] if Path("/proc/self/task").is_dir() else [0]
    for tid in tids:
        with contextlib.suppress(OSError):
            if os.getpriority(os.PRIO_PROCESS, tid) < target:
                os.setpriority(os.PRIO_PROCESS, tid, target)
    own_autogroup(target)


def own_autogroup(nice: int) -> bool:
    """Move this process into its own scheduler autogroup at niceness ``nice`` (Linux; a no-op elsewhere).

    Where the kernel groups tasks by session (``CONFIG_SCHED_AUTOGROUP``, on when
    ``/proc/sys/kernel/sched_autogroup_enabled`` is 1 — the default of most distributions), a thread's
    niceness only orders it against threads of its own autogroup; between autogroups the CPU is shared by
    the groups' own niceness. A nice-19 worker left in the server's autogroup yields to the server, but
    while it spins the group as a whole claims a full share against every other session on the machine
    (measured: the fair-share benchmark's p95 ratio stayed at 1.3–1.6 with the worker at niceness 19,
    docs/benchmarks.md). So the worker starts a new session (``setsid``: a new autogroup) and sets that
    group's niceness (``/proc/self/autogroup``; raising it needs no privilege). Idempotent; errors are
    ignored (no autogroup support, already a session leader, the kernel's rate limit on the write).

    Returns
    -------
    bool — whether ``/proc/self/autogroup`` now reads this niceness.
    """
    path = Path("/proc/self/autogroup")
    if nice <= 0 or not path.exists():
        return False
    with contextlib.suppress(OSError):
        os.setsid()
    with contextlib.suppress(OSError):
        path.write_text(str(min(int(nice), 19)))
    with contextlib.suppress(OSError):
        return path.read_text().strip().endswith(f"nice {min(int(nice), 19)}")
    return False


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


def worker_progress(fraction: float, message: str = "") -> None:  # pragma: no cover - runs in the worker
    """In a worker: report a call's progress (``fraction`` in [0, 1]) to the server's callback.

    Throttled: a message at most every 0.1 s, except ``fraction >= 1`` which is always sent. Outside a
    call with a callback, nothing happens."""
    q, call = _PROGRESS["queue"], _PROGRESS["call"]
    if q is None or call is None:
        return
    now = time.monotonic()
    if fraction < 1.0 and now - _PROGRESS["last"] < 0.1:
        return
    _PROGRESS["last"] = now
    with contextlib.suppress(Exception):  # the server went away: the call's result still matters
        q.put((call, float(fraction), str(message)[:200]))


#: uploads a worker keeps loaded at once (a call may name two: Compare with two uploads)
WORKER_MODELS = 4
#: images in the batch whose forward pass is timed at load (as many as the validation probe's batch)
PROBE_IMAGES = 4


def _cpu_now() -> float:
    """CPU time (s, user + system, every thread) this process has used."""
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    return float(used.ru_utime + used.ru_stime)


def measure_forward(clf: Any, *, n_images: int = PROBE_IMAGES, repeats: int = 2) -> float:
    """CPU time (s) per image of a forward pass of ``clf.network`` on a batch of ``n_images`` images with
    pixels uniform in ``clf.bounds`` (the validation probe's kind of batch), without gradients: the
    largest of ``repeats`` passes (a first pass may include one-off work), divided by ``n_images``.

    Measured with :func:`resource.getrusage` (CPU time, not wall clock), so a busy machine does not
    inflate it. The fixed cost of a pass is counted per image too: for a batch larger than the probe's
    the estimate errs on the generous side."""
    import torch

    low, high = clf.bounds
    gen = torch.Generator().manual_seed(0)
    x = (low + (high - low) * torch.rand((int(n_images), *clf.input_shape), generator=gen)).to(clf.dtype)
    worst = 0.0
    with torch.no_grad():
        for _ in range(max(int(repeats), 1)):
            t0 = _cpu_now()
            clf.network(x)
            worst = max(worst, _cpu_now() - t0)
    return worst / int(n_images)


def _set_armed(kind: float, budget: float, n_images: float, per_image: float) -> None:  # pragma: no cover
    armed = _BUDGET["armed"]
    if armed is not None:
        armed[0], armed[1], armed[2], armed[3] = kind, budget, n_images, per_image


def _arm_forward(per_image: float) -> Callable[..., None]:  # pragma: no cover - runs in the worker
    """A forward pre-hook: lower RLIMIT_CPU's soft limit to "used so far + this forward's budget" (never above
    the call's own limit) and say so in the shared array; a batched tensor of ``torch.func.vmap`` (whose
    logical batch hides the real one) keeps the call's limit."""
    import resource

    import torch

    def hook(module: Any, args: tuple[Any, ...]) -> None:
        limits, call_soft = _BUDGET["limits"], _BUDGET["call_soft"]
        x = args[0] if args else None
        if limits is None or call_soft is None or not isinstance(x, torch.Tensor) or x.dim() == 0:
            return
        if torch._C._functorch.is_batchedtensor(x):
            return
        n = int(x.shape[0])
        budget = limits.forward_budget(n, per_image)
        soft = int(_cpu_now()) + math.ceil(budget) + 1
        if soft < call_soft:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
            _set_armed(1.0, budget, float(n), per_image)

    return hook


def _disarm_forward(module: Any, args: tuple[Any, ...], output: Any) -> None:  # pragma: no cover - worker
    """A forward hook (run even when the forward raised): put the call's own CPU limit back."""
    import resource

    call_soft = _BUDGET["call_soft"]
    if call_soft is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (call_soft, resource.RLIM_INFINITY))
        _set_armed(0.0, 0.0, 0.0, 0.0)


def loaded_upload(handle: UploadHandle) -> Any:  # pragma: no cover - runs in the worker
    """In a worker: the :class:`~geometry.classifier.Classifier` of ``handle``, loaded (screened and
    validated, :func:`geometry.loading.load_classifier` with ``isolate=False``: this process is the
    isolation) on first use and kept for the next calls (at most :data:`WORKER_MODELS`).

    On load, the CPU time of a forward pass per image is measured (:func:`measure_forward`, stored in
    ``clf.info["forward_cpu_seconds_per_image"]``) and every later forward pass of ``clf.network`` gets
    its budget from it (:meth:`WorkerLimits.forward_budget`, armed by hooks on the network)."""
    from geometry.loading import load_classifier

    key = repr(handle)
    clf = _WORKER_MODELS.pop(key, None)
    if clf is None:
        clf = load_classifier(handle.path, isolate=False, **dict(handle.options))
        per_image = measure_forward(clf)
        clf.info["forward_cpu_seconds_per_image"] = per_image
        clf.network.register_forward_pre_hook(_arm_forward(per_image))
        clf.network.register_forward_hook(_disarm_forward, always_call=True)
    _WORKER_MODELS[key] = clf  # most recently used last
    while len(_WORKER_MODELS) > WORKER_MODELS:
        _WORKER_MODELS.pop(next(iter(_WORKER_MODELS)))
    return clf


def _worker_call(
    handle: UploadHandle,
    fn: Callable[..., Any] | str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    limits: WorkerLimits,
    call: str | None = None,
) -> tuple[str, Any]:  # pragma: no cover - runs in the worker
    """One call in a worker: limits armed, the upload loaded (once per worker), ``fn(clf, ...)`` run.
    Returns ``("ok", pickled result)`` or ``("memory", message)`` when an allocation hit the memory limit.
    ``call``: the id under which :func:`worker_progress` reports (None: no callback on the server's side)."""
    import resource

    _PROGRESS["call"], _PROGRESS["last"] = call, 0.0
    _lower_priority(int(_PROGRESS.get("nice") or 0))  # before any of the model's code runs (idempotent)
    soft = int(_cpu_now()) + int(limits.cpu_seconds) + 1
    _BUDGET["limits"], _BUDGET["call_soft"] = limits, soft
    _set_armed(0.0, 0.0, 0.0, 0.0)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
    signal.alarm(max(1, math.ceil(limits.deadline_seconds)))
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
        _BUDGET["limits"], _BUDGET["call_soft"] = None, None
        resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        q = _PROGRESS["queue"]
        if call is not None and q is not None:
            with contextlib.suppress(Exception):
                q.put((call, None, ""))  # the call's last message: the server has them all
        _PROGRESS["call"] = None


# ------------------------------------------------------------------ the server's side
def describe_call(fn: Callable[..., Any] | str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """``module:function(tensor (2, 1, 8, 8), int, k=float)``: a call named with its arguments' shapes and types."""
    name = fn if isinstance(fn, str) else f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', fn)}"

    def one(v: Any) -> str:
        shape = getattr(v, "shape", None)
        return f"tensor {tuple(shape)}" if shape is not None else type(v).__name__

    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


#: exit signals of a worker and what they mean (the limit broken, or how the model failed)
_SIGNALS_CRASH = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}


def diagnose(
    exitcode: int | None, waited: float, limits: WorkerLimits, armed: tuple[float, ...] | None = None
) -> tuple[str, str]:
    """How a worker ended, from its exit status: ``(kind, phrase)`` with ``kind`` one of ``"forward"``,
    ``"cpu"``, ``"deadline"``, ``"memory"``, ``"crash"``, ``"stopped"``, ``"exit"``.

    Parameters
    ----------
    exitcode : the worker's :attr:`multiprocessing.Process.exitcode` (−signal when a signal ended it;
        None when unknown)
    waited : seconds the server waited on the call (wall clock; the deadline's only witness when the
        exit status is unknown)
    limits : the worker's limits, for the numbers in the phrase
    armed : the CPU limit armed when the worker ended, as the worker wrote it in its session's shared
        array: ``(kind, budget_s, n_images, seconds_per_image)``, kind 1 for a forward pass's budget, 0
        for the call's (None: unknown, the call's)
    """
    sig = -exitcode if exitcode is not None and exitcode < 0 else None
    if sig == signal.SIGXCPU and armed is not None and armed[0] == 1.0:
        budget, n, per_image = armed[1], int(armed[2]), armed[3]
        return "forward", (
            f"used more than its {budget:.3g} s of CPU time for one forward pass on {n} image{'s' if n != 1 else ''} "
            f"(the budget of a forward pass: {limits.forward_multiple:g} × {n} × the {per_image * 1e3:.3g} ms of CPU "
            f"per image its forward took on the probe's batch at load, at least {limits.forward_floor_seconds:g} s)"
        )
    if sig == signal.SIGXCPU:
        return "cpu", f"used more than its {limits.cpu_seconds} s of CPU time"
    if sig == signal.SIGALRM or (sig is None and waited >= limits.deadline_seconds - 1.0):
        return "deadline", (
            f"did not finish within the {limits.deadline_seconds:g} s deadline "
            "(wall clock; a backstop — the server may have been busy)"
        )
    if sig == signal.SIGKILL:
        return "memory", (
            "was killed with SIGKILL, most likely by the system's out-of-memory killer "
            f"(its memory grew past what the machine has; the worker's own limit is {limits.memory_bytes / 2**30:.1f} GiB)"
        )
    if sig == signal.SIGTERM:
        return "stopped", "was stopped (its browser session ended or the server is stopping)"
    if sig in _SIGNALS_CRASH:
        return "crash", f"crashed natively ({signal.Signals(sig).name} in the model's compiled code)"
    if sig is not None:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return "exit", f"was ended by {name}"
    return "exit", f"ended abruptly (exit status {exitcode})"


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_parent_main() -> Any:
    """While a worker is spawned, hide the parent's ``__main__`` from :mod:`multiprocessing`.

    ``spawn`` re-runs the parent's main script in every child (as ``__mp_main__``) so that pickled functions of
    ``__main__`` resolve. Under ``streamlit run`` that script is the app (Streamlit makes each script it runs
    ``sys.modules["__main__"]``): every upload worker would import Streamlit and every page before the model's
    call — seconds of CPU and the pages' import-time code in a process meant to hold only the model. The
    workers' functions are module-level functions of importable modules (pickled by reference), so nothing
    of ``__main__`` is needed there: a bare module stands in for ``__main__`` while the child is started (the
    preparation data is read in the starting thread, at ``submit`` / ``Manager()``), then the original is put
    back unless someone else replaced it meanwhile.
    """
    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        stand_in = types.ModuleType("__main__")
        sys.modules["__main__"] = stand_in
        try:
            yield
        finally:
            if sys.modules.get("__main__") is stand_in and main is not None:
                sys.modules["__main__"] = main


class _Session:
    def __init__(self, limits: WorkerLimits, progress_queue: Any = None, cgroup_procs: str | None = None) -> None:
        self.folder = tempfile.mkdtemp(prefix="atlas-worker-")
        context = multiprocessing.get_context("spawn")
        #: the CPU limit armed in the worker (see _ARMED_FIELDS), read when it ends on SIGXCPU
        self.armed = context.RawArray("d", _ARMED_FIELDS)
        self.executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=context,
            initializer=_worker_init,
            initargs=(limits.memory_bytes, self.folder, limits.nice, progress_queue, self.armed, cgroup_procs),
        )
        self.busy = 0
        self.used = time.monotonic()
        self.progress_queue = progress_queue
        self.callbacks: dict[str, Callable[[float, str], None]] = {}
        self.finished: dict[str, threading.Event] = {}
        self.closed = threading.Event()
        #: the executor's worker Process objects, kept here: the executor forgets them once it is shut
        #: down (a concurrent call's _replace), and the exit status is the only witness of the limit hit
        self.processes: dict[int, Any] = {}
        if progress_queue is not None:
            threading.Thread(target=self._listen, name="atlas-upload-progress", daemon=True).start()

    def _listen(self) -> None:
        """Forward the worker's progress messages, in order, to the callbacks of their calls."""
        while not self.closed.is_set():
            try:
                call, fraction, message = self.progress_queue.get(timeout=0.5)
            except queue.Empty:
                continue
            except Exception:  # the manager is gone (the process is stopping)
                return
            if fraction is None:
                done = self.finished.get(call)
                if done is not None:
                    done.set()
                continue
            callback = self.callbacks.get(call)
            if callback is not None:
                with contextlib.suppress(Exception):  # a page's callback never breaks the forwarding
                    callback(fraction, message)

    def remember_processes(self) -> None:
        """Keep the executor's current worker Process objects (called after each submit, which starts them)."""
        self.processes.update(getattr(self.executor, "_processes", None) or {})

    def exitcode(self) -> int | None:
        """The exit status of the session's (dead) worker process, or None when unknown."""
        self.remember_processes()
        deadline = time.monotonic() + 10.0
        for proc in list(self.processes.values()):
            # Process.join is not thread-safe: the executor's manager thread reaps the same child, and the
            # loser of the two waitpid calls sees None until the winner has stored the status — poll a little
            while time.monotonic() < deadline:
                proc.join(timeout=0.2)
                if proc.exitcode is not None:
                    return proc.exitcode
                time.sleep(0.02)
        return None

    def close(self, wait: bool = True) -> None:
        """Stop the worker now (a call under way is abandoned: its session ended, or the process stops)
        and remove its private folder."""
        self.closed.set()
        self.remember_processes()
        for proc in list(self.processes.values()):
            with contextlib.suppress(Exception):
                proc.terminate()  # SIGTERM: a spinning upload would otherwise hold shutdown() until its CPU limit
            if proc.pid is not None:  # a worker a YieldToPages stopped acts on SIGTERM only once continued
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGCONT)
        self.executor.shutdown(wait=wait, cancel_futures=True)
        shutil.rmtree(self.folder, ignore_errors=True)


class YieldToPages:
    """Pause upload workers while another browser session's page runs — uploads get the CPU in the gaps.

    Why a pause and not only a priority: on the 2-core machine of the fair-share benchmark, a busy second core
    slows the work on the first even when the busy task is ``SCHED_IDLE`` and pinned to the other core — a
    generic spinner (``chrt -i 0 python -c 'while 1: pass'``, nothing of this project) made the pages' changes
    12–16 % slower at the median (docs/benchmarks.md, fair share). The scheduler hands the core back at once;
    what is shared below it (the host's cores, caches, clocks) it cannot. Only not running helps, so while
    another session's page runs, and for ``grace_s`` after it ends (its browser is drawing what it got, and its
    visitor is likely to act again within seconds), the busy workers are stopped (``SIGSTOP``; ``SIGCONT`` to go
    on). The grace was 1 s at first: the fair-share benchmark's sessions take turns about 1 s apart (drawing plus
    0.5 s of quiet), so a worker went on right at each next click, and the pages' own script time rose 2.6× at
    p95 in B; at 3 s it did not (0.91×, docs/benchmarks.md). CPU-time limits are unaffected (a stopped
    process spends none); the wall-clock deadline counts the pause (its message says the server was busy).

    A session's own page runs never pause its own worker (the page may be waiting on it), and a session whose
    call is under way does not count as another's visitor. With ``burst_s`` > 0 a worker stopped for
    ``max_pause_s`` runs for ``burst_s`` (at most burst / (max_pause + burst) of the time), so that uploads progress
    while pages run without a gap. Off by default: bursts of 0.25 s per 2 s (11 %) cost the other sessions' p95
    1.09–1.21× in the fair-share benchmark, none 1.04× (docs/benchmarks.md); without them an upload waits for a
    gap of ``grace_s`` in the other sessions' runs, and the wall-clock deadline is its backstop.

    Parameters
    ----------
    grace_s : seconds after a page run ends during which the workers stay stopped (the browser's drawing and the
        visitor's next action; the app: ``ATLAS_UPLOAD_YIELD_GRACE_S``, default 3)
    max_pause_s : the longest continuous pause (s) before a burst
    burst_s : how long (s) the workers run between two long pauses (0: never; the app:
        ``ATLAS_UPLOAD_YIELD_BURST_S``, default 0)

    Source: issue 22, item 2 (fair share); the mechanism is POSIX job control (``SIGSTOP`` / ``SIGCONT``).
    """

    def __init__(self, grace_s: float = 3.0, max_pause_s: float = 2.0, burst_s: float = 0.0) -> None:
        self.grace_s, self.max_pause_s, self.burst_s = float(grace_s), float(max_pause_s), float(burst_s)
        self._cond = threading.Condition()
        #: page runs under way, per (session, thread running it)
        self._running: collections.Counter[tuple[str, int]] = collections.Counter()
        self._waiting: collections.Counter[int] = collections.Counter()  # threads inside a pool call, per thread
        self._ended: dict[str, float] = {}  # session → time.monotonic() its last page run ended
        self._stopped: set[int] = set()  # worker pids stopped now
        self._pids: Callable[[], list[int]] = list  # the pool's busy workers (see attach)
        self._busy: Callable[[], set[str]] = set  # the sessions with an upload call under way (see attach)
        self._since = 0.0  # when the current pause began (time.monotonic())
        self._burst_until = 0.0
        self._thread: threading.Thread | None = None
        self._closed = False
        #: seconds the workers have been stopped in all (a reading for tests and the benchmark)
        self.paused_s = 0.0

    def attach(self, pids: Callable[[], list[int]], busy: Callable[[], set[str]]) -> None:
        """Where the pool's busy workers' pids and the sessions with a call under way come from (called once by
        :class:`WorkerPool`)."""
        self._pids, self._busy = pids, busy

    @contextlib.contextmanager
    def page_run(self, owner: str) -> Any:
        """Mark a page run of session ``owner`` (on this thread) while the block runs (the app's script run)."""
        key = (owner, threading.get_ident())
        with self._cond:
            self._running[key] += 1
            self._start()
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._running[key] -= 1
                if self._running[key] <= 0:
                    del self._running[key]
                now = time.monotonic()
                self._ended[owner] = now
                live = {o for o, _ in self._running}
                for gone in [o for o, t in self._ended.items() if now - t > self.grace_s and o not in live]:
                    del self._ended[gone]  # sessions long idle (or ended): their grace has passed
                self._cond.notify_all()

    def waiting(self, thread: int, on: bool) -> None:
        """Thread ``thread`` enters (True) or leaves (False) a pool call: a page run on a thread that waits on a
        worker — any session's, its own or not — does not count, so a page never stops the worker it waits on."""
        with self._cond:
            self._waiting[thread] += 1 if on else -1
            if self._waiting[thread] <= 0:
                del self._waiting[thread]
            self._cond.notify_all()

    def should_pause(self, now: float | None = None) -> bool:
        """Whether another session's page runs now or ended less than ``grace_s`` ago (bursts aside)."""
        now = time.monotonic() if now is None else now
        busy = self._busy()
        with self._cond:
            if any(o not in busy and not self._waiting[t] for o, t in self._running):
                return True
            return any(o not in busy and now - t < self.grace_s for o, t in self._ended.items())

    def _start(self) -> None:
        # caller holds self._cond
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._loop, name="atlas-upload-yield", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
            now = time.monotonic()
            want = self.should_pause(now) and now >= self._burst_until
            if want and self._stopped and self.burst_s > 0 and now - self._since >= self.max_pause_s:
                self._burst_until = now + self.burst_s  # a long pause: let the workers run a little
                want = False
            if want:
                if not self._stopped:
                    self._since = now
                self._stop(self._pids())
            elif self._stopped:
                self.resume_all()
            with self._cond:
                if self._closed:
                    return
                # re-check soon while anything is stopped or pending, else sleep until a page run or call changes
                self._cond.wait(timeout=0.05 if (want or self._stopped or self._running or self._recent()) else 1.0)

    def _recent(self) -> bool:
        # caller holds self._cond
        now = time.monotonic()
        return any(now - t < self.grace_s for t in self._ended.values())

    def _stop(self, pids: list[int]) -> None:
        for pid in pids:
            if pid in self._stopped:
                continue
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            with self._cond:
                self._stopped.add(pid)

    def resume_all(self) -> None:
        """Continue every stopped worker now (before a worker is closed, or when the pause ends)."""
        with self._cond:
            stopped, self._stopped = self._stopped, set()
        if stopped:
            self.paused_s += time.monotonic() - self._since
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        """End the controller (the pool is closing); every worker is continued."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.resume_all()


class WorkerPool:
    """Worker processes for uploaded models, one per browser session at a time.

    Parameters
    ----------
    limits : each call's CPU time, memory and deadline (default :data:`DEFAULT_WORKER_LIMITS`)
    max_sessions : sessions holding a worker at once; the least recently used idle one is closed
        to make room (a busy one never is)
    yield_to_pages : a :class:`YieldToPages` that pauses the busy workers while another session's page runs
        (and for its grace after); None: workers are never paused (the default; the app passes one)
    cpu_quota : share of one CPU that all the pool's workers together may use (a cgroup CPU quota,
        :func:`geometry.runtime.cpuquota.create_cpu_quota`), or 0 for none. Where the host does not
        delegate one (a normal user's machine, most containers), the pool runs without it and
        :attr:`quota` says why (logged as a warning).
    """

    def __init__(
        self,
        limits: WorkerLimits = DEFAULT_WORKER_LIMITS,
        *,
        max_sessions: int = 8,
        cpu_quota: float = 0.0,
        yield_to_pages: YieldToPages | None = None,
    ) -> None:
        from .cpuquota import CpuQuota, create_cpu_quota

        self.limits = limits
        #: pauses the workers while other sessions' pages run (None: never paused), see :class:`YieldToPages`
        self.yielding = yield_to_pages
        if yield_to_pages is not None:
            yield_to_pages.attach(self._busy_worker_pids, self._busy_owners)
        self.max_sessions = max(int(max_sessions), 1)
        self._lock = threading.Lock()
        self._sessions: collections.OrderedDict[str, _Session] = collections.OrderedDict()
        self._manager: Any = None
        #: uploads held back per session: (owner, path) → the message of the forward-pass budget they broke
        self._held: dict[tuple[str, str], str] = {}
        self.quota = (
            create_cpu_quota(cpu_quota)
            if cpu_quota > 0
            else CpuQuota(available=False, share=0.0, reason="no CPU quota asked for")
        )
        if cpu_quota > 0:
            log = logging.getLogger(__name__)
            (log.info if self.quota.available else log.warning)("upload workers: %s", self.quota.describe())

    def _queue(self) -> Any:
        """A new progress queue of the pool's :mod:`multiprocessing` manager (started on first use)."""
        # caller holds self._lock
        try:
            if self._manager is None:
                with _without_parent_main():
                    self._manager = multiprocessing.get_context("spawn").Manager()
            return self._manager.Queue()
        except Exception:  # no manager (e.g. the process is stopping): calls run without progress
            return None

    def _session(self, owner: str) -> _Session:
        # caller holds self._lock
        session = self._sessions.get(owner)
        if session is None:
            idle = [k for k, s in self._sessions.items() if s.busy == 0]
            while len(self._sessions) >= self.max_sessions and idle:
                self._sessions.pop(idle.pop(0)).close()
            session = self._sessions[owner] = _Session(self.limits, self._queue(), self.quota.procs)
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
        _progress: Callable[[float, str], None] | None = None,
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
        _progress : ``progress(fraction, message)``, called in a thread of this process with what the
            worker's code reports through :func:`worker_progress`, in order; every message of the call
            has been forwarded when ``run`` returns

        Returns
        -------
        What ``fn`` returned (pickled back).

        Raises
        ------
        WorkerLimitError
            the call passed the CPU-time limit, the memory limit or the deadline, or the worker
            crashed natively or was killed (the worker is replaced; the message names the limit or
            the signal, the model and the input).
        AtlasError and other exceptions raised by ``fn`` or the load, as they were raised.

        Notes
        -----
        An upload that broke its forward-pass budget (a forward pass far costlier than the model's own forward
        measured at load: a model that loops on real inputs) is **held back** in that session: its later calls
        raise :class:`WorkerLimitError` at once, with the first message, without starting a worker — a page's
        rerun (another datapoint) does not set the model off again, so one session cannot keep a core busy by
        retrying it. Loading the file again (:meth:`release_hold`, called by the upload form's load) retries it.
        """
        first = self._held.get((owner, handle.path))
        if first is not None:
            raise WorkerLimitError(
                f"{handle.display!r} is held back in this session: earlier it {first}. Its calls are not run "
                "again; load the file again to retry it."
            )
        with self._lock:
            session = self._session(owner)
            session.busy += 1
        caller = threading.get_ident()
        if self.yielding is not None:
            self.yielding.waiting(caller, True)
        what = _what or describe_call(fn, args, kwargs)
        lim = self.limits
        call = None
        if _progress is not None and session.progress_queue is not None:
            call = uuid.uuid4().hex
            session.callbacks[call] = _progress
            session.finished[call] = threading.Event()
        t0 = time.monotonic()
        try:
            with _without_parent_main():  # the first submit starts the worker process
                future = session.executor.submit(_worker_call, handle, fn, tuple(args), dict(kwargs), lim, call)
            session.remember_processes()
            try:
                status, value = future.result(timeout=lim.deadline_seconds + 60.0)
            except BrokenProcessPool:
                waited = time.monotonic() - t0
                code = session.exitcode()
                if code is None and session.closed.is_set():  # close() stopped it; its Process may be gone already
                    code = -int(signal.SIGTERM)
                kind, phrase = diagnose(code, waited, lim, tuple(session.armed))
                self._replace(owner, session)
                if kind == "forward":
                    self._held[(owner, handle.path)] = f"{phrase} on {what}"
                advice = {
                    "cpu": " (does forward loop for a very long time on this input?)",
                    "forward": " (does forward loop for a very long time on this input?)",
                    "crash": " (a fault in a native operator or an extension the model calls)",
                }.get(kind, "")
                raise WorkerLimitError(
                    f"{handle.display!r} {phrase} on {what}; its worker was stopped{advice}"
                ) from None
            except CancelledError:
                raise WorkerLimitError(
                    f"{handle.display!r} was stopped before {what} finished (its browser session ended or the "
                    "server is stopping)"
                ) from None
            except TimeoutError:
                self._replace(owner, session)
                raise WorkerLimitError(
                    f"{handle.display!r} did not finish {what} within the {lim.deadline_seconds:g} s deadline "
                    "(wall clock); its worker was stopped"
                ) from None
            if call is not None:  # the worker sent its last message before the result: forward the rest
                session.finished[call].wait(timeout=30.0)
        finally:
            if call is not None:
                session.callbacks.pop(call, None)
                session.finished.pop(call, None)
            with self._lock:
                session.busy -= 1
            if self.yielding is not None:
                self.yielding.waiting(caller, False)
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
        if self.yielding is not None:
            self.yielding.resume_all()
        session.close(wait=False)

    def release_hold(self, owner: str, handle: UploadHandle) -> bool:
        """Let ``owner`` run ``handle`` again after it broke its forward-pass budget (the user loaded the file
        again); True when it was held back."""
        return self._held.pop((owner, handle.path), None) is not None

    def close(self, owner: str | None = None) -> None:
        """Stop ``owner``'s worker (a session ended), or every worker when ``owner`` is None (the process
        stops); a call under way there is abandoned (its caller gets :class:`WorkerLimitError`)."""
        with self._lock:
            owners = list(self._sessions) if owner is None else [owner]
            closing = [self._sessions.pop(o) for o in owners if o in self._sessions]
            for key in [k for k in self._held if owner is None or k[0] == owner]:
                del self._held[key]
        if self.yielding is not None:
            self.yielding.resume_all()  # a stopped process would not act on the SIGTERM of close() until continued
        for session in closing:
            session.close()
        if owner is None:
            if self.yielding is not None:
                self.yielding.stop()
            with self._lock:
                manager, self._manager = self._manager, None
            if manager is not None:
                with contextlib.suppress(Exception):
                    manager.shutdown()
            self.quota.remove()

    def _busy_worker_pids(self) -> list[int]:
        """Pids of the live worker processes of the sessions with a call under way."""
        with self._lock:
            sessions = [sess for sess in self._sessions.values() if sess.busy > 0]
        pids = []
        for sess in sessions:
            sess.remember_processes()
            pids += [proc.pid for proc in list(sess.processes.values()) if proc.pid is not None]
        return pids

    def _busy_owners(self) -> set[str]:
        """The sessions with a call under way."""
        with self._lock:
            return {owner for owner, sess in self._sessions.items() if sess.busy > 0}

    def owners(self) -> list[str]:
        """The sessions that hold a worker now, least recently used first."""
        with self._lock:
            return list(self._sessions)
