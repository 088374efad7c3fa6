"""Tests of geometry.compare (Fig. 10 principal angles between networks' subspaces, Appendix C.2
transferability) on analytic classifiers with known geometry, and an AppTest of the page.

Properties of ``principal_angles`` / ``random_baseline`` themselves (ones against itself, zeros for
orthogonal spans, basis invariance, agreement with scipy, the baseline's known scale) are tested in
tests/test_subspaces.py; here: what compare.py adds on top.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from pagenav import switch_page

from geometry.compare import (
    RANDOM_ROW,
    compare_bases,
    compare_networks,
    compare_subspaces,
    transfer_matrix,
    transfer_sections,
)
from geometry.errors import InvalidInputError
from geometry.hessian import CurvatureEstimator
from geometry.subspaces import random_baseline, random_subspace
from geometry.testing import affine_classifier, quadratic_classifier, sphere_classifier

SHAPE = (1, 4, 4)
D = 16


def e(*idx: int) -> torch.Tensor:
    """(D, k) matrix of standard basis vectors."""
    out = torch.zeros(D, len(idx), dtype=torch.float64)
    for j, i in enumerate(idx):
        out[i, j] = 1.0
    return out


def rotation(k: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(k, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


# ---------------------------------------------------------------------------------------- compare_bases
def test_subspace_against_itself_is_all_ones_far_above_the_baseline():
    S = random_subspace(100, 3, random_state=0)  # a Subspace object (uses .basis)
    res = compare_bases(S, S, n_samples=50, names=("a", "a"), kind="curved")
    assert torch.allclose(res.cosines, torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert bool(res.above_baseline(3.0).all())
    assert bool((res.z_scores > 3).all())
    assert (res.d, res.p, res.q, res.k, res.kind, res.names) == (100, 3, 3, 3, "curved", ("a", "a"))


def test_orthogonal_subspaces_give_zero_cosines_below_the_baseline():
    res = compare_bases(e(0, 1, 2), e(3, 4, 5), n_samples=20)
    assert torch.allclose(res.cosines, torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert not bool(res.above_baseline(0.0).any())
    assert bool((res.z_scores < 0).all())


@pytest.mark.parametrize("seed", range(5))
def test_cosines_do_not_change_under_a_rotation_of_either_basis_and_match_scipy(seed):
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(D, 4, generator=gen, dtype=torch.float64)
    B = torch.randn(D, 3, generator=gen, dtype=torch.float64)
    ref = compare_bases(A, B).cosines
    assert torch.allclose(compare_bases(A @ rotation(4, seed), B).cosines, ref, atol=1e-10)
    assert torch.allclose(compare_bases(A, B @ rotation(3, seed + 1)).cosines, ref, atol=1e-10)
    scipy_cos = np.sort(np.cos(scipy.linalg.subspace_angles(A.numpy(), B.numpy())))[::-1]
    np.testing.assert_allclose(ref.numpy(), scipy_cos, atol=1e-10)


def test_m_compares_only_the_leading_directions():
    # first two directions shared, the third ones orthogonal: m = 2 gives ones, m = 3 a zero too
    A, B = e(0, 1, 2), e(1, 0, 5)
    assert torch.allclose(compare_bases(A, B, m=2).cosines, torch.ones(2, dtype=torch.float64))
    assert torch.allclose(compare_bases(A, B, m=3).cosines, torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))


def test_baseline_is_the_random_baseline_of_the_same_dimensions_and_seed():
    A, B = e(0, 1, 2), e(3, 4, 5)
    res = compare_bases(A, B, n_samples=30, random_state=7)
    ref = random_baseline(D, 3, 3, n_samples=30, random_state=7)
    assert torch.equal(res.baseline.mean, ref.mean) and torch.equal(res.baseline.std, ref.std)
    assert torch.equal(compare_bases(A, B, n_samples=30, random_state=7).baseline.samples, res.baseline.samples)


def test_compare_bases_errors_say_expected_and_given():
    with pytest.raises(InvalidInputError, match="same dimension"):
        compare_bases(e(0), torch.ones(D + 1, 1, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="at most the smaller basis size"):
        compare_bases(e(0, 1), e(2, 3, 4), m=3)
    with pytest.raises(InvalidInputError, match="positive integer"):
        compare_bases(e(0), e(1), n_samples=0)


# ---------------------------------------------------------------------------------------- compare_subspaces
def planted(lambdas: dict, *, name: str):
    """Quadratic classifier F = gᵀ(x − x0) + ½(x − x0)ᵀA(x − x0), g = 3 e0, A = Σ λ_i e_i e_iᵀ (i ≥ 1)."""
    A = torch.zeros(D, D, dtype=torch.float64)
    for i, lam in lambdas.items():
        A[i, i] = lam
    g = 3.0 * e(0)[:, 0]
    x0 = torch.full((D,), 0.5, dtype=torch.float64)
    return quadratic_classifier(A, g, x0, input_shape=SHAPE, name=name)


def points_below_x0(n: int = 6) -> torch.Tensor:
    """Points x0 − t e0 (class 0, F = −3t): DeepFool is exact, z ≈ x0, normal e0, tangent Hessian A."""
    x0 = torch.full((D,), 0.5, dtype=torch.float64)
    t = torch.linspace(0.05, 0.3, n, dtype=torch.float64)
    return (x0[None] - t[:, None] * e(0)[:, 0][None]).reshape(n, *SHAPE)


def test_two_networks_with_the_same_planted_curved_directions_share_S_c():
    # same span {e1, e2, e3} of positive curvature, different eigenvalues and order
    P = planted({1: 5.0, 2: 5.0, 3: 5.0, 7: -2.0}, name="P")
    Q = planted({3: 6.0, 2: 4.0, 1: 3.0, 9: 1.0}, name="Q")
    xs = points_below_x0()
    before = xs.clone()
    res = compare_subspaces(P, Q, xs, m=3, m_estimated=4, kinds=("curved",), n_baseline=50)
    assert torch.equal(xs, before)  # inputs not mutated
    cmp_ = res.comparisons["curved"]
    assert torch.allclose(cmp_.cosines, torch.ones(3, dtype=torch.float64), atol=1e-6)
    assert bool(cmp_.above_baseline(2.0).all())
    assert res.names == ("P", "Q") and res.m == 3 and res.m_estimated == 4
    assert res.subspaces["curved"][0].basis.shape == (D, 4)
    # the same h for both networks (authors' default of network A)
    assert res.h == pytest.approx(10 * np.sqrt(D) / 512)
    assert res.subspaces["curved"][0].h == res.subspaces["curved"][1].h == res.h


def test_networks_curved_along_orthogonal_directions_have_orthogonal_S_c_but_share_S_f():
    P = planted({1: 5.0, 2: 4.0, 3: 3.0}, name="P")
    R = planted({4: 5.0, 5: 4.0, 6: 3.0}, name="R")
    xs = points_below_x0()
    res = compare_subspaces(P, R, xs, m=3, kinds=("curved",), n_baseline=20)
    assert torch.allclose(res.comparisons["curved"].cosines, torch.zeros(3, dtype=torch.float64), atol=1e-6)
    # both have the normal e0 at every boundary point: S_f's first direction is shared
    flat = compare_subspaces(P, R, xs, m=1, kinds=("flat",), n_baseline=20)
    assert float(flat.comparisons["flat"].cosines[0]) == pytest.approx(1.0, abs=1e-9)
    assert float(flat.subspaces["flat"][0].basis[0, 0]) ** 2 == pytest.approx(1.0, abs=1e-9)


def test_compare_subspaces_rejects_mismatched_networks_and_settings():
    P = planted({1: 1.0}, name="P")
    other = affine_classifier(torch.randn(2, 9, dtype=torch.float64), torch.zeros(2), input_shape=(1, 3, 3))
    xs = points_below_x0()
    with pytest.raises(InvalidInputError, match="same input shape"):
        compare_subspaces(P, other, xs)
    with pytest.raises(InvalidInputError, match="kinds"):
        compare_subspaces(P, P, xs, kinds=("sideways",))
    with pytest.raises(InvalidInputError, match="m_estimated"):
        compare_subspaces(P, P, xs, m=3, m_estimated=2)


def test_compare_networks_receives_the_subspaces_and_equals_the_estimating_call():
    """The comparison is maths on given subspaces (the study layer caches and passes them in)."""
    P = planted({1: 5.0, 2: 4.0, 3: 3.0}, name="P")
    Q = planted({2: 6.0, 1: 4.0, 5: 1.0}, name="Q")
    xs = points_below_x0()
    est = CurvatureEstimator(h=0.2)
    ref = compare_subspaces(P, Q, xs, m=2, m_estimated=3, estimator=est, n_baseline=10, random_state=4)
    got = compare_networks(
        {k: ref.subspaces[k] for k in ("curved", "flat")},
        names=("P", "Q"),
        m=2,
        n=len(xs),
        estimator=est.resolve(P),
        n_baseline=10,
        random_state=4,
    )
    assert (got.names, got.m, got.m_estimated, got.n, got.method, got.h) == (("P", "Q"), 2, 3, len(xs), ref.method, 0.2)
    for kind in ("curved", "flat"):
        assert torch.equal(got.comparisons[kind].cosines, ref.comparisons[kind].cosines)
        assert torch.equal(got.comparisons[kind].baseline.mean, ref.comparisons[kind].baseline.mean)
    # the two most curved directions are {e1, e2} for both networks (in another order): cosines 1
    torch.testing.assert_close(got.comparisons["curved"].cosines, torch.ones(2, dtype=torch.float64), atol=1e-6, rtol=0)
    with pytest.raises(InvalidInputError, match="two subspaces each"):
        compare_networks({"curved": ref.subspaces["curved"][:1]}, names=("P", "Q"), m=1, n=1, estimator=est)


def test_compare_imports_no_study_layer():
    import ast

    import geometry.compare

    tree = ast.parse(Path(geometry.compare.__file__).read_text())
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert modules and not [m for m in modules if m.startswith("study") or ".study" in m]


# ---------------------------------------------------------------------------------------- transfer_matrix
def affine_two_class(normal: torch.Tensor, *, name: str):
    """f = (0, normal·x − 0.5): class 1 beyond the hyperplane normal·x = 0.5 (unit normal)."""
    W = torch.zeros(2, D, dtype=torch.float64)
    W[1] = normal
    return affine_classifier(W, torch.tensor([0.0, -0.5], dtype=torch.float64), input_shape=SHAPE, name=name)


def eval_points(n: int = 40, seed: int = 0) -> torch.Tensor:
    """Points with x_0, x_1 in [0.3, 0.45] (class 0 for both hyperplanes x_0 = 0.5 and x_1 = 0.5)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, D, generator=gen, dtype=torch.float64)
    x[:, :2] = 0.3 + 0.15 * torch.rand(n, 2, generator=gen, dtype=torch.float64)
    return x.reshape(n, *SHAPE)


