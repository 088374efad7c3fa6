"""Issue 14 item 4: a model loaded through Home's upload form is in the sidebar's Network list — and
selected — in the very run that loaded it, not only after another widget is touched."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from geometry import zoo

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 400  # first run may train digits-lenet on a busy 2-core machine


@pytest.fixture(scope="module")
def torchscript_lenet() -> bytes:
    clf = zoo.load_model("digits-lenet")
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(clf.network.eval()), buf)
    return buf.getvalue()


#: app.py's order — the shared sidebar first, then the page (Home's upload form) — without st.navigation:
#: with Streamlit 1.67's AppTest, a rerun triggered by a widget of this app runs the page without
#: app.py's sidebar (its tree comes back empty, even for a plain number_input change), so the
#: sidebar after a click can only be observed with the two drawn in one script.
SCRIPT = """
import streamlit as st
from pages.ui import sidebar as _sidebar, upload as _upload
st.session_state["_sidebar"] = _sidebar.sidebar()
_upload.upload_form()
"""


def test_upload_is_listed_and_selected_in_the_run_that_loaded_it(torchscript_lenet):
    at = AppTest.from_string(SCRIPT, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any(o.endswith("(upload)") for o in at.selectbox(key="model").options)

    (uploader,) = [u for u in at.file_uploader if u.label == "Model file"]
    uploader.upload("lenet_ts.pt", torchscript_lenet)
    (load,) = [b for b in at.button if b.label == "Load model"]
    load.click().run()  # one interaction: the form's submit, and the rerun it asks for

    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    network = at.selectbox(key="model")
    (label,) = [o for o in network.options if o.endswith("(upload)")]
    assert label.startswith("lenet_ts-")
    assert network.value.startswith("upload:lenet_ts-")  # selected, not only listed
    assert at.session_state["_sidebar"]["model"] == network.value  # the pages receive it too
    assert any("Loaded" in s.value and "selected it" in s.value for s in at.success)
