"""The "Geometry in 2-D" page runs for every toy dataset and every model (AppTest), keeps its view in
the URL, and shows the lab's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from pagenav import switch_page
from streamlit.testing.v1 import AppTest

from geometry.toy2d import TOY_DATASETS, TOY_MODELS

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 240  # the first run trains digits-lenet for the sidebar (seconds) on a busy 2-core machine


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def lab2d_data(at: AppTest) -> dict[str, dict]:
    """The 2-D lab components on the page (pages/ui/lab2d), by mode: the data each one was sent."""
    import json

    found = {}
    for el in at.get("bidi_component"):
        proto = el.proto
        if proto.component_name == "boundary_atlas.lab2d":
            data = json.loads(proto.json)
            found[data["mode"]] = data
    return found


PAGE = "pages/geometry_2d.py"


@pytest.fixture(scope="module")
def lab_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["g2_n"] = "40"
    at.run()
    switch_page(at, PAGE)
    at.run()
    assert_no_exception(at)
    return at


@pytest.mark.parametrize("dataset", list(TOY_DATASETS))
def test_every_dataset_and_model(lab_app, dataset):
    at = lab_app
    at.selectbox(key="g2_data").set_value(dataset).run()
    for model in TOY_MODELS:
        at.selectbox(key="g2_model").set_value(model).run()
        assert_no_exception(at)
        comps = lab2d_data(at)  # the lab and the universal vector run in the browser (issue 20)
        assert set(comps) == {"lab", "universal"}, (dataset, model)
        assert comps["lab"]["model"]["type"] == ("sphere" if model == "sphere" else "mlp"), (dataset, model)
        assert len(at.get("plotly_chart")) == 3, (dataset, model)  # the certificate ladder at x, flat vs curved
        reading = [m.value for m in at.markdown if "exact distance" in m.value]  # the ladder's reading
        assert reading, (dataset, model)
        assert ("no exact distance" in reading[0]) == (model == "mlp-tanh"), (dataset, model, reading[0])
        assert at.query_params["g2_data"] == [dataset] or at.query_params["g2_data"] == dataset
        assert not at.error, [e.value for e in at.error]


def test_custom_vector_and_url_view():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in dict(
        g2_data="xor", g2_model="linear", g2_n="60", g2_pt="7", g2_dir="custom", g2_ang="45", g2_xi="0.5"
    ).items():
        at.query_params[k] = v
    at.run()
    switch_page(at, PAGE)
    at.run()
    assert_no_exception(at)
    assert at.slider(key="g2_pt").value == 7
    comps = lab2d_data(at)
    assert comps["universal"]["kind"] == "custom"
    assert comps["universal"]["angle"] == 45 and comps["universal"]["xi"] == 0.5
    assert comps["lab"]["x"] == comps["lab"]["points"][7]  # x starts on data point 7


def test_curvature_page_shows_subspace_constrained_deepfool():
    """The Curvature page's constrained-DeepFool section draws ‖r_S‖/‖r‖ against m next to √(d/m)."""
    import json

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["cv_rs"] = "on"
    at.query_params["cv_heldout"] = "10"
    at.run()
    switch_page(at, "pages/curvature.py")
    at.run()
    assert_no_exception(at)
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert (
        spec["layout"]["title"]["text"]
        .replace("<br>", " ")
        .startswith("DeepFool restricted to a random m-dimensional subspace")
    )
    assert [t["name"] for t in spec["data"]][1].startswith("√(d/m), d = 64")


def test_cross_sections_fig5_grid():
    """The Cross-sections page's Fig. 5 grid: 2 rows × 5 sections along the UAP and random v."""
    import json

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["fig5"] = "on"
    at.query_params["uv_n"] = "20"
    at.run()
    switch_page(at, "pages/cross_sections.py")
    at.run()
    assert_no_exception(at)
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert len(titles) == 10 and sum(t.startswith("universal v") for t in titles) == 5
    assert all(("not fooled" in t) or t.endswith("fooled") for t in titles)


@pytest.mark.parametrize("bad", ["-5", "1e308", "nan", "abc"])
def test_bad_url_values_are_clamped_not_raised(bad):
    """Every g2_* key of the view holding a bad value: the page still runs, widgets hold valid values."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k in ("g2_data", "g2_model", "g2_n", "g2_noise", "g2_seed", "g2_pt", "g2_dir", "g2_xi", "g2_ang", "tour"):
        at.query_params[k] = bad
    at.run()
    switch_page(at, PAGE)
    at.run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert 40 <= at.slider(key="g2_n").value <= 600
    assert 0 <= at.slider(key="g2_pt").value < at.slider(key="g2_n").value
    assert at.selectbox(key="g2_data").value in TOY_DATASETS


def test_cross_section_along_the_uap():
    """direction v = the Universal page's UAP: the section is drawn along it, titled so."""
    import json

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["dir"] = "uap"
    at.query_params["uv_n"] = "20"
    at.run()
    switch_page(at, "pages/cross_sections.py")
    at.run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "the universal perturbation v" in spec["layout"]["title"]["text"].replace("<br>", " ")


def test_ladder_follows_the_dragged_x():
    """The certificate ladder is computed at the x where the last drag ended (kept in the URL as g2_x): its reading
    states the exact distance from that x (the page alone, without the app's sidebar)."""
    from geometry.regions2d import exact_distance
    from geometry.study.toy2d import LabSettings, toy_model

    script = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom pages import geometry_2d\ngeometry_2d.render()\n"
    at = AppTest.from_string(script, default_timeout=TIMEOUT)
    at.query_params["g2_n"] = "40"
    at.query_params["g2_model"] = "mlp-relu"
    at.query_params["g2_x"] = "0.1,0.2"
    at.run()
    assert_no_exception(at)
    _, clf = toy_model(LabSettings(model="mlp-relu", n_points=40, point=0))
    d = float(exact_distance(clf, [[0.1, 0.2]]).distance[0])
    reading = [m.value for m in at.markdown if "exact distance" in m.value]
    assert reading and f"The exact distance from x to the boundary is {d:.3g}." in reading[0]
    assert len(at.get("plotly_chart")) == 3  # the ladder, flat vs curved
