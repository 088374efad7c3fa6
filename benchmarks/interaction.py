"""Benchmark: click-to-repaint latency of every page's controls in a real browser (issue 14).

Starts ``streamlit run app.py`` on a free port (or uses ``--url``), opens each page in Debian's
headless chromium driven by Playwright, and changes each listed control back and forth between two
values. The first change to each value is a warm-up (it may compute and cache); the next
``--repeat`` changes are measured, so every number is *after the first computation* (warm caches).

Three times per interaction:

* **script** — the server's run time of what the interaction re-executed: the sum of the durations
  logged by ``app.py`` (full script runs) and by timed fragments (:mod:`pages.ui.timing`) that started
  after the click. Only available when this script starts the server (it sets ``ATLAS_TIMING``) or
  ``--timing-log`` names the file of a server started with ``ATLAS_TIMING=<file>``.
* **run** — the same rerun as the browser sees it: from the app's ``data-test-script-state``
  entering ``running`` to leaving it (includes the server's serialisation and the websocket).
* **repaint** — click-to-repaint, measured in the page with ``performance.now()``. The clock starts
  just before Playwright performs the action (the option click, the key press, Enter in a number
  input; Playwright's own dispatch, a few ms, is included). The interaction is complete at the
  latest of: (a) the app's ``data-test-script-state`` attribute leaving ``running`` after having
  entered it (the server's rerun finished and its last delta arrived; watched with a
  MutationObserver); (b) the last animation frame in which any Plotly chart (``.js-plotly-plot``)
  had a new ``data`` object, appeared or disappeared, and the last ``plotly_afterplot`` event of any
  chart; (c) the last frame with stale (faded) elements. It is read once the page has stayed quiet
  — no run, no chart change — for 0.5 s. Streamlit's own delays (e.g. any widget debounce) are part
  of it, as a user sees them.

Two more per interaction (issue 20, item 2), so the table shows where each millisecond goes:

* **bytes** — the bytes of the websocket frames the browser received from the server between the click
  and the end of the interaction (Streamlit's protobuf deltas: figures, images, text).
* **draw** — the browser's painting after the server's run ended: from the run's end (the last delta
  arrived) to the repaint's end (criterion above), 0 when nothing painted later. Drawing that overlaps the
  run is not in it (a lower bound); **busy** adds the main thread's long tasks (> 50 ms, the Long Tasks
  API) over the whole interaction — React and Plotly work wherever it fell.

And the 2-D lab's drag (the in-browser component, pages/ui/lab2d): ``--lab-drag`` (on by default) drags x
and v's tip over 120 mouse moves each at the chosen width and reads the component's own
``window.__lab2dTimings``: per move, the time from the event to the end of the next frame (``frame_ms``).

Budgets (issue 20): the 2-D lab's drag-to-repaint p95 ≤ 50 ms; every other listed interaction p95 ≤ 0.3 s
click-to-repaint and ≤ 200 kB sent per update. Numbers measured on a loaded machine are upper bounds.

Usage::

    python -m benchmarks.interaction                          # every page, 5 repeats, markdown table
    python -m benchmarks.interaction --pages cross_sections geometry_2d --repeat 9 --out /tmp/lat.json
    python -m benchmarks.interaction --url http://localhost:8501 --timing-log /tmp/atlas-timing.jsonl

Never run ``playwright install``: the browser is Debian's chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BUDGET_P95 = 0.3  # seconds of click-to-repaint, p95 (issue 20)
BUDGET_KB = 200.0  # kB received by the browser per update, p95 (issue 20)
BUDGET_DRAG_MS = 50.0  # the 2-D lab's drag-to-repaint p95 (issue 20)
DRAG_MOVES = 120  # mouse moves per measured drag
STEP_TIMEOUT_S = 120  # one change, warm-ups included; a change that takes longer is reported as failed


@dataclass(frozen=True)
class Interaction:
    """One control changed back and forth between two values.

    ``kind`` says how it is driven: ``number`` (type the value, Enter), ``slider`` (arrow key on the
    thumb's range input: ``values`` are the keys to press, e.g. ("ArrowRight", "ArrowLeft")),
    ``select`` (type the value into the combobox, click the first option containing it), ``radio`` / ``toggle`` (click the
    label containing the value; a toggle's values are both its label). ``key`` is the widget's
    Streamlit key (the element carries the CSS class ``st-key-<key>``)."""

    name: str
    key: str
    kind: str
    values: tuple[str, str]


#: url path → the interactions driven on that page (every page of app.py's PAGES has an entry;
#: tests/test_interaction_benchmark.py keeps the two in sync). Home has no figure to redraw.
PAGES: dict[str, list[Interaction]] = {
    "": [],
    "geometry_2d": [
        # v's direction, ‖v‖ and angle, and dragging x or v, are drawn by the in-browser component
        # (pages/ui/lab2d): no server round trip to time here — tests/test_lab2d_browser.py measures
        # drag-to-frame from its window.__lab2dTimings hook.
        Interaction("point x", "g2_pt", "slider", ("ArrowRight", "ArrowLeft")),
    ],
    "cross_sections": [
        Interaction("datapoint", "i", "number", ("1", "0")),
        Interaction("direction v", "dir", "select", ("S_c eigenvector", "random v (uniform")),
        Interaction("seed", "seed", "number", ("1", "0")),
        Interaction("extent", "extent", "slider", ("ArrowRight", "ArrowLeft")),
    ],
    "curvature": [
        Interaction("κ / K_S toggle", "cv_norm", "toggle", ("normal curvature", "normal curvature")),
        Interaction("maximum m", "cv_m", "slider", ("ArrowRight", "ArrowLeft")),
        Interaction("datapoint (unused here)", "i", "number", ("1", "0")),
    ],
    "universal": [
        Interaction("gallery m", "uv_gm", "select", ("m = 2", "highest mean")),
        Interaction("datapoint (unused here)", "i", "number", ("1", "0")),
    ],
    "compare": [
        Interaction("S_c(A) direction", "cmp_k", "number", ("2", "1")),
        Interaction("random seed", "cmp_seed", "number", ("1", "0")),
        Interaction("datapoint", "i", "number", ("1", "0")),
    ],
    "robust": [
        Interaction("random seed", "rob_seed", "number", ("1", "0")),
        Interaction("window", "rob_extent", "slider", ("ArrowRight", "ArrowLeft")),
        Interaction("datapoint", "i", "number", ("1", "0")),
    ],
    "certify": [
        Interaction("datapoint", "i", "number", ("1", "0")),
        Interaction("test points", "cert_n", "slider", ("ArrowRight", "ArrowLeft")),
    ],
}

# Installed before each action: a fresh record in window.__atlas, a MutationObserver on the app's
# script state, plotly_afterplot hooks, and an animation-frame loop watching the charts' data.
_ARM = """() => {
  const w = window.__atlas = {t0: performance.now(), runStart: null, runEnd: null, last: null, busy: 0};
  if (window.__atlasLong) window.__atlasLong.disconnect();
  try {  // main-thread tasks over 50 ms (Long Tasks API), counted while this record is the current one
    window.__atlasLong = new PerformanceObserver(list => { if (window.__atlas === w)
      for (const e of list.getEntries()) if (e.startTime >= w.t0) w.busy += e.duration; });
    window.__atlasLong.observe({type: 'longtask'});
  } catch (e) { w.busy = null; }
  const app = document.querySelector('[data-testid="stApp"]');
  const state = () => app.getAttribute('data-test-script-state');
  const busy = s => s === 'running' || s === 'rerunRequested';
  const onState = records => {
    const now = performance.now(), s = state();
    // a run that started and ended within one task comes as two records in one batch: the second's old value
    // is 'running' while the attribute already reads 'notRunning' (without this the change was never seen)
    if ((records || []).some(r => busy(r.oldValue)) && w.runStart === null) w.runStart = now;
    if (busy(s)) { if (w.runStart === null) w.runStart = now; w.runEnd = null; }
    else if (w.runStart !== null && w.runEnd === null) w.runEnd = now;
  };
  if (window.__atlasObs) window.__atlasObs.disconnect();
  window.__atlasObs = new MutationObserver(onState);
  window.__atlasObs.observe(app, {attributes: true, attributeOldValue: true, attributeFilter: ['data-test-script-state']});
  onState(null);  // a run already under way when the clock starts (the action then joins it)
  const ids = new WeakMap(); let next = 1;
  const sig = () => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
    if (!gd.__atlasHooked && gd.on) {
      gd.__atlasHooked = true;
      gd.on('plotly_afterplot', () => { const a = window.__atlas; if (a) a.last = performance.now(); });
    }
    const d = gd.data; if (!d) return '-';
    if (!ids.has(d)) ids.set(d, next++);
    return ids.get(d) + (gd._fullLayout ? 'L' : '') + (gd.querySelector('.main-svg') ? 'S' : '');
  }).join(',');
  let prev = sig();
  const tick = () => {
    if (window.__atlas !== w) return;
    const now = performance.now(), cur = sig();
    if (cur !== prev) { w.last = now; prev = cur; }
    if (document.querySelector('[data-stale="true"]')) w.last = Math.max(w.last || 0, now);
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""
_QUIET = """(quiet) => { const w = window.__atlas; if (!w || w.runEnd === null) return false;
  const end = Math.max(w.runEnd, w.last || 0);
  return performance.now() - end > quiet; }"""
_RESULT = """() => { const w = window.__atlas; const end = Math.max(w.runEnd, w.last || 0);
  return [(end - w.t0) / 1000, (w.runEnd - w.runStart) / 1000, (end - w.runEnd) / 1000,
          w.busy === null ? null : w.busy / 1000]; }"""
_STATE = """() => ({script: document.querySelector('[data-testid="stApp"]').getAttribute('data-test-script-state'),
  clock: window.__atlas, focused: (document.activeElement || {}).outerHTML?.slice(0, 160)})"""
_IDLE = (
    """() => document.querySelector('[data-testid="stApp"]').getAttribute('data-test-script-state') === 'notRunning'"""
)
_LOADED = """() => { const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-testid="stException"]')) return true;
  return [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].every(el => {
    const gd = el.querySelector('.js-plotly-plot'); return gd && gd._fullLayout && el.querySelector('.main-svg'); }); }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    port: int, timing_log: Path, app: Path = ROOT / "app.py", flags: tuple[str, ...] = ()
) -> subprocess.Popen:
    """``streamlit run app.py`` on ``port`` with ``ATLAS_TIMING=timing_log`` and Streamlit's command-line ``flags``
    (e.g. ``("--runner.postScriptGC", "false")``); returns once it listens."""
    # no first-start mnist-lenet training behind the measurement (pages/ui/jobs.py): it would load the cores
    env = dict(os.environ, ATLAS_TIMING=str(timing_log))
    env.setdefault("ATLAS_BACKGROUND_TRAINING", "0")
    args = ["--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1", *flags]
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app), *args, "--browser.gatherUsageStats", "false"],
        cwd=app.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("streamlit did not start within 90 s")


def stop_server(server: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Stop a server :func:`start_server` started: SIGTERM, then SIGKILL after ``timeout_s`` (a loaded machine
    must never lose the measurements to a slow stop)."""
    server.terminate()
    try:
        server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=30)


def browser_context(pw, profile: str, width: int, height: int):
    """A headless Debian-chromium context (:data:`CHROMIUM`, :data:`FLAGS`) with its own profile folder and a
    ``width`` × ``height`` viewport, from a Playwright ``sync_playwright()`` handle ``pw``."""
    return pw.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True, args=FLAGS, viewport={"width": width, "height": height}
    )


