"""The server's side of an uploaded model: a stand-in :class:`~geometry.classifier.Classifier` whose
network lives in a worker, and :func:`in_worker`, which runs a whole study call there (issue 22, item 1).

Design
------
An upload is code. The server process never loads it: :func:`register` writes the screened file to a
private folder, asks the session's worker (:class:`~geometry.runtime.workers.WorkerPool`) to load and
validate it (the load, the screen and the probe run there, under the worker's CPU-time, memory and
deadline limits) and gets back its description — input shape, class names, normalisation, the model
card's facts. What the server keeps is an *uploaded classifier*: a :class:`Classifier` with those facts
whose ``network`` is a :class:`WorkerNetwork`, a module without weights that holds the
:class:`~geometry.runtime.workers.UploadHandle` and the owning browser session.

The unit of work sent to the worker is a **whole study call**: the study functions take a classifier
and a settings object and return a result dataclass, so :func:`in_worker` ``(fn, *args, **kwargs)``
sends ``fn`` (by reference: a module-level function), the settings and the data to the worker of the
session that uploaded the model; there the stand-in (wherever it appears among the arguments — Compare
passes two networks) is replaced by the loaded model, ``fn`` runs, and its result (tensors, arrays,
dataclasses) comes back. Arguments cross in shared memory (torch's multiprocessing reducers), so large
point sets are not copied. A ``progress`` callback stays here: the worker's study reports into its
session's queue (:func:`~geometry.runtime.workers.worker_progress`) and the pool forwards each fraction,
in order, to it, so a background job's bar moves as it would in-process. Called with no upload among the arguments, :func:`in_worker` is simply
``fn(*args, **kwargs)`` — zoo networks and the command line's ``--trust-model-code`` stay in-process.

The stand-in's own forward pass exists only for cheap, gradient-free evaluations (a page's
predictions): it runs in the worker as one call. A forward pass that needs gradients in the server —
a computation not routed through :func:`in_worker` — is refused with :class:`UploadInWorkerError`
rather than run here, so a path forgotten by the app fails loudly instead of executing the upload in
the server.

A limit broken in the worker ends that worker (a fresh one serves the session's next call) and raises
:class:`~geometry.runtime.workers.WorkerLimitError`, whose message names the limit, the model and the
input; pages show it like every :class:`~geometry.errors.AtlasError`.

Clean-up: the files of a session's uploads live in that session's own folder. :func:`discard` removes
one upload's file (the page calls it when a session replaces an upload by a new file of the same name),
:func:`release` a session's files and its worker (with its private folder), :func:`reap` every session
that has ended (the app calls it with the Streamlit runtime's list of live sessions), and the process's
exit removes the whole folder and stops every worker.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import importlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..classifier import Classifier
from ..errors import AtlasError
from .workers import (
    UploadHandle,
    WorkerLimits,
    WorkerPool,
    YieldToPages,
    describe_call,
    loaded_upload,
    worker_progress,
)

__all__ = [
    "APP_WORKER_LIMITS",
    "UploadInWorkerError",
    "WorkerNetwork",
    "discard",
    "in_worker",
    "is_uploaded",
    "page_run",
    "preload",
    "reap",
    "register",
    "release",
    "set_upload_pool",
    "upload_pool",
    "waiting_on_worker",
]

#: Limits of an upload's worker in the app: one call is a whole study (S_c, S_f and curvature for every
#: m on a CIFAR-sized network is minutes of CPU), so a call's CPU budget is large; each forward pass in it
#: has a budget that fits the model (50 × the CPU time per image measured at load × the batch, at least
#: 5 s), so a forward that loops on a real input is stopped in seconds, not after the call's 600 s.
#: The worker runs at niceness 19: on a busy server every page's own work goes first (issue 22, item 2).
APP_WORKER_LIMITS = WorkerLimits(
    cpu_seconds=600,
    memory_bytes=3 * 2**30,
    deadline_seconds=1800.0,
    nice=19,
    forward_multiple=50.0,
    forward_floor_seconds=5.0,
)


def app_cpu_quota() -> float:
    """Share of one CPU all the app's upload workers together may use (a cgroup quota, where the host
    delegates one): the environment variable ``ATLAS_UPLOAD_CPU_QUOTA`` (e.g. ``0.25``), 0 (none) when it
    is unset. A value that is not a number in [0, 64] is ignored (0), never an error at start."""
    raw = os.environ.get("ATLAS_UPLOAD_CPU_QUOTA", "").strip()
    try:
        share = float(raw) if raw else 0.0
    except ValueError:
        return 0.0
    return share if 0.0 < share <= 64.0 else 0.0


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if 0.0 <= value <= 3600.0 else default


def app_yield() -> YieldToPages | None:
    """The app pool's :class:`YieldToPages`: busy upload workers are paused while another session's page runs and
    for ``ATLAS_UPLOAD_YIELD_GRACE_S`` seconds after it (default 3), and run for ``ATLAS_UPLOAD_YIELD_BURST_S``
    (default 0: never) after each 2 s of pause. ``ATLAS_UPLOAD_YIELD=0`` turns the pauses off (None). A value
    that is not a number in [0, 3600] is ignored (the default), never an error at start."""
    if os.environ.get("ATLAS_UPLOAD_YIELD", "").strip() == "0":
        return None
    return YieldToPages(
        grace_s=_env_seconds("ATLAS_UPLOAD_YIELD_GRACE_S", 3.0),
        burst_s=_env_seconds("ATLAS_UPLOAD_YIELD_BURST_S", 0.0),
    )


class UploadInWorkerError(AtlasError):
    """A computation on an uploaded model was asked of the server process (it runs only in a worker)."""


class WorkerNetwork(nn.Module):
    """The ``network`` of an uploaded classifier in the server: no weights, only where the model lives.

    ``forward(x)`` with ``x`` of shape (N, C, H, W) returns the logits (N, L), computed in the worker
    without gradients; with gradients required it raises :class:`UploadInWorkerError`.

    Its one buffer, ``upload_key`` (32 uint8), is the SHA-256 of the file and of its load options, so
    :func:`geometry.study.network_fingerprint` (which hashes the state_dict) tells uploads apart and
    keys their cached results by content.
    """

    def __init__(self, handle: UploadHandle, owner: str, key: bytes) -> None:
        super().__init__()
        self.handle = handle
        self.owner = owner
        self.upload_key: torch.Tensor
        self.register_buffer("upload_key", torch.tensor(list(key), dtype=torch.uint8))

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> WorkerNetwork:
        return self  # never moved: the model's device is the worker's (the CPU); the key stays a CPU tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.cpu()
        if torch.is_grad_enabled() and x.requires_grad:
            raise UploadInWorkerError(
                f"{self.handle.display!r} runs only in its worker process, and this computation asked the server for "
                "its gradient; it is not available for uploads on this view"
            )
        return upload_pool().run(self.owner, self.handle, _forward, x.detach())


def _forward(clf: Classifier, x: torch.Tensor) -> torch.Tensor:  # runs in the worker
    with torch.no_grad():
        return clf.network(x)


def is_uploaded(clf: object) -> bool:
    """Whether ``clf`` is an uploaded classifier's stand-in (its model lives in a worker)."""
    return isinstance(getattr(clf, "network", None), WorkerNetwork)


