"""Run the first load and validation probe of an untrusted model in a resource-limited child process.

Issue 9, part 2: untrusted code never runs in the server process first. :func:`run_isolated`
starts a fresh Python interpreter (``subprocess``, never ``fork`` of the server: a forked copy of a
threaded server can deadlock, and would inherit its open files and state) that

* works in a private, empty temporary folder (its ``cwd`` and ``HOME``), removed afterwards;
* gets a minimal environment (no cache or data paths of the server), one CPU thread, and the model
  bytes through its standard input (the folder stays empty);
* after importing torch, sets hard limits with :func:`resource.setrlimit`: address space
  (:attr:`SandboxLimits.memory_bytes` above what the interpreter already mapped), CPU time
  (:attr:`SandboxLimits.cpu_seconds`), file size 0 (writing to any file fails) and no core dumps;
* runs :func:`geometry.loading.load_classifier` with ``isolate=False`` — the screen, the load and
  the validation probe — and writes one JSON line with the outcome.

The parent waits at most :attr:`SandboxLimits.wall_seconds`, then kills the child's whole process
group. Whatever the child did, the parent only reads its JSON line: a failure becomes one
:class:`~geometry.errors.ModelLoadError` with a message a user can act on.

Limits (defaults, stated in the upload panel): 45 s wall clock (interpreter start included), 30 s of
CPU, 3 GiB of memory beyond the interpreter's own. A classifier's load and probe take seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import AtlasError, ModelLoadError

__all__ = ["SandboxLimits", "DEFAULT_LIMITS", "run_isolated"]

_MARK = "@@boundary-atlas-sandbox@@"


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of the child process that first loads an untrusted model.

    Attributes
    ----------
    wall_seconds : float — wall-clock time for the whole load + probe, interpreter start included
    cpu_seconds : int — CPU time (all threads) the child may spend after its imports
    memory_bytes : int — address space the child may map beyond what the interpreter and torch
        already map after their import (bytes)
    """

    wall_seconds: float = 45.0
    cpu_seconds: int = 30
    memory_bytes: int = 3 * 2**30

    def describe(self) -> str:
        """One line for the upload panel: "45 s wall clock, 30 s CPU, 3.0 GiB memory"."""
        return (
            f"{self.wall_seconds:g} s wall clock, {self.cpu_seconds:g} s CPU, "
            f"{self.memory_bytes / 2**30:.1f} GiB memory"
        )


DEFAULT_LIMITS = SandboxLimits()


def _child_env(folder: str) -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT") if k in os.environ}
    return {
        **keep,
        "HOME": folder,
        "TMPDIR": folder,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "BOUNDARY_ATLAS_CACHE": folder,
        "CUDA_VISIBLE_DEVICES": "",
    }