def test_identical_networks_give_equal_rows_equal_columns_and_a_symmetric_matrix():
    gen = torch.Generator().manual_seed(3)
    W, b = torch.randn(4, D, generator=gen, dtype=torch.float64), torch.randn(4, generator=gen, dtype=torch.float64)
    a = affine_classifier(W, b, input_shape=SHAPE, name="a")
    a2 = affine_classifier(W, b, input_shape=SHAPE, name="a2")
    S = random_subspace(D, 3, random_state=1)
    xs = eval_points()
    tm = transfer_matrix({"a": a, "a2": a2}, {"a": S, "a2": S}, xs, xi=1.0, m=3, n_samples=15, random_state=0)
    assert tm.rows == ("a", "a2", RANDOM_ROW) and tm.columns == ("a", "a2")
    assert tm.mean.shape == (3, 2) and tm.rates.shape == (3, 2, 15)
    sub = tm.mean[:2]
    assert torch.equal(sub, sub.T)  # symmetric
    assert torch.equal(tm.rates[0], tm.rates[1])  # equal rows (common random numbers)
    assert torch.equal(tm.rates[:, 0], tm.rates[:, 1])  # equal columns
    assert bool(((tm.rates >= 0) & (tm.rates <= 1)).all())
    assert bool((tm.best >= tm.mean).all())


