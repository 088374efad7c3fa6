"""Figures built once per result (pages.ui.layout.cached_figure, issue 20 item 2): built once per key, and a page
that draws from the cache still shows the figure of its current view, never a stale one."""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
from pagenav import switch_page
from streamlit.testing.v1 import AppTest

from pages.ui import layout

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 240  # a first run may train digits-lenet on a busy machine


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_a_figure_is_built_once_per_key_and_each_key_builds_its_own():
    calls: list[str] = []

    def build(name: str):
        def make() -> go.Figure:
            calls.append(name)
            return go.Figure(layout=dict(title=dict(text=name)))

        return make

    first = layout.cached_figure("test-figure-cache|a", build("a"))
    again = layout.cached_figure("test-figure-cache|a", build("a, built again"))
    other = layout.cached_figure("test-figure-cache|b", build("b"))
    assert again is first and calls == ["a", "b"]
    assert other.layout.title.text == "b" and first.layout.title.text == "a"


def _section_spec(at: AppTest) -> dict:
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def test_cross_section_figure_follows_the_seed_there_and_back():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in dict(model="digits-lenet", res=32, dir="random", seed=0).items():
        at.query_params[k] = str(v)
    at.run()
    switch_page(at, "pages/cross_sections.py")
    at.run()
    assert_no_exception(at)
    seed0 = _section_spec(at)
    at.number_input(key="seed").set_value(1).run()
    assert_no_exception(at)
    seed1 = _section_spec(at)
    # another seed, another plane: its own title (the direction's label names the seed) and regions
    assert seed1["layout"]["title"]["text"] != seed0["layout"]["title"]["text"]
    assert "seed 1" in seed1["layout"]["title"]["text"] and "seed 0" in seed0["layout"]["title"]["text"]
    at.number_input(key="seed").set_value(0).run()
    assert _section_spec(at) == seed0  # back: the same section, drawn from the cache
