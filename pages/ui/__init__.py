"""Page helpers: view state, sidebar, cached study calls, upload form, job panels, downloads.

Page convention (every module in pages/, one per page):

- The module defines ``def render() -> None`` that draws the page; importing the module has no
  side effects (no ``st.`` call at module level, no computation). app.py registers
  ``st.Page(module.render, title=..., url_path="<module name>")``: the URL path is the module's name
  (``/cross_sections``), so that Streamlit's legacy ``pages/`` discovery, which answers the first
  request after a server start, finds the file instead of showing "Page not found".
- The module ends with the hand-over for that first request (the legacy discovery runs the file as a
  script, without the router)::

      if __name__ == "__main__":  # run as a script: see pages/ui/__init__.py (legacy pages/ discovery)
          from app import main

          main()

- Widgets that define the view are bound to the URL: ``st.slider(..., **state.bound(key, default))``
  (``bind="query-params"``, a default left out of the link, no history entry per change); read the
  value before the widget with ``state.widget_value`` (it clamps a link's out-of-range number). Never
  write ``st.query_params`` on every run: each write that changes the URL pushes a browser history
  entry, and Back stops working. AppTest suites switch pages with ``tests/pagenav.switch_page``.
- Widget defaults come from the settings dataclasses (geometry/study/settings.py), never retyped.

A sub-package because Streamlit's legacy discovery lists every top-level file of pages/ in the
sidebar before st.navigation runs: pages/ holds the pages only.
"""