def test_rows_are_whose_subspace_and_columns_the_network_fooled():
    # P's boundary normal is e0, Q's is e1. Vectors from span(e0, e1) can fool both; vectors from
    # span(e1) move nothing along e0, so they never fool P.
    P, Q = affine_two_class(e(0)[:, 0], name="P"), affine_two_class(e(1)[:, 0], name="Q")
    xs = eval_points()
    tm = transfer_matrix(
        {"P": P, "Q": Q}, {"wide": e(0, 1), "Q only": e(1)}, xs, xi=1.0, m=1, n_samples=30, random_state=0
    )
    assert tm.rate("Q only", "P") == 0.0
    assert tm.rate("Q only", "Q") > 0.0 and float(tm.best[1, 1]) == 1.0  # +ξ e1 crosses x_1 = 0.5 for every point
    assert tm.rate("wide", "P") > 0.0  # m = 1: the first direction of "wide" is e0
    assert tm.rate("wide", "Q") == 0.0
    with pytest.raises(InvalidInputError, match="no entry"):
        tm.rate("P", "nobody")


def test_the_zero_vector_fools_nobody():
    P, Q = affine_two_class(e(0)[:, 0], name="P"), affine_two_class(e(1)[:, 0], name="Q")
    tm = transfer_matrix({"P": P, "Q": Q}, {"P": e(0), "Q": e(1)}, eval_points(), xi=0.0, m=1, n_samples=5)
    assert torch.equal(tm.mean, torch.zeros(3, 2, dtype=torch.float64))


