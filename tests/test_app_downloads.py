"""Every page but Home offers its downloads (issue 14 items 3 and 5), through AppTest.

AppTest runs without Streamlit's media server, so a deferred ``download_button`` (its file is made
only when pressed) carries no data there. Each page therefore also leaves the builders it gave the
buttons in ``st.session_state["_downloads"][page]`` — the figure builders, the data builder and the
page's real study results — and the tests call those: the data zip parses (CSV header = the table's
columns, ``.npz`` / ``.safetensors`` keys and shapes equal the study result's tensors, README names
every key), every figure becomes HTML ("Prepare all figures" zips them around one plotly.js), and zoo pages
show the ``boundary-atlas report`` command of their settings. Settings are small (query parameters / session state, as in the pages' own tests)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pagenav import switch_page
from safetensors.numpy import load as load_safetensors
from streamlit.testing.v1 import AppTest

from geometry.output import downloads

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 400  # first use trains digits networks on a busy 2-core machine


def _get(obj, path: str):
    """``results["a"].b["c"][0]`` for the key ``a.b.c.0``."""
    for part in path.split("."):
        if isinstance(obj, dict):
            obj = obj[part]
        elif isinstance(obj, (list, tuple)):
            obj = obj[int(part)]
        else:
            obj = getattr(obj, part)
    return obj


# page → (URL / session settings, tensors that must be in the data with the result's shape: key → path in results)
PAGES = {
    "curvature": (
        {"cv_n": 20, "cv_m": 4, "cv_heldout": 10},
        ["study.curved.basis", "study.flat.basis", "study.curves.S_c.per_point"],
    ),
    "cross_sections": (
        {"res": 64, "seed": 3, "cv_n": 10, "cv_m": 3},
        ["section.deepfool.r", "section.section.labels", "section.v"],
    ),
    "universal": (
        {"uv_n": 20, "uv_m": 4, "uv_samples": 2, "uv_heldout": 120, "uv_uap": 120},
        ["study.uap.v", "study.curved.basis", "study.flat.basis", "samples.gram"],
    ),
    "compare": (
        {"cmp_n": 20, "cmp_m": 3, "cmp_res": 64, "cmp_vectors": 3},
        ["comparison.subspaces.curved.0.basis", "fooling_matrix.rates"],
    ),
    "certify": ({"cert_n": 40}, ["certify.distance", "certify.certified_accuracy"]),
    "robust": (
        {"rob_nets": "digits-lenet,digits-nin", "rob_n": 20},
        ["networks.digits-lenet.distance", "networks.digits-nin.profile.spectral_norm"],
    ),
    "geometry_2d": ({"g2_n": 40}, ["lab.r", "lab.iterates"]),
}


@pytest.fixture(scope="module", params=list(PAGES))
def page(request):
    name = request.param
    settings, _ = PAGES[name]
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in settings.items():
        at.query_params[k] = str(v)
    at.run()
    switch_page(at, f"pages/{name}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return name, at


def test_the_page_offers_figures_numbers_and_data(page):
    name, at = page
    assert "Downloads" in [e.label for e in at.expander]
    offered = at.session_state["_downloads"][name]
    labels = [b.proto.label for b in at.get("download_button")]
    drawn = [b.label for b in at.button]  # PNG / SVG: a button that draws it in the background (issue 20)
    assert labels.count("HTML") == drawn.count("PNG") == drawn.count("SVG") == len(offered["figures"]) >= 1
    assert {"Numbers (JSON)", "Table (CSV)", "Data (zip)"} <= set(labels)
    for build in offered["figures"].values():
        assert "Plotly.newPlot" in downloads.figure_html(build()).decode("utf-8")
    # the report's command line for a zoo network (the 2-D lab's toy networks have none)
    code = " ".join(c.value for c in at.code)
    assert ("boundary-atlas report --zoo digits-lenet --dataset digits" in code) == (name != "geometry_2d")


def test_each_download_parses(page):
    name, at = page
    offered = at.session_state["_downloads"][name]
    bundle = offered["data"]()
    z = zipfile.ZipFile(io.BytesIO(downloads.bundle_zip(bundle)))
    npz = np.load(io.BytesIO(z.read("tensors.npz")))
    st = load_safetensors(z.read("tensors.safetensors"))
    assert set(npz.files) == set(st)
    for key in PAGES[name][1]:
        value = np.asarray(_get(offered["results"], key), dtype=float)
        assert npz[key].shape == value.shape, key
        np.testing.assert_allclose(npz[key].astype(float), value, equal_nan=True, err_msg=key)
        assert st[key].shape == value.shape
    readme = z.read("README.txt").decode("utf-8")
    assert all(k in readme for k in npz.files)
    assert bundle.tables, "no CSV table"
    for table in bundle.tables:
        rows = list(csv.reader(io.StringIO(z.read(f"tables/{downloads._safe_name(table.name)}.csv").decode())))
        assert tuple(rows[0]) == table.columns and len(rows) == len(table.rows) + 1
    assert b'"provenance"' in downloads.numbers_json(bundle)


def test_prepare_all_figures_gives_one_zip_sharing_plotly_js(page, monkeypatch):
    name, at = page
    # HTML only (no headless browser in this test; tests/test_downloads.py draws PNG / SVG in one browser)
    monkeypatch.setattr(downloads, "static_export_problem", lambda: "PNG / SVG left out in this test")
    figures = at.session_state["_downloads"][name]["figures"]
    at.button(key=f"dl-{name}-figures-prepare").click().run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [b.proto.label for b in at.get("download_button")]
    assert "All figures (zip: HTML)" in labels
    held_key, data = at.session_state["_dl_figures"]
    assert held_key[0] == name
    z = zipfile.ZipFile(io.BytesIO(data))
    assert [n for n in z.namelist() if n.endswith(".js")] == [downloads.PLOTLY_JS]
    assert len([n for n in z.namelist() if n.endswith(".html")]) == len(figures)


def test_a_png_is_drawn_in_the_background_with_its_progress_then_offered(monkeypatch):
    """Issue 20, item 3: a single PNG (11–35 s under load) is no longer a silent download button. Its button starts
    a background job; while the image is drawn the page shows the job's progress and a disabled "PNG …"; when it is
    done the PNG's download button takes that place, with the drawn bytes. The SVG beside it is untouched."""
    import threading

    from geometry.runtime import jobs

    release, started = threading.Event(), threading.Event()
    made: list[str] = []

    def slow_image(fig, fmt="png", **kwargs):  # stands for kaleido's headless browser
        made.append(fmt)
        started.set()
        assert release.wait(60)
        return b"PNG-BYTES"

    monkeypatch.setattr(downloads, "figure_image", slow_image)
    monkeypatch.setattr(downloads, "static_export_problem", lambda: None)

    def script():
        import plotly.graph_objects as go

        from pages.ui import downloads as ui_downloads

        ui_downloads.offer("demo", None, {}, {"A figure": lambda: go.Figure(go.Scatter(y=[1, 2]))}, report=False)

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [b.label for b in at.button if b.key == "dl-demo-a_figure-png-prepare"] == ["PNG"]
    assert "PNG" not in [b.proto.label for b in at.get("download_button")]  # nothing drawn before the click
    at.button(key="dl-demo-a_figure-png-prepare").click().run()
    try:
        assert started.wait(60)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        bars = [p.proto.text for p in at.get("progress") if "A figure as PNG" in p.proto.text]
        assert bars and "drawing the PNG in a headless browser" in bars[0] and "left" in bars[0]
        (busy,) = [b for b in at.button if b.key == "dl-demo-a_figure-png-prepare"]
        assert busy.label == "PNG …" and busy.disabled
        assert [b.label for b in at.button if b.key == "dl-demo-a_figure-svg-prepare"] == ["SVG"]
    finally:
        release.set()
    (job,) = [j for j in jobs.registry().jobs() if j.key.startswith("figure-image:demo:a_figure:png:")]
    assert job.wait(60) and job.state == "done" and job.result == b"PNG-BYTES"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [p for p in at.get("progress") if "A figure as PNG" in p.proto.text]
    assert [b.proto.label for b in at.get("download_button")].count("PNG") == 1  # the drawn PNG, ready to save
    assert not [b for b in at.button if b.key == "dl-demo-a_figure-png-prepare"]
    assert made == ["png"]  # drawn once, by the job
    jobs.registry().forget(job.key)
