"""Sharded studies with ``torch.distributed``: the heavy sums and maps over points, split over ranks.

Issue 15, item 2. The studies whose cost grows with the number of points are either a *sum* over
points (the average boundary Hessian of S_c) or a *map* over points followed by a reduction
(DeepFool over a dataset, the curvature ``K_S(x)`` of held-out points). Both split over processes
("ranks") without changing the geometry: every function here calls the single-process function of
:mod:`geometry.deepfool` / :mod:`geometry.curvature` on its rank's contiguous shard of the points
(:func:`shard`) and then

* **sums** — all-reduce (SUM) of each rank's weighted share ``(n_r/n) · H̄_r v`` of the average
  ``H̄ v = (1/n) Σ_i P_i H_{z_i} P_i v`` (:func:`average_boundary_hvp`, data-parallel like the
  Hessian-spectrum tools); every rank runs the same Lanczos (``eigsh`` with the same start vector
  from ``random_state``) on the same reduced products, so every rank gets the same S_c
  (:func:`sharded_curved_subspace`);
* **maps** — all-gather of each rank's per-point results, concatenated in rank order (= the
  original order of the points), then the single-process reduction
  (:func:`sharded_deepfool`, :func:`sharded_average_curvature`); for fooling rates the counts of
  fooled points are all-reduced instead (:func:`sharded_fooling_rate_vs_m`, exact).

Results equal the single-process ones up to the order of floating-point summation (with one rank
they are bitwise the single-process results). :func:`sharded_curvature_study` runs the whole
"curvature versus m" study (ICLR 2018 §5, Fig. 7a) this way and returns the
:class:`~geometry.study.curvature.CurvatureStudy` that :func:`geometry.study.curvature_study`
returns.

Launch: ``torchrun --nproc_per_node K -m geometry.cli study …`` (README "Scaling out").
:func:`init_distributed` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``); without it (or with ``WORLD_SIZE=1``) everything runs in one
process with no process group and no communication. Backend: ``gloo`` on CPU; when PyTorch sees
a GPU the group is created as ``"cpu:gloo,cuda:nccl"``, so each collective goes through the
backend of its tensors (NCCL for a classifier on CUDA — not tested here: this machine has no GPU).

Resume: with ``cache=True`` each rank writes its finished part (a shard's DeepFool, a shard's
curvatures) to the on-disk cache as a verified safetensors file (:func:`geometry.cache.save_tensors`,
SHA-256) under a key of (study key, part, shard index, world size); a restarted run reads the
finished parts back ("shard i/K: cached") and computes only the missing ones. The reduced S_c is
cached as a whole by rank 0 and broadcast on a restart. Each rank caches on its own machine: on
several machines a restart resumes when every rank keeps its index.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cache import cache_dir, cache_key, load_tensors, save_tensors
from ..classifier import Classifier, check_images
from ..curvature import (
    CurvatureCurve,
    Subspace,
    _average_operator,
    _boundary_points,
    _check_m,
    _curve_from_per_point,
    _fix_signs,
    _tangent_curvatures,
    _top_eigenpairs,
    average_curvature,
    load_subspace,
    save_subspace,
)
from ..deepfool import DeepFoolResult, deepfool
from ..errors import AtlasError, InvalidInputError
from ..hessian import BoundaryOperator
from ..progress import ProgressFn
from ..validation import as_generator

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
    "average_boundary_hvp",
    "sharded_curved_subspace",
    "sharded_average_curvature",
    "sharded_fooling_rate_vs_m",
    "sharded_curvature_study",
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
    """Where this process stands among the ranks of a sharded run.

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
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False
    log: Callable[[str], None] | None = field(default=None, compare=False)

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


def shard(indices, rank: int, world: int):
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


def _fingerprints(clf: Classifier, xs: torch.Tensor) -> dict:
    from ..study.points import data_fingerprint, network_fingerprint

    return {"network": network_fingerprint(clf), "data": data_fingerprint(xs)}


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


