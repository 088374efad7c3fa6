"""Links between pages: the router registers its ``st.Page`` objects here, pages link by URL path.

Pages are ``render()`` functions (pages/ui/__init__.py), and ``st.page_link`` takes a file path only
for pages registered by file, so a page that links to another asks for it by its URL path (its
module's name, e.g. ``"cross_sections"``). The router (app.py) registers the same page list on every
run; it is identical for every session, so one registry per process serves them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streamlit.delta_generator import DeltaGenerator
from streamlit.navigation.page import StreamlitPage

_PAGES: dict[str, StreamlitPage] = {}


def register(pages: Iterable[StreamlitPage]) -> None:
    """Remember the router's pages by URL path (the default page also as ``"home"``)."""
    for page in pages:
        _PAGES[page.url_path or "home"] = page


def link(box: DeltaGenerator, url_path: str, **kwargs: Any) -> None:
    """``box.page_link`` to the page registered under ``url_path`` (label, icon, query_params …).

    Raises
    ------
    KeyError
        no page with that URL path has been registered (the router has not run, or a typo).
    """
    try:
        page = _PAGES[url_path]
    except KeyError:
        raise KeyError(f"no page with URL path {url_path!r}; registered: {sorted(_PAGES)}") from None
    box.page_link(page, **kwargs)
