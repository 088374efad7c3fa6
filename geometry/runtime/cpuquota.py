"""A CPU quota for the upload workers, where the host delegates one (issue 22, item 2's fair share).

Linux's control groups can cap the CPU a group of processes uses per period: cgroup v2's ``cpu.max``
("quota period", µs) or cgroup v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``. A niceness of 19
only makes the workers yield when someone else wants the CPU; a quota also caps what they take of the
time the server leaves idle between a page's bursts (cache, memory bandwidth and wake-up latency that
the next burst then pays).

:func:`create_cpu_quota` makes a child group of this process's own group and sets its quota; the
workers move themselves into it (:class:`geometry.runtime.workers.WorkerPool`, ``cpu_quota``). Creating a
group needs write access to this process's cgroup folder: root in a container with a writable v1
``cpu`` hierarchy, or a v2 group whose ``cpu`` controller the host delegated (``cgroup.subtree_control``
lists ``cpu``). On a normal user's machine neither usually holds; then the result is *unavailable*,
with the reason, and the workers run without a quota (niceness and the CPU-time limits still apply).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

__all__ = ["PERIOD_US", "CpuQuota", "create_cpu_quota"]

#: the quota's period (µs): 100 ms, the kernel's default
PERIOD_US = 100_000


@dataclasses.dataclass(frozen=True)
class CpuQuota:
    """A CPU-quota group for the upload workers, or why there is none.

    Attributes
    ----------
    available : whether the group exists with its quota set
    share : the quota as a share of one CPU (0.25: 25 ms of CPU per 100 ms, all the group's processes
        together)
    path : the group's folder (None when unavailable)
    procs : the file a worker writes its pid into to join the group (None when unavailable)
    version : "v1" or "v2" ("" when unavailable)
    reason : why it is unavailable ("" when available)
    """

    available: bool
    share: float
    path: str | None = None
    procs: str | None = None
    version: str = ""
    reason: str = ""

    def describe(self) -> str:
        """One line for the page and the log: the quota and where it is, or why there is none."""
        if self.available:
            return (
                f"CPU quota {self.share:.0%} of one CPU for all upload workers together "
                f"(cgroup {self.version}, {self.path})"
            )
        return f"no CPU quota for the upload workers ({self.reason})"

    def remove(self) -> None:
        """Remove the group (when its processes have ended; otherwise it is left for the system)."""
        if self.available and self.path:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)


def _own_groups(proc_cgroup: Path) -> tuple[str | None, str | None]:
    """This process's v1 ``cpu`` group and v2 group (paths relative to their hierarchy's root)."""
    v1 = v2 = None
    for line in proc_cgroup.read_text().splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":
            v2 = rel
        elif "cpu" in controllers.split(","):
            v1 = rel
    return v1, v2


def _v1_mount(root: Path) -> Path | None:
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        if (root / name / "cpu.cfs_quota_us").is_file():
            return root / name
    return None


def _v2_mount(root: Path) -> Path | None:
    for candidate in (root, root / "unified"):
        if (candidate / "cgroup.controllers").is_file():
            return candidate
    return None


def create_cpu_quota(
    share: float,
    *,
    name: str | None = None,
    root: Path = Path("/sys/fs/cgroup"),
    proc_cgroup: Path = Path("/proc/self/cgroup"),
) -> CpuQuota:
    """Create a child group of this process's own cgroup whose processes together get ``share`` of one CPU.

    Parameters
    ----------
    share : float in (0, 64] — CPUs' worth of time per period (0.25 = 25 ms per 100 ms)
    name : the group's folder name (default ``atlas-uploads-<pid>``)
    root, proc_cgroup : where the cgroup hierarchies are mounted and this process's membership (tests
        point them elsewhere)

    Returns
    -------
    CpuQuota
        ``available`` True with the group's ``procs`` file, or False with the ``reason`` (no cgroup
        file system, no ``cpu`` controller delegated, no permission, ...). Never raises for a host that
        lacks the means; raises ValueError for a ``share`` outside (0, 64].
    """
    if not (0.0 < float(share) <= 64.0):
        raise ValueError(f"share must be in (0, 64] CPUs, got {share!r}")
    name = name or f"atlas-uploads-{os.getpid()}"
    quota_us = max(round(float(share) * PERIOD_US), 1000)  # the kernel's minimum quota is 1 ms
    try:
        v1_rel, v2_rel = _own_groups(proc_cgroup)
    except OSError as exc:
        return CpuQuota(False, share, reason=f"cannot read {proc_cgroup}: {exc.strerror or exc}")
    reasons = []
    v2 = _v2_mount(root)
    if v2 is not None and v2_rel is not None:
        parent = v2 / v2_rel.lstrip("/")
        try:
            delegated = "cpu" in (parent / "cgroup.subtree_control").read_text().split()
        except OSError as exc:
            delegated, why = False, f"cgroup v2: cannot read {parent / 'cgroup.subtree_control'}: {exc.strerror}"
        else:
            why = f"cgroup v2: the cpu controller is not delegated to {parent}"
        if delegated:
            group = parent / name
            try:
                group.mkdir(exist_ok=True)
                (group / "cpu.max").write_text(f"{quota_us} {PERIOD_US}\n")
                return CpuQuota(True, share, str(group), str(group / "cgroup.procs"), "v2")
            except OSError as exc:
                with contextlib.suppress(OSError):
                    group.rmdir()
                why = f"cgroup v2: cannot create {group}: {exc.strerror or exc}"
        reasons.append(why)
    v1 = _v1_mount(root)
    if v1 is not None and v1_rel is not None:
        group = v1 / v1_rel.lstrip("/") / name
        try:
            group.mkdir(exist_ok=True)
            (group / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
            (group / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
            return CpuQuota(True, share, str(group), str(group / "cgroup.procs"), "v1")
        except OSError as exc:
            with contextlib.suppress(OSError):
                group.rmdir()
            reasons.append(f"cgroup v1: cannot create {group}: {exc.strerror or exc}")
    if not reasons:
        reasons.append(f"no cgroup file system with a cpu controller under {root}")
    return CpuQuota(False, share, reason="; ".join(reasons))
