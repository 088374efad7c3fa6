"""Upload workers: priority, progress, diagnosis and clean-up (issue 22, items 2–4; geometry/runtime/workers.py).

* priority — the app's workers run at niceness 19 (every thread of the process), the lever of the fair
  share: a hostile upload only gets the CPU the server's pages leave;
* progress — the fractions a study reports in the worker arrive at the server's callback, all of them
  and in order (monotone), before the call returns;
* diagnosis — how a worker ended decides the message: SIGXCPU → the CPU-time limit, an allocation past
  RLIMIT_AS → the memory limit, SIGKILL after memory growth → the out-of-memory killer, SIGSEGV / SIGABRT
  → a native crash (simulated by trusted functions of this file run in the worker: a TorchScript cannot
  crash on purpose);
* yielding — while another session's page runs (and for a grace after), the busy workers are stopped
  (``SIGSTOP``): their CPU time does not move; a session's own page run never stops its own worker; a long
  pause lets the worker run in bursts; closing a pool with stopped workers ends them;
* clean-up — a session's uploaded files and its worker's private folder are removed when it replaces an
  upload, when it ends, and when the process stops.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from geometry import study
from geometry.data import load_dataset
from geometry.runtime import uploads
from geometry.runtime.cpuquota import create_cpu_quota
from geometry.runtime.workers import (
    UploadHandle,
    WorkerLimitError,
    WorkerLimits,
    WorkerPool,
    YieldToPages,
    diagnose,
    worker_progress,
)
from geometry.zoo import LeNet

SHAPE = (1, 8, 8)
LIMITS = WorkerLimits(cpu_seconds=3, memory_bytes=2**30, deadline_seconds=300)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pool():
    p = WorkerPool(LIMITS, max_sessions=4)
    yield p
    p.close()


def _script(seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(LeNet(SHAPE, 10).eval()), buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def handle(tmp_path_factory):
    path = tmp_path_factory.mktemp("upload") / "lenet.pt"
    path.write_bytes(_script())
    return UploadHandle(str(path), {"input_shape": SHAPE}, display="lenet.pt")


# ------------------------------------------------------------------ functions run in the worker (by reference)
def niceness(clf):
    """Niceness of the worker's calling thread, and its pid (to read every thread's from /proc)."""
    return os.getpriority(os.PRIO_PROCESS, 0), os.getpid()


def cwd(clf):
    return os.getcwd()


def steps(clf, n, *, progress):
    for i in range(1, n + 1):
        time.sleep(0.15)  # past the worker's 0.1 s throttle: every step is sent
        progress(i / n, f"step {i} of {n}")
    return n


def spin(clf):
    while True:
        pass


def grow(clf):
    chunks = []
    while True:
        chunks.append(torch.ones(2**26))  # 256 MB at a time, until RLIMIT_AS refuses


def grow_then_killed(clf):
    kept = [torch.ones(2**25) for _ in range(2)]  # memory grows ...
    os.kill(os.getpid(), signal.SIGKILL)  # ... and the kernel's out-of-memory killer ends the process
    return kept


def segfault(clf):
    ctypes.string_at(0)  # a read at address 0: SIGSEGV, as a fault in a native operator would


def abort(clf):
    os.abort()  # SIGABRT, as a failed assertion in native code would


def _thread_nice(pid: int) -> list[int]:
    """Niceness of every thread of process ``pid`` (field 19 of /proc/<pid>/task/<tid>/stat)."""
    out = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        fields = stat.read_text().rsplit(")", 1)[1].split()
        out.append(int(fields[16]))  # fields after the command: state is the 3rd of the file, nice the 19th
    return out


# ------------------------------------------------------------------ priority (the fair share's lever)
def test_the_apps_workers_run_at_the_lowest_priority(handle):
    assert uploads.APP_WORKER_LIMITS.nice == 19
    app_pool = WorkerPool(uploads.APP_WORKER_LIMITS)
    plain = WorkerPool(LIMITS)
    try:
        nice, pid = app_pool.run("s", handle, niceness)
        assert nice == 19
        threads = _thread_nice(pid)
        assert threads and all(n == 19 for n in threads), threads  # every thread, torch's included
        here = os.getpriority(os.PRIO_PROCESS, 0)
        assert plain.run("s", handle, niceness)[0] == here < 19  # without the lever: the server's own priority
    finally:
        app_pool.close()
        plain.close()


def autogroup(clf):
    """The worker's scheduler autogroup line (``/autogroup-N nice K``) and its session id."""
    return Path("/proc/self/autogroup").read_text().strip(), os.getsid(0)


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="no scheduler autogroups on this kernel")
def test_the_apps_workers_leave_the_servers_autogroup_at_niceness_19(handle):
    """Between autogroups niceness does not count: a nice-19 worker in the server's group would make the group
    claim a full share while it spins. The app's worker runs its calls in its own session and autogroup at 19."""
    server_group = Path("/proc/self/autogroup").read_text().strip()
    app_pool = WorkerPool(uploads.APP_WORKER_LIMITS)
    plain = WorkerPool(LIMITS)
    try:
        group, sid = app_pool.run("s", handle, autogroup)
        assert group != server_group and group.endswith("nice 19"), (group, server_group)
        assert sid != os.getsid(0)
        assert plain.run("s", handle, autogroup) == (server_group, os.getsid(0))  # without the lever: the server's
    finally:
        app_pool.close()
        plain.close()


