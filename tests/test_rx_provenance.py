"""r(x) provenance (issue 11, deliverable 2): the box check of z = x + r(x) on analytic classifiers,
the share of S_c's boundary points outside the box, and the Cross-sections page's warning and
provenance caption.

For an affine two-class classifier the DeepFool step is exact: r(x) = −(w·x + b) w / ‖w‖², so
whether x + r(x) leaves [0, 1]^d and by how much is known in closed form.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from pagenav import switch_page
from streamlit.testing.v1 import AppTest

from geometry.deepfool import deepfool
from geometry.errors import InvalidInputError
from geometry.study.points import StudyPoints
from geometry.study.provenance import RX_PROVENANCE, box_excess, box_share_text, estimation_box_share, left_box
from geometry.testing import affine_classifier

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 240
SHAPE = (1, 2, 2)


def _binary(w: torch.Tensor, b: float):
    """Two classes with logit difference w·x + b (class 0 where it is positive)."""
    W = torch.stack([w, -w]) / 2
    return affine_classifier(W, torch.tensor([b / 2, -b / 2]), input_shape=SHAPE)


def test_left_box_and_excess_match_the_closed_form_deepfool_step():
    w = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    clf = _binary(w, -0.5)  # boundary x_1 = 0.5, inside the box
    x = torch.tensor([[0.2, 0.5, 0.5, 0.5], [0.9, 0.1, 0.1, 0.1]], dtype=torch.float64).reshape(2, *SHAPE)
    r = torch.zeros_like(x)
    r.view(2, -1)[:, 0] = torch.tensor([0.3, -0.4], dtype=torch.float64)  # exactly onto x_1 = 0.5
    assert not left_box(clf, x, r).any()
    assert torch.equal(box_excess(clf, x, r), torch.zeros(2, dtype=torch.float64))
    # a boundary outside the box: x_1 = 1.25; the step from x_1 = 0.9 overshoots 1 by ≈ 0.25
    clf_out = _binary(w, -1.25)
    df = deepfool(clf_out, x[1:], overshoot=0.0)
    assert bool(df.converged[0])
    assert bool(left_box(clf_out, x[1:], df.r)[0])
    r1 = float(df.r.view(-1)[0])
    assert r1 == pytest.approx(0.35, abs=1e-3)  # only the first pixel moves
    assert float(box_excess(clf_out, x[1:], df.r)[0]) == pytest.approx(0.9 + r1 - 1.0, abs=1e-9)
    # a single image (C, H, W) is one point
    assert left_box(clf_out, x[1], df.r[0]).shape == (1,)


def test_left_box_refuses_mismatched_perturbations():
    clf = _binary(torch.ones(4, dtype=torch.float64), -2.0)
    with pytest.raises(InvalidInputError):
        left_box(clf, torch.zeros(2, *SHAPE), torch.zeros(3, *SHAPE))
    with pytest.raises(InvalidInputError):
        box_excess(clf, torch.zeros(2, *SHAPE), torch.zeros(2, 4))


def _points(est: torch.Tensor) -> StudyPoints:
    """StudyPoints whose estimation points are ``est`` (the other fields are not used by the helper)."""
    from geometry.study.points import data_fingerprint
    from geometry.study.settings import PointSplit

    empty = est[:0]
    key = data_fingerprint(est)
    return StudyPoints(
        estimate=est,
        heldout=est,
        noise=empty,
        uap=empty,
        estimate_key=key,
        heldout_key=key,
        noise_key=data_fingerprint(empty),
        uap_key=data_fingerprint(empty),
        split=PointSplit(n_estimate=len(est), n_heldout=len(est)),
        source="test",
        estimate_indices=torch.arange(len(est)),
        heldout_indices=torch.arange(len(est)),
    )


def test_estimation_box_share_counts_the_boundary_points_outside_the_box():
    w = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    clf = _binary(w, -0.95)  # boundary x_1 = 0.95: points with x_1 < 0.9 step inside, none outside
    g = torch.Generator().manual_seed(0)
    est = torch.rand(12, *SHAPE, generator=g, dtype=torch.float64) * 0.8
    share = estimation_box_share(clf, _points(est))
    assert (share.n, share.n_converged, share.n_outside, share.share) == (12, 12, 0, 0.0)
    assert math.isnan(share.median_excess)
    assert share.provenance == RX_PROVENANCE and RX_PROVENANCE in box_share_text(share)
    clf_out = _binary(w, -1.1)  # boundary x_1 = 1.1 (with DeepFool's 2 % overshoot, every z leaves)
    share = estimation_box_share(clf_out, _points(est))
    assert (share.n_outside, share.share) == (12, 1.0)
    assert 0 < share.median_excess < 1
    assert "12 of S_c's 12" in box_share_text(share)


def test_cross_section_page_warns_when_r_x_leaves_the_box_and_names_its_r_x():
    # digits-lenet-pgd (adversarially trained): unconstrained DeepFool's z leaves [0, 1] at test point 0
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in dict(model="digits-lenet-pgd", i=0, res=32, cv_n=10, cv_m=3, dir="random").items():
        at.query_params[k] = str(v)
    at.run()
    switch_page(at, "pages/cross_sections.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert any("leaves the pixel box" in w for w in warnings), warnings
    assert any(RX_PROVENANCE in c.value for c in at.caption)
