"""Boundary Atlas — the Streamlit entry point: router and shared sidebar (the pages live in pages/).

Run with ``streamlit run app.py``. The embedded default (8×8 digits + a LeNet trained in seconds)
needs no data; MNIST and CIFAR-10 are read from ``$BOUNDARY_ATLAS_DATA``.

Each page is a ``render()`` function registered with ``st.Page`` (pages/ui/__init__.py gives the
convention). Three things are arranged around Streamlit's legacy ``pages/`` discovery, which runs the
first request after a server start (before this router has called ``st.navigation``):

- its page list is hidden (``[client] showSidebarNavigation = false`` in .streamlit/config.toml), and
  the router draws the sidebar's page links itself, so no file name and no page twice is ever listed;
- each URL path is its page module's name (``/cross_sections``), so that first request finds the file,
  whose ``__main__`` block hands over to :func:`main` — no "Page not found" dialog;

The old URL paths (``/cross-sections`` …) are hidden pages that forward to the new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.errors import StreamlitAPIException
from streamlit.navigation.page import StreamlitPage

from pages import certify, compare, cross_sections, curvature, geometry_2d, home, robust, universal
from pages.ui import jobs as _jobs
from pages.ui import nav as _nav
from pages.ui import sidebar as _sidebar
from pages.ui import state as _state
from pages.ui import timing as _timing
from pages.ui import tour as _tour
from pages.ui import upload as _upload

#: query parameters of the shared sidebar, carried by the page links (bound widgets on every page)
SIDEBAR_KEYS = ("model", "dataset", "i", "device")
#: the URL paths of the previous release → the page they name now
MOVED = {
    "geometry-2d": "geometry_2d",
    "cross-sections": "cross_sections",
    "curvature-vs-m": "curvature",
    "universal-perturbations": "universal",
    "compare-networks": "compare",
    "robust-training": "robust",
    "certified-vs-empirical": "certify",
}


def pages() -> list[StreamlitPage]:
    """The app's pages in sidebar order; every URL path is its module's name (see the module docstring)."""
    return [
        st.Page(home.render, title="Home", icon=":material/home:", url_path="home", default=True),
        st.Page(geometry_2d.render, title="Geometry in 2-D", icon=":material/scatter_plot:", url_path="geometry_2d"),
        st.Page(
            cross_sections.render, title="Cross-sections", icon=":material/content_cut:", url_path="cross_sections"
        ),
        st.Page(curvature.render, title="Curvature vs m", icon=":material/show_chart:", url_path="curvature"),
        st.Page(universal.render, title="Universal perturbations", icon=":material/public:", url_path="universal"),
        st.Page(compare.render, title="Compare networks", icon=":material/compare_arrows:", url_path="compare"),
        st.Page(robust.render, title="Robust training", icon=":material/shield:", url_path="robust"),
        st.Page(certify.render, title="Certified vs empirical", icon=":material/verified:", url_path="certify"),
    ]


def _forward(page: StreamlitPage) -> Callable[[], None]:
    """A hidden page's body: open ``page`` with this URL's query parameters."""

    def forward() -> None:
        try:
            st.switch_page(page, query_params={k: st.query_params.get_all(k) for k in st.query_params})
        except StreamlitAPIException:  # the URL holds parameters bound to widgets: Streamlit refuses to move them
            st.page_link(page, label=f"This page has moved: {page.title}", icon=":material/arrow_forward:")

    return forward


def _by_url(visible: Sequence[StreamlitPage]) -> dict[str, StreamlitPage]:
    return {p.url_path or "home": p for p in visible}


def _page_links(box: DeltaGenerator, visible: Sequence[StreamlitPage]) -> None:
    """The sidebar's page links, each carrying the view shared with its page: the sidebar's settings on
    every page, the curvature settings to the two pages that draw them (one history entry per visit)."""
    present = {"present": "1"} if _tour.presenting() else {}
    for page in visible:
        keys = [*SIDEBAR_KEYS, *(_state.CURVATURE_KEYS if page.url_path in ("cross_sections", "curvature") else ())]
        box.page_link(page, query_params={**_state.carried(keys), **present})


def main() -> None:
    """One run of the app: page config, router, sidebar, the chosen page."""
    st.set_page_config(
        page_title="Boundary Atlas",
        page_icon=":material/map:",
        layout="wide",
        initial_sidebar_state="collapsed" if _tour.presenting() else "auto",  # ?present=1: the lecture layout
    )
    visible = pages()
    _nav.register(visible)
    by_url = _by_url(visible)
    hidden = [
        st.Page(_forward(by_url[new]), title=old, url_path=old, visibility="hidden") for old, new in MOVED.items()
    ]
    nav = st.navigation([*visible, *hidden], position="hidden")  # the links are drawn below
    _upload.warm_up_server()  # once per process, in the background: the upload path's imports (issue 22)
    # ATLAS_TIMING set: log the run's duration (benchmarks/interaction.py); and while this run goes on, other
    # sessions' upload workers are paused (issue 22's fair share: uploads run in the gaps between page runs)
    with _timing.run_timer("script", nav.url_path), _upload.page_run():
        st.sidebar.title("Boundary Atlas")
        links = st.sidebar.container()
        _tour.pin()  # ?tour=<step>: the step's network and settings win over the session's (issue 23 item 5)
        st.session_state["_sidebar"] = _sidebar.sidebar()
        _page_links(links, visible)  # after the sidebar's widgets: the links carry this run's values
        _upload.reap_ended_sessions()  # closed browser sessions: their uploaded files and workers go (issue 22)
        _jobs.sidebar_status()  # background work (first-start MNIST training, Prepare networks) with progress
        _state.keep_curvature_settings()  # the Curvature and Cross-section pages share these widget values
        _tour.banner()  # ?tour=<step>: the guided tour's caption and its previous / next links
        nav.run()


if __name__ == "__main__":
    main()
