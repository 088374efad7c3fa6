"""Every step of the guided tour opens without error in AppTest, shows its caption, and links on."""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import pytest
from pagenav import switch_page
from streamlit.testing.v1 import AppTest

from pages.ui.tour import TOUR, tour_links

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 300  # a fresh cache computes S_c, ξ and the UAP of the digits network on a busy 2-core machine


@pytest.fixture(autouse=True)
def _plain_network_labels(monkeypatch):
    """The sidebar's network labels ("(trained)", "(trains ≈ …)", pages/ui/sidebar._network_label) read the session
    state, which AppTest's widget tree cannot reach between runs (it then looks for a label the picker never showed:
    ValueError on the second ``run``). The tour's tests check steps, not labels: plain names here."""
    import pages.ui.sidebar as sidebar

    if hasattr(sidebar, "_network_label"):
        monkeypatch.setattr(sidebar, "_network_label", sidebar.model_label)


@pytest.mark.parametrize("step", range(1, len(TOUR) + 1))
def test_tour_step_opens(step):
    s = TOUR[step - 1]
    url = urlparse(s.url(step))
    assert url.path == f"/{s.url_path}"
    assert s.url_path == Path(s.page).stem  # a first request after a server start finds the file (app.py)
    assert f'url_path="{s.url_path}"' in (ROOT / "app.py").read_text(), "the step's page is not in the router"
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in parse_qsl(url.query):
        at.query_params[k] = v
    at.run()
    switch_page(at, s.page)
    at.run()
    # a network the step shows that is not trained yet trains as a job while the page shows the nearest trained one
    # (pages/ui/jobs.py): the step is open once its own networks are ready
    from geometry.runtime import jobs

    if any(not j.finished for j in jobs.registry().jobs()):
        for job in jobs.registry().jobs():
            job.wait(TIMEOUT)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["_sidebar"]["model"] == (s.network or at.session_state["_sidebar"]["model"])
    banner = " ".join(i.value for i in at.info)
    assert f"Guided tour {step}/{len(TOUR)}" in banner and s.caption in banner
    banner += " ".join(m.value for m in at.markdown)
    if step < len(TOUR):
        # the link to the next step, opening in the same tab
        assert f'<a href="{escape(TOUR[step].url(step + 1))}" target="_self">' in banner
    assert len(at.get("plotly_chart")) >= 1


def test_tour_captions_are_two_sentences_and_listed():
    for s in TOUR:
        assert s.caption.count(". ") + s.caption.endswith(".") == 2, s.caption
    links = tour_links()
    assert all(s.url(i) in links for i, s in enumerate(TOUR, start=1))