# ------------------------------------------------------------------ the pool of the server process
_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def upload_pool() -> WorkerPool:
    """The server process's :class:`WorkerPool` (created on first use with :data:`APP_WORKER_LIMITS` and
    :func:`app_cpu_quota`; its workers are stopped when the process exits)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = WorkerPool(APP_WORKER_LIMITS, cpu_quota=app_cpu_quota(), yield_to_pages=app_yield())
            atexit.register(_POOL.close)
        return _POOL


@contextlib.contextmanager
def page_run(owner: str) -> Iterator[None]:
    """Mark a page run of browser session ``owner`` for the upload pool's :class:`YieldToPages` while the block
    runs (the app wraps each script run): other sessions' busy upload workers are paused meanwhile. A no-op
    when no upload pool exists yet or it does not yield."""
    pool = _POOL
    if pool is None or pool.yielding is None or not owner:
        yield
        return
    with pool.yielding.page_run(owner):
        yield


@contextlib.contextmanager
def waiting_on_worker() -> Iterator[None]:
    """While the block runs, this thread waits on an upload's worker indirectly (a page waiting for a job of the
    ``upload`` lane): a page run on it does not count for the pool's :class:`YieldToPages`, so the page never stops
    the worker it waits for. A no-op without a pool that yields."""
    pool = _POOL
    if pool is None or pool.yielding is None:
        yield
        return
    thread = threading.get_ident()
    pool.yielding.waiting(thread, True)
    try:
        yield
    finally:
        pool.yielding.waiting(thread, False)


def set_upload_pool(pool: WorkerPool | None) -> WorkerPool | None:
    """Replace the process's pool (tests: smaller limits); returns the previous one (not closed)."""
    global _POOL
    with _POOL_LOCK:
        old, _POOL = _POOL, pool
        return old


