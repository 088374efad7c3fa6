"""Run the first load and validation probe of an untrusted model in a resource-limited child process.

Issue 9, part 2: untrusted code never runs in the server process first. :func:`run_isolated`
starts a fresh Python interpreter (``subprocess``, never ``fork`` of the server: a forked copy of a
threaded server can deadlock, and would inherit its open files and state) that

* works in a private, empty temporary folder (its ``cwd`` and ``HOME``), removed afterwards;
* gets a minimal environment (no cache or data paths of the server), one CPU thread, and the model
  bytes through its standard input (the folder stays empty);
* after importing torch, sets hard limits with :func:`resource.setrlimit`: address space
  (:attr:`SandboxLimits.memory_bytes` above what the interpreter already mapped), CPU time
  (:attr:`SandboxLimits.cpu_seconds` from then on), file size 0 (writing to any file fails) and no
  core dumps — then reports "ready" (one marked line with the CPU time its start took);
* runs :func:`geometry.loading.load_classifier` with ``isolate=False`` — the screen, the load and
  the validation probe — and writes one JSON line with the outcome.

Limits measure the model, not the machine (issue 22, item 3). The model's budget is CPU time
(``RLIMIT_CPU``, counted from "ready": the interpreter's start and torch's import are excluded), so a
busy server — at load average 20 a process gets a tenth of a core — slows a valid upload down but
does not refuse it. Wall clocks are only generous backstops, each with a message that says so:
:attr:`SandboxLimits.start_seconds` for the interpreter's start and torch's import, and
:attr:`SandboxLimits.wall_seconds` from "ready" to the verdict. After the child ends, the parent
reads its CPU time with :func:`os.wait4` and names the limit that was broken. On a breach the
child's whole process group is killed. Whatever the child did, the parent only reads its marked
lines: a failure becomes one :class:`~geometry.errors.ModelLoadError` with a message a user can act on.

Limits (defaults, stated in the upload panel): 30 s of CPU, 3 GiB of memory beyond the
interpreter's own, and the wall-clock backstops (240 s to start, 300 s to check). A classifier's load
and probe take well under a second of CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..errors import AtlasError, ModelLoadError

__all__ = ["SandboxLimits", "DEFAULT_LIMITS", "run_isolated"]

_MARK = "@@boundary-atlas-sandbox@@"
_READY = "@@boundary-atlas-sandbox-ready@@"


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of the child process that first loads an untrusted model.

    Attributes
    ----------
    wall_seconds : float — wall-clock backstop from the child's "ready" (imports done) to its
        verdict (s); passing it means the machine was too busy or the model waited on something,
        and the message says which (CPU time used vs wall time)
    cpu_seconds : int — CPU time (all threads, s) the child may spend after its imports: the
        model's budget (``RLIMIT_CPU``)
    memory_bytes : int — address space the child may map beyond what the interpreter and torch
        already map after their import (bytes, ``RLIMIT_AS``)
    start_seconds : float — wall-clock backstop for the child's start (interpreter + torch import,
        s); passing it means the server is busy, never that the model is at fault
    """

    wall_seconds: float = 300.0
    cpu_seconds: int = 30
    memory_bytes: int = 3 * 2**30
    start_seconds: float = 240.0

    def describe(self) -> str:
        """One line for the upload panel: "30 s CPU, 3.0 GiB memory (wall-clock backstop 300 s)"."""
        return (
            f"{self.cpu_seconds:g} s CPU, {self.memory_bytes / 2**30:.1f} GiB memory "
            f"(wall-clock backstop {self.wall_seconds:g} s)"
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
        ``graph_nodes`` (TorchScript nodes screened, else 0), as measured in the child; and, as
        measured here, ``wall_seconds`` (the whole child), ``start_seconds`` (until "ready") and
        ``cpu_seconds`` (the child's CPU time after "ready", from :func:`os.wait4`).

    Raises
    ------
    ModelLoadError
        the child refused the model (its message), ran past a limit (which one: CPU time, memory,
        or a wall-clock backstop — then the message says the server was busy), or died.
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
        child = _Child(proc, header + data)
        try:
            outcome = child.run(limits)
        finally:
            if proc.returncode is None:
                _kill_group(proc)
                child.reap()
    report = None
    for line in child.out_lines:
        if line.startswith(_MARK):
            try:
                report = json.loads(line[len(_MARK) :])
            except ValueError:
                report = None
    wall = time.monotonic() - t0
    cpu = child.model_cpu()
    if outcome == "start":
        raise ModelLoadError(
            f"could not check {display!r}: the server is busy — the checking process did not even finish starting "
            f"(Python and torch's import) within {limits.start_seconds:g} s of wall-clock time. This says nothing "
            "about the model; please try again in a while."
        )
    if outcome == "wall":
        raise ModelLoadError(
            f"could not check {display!r}: loading it and running the validation probe did not finish within "
            f"{limits.wall_seconds:g} s of wall-clock time after the checking process started, having used "
            f"{cpu:.1f} s of its {limits.cpu_seconds} s CPU budget — the server was busy (or the model waited on "
            "something); the wall clock is only a backstop. Please try again in a while."
        )
    if report is not None and report.get("ok"):
        report.update(wall_seconds=wall, start_seconds=child.start_seconds, cpu_seconds=cpu)
        return report
    if report is not None:
        raise ModelLoadError(report.get("error") or f"refusing {display!r}: the loader failed")
    rc = proc.returncode
    tail = child.err_text().strip().splitlines()[-1:] or [""]
    if rc in (-signal.SIGXCPU, -signal.SIGKILL) and child.ready:
        raise ModelLoadError(
            f"refusing {display!r}: loading it and running the validation probe used more than "
            f"{limits.cpu_seconds} s of CPU time (the limit of an upload; measured by the operating system, "
            "so a busy server does not count against it) — does forward loop for a very long time?"
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


class _Child:
    """The parent's side of one child: feeds its standard input, collects its output lines, notices
    "ready", and reaps it with :func:`os.wait4` (so its CPU time is known, also after a kill)."""

    def __init__(self, proc: subprocess.Popen, stdin_bytes: bytes) -> None:
        self.proc = proc
        self.out_lines: list[str] = []
        self.err_chunks: list[bytes] = []
        self.ready = False
        self.start_cpu = 0.0  # the child's CPU time at "ready" (s, as it reported)
        self.start_seconds = 0.0
        self.rusage: Any = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._t0 = time.monotonic()
        self._threads = [
            threading.Thread(target=self._feed, args=(stdin_bytes,), daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._threads:
            t.start()
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    def _feed(self, payload: bytes) -> None:
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(payload)
        except (BrokenPipeError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _read_out(self) -> None:
        stdout: IO[bytes] | None = self.proc.stdout
        assert stdout is not None
        for raw in stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith(_READY) and not self.ready:
                try:
                    self.start_cpu = float(json.loads(line[len(_READY) :])["cpu"])
                except (ValueError, KeyError, TypeError):
                    self.start_cpu = 0.0
                self.start_seconds = time.monotonic() - self._t0
                self.ready = True
                self._ready.set()
            else:
                self.out_lines.append(line)

    def _read_err(self) -> None:
        stderr: IO[bytes] | None = self.proc.stderr
        assert stderr is not None
        for raw in stderr:
            self.err_chunks.append(raw)
            if len(self.err_chunks) > 200:
                del self.err_chunks[:100]

    def _wait(self) -> None:
        try:
            _, status, self.rusage = os.wait4(self.proc.pid, 0)
            self.proc.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped elsewhere (should not happen): no CPU time to report
            self.proc.returncode = self.proc.returncode if self.proc.returncode is not None else -1
        self._done.set()
        self._ready.set()  # a child that died before "ready" wakes the parent too

    def run(self, limits: SandboxLimits) -> str:
        """Wait for the child: "done" when it ended by itself, "start" / "wall" when a backstop passed
        (the child's process group is then killed and reaped)."""
        if not self._ready.wait(limits.start_seconds) and not self._done.is_set():
            _kill_group(self.proc)
            self.reap()
            return "start"
        if not self._done.wait(limits.wall_seconds):
            _kill_group(self.proc)
            self.reap()
            return "wall"
        self.reap()
        return "done"

    def reap(self) -> None:
        """Wait until the child is reaped and its pipes are read to the end."""
        self._waiter.join()
        for t in self._threads:
            t.join(timeout=5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def model_cpu(self) -> float:
        """The child's CPU time (user + system, s) after "ready" — the model's share."""
        if self.rusage is None:
            return 0.0
        return max(0.0, float(self.rusage.ru_utime + self.rusage.ru_stime) - self.start_cpu)

    def err_text(self) -> str:
        """What the child wrote to its standard error (its last lines)."""
        return b"".join(self.err_chunks).decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's process group (its session); never through ``Popen`` (whose ``poll`` would
    reap the child behind :meth:`_Child._wait`'s back)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)


def _vm_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _apply_limits(*, cpu_seconds: int, memory_bytes: int) -> float:
    """Limits of the child, set after its imports: CPU seconds from now (SIGXCPU at the soft limit,
    SIGKILL 2 s later), address space above what is mapped now, no file writes (file size 0; SIGXFSZ
    ignored so a write fails with EFBIG instead of killing), no core dumps. Returns the CPU time (s)
    spent so far — the start's share, which the model's budget excludes."""
    import resource
    import tempfile

    tempfile.gettempdir()  # resolve (and cache) the private folder while it can still be probed by a write
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = float(used.ru_utime + used.ru_stime)
    cpu = int(spent) + int(cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
    memory = _vm_bytes() + int(memory_bytes)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return spent


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
    spent = _apply_limits(cpu_seconds=int(lim["cpu_seconds"]), memory_bytes=int(lim["memory_bytes"]))
    sys.stdout.write(_READY + json.dumps({"cpu": spent}) + "\n")  # the model's CPU budget starts now
    sys.stdout.flush()

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
