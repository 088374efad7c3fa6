"""The "Certified vs empirical" page runs on digits-lenet, draws its charts and reports the ε_cert ≤ ‖r‖ check."""

from __future__ import annotations

import json
from pathlib import Path

from pagenav import switch_page
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGE = "pages/certify.py"
TIMEOUT = 400  # first run trains digits-lenet on a busy 2-core machine


def test_certify_page_runs_on_digits_lenet():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["cert_n"] = "40"
    at.run()
    switch_page(at, PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any("ε_cert(x) ≤ ‖r(x)‖ holds at all" in s.value for s in at.success)
    assert at.selectbox(key="cert_crown").value == "l2"  # CROWN's ball, the settings' default
    assert any("is the best sound bound" in i.value for i in at.info)  # the ladder's reading
    assert not [w.value for w in at.warning if w.value.startswith("**Masking flag")]  # issue 21: none on the zoo net
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 8  # + the ladder of certificates and its curves; the section and its zoom on x
    names = {(t.get("name") or "").replace("<br>", " ") for c in charts for t in c["data"]}  # legends wrap at 800 px
    assert "ε_cert = ‖r‖" in names and "certified accuracy (ε_cert ≥ ε): lower bound" in names
    assert any(str(n).startswith("certified disk") for n in names)
