"""Every page of the app runs without an exception (streamlit.testing AppTest), shows its chart, and
turns bad view state into a clear message instead of a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pagenav import switch_page
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 240  # first run trains digits-lenet (seconds) on a busy 2-core machine


def run_page(page: str | None = None, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = str(v)
    at.run()
    if page is not None:
        switch_page(at, page)
        at.run()
    return at


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_home_shows_model_card():
    at = run_page()
    assert_no_exception(at)
    text = " ".join(m.value for m in at.markdown)
    assert "Boundary Atlas" in " ".join(t.value for t in at.title)
    assert "digits-lenet" in " ".join(s.value for s in at.subheader)
    assert "Test accuracy" in [m.label for m in at.metric]
    assert "SGD" in text


def test_cross_section_page_draws_regions_and_marks_x_and_z():
    at = run_page("pages/cross_sections.py", seed=3, res=64)
    assert_no_exception(at)
    specs = plotly_specs(at)
    assert len(specs) == 1
    names = [t.get("name", "") for t in specs[0]["data"]]
    assert any(n.startswith("x (class") for n in names) and "z = x + r(x)" in names
    assert specs[0]["data"][0]["type"] == "heatmap"
    assert "pixel ℓ2" in specs[0]["layout"]["xaxis"]["title"]["text"]
    # the view is a shareable link
    assert at.query_params["seed"] == ["3"] or at.query_params["seed"] == "3"


def test_datapoint_out_of_range_in_url_is_clamped_not_a_traceback():
    at = run_page("pages/cross_sections.py", i=10**6, res=64)
    assert_no_exception(at)
    assert at.number_input(key="i").value == 399


def test_unknown_model_in_url_falls_back_to_default():
    at = run_page(None, model="no-such-net")
    assert_no_exception(at)
    assert at.selectbox(key="model").value == "digits-lenet"


def test_missing_dataset_gives_message_not_traceback(monkeypatch, tmp_path):
    import streamlit as st

    monkeypatch.setenv("BOUNDARY_ATLAS_DATA", str(tmp_path / "nowhere"))
    st.cache_data.clear()  # the availability check is cached per process
    at = run_page(None, model="mnist-lenet")
    assert_no_exception(at)
    errors = " ".join(e.value for e in at.error)
    assert "not available" in errors and "nowhere" in errors
    st.cache_data.clear()


PAGES = ["pages/home.py", "pages/cross_sections.py", "pages/curvature.py", "pages/universal.py", "pages/compare.py"]


@pytest.fixture(scope="module")
def scripted_digits_model(tmp_path_factory):
    """digits-lenet saved as TorchScript, loaded back through the public upload path."""
    import io

    import torch

    from geometry import zoo
    from geometry.loading import load_classifier

    clf = zoo.load_model("digits-lenet")
    path = tmp_path_factory.mktemp("upload") / "my_digits.pt"
    torch.jit.save(torch.jit.script(clf.network), str(path))

    class Upload(io.BytesIO):  # what st.file_uploader hands over
        name = "my_digits.pt"

    up = Upload(path.read_bytes())
    return load_classifier(up, input_shape=(1, 8, 8), class_names=clf.class_names, name="upload:my_digits-test")


@pytest.mark.parametrize("page", PAGES)
def test_uploaded_model_appears_in_the_picker_and_every_page_runs(page, scripted_digits_model):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["_user_models"] = {"upload:my_digits-test": {"clf": scripted_digits_model, "dataset": "digits"}}
    at.session_state["model"] = "upload:my_digits-test"
    for key, value in {
        "cv_n": 20,
        "cv_m": 4,
        "uv_n": 20,
        "uv_m": 4,
        "uv_samples": 2,
        "cmp_n": 20,
        "cmp_m": 4,
        "cmp_res": 64,
    }.items():
        at.session_state[key] = value  # small settings: the point is that every page accepts the upload
    at.run()
    if page != "pages/home.py":
        switch_page(at, page)
        at.run()
    assert_no_exception(at)
    assert "my_digits-test (upload)" in at.selectbox(key="model").options  # shown with the upload mark
    assert at.selectbox(key="model").value == "upload:my_digits-test"


def test_curvature_page_survives_a_rerun():
    """Regression: a progress bar moved from inside st.cache_data failed on the next rerun
    (CacheReplayClosureError); the page must compute, rerun (toggle) and rerun again cleanly."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["cv_n"] = 20
    at.session_state["cv_m"] = 4
    at.run()
    switch_page(at, "pages/curvature.py")
    at.run()
    assert_no_exception(at)
    assert len(at.get("plotly_chart")) == 2
    at.toggle[0].set_value(True).run()
    assert_no_exception(at)
    spec = plotly_specs(at)[0]
    assert "κ" in spec["layout"]["yaxis"]["title"]["text"]
