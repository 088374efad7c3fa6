"""r(x) provenance (issue 11, deliverable 2; issue 23, item 2): the box check of z = x + r(x) on analytic
classifiers, the share of S_c's boundary points outside the box, the box-constrained default protocol (z
stays in the box; the paper's protocol one switch away and unchanged), and the Cross-sections page's warning
and provenance caption.

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

from geometry import data
from geometry.curvature import curved_subspace, flat_subspace
from geometry.deepfool import deepfool
from geometry.errors import InvalidInputError
from geometry.study import CurvatureSettings, SectionSettings, UniversalSettings, section_study, study_subspaces
from geometry.study.curvature import estimation_deepfool, study_estimator
from geometry.study.points import StudyPoints
from geometry.study.provenance import (
    RX_PROVENANCE,
    RX_PROVENANCE_BOX,
    box_excess,
    box_share_text,
    estimation_box_share,
    left_box,
    unconstrained_box_share,
)
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


def test_box_share_text_names_the_protocol_and_states_the_share_outside_either_way():
    w = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    est = torch.rand(12, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.8
    outside = estimation_box_share(_binary(w, -1.1), _points(est))  # every unconstrained z leaves the box
    inside = estimation_box_share(_binary(w, -0.5), _points(est))  # none does
    paper, box = box_share_text(outside, rx="unconstrained"), box_share_text(outside, rx="box")
    assert paper.startswith(RX_PROVENANCE) and "12 of S_c's 12 boundary points z = x + r(x) (100%) leave" in paper
    assert box.startswith(RX_PROVENANCE_BOX) and "lies in the pixel box" in box
    assert "paper's protocol (unconstrained DeepFool) 12 of S_c's 12 boundary points (100%) would leave it" in box
    assert "keeps all 12 inside it too" in box_share_text(inside, rx="box")
    assert "would leave" not in box_share_text(inside, rx="box")
    with pytest.raises(InvalidInputError):
        box_share_text(inside, rx="clipped")


def _two_pixel_binary():
    """Boundary x_1 + x_2 = 1.5: from x = (0.95, 0.2, ·, ·) the unconstrained step moves x_1 to ≈ 1.13, out of
    the box; the box-constrained DeepFool reaches the boundary with x_1 = 1 and x_2 ≈ 0.5."""
    return _binary(torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64), -1.5)


def test_box_deepfool_keeps_z_in_the_box_where_the_unconstrained_z_leaves_it():
    clf = _two_pixel_binary()
    g = torch.Generator().manual_seed(1)
    xs = torch.rand(40, *SHAPE, generator=g, dtype=torch.float64)
    xs.view(40, -1)[:, 0] = 0.95 + 0.05 * torch.rand(40, generator=g, dtype=torch.float64)  # x_1 near the top
    xs.view(40, -1)[:, 1] *= 0.2  # a gap of ≥ 0.3 to the boundary: each unconstrained step moves x_1 by ≥ 0.15
    pts = _points(xs)
    paper = estimation_deepfool(clf, pts, rx="unconstrained")
    box = estimation_deepfool(clf, pts, rx="box")
    assert bool(paper.converged.all()) and bool(left_box(clf, xs, paper.r).all())  # every paper z leaves [0, 1]
    assert bool(box.converged.all()) and not bool(left_box(clf, xs, box.r, tolerance=0.0).any())
    z = xs + box.r
    assert float(z.min()) >= 0.0 and float(z.max()) <= 1.0
    assert bool((clf.predict(z) != clf.predict(xs)).all())  # z is adversarial: across the boundary
    s = z.view(40, -1)
    assert torch.allclose(s[:, 0] + s[:, 1], torch.full((40,), 1.5, dtype=torch.float64), atol=0.05)  # near it
    # one point as the Cross-sections page asks: the share the paper's protocol would put outside
    one = unconstrained_box_share(clf, xs[0])
    assert (one.n, one.n_converged, one.n_outside) == (1, 1, 1)


@pytest.fixture(scope="module")
def digits_points():
    from geometry.study import PointSplit, split_points

    test = data.load_dataset("digits", split="test")
    train = data.load_dataset("digits", split="train")
    return split_points(test, train, PointSplit(n_estimate=12, n_heldout=4))


def test_default_protocol_is_box_and_its_boundary_points_stay_in_the_box(digits_lenet, digits_points):
    assert CurvatureSettings().rx == UniversalSettings().rx == SectionSettings().rx == "box"
    pts = digits_points
    box = estimation_deepfool(digits_lenet, pts, rx="box")
    paper = estimation_deepfool(digits_lenet, pts, rx="unconstrained")
    conv = box.converged
    assert int(conv.sum()) >= 10
    assert not bool(left_box(digits_lenet, pts.estimate, box.r).any())
    assert bool(left_box(digits_lenet, pts.estimate, paper.r).any())  # the paper's z leave the box on digits
    for x in pts.heldout:  # the section's r(x) at its defaults
        df = section_study(digits_lenet, x, SectionSettings(resolution=4)).deepfool
        assert not bool(left_box(digits_lenet, x, df.r[0])[0])


def test_the_papers_protocol_is_unchanged_and_cached_apart_from_the_box_one(digits_lenet, digits_points):
    from geometry.deepfool import deepfool

    pts = digits_points
    x = pts.heldout[0]
    sec = section_study(digits_lenet, x, SectionSettings(resolution=4, rx="unconstrained"))
    assert torch.equal(sec.deepfool.r, deepfool(digits_lenet, x.unsqueeze(0)).r)  # the r(x) of before
    paper = CurvatureSettings(points=pts.split, m_max=2, scale=dict_scale(), rx="unconstrained")
    box = CurvatureSettings(points=pts.split, m_max=2, scale=dict_scale())
    assert paper.key() != box.key()
    S_c, S_f = study_subspaces(digits_lenet, pts, paper)
    est, _ = study_estimator(digits_lenet, paper, pts)
    df = deepfool(digits_lenet, pts.estimate)  # what the subspaces were computed from before the protocol existed
    ref_c = curved_subspace(digits_lenet, pts.estimate, 2, estimator=est, random_state=0, deepfool_result=df)
    ref_f = flat_subspace(digits_lenet, pts.estimate, 2, deepfool_result=df)
    assert torch.allclose(S_c.basis.abs(), ref_c.basis.abs(), atol=1e-6)
    assert torch.allclose(S_f.basis.abs(), ref_f.basis.abs(), atol=1e-6)
    B_c, B_f = study_subspaces(digits_lenet, pts, box)  # another key: not the paper's disk-cache entry
    assert not torch.allclose(B_f.basis.abs(), S_f.basis.abs(), atol=1e-3)
    assert not torch.allclose(B_c.curvatures, S_c.curvatures)


def dict_scale():
    from geometry.study import HScale

    return HScale("custom", 0.16)


def test_cross_section_page_warns_when_r_x_leaves_the_box_and_names_its_r_x(monkeypatch):
    import pages.ui.sidebar as sidebar

    if hasattr(sidebar, "_network_label"):  # as tests/test_tour.py: AppTest cannot reach the labels' state
        monkeypatch.setattr(sidebar, "_network_label", sidebar.model_label)
    # digits-lenet-pgd (adversarially trained): unconstrained DeepFool's z leaves [0, 1] at test point 0
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    params = dict(model="digits-lenet-pgd", i=0, res=32, cv_n=10, cv_m=3, dir="random", cv_rx="unconstrained")
    for k, v in params.items():
        at.query_params[k] = str(v)
    at.run()
    switch_page(at, "pages/cross_sections.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert any("leaves the pixel box" in w for w in warnings), warnings
    assert any(RX_PROVENANCE in c.value for c in at.caption)
    # the default protocol, one switch away: z inside, and what the paper's protocol would do is still said
    at.radio(key="cv_rx").set_value("box")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("leaves the pixel box" in w.value for w in at.warning)
    captions = [c.value for c in at.caption]
    assert any(RX_PROVENANCE_BOX in c for c in captions), captions
    assert any("lies inside the pixel box" in c and "paper's protocol" in c for c in captions), captions