#: Modules the server process imports on its first upload (the pool's CPU-quota helper; the standard
#: library's pieces for a spawned worker, its manager, its shared array and its locks; torch's reducers
#: for tensors sent through shared memory and the results' unpickling). :func:`preload` imports them ahead.
#: Kept complete by tests/test_upload_warmup.py, which registers a real upload after :func:`preload` and
#: lists any module that is still new.
SERVER_MODULES = (
    "geometry.runtime.cpuquota",
    "concurrent.futures.process",
    "multiprocessing.heap",
    "multiprocessing.managers",
    "multiprocessing.pool",
    "multiprocessing.popen_fork",
    "multiprocessing.popen_spawn_posix",
    "multiprocessing.shared_memory",
    "multiprocessing.sharedctypes",
    "multiprocessing.synchronize",
    "torch._subclasses.schema_check_mode",
    "torch.multiprocessing.reductions",
    "torch.utils.serialization",
    "torch.utils.serialization.config",
)


def preload(names: Iterable[str] = SERVER_MODULES) -> list[str]:
    """Import ``names`` (default :data:`SERVER_MODULES`) in this process now (a no-op for those already imported);
    returns the names that could not be imported (a newer library may have moved one: that only costs the import
    later).

    Why: under ``streamlit run`` (unless ``server.fileWatcherType`` is ``none``) every browser session's
    source watcher re-reads the path of **every** module in ``sys.modules`` (``os.path.realpath`` of each:
    0.17 s of CPU for the app's 2260 modules, 0.26 s for 3331 once torchvision is in, measured on this
    project's machine) at the end of its next run whenever ``sys.modules`` has changed, on the server's
    event loop (Streamlit's ``LocalSourcesWatcher.update_watched_modules``). A module first imported by an
    upload therefore costs every open session such a pass in the middle of its clicks; imported once at
    the server's start it costs nothing later. Never raises."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


# ------------------------------------------------------------------ whole calls in the worker
@dataclasses.dataclass(frozen=True)
class _UploadRef:
    """Stands for an uploaded classifier among a call's arguments; the worker puts the model there."""

    handle: UploadHandle


def _swap(value: Any, found: list[Classifier]) -> Any:
    """``value`` with every uploaded classifier (at the top, in a dict's values, a list or a tuple)
    replaced by an :class:`_UploadRef`; the classifiers are appended to ``found``."""
    if is_uploaded(value):
        found.append(value)
        return _UploadRef(value.network.handle)
    if isinstance(value, dict):
        return {k: _swap(v, found) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_swap(v, found) for v in value)
    return value


