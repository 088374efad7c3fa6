"""Sharded studies with ``torch.distributed``: an executor whose workers are the ranks of a process group.

Issue 15, item 2; issue 19, item 4. The studies whose cost grows with the number of points are either
a *sum* over points (the average boundary Hessian of S_c) or a *map* over points followed by a
reduction (DeepFool over a dataset, the curvature ``K_S(x)`` of held-out points). Both split over
processes ("ranks") without changing the geometry. The protocol is written once, in the study and
core functions (:func:`geometry.study.curvature_study`, :func:`geometry.curvature.curved_subspace`,
:func:`geometry.curvature.average_curvature`); they take a :class:`~geometry.curvature.PointExecutor`
argument, and :class:`ShardContext` is that executor for a process group:

* **split** — rank r handles the contiguous share :func:`shard_bounds` of the points;
* **sums** — all-reduce (SUM) of each rank's weighted share ``(n_r/n) · H̄_r v`` of the average
  ``H̄ v = (1/n) Σ_i P_i H_{z_i} P_i v`` (data-parallel, like the Hessian-spectrum tools); every rank
  runs the same Lanczos on the same reduced products, so every rank gets the same S_c;
* **maps** — :meth:`ShardContext.map_shards`: each rank's part, resumable from the shard cache,
  all-gathered in rank order (= the original order of the points); :func:`sharded_deepfool`;
  for fooling rates the counts of fooled points are all-reduced instead
  (:func:`sharded_fooling_rate_vs_m`, exact).

Results equal the single-process ones up to the order of floating-point summation (with one rank
they are bitwise the single-process results).

Launch: ``torchrun --nproc_per_node K -m geometry.cli study …`` (README "Scaling out").
:func:`init_distributed` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``); without it (or with ``WORLD_SIZE=1``) everything runs in one
process with no process group and no communication. Backend: ``gloo`` on CPU; when PyTorch sees
a GPU the group is created as ``"cpu:gloo,cuda:nccl"``, so each collective goes through the
backend of its tensors (NCCL for a classifier on CUDA — not tested here: this machine has no GPU).

Resume: with ``cache=True`` (a :class:`ShardContext` field, or :func:`sharded_deepfool`'s argument)
each rank writes its finished part (a shard's DeepFool, a shard's curvatures) to the on-disk cache
as a verified safetensors file (:func:`geometry.cache.save_tensors`, SHA-256) under a key of (what
defines the part, part, shard index, world size); a restarted run reads the finished parts back
("shard i/K: cached") and computes only the missing ones. S_c is cached as a whole by rank 0
(:func:`geometry.study.cached_subspace`) and broadcast on a restart. Each rank caches on its own
machine: on several machines a restart resumes when every rank keeps its index.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..cache import cache_dir, cache_key, load_tensors, save_tensors, tensors_digest
from ..classifier import Classifier, check_images
from ..deepfool import DeepFoolResult, deepfool
from ..errors import AtlasError, InvalidInputError

if TYPE_CHECKING:
    from ..universal import FoolingCurve

__all__ = [
    "DistributedError",
    "ShardContext",
    "env_world",
    "init_distributed",
    "shutdown",
    "shard",
    "shard_bounds",
    "cached_shard",
    "sharded_deepfool",
    "sharded_fooling_rate_vs_m",
    "principal_cosines",
]

LOG = logging.getLogger("geometry.runtime.distributed")
#: Version of the shard files (part of every file; another version is a cache miss).
SHARD_FORMAT = 1


class DistributedError(AtlasError):
    """A torchrun environment that does not make sense (bad RANK / WORLD_SIZE), or a process group
    that cannot be created."""


# ---------------------------------------------------------------------------------------- context
def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"${name} must be an integer (set by torchrun), got {text!r}") from None


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``.

    ``(0, 1, 0)`` when they are absent (a plain single-process run).

    Raises
    ------
    DistributedError
        not integers, ``WORLD_SIZE < 1`` or ``RANK`` outside ``[0, WORLD_SIZE)``.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world or local < 0:
        raise DistributedError(
            f"torchrun environment out of range: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}"
        )
    return rank, world, local


@dataclass(frozen=True)
class ShardContext:
    """Where this process stands among the ranks of a sharded run: the ``torch.distributed``
    :class:`~geometry.curvature.PointExecutor` of the study functions.

    Attributes
    ----------
    rank : int — this process, in ``[0, world_size)``
    world_size : int ≥ 1 — number of processes; 1 = single process, no communication
    local_rank : int — index on this machine (selects the GPU with NCCL)
    backend : str or None — the process group's backend (``"gloo"``, ``"cpu:gloo,cuda:nccl"``); None
        without a process group
    owns_group : bool — :func:`init_distributed` created the group (so :func:`shutdown` destroys it)
    log : callable(str) or None — where "shard i/K: cached" and similar lines go (default: the
        ``geometry.runtime.distributed`` logger)
    cache : bool — keep each rank's finished parts (:meth:`map_shards`, :meth:`deepfool`) on disk
        and read them back on a restart
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False
    log: Callable[[str], None] | None = field(default=None, compare=False)
    cache: bool = False

    @property
    def distributed(self) -> bool:
        """Whether collectives go through a process group (world size > 1)."""
        return self.world_size > 1

    @property
    def is_leader(self) -> bool:
        """Rank 0: the process that writes results."""
        return self.rank == 0

    def bounds(self, n: int) -> tuple[int, int]:
        """This rank's ``[lo, hi)`` of ``n`` points (:func:`shard_bounds`)."""
        return shard_bounds(n, self.rank, self.world_size)

    def say(self, message: str) -> None:
        """Log one line (``log`` or the module logger), prefixed by the rank when distributed."""
        text = f"[rank {self.rank}] {message}" if self.distributed else message
        if self.log is not None:
            self.log(text)
        else:
            LOG.info(text)

    # -------------------------------------------------------------- collectives (no-ops for one rank)
    def _device(self, t: torch.Tensor) -> torch.device:
        """The device a collective on ``t`` runs on: ``t``'s own (CPU → gloo, CUDA → NCCL)."""
        if t.device.type == "cuda" and not (self.backend and "nccl" in self.backend):
            return torch.device("cpu")
        return t.device

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of ``t`` over all ranks (a new tensor, on ``t``'s device)."""
        if not self.distributed:
            return t
        import torch.distributed as dist

        buf = t.detach().to(self._device(t), copy=True).contiguous()
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        return buf.to(t.device)

    def all_gather(self, obj: Any) -> list:
        """Every rank's ``obj`` (picklable; tensors go as CPU tensors), in rank order."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    # -------------------------------------------------------------- the executor's maps
    def map_shards(
        self,
        n: int,
        part: str,
        key: Callable[[], dict[str, Any]],
        compute: Callable[[int, int], dict[str, torch.Tensor]],
    ) -> list[dict[str, torch.Tensor]]:
        """``compute(lo, hi)`` on this rank's share of ``n`` points, every rank's result in rank order.

        With ``cache`` the part is read from / written to the shard cache under ``key()`` (what
        defines it), ``part``, the rank and the world size (:func:`cached_shard`). Collective.
        """
        lo, hi = self.bounds(n)
        mine = cached_shard(key() if self.cache else None, part, self, lambda: compute(lo, hi))
        return self.all_gather(mine)

    def deepfool(
        self, clf: Classifier, xs: torch.Tensor, *, candidates: int = 10, clip: bool = False
    ) -> DeepFoolResult:
        """DeepFool on all of ``xs`` with the points split over the ranks (:func:`sharded_deepfool`,
        cached per shard with ``cache``; ``clip``: iterates clamped to the pixel box). Collective."""
        return sharded_deepfool(clf, xs, self, cache=self.cache, candidates=candidates, clip=clip)


def init_distributed(
    *,
    backend: str | None = None,
    init_method: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    local_rank: int | None = None,
    timeout_s: float = 1800.0,
    log: Callable[[str], None] | None = None,
) -> ShardContext:
    """Join (or create) the process group of a sharded run and return this rank's :class:`ShardContext`.

    Under torchrun every argument may be left out: rank and world size come from the environment
    (:func:`env_world`) and the rendezvous from ``MASTER_ADDR``/``MASTER_PORT`` (``env://``).
    With world size 1 no process group is created (nothing to communicate).

    Parameters
    ----------
    backend : str, optional — default ``"gloo"``, or ``"cpu:gloo,cuda:nccl"`` when PyTorch sees a
        GPU (each collective then uses the backend of its tensors' device)
    init_method : str, optional — e.g. ``"tcp://127.0.0.1:29500"`` or ``"file:///tmp/rdzv"``
        (default ``env://``)
    rank, world_size, local_rank : int, optional — override the environment (tests spawn processes)
    timeout_s : float — collective timeout, seconds
    log : callable(str), optional — see :class:`ShardContext`

    Raises
    ------
    DistributedError
        bad environment, or the group could not be created (e.g. unreachable rendezvous).
    """
    import torch.distributed as dist

    env_rank, env_world_size, env_local = env_world()
    rank = env_rank if rank is None else int(rank)
    world = env_world_size if world_size is None else int(world_size)
    local = (env_local if local_rank is None else int(local_rank)) if world > 1 else 0
    if world < 1 or not 0 <= rank < world:
        raise DistributedError(f"rank must lie in [0, world_size), got rank={rank}, world_size={world}")
    if world == 1:
        return ShardContext(log=log)
    if dist.is_initialized():
        if dist.get_world_size() != world or dist.get_rank() != rank:
            raise DistributedError(
                f"a process group of world size {dist.get_world_size()} (rank {dist.get_rank()}) already "
                f"exists, expected world size {world} (rank {rank})"
            )
        return ShardContext(rank, world, local, str(dist.get_backend()), owns_group=False, log=log)
    if backend is None:
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if "nccl" in backend and torch.cuda.is_available():
        torch.cuda.set_device(local % max(1, torch.cuda.device_count()))
    try:
        dist.init_process_group(
            backend=backend,
            init_method=init_method or "env://",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=float(timeout_s)),
        )
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(
            f"could not join the process group (rank {rank} of {world}, backend {backend}): {exc}"
        ) from exc
    return ShardContext(rank, world, local, backend, owns_group=True, log=log)


def shutdown(ctx: ShardContext) -> None:
    """Destroy the process group if :func:`init_distributed` created it (after a final barrier)."""
    if ctx.owns_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _ctx(ctx: ShardContext | None) -> ShardContext:
    return ShardContext() if ctx is None else ctx


# ---------------------------------------------------------------------------------------- sharding
def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """``[lo, hi)`` of rank ``rank``'s contiguous share of ``n`` items split over ``world`` ranks.

    The first ``n mod world`` ranks get ``⌈n/world⌉`` items, the others ``⌊n/world⌋`` (a rank may
    get none when ``n < world``). Deterministic; the shards of ranks ``0 … world−1`` concatenate
    to ``range(n)`` in order.

    Raises
    ------
    InvalidInputError
        ``n < 0``, ``world < 1`` or ``rank`` outside ``[0, world)``.
    """
    n, rank, world = int(n), int(rank), int(world)
    if n < 0 or world < 1 or not 0 <= rank < world:
        raise InvalidInputError(f"need n ≥ 0, world ≥ 1 and 0 ≤ rank < world, got n={n}, rank={rank}, world={world}")
    q, r = divmod(n, world)
    lo = rank * q + min(rank, r)
    return lo, lo + q + (1 if rank < r else 0)


def shard(indices: Any, rank: int, world: int) -> Any:
    """Rank ``rank``'s contiguous share of ``indices`` (a sequence, array or tensor; same type back).

    See :func:`shard_bounds` for the split. Example: ``shard(range(10), 1, 3) == range(4, 7)``.
    """
    lo, hi = shard_bounds(len(indices), rank, world)
    return indices[lo:hi]


# ---------------------------------------------------------------------------------------- resume
def _shard_path(key: dict, part: str, ctx: ShardContext) -> Path:
    digest = cache_key({"part": part, "shard": ctx.rank, "world": ctx.world_size, **key}, length=24)
    return cache_dir("shards") / f"{part}-{ctx.rank}of{ctx.world_size}-{digest}.safetensors"


def cached_shard(
    key: dict | None, part: str, ctx: ShardContext, compute: Callable[[], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """This rank's part ``part`` of a study: read from the shard cache, else ``compute()`` and stored.

    Parameters
    ----------
    key : JSON-able dict that defines the study (fingerprints, settings), or None for no caching
    part : short name of the part (file prefix), e.g. ``"deepfool"``
    ctx : ShardContext — the file is keyed by (key, part, rank, world size)
    compute : returns name → tensor (CPU tensors; empty ones allowed)

    Returns
    -------
    name → tensor. A damaged or outdated file is deleted and recomputed, never returned
    (:func:`geometry.cache.load_tensors`). Logs "shard i/K: cached (part)" on a hit.
    """
    if key is None:
        return compute()
    path = _shard_path(key, part, ctx)
    loaded = load_tensors(path, version=SHARD_FORMAT, finite=False)
    if loaded is not None:
        ctx.say(f"shard {ctx.rank + 1}/{ctx.world_size}: cached ({part})")
        return loaded[0]
    tensors = compute()
    try:
        save_tensors(path, tensors, {"part": part}, version=SHARD_FORMAT)
    except (OSError, InvalidInputError) as exc:  # an unwritable cache only costs a restart's time
        ctx.say(f"shard {ctx.rank + 1}/{ctx.world_size}: not cached ({exc})")
    else:
        ctx.say(f"shard {ctx.rank + 1}/{ctx.world_size}: computed ({part})")
    return tensors


def _fingerprints(clf: Classifier, xs: torch.Tensor) -> dict[str, str]:
    """SHA-256 digests (24 hex digits) of the network's weights, input shape and bounds, and of the points."""
    state = {f"w{i}": t for i, t in enumerate(clf.network.state_dict().values()) if isinstance(t, torch.Tensor)}
    meta = {"input_shape": repr(tuple(clf.input_shape)), "bounds": repr(tuple(float(b) for b in clf.bounds))}
    return {"network": tensors_digest(state, meta)[:24], "data": tensors_digest({"xs": xs})[:24]}


# ---------------------------------------------------------------------------------------- DeepFool
_DF_FIELDS = ("r", "x_adv", "label", "adv_label", "n_iter", "converged", "norms")


def _slice_deepfool(df: DeepFoolResult, lo: int, hi: int) -> DeepFoolResult:
    return replace(df, **{k: getattr(df, k)[lo:hi] for k in _DF_FIELDS}, iterates=None, steps=None)


def sharded_deepfool(
    clf: Classifier,
    xs: torch.Tensor,
    ctx: ShardContext | None = None,
    *,
    cache: bool = False,
    norm: float = 2,
    overshoot: float = 0.02,
    max_iter: int = 50,
    candidates: int = 10,
    batch_size: int = 256,
    clip: bool = False,
) -> DeepFoolResult:
    """DeepFool over a dataset, its points split over the ranks; every rank gets the whole result.

    Each rank runs :func:`geometry.deepfool.deepfool` on its contiguous shard of ``xs``
    (:func:`shard_bounds`); the per-point results are all-gathered and concatenated in rank order,
    i.e. in the order of ``xs``. DeepFool treats every point on its own (a finished point leaves
    the batch), so the result is the single-process one up to floating-point rounding.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) — pixel-space points, the same on every rank
    ctx : ShardContext, optional — default: one process
    cache : bool — keep each finished shard on disk and read it back on a restart
    norm, overshoot, max_iter, candidates, batch_size, clip : as :func:`geometry.deepfool.deepfool`

    Returns
    -------
    DeepFoolResult — as :func:`~geometry.deepfool.deepfool` on all of ``xs``, without iterates;
    ``n_forward`` / ``n_backward`` are summed over the ranks.

    Raises
    ------
    InvalidInputError
        as :func:`~geometry.deepfool.deepfool`.

    Source: CVPR 2016 Algorithm 2; sharding: issue 15.
    """
    ctx = _ctx(ctx)
    xs = check_images(xs, clf.input_shape, name="xs")
    kw = dict(
        norm=norm, overshoot=overshoot, max_iter=max_iter, candidates=candidates, batch_size=batch_size, clip=clip
    )
    lo, hi = ctx.bounds(len(xs))

    def compute() -> dict[str, torch.Tensor]:
        if hi > lo:
            df = deepfool(clf, xs[lo:hi], **kw)  # type: ignore[arg-type]
        else:  # an empty shard (fewer points than ranks): settings still checked, nothing to run
            df = deepfool(clf, xs[:1], **{**kw, "max_iter": 0})  # type: ignore[arg-type]
            df = replace(_slice_deepfool(df, 0, 0), n_forward=0, n_backward=0)
        out = {k: getattr(df, k).detach().cpu().contiguous() for k in _DF_FIELDS}
        out["counts"] = torch.tensor([df.n_forward, df.n_backward], dtype=torch.long)
        out["settings"] = torch.tensor([df.norm, df.overshoot], dtype=torch.float64)
        return out

    key = None
    if cache:
        key = {"study": "deepfool", **_fingerprints(clf, xs), **{k: repr(v) for k, v in kw.items()}}
    part = cached_shard(key, "deepfool", ctx, compute)
    parts = ctx.all_gather(part)
    cat = {k: torch.cat([p[k] for p in parts]) for k in _DF_FIELDS}
    counts = sum(p["counts"] for p in parts)
    settings = parts[0]["settings"]
    return DeepFoolResult(
        r=cat["r"],
        x_adv=cat["x_adv"],
        label=cat["label"],
        adv_label=cat["adv_label"],
        n_iter=cat["n_iter"],
        converged=cat["converged"],
        norms=cat["norms"],
        norm=float(settings[0]),
        overshoot=float(settings[1]),
        n_forward=int(counts[0]),
        n_backward=int(counts[1]),
    )


# ---------------------------------------------------------------------------------------- fooling rates
def sharded_fooling_rate_vs_m(
    clf: Classifier,
    xs: torch.Tensor,
    bases: Any,
    m_values: Sequence[int],
    ctx: ShardContext | None = None,
    *,
    xi: float,
    n_samples: int = 10,
    random_state: int = 0,
    batch_size: int = 1024,
) -> FoolingCurve:
    """Fooling rate versus m (ICLR 2018 Fig. 7b) on points split over the ranks.

    Each rank runs :func:`geometry.universal.fooling_rate_vs_m` on its contiguous shard (the random
    vectors come from ``random_state``, so every rank draws the same ones); each rank's rates are
    turned back into counts of fooled points, the counts are all-reduced (SUM) and divided by the
    total number of points — the single-process rates exactly (counts are integers), and then the
    same mean / std / best over the samples.

    Parameters
    ----------
    as :func:`~geometry.universal.fooling_rate_vs_m` (``random_state`` an int); ctx : ShardContext, optional

    Returns
    -------
    FoolingCurve — equal to the single-process one.

    Raises
    ------
    InvalidInputError
        as :func:`~geometry.universal.fooling_rate_vs_m`.

    Source: ICLR 2018 §5, Fig. 7b; issue 15.
    """
    from ..universal import FoolingCurve, fooling_rate_vs_m

    ctx = _ctx(ctx)
    xs = check_images(xs, clf.input_shape, name="xs")
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise InvalidInputError(f"random_state must be an int (the same on every rank), got {random_state!r}")
    lo, hi = ctx.bounds(len(xs))
    kw = dict(xi=xi, n_samples=n_samples, random_state=int(random_state), batch_size=batch_size)
    # an empty shard still checks the settings (on one point) and contributes zero counts
    local = fooling_rate_vs_m(clf, xs[lo:hi] if hi > lo else xs[:1], bases, m_values, **kw)  # type: ignore[arg-type]
    n_local = hi - lo
    names = local.names
    counts = torch.stack([torch.round(local.rates[k] * n_local) for k in names])  # (B, M, S) integers
    counts = ctx.all_reduce_sum(counts)
    n = len(xs)
    rates = {k: counts[i] / n for i, k in enumerate(names)}
    S = local.n_samples
    std = {
        k: (r.std(1, unbiased=True) if S > 1 else torch.zeros(r.shape[0], dtype=torch.float64))
        for k, r in rates.items()
    }
    return FoolingCurve(
        m_values=local.m_values,
        names=names,
        mean={k: r.mean(1) for k, r in rates.items()},
        std=std,
        best={k: r.max(1).values for k, r in rates.items()},
        rates=rates,
        xi=local.xi,
        n_samples=S,
        n_points=n,
    )


def principal_cosines(A: torch.Tensor, B: torch.Tensor) -> np.ndarray:
    """Cosines of the principal angles between ``span(A)`` and ``span(B)`` by
    ``scipy.linalg.subspace_angles`` (descending; 1 = same direction). For comparing the bases of a
    sharded and a single-process run."""
    from scipy.linalg import subspace_angles

    return np.sort(np.cos(subspace_angles(np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64))))[::-1]
