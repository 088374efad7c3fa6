"""Page helpers: view state, sidebar, cached study calls, upload form, job panels, downloads.

A sub-package because Streamlit's legacy discovery lists every top-level file of pages/ in the
sidebar before st.navigation runs: pages/ holds the pages only.
"""