def _timing_lines(path: Path | None, offset: int) -> tuple[list[dict], int]:
    if path is None or not path.exists():
        return [], offset
    with open(path, encoding="utf-8") as fh:
        fh.seek(offset)
        text = fh.read()
        return [json.loads(line) for line in text.splitlines() if line.strip()], fh.tell()


def _act(page, it: Interaction, step: int) -> None:
    """Perform the change of ``it`` to its value number ``step % 2`` (the clock is armed just before)."""
    page.wait_for_function(_IDLE, timeout=int(STEP_TIMEOUT_S * 1000), polling=50)
    dialog = page.locator('[role="dialog"]')
    if dialog.count():  # a modal (e.g. Streamlit's own notices) takes the keyboard focus: close it first
        print(f"  closing a dialog: {dialog.first.inner_text()[:200]!r}", file=sys.stderr)
        page.keyboard.press("Escape")
        dialog.first.wait_for(state="detached", timeout=10_000)
    box = page.locator(f".st-key-{it.key}").first
    value = it.values[step % 2]
    if it.kind == "number":
        field = box.locator("input")
        field.fill(value)
        page.evaluate(_ARM)
        field.press("Enter")
    elif it.kind == "slider":
        thumb = box.locator('input[type="range"]').first
        thumb.focus()
        page.evaluate(_ARM)
        thumb.press(value)
    elif it.kind == "select":  # type into the combobox to filter the list, then choose the matching option
        field = box.locator('[role="combobox"]').first
        field.click()
        field.fill(value)
        option = page.locator('[role="option"]').filter(has_text=value).first
        option.wait_for(timeout=10_000)
        page.evaluate(_ARM)
        option.click()
    elif it.kind in ("radio", "toggle"):
        label = box.locator("label").filter(has_text=value).first
        page.evaluate(_ARM)
        label.click()
    else:
        raise ValueError(f"unknown interaction kind {it.kind!r}")


