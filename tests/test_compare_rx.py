"""Compare networks under the r(x) protocols (issue 23, item 2): both networks' S_c boundary points and S_f
normals come from box-constrained DeepFool by default, the paper's unconstrained DeepFool one switch away
with its disk-cache entries unchanged, and the page says how many boundary points that protocol puts outside
the pixel box either way.

The analytic cases use affine two-class classifiers whose boundary x_1 + x_2 = 1.5 lies partly outside the
pixel box (tests/test_rx_provenance.py): from x_1 ≈ 0.95 the unconstrained DeepFool step leaves [0, 1]^d, the
box-constrained one reaches the boundary at x_1 = 1.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_compare import _run_compare
from test_rx_provenance import _binary, _points

from geometry.errors import InvalidInputError
from geometry.study import CompareSettings, HScale, PointSplit, compare_study
from geometry.study import compare as compare_mod
from geometry.study.provenance import RX_PROVENANCE, RX_PROVENANCE_BOX, estimation_box_share, left_box

N = 16


def test_compare_settings_default_to_the_box_and_refuse_other_protocols():
    assert CompareSettings().rx == "box"
    paper = CompareSettings(rx="unconstrained")
    assert paper.key() != CompareSettings().key()  # a box result never answers for the paper's protocol
    for bad in ("clipped", None, 1):
        with pytest.raises(InvalidInputError, match="rx must be one of"):
            CompareSettings(rx=bad)


def _networks():
    """Two affine networks whose boundaries (x_1 + x_2 = 1.5 and x_1 + 0.8 x_2 = 1.4) leave the box near x_1 = 1."""
    a = _binary(torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64), -1.5)
    b = _binary(torch.tensor([1.0, 0.8, 0.0, 0.0], dtype=torch.float64), -1.4)
    return dataclasses.replace(a, name="affine-a"), dataclasses.replace(b, name="affine-b")


def _near_the_top(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xs = torch.rand(N, 1, 2, 2, generator=g, dtype=torch.float64)
    xs.view(N, -1)[:, 0] = 0.95 + 0.05 * torch.rand(N, generator=g, dtype=torch.float64)
    xs.view(N, -1)[:, 1] *= 0.2  # far enough from both boundaries that each unconstrained step leaves [0, 1]
    return xs


def _settings(rx: str) -> CompareSettings:
    return CompareSettings(points=PointSplit(N, N, 0, 0), m_estimated=2, scale=HScale("custom", 0.1), rx=rx)


def _spy(monkeypatch) -> list[dict]:
    """Record the protocol and the DeepFool run every subspace of the comparison was estimated from."""
    calls: list[dict] = []
    real = compare_mod.cached_subspace

    def spy(kind, clf, xs, m, **kw):
        calls.append({"kind": kind, "clf": clf, "xs": xs, "rx": kw.get("rx"), "df": kw.get("deepfool_result")})
        return real(kind, clf, xs, m, **kw)

    monkeypatch.setattr(compare_mod, "cached_subspace", spy)
    return calls


@pytest.mark.parametrize("rx", ["box", "unconstrained"])
def test_both_networks_boundary_points_follow_the_protocol(monkeypatch, rx):
    a, b = _networks()
    pts = _points(_near_the_top(seed=3 if rx == "box" else 4))
    calls = _spy(monkeypatch)
    compare_study(a, b, pts, _settings(rx))
    assert {(c["kind"], c["clf"].name) for c in calls} == {
        (k, n) for k in ("curved", "flat") for n in ("affine-a", "affine-b")
    }
    for c in calls:
        assert c["rx"] == rx
        df = c["df"]
        assert bool(df.converged.all())
        z = c["xs"] + df.r
        assert bool((c["clf"].predict(z) != c["clf"].predict(c["xs"])).all())  # z across the boundary
        outside = left_box(c["clf"], c["xs"], df.r, tolerance=0.0)
        if rx == "box":
            assert not bool(outside.any()) and float(z.min()) >= 0.0 and float(z.max()) <= 1.0
        else:
            assert bool(outside.all())
    for clf in (a, b):  # what the page reports under either protocol: every paper z of these points leaves the box
        share = estimation_box_share(clf, pts)
        assert (share.n_outside, share.share) == (N, 1.0)


def test_the_papers_protocol_reads_the_subspaces_written_before_the_protocol_existed(monkeypatch):
    from geometry.study import cache as cache_mod

    a, b = _networks()
    pts = _points(_near_the_top(seed=5))
    settings = _settings("unconstrained")
    first = compare_study(a, b, pts, settings)

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed: not read from the disk cache")

    monkeypatch.setattr(cache_mod, "curved_subspace", refuse)
    monkeypatch.setattr(cache_mod, "flat_subspace", refuse)
    from geometry.hessian import CurvatureEstimator

    for kind in ("curved", "flat"):
        for i, clf in enumerate((a, b)):
            basis = first.subspaces[kind][i].basis
            # the call of before rx existed: no protocol, no DeepFool run (the file is read, nothing computed)
            old = cache_mod.cached_subspace(
                kind,
                clf,
                pts.estimate,
                basis.shape[1],
                data_key=pts.estimate_key,
                estimator=CurvatureEstimator(h=0.1),
                random_state=0,
            )
            assert torch.equal(old.basis, basis)
    with pytest.raises(AssertionError, match="recomputed"):  # the box protocol has its own entries
        compare_study(a, b, pts, _settings("box"))


def test_transfer_sections_box_r_x_stays_in_the_box_and_is_longer():
    from geometry.compare import transfer_sections

    a, _ = _networks()
    x = torch.tensor([0.95, 0.1, 0.3, 0.6], dtype=torch.float64).reshape(1, 2, 2)
    v = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    paper = transfer_sections(a, x, v, resolution=8, curvature=False)
    box = transfer_sections(a, x, v, resolution=8, curvature=False, clip=True)
    assert paper.converged and box.converged
    # unconstrained: straight to x_1 + x_2 = 1.5, distance (1.5 − 1.05)/√2 ≈ 0.318, z_1 ≈ 1.18 leaves the box;
    # box-constrained: x_1 stops at 1 and x_2 has to go to ≈ 0.5, ‖r‖ ≈ √(0.05² + 0.4²) ≈ 0.40
    assert paper.r_norm == pytest.approx(0.45 / 2**0.5 * 1.02, rel=0.02)
    assert box.r_norm > 1.2 * paper.r_norm


@pytest.mark.slow
def test_compare_page_switch_sets_the_studys_protocol_and_states_the_share_outside(monkeypatch):
    import geometry.study as study_mod

    seen: list[str] = []
    real = study_mod.compare_study

    def spy(clf_a, clf_b, points, settings, **kw):
        seen.append(settings.rx)
        return real(clf_a, clf_b, points, settings, **kw)

    monkeypatch.setattr(study_mod, "compare_study", spy)
    from geometry.runtime import jobs as jobs_mod

    registry = jobs_mod.registry()  # a finished compare job of an earlier test would answer without calling the spy
    for job in registry.jobs():
        if job.key.startswith("compare"):
            registry.forget(job.key)
    at = _run_compare()
    assert not at.exception, [x.value for x in at.exception]
    assert at.radio(key="cmp_rx").value == "box" and seen == ["box"]
    notes = [c.value for c in at.caption if RX_PROVENANCE_BOX in c.value]
    assert len(notes) == 2 and "**digits-lenet**" in notes[0] and "**digits-nin**" in notes[1], notes
    at.radio(key="cmp_rx").set_value("unconstrained")
    at.run()
    assert not at.exception, [x.value for x in at.exception]
    assert seen == ["box", "unconstrained"]
    assert at.query_params["cmp_rx"] in ("unconstrained", ["unconstrained"])  # a shareable view
    notes = [n.value for n in (*at.caption, *at.warning) if RX_PROVENANCE in n.value]
    assert len(notes) == 2, notes
    assert not any(RX_PROVENANCE_BOX in n.value for n in at.caption)
