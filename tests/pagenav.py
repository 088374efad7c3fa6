"""Page switching for the AppTest suites.

The pages are ``render()`` functions registered with ``st.Page`` (app.py). ``AppTest.switch_page``
opens file pages only (it matches a registered script path), so this helper selects the page the
way Streamlit identifies it: ``st.Page``'s page hash is the hash of its URL path, and every URL path is
its module's name (``pages/cross_sections.py`` → ``cross_sections``). It sets the AppTest's page hash
(a private attribute, the one ``AppTest.switch_page`` sets) to the hash Streamlit gives that URL path:
the one place to change if Streamlit changes either (.ci/run checks it on the floor version too).
"""

from __future__ import annotations

from pathlib import Path

from streamlit import util
from streamlit.testing.v1 import AppTest

#: how Streamlit hashes an ``st.Page``'s URL path into its page hash (``calc_md5`` before 1.6x)
_page_hash = getattr(util, "calc_hash", None) or getattr(util, "calc_md5")  # noqa: B009 - absent in 1.6x


def switch_page(at: AppTest, path: str) -> AppTest:
    """Open the page of ``path`` (``"pages/curvature.py"``) on the next ``at.run()``; returns ``at``."""
    at._page_hash = _page_hash(Path(path).stem)
    return at