class Received:
    """Bytes of the websocket frames a page received (Playwright's ``framereceived``), as a running total."""

    def __init__(self, page) -> None:
        self.total = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._add))

    def _add(self, payload) -> None:
        self.total += len(payload.encode() if isinstance(payload, str) else payload)


def load_page(page, url: str, timeout_s: float) -> None:
    """Open ``url`` and wait for its first computation (every chart drawn, or an exception shown)."""
    page.goto(url, wait_until="domcontentloaded", timeout=int(timeout_s * 1000))
    page.wait_for_selector('[data-testid="stApp"]', timeout=int(timeout_s * 1000))
    page.wait_for_function(_LOADED, timeout=int(timeout_s * 1000), polling=200)
    page.wait_for_timeout(500)


def change(page, it: Interaction, step: int, quiet_ms: int) -> tuple[float, float, float, float | None]:
    """Change ``it`` to its value number ``step % 2`` and wait until the page is quiet; returns
    :func:`read_change`'s times. Raises Playwright's errors when the control cannot be driven in
    :data:`STEP_TIMEOUT_S`."""
    _act(page, it, step)
    page.wait_for_function(_QUIET, arg=quiet_ms, timeout=int(STEP_TIMEOUT_S * 1000), polling=50)
    return read_change(page)


def read_change(page) -> tuple[float, float, float, float | None]:
    """The last change's (click-to-repaint, run seen by the browser, draw after the run, long tasks), in seconds."""
    total, observed, after_run, long_tasks = page.evaluate(_RESULT)
    return float(total), float(observed), float(after_run), None if long_tasks is None else float(long_tasks)