def _unswap(value: Any) -> Any:  # runs in the worker
    if isinstance(value, _UploadRef):
        return loaded_upload(value.handle)
    if isinstance(value, dict):
        return {k: _unswap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_unswap(v) for v in value)
    return value


def _apply(_clf: Classifier, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:  # runs in the worker
    return fn(*_unswap(args), **_unswap(kwargs))


def involves_upload(*args: Any, **kwargs: Any) -> bool:
    """Whether an uploaded classifier is among the arguments (as :func:`in_worker` looks for them)."""
    found: list[Classifier] = []
    _swap((args, kwargs), found)
    return bool(found)


def in_worker(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, in the owning session's worker when an uploaded classifier is among the
    arguments, else here.

    Parameters
    ----------
    fn : a module-level function (sent by reference), e.g. :func:`geometry.study.curvature_study`
    args, kwargs : its arguments; uploaded classifiers may appear at the top level, as dict values
        or in lists / tuples. A ``progress`` callback stays in this process: for a call sent to a
        worker, ``fn`` gets :func:`~geometry.runtime.workers.worker_progress` and every fraction it
        reports is forwarded, in order, to the callback (called from a thread of this process).

    Returns
    -------
    ``fn``'s result (a copy, for a call run in a worker).

    Raises
    ------
    WorkerLimitError
        the upload broke its worker's CPU-time, memory or deadline limit (the message names it).
    AtlasError, and whatever ``fn`` raises, as raised.
    """
    found: list[Classifier] = []
    swapped_args, swapped_kwargs = _swap(args, found), _swap(kwargs, found)
    if not found:
        return fn(*args, **kwargs)
    progress = None
    if "progress" in swapped_kwargs:  # a callback into this process cannot cross: the worker reports into a queue
        progress = kwargs["progress"] if callable(kwargs["progress"]) else None
        swapped_kwargs["progress"] = worker_progress
    first = found[0].network
    assert isinstance(first, WorkerNetwork)
    what = describe_call(fn, args, {k: v for k, v in kwargs.items() if k != "progress"})
    return upload_pool().run(
        first.owner, first.handle, _apply, fn, swapped_args, swapped_kwargs, _what=what, _progress=progress
    )


# ------------------------------------------------------------------ registering an upload
_FOLDER: Path | None = None
_OWNERS: dict[str, str] = {}  # folder name → the session that owns it (sessions' folders in _FOLDER)


def _upload_folder() -> Path:
    global _FOLDER
    with _POOL_LOCK:
        if _FOLDER is None:
            _FOLDER = Path(tempfile.mkdtemp(prefix="atlas-uploads-"))
            atexit.register(shutil.rmtree, _FOLDER, True)
        return _FOLDER


def _owner_folder(owner: str) -> Path:
    """The folder of ``owner``'s uploads (created on first use; its name is a hash of the session's id)."""
    name = hashlib.sha256(owner.encode()).hexdigest()[:16]
    with _POOL_LOCK:
        _OWNERS[name] = owner
    return _upload_folder() / name


def discard(clf: Classifier) -> bool:
    """Remove an uploaded classifier's file (its session replaced it); returns whether it was an upload.

    The worker may keep the model it already loaded until it is restarted; the stand-in must not be
    used afterwards (a restarted worker could not load it again)."""
    if not is_uploaded(clf):
        return False
    network = clf.network
    assert isinstance(network, WorkerNetwork)
    path = Path(network.handle.path)
    if _FOLDER is not None and _FOLDER in path.parents:  # never outside the uploads' folder
        shutil.rmtree(path.parent, ignore_errors=True)
    return True


def release(owner: str) -> None:
    """A session ended: stop its worker (its private folder is removed) and remove its uploaded files."""
    if _POOL is not None:
        _POOL.close(owner)
    name = hashlib.sha256(owner.encode()).hexdigest()[:16]
    with _POOL_LOCK:
        _OWNERS.pop(name, None)
    if _FOLDER is not None:
        shutil.rmtree(_FOLDER / name, ignore_errors=True)


def reap(alive: Callable[[str], bool]) -> list[str]:
    """:func:`release` every session that holds a worker or uploaded files and for which ``alive(owner)``
    is false (e.g. ``streamlit.runtime.Runtime.instance().is_active_session``); returns those released."""
    with _POOL_LOCK:
        owners = set(_OWNERS.values())
    if _POOL is not None:
        owners.update(_POOL.owners())
    ended = sorted(o for o in owners if not alive(o))
    for owner in ended:
        release(owner)
    return ended


def _describe(clf: Classifier) -> dict[str, Any]:  # runs in the worker
    return {
        "input_shape": tuple(clf.input_shape),
        "class_names": tuple(clf.class_names),
        "name": clf.name,
        "bounds": tuple(clf.bounds),
        "mean": clf.mean,
        "std": clf.std,
        "test_accuracy": clf.test_accuracy,
        "forward_cpu_seconds_per_image": clf.info.get("forward_cpu_seconds_per_image"),
        "info": {k: v for k, v in clf.info.items() if isinstance(v, (str, int, float, bool, list, tuple, type(None)))},
    }


def register(
    data: bytes,
    *,
    owner: str,
    display: str,
    input_shape: Sequence[int],
    options: Mapping[str, Any] | None = None,
) -> Classifier:
    """Hand an uploaded model file to ``owner``'s worker and return its stand-in classifier.

    Parameters
    ----------
    data : the model file's bytes
    owner : the browser session's id (its worker loads the model and runs every call on it)
    display : the file's name, for messages
    input_shape : (C, H, W)
    options : further keyword arguments of :func:`geometry.loading.load_classifier` (``format``,
        ``architecture``, ``mean``, ``std``, ``class_names``, ``name``, ``max_bytes``...)

    Returns
    -------
    Classifier
        The facts of the loaded model (shape, classes, normalisation, ``info``) with a
        :class:`WorkerNetwork` as its network; ``info["isolation"]`` names the worker's limits.

    Raises
    ------
    ModelLoadError and the other errors of :func:`geometry.loading.load_classifier`, raised in the
    worker (the screen, the load and the probe run there); WorkerLimitError when the load or the
    probe broke a limit.
    """
    opts = {**dict(options or {}), "input_shape": [int(s) for s in input_shape]}
    digest = hashlib.sha256(data)
    digest.update(repr(sorted(opts.items())).encode())
    key = digest.digest()
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(display).name)[-80:].lstrip(".") or "model"
    path = _owner_folder(owner) / key.hex()[:24] / safe  # the file's own name: the loader's messages name it
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    handle = UploadHandle(str(path), opts, display=display)
    pool = upload_pool()
    pool.release_hold(owner, handle)  # loading the file again retries a model held back after a budget broke
    facts = pool.run(owner, handle, _describe)
    info = dict(facts["info"])
    per_image = facts.get("forward_cpu_seconds_per_image")
    budget = ""
    if per_image is not None and pool.limits.forward_multiple > 0:
        budget = (
            f"; its forward pass took {per_image * 1e3:.3g} ms of CPU per image on the probe's batch, so a forward "
            f"on one image may use {pool.limits.forward_budget(1, per_image):.3g} s of CPU"
        )
    info["isolation"] = f"worker process: {pool.limits.describe()}{budget}; {pool.quota.describe()}"
    return Classifier(
        network=WorkerNetwork(handle, owner, key),
        model=nn.Identity(),
        input_shape=facts["input_shape"],
        class_names=facts["class_names"],
        name=facts["name"],
        bounds=facts["bounds"],
        mean=facts["mean"],
        std=facts["std"],
        test_accuracy=facts["test_accuracy"],
        info=info,
    )
