"""The "Certified vs empirical" page on uploaded models (issue 12): state_dict, ONNX and TorchScript
uploads of digits-lenet get the zoo network's Lipschitz bound; an upload with an operator that cannot
be bounded gets a clear message naming it and still the attack distances."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pagenav import switch_page
from streamlit.testing.v1 import AppTest
from torch import nn

from geometry import zoo
from geometry.loading import load_classifier

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGE = "pages/certify.py"
TIMEOUT = 400  # first run trains digits-lenet on a busy 2-core machine


@pytest.fixture(scope="module")
def lenet():
    return zoo.load_model("digits-lenet")


def _load(clf, data: bytes, *, name: str, **kw):
    norm = clf.network[0]
    return load_classifier(
        data,
        input_shape=tuple(clf.input_shape),
        class_names=clf.class_names,
        mean=norm.mean.flatten().tolist(),
        std=norm.std.flatten().tolist(),
        isolate=False,
        name=name,
        **kw,
    )


def _upload(clf, kind: str):
    model = clf.network[1].eval()
    buf = io.BytesIO()
    if kind == "state_dict":
        torch.save(model.state_dict(), buf)
        return _load(clf, buf.getvalue(), name="upload:lenet-sd", architecture="lenet")
    if kind == "onnx":
        torch.onnx.export(
            model,
            (torch.rand(2, *clf.input_shape, dtype=clf.dtype),),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
        return _load(clf, buf.getvalue(), name="upload:lenet-onnx")
    if kind == "exp":  # an operator without a Lipschitz rule
        model = _ExpNet().to(clf.dtype).eval()
    torch.jit.save(torch.jit.script(model), buf)
    return _load(clf, buf.getvalue(), name=f"upload:lenet-{kind}")


class _ExpNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(torch.exp(torch.flatten(x, 1)))


def _run(model: str | None = None, clf=None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["cert_n"] = "20"
    if model is not None:
        at.session_state["_user_models"] = {model: {"clf": clf, "dataset": "digits"}}
        at.session_state["model"] = model
    at.run()
    switch_page(at, PAGE)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _values(y) -> np.ndarray:
    if isinstance(y, dict):  # plotly's typed-array encoding
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=np.dtype(y["dtype"]))
    return np.asarray(y, dtype=np.float64)


def _layer_bounds(at: AppTest) -> np.ndarray:
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    (bars,) = [t for c in charts for t in c["data"] if t.get("name") == "sound upper bound"]
    return _values(bars["y"])


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.fixture(scope="module")
def zoo_page():
    at = _run()
    return _metric(at, "L (sound upper bound)"), _layer_bounds(at)


@pytest.mark.parametrize("kind", ["state_dict", "onnx", "torchscript"])
def test_an_uploaded_lenet_is_certified_with_the_zoo_networks_bound(lenet, zoo_page, kind):
    clf = _upload(lenet, kind)
    assert clf.info["format"] == kind
    at = _run(clf.name, clf)
    assert not at.error, [e.value for e in at.error]
    assert any("ε_cert(x) ≤ ‖r(x)‖ holds at all" in s.value for s in at.success)
    assert _metric(at, "L (sound upper bound)") == zoo_page[0]
    np.testing.assert_allclose(_layer_bounds(at), zoo_page[1], rtol=1e-6)
    names = {t.get("name") for c in at.get("plotly_chart") for t in json.loads(c.proto.spec)["data"]}
    assert any(str(n).startswith("certified disk") for n in names)


def test_an_upload_it_cannot_bound_gets_a_message_and_the_attack_distances(lenet):
    clf = _upload(lenet, "exp")
    at = _run(clf.name, clf)
    (error,) = at.error
    assert "No certificate for this network" in error.value and "aten.exp" in error.value
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 1  # accuracy under attack only: no certified curve, no layer bars
    (trace,) = charts[0]["data"]
    acc = _values(trace["y"])
    assert len(acc) > 1 and np.all(np.diff(acc) <= 1e-12)  # never rises with ε
    assert _metric(at, "median ‖r(x)‖") != "—"