def measure_page(
    page, url: str, path: str, items, repeat: int, timing_log, quiet_ms: int, timeout_s: float, received=None
):
    """Open ``url``, wait for the first computation, then measure each interaction of page ``path``
    (``received``: the page's :class:`Received`, for the bytes per interaction)."""
    load_page(page, url, timeout_s)
    print(f"  {path}: loaded", file=sys.stderr)
    if page.locator('[data-testid="stException"]').count():
        error = page.locator('[data-testid="stException"]').first.inner_text().splitlines()[0]
        print(f"  {path}: the page raised an exception, skipped: {error}", file=sys.stderr)
        return [
            {
                "page": path,
                "interaction": it.name,
                "key": it.key,
                "repaint": [],
                "run": [],
                "script": [],
                "bytes": [],
                "draw": [],
                "busy": [],
                "failed": -1,
                "error": error,
            }
            for it in items
        ]
    rows = []
    for it in items:
        repaint, run, script, sent, draw, busy, failed = [], [], [], [], [], [], 0
        # two warm-up changes (one to each value), then `repeat` measured, rounded up to an even number
        # so that the control ends where it began (a later control may depend on it, e.g. a seed on v)
        for step in range(2 + repeat + repeat % 2):
            offset = timing_log.stat().st_size if timing_log and timing_log.exists() else 0
            bytes0 = received.total if received is not None else 0
            try:
                total, observed, after_run, long_tasks = change(page, it, step, quiet_ms)
            except Exception as exc:  # a control that could not be driven is reported, not fatal
                failed += 1
                state = page.evaluate(_STATE)
                print(f"  {path or 'home'} / {it.name}: page state at the failure: {state}", file=sys.stderr)
                print(
                    f"  {path or 'home'} / {it.name}: step {step} failed: {str(exc).splitlines()[0]}", file=sys.stderr
                )
                if failed >= 2:  # a control that cannot be driven: do not wait for every step
                    break
                page.wait_for_timeout(1000)
                continue
            if step < 2:
                continue
            repaint.append(float(total))
            run.append(float(observed))
            draw.append(max(0.0, float(after_run)))
            if long_tasks is not None:
                busy.append(float(long_tasks))
            if received is not None:
                sent.append(float(received.total - bytes0))
            lines, _ = _timing_lines(timing_log, offset)
            if lines:  # none: the server logs no timing (an app without the hook)
                script.append(sum(r["seconds"] for r in lines))
        rows.append(
            {
                "page": path or "home",
                "interaction": it.name,
                "key": it.key,
                "repaint": repaint,
                "run": run,
                "script": script,
                "bytes": sent,
                "draw": draw,
                "busy": busy,
                "failed": failed,
            }
        )
        print(f"  {path or 'home'} / {it.name}: {_fmt(repaint)}", file=sys.stderr)
    return rows


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] if q < 100 else max(xs)


