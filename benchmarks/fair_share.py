"""Benchmark: do other sessions stay responsive while one session's upload is hostile? (issue 22, item 2)

One server (``streamlit run app.py``, started here as :mod:`benchmarks.interaction` starts it), one
headless chromium, and ``--sessions`` (default 7) browser contexts — seven independent Streamlit
sessions — each on Cross-sections with the zoo's ``digits-lenet`` (``--page``, ``--model``). Two kinds
of run, interleaved (A B, then B A, ... for ``--rounds`` rounds) so that the machine's own noise hits
both alike:

* **A — quiet server**: the seven sessions only;
* **B — one hostile session**: the same, plus an eighth session that uploads the zero-pixel CPU bomb of
  ``tests/test_workers.py`` (cheap on the probe's random pixels, ~10⁸ iterations on exact zeros, as
  every real digit has) through Home's upload form; the app's rerun with the upload selected sends its
  first prediction on a digit to that session's upload worker, which spins until the forward pass's CPU
  budget (:data:`geometry.runtime.uploads.APP_WORKER_LIMITS`) stops it. The run starts once the worker
  is seen spending CPU (or already stopped); the hostile session is closed, and its workers stopped,
  when the run ends (the next A is quiet again).

Where the hostile session's browser runs (``--hostile-browser``):

* ``separate`` (default): its own chromium, driven by a child process of this benchmark
  (``--hostile-driver``) at niceness 19 — on a real server the attacker's browser is on the attacker's
  machine, so its rendering should not be charged to the server; with ``--hostile-repeat`` (default on)
  the attacker sets the bomb off again each time the page shows the error, by changing the sidebar's
  datapoint (each time a fresh worker loads the model and spins until its budget);
* ``shared``: a context of the benchmark's own chromium, set off once (the setup of the first
  measurements).

``ATLAS_UPLOAD_CPU_QUOTA`` in the environment (e.g. ``0.25``) reaches the server: its upload workers
then share that cgroup CPU quota where the host delegates one (the benchmark prints which).

**Taking turns, so seven sessions fit a 2-core machine**: the sessions never interact at once. In each
run, session 1 changes the datapoint (interaction benchmark's ``datapoint`` control: type, Enter) and
waits until its page is quiet, then session 2, ... then session 7; that pass is repeated ``--changes``
times. Each change is timed click-to-repaint exactly as :func:`benchmarks.interaction.change` times it
(the same driver; two warm-up changes per session before the first run). What the hostile session costs
the others is therefore the CPU its worker takes from the server and the browser, not queueing behind
other visitors' clicks.

Reported per kind of run: the seven sessions' click-to-repaint p50 / p95, the ratio p95(B) / p95(A)
(budget ≤ 1.2, issue 22), the server process's own CPU time (its threads: ``/proc/<pid>/stat``, the
upload worker is a separate process) per run, the upload workers' CPU time during B (live ones and those
already reaped: the server's children's CPU time), and how often the hostile session was told its bomb
was stopped (and how long after its click the first time).

Usage::

    python -m benchmarks.fair_share                            # 7 sessions, 3 rounds of A and B
    python -m benchmarks.fair_share --sessions 2 --rounds 1 --changes 1    # a smoke run
    python -m benchmarks.fair_share --out /tmp/fair.json
    python -m benchmarks.fair_share --hostile-browser shared --no-hostile-repeat   # the first setup
    ATLAS_UPLOAD_CPU_QUOTA=0.25 python -m benchmarks.fair_share                    # + a cgroup CPU quota
    python -m benchmarks.fair_share --upload valid        # control: the eighth session uploads a valid model, as active

Never run ``playwright install``: the browser is Debian's chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.interaction import (
    _QUIET,
    _STATE,
    CHROMIUM,
    FLAGS,
    PAGES,
    ROOT,
    STEP_TIMEOUT_S,
    _act,
    _free_port,
    _pct,
    _timing_lines,
    load_page,
    read_change,
    start_server,
    stop_server,
)

BUDGET_RATIO = 1.2  # p95(B) / p95(A), issue 22 item 2
_TICK = os.sysconf("SC_CLK_TCK")


def hostile_model(folder: Path) -> Path:
    """The zero-pixel CPU bomb of the tests, saved as TorchScript (``bomb.pt``) in ``folder``."""
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.test_workers import _ZeroLoop  # the very bomb the tests stop (a test helper, not copied)

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(_ZeroLoop().eval()), buf)
    path = folder / "bomb.pt"
    path.write_bytes(buf.getvalue())
    return path


def valid_model(folder: Path) -> Path:
    """The control of ``--upload valid``: an untrained digits LeNet (the zoo's class, input 1×8×8, 10 logits) saved as
    TorchScript (``lenet.pt``) — a well-behaved upload that the same session loads and reruns as often as the attacker
    (each rerun predicts a digit in its worker), so B then measures an eighth *active visitor*, not a hostile one."""
    import torch

    from geometry.zoo import LeNet

    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(LeNet((1, 8, 8), 10).eval()), buf)
    path = folder / "lenet.pt"
    path.write_bytes(buf.getvalue())
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time (s) of process ``pid``'s own threads (not its children); 0 when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime: the 14th and 15th fields of the file


def children_cpu_seconds(pid: int) -> float:
    """CPU time (s) of process ``pid``'s children that have ended and been waited for (cutime + cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / _TICK


def workers_cpu_seconds(server_pid: int) -> float:
    """CPU time (s) of the server's child processes so far: the live upload workers' plus every reaped
    child's (a worker a limit ended is reaped by the pool)."""
    return children_cpu_seconds(server_pid) + sum(cpu_seconds(p) for p in upload_workers(server_pid))


def upload_workers(server_pid: int) -> list[int]:
    """Pids of the server's upload workers: its children whose working folder is an ``atlas-worker-`` one."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == server_pid and Path(os.readlink(stat.parent / "cwd")).name.startswith("atlas-worker-"):
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def start_hostile(browser, base: str, bomb: Path, server_pid: int, timeout_s: float, width: int):
    """A new browser session uploads ``bomb`` through Home's form; returns the context once an upload
    worker of the server has spent 5 s of CPU (its start and the spinning).

    The upload is accepted in the worker (the probe's random pixels have no exact zeros); the form then
    reruns the app with the upload selected, and that rerun's first prediction on a digit (the sidebar's
    datapoint) is the study that sets the bomb off: the hostile session's own page stays busy until the
    worker's CPU limit, while the benchmark measures the other sessions."""
    ctx = browser.new_context(viewport={"width": width, "height": 1400})
    page = ctx.new_page()
    _submit_upload(page, base, bomb, timeout_s)
    if wait_spinning(server_pid, timeout_s):
        return ctx
    shot = Path(tempfile.gettempdir()) / "fair-share-upload.png"
    page.screenshot(path=str(shot), full_page=True)
    alerts = page.locator('[data-testid="stAlert"], [data-testid="stException"]').all_inner_texts()
    print(
        f"  the hostile upload's worker did not spin in time (screenshot {shot}, page says {alerts})", file=sys.stderr
    )
    return ctx


def wait_spinning(server_pid: int, timeout_s: float, stopped=lambda: False) -> bool:
    """Wait until an upload worker of the server has spent 3 s of CPU (its start, the load and the
    spinning), or a worker was seen and is gone again (a limit stopped it), or ``stopped()``; False on
    timeout."""
    deadline, seen = time.monotonic() + timeout_s, False
    while time.monotonic() < deadline:
        workers = upload_workers(server_pid)
        if sum(cpu_seconds(p) for p in workers) >= 3.0 or (seen and not workers) or stopped():
            return True
        seen = seen or bool(workers)
        time.sleep(0.5)
    return False


class HostileDriver:
    """The hostile session in its own browser: ``python -m benchmarks.fair_share --hostile-driver URL BOMB``
    at niceness 19, whose lines (``loaded``, ``stopped <s> <message>``) are read by a thread here."""

    def __init__(self, base: str, bomb: Path, repeat: bool, timeout_s: float, attacker_cpu: float = 0.0) -> None:
        import subprocess
        import threading

        cmd = [sys.executable, "-m", "benchmarks.fair_share", "--hostile-driver", base, str(bomb)]
        cmd += ["--timeout", str(timeout_s)] + (["--hostile-repeat"] if repeat else ["--no-hostile-repeat"])
        cmd += ["--attacker-cpu", str(attacker_cpu)]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            ["nice", "-n", "19", *cmd], cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        self.loaded: float | None = None
        self.stops: list[tuple[float, str]] = []  # (seconds after the Load click, message)
        self.refused: list[str] = []  # what the page said when an upload attempt was not loaded
        self.quota = ""  # with --attacker-cpu: the CPU quota its browser got at its Load click, or why none
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "loaded":
                self.loaded = time.monotonic()
            elif word == "refused":
                self.refused.append(rest)
            elif word == "quota":
                self.quota = rest
            elif word == "stopped":
                after, _, message = rest.partition(" ")
                self.stops.append((float(after), message))

    def close(self) -> None:
        """End the driver and its chromium (its whole process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except Exception:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        for group in Path("/sys/fs/cgroup").glob(f"*/atlas-attacker-{self.proc.pid}"):  # --attacker-cpu's group
            deadline = time.monotonic() + 10.0
            while group.exists() and time.monotonic() < deadline:  # its chromium's last processes leave it
                with contextlib.suppress(OSError):
                    group.rmdir()
                time.sleep(0.2)


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def attacker_quota(share: float) -> str:
    """Move this process and all its descendants (the attacker's chromium) into a new cgroup of ``share`` of one
    CPU (:func:`geometry.runtime.cpuquota.create_cpu_quota`); returns the quota's description, or why there is none.
    A model of the attacker's browser on the attacker's own machine: on this benchmark's 2 cores any busy core slows
    the measured sessions' browsers (docs/benchmarks.md, fair share), so a co-located attacker browser's drawing is
    charged to the server though a real one costs the server nothing."""
    from geometry.runtime.cpuquota import create_cpu_quota

    quota = create_cpu_quota(share, name=f"atlas-attacker-{os.getpid()}")
    if not quota.available or quota.procs is None:
        return quota.describe()
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(OSError):
            Path(quota.procs).write_text(f"{pid}\n")
    return f"attacker's browser: {share:g} of one CPU (cgroup {quota.version}, {quota.path})"


def hostile_driver(base: str, bomb: Path, repeat: bool, timeout_s: float, width: int, attacker_cpu: float = 0.0) -> int:
    """The hostile session's own browser (run as a child process, at niceness 19): upload ``bomb`` on Home,
    print ``loaded``; each time the page shows that a limit stopped the bomb print ``stopped <seconds after
    the click> <message>`` and, with ``repeat``, change the sidebar's datapoint to set it off again. Runs
    until it is terminated."""
    from playwright.sync_api import sync_playwright

    from benchmarks.interaction import _IDLE
    from geometry.runtime.workers import own_autogroup

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # `nice -n 19` alone does not keep this browser off the measured sessions' CPU where the kernel groups tasks by
    # session (autogroups): this driver runs in its own session, and between autogroups only the group's niceness
    # counts — so the group (this process and its chromium) goes to 19 too, as the attacker's remote machine would be
    own_autogroup(19)
    # and the SCHED_IDLE policy (inherited by chromium and Playwright's driver): this browser then takes only CPU the
    # measured sessions leave, as a browser on another machine would (the server's workers do not use it: see
    # docs/benchmarks.md, fair share)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": 1400})
            throttled: list[str] = []

            def throttle() -> None:
                # from the Load click on (the page is sent; the server works on it), this browser costs the machine at
                # most attacker_cpu: with the upload pool's pauses the page may stay running for the whole run
                if attacker_cpu > 0 and not throttled:
                    throttled.append(attacker_quota(attacker_cpu))
                    print(f"quota {throttled[0]}", flush=True)

            if bomb.name == "none":  # --upload none: an eighth session that opens Home and stays there, idle
                page = context.new_page()
                page.goto(f"{base}/", wait_until="domcontentloaded", timeout=int(timeout_s * 1000))
                page.wait_for_selector('[data-testid="stApp"]', timeout=int(timeout_s * 1000))
                print("loaded", flush=True)
                while True:
                    page.wait_for_timeout(60_000)
            for attempt in range(1, 4):
                page = context.new_page()
                refused, clicked = _upload(page, base, bomb, timeout_s, throttle)
                if refused is None:
                    break
                shot = Path(tempfile.gettempdir()) / f"fair-share-hostile-{attempt}.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"refused {attempt} {refused[:300]} (screenshot {shot})", flush=True)
                page.close()
            else:
                while True:  # never loaded: the run is marked as such by the benchmark (no `loaded` line)
                    time.sleep(60)
            print("loaded", flush=True)
            step = 0
            while True:
                page.wait_for_timeout(1500)  # the rerun has started
                page.wait_for_function(_IDLE, timeout=int(timeout_s * 1000), polling=500)  # it ended
                alerts = [
                    " ".join(a.split())
                    for a in page.locator('[data-testid="stAlert"]').all_inner_texts()
                    if "used more than" in a or "was stopped" in a
                ]
                print(
                    f"stopped {time.monotonic() - clicked:.1f} {alerts[-1][:300] if alerts else '(no message)'}",
                    flush=True,
                )
                if not repeat:
                    while True:
                        page.wait_for_timeout(60_000)
                step += 1
                field = page.locator(".st-key-i input").first
                field.fill(str(1 + step % 20))  # another digit: another prediction, the bomb again
                field.press("Enter")
                clicked = time.monotonic()
        finally:
            browser.close()


def _submit_upload(page, base: str, model: Path, timeout_s: float) -> float:
    """Open Home in ``page``, put ``model`` in the upload form's first file field and click *Load model*; returns
    the click's ``time.monotonic()``."""
    from benchmarks.interaction import _IDLE

    ms = int(timeout_s * 1000)
    page.goto(f"{base}/", wait_until="domcontentloaded", timeout=ms)
    page.wait_for_selector('[data-testid="stApp"]', timeout=ms)
    page.wait_for_timeout(2000)
    page.wait_for_function(_IDLE, timeout=ms, polling=500)
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Upload a model").first.click()
    page.locator('input[type="file"]').first.set_input_files(str(model))  # the model file (the first uploader)
    page.get_by_text(model.name).first.wait_for(timeout=ms)  # sent to the server: listed
    page.wait_for_function(_IDLE, timeout=ms, polling=500)
    page.get_by_role("button", name="Load model").click()
    return time.monotonic()


def _upload(page, base: str, model: Path, timeout_s: float, after_click=None) -> tuple[str | None, float]:
    """Upload ``model`` through Home's form in ``page`` and click *Load model*. Returns (None, the click's
    ``time.monotonic()``) once the page says the model was loaded (its success line, shown while the rerun with
    the upload selected goes on), else (what the page says instead — an error, or nothing — once its run has
    ended without it, the click's time). ``after_click()``: called once the click is sent."""
    from benchmarks.interaction import _IDLE

    clicked = _submit_upload(page, base, model, timeout_s)
    if after_click is not None:
        after_click()
    deadline, ran, idle = clicked + timeout_s, False, 0
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        alerts = [" ".join(a.split()) for a in page.locator('[data-testid="stAlert"]').all_inner_texts()]
        # loaded: the success line, or a limit's message (the sidebar, drawn before the page, predicts with the
        # upload first: a bomb spins there, and its message may come before the success line)
        if any(w in a for a in alerts for w in ("selected it in the sidebar", "used more than", "was stopped")):
            return None, clicked
        running = not page.evaluate(_IDLE)
        ran = ran or running
        idle = 0 if running else idle + 1
        if ran and idle >= 4:  # idle for a second after its run (not the instant between the load and its rerun)
            return " | ".join(alerts) or "(the run ended; no message)", clicked
    return "(the page did not confirm the load in time)", clicked


def stop_hostile(ctx, server_pid: int) -> None:
    """Close the hostile session (its browser context, or its driver process) and end its upload workers (the
    server's reaper would, at its next run; this makes the next quiet run start quiet)."""
    ctx.close()
    for pid in upload_workers(server_pid):
        os.kill(pid, signal.SIGKILL)  # a process of the server this benchmark started
    deadline = time.monotonic() + 30
    while upload_workers(server_pid) and time.monotonic() < deadline:
        time.sleep(0.5)


#: seconds a change may take to start the app's run (its script state leaving "notRunning") before it is taken as not
#: sent: the browser then saw no rerun at all (seen: the number field kept its value, so Enter changed nothing)
RUN_START_S = 15.0
_STARTED = "() => window.__atlas && window.__atlas.runStart !== null"


def change_once(page, it, step: int, quiet_ms: int) -> tuple[float, float, float, float | None] | None:
    """:func:`benchmarks.interaction.change`, except that a change whose run has not started within
    :data:`RUN_START_S` returns None at once (instead of waiting 120 s for a run that never comes)."""
    _act(page, it, step)
    try:
        page.wait_for_function(_STARTED, timeout=int(RUN_START_S * 1000), polling=50)
    except Exception:
        return None
    page.wait_for_function(_QUIET, arg=quiet_ms, timeout=int(STEP_TIMEOUT_S * 1000), polling=50)
    return read_change(page)


def turns(
    pages: list,
    it,
    steps: list[int],
    changes: int,
    quiet_ms: int,
    starts: list[float] | None = None,
    runs: list[float] | None = None,
    scripts: list[float] | None = None,
    timing: tuple[Path, str] | None = None,
) -> list[float]:
    """Each session in turn changes ``it`` once, ``changes`` times over; the click-to-repaint times (s). ``starts``
    gets each measured change's start (``time.monotonic()``), to line it up with other clocks of the run; ``runs``
    the server's run as the browser saw it (s: the app's script state from running to not running, see
    :mod:`benchmarks.interaction`) — the server's part of the change and the delivery of its last message; ``scripts``
    the server's own script time (s) of the change, from its timing log: ``timing`` = (the log, the measured page's url
    path — the hostile session's runs, on another page, are left out)."""
    out = []
    for _ in range(changes):
        for k, page in enumerate(pages):
            try:
                for attempt in (1, 2):
                    t = time.monotonic()
                    offset = timing[0].stat().st_size if timing is not None and timing[0].exists() else 0
                    got = change_once(page, it, steps[k], quiet_ms)
                    if got is not None:
                        break
                    if attempt == 2:
                        raise TimeoutError(f"no run started within {RUN_START_S:g} s, twice")
                    # no run started: say so, and change to the other value instead (once)
                    state = page.evaluate(_STATE)
                    print(
                        f"  session {k + 1}: no run after the change (page state {state}); the other value",
                        file=sys.stderr,
                    )
                    steps[k] += 1
                assert got is not None
                total, observed, _after, _busy = got
                if scripts is not None and timing is not None:
                    lines, _ = _timing_lines(timing[0], offset)
                    scripts.append(sum(r["seconds"] for r in lines if r.get("page") == timing[1]))
                out.append(total)
                if starts is not None:
                    starts.append(t)
                if runs is not None:
                    runs.append(observed)
            except Exception as exc:  # reported, not fatal: the session's next turn goes on
                print(f"  session {k + 1}: a change failed: {str(exc).splitlines()[0]}", file=sys.stderr)
                with contextlib.suppress(Exception):  # what the page looked like then (for the stalls' cause)
                    print(f"  session {k + 1}: page state {page.evaluate(_STATE)}", file=sys.stderr)
            steps[k] += 1
    return out


def summary(runs: list[dict]) -> dict:
    """p50 / p95 of each kind of run, pooled over its runs, the ratio of the p95s and the CPU times."""
    out: dict = {}
    for kind in ("A", "B"):
        rs = [r for r in runs if r["kind"] == kind and r.get("hostile_loaded", True)]
        xs = [x for r in rs for x in r["repaint"]]
        ys = [y for r in rs for y in r.get("run", [])]
        zs = [z for r in rs for z in r.get("script", [])]
        out[kind] = {
            "n": len(xs),
            "p50": _pct(xs, 50),
            "p95": _pct(xs, 95),
            "run_p50": _pct(ys, 50) if ys else float("nan"),
            "run_p95": _pct(ys, 95) if ys else float("nan"),
            "script_p50": _pct(zs, 50) if zs else float("nan"),
            "script_p95": _pct(zs, 95) if zs else float("nan"),
            "server_cpu_s": sum(r["server_cpu_s"] for r in rs),
            "wall_s": sum(r["wall_s"] for r in rs),
            "hostile_cpu_s": sum(r["hostile_cpu_s"] for r in rs),
            "hostile_stops": sum(r.get("hostile_stops_in_run", 0) for r in rs),
        }
    out["B"]["runs_without_upload"] = sum(1 for r in runs if r["kind"] == "B" and not r.get("hostile_loaded", True))
    out["ratio_p95"] = out["B"]["p95"] / out["A"]["p95"] if out["A"]["p95"] > 0 else float("nan")
    # the server's part alone (its run as the browser saw it), for where the rest of a slowdown lies
    out["ratio_run_p95"] = out["B"]["run_p95"] / out["A"]["run_p95"] if out["A"]["run_p95"] > 0 else float("nan")
    out["ratio_script_p95"] = (
        out["B"]["script_p95"] / out["A"]["script_p95"] if out["A"]["script_p95"] > 0 else float("nan")
    )
    return out


def markdown(s: dict, sessions: int) -> str:
    """The summary as a markdown table and one verdict line computed from it."""
    lines = [
        "| run | sessions measured | changes | click-to-repaint p50 / p95 (s) | server CPU (s) / wall (s) "
        "| upload workers' CPU (s) | bomb stopped (×) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, label in (("A", "A: quiet server"), ("B", "B: + 1 hostile session")):
        r = s[kind]
        lines.append(
            f"| {label} | {sessions} | {r['n']} | {r['p50']:.2f} / {r['p95']:.2f} "
            f"| {r['server_cpu_s']:.1f} / {r['wall_s']:.0f} | {r['hostile_cpu_s']:.1f} | {r['hostile_stops']} |"
        )
    if s["B"].get("runs_without_upload"):
        lines.append(
            f"\n{s['B']['runs_without_upload']} B run(s) left out: the eighth session's model was never loaded."
        )
    ratio = s["ratio_p95"]
    verdict = "met" if ratio <= BUDGET_RATIO else "missed"
    lines.append(f"\np95(B) / p95(A) = {ratio:.2f} (budget ≤ {BUDGET_RATIO}: {verdict}).")
    lines.append(
        f"The server's run alone (script state running → not running, as the browsers saw it): p95 "
        f"{s['A']['run_p95']:.2f} s (A), {s['B']['run_p95']:.2f} s (B), ratio {s['ratio_run_p95']:.2f}; the server's "
        f"script time (its timing log): p95 {s['A']['script_p95']:.3f} s (A), {s['B']['script_p95']:.3f} s (B), "
        f"ratio {s['ratio_script_p95']:.2f}."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=7, help="well-behaved sessions (browser contexts)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of one quiet run and one hostile run")
    ap.add_argument("--changes", type=int, default=3, help="changes per session per run (taking turns)")
    ap.add_argument("--page", default="cross_sections", help="the sessions' page (url path)")
    ap.add_argument("--model", default="digits-lenet", help="the sessions' network (?model=…)")
    ap.add_argument("--quiet-ms", type=int, default=500, help="quiet time that ends an interaction")
    ap.add_argument("--timeout", type=float, default=600, help="seconds for a page's first load / the upload")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--out", type=Path, help="write the raw results as JSON")
    ap.add_argument(
        "--hostile-browser",
        choices=("separate", "shared"),
        default="separate",
        help="the hostile session's browser: its own chromium at niceness 19 (default), or a context of the "
        "benchmark's chromium",
    )
    ap.add_argument(
        "--hostile-repeat",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the hostile session sets the bomb off again each time it is told it was stopped (separate only)",
    )
    ap.add_argument(
        "--upload",
        choices=("bomb", "valid", "none"),
        default="bomb",
        help="what the eighth session uploads: the zero-pixel CPU bomb (default), or, as a control, a valid digits "
        "LeNet that it reruns as often (B then measures an active visitor, not a hostile one), or nothing: it opens "
        "Home in its own browser and stays idle (B then measures an eighth session's mere presence)",
    )
    ap.add_argument(
        "--attacker-cpu",
        type=float,
        default=0.0,
        help="once it has clicked Load, put the attacker's browser (separate only) in a cgroup of this share of one "
        "CPU (e.g. 0.05; needs a writable cpu cgroup: root) — a model of a browser on another machine; 0: off",
    )
    ap.add_argument("--hostile-driver", nargs=2, metavar=("URL", "BOMB"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.hostile_driver:
        return hostile_driver(
            a.hostile_driver[0], Path(a.hostile_driver[1]), a.hostile_repeat, a.timeout, a.width, a.attacker_cpu
        )
    from playwright.sync_api import sync_playwright

    if not PAGES.get(a.page):
        ap.error(f"no interaction listed for page {a.page!r}")
    it = PAGES[a.page][0]
    runs: list[dict] = []
    load = os.getloadavg()
    quota = os.environ.get("ATLAS_UPLOAD_CPU_QUOTA", "")
    print(
        f"hostile browser: {a.hostile_browser}"
        + (", repeating" if a.hostile_browser == "separate" and a.hostile_repeat else ", set off once")
        + f"; upload: {a.upload}; ATLAS_UPLOAD_CPU_QUOTA={quota or '(unset)'}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory() as tmp:
        bomb = (
            hostile_model(Path(tmp))
            if a.upload == "bomb"
            else valid_model(Path(tmp))
            if a.upload == "valid"
            else Path(tmp) / "none"
        )
        port = _free_port()
        timing = Path(tmp) / "timing.jsonl"
        server = start_server(port, timing)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill` still stops the server (finally below)
        base = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
                pages, steps = [], []
                for k in range(a.sessions):
                    page = browser.new_context(viewport={"width": a.width, "height": 1400}).new_page()
                    load_page(page, f"{base}/{a.page}?model={a.model}", a.timeout)
                    pages.append(page)
                    steps.append(0)
                    print(f"session {k + 1}: loaded", file=sys.stderr)
                turns(pages, it, steps, 2, a.quiet_ms)  # warm-up: two changes per session, not measured
                for r in range(a.rounds):
                    for kind in ("A", "B") if r % 2 == 0 else ("B", "A"):
                        hostile: Any = None
                        spun = False  # an upload worker of the server was seen spending CPU (the upload was loaded)
                        if kind == "B" and a.hostile_browser == "shared":
                            hostile = start_hostile(browser, base, bomb, server.pid, a.timeout, a.width)
                        elif kind == "B":
                            hostile = HostileDriver(base, bomb, a.hostile_repeat, a.timeout, a.attacker_cpu)
                            if a.upload == "none":
                                deadline = time.monotonic() + a.timeout
                                while hostile.loaded is None and time.monotonic() < deadline:
                                    time.sleep(0.5)
                                time.sleep(3.0)  # its first run has ended
                            else:
                                spun = (
                                    wait_spinning(
                                        server.pid, a.timeout, lambda h=hostile: bool(h.stops) or len(h.refused) >= 3
                                    )
                                    and len(hostile.refused) < 3
                                )
                                if not spun:
                                    print("  the hostile upload's worker did not spin in time", file=sys.stderr)
                            if hostile.quota:
                                print(f"  {hostile.quota}", file=sys.stderr)
                            for line in hostile.refused:
                                print(f"  the hostile upload was not loaded: {line}", file=sys.stderr)
                        w0 = workers_cpu_seconds(server.pid)
                        c0, t0 = cpu_seconds(server.pid), time.monotonic()
                        n_stops = len(hostile.stops) if isinstance(hostile, HostileDriver) else 0
                        starts: list[float] = []
                        server_runs: list[float] = []
                        scripts: list[float] = []
                        repaint = turns(
                            pages, it, steps, a.changes, a.quiet_ms, starts, server_runs, scripts, (timing, a.page)
                        )
                        wall, server_cpu = time.monotonic() - t0, cpu_seconds(server.pid) - c0
                        hostile_cpu = workers_cpu_seconds(server.pid) - w0
                        stops: list = []
                        if isinstance(hostile, HostileDriver):
                            stops = hostile.stops[:]
                            n_stops = len(stops) - n_stops
                        if hostile is not None:
                            stop_hostile(hostile, server.pid)
                        # a B run whose eighth session never got its model loaded measures nothing of it: kept
                        # in the JSON, left out of the summary (and counted there)
                        # (the page confirms the load only once the bomb was stopped: with the pool's pauses that may
                        # come after the run, so a worker seen spinning before it counts too)
                        loaded = (
                            not isinstance(hostile, HostileDriver)
                            or hostile.loaded is not None
                            or hostile_cpu > 0.5
                            or spun
                        )
                        runs.append(
                            {
                                "round": r,
                                "kind": kind,
                                "hostile_loaded": loaded,
                                "repaint": repaint,
                                "run": server_runs,
                                "script": scripts,
                                "starts_s": [round(t - t0, 3) for t in starts],  # after the run's start
                                "t0_monotonic": t0,
                                "wall_s": wall,
                                "server_cpu_s": server_cpu,
                                "hostile_cpu_s": hostile_cpu,
                                "hostile_stops_in_run": n_stops,
                                "hostile_stops": stops,
                            }
                        )
                        print(
                            f"round {r + 1} {kind}: p50 {statistics.median(repaint) if repaint else float('nan'):.2f} s, "
                            f"server CPU {server_cpu:.1f} s in {wall:.0f} s, upload workers' CPU {hostile_cpu:.1f} s"
                            + (
                                f", bomb stopped {n_stops}× in the run (first told after {stops[0][0]:.0f} s: {stops[0][1][:160]})"
                                if stops
                                else ""
                            ),
                            file=sys.stderr,
                        )
                browser.close()
        finally:
            stop_server(server, timeout_s=60)
    s = summary(runs)
    print(markdown(s, a.sessions))
    load_after = os.getloadavg()
    print(
        f"load average (1 min) {load[0]:.2f} before, {load_after[0]:.2f} after; {os.cpu_count()} CPUs; "
        f"{a.rounds} rounds of A and B, {a.changes} changes per session per run, sessions taking turns."
    )
    if a.out:
        setup = {
            "hostile_browser": a.hostile_browser,
            "hostile_repeat": a.hostile_repeat,
            "cpu_quota": quota,
            "upload": a.upload,
            "attacker_cpu": a.attacker_cpu,
        }
        a.out.write_text(json.dumps({"runs": runs, "summary": s, "load": [load, load_after], "setup": setup}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
