"""The 2-D lab's JavaScript maths (pages/ui/lab2d/lab2d_math.js) against the Python reference.

The browser component computes the decision regions, DeepFool's iterates, r(x), κ and the osculating
circle, and fooling rates itself (issue 20, item 1). Python stays the reference: this file runs the
component's own maths file under node on fixed inputs and asserts it matches
:mod:`geometry.toy2d`, :func:`geometry.deepfool.deepfool`, :func:`geometry.toy2d.osculating_circle`
and :func:`geometry.study.toy2d.universal_panel` to float tolerance — for every toy model kind (the
linear model, the ReLU and tanh MLPs, the analytic affine and circle classifiers).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from geometry.curvature import flat_subspace
from geometry.deepfool import deepfool
from geometry.errors import InvalidInputError
from geometry.study.toy2d import LabSettings, lab_study, universal_panel
from geometry.toy2d import (
    TOY_MODELS,
    as_points,
    decision_regions,
    fooled_mask,
    osculating_circle,
    path_of,
    toy_classifier,
    toy_data,
)
from pages.ui.lab2d.lab2d import curvature_options, lab_box, model_spec

ROOT = Path(__file__).resolve().parent.parent
MATH_JS = ROOT / "pages" / "ui" / "lab2d" / "lab2d_math.js"
NODE = shutil.which("node") or "/usr/bin/node"

# The queries of one model, answered by the component's maths (the same function body under node
# and in chromium). JSON has no NaN / Infinity: they travel as strings.
QUERIES = r"""
function answer(M, q) {
  const plain = (o) => JSON.parse(JSON.stringify(o, (k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v)));
  const out = {};
  if (q.model) {
    const reg = M.regions(q.model, q.box, q.resolution);
    out.regions = { x1: reg.x1, x2: reg.x2, label: Array.from(reg.label) };
    out.deepfool = q.xs.map((x) => M.deepfool(q.model, x, { overshoot: 0.02, maxIter: 50 }));
    out.osculating = q.xs.map((x) => plain(M.osculating(q.model, x, q.curvature)));
    out.fooled = q.vs.map((v) => M.fooled(q.model, q.points, v));
    out.signed = q.signed.map((s) => M.signedVector(q.model, q.points, s.u, s.xi));
    out.direction = q.angles.map((a) => M.directionVector(a[0], a[1]));
  }
  out.drags = (q.drags || []).map(([t, o]) => M.vectorFromDrag(t, o, 0.05, 2.0, 0.01, 1.0));
  return out;
}
"""
NODE_MAIN = (
    QUERIES
    + r"""
