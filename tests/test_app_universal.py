"""The "Universal perturbations" page (Fig. 7b, 8, 9 and the theorems) runs without an exception,
draws its three charts with the expected traces, keeps its view in the URL, and works for an
uploaded model with an uploaded dataset. Settings are kept small through query parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pagenav import switch_page
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGE = "pages/universal.py"
TIMEOUT = 400  # first run trains digits-lenet on a busy 2-core machine

# n = 20 estimation points, m ≤ 4, 2 vectors per m, 120 held-out points, UAP on 120 training points
SMALL = dict(uv_n=20, uv_m=4, uv_samples=2, uv_heldout=120, uv_uap=120)


def _run(at: AppTest) -> AppTest:
    at.run()
    switch_page(at, PAGE)
    at.run()
    return at


def _page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in {**SMALL, **query}.items():
        at.query_params[k] = str(v)
    return _run(at)


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _array(a) -> list:
    """A Plotly array: a list, or Plotly ≥ 6's {"dtype", "bdata"} (base64) encoding."""
    import base64

    import numpy as np

    if isinstance(a, dict):
        return np.frombuffer(base64.b64decode(a["bdata"]), dtype=a["dtype"]).tolist()
    return list(a)


def _names(spec: dict) -> list[str]:
    return [t.get("name", "") for t in spec["data"]]


@pytest.fixture(scope="module")
def digits_page() -> AppTest:
    # the sidebar's network labels ("(trained)", "(trains ≈ …)") read session state that AppTest's widget tree
    # cannot reach between runs (ValueError on the second run); this page's tests check the page: plain names
    import pages.ui.sidebar as sidebar

    with pytest.MonkeyPatch.context() as mp:
        if hasattr(sidebar, "_network_label"):
            mp.setattr(sidebar, "_network_label", sidebar.model_label)
        return _page()


@pytest.fixture(autouse=True)
def _plain_network_labels(monkeypatch):
    """As in tests/test_tour.py: plain network names in the sidebar's picker (see :func:`digits_page`)."""
    import pages.ui.sidebar as sidebar

    if hasattr(sidebar, "_network_label"):
        monkeypatch.setattr(sidebar, "_network_label", sidebar.model_label)


def test_fooling_rate_chart_has_three_subspaces_mean_and_best_and_the_uap_line(digits_page):
    at = digits_page
    _no_exception(at)
    assert "Universal perturbations" in [t.value for t in at.title]
    specs = _specs(at)
    assert len(specs) == 3
    names = _names(specs[0])
    for label in ("S_c (curved subspace)", "S_f (flat subspace of normals)", "random subspace"):
        assert f"{label} — mean" in names and f"{label} — best of 2" in names
    assert "UAP algorithm (CVPR 2017)" in names
    mean = next(t for t in specs[0]["data"] if t["name"] == "S_c (curved subspace) — mean")
    assert list(_array(mean["x"])) == [1, 2, 3, 4]
    assert all(0 <= y <= 100 for y in _array(mean["y"]))
    assert "held-out" in specs[0]["layout"]["yaxis"]["title"]["text"]
    labels = [m.label for m in at.metric]
    assert "ξ (pixel ℓ2)" in labels and "UAP algorithm" in labels and "random rays that never fool" in labels
    # the view is a shareable link
    assert at.query_params["uv_n"] in ("20", ["20"])
    assert "uv_share" not in at.query_params  # at its default (80 %): left out of the link, which opens it anyway
    # h defaults to where the effect shows on the MNIST LeNet (issue 13): the Fig. 7b ξ at the 80 % share; the
    # vectors' ξ defaults to 4 % of ‖x‖ (CVPR 2017's ratio, issue 23): small, and said to be so beside the gallery
    assert at.radio(key="uv_share").value == 80 and at.radio(key="uv_scale").value == "xi"
    assert at.selectbox(key="uv_xi").value == "0.04" and "uv_xi" not in at.query_params
    assert any("that is **4% of ‖x‖**" in m.value for m in at.markdown)


