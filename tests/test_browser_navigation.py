"""Navigation in a real browser (Debian chromium through Playwright, DESIGN §6), on a server of its own
so that the first test makes the first request after a server start — the request Streamlit's legacy
``pages/`` discovery answers before app.py's ``st.navigation`` has run (issue 19):

- the first deep link opens its page, with its query, and no "Page not found" dialog;
- from the first paint on, the sidebar lists the app's pages (each once) and nothing else: no module
  name of pages/ or pages/ui/, no second copy of a page;
- the browser's Back button returns to the previous page (one history entry per page visit, not one
  per rerun or per query-parameter write);
- a link with a URL path of the previous release still opens its page.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from test_browser import CHROMIUM, FLAGS, app_url  # noqa: F401 - app_url: a fixture, one server for this module

pytestmark = pytest.mark.browser

#: the sidebar's page links, in order (app.py's pages())
TITLES = [
    "Home",
    "Geometry in 2-D",
    "Cross-sections",
    "Curvature vs m",
    "Universal perturbations",
    "Compare networks",
    "Robust training",
    "Certified vs empirical",
]
#: the text of the page links and of Streamlit's own page list (hidden by .streamlit/config.toml)
_NAV_TEXT = """() => ({
    links: [...document.querySelectorAll('[data-testid="stSidebar"] [data-testid="stPageLink"]')]
        .map(e => e.innerText.trim().split('\\n').pop().trim()),  // the last line: the title (the icon's name first)
    builtin: [...document.querySelectorAll('[data-testid="stSidebarNav"]')].map(e => e.innerText.trim()),
    dialog: [...document.querySelectorAll('[role="dialog"]')].map(e => e.innerText.trim()),
})"""


@contextlib.contextmanager
def _browser(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 2000},
        )
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


def _settled(page, text: str, timeout_s: float = 240) -> None:
    """``text`` shown and the script finished (no running-status widget)."""
    page.get_by_text(text).first.wait_for(timeout=timeout_s * 1000)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')""", timeout=timeout_s * 1000
    )


def test_first_deep_link_opens_its_page_and_the_sidebar_lists_only_pages(app_url, tmp_path):  # noqa: F811
    """The module's first request: every paint of the sidebar is sampled until the page is drawn."""
    with _browser(tmp_path) as page:
        page.goto(f"{app_url}/cross_sections?seed=5&res=64", wait_until="commit", timeout=60_000)
        samples = []
        deadline = time.time() + 300
        while time.time() < deadline:
            samples.append(page.evaluate(_NAV_TEXT))
            if page.get_by_text("Normal cross-sections").count() and samples[-1]["links"]:
                break
            time.sleep(0.2)
        _settled(page, "Normal cross-sections")
        samples.append(page.evaluate(_NAV_TEXT))

        assert not any(s["dialog"] for s in samples), [s["dialog"] for s in samples if s["dialog"]]
        assert not page.get_by_text("Page not found").count()
        assert not any(s["builtin"] for s in samples), [s["builtin"] for s in samples if s["builtin"]]
        for s in samples:  # each paint: a prefix of the page list (links appear in one go), never another name
            assert s["links"] == TITLES[: len(s["links"])], s["links"]
        assert samples[-1]["links"] == TITLES
        assert page.url.endswith("/cross_sections?seed=5&res=64")  # the link's view kept
        assert page.get_by_label("Random direction seed", exact=True).input_value() == "5"


def test_back_returns_to_the_previous_page(app_url, tmp_path):  # noqa: F811
    """Home → Cross-sections → Curvature vs m, then Back: Cross-sections again, one history entry per visit."""
    with _browser(tmp_path) as page:
        page.goto(f"{app_url}/", timeout=60_000)
        _settled(page, "Model card")
        start = page.evaluate("history.length")
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("Cross-sections", exact=True).click()
        _settled(page, "Normal cross-sections")
        page.locator(".js-plotly-plot").first.wait_for(timeout=240_000)
        _settled(page, "Normal cross-sections")
        sidebar.get_by_text("Curvature vs m", exact=True).click()
        _settled(page, "S_c: the top-m eigenvectors")
        assert page.evaluate("history.length") == start + 2  # one entry per visit, none per rerun
        page.go_back()
        _settled(page, "Normal cross-sections")
        assert page.url.split("?")[0].endswith("/cross_sections")
        assert page.locator('[data-testid="stMain"] h1').first.inner_text() == "Normal cross-sections"


def test_a_url_path_of_the_previous_release_opens_its_page(app_url, tmp_path):  # noqa: F811
    with _browser(tmp_path) as page:
        page.goto(f"{app_url}/curvature-vs-m?cv_m=3", timeout=60_000)
        _settled(page, "S_c: the top-m eigenvectors")
        assert page.url.split("?")[0].endswith("/curvature")
        assert "cv_m=3" in page.url