# ------------------------------------------------------------------ progress
def test_progress_fractions_arrive_in_order_before_the_call_returns(pool, handle):
    seen: list[float] = []
    assert pool.run("p", handle, steps, 6, progress=worker_progress, _progress=lambda f, m: seen.append(f)) == 6
    assert seen == pytest.approx([i / 6 for i in range(1, 7)])
    # without a callback the worker's reports go nowhere, and the call is the same
    assert pool.run("p", handle, steps, 2, progress=worker_progress) == 2


def test_a_studys_progress_in_the_worker_reaches_the_page(pool, digits_lenet):
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(digits_lenet.network.eval()), buf)
    old = uploads.set_upload_pool(WorkerPool(WorkerLimits(cpu_seconds=300, memory_bytes=2**30, deadline_seconds=900)))
    try:
        clf = uploads.register(buf.getvalue(), owner="q", display="digits.pt", input_shape=SHAPE)
        split = study.PointSplit(6, 6, 0, 0)
        points = study.split_points(load_dataset("digits", split="test"), load_dataset("digits", split="train"), split)
        settings = study.CurvatureSettings(points=points.split, m_max=2, n_directions=2)
        seen: list[tuple[float, str]] = []
        uploads.in_worker(study.curvature_study, clf, points, settings, progress=lambda f, m: seen.append((f, m)))
        fractions = [f for f, _ in seen]
        assert len(fractions) >= 2, seen
        assert all(0.0 <= a <= b <= 1.0 for a, b in itertools.pairwise(fractions)), fractions
        assert fractions[-1] == pytest.approx(1.0)
    finally:
        uploads.release("q")
        uploads.set_upload_pool(old).close()


# ------------------------------------------------------------------ diagnosis
@pytest.mark.parametrize(
    ("fn", "phrase"),
    [
        (spin, r"used more than its 3 s of CPU time on .*spin\(\)"),
        (grow, r"needed more than 1\.0 GiB of memory on .*grow\(\)"),
        (grow_then_killed, r"killed with SIGKILL, most likely by the system's out-of-memory killer"),
        (segfault, r"crashed natively \(SIGSEGV .*\) on .*segfault\(\)"),
        (abort, r"crashed natively \(SIGABRT .*\) on .*abort\(\)"),
    ],
    ids=["cpu", "memory limit", "oom killer", "segfault", "abort"],
)
def test_how_a_worker_ended_is_what_the_user_is_told(pool, handle, fn, phrase):
    with pytest.raises(WorkerLimitError, match=phrase) as info:
        pool.run("d", handle, fn)
    if fn is not spin:
        assert "CPU time" not in str(info.value)  # the old diagnosis blamed every end on the CPU limit
    assert pool.run("d", handle, niceness)[1] != os.getpid()  # the session goes on with a fresh worker


