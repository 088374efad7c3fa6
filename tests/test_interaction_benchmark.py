"""The interaction benchmark (benchmarks/interaction.py) stays in sync with the app, and the curvature
page's fragment still redraws its chart (issue 14 item 1).

No timing is asserted here: latency goals live in the benchmark (DESIGN: speed goals go to benchmarks/).
"""

from __future__ import annotations

import ast
import itertools
import json
import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent

from pagenav import switch_page  # noqa: E402

from benchmarks import interaction  # noqa: E402

APP = ROOT / "app.py"
#: a widget key: ``key="…"``, or the URL-kept ``bound("…", …)`` / ``synced("…")`` (pages/ui/state.py)
KEY = re.compile(r"""(?:key\s*=\s*|bound\(\s*|synced\(\s*)["']([A-Za-z0-9_]+)["']""")


def app_pages() -> dict[str, str]:
    """url path → page file of every visible ``st.Page`` in app.py (the default page's path is ""): a file
    page's path, or ``pages/<module>.py`` of a ``module.render`` page; the hidden forwards are left out."""
    pages = {}
    for node in ast.walk(ast.parse(APP.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Page":
            first = node.args[0]
            if isinstance(first, ast.Constant):
                file = first.value
            elif isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name):
                file = f"pages/{first.value.id}.py"
            else:
                continue
            kw = {k.arg: k.value for k in node.keywords}
            default = isinstance(kw.get("default"), ast.Constant) and kw["default"].value is True
            path = kw["url_path"].value if "url_path" in kw else Path(file).stem
            pages["" if default else path] = file
    return pages


def widget_keys(page_file: str) -> set[str]:
    """The literal widget keys of a page, of the helper modules it imports from pages/, and of the
    shared sidebar (drawn by app.py on every page)."""
    source = (ROOT / page_file).read_text()
    helpers = set(re.findall(r"from pages\.ui\.(\w+) import", source))
    for line in re.findall(r"from pages\.ui import ([\w, ]+)", source):
        helpers |= {name.strip().split(" as ")[0].strip() for name in line.split(",")}
    helpers.add("sidebar")
    texts = [source] + [
        (ROOT / "pages" / "ui" / f"{h}.py").read_text() for h in helpers if (ROOT / "pages" / "ui" / f"{h}.py").exists()
    ]
    return {k for text in texts for k in KEY.findall(text)}


def test_every_page_of_the_app_has_an_entry_in_the_benchmark():
    pages = app_pages()
    assert "" in pages and "cross_sections" in pages  # the parser found the router's pages
    assert set(interaction.PAGES) == set(pages)


def test_every_driven_widget_key_exists_on_its_page():
    pages = app_pages()
    for path, items in interaction.PAGES.items():
        keys = widget_keys(pages[path])
        for it in items:
            assert it.key in keys, f"{path or 'home'}: the benchmark drives key {it.key!r}, which the page lacks"
            assert it.kind in ("number", "slider", "select", "radio", "toggle"), it
            assert len(it.values) == 2


def test_the_sync_check_would_catch_a_renamed_key():
    keys = widget_keys(app_pages()["cross_sections"])
    assert "seed" in keys and "i" in keys  # the sidebar's datapoint counts on every page
    assert "no_such_widget" not in keys


def test_the_markdown_table_reports_the_budget():
    rows = [
        {"page": "p", "interaction": "fast", "key": "k", "repaint": [0.1, 0.2, 0.2], "run": [0.1], "script": [0.05],
         "failed": 0},
        {"page": "p", "interaction": "slow", "key": "k", "repaint": [0.5, 0.6, 2.0], "run": [], "script": [],
         "failed": 1},
    ]  # fmt: skip
    rows.append(
        {"page": "p", "interaction": "heavy", "key": "k", "repaint": [0.1, 0.1], "run": [0.1, 0.1], "script": [0.01],
         "bytes": [150e3, 450e3], "draw": [0.0, 0.02], "busy": [0.0, 0.06], "failed": 0}
    )  # fmt: skip
    drags = [
        {"kind": "drag x", "width": 1280, "frame_ms": [10.0, 20.0, 30.0], "draw_ms": [2.0, 3.0, 4.0]},
        {"kind": "drag v", "width": 800, "frame_ms": [40.0, 90.0], "draw_ms": [5.0, 6.0]},
    ]
    table = interaction.markdown(rows, drags)
    lines = table.splitlines()
    assert "| p | fast |" in lines[2] and lines[2].endswith("| met |")
    assert "| p | slow |" in lines[3] and "missed: p95 1.86 s > 0.3 s (1 failed)" in lines[3]
    # the 200 kB budget: 450 kB at p95 misses, and the received bytes are shown in kB
    assert (
        "| p | heavy |" in lines[4] and lines[4].endswith("| missed: 435 kB > 200 kB |") and "| 300 / 435 |" in lines[4]
    )
    assert "**all**" in lines[5] and "missed: p95" in lines[5]
    assert lines[9].startswith("| drag x at 1280 px | 3 |") and lines[9].endswith("| met |")
    assert lines[10].startswith("| drag v at 800 px | 2 |") and "missed: p95 87.5 ms > 50 ms" in lines[10]


def _curve_y(at: AppTest) -> list:
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return charts[0]["data"][0]["y"]


def test_the_curvature_fragment_toggle_still_redraws_the_chart():
    """K_S → κ inside the fragment: the first chart's curves change (κ = K_S/‖∇F(z)‖) and back."""
    at = AppTest.from_file(str(APP), default_timeout=240)
    for k, v in {"model": "digits-lenet", "cv_n": 10, "cv_m": 3, "cv_heldout": 5, "cv_scale": "authors"}.items():
        at.query_params[k] = str(v)
    at.run()
    switch_page(at, "pages/curvature.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    before = _curve_y(at)
    at.toggle(key="cv_norm").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    after = _curve_y(at)
    assert after != before
    at.toggle(key="cv_norm").set_value(False).run()
    assert _curve_y(at) == before


def _cell_colour(heat, z: float) -> str:
    """The colour of a heat-map cell of value ``z`` on the trace's piecewise-constant colour scale."""
    t = (z - heat.zmin) / (heat.zmax - heat.zmin)
    return next(c for (a, c), (b, _) in itertools.pairwise(heat.colorscale) if a <= t <= b)


def test_the_section_figure_labels_and_colours_every_cell_by_its_class():
    """The look-up-table colouring and the integer hover labels (issue 14) say what the grid says."""
    from types import SimpleNamespace

    import numpy as np

    from geometry.plotting import CLASS_COLORS, section_figure

    rng = np.random.default_rng(0)
    labels = rng.choice([1, 4, 7], size=(9, 11))
    sec = SimpleNamespace(alpha=np.linspace(-1, 1, 11), beta=np.linspace(-1, 1, 9), labels=labels, label=4, r_norm=0.5)
    for names, expected in ((tuple(str(i) for i in range(10)), labels), (tuple("abcdefghij"), None)):
        heat = section_figure(sec, names).data[0]
        hover = np.asarray(heat.customdata)
        want = np.asarray(names)[labels] if expected is None else expected
        assert hover.shape == labels.shape and (hover.astype(str) == want.astype(str)).all()
        z = np.asarray(heat.z)
        for (i, j), c in np.ndenumerate(labels):
            assert _cell_colour(heat, float(z[i, j])) == CLASS_COLORS[c % len(CLASS_COLORS)]


def test_the_fresh_start_benchmark_opens_every_page_in_sidebar_order():
    from benchmarks import fresh_start

    assert list(app_pages()) == fresh_start.ORDER  # app.py's pages as the sidebar lists them, Home first


def test_the_fresh_start_table_marks_first_paints_over_the_budget():
    from benchmarks import fresh_start

    def row(page, first_paint, finished, **said):
        base = {"standin": [], "nothing": [], "notices": [], "page_progress": [], "sidebar_progress": [], "error": None}
        return {"pass": 1, "page": page, "first_paint": first_paint, "finished": finished, "showing": "own result"} | {
            **base,
            **said,
        }

    rows = [
        row("home", 1.9, 3.0),
        row("compare", 2.1, 9.0, page_progress=["training mnist-nin — 40 % | ok"], sidebar_progress=["a", "b"]),
        row("certify", None, None),
    ]
    table = fresh_start.markdown(rows, 2.0).splitlines()
    assert table[2].split(" | ")[4] == "met"
    assert "missed: 2.1 s > 2.0 s" in table[3] and "training mnist-nin — 40 % / ok" in table[3]  # no stray cell
    assert "sidebar: 2 background jobs" in table[3]
    assert "missed: not painted" in table[4] and table[4].count(" — ") >= 1
    assert all(line.count("|") == table[0].count("|") for line in table)


def test_the_fresh_start_benchmark_knows_what_pages_say_when_they_show_nothing():
    from benchmarks import fresh_start

    sources = "\n".join(p.read_text() for p in (ROOT / "pages").rglob("*.py"))
    for phrase in fresh_start.NOTHING_SHOWN:
        assert phrase in sources, phrase  # a page still says it: the benchmark still recognises that page
    for script in (fresh_start._FINISHED, fresh_start._SAID):
        assert "NOTHING_JS" not in script and json.dumps(list(fresh_start.NOTHING_SHOWN)) in script


def test_the_floor_probe_splits_a_change_into_stages_that_add_up():
    """benchmarks/floor.py: each stage is the gap between two stamps of one clock, so the stages from the click to
    the repaint sum to the total; stamps from before the click (an earlier change) are ignored."""
    from benchmarks import floor

    ms = 1_000_000.0  # browser stamps are ms since the epoch, the server's seconds
    browser = {
        "t0": ms + 0.0,
        "runStart": ms + 60.0,
        "runEnd": ms + 200.0,
        "end": ms + 260.0,
        "floor": {
            "input": [ms - 500.0, ms + 8.0],
            "sent": [ms - 480.0, ms + 20.0],
            "recv": [[ms - 400.0, 10], [ms + 55.0, 100], [ms + 190.0, 50], [ms + 900.0, 5]],
        },
    }
    runs = [{"t": (ms + 25.0) / 1000, "end": (ms + 40.0) / 1000}]
    s = floor.stages(browser, runs)
    expected = {"dispatch": 8, "widget": 12, "to server": 5, "script": 15, "flush": 150, "react": 10, "repaint": 60}
    assert {k: round(s[k] * 1000, 6) for k in expected} == expected
    assert round(sum(s[k] for k in expected) * 1000, 6) == round(s["total"] * 1000, 6) == 260
    assert floor.stages(browser, []) is None  # no server run after the click: the change did not register


def test_the_app_does_not_force_a_full_garbage_collection_after_each_run():
    """Streamlit's runner.postScriptGC (default on) ran gc.collect(2) after every script and fragment run, holding
    the GIL while the run-finished message waited: the ≈ 0.3 s floor of every rerun (docs/benchmarks.md)."""
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