const q = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(answer(require(process.argv[1]), q)));
"""
)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _engine() -> str | None:
    """node where installed, else chromium (CI installs it for the browser tests), else None."""
    if Path(NODE).exists():
        return "node"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return None
    return "chromium" if Path(CHROMIUM).exists() else None


MODELS = list(TOY_MODELS)
DATASET = {"linear": "moons", "mlp-relu": "moons", "mlp-tanh": "circles", "affine": "xor", "sphere": "circles"}
XS_EXTRA = [[0.0, 0.0], [0.31, -0.27], [1.7, 0.9], [-0.8, 0.45]]
VS = [[0.3, 0.0], [-0.25, 0.4], [0.0, -1.1], [1e-3, 1e-3]]
RESOLUTION = 61

ENGINE = _engine()
if ENGINE is None and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    raise RuntimeError("neither node nor chromium + playwright: the 2-D lab's JavaScript cannot be checked")
pytestmark = pytest.mark.skipif(ENGINE is None, reason="neither node nor chromium + playwright is installed")


def _num(v) -> float:
    return float(v) if not isinstance(v, str) else float(v.replace("Infinity", "inf"))


def _run(query: dict) -> dict:
    """The component's maths on ``query``: under node, or in a blank chromium page."""
    if ENGINE == "node":
        proc = subprocess.run(
            [NODE, "-e", NODE_MAIN, str(MATH_JS)],
            input=json.dumps(query),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.add_script_tag(content=MATH_JS.read_text(encoding="utf-8"))
            return page.evaluate(f"(q) => {{ {QUERIES}; return answer(globalThis.Lab2dMath, q); }}", query)
        finally:
            browser.close()


@pytest.fixture(scope="module", params=MODELS)
def case(request):
    name = request.param
    data = toy_data(DATASET[name], n_points=60, noise=0.1, random_state=3)
    clf = toy_classifier(name, data, hidden=16, steps=150, random_state=3)
    pts = data.x.numpy()
    xs = [list(map(float, p)) for p in pts[:8]] + XS_EXTRA
    u = flat_subspace(clf, as_points(data.x), 1).basis[:, 0].numpy()
    query = {
        "model": model_spec(clf),
        "box": lab_box(pts),
        "resolution": RESOLUTION,
        "points": pts.tolist(),
        "xs": xs,
        "curvature": curvature_options(name, 0.1),
        "vs": VS,
        "signed": [{"u": u.tolist(), "xi": xi} for xi in (0.1, 0.3, 0.8)],
        "angles": [[0, 1.0], [37, 0.5], [-120, 2.0], [180, 0.05]],
    }
    return name, data, clf, query, _run(query)


def test_spec_is_plain_json_of_the_model(case):
    name, _, _, query, _ = case
    spec = query["model"]
    assert json.loads(json.dumps(spec)) == spec
    if name == "sphere":
        assert spec["type"] == "sphere"
    else:
        assert spec["type"] == "mlp"
        assert spec["activation"] == {"mlp-relu": "relu", "mlp-tanh": "tanh"}.get(name, "identity")
        assert len(spec["layers"]) == (3 if name.startswith("mlp") else 1)


def test_regions_match_decision_regions(case):
    _, _, clf, query, out = case
    ref = decision_regions(clf, tuple(query["box"]), resolution=RESOLUTION)
    np.testing.assert_array_equal(np.array(out["regions"]["x1"]), ref.x1)
    np.testing.assert_array_equal(np.array(out["regions"]["x2"]), ref.x2)
    got = np.array(out["regions"]["label"]).reshape(RESOLUTION, RESOLUTION)
    assert (got == ref.label).all(), f"{int((got != ref.label).sum())} grid labels differ"
    assert len(np.unique(ref.label)) == 2  # both classes on the grid: the comparison sees a boundary


def test_deepfool_iterates_and_r_match(case):
    _, _, clf, query, out = case
    n_converged = 0
    for x, js in zip(query["xs"], out["deepfool"], strict=True):
        df = deepfool(clf, as_points(torch.tensor(x, dtype=torch.float64)), return_iterates=True, max_iter=50)
        pts, st = path_of(df)
        assert js["label"] == int(df.label[0]) and js["advLabel"] == int(df.adv_label[0])
        assert js["converged"] == bool(df.converged[0])
        assert js["nIter"] == int(df.n_iter[0])
        np.testing.assert_allclose(np.array(js["iterates"]), pts, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.array(js["steps"]).reshape(-1, 2), st, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(js["r"], df.r.reshape(2).numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(js["norm"], float(df.norms[0]), rtol=1e-9, atol=1e-12)
        n_converged += bool(df.converged[0])
    assert n_converged >= len(query["xs"]) - 2  # the comparison is about real paths


def test_kappa_and_osculating_circle_match(case):
    name, _, clf, query, out = case
    kw = curvature_options(name, 0.1)
    kwargs = {"method": kw["method"]} if kw["h"] is None else {"method": kw["method"], "h": kw["h"]}
    measured = 0
    for x, js in zip(query["xs"], out["osculating"], strict=True):
        try:
            ref = osculating_circle(clf, torch.tensor(x, dtype=torch.float64), **kwargs)
        except InvalidInputError:
            assert js["ok"] is False
            continue
        assert js["ok"] is True
        measured += 1
        np.testing.assert_allclose(js["z"], ref.z, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(js["normal"], ref.normal, rtol=1e-9, atol=1e-12)
        kappa = _num(js["kappa"])
        if name in ("linear", "affine"):
            assert kappa == 0.0 == ref.kappa and _num(js["radius"]) == math.inf == ref.radius
            continue
        np.testing.assert_allclose(kappa, ref.kappa, rtol=1e-7, atol=1e-9)
        if abs(ref.kappa) < 1e-6:
            # a ReLU piece that is flat across z ± h: κ is rounding noise (~1e-15), its radius meaningless
            continue
        np.testing.assert_allclose(_num(js["radius"]), ref.radius, rtol=1e-7)
        np.testing.assert_allclose([_num(c) for c in js["center"]], ref.center, rtol=1e-7, atol=1e-9)
        if name == "sphere":
            # analytic: the level set of F through z is the circle of radius ‖z − c‖ (z lies beyond the
            # boundary where a step overshoots), κ = +1/‖z − c‖ seen from inside (the other class wraps
            # around x, DESIGN §4), −1/‖z − c‖ from outside
            c = np.array(query["model"]["center"])
            inside = np.linalg.norm(np.array(x) - c) ** 2 < query["model"]["r2"]
            expected = (1.0 if inside else -1.0) / float(np.linalg.norm(ref.z - c))
            assert kappa == pytest.approx(expected, rel=1e-9)
    assert measured >= len(query["xs"]) - 2


def test_fooling_rate_matches(case):
    _, data, clf, _, out = case
    for v, js in zip(VS, out["fooled"], strict=True):
        mask = fooled_mask(clf, data.x, v)
        assert js["mask"] == mask.tolist()
        panel = universal_panel(clf, data, kind="custom", xi=1.0, v=v)
        assert js["rate"] == pytest.approx(panel.fooling_rate, abs=1e-15)


def test_signed_flat_direction_matches_universal_panel(case):
    name, data, clf, query, out = case
    for s, js in zip(query["signed"], out["signed"], strict=True):
        panel = universal_panel(clf, data, kind="S_f", xi=s["xi"], model=name)
        np.testing.assert_allclose(js["v"], panel.v, rtol=1e-12, atol=1e-15)
        assert js["rate"] == pytest.approx(panel.fooling_rate, abs=1e-15)
        assert js["mask"] == panel.fooled.tolist()


def test_direction_vector_matches(case):
    from geometry.toy2d import direction_vector

    _, _, _, query, out = case
    for (angle, norm), js in zip(query["angles"], out["direction"], strict=True):
        np.testing.assert_allclose(js, direction_vector(angle, norm), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("model", ["mlp-tanh", "mlp-relu"])
def test_lab_study_view_matches(model):
    """End to end through the study layer: the page's default view (circles, 200 points, point 1)."""
    s = LabSettings(dataset="circles", model=model, n_points=200, noise=0.08, seed=0, point=1)
    lab = lab_study(s)
    pts = lab.data.x.numpy()
    out = _run(
        {
            "model": model_spec(lab.clf),
            "box": lab_box(pts),
            "resolution": s.resolution,
            "points": pts.tolist(),
            "xs": [lab.x.tolist()],
            "curvature": curvature_options(model, s.h),
            "vs": [],
            "signed": [],
            "angles": [],
        }
    )
    got = np.array(out["regions"]["label"]).reshape(s.resolution, s.resolution)
    assert (got == lab.regions.label).all()
    np.testing.assert_array_equal(np.array(out["regions"]["x1"]), lab.regions.x1)
    df = out["deepfool"][0]
    np.testing.assert_allclose(np.array(df["iterates"]), lab.iterates, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(df["r"], lab.r, rtol=1e-9, atol=1e-12)
    assert lab.osculating is not None
    np.testing.assert_allclose(_num(out["osculating"][0]["kappa"]), lab.osculating.kappa, rtol=1e-7, atol=1e-9)


def test_model_spec_refuses_what_it_cannot_run():
    from geometry.classifier import make_classifier

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 2))
    clf = make_classifier(net.double(), input_shape=(1, 1, 2), class_names=["a", "b"])
    with pytest.raises(InvalidInputError, match="Sigmoid"):
        model_spec(clf)
    big = make_classifier(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2)), input_shape=(1, 1, 3), class_names=["a", "b"]
    )
    with pytest.raises(InvalidInputError, match="d = 3"):
        model_spec(big)


def test_vector_from_drag_matches_vector_from_click():
    """Dragging v's tip gives the angle / ‖v‖ controls' values that a click gives on the server."""
    from geometry.toy2d import vector_from_click

    rng = np.random.default_rng(0)
    cases = [
        ([0.5, 0.5], [0.0, 0.0]),
        ([-1.0, 1e-9], [0.0, 0.0]),
        ([-1.0, -1e-12], [0.0, 0.0]),
        ([3.0, 4.0], [1.0, 1.0]),
    ]
    cases += [(list(rng.normal(size=2)), list(rng.normal(size=2))) for _ in range(200)]
    got = _run({"drags": cases})["drags"]
    for (tip, origin), js in zip(cases, got, strict=True):
        angle, norm = vector_from_click(tuple(tip), np.array(origin), norm_range=(0.05, 2.0), norm_step=0.01)
        assert js[0] == angle
        assert js[1] == pytest.approx(norm, abs=1e-12)
    assert _run({"drags": [[[1, 1], [1, 1]]]})["drags"] == [
        None
    ]  # no direction: the server raises, the browser keeps v