# ------------------------------------------------------------------ clean-up
def test_files_and_worker_folders_go_when_a_session_replaces_an_upload_or_ends(pool):
    old = uploads.set_upload_pool(pool)
    try:
        a1 = uploads.register(_script(0), owner="o1", display="net.pt", input_shape=SHAPE)
        a2 = uploads.register(_script(1), owner="o1", display="net.pt", input_shape=SHAPE)
        b = uploads.register(_script(0), owner="o2", display="net.pt", input_shape=SHAPE)
        files = {name: Path(c.network.handle.path) for name, c in (("a1", a1), ("a2", a2), ("b", b))}
        assert all(p.is_file() for p in files.values())
        assert files["a1"] != files["b"]  # the same file in two sessions: two copies, each session's own
        worker_folder = Path(pool.run("o1", a2.network.handle, cwd))
        assert worker_folder.is_dir()

        assert uploads.discard(a1)  # o1 replaced its upload
        assert not files["a1"].exists() and files["a2"].is_file() and files["b"].is_file()

        assert uploads.reap(lambda owner: owner != "o1") == ["o1"]  # o1's session ended
        assert not files["a2"].exists() and not worker_folder.exists()
        assert "o1" not in pool.owners() and "o2" in pool.owners()
        assert files["b"].is_file() and b.predict(torch.rand(2, *SHAPE)).shape == (2,)  # o2 untouched
    finally:
        uploads.release("o2")
        uploads.set_upload_pool(old)


def test_the_upload_folders_are_removed_when_the_process_stops(tmp_path):
    code = textwrap.dedent(
        f"""
        import io, os, torch
        from geometry.runtime import uploads
        from geometry.zoo import LeNet
        buf = io.BytesIO()
        torch.jit.save(torch.jit.script(LeNet({SHAPE!r}, 10).eval()), buf)
        clf = uploads.register(buf.getvalue(), owner="s", display="net.pt", input_shape={SHAPE!r})
        print(clf.network.handle.path)
        print(uploads.upload_pool().run("s", clf.network.handle, "tests.test_worker_lifecycle:cwd"))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # the worker (in its own folder) imports this file's cwd()
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    upload, folder = (Path(line) for line in done.stdout.split())
    assert upload.name == "net.pt" and folder.name.startswith("atlas-worker-")
    assert not upload.exists() and not upload.parents[2].exists()  # the process's whole uploads folder
    assert not folder.exists()


def test_an_ended_sessions_busy_worker_is_stopped_not_waited_for(pool, handle):
    import threading

    errors: list[str] = []

    def call():
        try:
            pool.run("busy", handle, spin)
        except WorkerLimitError as exc:
            errors.append(str(exc))

    worker = threading.Thread(target=call)
    worker.start()
    while "busy" not in pool.owners():
        time.sleep(0.05)
    pool.run("other", handle, niceness)  # meanwhile: another session's worker is up (the spinner is running)
    pool.close("busy")  # the session ended mid-call: its worker is ended, its spin abandoned
    worker.join()
    assert len(errors) == 1 and "was stopped" in errors[0] and "browser session ended" in errors[0], errors


def test_every_call_queued_behind_a_bomb_is_told_the_limit_it_broke(pool, handle):
    """Two calls of one session wait in its worker; the first breaks the CPU limit. The second learns of the
    broken pool after the first's caller has already replaced (shut down) the worker, so its exit status
    must come from the Process the session kept, not the executor's table (a full CI run read
    'exit status None' there: test_upload_workers' bomb through the form)."""
    import threading

    errors: list[str] = []

    def call(fn):
        try:
            pool.run("queued", handle, fn)
        except WorkerLimitError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call, args=(spin,))]
    threads[0].start()
    while "queued" not in pool.owners():
        time.sleep(0.05)
    threads.append(threading.Thread(target=call, args=(niceness,)))
    threads[1].start()
    for t in threads:
        t.join()
    assert len(errors) == 2, errors
    assert all("used more than its 3 s of CPU time" in e for e in errors), errors