def test_seeds_are_reproducible_and_inputs_untouched():
    gen = torch.Generator().manual_seed(0)
    a = affine_classifier(torch.randn(3, D, generator=gen), torch.randn(3, generator=gen), input_shape=SHAPE)
    S = random_subspace(D, 4, random_state=2)
    basis_before = S.basis.clone()
    xs = eval_points()
    xs_before = xs.clone()
    kw = dict(xi=0.8, m=4, n_samples=12)
    t1 = transfer_matrix({"a": a}, {"a": S}, xs, random_state=5, **kw)
    t2 = transfer_matrix({"a": a}, {"a": S}, xs, random_state=5, **kw)
    t3 = transfer_matrix({"a": a}, {"a": S}, xs, random_state=6, **kw)
    assert torch.equal(t1.rates, t2.rates)
    assert not torch.equal(t1.rates, t3.rates)
    assert torch.equal(xs, xs_before) and torch.equal(S.basis, basis_before)
    no_random = transfer_matrix({"a": a}, {"a": S}, xs, random_state=5, random_row=False, **kw)
    assert no_random.rows == ("a",) and torch.equal(no_random.rates[0], t1.rates[0])


def test_transfer_matrix_errors_say_expected_and_given():
    P = affine_two_class(e(0)[:, 0], name="P")
    small = affine_classifier(torch.randn(2, 9, dtype=torch.float64), torch.zeros(2), input_shape=(1, 3, 3))
    xs = eval_points()
    with pytest.raises(InvalidInputError, match="same input shape"):
        transfer_matrix({"P": P, "s": small}, {"P": e(0)}, xs, xi=1.0, m=1)
    with pytest.raises(InvalidInputError, match="orthonormal"):
        transfer_matrix({"P": P}, {"P": 2 * e(0)}, xs, xi=1.0, m=1)
    with pytest.raises(InvalidInputError, match="at most the smallest subspace dimension"):
        transfer_matrix({"P": P}, {"P": e(0)}, xs, xi=1.0, m=2)
    with pytest.raises(InvalidInputError, match="xi"):
        transfer_matrix({"P": P}, {"P": e(0)}, xs, xi=-1.0, m=1)
    with pytest.raises(InvalidInputError, match="d = 9"):
        transfer_matrix({"P": P}, {"P": torch.eye(9, 1, dtype=torch.float64)}, xs, xi=1.0, m=1)