def test_gallery_shows_the_perturbation_and_eight_images_for_the_uap_and_an_s_c_vector(digits_page):
    names = _names(_specs(digits_page)[1])
    assert "UAP: perturbation" in names and "UAP: image 8" in names
    sc = [n for n in names if n.startswith("S_c vector (m = ") and n.endswith(": perturbation")]
    assert len(sc) == 1
    assert sum(n.startswith("S_c vector") for n in names) == 9
    notes = " ".join(a.get("text", "") for a in _specs(digits_page)[1]["layout"]["annotations"])
    assert notes.count("UAP: fools ") == 1 and notes.count("S_c vector (m = ") >= 1
    assert "most frequent new label" in notes or "fools no point" in notes


def test_diversity_heat_map_and_theorems_panel(digits_page):
    spec = _specs(digits_page)[2]
    assert _names(spec) == ["normalised inner products"]
    labels = [m.label for m in digits_page.metric]
    assert any(lbl.startswith("Theorem 1 ρ at m = ") for lbl in labels)
    assert any(lbl.startswith("Theorem 2 ρ at m = ") for lbl in labels)
    assert len(digits_page.dataframe) == 1
    table = digits_page.dataframe[0].value
    assert list(table["m"]) == [1, 2, 3, 4]
    assert "Thm 1 ρ (pixels)" in table.columns and "Thm 2 ρ (pixels)" in table.columns
    text = " ".join(c.value for c in digits_page.caption)
    assert "universal *directions*" in text


def test_h_matched_to_xi_at_the_80_percent_share_and_gallery_m_from_the_url():
    # on digits-lenet ~1/3 of random rays never change the label within the pixel cube's diameter, so
    # the 80 % noise norm needs the wider search range (geometry.study.noise_norm)
    at = _page(uv_scale="xi", uv_gm=3, uv_share=80, uv_xi="noise")  # ξ by the Fig. 7b rule: then h = ξ
    _no_exception(at)
    assert at.radio(key="uv_share").value == 80
    assert at.selectbox(key="uv_gm").value == 3
    fig = _specs(at)[0]
    xi = float(next(m.value for m in at.metric if m.label == "ξ (pixel ℓ2)"))
    assert f"h = {xi:.3g}" in fig["layout"]["title"]["text"].replace("<br>", " ")
    assert any(n.startswith("S_c vector (m = 3)") for n in _names(_specs(at)[1]))


def test_uploaded_model_with_uploaded_dataset(tmp_path):
    import io

    import torch

    from geometry import zoo
    from geometry.data import load_dataset
    from geometry.loading import load_classifier

    clf = zoo.load_model("digits-lenet")
    path = tmp_path / "my_digits.pt"
    torch.jit.save(torch.jit.script(clf.network), str(path))

    class Upload(io.BytesIO):  # what st.file_uploader hands over
        name = "my_digits.pt"

    up = load_classifier(
        Upload(path.read_bytes()), input_shape=(1, 8, 8), class_names=clf.class_names, name="upload:my_digits-uv"
    )
    data = load_dataset("digits", split="test")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in SMALL.items():
        at.query_params[k] = str(v)
    at.session_state["_user_datasets"] = {"upload:mine.npz-0": data}
    at.session_state["_user_models"] = {"upload:my_digits-uv": {"clf": up, "dataset": "upload:mine.npz-0"}}
    at.session_state["dataset"] = "upload:mine.npz-0"
    at.session_state["model"] = "upload:my_digits-uv"
    _run(at)
    _no_exception(at)
    assert at.selectbox(key="model").value == "upload:my_digits-uv"
    specs = _specs(at)
    assert len(specs) == 3 and "UAP algorithm (CVPR 2017)" in _names(specs[0])
    # one split: estimation points from one seeded half, held-out points from the other (200 images ≥ 120)
    assert "evaluated on 120 held-out" in " ".join(c.value for c in at.caption)