def test_a_worker_does_not_rerun_the_servers_main_script(tmp_path, handle):
    """Under ``streamlit run`` the app is ``sys.modules["__main__"]``; spawn would re-run it in every upload
    worker (Streamlit and every page imported before the model's call). A main script that leaves a mark
    when run stands in for the app: a fresh pool's worker (and its progress manager) must not run it."""
    import types

    mark = tmp_path / "ran"
    script = tmp_path / "server_main.py"
    script.write_text(f"open({str(mark)!r}, 'a').write('x')\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(script)
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = fake
    fresh = WorkerPool(LIMITS, max_sessions=1)
    try:
        assert fresh.run("main", handle, steps, 2, progress=worker_progress, _progress=lambda f, m: None) == 2
    finally:
        fresh.close()
        if sys.modules["__main__"] is fake:
            sys.modules["__main__"] = saved
    assert sys.modules["__main__"] is saved
    assert not mark.exists(), "the worker re-ran the parent's __main__ script"


# ------------------------------------------------------------------ the per-forward budget and the CPU quota
def forward_then_spin(clf):
    clf.network(torch.rand(2, *SHAPE))  # a forward under its own (lower) budget ...
    while True:  # ... then the call's work, which must have the call's budget back
        pass


def test_after_a_forward_the_call_gets_its_own_cpu_budget_back(handle):
    """The per-forward budget (1 s here) is lowered for the forward pass only: the spin after it is stopped
    by the call's 4 s, and the message names the call's limit, not a forward's."""
    limits = WorkerLimits(cpu_seconds=4, memory_bytes=2**30, deadline_seconds=300, forward_floor_seconds=1.0)
    p = WorkerPool(limits)
    try:
        with pytest.raises(WorkerLimitError, match=r"used more than its 4 s of CPU time on .*forward_then_spin\(\)"):
            p.run("f", handle, forward_then_spin)
    finally:
        p.close()


def test_the_forward_budget_is_a_multiple_of_the_measured_cost_with_a_floor():
    lim = WorkerLimits(cpu_seconds=600, forward_multiple=50.0, forward_floor_seconds=5.0)
    assert lim.forward_budget(2, 1e-4) == 5.0  # 50 × 2 × 0.1 ms = 10 ms: the floor
    assert lim.forward_budget(100, 0.01) == pytest.approx(50.0)  # 50 × 100 × 10 ms
    assert lim.forward_budget(10_000, 0.01) == 600.0  # never above the call's budget
    assert WorkerLimits(cpu_seconds=60, forward_multiple=0).forward_budget(1, 1.0) == 60.0  # off: the call's
    kind, phrase = diagnose(-int(signal.SIGXCPU), 1.0, lim, (1.0, 5.0, 2.0, 2e-4))
    assert kind == "forward"
    assert phrase.startswith("used more than its 5 s of CPU time for one forward pass on 2 images")
    assert "50 × 2 × the 0.2 ms of CPU per image" in phrase and "at least 5 s" in phrase
    assert diagnose(-int(signal.SIGXCPU), 1.0, lim, (0.0, 0.0, 0.0, 0.0)) == (
        "cpu",
        "used more than its 600 s of CPU time",
    )


def test_no_cpu_quota_where_the_host_delegates_none(tmp_path, handle):
    """Without a cgroup file system (or without the right to create a group) the quota is reported as
    unavailable, with the reason, and the pool's workers run without it."""
    proc = tmp_path / "cgroup"
    proc.write_text("0::/user.slice/session-1.scope\n1:cpu,cpuacct:/user.slice\n")
    none = create_cpu_quota(0.25, root=tmp_path / "no-cgroups", proc_cgroup=proc)
    assert not none.available and none.procs is None
    assert "no cgroup file system with a cpu controller" in none.describe()
    v2 = tmp_path / "v2"  # a v2 hierarchy whose cpu controller is not delegated to this process's group
    (v2 / "user.slice" / "session-1.scope").mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    (v2 / "user.slice" / "session-1.scope" / "cgroup.subtree_control").write_text("memory\n")
    undelegated = create_cpu_quota(0.25, root=v2, proc_cgroup=proc)
    assert not undelegated.available and "cpu controller is not delegated" in undelegated.reason
    assert not create_cpu_quota(0.25, proc_cgroup=tmp_path / "missing").available  # no /proc/self/cgroup
    with pytest.raises(ValueError, match="share must be in"):
        create_cpu_quota(0.0)
    pool = WorkerPool(LIMITS, cpu_quota=0.25)
    try:
        assert pool.run("q", handle, niceness)[1] != os.getpid()  # runs, quota or not
        if not pool.quota.available:
            assert pool.quota.reason
    finally:
        pool.close()


def test_a_v2_group_with_the_cpu_controller_delegated_gets_the_quota(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/app\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "cgroup.controllers").write_text("cpu\n")
    (tmp_path / "app" / "cgroup.subtree_control").write_text("cpu memory\n")
    quota = create_cpu_quota(0.25, name="atlas-uploads-test", root=tmp_path, proc_cgroup=proc)
    assert quota.available and quota.version == "v2"
    assert (tmp_path / "app" / "atlas-uploads-test" / "cpu.max").read_text() == "25000 100000\n"
    assert quota.procs == str(tmp_path / "app" / "atlas-uploads-test" / "cgroup.procs")


def test_workers_join_the_quota_group_where_the_host_delegates_one(handle):
    """Only where this machine lets the process create a cgroup (root in a container, a delegated v2 group)."""
    pool = WorkerPool(LIMITS, cpu_quota=0.5)
    try:
        if not pool.quota.available:
            pytest.skip(pool.quota.describe())
        _, pid = pool.run("q", handle, niceness)
        assert str(pid) in Path(pool.quota.procs).read_text().split()
        assert "CPU quota 50% of one CPU" in pool.quota.describe()
    finally:
        pool.close()
    assert not Path(pool.quota.path).exists()  # removed when the pool closed


# ------------------------------------------------------------------ yielding to other sessions' page runs
SPIN_LIMITS = WorkerLimits(cpu_seconds=120, memory_bytes=2**30, deadline_seconds=300)


def _proc(pid: int) -> tuple[str, float]:
    """State letter (R, S, T = stopped, ...) and CPU time (s) of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _until(check, timeout: float = 120.0) -> bool:
    """Poll ``check`` until it holds (True) or ``timeout`` seconds pass: generous, since a nice-19 worker on a loaded
    machine gets little CPU; a fast machine returns at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture()
def spinning(handle):
    """A pool whose session ``u`` runs a call that spins (its CPU time grows), with a YieldToPages of 0.3 s
    grace; yields (pool, yielding, worker pid). The pool is closed afterwards (ending the call)."""
    yielding = YieldToPages(grace_s=0.3, max_pause_s=60.0, burst_s=0.25)
    pool = WorkerPool(SPIN_LIMITS, yield_to_pages=yielding)
    pid = _start_spinning(pool, handle)
    start = _proc(pid)[1]
    assert _until(lambda: _proc(pid)[1] > start + 0.2), "the worker never spun"
    try:
        yield pool, yielding, pid
    finally:
        pool.close()


def test_another_sessions_page_run_stops_the_busy_worker_until_its_grace_has_passed(spinning):
    _pool, yielding, pid = spinning
    with yielding.page_run("v"):
        assert _until(lambda: _proc(pid)[0] == "T"), _proc(pid)  # stopped (SIGSTOP)
        before = _proc(pid)[1]
        time.sleep(0.5)
        assert _proc(pid) == ("T", before)  # no CPU while another session's page runs
    assert _until(lambda: _proc(pid)[0] != "T")  # after the grace it goes on ...
    after = _proc(pid)[1]
    assert _until(lambda: _proc(pid)[1] > after)  # ... and spends CPU again
    assert yielding.paused_s > 0.5


def test_a_sessions_own_page_run_never_stops_its_own_worker(spinning):
    """The page of the session whose call is under way may be waiting on that call: stopping its worker then
    would only stall the session itself."""
    _pool, yielding, pid = spinning
    with yielding.page_run("u"):
        start = _proc(pid)[1]
        for _ in range(10):
            time.sleep(0.1)
            assert _proc(pid)[0] != "T"
        assert _until(lambda: _proc(pid)[1] > start)  # it spends CPU during its own session's run
    assert not yielding.should_pause()


def test_a_long_pause_lets_the_worker_run_in_bursts(handle):
    """Pages that never leave a gap do not starve an upload: after max_pause_s stopped, it runs for burst_s."""
    yielding = YieldToPages(grace_s=0.3, max_pause_s=0.5, burst_s=0.3)
    pool = WorkerPool(SPIN_LIMITS, yield_to_pages=yielding)
    try:
        pid = _start_spinning(pool, handle)
        with yielding.page_run("v"):
            assert _until(lambda: _proc(pid)[0] == "T")
            start = _proc(pid)[1]
            assert _until(lambda: _proc(pid)[1] > start + 0.05)  # it spent CPU while the page run went on
            assert _until(lambda: _proc(pid)[0] == "T")  # and is stopped again after the burst
    finally:
        pool.close()


def _start_spinning(pool: WorkerPool, handle) -> int:
    """Start session ``u``'s worker on a call that spins, in a thread (the pool's close ends it); its pid."""
    import threading

    pid = pool.run("u", handle, niceness)[1]

    def call() -> None:
        with contextlib.suppress(BaseException):  # the pool's close ends the call
            pool.run("u", handle, spin)

    threading.Thread(target=call, daemon=True).start()
    return pid


def test_closing_a_pool_with_a_stopped_worker_ends_it(spinning):
    """A stopped process acts on SIGTERM only once continued: close() continues the workers first."""
    pool, yielding, pid = spinning
    with yielding.page_run("v"):
        assert _until(lambda: _proc(pid)[0] == "T")
        pool.close()
        assert _until(lambda: not Path(f"/proc/{pid}").exists() or _proc(pid)[0] == "Z")


def test_the_apps_pool_yields_and_page_runs_mark_the_session(monkeypatch):
    """The app's pool pauses uploads for other sessions' page runs (``uploads.page_run``, wrapped around each
    script run by app.py); without a pool, marking a run is a no-op."""
    old = uploads.set_upload_pool(None)
    try:
        with uploads.page_run("a"):
            pass  # no pool: nothing to mark
        pool = uploads.upload_pool()
        assert isinstance(pool.yielding, YieldToPages)
        assert not pool.yielding.should_pause()
        with uploads.page_run("a"):
            assert pool.yielding.should_pause()  # another session's (a's) run: busy uploads would stop
        assert pool.yielding.should_pause()  # its grace
        assert _until(lambda: not pool.yielding.should_pause(), timeout=10.0)
        pool.close()
    finally:
        uploads.set_upload_pool(old)


def test_the_apps_pauses_follow_the_environment(monkeypatch):
    """``ATLAS_UPLOAD_YIELD_GRACE_S`` / ``ATLAS_UPLOAD_YIELD_BURST_S`` set the pauses, ``ATLAS_UPLOAD_YIELD=0`` turns them
    off; a value that is not a number in [0, 3600] falls back to the default instead of stopping the server."""
    for name in ("ATLAS_UPLOAD_YIELD", "ATLAS_UPLOAD_YIELD_GRACE_S", "ATLAS_UPLOAD_YIELD_BURST_S"):
        monkeypatch.delenv(name, raising=False)
    default = uploads.app_yield()
    assert default is not None and (default.grace_s, default.max_pause_s, default.burst_s) == (3.0, 2.0, 0.0)
    monkeypatch.setenv("ATLAS_UPLOAD_YIELD_GRACE_S", "1.5")
    monkeypatch.setenv("ATLAS_UPLOAD_YIELD_BURST_S", "0.25")
    got = uploads.app_yield()
    assert got is not None and (got.grace_s, got.burst_s) == (1.5, 0.25)
    monkeypatch.setenv("ATLAS_UPLOAD_YIELD_GRACE_S", "soon")
    monkeypatch.setenv("ATLAS_UPLOAD_YIELD_BURST_S", "-1")
    got = uploads.app_yield()
    assert got is not None and (got.grace_s, got.burst_s) == (3.0, 0.0)
    monkeypatch.setenv("ATLAS_UPLOAD_YIELD", "0")
    assert uploads.app_yield() is None


def test_without_bursts_a_worker_stays_stopped_while_pages_run(handle):
    """Burst 0 (the app's default): a worker is never continued while another session's pages keep running (it
    waits for a gap)."""
    yielding = YieldToPages(grace_s=0.3, max_pause_s=0.3, burst_s=0.0)
    pool = WorkerPool(SPIN_LIMITS, yield_to_pages=yielding)
    try:
        pid = _start_spinning(pool, handle)
        with yielding.page_run("v"):
            assert _until(lambda: _proc(pid)[0] == "T")
            start = _proc(pid)[1]
            for _ in range(15):  # 1.5 s: five times max_pause_s
                time.sleep(0.1)
                assert _proc(pid) == ("T", start)
        assert _until(lambda: _proc(pid)[1] > start)  # after the pages' grace it runs again
    finally:
        pool.close()


def burn(clf, seconds):
    """Spend ``seconds`` of CPU time, then return them."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return seconds


def test_a_page_run_waiting_on_a_worker_never_stops_it(handle):
    """A page run whose thread waits on a worker — of another session too (AppTest runs pages as a session whose
    id is not the upload's owner) — does not count: it must not stop the worker it waits for (a deadlock without
    bursts). The same for a page waiting on an upload job (``uploads.waiting_on_worker``)."""
    import threading

    yielding = YieldToPages(grace_s=0.3, burst_s=0.0)
    pool = WorkerPool(SPIN_LIMITS, yield_to_pages=yielding)
    old = uploads.set_upload_pool(pool)
    try:
        pool.run("", handle, niceness)  # the worker is up
        got: list[float] = []

        def page():
            with yielding.page_run("a-session"):
                got.append(pool.run("", handle, burn, 1.0))

        thread = threading.Thread(target=page, daemon=True)
        thread.start()
        thread.join(timeout=290.0)  # a second of CPU at niceness 19 on a loaded machine; the deadline is 300 s
        assert got == [1.0]  # finished: the page never stopped the worker it waited for
        assert _until(lambda: not yielding.should_pause())  # that run's grace has passed
        with yielding.page_run("a-session"):
            assert yielding.should_pause()  # a page run that computes counts ...
            with uploads.waiting_on_worker():
                assert not yielding.should_pause()  # ... one that waits on an upload's job does not
    finally:
        uploads.set_upload_pool(old)
        pool.close()
