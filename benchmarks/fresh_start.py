"""Benchmark: a newcomer's fresh start, page by page (issue 20, item 3: "no page makes a newcomer wait").

Starts ``streamlit run app.py`` on a free port with an **empty cache** (``$BOUNDARY_ATLAS_CACHE`` set to a new
temporary folder: no network trained, no study computed) and MNIST present (``$BOUNDARY_ATLAS_DATA``, by default
``/work/shared/data``), with the first start's background training on (``$ATLAS_BACKGROUND_TRAINING=1``), then
opens every page of app.py in sidebar order in Debian's headless chromium (Playwright), as a newcomer would: no
``?model=``, the app's own default network. Per page it records

* **first paint** — from the navigation's start to the page's title (its ``h1``) painted in the main area;
* **finished view** — from the navigation's start to the first moment the page shows a complete result and
  nothing runs: the app's script state is ``notRunning``, no spinner (``stSpinner``), every Plotly chart drawn, and
  the page's script is not waiting inside its own job's progress bar (the job's ``Cancel`` button, key
  ``_job_cancel_…``, drawn by :func:`pages.ui.jobs.result_of`, is absent). A page that shows a stand-in
  network while its own trains (the "… is being trained. Meanwhile this page shows …" box,
  :func:`pages.ui.jobs.training_box`), or the last finished study while its own study runs ("… is being computed.
  Meanwhile this page shows …", :func:`pages.ui.jobs.study_box`), is finished when the stand-in's result is
  complete; the row says so (and
  names any other "being trained" notice, e.g. Home's first-start one). A page that says it shows nothing meanwhile
  (:data:`NOTHING_SHOWN`) is not finished until its networks are trained;
* **what the page said**: "own result" or the stand-in box's first sentence, and the progress bars' texts (the
  page's job, the sidebar's background jobs) at the finished view (or at the time-out).

``--passes 2`` (default) opens every page twice: the first pass is the newcomer's first visit (the server's
first run imports the app: Home's first paint includes it), the second a revisit on the now warm server while the
background jobs still run — the pass issue 20's "first paint ≤ 2 s on a warm server" is about.
``--budget-first-paint`` (seconds, default 2.0) marks each miss. Numbers measured on a loaded machine are upper
bounds. ``--shots DIR`` saves a 1280 px screenshot of each page at its finished view.

Usage::

    python -m benchmarks.fresh_start                                  # every page, two passes, markdown table
    python -m benchmarks.fresh_start --pages home compare robust --passes 1 --timeout 300 --out /tmp/fresh.json
    python -m benchmarks.fresh_start --shots /tmp/fresh-shots --budget-first-paint 2.0

Browser helpers (chromium path and flags, the free port, the server start) are :mod:`benchmarks.interaction`'s.
Never run ``playwright install``: the browser is Debian's chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.interaction import PAGES, ROOT, _free_port, browser_context, start_server, stop_server

#: app.py's pages in sidebar order (url path; "" is Home)
ORDER = ["", *[p for p in PAGES if p]]
DATA = Path("/work/shared/data")

#: What a page says when it shows no result while its networks train (pages/ui/jobs.py's training box without a
#: stand-in, Robust training with fewer than two trained networks; tests/test_interaction_benchmark.py keeps them
#: in the pages' sources).
NOTHING_SHOWN = ("No trained network can stand in", "Fewer than two of the chosen networks are trained yet")

# Read in the page: the first paint (the title painted in the main area).
_TITLE = """() => { const h = document.querySelector('[data-testid="stMain"] h1');
  if (!h || !h.textContent.trim()) return null; const r = h.getBoundingClientRect();
  return r.width > 0 && r.height > 0 ? performance.now() : null; }"""
# The finished view: nothing runs, no spinner, every chart drawn, no page script held by its own job's progress bar.
_FINISHED = """() => { const NOTHING = NOTHING_JS; const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  const main = document.querySelector('[data-testid="stMain"]'); if (!main || !main.querySelector('h1')) return false;
  if (document.querySelector('[data-testid="stException"]')) return true;
  if (main.querySelector('[data-testid="stSpinner"]')) return false;
  if (main.querySelector('[data-stale="true"]')) return false;
  const waiting = main.querySelector('[class*="st-key-_job_cancel_"]');  // result_of's bar and its Cancel
  if (waiting) return false;
  if ([...main.querySelectorAll('[data-testid="stAlert"]')].some(a => NOTHING.some(t => a.innerText.includes(t))))
    return false;  // a training box with nothing shown meanwhile: the page waits for that network
  return [...main.querySelectorAll('[data-testid="stPlotlyChart"]')].every(el => {
    const gd = el.querySelector('.js-plotly-plot'); return gd && gd._fullLayout && el.querySelector('.main-svg'); }); }"""
_FINISHED = _FINISHED.replace("NOTHING_JS", json.dumps(list(NOTHING_SHOWN)))
# What the page says: the stand-in box, the progress bars (main area and sidebar), an error.
_SAID = """() => { const NOTHING = NOTHING_JS; const main = document.querySelector('[data-testid="stMain"]');
  const side = document.querySelector('[data-testid="stSidebar"]');
  const text = el => (el.innerText || '').replace(/\\s+/g, ' ').trim();
  const alerts = main ? [...main.querySelectorAll('[data-testid="stAlert"]')].map(a =>
    text(a.querySelector('[data-testid="stMarkdownContainer"]') || a)) : [];  // without the icon's name
  const bars = el => el ? [...el.querySelectorAll('[data-testid="stProgress"]')].map(text).filter(t => t) : [];
  const err = document.querySelector('[data-testid="stException"]');
  const busy = a => a.includes('is being trained') || a.includes('is being computed');  // a network / a study
  return {standin: alerts.filter(a => busy(a) && a.includes('this page shows')),
    nothing: alerts.filter(a => NOTHING.some(t => a.includes(t))),
    notices: alerts.filter(a => a.includes('is being trained') && !a.includes('this page shows')
      && !NOTHING.some(t => a.includes(t))),
    page_progress: bars(main),
    sidebar_progress: bars(side), error: err ? text(err).slice(0, 200) : null,
    charts: main ? main.querySelectorAll('[data-testid="stPlotlyChart"]').length : 0}; }"""


_SAID = _SAID.replace("NOTHING_JS", json.dumps(list(NOTHING_SHOWN)))


def _first_sentence(text: str) -> str:
    head = text.split(". ")[0]
    return head if head.endswith(".") else head + "."


def visit(page, base: str, path: str, timeout_s: float, shot: Path | None = None) -> dict:
    """Open ``base/path`` and time its first paint and finished view (seconds from the navigation's start)."""
    row: dict = {"page": path or "home"}
    t0 = time.monotonic()  # the page's own clock (performance.now()) starts at the navigation: the times are its
    page.goto(f"{base}/{path}", wait_until="commit", timeout=int(timeout_s * 1000))
    deadline = t0 + timeout_s
    try:
        painted = page.wait_for_function(_TITLE, timeout=int(max(deadline - time.monotonic(), 1) * 1000), polling=50)
        row["first_paint"] = float(painted.json_value()) / 1000
    except Exception:
        row["first_paint"] = None
    try:
        page.wait_for_function(_FINISHED, timeout=int(max(deadline - time.monotonic(), 1) * 1000), polling=100)
        row["finished"] = float(page.evaluate("() => performance.now()")) / 1000
    except Exception:
        row["finished"] = None
    said = page.evaluate(_SAID)
    row.update(said)
    row["showing"] = (
        "error: " + said["error"]
        if said["error"]
        else ("stand-in: " + " ".join(said["standin"][0].split(". ")[:2]) if said["standin"] else "own result")
    )
    if said["nothing"]:
        row["showing"] = "nothing yet: " + _first_sentence(said["nothing"][0])
    if said["notices"] and not said["standin"]:
        row["showing"] += "; notice: " + _first_sentence(said["notices"][0])
    if row["finished"] is None:
        row["showing"] = f"not finished within {timeout_s:.0f} s; " + row["showing"]
    if shot is not None:
        page.screenshot(path=str(shot), full_page=False, timeout=120_000)
    return row


def markdown(rows: list[dict], budget: float) -> str:
    """The rows as a markdown table, one per page and pass; first paints over ``budget`` seconds marked."""

    def sec(x):
        return "—" if x is None else f"{x:.1f}"

    out = [
        "| pass | page | first paint (s) | finished view (s) | budget | what the page showed | progress shown |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fp = r["first_paint"]
        mark = "missed: not painted" if fp is None else (f"missed: {fp:.1f} s > {budget} s" if fp > budget else "met")
        side = r["sidebar_progress"]  # the background queue: counted here, listed in the JSON
        bars = "; ".join([*r["page_progress"], *([f"sidebar: {len(side)} background jobs"] if side else [])]) or "—"
        cells = [str(r["pass"]), r["page"], sec(fp), sec(r["finished"]), mark, r["showing"], bars.replace("|", "/")]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", nargs="*", help=f"url paths in order (default: all): home {' '.join(ORDER[1:])}")
    ap.add_argument("--passes", type=int, default=2, help="visits of every page (1: the first visit only)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds a page may take to a finished view")
    ap.add_argument("--budget-first-paint", type=float, default=2.0, help="seconds; later first paints are misses")
    ap.add_argument("--data", type=Path, default=DATA, help="the data folder with MNIST ($BOUNDARY_ATLAS_DATA)")
    ap.add_argument("--cache", type=Path, help="the cache folder (default: a new empty temporary one)")
    ap.add_argument("--port", type=int, default=0, help="the server's port (0: a free one)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--shots", type=Path, help="a folder for a screenshot of each page at its finished view")
    ap.add_argument("--out", type=Path, help="write the raw results as JSON")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    paths = ORDER if not a.pages else ["" if p == "home" else p for p in a.pages]
    unknown = [p for p in paths if p not in ORDER]
    if unknown:
        ap.error(f"unknown pages {unknown}; known: home {' '.join(ORDER[1:])}")
    if not (a.data / "MNIST").is_dir():
        print(f"warning: no MNIST under {a.data}: the first start trains nothing in the background", file=sys.stderr)
    tmp = tempfile.TemporaryDirectory(prefix="atlas-fresh-")
    cache = a.cache or Path(tmp.name) / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if any(cache.iterdir()):
        print(f"warning: the cache {cache} is not empty: this is not a fresh start", file=sys.stderr)
    # start_server copies os.environ: an empty cache, the data, the first start's background training on
    # and no file watcher: an edit of the checkout during a run must not reload modules under the running jobs
    os.environ.update(
        BOUNDARY_ATLAS_CACHE=str(cache),
        BOUNDARY_ATLAS_DATA=str(a.data.resolve()),
        ATLAS_BACKGROUND_TRAINING="1",
        STREAMLIT_SERVER_FILE_WATCHER_TYPE="none",
    )
    port = a.port or _free_port()
    started = time.monotonic()
    server = start_server(port, Path(tmp.name) / "timing.jsonl", ROOT / "app.py")
    listening = time.monotonic() - started
    base = f"http://127.0.0.1:{port}"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill` still stops the server (finally below)
    rows: list[dict] = []
    load = os.getloadavg()
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            ctx = browser_context(pw, profile, a.width, 1000)
            page = ctx.new_page()
            if a.shots:
                a.shots.mkdir(parents=True, exist_ok=True)
            for n in range(1, a.passes + 1):
                for path in paths:
                    shot = a.shots / f"pass{n}-{path or 'home'}.png" if a.shots else None
                    row = visit(page, base, path, a.timeout, shot)
                    row["pass"] = n
                    row["since_server_start"] = time.monotonic() - started
                    rows.append(row)
                    fp, fin = row["first_paint"], row["finished"]
                    print(
                        f"pass {n} {row['page']}: first paint {fp if fp is None else round(fp, 2)} s, "
                        f"finished {fin if fin is None else round(fin, 2)} s — {row['showing'][:120]}",
                        file=sys.stderr,
                    )
            ctx.close()
    finally:
        stop_server(server)
        tmp.cleanup()
    load_after = os.getloadavg()
    print(markdown(rows, a.budget_first_paint))
    print(
        f"\nserver listening {listening:.1f} s after its start; load average (1 min) {load[0]:.2f} before, "
        f"{load_after[0]:.2f} after; {os.cpu_count()} CPUs; empty cache, MNIST from {a.data}."
    )
    if a.out:
        a.out.write_text(
            json.dumps(
                {"rows": rows, "listening_s": listening, "load": [load, load_after], "cpus": os.cpu_count()}, indent=1
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
