"""Every step of the guided tour opens without error in AppTest, shows its caption, and links on."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import pytest
from pagenav import switch_page
from streamlit.testing.v1 import AppTest

from pages.ui.tour import TOUR, tour_links

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 300  # a fresh cache computes S_c, ξ and the UAP of the digits network on a busy 2-core machine


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
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    banner = " ".join(i.value for i in at.info)
    assert f"Guided tour {step}/{len(TOUR)}" in banner and s.caption in banner
    if step < len(TOUR):
        assert TOUR[step].url(step + 1) in banner  # the link to the next step
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
    banner = " ".join(i.value for i in at.info)
    assert TOUR[1].url(2, present=True) in banner  # the next step stays in the present layout
