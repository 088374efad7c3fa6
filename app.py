"""Boundary Atlas — the Streamlit entry point: router and shared sidebar (the pages live in pages/).

Run with ``streamlit run app.py``. The embedded default (8×8 digits + a LeNet trained in seconds)
needs no data; MNIST and CIFAR-10 are read from ``$BOUNDARY_ATLAS_DATA``.
"""

from __future__ import annotations

import streamlit as st

from pages.ui import jobs as _jobs
from pages.ui import sidebar as _sidebar
from pages.ui import state as _state
from pages.ui import timing as _timing
from pages.ui import tour as _tour

st.set_page_config(
    page_title="Boundary Atlas",
    page_icon=":material/map:",
    layout="wide",
    initial_sidebar_state="collapsed" if _tour.presenting() else "auto",  # ?present=1: the lecture layout
)

# URL paths must differ from the page files' stems: Streamlit's legacy auto-discovery of pages/
# would otherwise serve e.g. /curvature straight from pages/curvature.py, bypassing this router.
PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/geometry_2d.py", title="Geometry in 2-D", icon=":material/scatter_plot:", url_path="geometry-2d"),
    st.Page(
        "pages/cross_sections.py", title="Cross-sections", icon=":material/content_cut:", url_path="cross-sections"
    ),
    st.Page("pages/curvature.py", title="Curvature vs m", icon=":material/show_chart:", url_path="curvature-vs-m"),
    st.Page(
        "pages/universal.py",
        title="Universal perturbations",
        icon=":material/public:",
        url_path="universal-perturbations",
    ),
    st.Page(
        "pages/compare.py", title="Compare networks", icon=":material/compare_arrows:", url_path="compare-networks"
    ),
    st.Page("pages/robust.py", title="Robust training", icon=":material/shield:", url_path="robust-training"),
    st.Page(
        "pages/certify.py",
        title="Certified vs empirical",
        icon=":material/verified:",
        url_path="certified-vs-empirical",
    ),
]

nav = st.navigation(PAGES)
with _timing.run_timer("script", nav.url_path):  # ATLAS_TIMING set: log the run's duration (benchmarks/interaction.py)
    st.sidebar.title("Boundary Atlas")
    st.session_state["_sidebar"] = _sidebar.sidebar()
    _jobs.sidebar_status()  # background work (first-start MNIST training, Prepare networks) with progress
    _state.keep_curvature_settings()  # the Curvature and Cross-section pages share these widget values
    _tour.banner()  # ?tour=<step>: the guided tour's caption and its previous / next links
    nav.run()
