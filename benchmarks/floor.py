"""Benchmark: where the ≈ 0.28 s floor of a warm rerun goes, click to repaint (issue 20, item 2).

``benchmarks/interaction.py`` saw a rerun "as the browser sees it" of ≈ 0.28–0.30 s even when the script took
5 ms. This probe splits one change into stages with timestamps taken on both sides, on one clock (the
machine's wall clock: the browser's ``performance.timeOrigin + performance.now()`` and the server's
``time.time()``; both run here):

* **dispatch** — the driver's clock start (just before Playwright performs the action, as in
  ``interaction.py``) to the page's own input event (``keydown`` / ``pointerdown``): Playwright's CDP round trip;
* **widget** — that event to the first websocket frame the browser *sends* (Streamlit's widget handling,
  including any debounce of the widget type);
* **to server** — that send to the server's script (or fragment) start (websocket, Tornado, the rerun
  request queued to the script thread);
* **script** — the script body;
* **flush** — the script's end to the last websocket frame the browser *received* for that run (the
  server's message queue and its 5 ms flush loop, the run-finished message);
* **react** — that last frame to the app's ``data-test-script-state`` leaving ``running`` (React applying the
  deltas); and **repaint** — to the end of the repaint as ``interaction.py`` defines it (charts' data changed,
  ``plotly_afterplot``, stale elements).

The apps probed: a minimal Streamlit app (one number input and one slider, each either at the top level of the
script — a full rerun — or inside one ``st.fragment``, and one number written back), and optionally pages of
the Atlas (``--atlas`` runs ``interaction.py``'s interactions listed there with the same probes).

Usage::

    python -m benchmarks.floor --repeat 8                       # the minimal app
    python -m benchmarks.floor --repeat 6 --atlas curvature     # and Curvature's controls

Timings on a loaded machine are upper bounds; compare stages within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import interaction as ib

#: the minimal app: a number input and a slider at the top level, the same two inside one fragment, each
#: writing its value back; every run logs (start, end) wall-clock times, as pages/ui/timing.py does.
MINIMAL_APP = """
import json, os, time
import streamlit as st

LOG = os.environ["FLOOR_LOG"]


def log(kind, t0):
    with open(LOG, "a") as fh:
        fh.write(json.dumps({"kind": kind, "t": t0, "end": time.time()}) + "\\n")


t0 = time.time()
st.title("floor")
n = st.number_input("top number", 0, 100, 0, key="top_n")
s = st.slider("top slider", 0, 100, 50, key="top_s")
st.write(f"top: {n} {s}")


@st.fragment
def frag():
    t1 = time.time()
    m = st.number_input("fragment number", 0, 100, 0, key="frag_n")
    u = st.slider("fragment slider", 0, 100, 50, key="frag_s")
    st.write(f"fragment: {m} {u}")
    log("fragment", t1)