# ---------------------------------------------------------------------------------------- transfer_sections
def test_sections_of_a_sphere_show_curvature_one_over_R_along_any_direction():
    R = 2.0
    c = torch.full((D,), 0.5, dtype=torch.float64)
    clf = sphere_classifier(c, R, input_shape=SHAPE)
    x = (c + 0.5 * R * e(0)[:, 0]).reshape(SHAPE)  # inside, 1.0 from the sphere
    ts = transfer_sections(clf, x, 3.0 * e(5)[:, 0], random_state=0, resolution=32)
    assert ts.converged and ts.label == 0 and ts.adv_label == 1
    assert float(ts.direction.norm()) == pytest.approx(1.0)
    # DeepFool's linearisation oversteps a sphere (and r includes the 0.02 overshoot), so z lies on
    # the level sphere ‖z − c‖ = 0.5 R + ‖r‖ (r is radial): κ = 1/‖z − c‖ along every tangent direction
    assert ts.r_norm > 0.5 * R
    np.testing.assert_allclose(ts.kappa.numpy(), 1 / (0.5 * R + ts.r_norm), rtol=1e-3)
    for sec in (ts.subspace_section, ts.random_section):
        assert set(np.unique(sec.labels.numpy())) == {0, 1}
        assert sec.label == 0


def test_sections_of_an_affine_classifier_are_flat():
    P = affine_two_class(e(0)[:, 0], name="P")
    x = eval_points(1)[0]
    ts = transfer_sections(P, x, e(3)[:, 0], random_state=1, resolution=16)
    np.testing.assert_allclose(ts.kappa.numpy(), 0.0, atol=1e-6)
    with pytest.raises(InvalidInputError, match="non-zero"):
        transfer_sections(P, x, torch.zeros(D))
    with pytest.raises(InvalidInputError, match="d = 16"):
        transfer_sections(P, x, torch.ones(5))


# ---------------------------------------------------------------------------------------- the page
ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 300  # a cold cache trains three digits networks (seconds each) on a busy 2-core machine
SMALL = dict(cmp_n=20, cmp_m=3, cmp_res=64, cmp_vectors=3)


def _specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _run_compare(session: dict | None = None, **query):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in {**SMALL, **query}.items():
        at.query_params[k] = str(v)
    for k, v in (session or {}).items():
        at.session_state[k] = v
    at.run()
    switch_page(at, "pages/compare.py")
    at.run()
    return at


@pytest.mark.slow
def test_compare_page_draws_angles_sections_and_the_fooling_matrix():
    at = _run_compare()
    assert not at.exception, [x.value for x in at.exception]
    assert not at.error, [x.value for x in at.error]
    assert at.selectbox(key="cmp_a").value == "digits-lenet"  # the sidebar's network
    assert at.selectbox(key="cmp_b").value == "digits-nin"
    specs = _specs(at)
    assert len(specs) == 5  # S_c and S_f angles, two sections, the matrix
    angle_figs = [s for s in specs if "principal angles" in s["layout"]["title"]["text"].replace("<br>", " ")]
    assert len(angle_figs) == 2
    assert {s["layout"]["title"]["text"][:3] for s in angle_figs} == {"S_c", "S_f"}
    assert any("random subspaces" in t.get("name", "") for t in angle_figs[0]["data"])
    sections = [
        s
        for s in specs
        if s["data"]
        and s["data"][0]["type"] == "heatmap"
        and "xaxis" in s["layout"]
        and "pixel ℓ2" in str(s["layout"]["xaxis"].get("title", ""))
    ]
    assert len(sections) == 2
    heat = [s for s in specs if "Fooling rate" in s["layout"]["title"]["text"].replace("<br>", " ")]
    assert len(heat) == 1
    assert heat[0]["data"][0]["y"] == ["S_c(digits-lenet)", "S_c(digits-nin)", RANDOM_ROW]
    assert heat[0]["data"][0]["texttemplate"] == "%{text}"
    assert at.query_params["cmp_b"] in ("digits-nin", ["digits-nin"])  # a shareable view


