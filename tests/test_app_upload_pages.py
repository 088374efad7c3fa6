"""The pages on an upload that lives in a worker (issue 22, item 1): Curvature vs m, Cross-sections,
Universal perturbations and Certified vs empirical (the Lipschitz tracer, the attacks) run their studies
in the session's worker process and draw them without an error. The server's stand-in has no weights and
refuses gradients, so any computation of these pages not sent to the worker would have failed here."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from pagenav import switch_page
from streamlit.testing.v1 import AppTest

from geometry.runtime import uploads

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 600
SMALL = dict(
    res=64, seed=3, cv_n=10, cv_m=3, cv_heldout=10, uv_n=20, uv_m=4, uv_samples=2, uv_heldout=60, uv_uap=60, cert_n=10
)


@pytest.fixture(scope="module")
def stand_in(digits_lenet):
    buf = io.BytesIO()  # the model without its normalisation, which the upload's options put back
    torch.jit.save(torch.jit.script(digits_lenet.network[1].eval()), buf)
    norm = digits_lenet.network[0]
    clf = uploads.register(
        buf.getvalue(),
        owner="",  # AppTest's script runs outside a browser session: session_owner() is ""
        display="lenet_ts.pt",
        input_shape=digits_lenet.input_shape,
        options={
            "class_names": list(digits_lenet.class_names),
            "name": "upload:lenet_ts-w",
            "mean": norm.mean.flatten().tolist(),
            "std": norm.std.flatten().tolist(),
        },
    )
    assert uploads.is_uploaded(clf) and not list(clf.network.parameters())
    return clf


@pytest.mark.parametrize(
    "page", ["pages/curvature.py", "pages/cross_sections.py", "pages/universal.py", "pages/certify.py"]
)
def test_a_page_on_an_upload_runs_its_studies_in_the_worker(stand_in, page):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in SMALL.items():
        at.query_params[k] = str(v)
    at.session_state["_user_models"] = {"upload:lenet_ts-w": {"clf": stand_in, "dataset": "digits"}}
    at.session_state["model"] = "upload:lenet_ts-w"
    at.run()
    switch_page(at, page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="model").value == "upload:lenet_ts-w"
    assert len(at.get("plotly_chart")) >= 1