frag()
log("script", t0)
"""

#: the probes: input events and websocket frames, stamped on the wall clock (ms since the epoch)
_PROBE = """() => {
  const now = () => performance.timeOrigin + performance.now();
  window.__floor = {input: [], sent: [], recv: []};
  for (const type of ['keydown', 'pointerdown'])
    addEventListener(type, () => window.__floor.input.push(now()), {capture: true});
  const WS = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new WS(...args);
    const send = ws.send.bind(ws);
    ws.send = data => { window.__floor.sent.push(now()); return send(data); };
    ws.addEventListener('message', e => window.__floor.recv.push([now(), e.data.byteLength || e.data.length || 0]));
    return ws;
  };
  window.WebSocket.prototype = WS.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
}"""
_RESET = "() => { const f = window.__floor; f.input = []; f.sent = []; f.recv = []; }"
_READ = """() => { const w = window.__atlas, o = performance.timeOrigin;
  return {floor: window.__floor, t0: o + w.t0, runStart: o + w.runStart, runEnd: o + w.runEnd,
          end: o + Math.max(w.runEnd, w.last || 0)}; }"""

STAGES = ("dispatch", "widget", "to server", "script", "flush", "react", "repaint", "total")


def stages(browser: dict, runs: list[dict]) -> dict[str, float] | None:
    """One change's stages (s) from the browser's record (``_READ``) and the server's runs that started after the
    click (``{"t", "end"}`` wall-clock seconds); None when a stamp is missing (the change did not register)."""
    f = browser["floor"]
    t0 = browser["t0"] / 1000
    inputs = [t / 1000 for t in f["input"] if t / 1000 >= t0 - 0.001]
    sends = [t / 1000 for t in f["sent"] if t / 1000 >= t0]
    if not inputs or not sends or not runs:
        return None
    start = min(r["t"] for r in runs)
    end = max(r["end"] for r in runs)
    recv = [t / 1000 for t, _ in f["recv"] if t0 <= t / 1000 <= browser["runEnd"] / 1000 + 0.001]
    last = max(recv) if recv else end
    run_end, rep = browser["runEnd"] / 1000, browser["end"] / 1000
    return {
        "dispatch": inputs[0] - t0,
        "widget": sends[0] - inputs[0],
        "to server": start - sends[0],
        "script": end - start,
        "flush": last - end,
        "react": run_end - last,
        "repaint": max(0.0, rep - run_end),
        "total": rep - t0,
        "run seen by the browser": (browser["runEnd"] - browser["runStart"]) / 1000,
    }


def _server_runs(log: Path, offset: int) -> tuple[list[dict], int]:
    if not log.exists():
        return [], offset
    with open(log, encoding="utf-8") as fh:
        fh.seek(offset)
        text = fh.read()
        out = []
        for line in text.splitlines():
            if line.strip():
                r = json.loads(line)
                if "end" not in r:  # pages/ui/timing.py's lines: start and duration
                    r["end"] = r["t"] + r["seconds"]
                out.append(r)
        return out, fh.tell()


def probe(page, items: list[ib.Interaction], log: Path, repeat: int, quiet_ms: int) -> dict[str, list[dict]]:
    """Drive each interaction 2 + ``repeat`` times (2 warm-ups) on the open ``page``; returns name → stages per
    measured change."""
    out: dict[str, list[dict]] = {}
    for it in items:
        rows = []
        for step in range(2 + repeat + repeat % 2):
            offset = log.stat().st_size if log.exists() else 0
            page.evaluate(_RESET)
            try:
                ib.change(page, it, step, quiet_ms)
            except Exception as exc:  # reported, not fatal
                print(f"  {it.name}: step {step} failed: {str(exc).splitlines()[0]}", file=sys.stderr)
                continue
            runs, _ = _server_runs(log, offset)
            runs = [r for r in runs if r["kind"] == "script" or r["kind"].startswith("fragment")]
            if not any(r["kind"] == "script" for r in runs):  # a fragment rerun: its own lines only
                pass
            else:  # a full rerun: the script's line covers its fragments
                runs = [r for r in runs if r["kind"] == "script"]
            s = stages(page.evaluate(_READ), runs)
            if step >= 2 and s is not None:
                rows.append(s)
        out[it.name] = rows
        print(f"  {it.name}: {len(rows)} measured", file=sys.stderr)
    return out


def markdown(results: dict[str, dict[str, list[dict]]]) -> str:
    """Per app and interaction, the median of each stage (ms)."""
    cols = (*STAGES, "run seen by the browser")
    out = ["| app | interaction | n | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for app, items in results.items():
        for name, rows in items.items():
            if not rows:
                out.append(f"| {app} | {name} | 0 |" + " — |" * len(cols))
                continue
            cells = [f"{statistics.median(r[c] for r in rows) * 1000:.0f}" for c in cols]
            out.append(f"| {app} | {name} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


MINIMAL_ITEMS = [
    ib.Interaction("number, full rerun", "top_n", "number", ("1", "0")),
    ib.Interaction("slider, full rerun", "top_s", "slider", ("ArrowRight", "ArrowLeft")),
    ib.Interaction("number, fragment", "frag_n", "number", ("1", "0")),
    ib.Interaction("slider, fragment", "frag_s", "slider", ("ArrowRight", "ArrowLeft")),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=8)
    ap.add_argument("--quiet-ms", type=int, default=500)
    ap.add_argument("--atlas", nargs="*", default=[], help="Atlas pages to probe too (interaction.py's PAGES)")
    ap.add_argument("--model", default="digits-lenet")
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--flags",
        nargs="*",
        default=[],
        help="Streamlit flags of a second server of each app, probed in the same run (e.g. --runner.postScriptGC=false)",
    )
    ap.add_argument("--step-timeout", type=float, default=30, help="seconds before a change counts as failed")
    a = ap.parse_args(argv)
    ib.STEP_TIMEOUT_S = a.step_timeout
    from playwright.sync_api import sync_playwright

    results: dict[str, dict[str, list[dict]]] = {}
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "floor_app.py"
        app.write_text(MINIMAL_APP)
        log = Path(tmp) / "floor.jsonl"
        os.environ["FLOOR_LOG"] = str(log)
        variants = [("", ())] + ([(" " + " ".join(a.flags), tuple(a.flags))] if a.flags else [])
        servers = []
        try:
            for label, flags in variants:
                servers.append(
                    (f"minimal{label}", ib.start_server(ib._free_port(), log, app, flags), MINIMAL_ITEMS, "")
                )
                if a.atlas:
                    servers.append((f"atlas{label}", ib.start_server(ib._free_port(), log, flags=flags), None, a.model))
            with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
                ctx = ib.browser_context(pw, profile, 1280, 1400)
                ctx.add_init_script(f"({_PROBE})()")
                page = ctx.new_page()
                for name, server, items, model in servers:
                    port = server.args[server.args.index("--server.port") + 1]
                    base = f"http://127.0.0.1:{port}"
                    if items is not None:
                        ib.load_page(page, base, 120)
                        results[name] = probe(page, items, log, a.repeat, a.quiet_ms)
                        continue
                    for path in a.atlas:
                        ib.load_page(page, f"{base}/{path}?model={model}", 600)
                        results[f"{name} {path}"] = probe(page, ib.PAGES[path], log, a.repeat, a.quiet_ms)
                ctx.close()
        finally:
            for _, server, _, _ in servers:
                ib.stop_server(server)
    load_after = os.getloadavg()
    print(markdown(results))
    print(
        f"\nload average (1 min) {load[0]:.2f} before, {load_after[0]:.2f} after; {os.cpu_count()} CPUs; medians, ms."
    )
    if a.out:
        a.out.write_text(json.dumps({"results": results, "load": [load, load_after]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