@pytest.mark.slow
def test_an_uploaded_copy_of_the_sidebar_network_shares_its_subspaces_exactly(tmp_path):
    import io

    from geometry import zoo
    from geometry.loading import load_classifier

    clf = zoo.load_model("digits-lenet")
    path = tmp_path / "copy.pt"
    torch.jit.save(torch.jit.script(clf.network), str(path))

    class Upload(io.BytesIO):
        name = "copy.pt"

    up = load_classifier(
        Upload(path.read_bytes()), input_shape=(1, 8, 8), class_names=clf.class_names, name="upload:copy-test"
    )
    at = _run_compare(
        {"_user_models": {"upload:copy-test": {"clf": up, "dataset": "digits"}}, "cmp_b": "upload:copy-test"}
    )
    assert not at.exception, [x.value for x in at.exception]
    assert "copy-test (upload)" in at.selectbox(key="cmp_b").options  # shown with the upload mark
    assert at.selectbox(key="cmp_b").value == "upload:copy-test"
    top = {m.label: m.value for m in at.metric}
    assert top["S_c: largest cosine"] == "1.000" and top["S_f: largest cosine"] == "1.000"
    assert "cmp_b" not in at.query_params  # uploads are not put into links


def test_the_transferred_sections_are_a_fragment_inside_the_pages_fragment():
    """Issue 20: the direction / seed / resolution controls rerun only Fig. 13's two sections (a fragment), and the
    page's other controls only the page's body below the sidebar (a fragment too) — both decorated with st.fragment,
    and the controls drawn inside the inner one."""
    import ast

    tree = ast.parse((ROOT / "pages" / "compare.py").read_text())
    funcs = {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}

    def fragment(name: str) -> bool:
        return any(ast.unparse(d) == "st.fragment" for d in funcs[name].decorator_list)

    assert fragment("_study_view") and fragment("_transfer_view") and not fragment("render")
    inner = ast.unparse(funcs["_transfer_view"])
    assert all(f"'{key}'" in inner for key in ("cmp_k", "cmp_seed", "cmp_res"))
    outer = ast.unparse(funcs["_study_view"])
    assert not any(f"'{key}'" in outer for key in ("cmp_k", "cmp_seed", "cmp_res"))


@pytest.mark.slow
def test_a_new_direction_redraws_the_sections_and_the_downloads_follow_it():
    """The sections' fragment writes what it shows where the page's downloads read it when a button is pressed:
    after direction 1 → 2 the 'B along S_c(A)' download is direction 2's section, not the one of the last run of the
    page's body."""
    at = _run_compare()
    assert not at.exception, [x.value for x in at.exception]

    def along_sc_title() -> str:
        titles = [s["layout"]["title"]["text"].replace("<br>", " ") for s in _specs(at)]
        found = [t for t in titles if "along S_c(" in t]
        assert len(found) == 1, titles
        return found[0]

    assert "direction 1" in along_sc_title()
    first = at.session_state["_downloads"]["compare"]["results"]["transfer_sections"]
    at.number_input(key="cmp_k").set_value(2).run()
    assert not at.exception, [x.value for x in at.exception]
    assert "direction 2" in along_sc_title()
    held = at.session_state["_downloads"]["compare"]
    shown = held["results"]["transfer_sections"]
    assert shown is not first and not torch.equal(shown.subspace_section.e2, first.subspace_section.e2)
    figure = held["figures"]["B along S_c(A)"]()
    assert "along S_c(A) direction 2" in figure.layout.yaxis.title.text
    assert np.array_equal(np.asarray(figure.data[0].x), shown.subspace_section.alpha.numpy())
