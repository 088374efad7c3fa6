"""Page helpers: view state, sidebar, cached study calls, upload form, job panels, downloads.

Page convention (every module in pages/, one per page):

- The module defines ``def render() -> None`` that draws the page; importing the module has no
  side effects (no ``st.`` call at module level, no computation). app.py registers
  ``st.Page(module.render, title=..., url_path=...)``; tests may call ``module.render()`` inside an
  ``AppTest.from_function``.
- Widget defaults come from the settings dataclasses (geometry/study/settings.py), never retyped.

A sub-package because Streamlit's legacy discovery lists every top-level file of pages/ in the
sidebar before st.navigation runs: pages/ holds the pages only.
"""