def _fmt(xs: list[float]) -> str:
    return f"p50 {_pct(xs, 50):.2f} s, p95 {_pct(xs, 95):.2f} s (n = {len(xs)})" if xs else "no data"


def _budget(repaint: list[float], sent: list[float]) -> tuple[bool, list[str]]:
    """Whether one interaction meets issue 20's budget, and each miss named."""
    misses = []
    if _pct(repaint, 95) > BUDGET_P95:
        misses.append(f"p95 {_pct(repaint, 95):.2f} s > {BUDGET_P95} s")
    if sent and _pct(sent, 95) / 1000 > BUDGET_KB:
        misses.append(f"{_pct(sent, 95) / 1000:.0f} kB > {BUDGET_KB:.0f} kB")
    return not misses, misses


def markdown(rows: list[dict], drags: list[dict] | None = None) -> str:
    """The results as a markdown table: per interaction, then per page (all its interactions pooled); the 2-D lab's
    drags (``drags``, from :func:`measure_drags`) in a second table."""
    out = [
        "| page | interaction | script p50 / p95 (s) | run seen by the browser p50 / p95 (s) "
        "| draw after the run p50 / p95 (s) | long tasks p50 / p95 (s) | received p50 / p95 (kB) "
        "| click-to-repaint p50 / p95 (s) | budget |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def pair(xs: list[float], spec: str, scale: float = 1.0) -> str:
        return f"{_pct(xs, 50) / scale:{spec}} / {_pct(xs, 95) / scale:{spec}}" if xs else "—"

    def line(page, name, script, run, draw, busy, sent, repaint, failed=0):
        ok, misses = _budget(repaint, sent)
        mark = ("met" if ok else "missed: " + "; ".join(misses)) if repaint else "not measured"
        if failed < 0:
            mark = "page error"
        elif failed:
            mark += f" ({failed} failed)"
        cells = [pair(script, ".3f"), pair(run, ".2f"), pair(draw, ".2f"), pair(busy, ".2f"), pair(sent, ".0f", 1000)]
        out.append(f"| {page} | {name} | " + " | ".join(cells) + f" | {pair(repaint, '.2f')} | {mark} |")

    keys = ("script", "run", "draw", "busy", "bytes", "repaint")
    pages: dict[str, list[dict]] = {}
    for row in rows:
        pages.setdefault(row["page"], []).append(row)
        line(row["page"], row["interaction"], *(row.get(k, []) for k in keys), row["failed"])
    for page, rs in pages.items():
        line(page, "**all**", *([x for r in rs for x in r.get(k, [])] for k in keys))
    if drags:
        out += [
            "",
            "| 2-D lab drag | moves | draw p50 / p95 (ms) | event to next frame p50 / p95 (ms) | budget |",
            "|---|---|---|---|---|",
        ]
        for d in drags:
            frame, draw = d["frame_ms"], d["draw_ms"]
            if not frame:
                out.append(f"| {d['kind']} at {d['width']} px | 0 | — | — | not measured |")
                continue
            p95 = _pct(frame, 95)
            mark = "met" if p95 <= BUDGET_DRAG_MS else f"missed: p95 {p95:.1f} ms > {BUDGET_DRAG_MS:.0f} ms"
            out.append(
                f"| {d['kind']} at {d['width']} px | {len(frame)} | {_pct(draw, 50):.1f} / {_pct(draw, 95):.1f} "
                f"| {_pct(frame, 50):.1f} / {p95:.1f} | {mark} |"
            )
    return "\n".join(out)


def measure_drags(page, base: str, width: int, timeout_s: float, shot: Path | None = None) -> list[dict]:
    """Drag x (the lab) and v's tip (the universal panel) of the 2-D lab page over :data:`DRAG_MOVES` moves each;
    returns the component's ``window.__lab2dTimings`` per drag. ``shot``: a screenshot taken mid-drag of x."""
    page.set_viewport_size({"width": width, "height": 1400})
    page.goto(f"{base}/geometry_2d", wait_until="domcontentloaded", timeout=int(timeout_s * 1000))
    ready = '.lab2d[data-mode="{}"][data-ready="1"]'
    page.wait_for_selector(ready.format("lab"), timeout=int(timeout_s * 1000))
    page.wait_for_function(_IDLE, timeout=int(timeout_s * 1000), polling=200)
    page.wait_for_timeout(1000)
    out = []
    for mode, kind in (("lab", "x"), ("universal", "v")):
        panel = page.locator(f'.lab2d[data-mode="{mode}"]').first
        if not panel.count():
            out.append({"kind": f"drag {kind}", "width": width, "frame_ms": [], "draw_ms": []})
            continue
        panel.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        box = panel.locator("canvas").bounding_box()
        hx, hy = (float(t) for t in panel.get_attribute("data-handle").split(","))
        x, y = box["x"] + hx, box["y"] + hy
        page.evaluate("() => { window.__lab2dTimings = []; }")
        page.mouse.move(x, y)
        page.mouse.down()
        for k in range(1, DRAG_MOVES + 1):
            page.mouse.move(x + 120 * ((k % 40) / 40) - 60, y - 80 * ((k % 30) / 30) + 40)
            if shot is not None and kind == "x" and k == DRAG_MOVES // 2:
                page.screenshot(path=str(shot), timeout=120_000)
        page.mouse.up()
        page.wait_for_timeout(300)
        t = page.evaluate(f"() => (window.__lab2dTimings || []).filter(t => t.kind === '{kind}')")
        out.append(
            {
                "kind": f"drag {kind}",
                "width": width,
                "frame_ms": [float(s["frame_ms"]) for s in t],
                "draw_ms": [float(s["draw_ms"]) for s in t],
            }
        )
        print(f"  2-D lab drag {kind} at {width} px: {len(t)} moves", file=sys.stderr)
        page.wait_for_function(_IDLE, timeout=int(timeout_s * 1000), polling=200)  # the drag's end reruns once
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server (default: start one on a free port)")
    ap.add_argument("--port", type=int, default=8616, help="port of the server started here (0: a free one)")
    ap.add_argument("--timing-log", type=Path, help="with --url: the server's ATLAS_TIMING file")
    ap.add_argument("--pages", nargs="*", help=f"url paths (default: all): {', '.join(p for p in PAGES if p)}")
    ap.add_argument("--repeat", type=int, default=5, help="measured changes per interaction (after 2 warm-ups)")
    ap.add_argument("--quiet-ms", type=int, default=500, help="quiet time that ends an interaction")
    ap.add_argument("--timeout", type=float, default=600, help="seconds for a page's first load (it may train)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument(
        "--model", default="digits-lenet", help="the sidebar's network (?model=…); '' for the app's default"
    )
    ap.add_argument("--app", type=Path, default=ROOT / "app.py", help="the app to start (e.g. an older checkout's)")
    ap.add_argument("--out", type=Path, help="write the raw results as JSON")
    ap.add_argument(
        "--drag-widths",
        type=int,
        nargs="*",
        default=[1280],
        help="widths (px) at which the 2-D lab's drags are measured (none: skip them)",
    )
    ap.add_argument("--drag-shots", type=Path, help="a folder for a screenshot of the 2-D lab mid-drag per width")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    selected = [p for p in PAGES if p] if not a.pages else a.pages
    unknown = [p for p in selected if p not in PAGES]
    if unknown:
        ap.error(f"unknown pages {unknown}; known: {[p for p in PAGES if p]}")
    server, timing_log = None, a.timing_log
    tmp = tempfile.TemporaryDirectory()
    if a.url is None:
        timing_log = Path(tmp.name) / "timing.jsonl"
        port = a.port or _free_port()
        server = start_server(port, timing_log, a.app.resolve())
        base = f"http://127.0.0.1:{port}"
    else:
        base = a.url.rstrip("/")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill` still stops the server (finally below)
    rows: list[dict] = []
    drags: list[dict] = []
    load = os.getloadavg()
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            ctx = browser_context(pw, profile, a.width, 1400)
            page = ctx.new_page()
            received = Received(page)
            for path in selected:
                if not PAGES[path]:
                    continue
                print(f"{path}:", file=sys.stderr)
                url = f"{base}/{path}" + (f"?model={a.model}" if a.model else "")
                rows += measure_page(
                    page, url, path, PAGES[path], a.repeat, timing_log, a.quiet_ms, a.timeout, received=received
                )
            if "geometry_2d" in selected:
                if a.drag_shots:
                    a.drag_shots.mkdir(parents=True, exist_ok=True)
                for width in a.drag_widths:
                    shot = a.drag_shots / f"lab2d-mid-drag-{width}.png" if a.drag_shots else None
                    drags += measure_drags(page, base, width, a.timeout, shot)
            ctx.close()
    finally:
        if server is not None:
            stop_server(server)
        tmp.cleanup()
    load_after = os.getloadavg()
    print(markdown(rows, drags))
    print(
        f"\nload average (1 min) {load[0]:.2f} before, {load_after[0]:.2f} after; {os.cpu_count()} CPUs; "
        f"{a.repeat} measured changes per interaction after 2 warm-ups."
    )
    if a.out:
        a.out.write_text(
            json.dumps(
                {"rows": rows, "drags": drags, "load": [load, load_after], "cpus": os.cpu_count(), "repeat": a.repeat},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