def test_present_layout_keeps_itself_along_the_tour():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in parse_qsl(urlparse(TOUR[0].url(1, present=True)).query):
        at.query_params[k] = v
    at.run()
    switch_page(at, TOUR[0].page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("font-size" in m.value for m in at.markdown)  # the larger type
    banner = " ".join(m.value for m in at.markdown)
    assert escape(TOUR[1].url(2, present=True)) in banner  # the next step stays in the present layout


# ------------------------------------------------------------------ issue 23 item 5: pinned, and the same on any day
def _open(step: int, *, present: bool = False) -> AppTest:
    s = TOUR[step - 1]
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in parse_qsl(urlparse(s.url(step, present=present)).query):
        at.query_params[k] = v
    at.run()
    switch_page(at, s.page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown(at: AppTest) -> list[str]:
    """Every number-bearing text of the page: markdown, captions, blue readings, metrics."""
    texts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    return texts + [f"{m.label}={m.value}" for m in at.metric]


def test_the_pinned_table_is_what_the_steps_use():
    """Every image step names its network, and the page runs on it with the step's settings (steps 3 and 6: a
    cross-section and the universal study; the other steps' settings are checked by test_tour_step_opens' URL)."""
    from pages.ui.state import coerce

    for s in TOUR:
        assert (s.network is None) == (s.page == "pages/geometry_2d.py"), s.title
        assert "model" not in s.settings  # the network is the table's own column
    for step in (3, 6):
        s = TOUR[step - 1]
        at = _open(step)
        assert at.session_state["_sidebar"]["model"] == s.network
        for key, value in s.settings.items():
            assert coerce(at.session_state[key], value, type(value)) == value, key


def test_prepare_for_a_lecture_computes_exactly_the_pinned_networks_and_studies():
    from pages.ui.tour import lecture_plan, step_settings

    plan = lecture_plan()
    pinned = {n for s in TOUR for n in s.networks}
    assert [it.network for it in plan if it.kind == "train"] == sorted(
        pinned, key=[n for s in TOUR for n in s.networks].index
    )
    studies = [it for it in plan if it.kind != "train"]
    covered = {i for it in studies for i in it.steps}
    assert covered == {i for i, s in enumerate(TOUR, start=1) if s.study}
    for it in studies:
        for i in it.steps:
            assert (TOUR[i - 1].study, TOUR[i - 1].network) == (it.kind, it.network)
            assert step_settings(TOUR[i - 1]).key() == it.settings.key()


@pytest.mark.parametrize("step", [5, 6])
def test_a_prepared_study_is_the_one_the_step_opens(step):
    """The plan's job key is the key the step's page submits its study under: the page finds the prepared job."""
    from geometry.runtime import jobs
    from pages.ui.tour import lecture_plan, plan_job_key

    (item,) = [it for it in lecture_plan() if step in it.steps]
    _open(step)
    assert jobs.registry().get(plan_job_key(item)) is not None


def test_a_step_shows_the_same_numbers_whichever_networks_are_trained(monkeypatch):
    """Issue 23: steps 3–6 showed digits numbers before mnist-lenet had trained and MNIST numbers after (the
    session's default network moves to it). With the default moved to another network the step is unchanged."""
    import pages.ui.sidebar as sidebar

    before = _shown(_open(3))
    assert any("κ" in t for t in before)  # the step's numbers are among the compared texts
    monkeypatch.setattr(sidebar, "default_model", lambda: "digits-mlp")  # as if a background training had finished
    after = _open(3)
    assert after.session_state["_sidebar"]["model"] == TOUR[2].network
    assert _shown(after) == before
    monkeypatch.setattr(sidebar, "default_model", lambda: "digits-mlp")
    plain = AppTest.from_file(APP, default_timeout=TIMEOUT)
    plain.run()  # the check can fail: without a tour step the session follows the (patched) default
    assert plain.session_state["_sidebar"]["model"] == "digits-mlp"


def test_present_mode_scales_every_chart():
    """?present=1: the page's charts carry the larger fonts (geometry.plotting.PRESENT_SCALE), a plain view does not."""
    import json

    from geometry.plotting import PRESENT_SCALE
    from geometry.plotting.theme import ATLAS

    def font_sizes(at: AppTest) -> list[float]:
        return [json.loads(c.proto.spec)["layout"].get("font", {}).get("size") for c in at.get("plotly_chart")]

    base = ATLAS.layout.font.size
    present, normal = _open(5, present=True), _open(5)
    shown = font_sizes(present)
    assert shown and shown == pytest.approx([base * PRESENT_SCALE] * len(shown))
    assert set(font_sizes(normal)) <= {None, base}
    # the controls row is hidden in present mode, its ξ = h number too (the chart's title gives h): the chart is then
    # the first thing under the banner; the normal layout shows it
    assert "ξ = h" in [m.label for m in normal.metric]
    assert "ξ = h" not in [m.label for m in present.metric] and not present.warning


def test_every_page_draws_its_charts_through_the_layout_hook():
    """One hook (pages/ui/layout.chart) scales every chart in present mode: no page calls st.plotly_chart itself."""
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in [*(ROOT / "pages").glob("*.py"), *(ROOT / "pages" / "ui").rglob("*.py")]
        if p.name != "layout.py"
        for n, line in enumerate(p.read_text().splitlines(), start=1)
        if ".plotly_chart(" in line
    ]
    assert not offenders, offenders


def test_the_prepare_button_queues_exactly_the_plan(monkeypatch):
    """Home → "Prepare for a lecture": one click queues the training of every pinned network not yet trained and one
    job per study of the plan (each queues the study under its page's key: test_a_prepared_study_is_the_one_…)."""
    from geometry import zoo
    from geometry.runtime.jobs import JobRegistry
    from pages.ui.tour import _queue_study, lecture_plan

    queued: list[tuple] = []
    original = JobRegistry.submit

    def submit(self, key, fn, *args, **kwargs):
        if key.startswith(("train:", "prepare-tour:")) and kwargs.get("lane") == "background":
            queued.append((key, fn, args))  # recorded, not run: the test trains nothing
            return None
        return original(self, key, fn, *args, **kwargs)

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    monkeypatch.setattr(JobRegistry, "submit", submit)
    at.button(key="tour_prepare").click().run()
    assert not at.exception, [e.value for e in at.exception]
    plan = lecture_plan()
    trains = {k for k, _, _ in queued if k.startswith("train:")}
    assert trains == {f"train:{it.network}" for it in plan if it.kind == "train" and not zoo.is_cached(it.network)}
    studies = [args[0] for k, fn, args in queued if k.startswith("prepare-tour:")]
    assert all(fn is _queue_study for k, fn, _ in queued if k.startswith("prepare-tour:"))
    assert studies == [it for it in plan if it.kind != "train"]


# ------------------------------------------------------------------ issue 23 item 5: the figure on the first screen
def _lab2d_scales(at: AppTest) -> dict[str, float]:
    """The 2-D lab components on the page (pages/ui/lab2d), by mode: the ``scale`` each one was sent."""
    import json

    return {
        data["mode"]: data["scale"]
        for data in (json.loads(el.proto.json) for el in at.get("bidi_component"))
        if "mode" in data and "scale" in data
    }


def test_present_mode_scales_the_lab_canvas():
    """Steps 1–2 draw in the lab's canvas, not in Plotly: the component is sent the present mode's scale (its JS
    multiplies fonts, markers and line widths by it), the normal layout's is 1."""
    from geometry.plotting import PRESENT_SCALE

    present = _lab2d_scales(_open(1, present=True))
    assert set(present) == {"lab", "universal"}
    assert present == {"lab": pytest.approx(PRESENT_SCALE), "universal": pytest.approx(PRESENT_SCALE)}
    assert _lab2d_scales(_open(1)) == {"lab": 1.0, "universal": 1.0}


def _drawn(at: AppTest) -> list[str]:
    """The types of the page's elements in the order the page shows them (depth first through its containers)."""

    def walk(node):
        yield node
        children = getattr(node, "children", None) or {}
        for i in sorted(children):
            yield from walk(children[i])

    return [node.type for node in walk(at.main)]


def test_present_mode_puts_the_robust_chart_before_the_tables():
    """Step 7 in present mode: the robust-accuracy chart comes before the tables (on the first screen); the normal
    layout keeps the tables first (the check can fail: it is the same page)."""
    present = _drawn(_open(7, present=True))
    assert "plotly_chart" in present and "dataframe" in present, sorted(set(present))
    assert present.index("plotly_chart") < present.index("dataframe")
    normal = _drawn(_open(7))
    assert normal.index("dataframe") < normal.index("plotly_chart")


def _figure_first_app() -> None:
    import pandas as pd
    import plotly.graph_objects as go
    import streamlit as st

    from pages.ui import layout

    slot = layout.figure_first()
    st.dataframe(pd.DataFrame({"a": [1, 2]}))
    layout.chart(go.Figure(go.Scatter(x=[0, 1], y=[0, 1], name="line")), slot)


def test_figure_first_draws_the_figure_ahead_of_what_follows_in_present_mode_only():
    """The mechanism the pages use (pages/ui/layout.figure_first): in present mode the chart drawn into the slot comes
    before the table written after the slot; in the normal layout the chart stays where it is drawn, after it."""
    present = AppTest.from_function(_figure_first_app, default_timeout=60)
    present.query_params["present"] = "1"
    present.run()
    assert not present.exception, [e.value for e in present.exception]
    order = _drawn(present)
    assert order.index("plotly_chart") < order.index("dataframe")
    normal = AppTest.from_function(_figure_first_app, default_timeout=60)
    normal.run()
    order = _drawn(normal)
    assert order.index("dataframe") < order.index("plotly_chart")