def run_isolated(
    data: bytes, kwargs: dict[str, Any], *, limits: SandboxLimits = DEFAULT_LIMITS, display: str = "uploaded model"
) -> dict[str, Any]:
    """Load and validate a model file in a resource-limited child; return what it reported.

    Parameters
    ----------
    data : the model file's bytes
    kwargs : JSON-serialisable keyword arguments of :func:`geometry.loading.load_classifier`
        (``format``, ``architecture``, ``input_shape``, ``mean``, ``std``, ``bounds``,
        ``class_names``, ``num_classes``, ``name``, ``max_bytes``, ``architecture_kwargs``)
    limits : the child's limits
    display : the file's name for messages

    Returns
    -------
    dict
        ``num_classes`` (L the model returned), ``parameters``, ``probe_seconds`` and
        ``graph_nodes`` (TorchScript nodes screened, else 0), as measured in the child.

    Raises
    ------
    ModelLoadError
        the child refused the model (its message), ran past a limit (which one), or died.
    """
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding geometry/
    code = (
        f"import sys; sys.path.insert(0, {package_root!r}); "
        "from geometry.loading.sandbox import _child_main; _child_main()"
    )
    header = json.dumps({"kwargs": kwargs, "limits": dataclasses.asdict(limits)}).encode() + b"\n"
    with tempfile.TemporaryDirectory(prefix="atlas-sandbox-") as folder:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-s", "-c", code],
            cwd=folder,
            env=_child_env(folder),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(header + data, timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise ModelLoadError(
                f"refusing {display!r}: loading it and running the validation probe did not finish within "
                f"{limits.wall_seconds:g} s (wall-clock limit of an upload); a classifier's forward pass on 4 "
                "images takes well under a second — does forward loop for a very long time?"
            ) from None
        finally:
            if proc.poll() is None:
                _kill_group(proc)
        elapsed = time.monotonic() - t0
    report = None
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith(_MARK):
            try:
                report = json.loads(line[len(_MARK) :])
            except ValueError:
                report = None
    if report is not None and report.get("ok"):
        report["wall_seconds"] = elapsed
        return report
    if report is not None:
        raise ModelLoadError(report.get("error") or f"refusing {display!r}: the loader failed")
    rc = proc.returncode
    tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    if rc in (-signal.SIGXCPU, -signal.SIGKILL) and elapsed < limits.wall_seconds:
        raise ModelLoadError(
            f"refusing {display!r}: loading it and running the validation probe used more than "
            f"{limits.cpu_seconds} s of CPU time (the limit of an upload); does forward loop for a very long time?"
        )
    if "MemoryError" in tail[0] or "alloc" in tail[0].lower() or rc == -signal.SIGSEGV:
        raise ModelLoadError(
            f"refusing {display!r}: loading it and running the validation probe needed more than "
            f"{limits.memory_bytes / 2**30:.1f} GiB of memory (the limit of an upload)"
        )
    raise ModelLoadError(
        f"refusing {display!r}: the process that checks an upload ended without a verdict (exit status {rc}"
        f"{'; ' + tail[0][:300] if tail[0] else ''})"
    )


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _vm_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _apply_limits(*, cpu_seconds: int, memory_bytes: int) -> None:
    """Hard limits of the child, set after its imports: CPU seconds from now, address space above
    what is mapped now, no file writes (file size 0; SIGXFSZ ignored so a write fails with EFBIG
    instead of killing), no core dumps."""
    import resource
    import tempfile

    tempfile.gettempdir()  # resolve (and cache) the private folder while it can still be probed by a write
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime) + int(cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    memory = _vm_bytes() + int(memory_bytes)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child_main() -> None:  # pragma: no cover - runs in the child (covered by tests through run_isolated)
    """Entry point of the child: read the header line and the model bytes, limit, load, report."""
    sys.dont_write_bytecode = True
    raw = sys.stdin.buffer.read()
    header, _, data = raw.partition(b"\n")
    spec = json.loads(header)
    kwargs, lim = spec["kwargs"], spec["limits"]

    import torch

    from geometry.loading import _load_bytes

    torch.set_num_threads(1)
    _apply_limits(cpu_seconds=int(lim["cpu_seconds"]), memory_bytes=int(lim["memory_bytes"]))

    def emit(obj: dict) -> None:
        sys.stdout.write(_MARK + json.dumps(obj) + "\n")
        sys.stdout.flush()

    display = kwargs.pop("display", "uploaded model")
    file_name = kwargs.pop("file_name", "")
    memory_message = (
        f"refusing {display!r}: loading it and running the validation probe needed more than "
        f"{lim['memory_bytes'] / 2**30:.1f} GiB of memory (the limit of an upload)"
    )
    try:
        t0 = time.perf_counter()
        clf = _load_bytes(data, display, file_name, validate=True, **kwargs)
        emit(
            {
                "ok": True,
                "num_classes": len(clf.class_names),
                "parameters": clf.info.get("parameters"),
                "graph_nodes": clf.info.get("graph_nodes", 0),
                "probe_seconds": time.perf_counter() - t0,
            }
        )
    except AtlasError as exc:
        emit({"ok": False, "error": memory_message if "can't allocate memory" in str(exc) else str(exc)})
    except MemoryError:
        emit({"ok": False, "error": memory_message})
    except BaseException as exc:
        text = str(exc).strip().splitlines()
        if "can't allocate memory" in str(exc) or "std::bad_alloc" in str(exc):
            emit({"ok": False, "error": memory_message})
        else:
            emit(
                {
                    "ok": False,
                    "error": f"refusing {display!r}: the loader failed "
                    f"({type(exc).__name__}: {text[0][:300] if text else ''})",
                }
            )
