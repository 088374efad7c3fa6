"""Page switching for the AppTest suites.

The pages are ``render()`` functions registered with ``st.Page`` (app.py). ``AppTest.switch_page``
opens file pages only (it matches a registered script path), so this helper selects the page the
way Streamlit identifies it: ``st.Page``'s page hash is the hash of its URL path, and every URL path is
its module's name (``pages/cross_sections.py`` → ``cross_sections``). It sets the AppTest's page hash,
a private attribute (``AppTest.switch_page`` sets the same one): the one place to change if AppTest does.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash


def switch_page(at: AppTest, path: str) -> AppTest:
    """Open the page of ``path`` (``"pages/curvature.py"``) on the next ``at.run()``; returns ``at``."""
    at._page_hash = calc_hash(Path(path).stem)
    return at