# ---------------------------------------------------------------------------------------- average HVP
class _ShardedOperator:
    """This rank's boundary points and the all-reduced average ``A v = (1/n) Σ_i P_i H_i P_i v``."""

    def __init__(self, clf, xs, df, ctx, *, point, candidates, method, h, beta, chunk_size, tangent):
        from ..hessian import _resolve

        self.ctx, self.tangent, self.d = ctx, bool(tangent), clf.d
        if len(df.label) != len(xs):
            raise InvalidInputError(f"deepfool_result holds {len(df.label)} points, xs {len(xs)}")
        label = torch.as_tensor(df.label).long().cpu()
        adv = torch.as_tensor(df.adv_label).long().cpu()
        keep = torch.as_tensor(df.converged).bool().cpu() & (label != adv)
        self.n = int(keep.sum())
        self.n_dropped = len(keep) - self.n
        if self.n == 0:
            raise InvalidInputError(
                f"DeepFool converged on none of the {len(xs)} points: no boundary point to work with"
            )
        if point not in ("boundary", "inside"):
            raise InvalidInputError(f"point must be 'boundary' or 'inside', got {point!r}")
        self.method, self.h, self.beta = _resolve(clf, method, h, beta)
        lo, hi = ctx.bounds(len(xs))
        self.n_local = int(keep[lo:hi].sum())
        self.op: BoundaryOperator | None = None
        self.normals = self.gn = torch.zeros(0, self.d)
        if self.n_local:
            _, _, self.op, self.normals, self.gn, _ = _boundary_points(
                clf,
                xs[lo:hi],
                point=point,
                candidates=candidates,
                deepfool_result=_slice_deepfool(df, lo, hi),
                method=method,
                h=h,
                beta=beta,
                chunk_size=chunk_size,
            )
        self.weight = self.n_local / self.n  # exactly 1.0 with one rank: bitwise the single-process sum

    def apply(self, V: torch.Tensor) -> torch.Tensor:
        """Rows ``A v`` (float64, CPU) for the rows of V (k, d): collective, every rank must call it."""
        if self.op is not None:
            local = _average_operator(self.op, self.normals, V, tangent=self.tangent).double().cpu()
            if self.weight != 1.0:
                local = local * self.weight
        else:
            local = torch.zeros(len(V), self.d, dtype=torch.float64)
        return self.ctx.all_reduce_sum(local)

    def curvatures(self, basis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean over all points of ``K(u_k)`` and ``κ(u_k)`` along the columns of ``basis`` (gathered)."""
        if self.op is not None:
            F0 = self.op.F()
            K, _ = _tangent_curvatures(self.op, self.normals, basis.T, F0)
            kap = K / self.gn.double().cpu()[:, None]
        else:
            K = kap = torch.zeros(0, basis.shape[1], dtype=torch.float64)
        parts = self.ctx.all_gather((K.cpu(), kap.cpu()))
        K_all = torch.cat([p[0] for p in parts])
        kap_all = torch.cat([p[1] for p in parts])
        return torch.nanmean(K_all, dim=0), torch.nanmean(kap_all, dim=0)


def average_boundary_hvp(
    clf: Classifier,
    z: torch.Tensor,
    labels,
    adv_labels,
    V: torch.Tensor,
    ctx: ShardContext | None = None,
    *,
    method: str = "finite_difference",
    h: float | None = None,
    beta: float | None = None,
    tangent: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """The average boundary Hessian-vector product ``H̄ v = (1/n) Σ_i H_{z_i} v`` over points split by rank.

    Each rank applies the Hessians of its contiguous shard of the points
    (:func:`geometry.hessian.boundary_operator`, the batched single-process code), weights its
    mean by ``n_r/n`` and the shares are all-reduced (SUM): data-parallel, like the HVPs of
    Hessian-spectrum tools. With ``tangent=True`` the tangent-projected ``P_i H_i P_i`` of S_c is
    averaged instead (``P_i = I − n_i n_iᵀ``, ``n_i`` the unit normal at ``z_i``).

    Parameters
    ----------
    clf : Classifier
    z : (n, C, H, W) — boundary points, the same on every rank
    labels, adv_labels : (n,) int — ``k̂`` and the DeepFool label (``F = f_adv − f_label``)
    V : (k, d) — directions (shared by all points)
    ctx : ShardContext, optional
    method, h, beta, chunk_size : as :func:`geometry.hessian.boundary_operator`
    tangent : bool — average ``P_i H_i P_i`` instead of ``H_i``

    Returns
    -------
    (k, d) float64 CPU tensor — rows ``H̄ v`` (logit units per pixel² times the units of v), the
    same on every rank.

    Raises
    ------
    InvalidInputError
        as :func:`~geometry.hessian.boundary_operator`; ``V`` not (k, d).

    Source: ICLR 2018 §5 (average Hessian of S_c); issue 15 (data-parallel HVPs).
    """
    ctx = _ctx(ctx)
    z = check_images(z, clf.input_shape, name="z")
    V = torch.as_tensor(V)
    if V.dim() != 2 or V.shape[1] != clf.d:
        raise InvalidInputError(f"V must have shape (k, {clf.d}), got {tuple(V.shape)}")
    n = len(z)
    lab = torch.as_tensor(labels).long().reshape(-1)
    adv = torch.as_tensor(adv_labels).long().reshape(-1)
    if lab.shape != (n,) or adv.shape != (n,):
        raise InvalidInputError(f"labels and adv_labels must have shape ({n},)")
    if bool((lab == adv).any()):
        raise InvalidInputError(
            f"adv_labels must differ from labels (F = f_adv − f_label would be 0): "
            f"{int((lab == adv).sum())} of {n} points have adv_label == label"
        )
    df = DeepFoolResult(
        r=torch.zeros_like(z),
        x_adv=z,
        label=lab,
        adv_label=adv,
        n_iter=torch.zeros(n, dtype=torch.long),
        converged=torch.ones(n, dtype=torch.bool),
        norms=torch.zeros(n, dtype=z.dtype),
        norm=2.0,
        overshoot=0.0,
        n_forward=0,
        n_backward=0,
    )
    op = _ShardedOperator(
        clf, z, df, ctx, point="boundary", candidates=10, method=method, h=h, beta=beta,
        chunk_size=chunk_size, tangent=tangent,
    )  # fmt: skip
    return op.apply(V.double())


# ---------------------------------------------------------------------------------------- S_c
def _subspace_key(clf, xs, m, **settings) -> dict:
    return {"study": "curved", **_fingerprints(clf, xs), "m": int(m), **{k: repr(v) for k, v in settings.items()}}


def sharded_curved_subspace(
    clf: Classifier,
    xs: torch.Tensor,
    m: int,
    ctx: ShardContext | None = None,
    *,
    method: str = "finite_difference",
    h: float | None = None,
    beta: float | None = None,
    tangent: bool = True,
    point: str = "boundary",
    candidates: int = 10,
    random_state: int = 0,
    deepfool_result: DeepFoolResult | None = None,
    solver: str = "auto",
    dense_max_d: int = 100,
    tol: float = 1e-4,
    maxiter: int | None = None,
    ncv: int | None = None,
    n_asymmetry_pairs: int = 3,
    chunk_size: int | None = None,
    progress: ProgressFn | None = None,
    cache: bool = False,
) -> Subspace:
    """S_c (top-m eigenvectors of ``H̄ = (1/n) Σ_i P_i H_{z_i} P_i``) with the points split over ranks.

    The protocol of :func:`geometry.curvature.curved_subspace`, same parameters and result; only
    the operator is applied data-parallel (:func:`average_boundary_hvp`). Every rank runs the same
    eigen-solver — ``scipy.sparse.linalg.eigsh`` with the start vector drawn from
    ``random_state``, or the dense solver for ``d ≤ dense_max_d`` — on the same all-reduced
    products, so all ranks obtain the same basis; the final result is rank 0's, broadcast. The
    re-evaluated curvatures are gathered from the ranks and averaged as in the single-process run.

    Parameters
    ----------
    clf, xs, m, method, h, beta, tangent, point, candidates, deepfool_result, solver, dense_max_d,
    tol, maxiter, ncv, n_asymmetry_pairs, chunk_size, progress :
        as :func:`~geometry.curvature.curved_subspace` (``deepfool_result`` is the result on all of
        ``xs``, e.g. from :func:`sharded_deepfool`; without it, one is computed sharded)
    random_state : int — must be an int (every rank draws the same start vector)
    ctx : ShardContext, optional
    cache : bool — read / write the finished S_c (rank 0) and the DeepFool shards

    Returns
    -------
    Subspace — kind "curved"; equal to the single-process result up to floating-point summation
    order (principal cosines ≈ 1; bitwise equal with one rank).

    Raises
    ------
    InvalidInputError, AtlasError
        as :func:`~geometry.curvature.curved_subspace`.

    Source: ICLR 2018 §5 (S_c); issue 15 (sharded studies).
    """

    ctx = _ctx(ctx)
    xs = check_images(xs, clf.input_shape, name="xs")
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise InvalidInputError(f"random_state must be an int (the same on every rank), got {random_state!r}")
    d = clf.d
    if solver not in ("auto", "eigsh", "dense"):
        raise InvalidInputError(f"solver must be 'auto', 'eigsh' or 'dense', got {solver!r}")
    use_dense = solver == "dense" or (solver == "auto" and d <= dense_max_d)
    m = _check_m(m, d if use_dense else d - 1, "dense solver" if use_dense else "eigsh needs m < d")

    key = None
    if cache:
        key = _subspace_key(
            clf, xs, m, method=method, h=h, beta=beta, tangent=tangent, point=point, candidates=candidates,
            seed=int(random_state), solver=solver, dense_max_d=dense_max_d, tol=tol, maxiter=maxiter, ncv=ncv,
            pairs=n_asymmetry_pairs, df=None if deepfool_result is None else _df_digest(deepfool_result),
        )  # fmt: skip
        path = cache_dir("shards") / f"curved-{cache_key(key, length=24)}.safetensors"
        cached = None
        if ctx.is_leader and path.exists():
            try:
                cached = load_subspace(path)
            except (InvalidInputError, OSError):
                path.unlink(missing_ok=True)
        cached = ctx.broadcast(cached)
        if cached is not None:
            ctx.say("S_c: cached")
            return cached

    report = progress or (lambda f, msg: None)
    report(0.0, f"DeepFool on {len(xs)} points")
    df = deepfool_result
    if df is None:
        df = sharded_deepfool(clf, xs, ctx, cache=cache, candidates=candidates)
    gen = as_generator(int(random_state))
    A = _ShardedOperator(
        clf, xs, df, ctx, point=point, candidates=candidates, method=method, h=h, beta=beta,
        chunk_size=chunk_size, tangent=tangent,
    )  # fmt: skip
    n = A.n
    eigenvalues, basis, asym, used, n_matvec = _top_eigenpairs(
        A.apply,
        d=d,
        m=m,
        n=n,
        use_dense=use_dense,
        dense_step=max(1, (A.op.chunk_size if A.op is not None else _default_chunk(clf, chunk_size)) // max(1, n)),
        gen=gen,
        tol=tol,
        maxiter=maxiter,
        ncv=ncv,
        n_asymmetry_pairs=n_asymmetry_pairs,
        progress=report,
    )
    basis = _fix_signs(basis.double())
    # the ranks ran the same solver on the same reduced products; rank 0's basis is the result
    basis, eigenvalues = ctx.broadcast((basis, eigenvalues.double()))
    report(0.95, f"re-evaluating the curvature along {m} directions")
    curvatures, kappas = A.curvatures(basis)
    report(1.0, "done")
    result = Subspace(
        basis=basis.contiguous(),
        eigenvalues=eigenvalues.contiguous(),
        curvatures=curvatures,
        kappas=kappas,
        asymmetry=float(ctx.broadcast(float(asym))),
        kind="curved",
        n=n,
        n_dropped=A.n_dropped,
        n_hvp=n_matvec * n,
        n_matvec=n_matvec,
        method=A.method,
        h=A.h,
        beta=A.beta,
        point=point,
        tangent=bool(tangent),
        solver=used,
        input_shape=tuple(clf.input_shape),  # type: ignore[arg-type]
    )
    if key is not None and ctx.is_leader:
        try:
            save_subspace(path, result)
        except OSError as exc:
            ctx.say(f"S_c: not cached ({exc})")
    return result


def _default_chunk(clf: Classifier, chunk_size: int | None) -> int:
    from ..hessian import default_chunk_size

    return default_chunk_size(clf.d) if chunk_size is None else max(1, int(chunk_size))


def _digest(t: torch.Tensor) -> str:
    from ..study.points import data_fingerprint

    return data_fingerprint(t.detach().cpu().contiguous())


def _df_digest(df: DeepFoolResult) -> str:
    """Fingerprint of a DeepFool result's r, labels and convergence (what the boundary points depend on)."""
    return _digest(
        torch.cat([df.r.flatten(1).double(), torch.stack([df.label, df.adv_label, df.converged.long()], 1).double()], 1)
    )


# ---------------------------------------------------------------------------------------- K_S versus m
def sharded_average_curvature(
    clf: Classifier,
    xs: torch.Tensor,
    subspace: Subspace,
    m_values: Sequence[int],
    ctx: ShardContext | None = None,
    *,
    n_directions: int = 20,
    method: str = "finite_difference",
    h: float | None = None,
    beta: float | None = None,
    random_state: int = 0,
    point: str = "boundary",
    candidates: int = 10,
    deepfool_result: DeepFoolResult | None = None,
    chunk_size: int | None = None,
    cache: bool = False,
) -> CurvatureCurve:
    """``K_S(x)`` versus m (Fig. 7a) on held-out points split over the ranks.

    Each rank runs :func:`geometry.curvature.average_curvature` on its contiguous shard (the
    random directions come from ``random_state`` and are shared by all points, so every rank draws
    the same ones); the per-point curvatures are gathered in the order of ``xs`` and reduced as in
    the single-process function (mean, std with ddof 0, share positive).

    Parameters
    ----------
    as :func:`~geometry.curvature.average_curvature` (``deepfool_result`` on all of ``xs``;
    ``random_state`` an int); ctx : ShardContext, optional; cache : bool — keep each shard's
    per-point curvatures on disk for a restart.

    Returns
    -------
    CurvatureCurve — equal to the single-process one up to floating-point rounding.

    Raises
    ------
    InvalidInputError
        as :func:`~geometry.curvature.average_curvature`.

    Source: ICLR 2018 §5, Fig. 7(a); issue 15.
    """
    from ..hessian import _resolve

    ctx = _ctx(ctx)
    xs = check_images(xs, clf.input_shape, name="xs")
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise InvalidInputError(f"random_state must be an int (the same on every rank), got {random_state!r}")
    if subspace.d != clf.d:
        raise InvalidInputError(f"subspace lives in dimension {subspace.d}, the classifier in d = {clf.d}")
    ms = [_check_m(mm, subspace.m, f"subspace has {subspace.m} dimensions") for mm in list(m_values)]
    if not ms:
        raise InvalidInputError("m_values must not be empty")
    method_r, h_r, beta_r = _resolve(clf, method, h, beta)
    df = deepfool_result if deepfool_result is not None else sharded_deepfool(clf, xs, ctx, cache=cache)
    if len(df.label) != len(xs):
        raise InvalidInputError(f"deepfool_result holds {len(df.label)} points, xs {len(xs)}")
    lo, hi = ctx.bounds(len(xs))
    df_local = _slice_deepfool(df, lo, hi)
    keep_local = df_local.converged.bool() & (df_local.label != df_local.adv_label)

    def compute() -> dict[str, torch.Tensor]:
        if bool(keep_local.any()):
            c = average_curvature(
                clf, xs[lo:hi], subspace, ms, n_directions=n_directions, method=method, h=h, beta=beta,
                random_state=int(random_state), point=point, candidates=candidates, deepfool_result=df_local,
                chunk_size=chunk_size,
            )  # fmt: skip
            return {"per_point": c.per_point, "kappa_per_point": c.kappa_per_point}
        empty = torch.zeros(len(ms), 0, dtype=torch.float64)
        return {"per_point": empty, "kappa_per_point": empty.clone()}

    key = None
    if cache:
        key = {
            "study": "curvature-curve",
            **_fingerprints(clf, xs),
            "basis": _digest(subspace.basis),
            "ms": ms,
            "df": _df_digest(df),
            **{k: repr(v) for k, v in dict(n=n_directions, method=method_r, h=h_r, beta=beta_r, seed=int(random_state),
                                            point=point, chunk=chunk_size).items()},
        }  # fmt: skip
    part = cached_shard(key, f"curve-{subspace.kind}", ctx, compute)
    parts = ctx.all_gather(part)
    P = torch.cat([p["per_point"] for p in parts], dim=1)
    KP = torch.cat([p["kappa_per_point"] for p in parts], dim=1)
    n = P.shape[1]
    if n == 0:
        raise InvalidInputError(f"DeepFool converged on none of the {len(xs)} points: no boundary point to work with")
    return _curve_from_per_point(
        P,
        KP,
        ms,
        n_dropped=len(xs) - n,
        n_directions=int(n_directions),
        kind=subspace.kind,
        method=method_r,
        h=h_r,
        beta=beta_r,
        point=point,
    )


# ---------------------------------------------------------------------------------------- fooling rates
def sharded_fooling_rate_vs_m(
    clf: Classifier,
    xs: torch.Tensor,
    bases,
    m_values: Sequence[int],
    ctx: ShardContext | None = None,
    *,
    xi: float,
    n_samples: int = 10,
    random_state: int = 0,
    batch_size: int = 1024,
):
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


# ---------------------------------------------------------------------------------------- the study
def sharded_curvature_study(
    clf: Classifier,
    points,
    settings,
    ctx: ShardContext | None = None,
    *,
    progress: ProgressFn | None = None,
    cache: bool = True,
):
    """The "curvature versus m" study (ICLR 2018 §5, Fig. 7a) with its point-heavy steps sharded.

    The protocol of :func:`geometry.study.curvature_study` step by step — DeepFool on the
    estimation points (:func:`sharded_deepfool`), S_c (:func:`sharded_curved_subspace`, same seed
    and solver settings), S_f from the gathered DeepFool normals
    (:func:`geometry.curvature.flat_subspace`), a random subspace, DeepFool on the held-out points
    and ``K_S`` versus m for the three subspaces (:func:`sharded_average_curvature`).

    Parameters
    ----------
    clf : Classifier
    points : StudyPoints — :func:`geometry.study.split_points` with ``settings.points``
    settings : CurvatureSettings
    ctx : ShardContext, optional
    progress : ``progress(fraction, message)``, optional
    cache : bool — resumable: shard parts and S_c on disk (see the module docstring)

    Returns
    -------
    CurvatureStudy — as :func:`geometry.study.curvature_study` computes it (up to floating-point
    summation order; identical with one rank).

    Raises
    ------
    InvalidInputError
        points chosen for another split; as the single-process study.
    """
    from ..curvature import flat_subspace
    from ..study.curvature import _check_points, _scale, assemble_curvature_study

    ctx = _ctx(ctx)
    _check_points(points, settings.points)
    report = progress or (lambda f, msg: None)
    h, beta, h_text = _scale(clf, settings, points)
    seed = int(settings.points.seed)
    report(0.0, f"DeepFool on the {len(points.estimate)} estimation points")
    df_est = sharded_deepfool(clf, points.estimate, ctx, cache=cache)
    S_c = sharded_curved_subspace(
        clf, points.estimate, settings.m_max, ctx, method=settings.method, h=h, beta=beta, point=settings.point,
        tangent=settings.tangent, random_state=seed, deepfool_result=df_est, cache=cache,
        progress=lambda f, msg: report(0.02 + 0.6 * f, f"S_c: {msg}"),
    )  # fmt: skip
    S_f = flat_subspace(clf, points.estimate, min(settings.m_max, int(df_est.converged.sum())), deepfool_result=df_est)
    report(0.62, f"DeepFool on the {len(points.heldout)} held-out points")
    df_held = sharded_deepfool(clf, points.heldout, ctx, cache=cache)

    def heldout_curve(s, ms_s, on_progress):
        return sharded_average_curvature(
            clf, points.heldout, s, ms_s, ctx, n_directions=settings.n_directions, method=settings.method, h=h,
            beta=beta, random_state=seed, point=settings.point, deepfool_result=df_held, cache=cache,
        )  # fmt: skip

    return assemble_curvature_study(
        clf,
        points,
        settings,
        h=h,
        beta=beta,
        h_text=h_text,
        curved=S_c,
        flat=S_f,
        heldout_curve=heldout_curve,
        report=report,
    )


def principal_cosines(A: torch.Tensor, B: torch.Tensor) -> np.ndarray:
    """Cosines of the principal angles between ``span(A)`` and ``span(B)`` by
    ``scipy.linalg.subspace_angles`` (descending; 1 = same direction). For comparing the bases of a
    sharded and a single-process run."""
    from scipy.linalg import subspace_angles

    return np.sort(np.cos(subspace_angles(np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64))))[::-1]
