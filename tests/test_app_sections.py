"""The cross-section page along every kind of direction (random, S_c eigenvector, random vector of
S_c, S_f vector): it runs without an exception, draws one section, shows the curvature κ along v in
the figure title and as a metric, and keeps the view in the URL (paper ICLR 2018 §4–5, Fig. 5).

Small settings (digits-lenet, n = 10 estimation points, m = 3) keep each run at a few seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from pagenav import switch_page
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 240  # the first run may train digits-lenet and compute S_c on a busy 2-core machine
SMALL = dict(res=64, seed=3, cv_n=10, cv_m=3)
KAPPA = re.compile(r"curvature κ = ([+-][0-9.e+-]+)")


def run_sections(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in {**SMALL, **query}.items():
        at.query_params[k] = str(v)
    at.run()
    switch_page(at, "pages/cross_sections.py")
    at.run()
    return at


def query(at: AppTest, key: str) -> str:
    v = at.query_params[key]
    return v[0] if isinstance(v, list) else v


def title_of(at: AppTest) -> str:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(specs) == 1
    return specs[0]["layout"]["title"]["text"].replace("<br>", " ")  # titles wrap at narrow widths


@pytest.mark.parametrize(
    "direction, expected",
    [
        ("random", "random v (seed 3)"),
        ("sc", "S_c eigenvector 2"),
        ("sc_mix", "random v in S_c, m = 3 (seed 3)"),
        ("sf", "S_f vector 2"),
    ],
)
def test_each_direction_draws_a_section_with_its_curvature_in_the_title(direction, expected):
    at = run_sections(dir=direction, vec=2, sub_m=3)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    title = title_of(at)
    assert expected in title
    match = KAPPA.search(title)
    assert match, title
    metrics = {m.label: m.value for m in at.metric}
    kappa_label = next(k for k in metrics if k.startswith("κ along v"))
    assert float(metrics[kappa_label]) == pytest.approx(float(match.group(1)), rel=1e-2)
    assert any(k.startswith("paper's K(v)") for k in metrics)
    # the view is a shareable link, with the settings that define the subspace
    assert query(at, "dir") == direction and query(at, "cv_n") == "10" and query(at, "cv_m") == "3"
    captions = " ".join(c.value for c in at.caption)
    assert "finite differences, h = 1.05 (h = ξ)" in captions  # default h = ξ (1/5 of the 50 % noise norm), digits
    if direction != "random":
        kind = "flat" if direction == "sf" else "curved"
        assert f"Subspace: {kind}, m = 3, from n = " in captions


def test_subspace_directions_are_deterministic_and_differ_from_each_other():
    """S_c eigenvector 1 and 2 give different sections; the same URL gives the same κ twice."""
    t1 = title_of(run_sections(dir="sc", vec=1))
    t2 = title_of(run_sections(dir="sc", vec=2))
    t1_again = title_of(run_sections(dir="sc", vec=1))
    assert t1 == t1_again
    assert KAPPA.search(t1).group(1) != KAPPA.search(t2).group(1)


def test_bad_direction_values_in_the_url_fall_back_instead_of_failing():
    at = run_sections(dir="no-such-direction", vec=99)
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="dir").value == "random"
    at = run_sections(dir="sf", vec=99)
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="vec").value == 3  # clamped to m
    assert "S_f vector 3" in title_of(at)


def test_settings_in_session_state_are_used_by_the_page():
    """Settings set elsewhere in the session (the Curvature vs m page's keys) drive this page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["res"] = "64"
    at.session_state["cv_n"] = 10
    at.session_state["cv_m"] = 2
    at.session_state["cv_scale"] = "custom"
    at.session_state["cv_h"] = 0.5
    at.session_state["dir"] = "sc"
    at.run()
    switch_page(at, "pages/cross_sections.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="cv_m").value == 2
    captions = " ".join(c.value for c in at.caption)
    assert "h = 0.5 (custom h)" in captions and "m = 2" in captions
    # the view travels with the sidebar's links to the two pages that draw these settings (not written by
    # every run: each write would push a browser history entry)
    links = {link.proto.label: parse_qs(link.proto.query_string) for link in at.get("page_link")}
    for title in ("Cross-sections", "Curvature vs m"):
        assert links[title]["cv_scale"] == ["custom"] and links[title]["cv_m"] == ["2"], links[title]
    assert "cv_scale" not in links["Home"]
