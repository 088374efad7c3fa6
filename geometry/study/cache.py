"""The study layer's caches: subspaces and whole study results, keyed by what defines them.

A key is (kind, :func:`~geometry.study.points.network_fingerprint`, data fingerprints, settings
key) — never a display name — so the same weights under two names share every result, and a
changed network, point or setting never reuses a stale one.

* :func:`cached_subspace` — S_c / S_f on disk (``cache_dir("subspaces")``), the slow step.
* :func:`cached_result` — a whole study result: in memory (a bounded LRU shared by the app's
  sessions and pages) and on disk (``cache_dir("studies")``), so a restart or another page reuses
  it. Results are frozen dataclasses of tensors, arrays, numbers, strings, lists and dicts; they
  are written as safetensors (tensors) plus a JSON description, with the SHA-256 and format
  version of :func:`geometry.cache.save_tensors`; a damaged or outdated file is deleted and
  recomputed, never returned. Decoding rebuilds only dataclasses defined in ``geometry`` (no
  pickle, no other import).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..cache import CorruptFileError, cache_dir, cache_key, discard_damaged, load_tensors, save_tensors
from ..classifier import Classifier
from ..curvature import (
    LOCAL,
    PointExecutor,
    Subspace,
    curved_subspace,
    flat_subspace,
    load_subspace,
    save_subspace,
)
from ..deepfool import DeepFoolResult, deepfool
from ..errors import InvalidInputError
from ..hessian import CurvatureEstimator
from ..progress import ProgressFn
from .points import network_fingerprint

__all__ = ["cached_subspace", "cached_result", "clear_memory", "encode_result", "decode_result", "RESULT_FORMAT"]

#: Version of the on-disk study-result format (part of every file). 2: Subspace says what its spectrum is.
RESULT_FORMAT = 2
#: Results kept in memory (least recently used dropped first). Shared by every page and session: one page's
#: view (e.g. Robust training: a point study per network and seed) needs several, and at 32 the pages evicted
#: each other's views, so going back to a seed already seen recomputed it (issue 14, benchmarks/interaction.py).
MEMORY_ENTRIES = 128

_MEMORY: OrderedDict[str, Any] = OrderedDict()
_LOCK = threading.Lock()


def cached_subspace(
    kind: str,
    clf: Classifier,
    xs: torch.Tensor,
    m: int,
    *,
    data_key: str,
    estimator: CurvatureEstimator | None = None,
    random_state: int = 0,
    progress: ProgressFn | None = None,
    deepfool_result: DeepFoolResult | None = None,
    executor: PointExecutor | None = None,
    rx: str = "unconstrained",
) -> Subspace:
    """S_c (``kind="curved"``) or S_f (``kind="flat"``) of ``clf`` on ``xs``, read from or written to disk.

    Parameters
    ----------
    kind : "curved" | "flat"
    xs : (n, C, H, W) — the points (pixel space); ``data_key`` identifies them
        (:func:`~geometry.study.points.data_fingerprint`, or ``StudyPoints.estimate_key``)
    m : subspace dimension
    estimator : CurvatureEstimator, optional — as :func:`geometry.curvature.curved_subspace`
        (default: finite differences at the authors' h, boundary point, tangent; ignored for
        ``kind="flat"``); resolved on ``clf`` for the key
    random_state : int — eigsh's start vector (ignored for ``kind="flat"``)
    deepfool_result : DeepFoolResult on ``xs``, optional — reuse a run
    executor : PointExecutor, optional — compute S_c with the points split over workers; the leader
        alone reads and writes the file and the others receive its subspace; an executor whose
        ``cache`` is False neither reads nor writes it
    rx : "unconstrained" (default, CVPR 2016 Alg. 2) or "box" — the DeepFool protocol of the boundary points
        (:data:`~geometry.study.settings.RX_PROTOCOLS`); part of the key (a box-constrained subspace never
        reuses an unconstrained file: ``deepfool_result`` must have been computed with the same protocol)

    Returns
    -------
    Subspace — as :func:`~geometry.curvature.curved_subspace` / :func:`~geometry.curvature.flat_subspace`
    compute it. The key is (kind, network fingerprint, data_key, n, m, the estimator's settings, rx).
    """
    if kind not in ("curved", "flat"):
        raise InvalidInputError(f"kind must be 'curved' or 'flat', got {kind!r}")
    if rx not in ("unconstrained", "box"):
        raise InvalidInputError(f"rx must be 'unconstrained' or 'box', got {rx!r}")
    est = (estimator or CurvatureEstimator()).resolve(clf)
    desc: dict[str, Any] = {
        "kind": kind,
        "network": network_fingerprint(clf),
        "data": data_key,
        "n": len(xs),
        "m": int(m),
        "format": 4,
    }
    if kind == "curved":
        desc.update(**est.key(), seed=int(random_state))
    if rx != "unconstrained":  # unconstrained keys stay those written before the protocol existed
        desc["rx"] = rx
    path = cache_dir("subspaces") / f"{kind}-{cache_key(desc)}.safetensors"
    use_disk = executor is None or executor.cache
    leader = use_disk and (executor is None or executor.is_leader)
    found: Subspace | None = None
    if leader and path.exists():
        try:
            found = load_subspace(path)
        except (CorruptFileError, InvalidInputError) as exc:  # damaged: recomputed, never trusted
            discard_damaged(path, str(exc))
    if executor is not None and use_disk:
        found = executor.broadcast(found)
    if found is not None:
        if progress is not None:
            progress(1.0, f"S_{'c' if kind == 'curved' else 'f'} read from the disk cache")
        return found
    if kind == "curved":
        if deepfool_result is None and rx == "box":
            deepfool_result = (executor or LOCAL).deepfool(clf, xs, clip=True)
        s = curved_subspace(
            clf,
            xs,
            m,
            estimator=est,
            random_state=random_state,
            progress=progress,
            deepfool_result=deepfool_result,
            executor=executor,
        )
    else:
        if deepfool_result is None and rx == "box":
            deepfool_result = deepfool(clf, xs, clip=True)
        s = flat_subspace(clf, xs, m, deepfool_result=deepfool_result)
    if leader:
        with contextlib.suppress(OSError):  # an unwritable cache only costs time
            save_subspace(path, s)
    return s


# ------------------------------------------------------------------------------ results
def encode_result(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able description of ``obj``; its tensors and arrays go into ``tensors`` (by reference name)."""
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float": repr(obj)}
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().cpu().clone().contiguous()  # own storage: safetensors refuses shared memory
        return {"__tensor": name}
    if isinstance(obj, np.ndarray):
        name = f"t{len(tensors)}"
        tensors[name] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__array": name}
    if isinstance(obj, np.generic):
        return encode_result(obj.item(), tensors)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        return {
            "__dataclass": f"{cls.__module__}:{cls.__qualname__}",
            "fields": {f.name: encode_result(getattr(obj, f.name), tensors) for f in dataclasses.fields(obj)},
        }
    if isinstance(obj, tuple):
        return {"__tuple": [encode_result(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [encode_result(v, tensors) for v in obj]
    if isinstance(obj, dict):
        return {"__dict": [[encode_result(k, tensors), encode_result(v, tensors)] for k, v in obj.items()]}
    raise InvalidInputError(f"cannot store a {type(obj).__name__} in a study result")


def decode_result(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_result`. Rebuilds only dataclasses of the ``geometry`` package."""
    if isinstance(obj, list):
        return [decode_result(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__float" in obj:
        return float(obj["__float"])
    if "__tensor" in obj:
        return tensors[obj["__tensor"]]
    if "__array" in obj:
        return tensors[obj["__array"]].numpy()
    if "__tuple" in obj:
        return tuple(decode_result(v, tensors) for v in obj["__tuple"])
    if "__dict" in obj:
        return {_hashable(decode_result(k, tensors)): decode_result(v, tensors) for k, v in obj["__dict"]}
    if "__dataclass" in obj:
        module, _, qualname = str(obj["__dataclass"]).partition(":")
        if not (module == "geometry" or module.startswith("geometry.")) or "." in qualname:
            raise CorruptFileError(f"a study result names the class {obj['__dataclass']!r}, outside geometry")
        cls = getattr(importlib.import_module(module), qualname, None)
        if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):  # a class, not an instance
            raise CorruptFileError(f"a study result names {obj['__dataclass']!r}, which is not a result class")
        names = {f.name for f in dataclasses.fields(cls)}
        fields = obj.get("fields", {})
        if set(fields) != names:
            raise CorruptFileError(f"a stored {qualname} has fields {sorted(fields)}, expected {sorted(names)}")
        out = cls.__new__(cls)
        for k, v in fields.items():
            object.__setattr__(out, k, decode_result(v, tensors))
        return out
    raise CorruptFileError(f"unexpected object in a study result: {sorted(obj)[:4]}")


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def clear_memory() -> None:
    """Forget the in-memory results (the disk cache stays)."""
    with _LOCK:
        _MEMORY.clear()


def cached_result(kind: str, key: dict, compute: Callable[[], Any], *, disk: bool = True) -> Any:
    """The result of ``compute()`` for ``key``, from memory, else from disk, else computed and stored.

    Parameters
    ----------
    kind : short name of the study (file prefix), e.g. ``"curvature"``
    key : JSON-able dict of everything that defines the result (fingerprints and settings key)
    compute : called on a miss; returns a frozen result dataclass
    disk : also keep it on disk (default True)

    Returns
    -------
    The result. Treat it as read-only: the same object is returned to every caller.
    """
    digest = f"{kind}-{cache_key({'kind': kind, 'format': RESULT_FORMAT, **key}, length=24)}"
    with _LOCK:
        if digest in _MEMORY:
            _MEMORY.move_to_end(digest)
            return _MEMORY[digest]
    path = cache_dir("studies") / f"{digest}.safetensors"
    result = None
    if disk:
        loaded = load_tensors(path, version=RESULT_FORMAT, finite=False)
        if loaded is not None:
            tensors, meta = loaded
            try:
                result = decode_result(json.loads(meta["result"]), tensors)
            except (KeyError, ValueError, CorruptFileError) as exc:
                discard_damaged(path, str(exc))
                result = None
    if result is None:
        result = compute()
        if disk:
            to_save: dict[str, torch.Tensor] = {}
            try:
                blob = json.dumps(encode_result(result, to_save))
                save_tensors(path, to_save, {"result": blob, "kind": kind}, version=RESULT_FORMAT)
            except (OSError, InvalidInputError):
                pass  # an unwritable cache (or an unstorable result) only costs time
    with _LOCK:
        _MEMORY[digest] = result
        _MEMORY.move_to_end(digest)
        while len(_MEMORY) > MEMORY_ENTRIES:
            _MEMORY.popitem(last=False)
    return result
