"""The figure builders of geometry.plotting, one by one (issue 19 item 7): each is built from a small
result object — computed by the project's own functions on analytic classifiers (geometry.testing),
or the result dataclass constructed directly — and must say its units in the axis titles, name its
traces, carry hover text, come out through the ``atlas`` template with every title wrapped, and give a
figure rather than a crash on NaN or empty inputs."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import geometry.plotting as gp
from geometry.attacks import RobustAccuracy
from geometry.certify import Certificate, SanityCheck
from geometry.compare import RANDOM_ROW, TransferMatrix, compare_bases
from geometry.curvature import CurvatureCurve, Subspace
from geometry.deepfool import deepfool
from geometry.lipschitz import LayerBound, LipschitzBound
from geometry.plotting.layout import AXIS_CHARS, NARROW_AXIS_CHARS, NARROW_TITLE_CHARS, TITLE_CHARS
from geometry.profile import CurvatureProfile
from geometry.regions2d import BoundarySegments
from geometry.sections import Section, normal_section
from geometry.study.certify import AttackStudy, CertifiedSection, CertifyStudy
from geometry.study.constrained import ConstrainedRatio
from geometry.study.fig5 import SectionRow, UniversalSections
from geometry.study.robust import PointStudy, RobustStudy
from geometry.study.toy2d import CertificateLadder, LabSettings, LabStudy, LadderRow, UniversalPanel
from geometry.testing import affine_classifier
from geometry.toy2d import DecisionRegions, Osculating, ToyData
from geometry.universal import FoolingCurve

_TAG = re.compile(r"<[^>]*>")
NAMES = [f"class {i}" for i in range(3)]


# ----------------------------------------------------------------------------- small result objects
def _affine_section() -> Section:
    """A real normal section of a 3-class affine classifier on 1×4×4 inputs: x, r(x) by DeepFool, v random."""
    g = torch.Generator().manual_seed(0)
    W, b = torch.randn(3, 16, generator=g, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    clf = affine_classifier(W, b, input_shape=(1, 4, 4))
    x = torch.rand(1, 1, 4, 4, generator=g, dtype=torch.float64)
    r = deepfool(clf, x).r[0]
    v = torch.randn(1, 4, 4, generator=g, dtype=torch.float64)
    return normal_section(clf, x[0], r, v, extent=3 * float(r.norm()), resolution=24, adaptive=False)


SECTION = _affine_section()


def _curves(nan: bool = False) -> dict[str, CurvatureCurve]:
    m = torch.tensor([1, 2, 5, 10])
    out = {}
    for i, name in enumerate(("S_c", "S_f", "random")):
        mean = torch.tensor([1.0, 0.5, 0.2, 0.1]) * (2 - i)
        if nan:
            mean[1] = math.nan
        out[name] = CurvatureCurve(
            m_values=m, mean=mean, std=0.1 * mean.abs(), per_point=mean[None].repeat(3, 1),
            share_positive=torch.tensor([1.0, 1.0, 0.5, 0.5]), kappa_mean=mean / 4, kappa_std=0.1 * mean.abs() / 4,
            kappa_per_point=mean[None].repeat(3, 1) / 4, n=3, n_dropped=0, n_directions=10, n_hvp=40,
            kind=name, method="finite_difference", h=0.5, beta=None, point="boundary",
        )  # fmt: skip
    return out


def _subspace() -> Subspace:
    return Subspace(
        basis=torch.eye(16)[:, :3], spectrum=torch.tensor([3.0, 2.0, 1.0]), spectrum_kind="ritz", curvatures=torch.tensor([2.5, 1.5, 1.2]),
        kappas=torch.tensor([0.6, 0.4, 0.3]), asymmetry=0.12, kind="curved", n=4, n_dropped=0, n_hvp=30, n_matvec=30,
        method="finite_difference", h=0.5, beta=None, point="boundary", tangent=None, solver="eigsh",
        input_shape=(1, 4, 4),
    )  # fmt: skip


def _comparison():  # a real one: two random 10-dim bases of R^40
    g = torch.Generator().manual_seed(1)
    A, _ = torch.linalg.qr(torch.randn(40, 10, generator=g, dtype=torch.float64))
    B, _ = torch.linalg.qr(torch.randn(40, 10, generator=g, dtype=torch.float64))
    return compare_bases(A, B, m=5, n_samples=20, kind="curved", names=("lenet", "nin"))


def _transfer() -> TransferMatrix:
    mean = torch.tensor([[0.8, 0.3], [0.1, 0.05]])
    return TransferMatrix(
        rows=("lenet", RANDOM_ROW), columns=("lenet", "nin"), mean=mean, std=mean / 10, best=mean + 0.05,
        rates=mean[..., None].repeat(1, 1, 4), xi=2.0, m=10, n_samples=4, n_points=50,
    )  # fmt: skip


def _fooling(n_samples: int = 5) -> FoolingCurve:
    names = ("S_c", "S_f", "random")
    m = torch.tensor([1, 10, 100])
    rate = {n: torch.tensor([0.1, 0.3, 0.6]) / (i + 1) for i, n in enumerate(names)}
    return FoolingCurve(
        m_values=m, names=names, mean=rate, std={n: r / 10 for n, r in rate.items()},
        best={n: r + 0.05 for n, r in rate.items()}, rates={n: r[:, None].repeat(1, n_samples) for n, r in rate.items()},
        xi=3.0, n_samples=n_samples, n_points=40,
    )  # fmt: skip


def _gallery_rows() -> list[dict]:
    g = torch.Generator().manual_seed(2)
    return [
        dict(name="UAP", v=0.1 * torch.randn(1, 4, 4, generator=g), images=torch.rand(2, 1, 4, 4, generator=g),
             labels=torch.tensor([0, 1]), new_labels=torch.tensor([2, 1]), subtitle="fooling rate 50 %"),
    ]  # fmt: skip


def _ladder() -> CertificateLadder:
    """The ladder at x = (−1, −0.5) of the boundary x1 + x2 = 0: exact distance 1.5/√2 ≈ 1.06."""
    exact = 1.5 / math.sqrt(2)
    return CertificateLadder(
        x=np.array([-1.0, -0.5]), label=0, exact=exact, nearest=np.array([-0.25, 0.25]),
        rows=(
            LadderRow("exact distance", "exact", exact, "closed form"),
            LadderRow("global Lipschitz", "certificate", 0.5, "M(x) / (√2 L)"),
            LadderRow("LMT pair", "certificate", exact, "pair"),
            LadderRow("DeepFool r(x)", "attack", 1.02 * exact, "overshoot 0.02"),
            LadderRow("minimal ensemble", "attack", math.inf, "every attack failed"),
        ),
        attack_point=np.array([-0.24, 0.26]),
    )  # fmt: skip


def _segments() -> BoundarySegments:
    return BoundarySegments(
        start=np.array([[-2.0, 2.0]]), end=np.array([[2.0, -2.0]]), classes=np.array([[0, 1]]),
        box=(-2.0, 2.0, -2.0, 2.0), n_regions=1,
    )  # fmt: skip


def _lab() -> LabStudy:
    """A 2-D lab result constructed directly: the boundary x1 + x2 = 0 of a 2-class affine classifier."""
    x1 = x2 = np.linspace(-2, 2, 21)
    label = (x1[None, :] + x2[:, None] > 0).astype(int)
    pts = torch.tensor([[-1.0, -0.5], [1.0, 0.5], [-0.5, -1.0], [0.5, 1.2]])
    clf = affine_classifier(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), torch.zeros(2), input_shape=(1, 1, 2))
    x = np.array([-1.0, -0.5])
    r = np.array([0.75, 0.75])
    return LabStudy(
        settings=LabSettings(), data=ToyData(x=pts, y=torch.tensor([0, 1, 0, 1]), name="two blobs", noise=0.0),
        clf=clf, regions=DecisionRegions(x1=x1, x2=x2, label=label), predicted=np.array([0, 1, 0, 1]), x=x,
        iterates=np.stack([x, x + r]), steps=r[None], r=r, distance=float(np.linalg.norm(r)), converged=True,
        osculating=Osculating(z=x + r, normal=r / np.linalg.norm(r), kappa=0.0, center=np.full(2, np.inf),
                              radius=math.inf, method="exact", h=None),
        note="", accuracy=1.0,
    )  # fmt: skip


def _panel() -> UniversalPanel:
    return UniversalPanel(
        v=np.array([0.8, 0.8]), fooled=np.array([True, False, False, False]), fooling_rate=0.25, kind="S_f"
    )


def _profile(nan: bool = False) -> CurvatureProfile:
    ev = torch.tensor([[4.0, -2.0, 1.0], [3.0, 1.0, -0.5]])
    fd = torch.tensor([1.5, math.nan if nan else 0.7])
    return CurvatureProfile(
        eigenvalues=ev, mean=ev.abs().mean(0), std=ev.abs().std(0), q25=ev.abs().min(0).values,
        q75=ev.abs().max(0).values, spectral_norm=ev.abs().max(1).values, trace=ev.sum(1), finite_difference=fd,
        h=1.5, method="exact", n_hvp=12,
    )  # fmt: skip


def _robust(nan: bool = False) -> RobustStudy:
    curve = RobustAccuracy(
        eps=torch.tensor([0.0, 0.1, 0.3], dtype=torch.float64), accuracy=torch.tensor([0.9, 0.6, 0.2], dtype=torch.float64),
        clean_accuracy=0.9, norm=math.inf, steps=10, restarts=1, n=10,
    )  # fmt: skip
    return RobustStudy(
        profile=_profile(nan), clean_accuracy=0.9, pgd_accuracy=0.2, eps=0.3, rho_adv=0.1, deepfool_left_box=0.0,
        distance=torch.tensor([0.5, 0.7]), rho_boundary=0.1, wins={}, n_points=2, curve=curve,
    )  # fmt: skip


def _point() -> PointStudy:
    ts = torch.linspace(-1, 1, 9)
    return PointStudy(
        ts=ts, loss_normal=ts**2, loss_random=0.1 * ts**2, distance=0.5, winner="deepfool", section=SECTION
    )


def _layers() -> LipschitzBound:
    layers = (
        LayerBound(name="fc1", kind="linear", input_shape=(16,), upper=3.0, estimate=2.5, method="svd"),
        LayerBound(name="relu", kind="relu", input_shape=(8,), upper=1.0, estimate=1.0, method="1-Lipschitz"),
    )
    return LipschitzBound(
        upper=3.0, estimate=2.5, layers=layers, body_upper=None, body_estimate=None, last_weight=None, method="product"
    )


def _certify(success: bool = True) -> CertifyStudy:
    n = 4
    radius = np.array([0.1, 0.2, 0.05, 0.3])
    distance = np.array([0.5, 0.4, 0.1, 0.25])  # point 3: ε_cert > ‖r‖, a violation
    ok = np.full(n, success)
    cert = Certificate(
        label=np.zeros(n, dtype=int), margin=np.ones(n), radius=radius, radius_plain=radius, radius_pair=None,
        radius_estimate=radius * 1.5, bound=_layers(),
    )  # fmt: skip
    check = SanityCheck(
        r_norm=distance, success=ok, n_checked=n, violations=np.flatnonzero(ok & (radius > distance)),
        ratio=np.where(ok, distance / radius, np.nan), attack="deepfool",
    )  # fmt: skip
    eps = np.linspace(0, 0.5, 6)
    return CertifyStudy(
        certificate=cert, check=check, distance=distance, winner=("deepfool",) * n, labels=np.zeros(n, dtype=int), eps=eps,
        certified_accuracy=(radius[None] >= eps[:, None]).mean(1), attack_accuracy=(distance[None] > eps[:, None]).mean(1),
    )  # fmt: skip


def _crown_ladder() -> CertifyStudy:
    """The same study with a CROWN rung (computed on the first three points) and its violation kept."""
    return dataclasses.replace(_certify(), crown=np.array([0.2, 0.1, 0.3, np.nan]), crown_note="toy")


def _attack() -> AttackStudy:
    c = _certify()
    return AttackStudy(
        distance=c.distance, winner=c.winner, labels=c.labels, eps=c.eps, attack_accuracy=c.attack_accuracy
    )


def _constrained(nan: bool = False) -> ConstrainedRatio:
    ms = torch.tensor([1, 4, 16])
    ratio = (16 / ms.double()).sqrt()[None].repeat(3, 1)
    return ConstrainedRatio(
        ms=ms, ratio=ratio, mean=ratio.mean(0), std=torch.tensor([math.nan, 0.1, 0.0]) if nan else ratio.std(0),
        theory=(16 / ms.double()).sqrt(), d=16, converged_share=torch.ones(3),
    )  # fmt: skip


def _sections() -> UniversalSections:
    row = SectionRow(
        sections=[SECTION, SECTION], kappa=torch.tensor([0.3, math.nan]), fooled=torch.tensor([True, False]),
        directions=torch.zeros(2, 1, 4, 4),
    )  # fmt: skip
    return UniversalSections(universal=row, random=row, v_norm=2.0)


#: every builder of the package's public API, on a small result: name → (build, the units its axes must state)
CASES: dict[str, tuple[Callable[[], go.Figure], list[str]]] = {
    "section_figure": (lambda: gp.section_figure(SECTION, NAMES, curvature=0.25), ["pixel ℓ2 distance"] * 2),
    "curvature_vs_m_figure": (lambda: gp.curvature_vs_m_figure(_curves()), ["m", "logit / pixel²"]),
    "ritz_figure": (lambda: gp.ritz_figure(_subspace()), ["index", "logit / pixel²"]),
    "principal_angles_figure": (lambda: gp.principal_angles_figure(_comparison()), ["index i", "cos θ_i"]),
    "transfer_matrix_figure": (lambda: gp.transfer_matrix_figure(_transfer()), ["network", "vectors drawn from"]),
    "fooling_rate_vs_m_figure": (lambda: gp.fooling_rate_vs_m_figure(_fooling(), uap_rate=0.4, h=0.5), ["m", "%"]),
    "universal_gallery_figure": (lambda: gp.universal_gallery_figure(_gallery_rows(), NAMES), []),
    "inner_product_figure": (lambda: gp.inner_product_figure(np.array([[1.0, 0.2], [0.2, 1.0]])), []),
    "norm_histogram_figure": (
        lambda: gp.norm_histogram_figure(torch.tensor([0.5, 1.0, 1.5])),
        ["pixel-space ℓ2", "points"],
    ),
    "lab_figure": (lambda: gp.lab_figure(_lab(), clickable=True), []),
    "universal_figure": (lambda: gp.universal_figure(_lab(), _panel(), title="S_f direction"), []),
    "ladder_figure": (
        lambda: gp.ladder_figure(
            _ladder(), window=(-2.0, 0.0, -1.5, 0.5), regions=_lab().regions, segments=_segments()
        ),
        ["x₁ (data units)", "x₂ (data units)"],
    ),
    "curvature_profile_figure": (lambda: gp.curvature_profile_figure({"lenet": _robust()}), ["index i", "1/pixel²"]),
    "finite_difference_figure": (lambda: gp.finite_difference_figure({"lenet": _robust()}), ["1/pixel"]),
    "loss_along_figure": (lambda: gp.loss_along_figure({"lenet": _point()}), ["pixel ℓ2", "cross-entropy"]),
    "robust_accuracy_figure": (
        lambda: gp.robust_accuracy_figure({"lenet": _robust()}),
        ["ε (ℓ∞, pixel units)", "accuracy"],
    ),
    "certified_scatter_figure": (lambda: gp.certified_scatter_figure(_certify()), ["pixel units", "ε_cert"]),
    "radius_ratio_figure": (lambda: gp.radius_ratio_figure(_certify()), ["‖r(x)‖ / ε_cert(x)", "points"]),
    "accuracy_vs_eps_figure": (lambda: gp.accuracy_vs_eps_figure(_certify()), ["ε (ℓ2, pixel units)", "accuracy"]),
    "certificate_ladder_figure": (
        lambda: gp.certificate_ladder_figure(_crown_ladder()),
        ["radius (ℓ2, pixel units; log scale)", "rank"],
    ),
    "ladder_accuracy_figure": (
        lambda: gp.ladder_accuracy_figure(_crown_ladder()),
        ["ε (ℓ2, pixel units)", "certified accuracy"],
    ),
    "layer_norms_figure": (lambda: gp.layer_norms_figure(_layers()), ["Lipschitz"]),
    "certified_section_figure": (
        lambda: gp.certified_section_figure(CertifiedSection(SECTION, 0.1, 0.15, float(SECTION.r_norm)), NAMES),
        ["pixel ℓ2 distance"] * 2,
    ),
    "constrained_ratio_figure": (lambda: gp.constrained_ratio_figure(_constrained()), ["m", "‖r_S(x)‖ / ‖r(x)‖"]),
    "section_grid_figure": (lambda: gp.section_grid_figure(_sections(), NAMES), []),
}


def _axis_titles(fig: go.Figure) -> list[str]:
    return [a.title.text for a in (*fig.select_xaxes(), *fig.select_yaxes()) if a.title.text]


def _visible_lines(text: str) -> list[str]:
    return [_TAG.sub("", line) for line in re.split(r"<br\s*/?>", text)]


def test_every_public_builder_has_a_case():
    builders = {n for n in gp.__all__ if n.endswith("_figure")}
    assert builders == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_builder_goes_through_the_template_and_wraps_its_titles(name):
    build, _ = CASES[name]
    fig = build()
    assert isinstance(fig, go.Figure)
    assert list(fig.layout.template.layout.colorway) == gp.CLASS_COLORS  # the registered atlas template
    assert fig.layout.margin.l is not None and fig.layout.margin.b is not None  # pinned for Streamlit's theme
    if fig.layout.title.text:
        assert fig.layout.title.font.size is not None
        assert all(len(line) <= TITLE_CHARS or " " not in line for line in _visible_lines(fig.layout.title.text))
    for title in _axis_titles(fig):
        assert all(len(line) <= AXIS_CHARS or " " not in line for line in _visible_lines(title))


@pytest.mark.parametrize("name", sorted(CASES))
def test_axis_titles_state_their_units(name):
    build, units = CASES[name]
    titles = " | ".join(t.replace("<br>", " ") for t in _axis_titles(build()))
    for unit in units:
        assert unit in titles, f"{name}: {unit!r} not in the axis titles {titles!r}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_trace_is_named_or_hidden_and_hovers_with_text(name):
    """A trace in the legend has a name; a trace the pointer can reach says what it shows (a hover template
    or hover text) — only bands, grids and decorations opt out with ``hoverinfo="skip"``."""
    build, _ = CASES[name]
    fig = build()
    for trace in fig.data:
        if (
            fig.layout.showlegend is not False
            and trace.showlegend is not False
            and trace.type not in ("heatmap", "image")
        ):
            assert trace.name, f"{name}: an unnamed {trace.type} trace in the legend"
        x = getattr(trace, "x", None)
        if trace.hoverinfo == "skip" or (x is not None and all(v is None for v in x)):
            continue  # decorations, and legend-only entries (no point to hover)
        assert trace.hovertemplate or trace.hovertext or trace.text is not None, f"{name}: {trace.type} {trace.name!r}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_narrow_rewraps_every_builder_for_a_half_width_column(name):
    build, _ = CASES[name]
    fig = gp.narrow(build())
    if fig.layout.title.text:
        assert all(len(line) <= NARROW_TITLE_CHARS or " " not in line for line in _visible_lines(fig.layout.title.text))
    for title in _axis_titles(fig):
        assert all(len(line) <= NARROW_AXIS_CHARS or " " not in line for line in _visible_lines(title))


# ----------------------------------------------------------------------------- what each figure shows
def test_section_figure_marks_x_and_z_and_names_the_classes_present():
    fig = gp.section_figure(SECTION, NAMES, direction_label="random v", curvature=0.25)
    names = [t.name for t in fig.data]
    present = sorted(set(SECTION.labels.unique().tolist()))
    assert "z = x + r(x)" in names and "decision boundary" in names
    assert any(n.startswith("x (class ") for n in names if n)
    assert [n for n in names if n in NAMES] == [NAMES[c] for c in present]
    z = next(t for t in fig.data if t.name == "z = x + r(x)")
    assert z.x[0] == pytest.approx(float(SECTION.r_norm))  # z at (‖r(x)‖, 0), pixel units
    assert "κ = +0.25 (1/pixel)" in fig.layout.title.text.replace("<br>", " ")


def test_section_figure_leaves_a_nan_curvature_out_of_the_title():
    fig = gp.section_figure(SECTION, NAMES, curvature=math.nan)
    assert "κ" not in fig.layout.title.text


def test_curvature_vs_m_normalised_is_in_one_over_pixel():
    fig = gp.curvature_vs_m_figure(_curves(), normalised=True)
    assert "1 / pixel distance" in fig.layout.yaxis.title.text.replace("<br>", " ")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == [gp.theme.SUBSPACE_LABELS[n] for n in ("S_c", "S_f", "random")]
    np.testing.assert_allclose(lines[0].y, _curves()["S_c"].kappa_mean.numpy())


def test_fooling_rates_are_percent_and_the_uap_line_is_named():
    fig = gp.fooling_rate_vs_m_figure(_fooling(), uap_rate=0.4)
    names = [t.name for t in fig.data]
    assert "UAP algorithm (CVPR 2017)" in names
    assert "S_c (curved subspace) — mean" in names and "S_c (curved subspace) — best of 5" in names
    mean = next(t for t in fig.data if t.name == "S_c (curved subspace) — mean")
    np.testing.assert_allclose(mean.y, [10, 30, 60])  # fractions shown in percent
    assert fig.layout.yaxis.range == (0, 102)


def test_transfer_matrix_colours_percent_and_labels_rows_by_subspace():
    fig = gp.transfer_matrix_figure(_transfer())
    heat = fig.data[0]
    assert list(heat.y) == ["S_c(lenet)", RANDOM_ROW]
    assert "%" in heat.colorbar.title.text and (heat.zmin, heat.zmax) == (0, 100)
    np.testing.assert_allclose(heat.z, 100 * _transfer().mean.numpy())


def test_principal_angles_plot_cosines_against_the_random_baseline():
    cmp_ = _comparison()
    fig = gp.principal_angles_figure(cmp_)
    line = next(t for t in fig.data if t.name == "S_c(lenet) vs S_c(nin)")
    np.testing.assert_allclose(line.y, cmp_.cosines.numpy())
    assert all(0 <= c <= 1 + 1e-9 for c in line.y)


# ----------------------------------------------------------------------------- NaN and empty inputs
def test_nan_and_empty_inputs_give_a_figure():
    # DeepFool norms: NaN (not converged) points are left out; all NaN → an empty histogram, no median line
    fig = gp.norm_histogram_figure(torch.tensor([0.5, math.nan, 1.5]))
    assert len(fig.data[0].x) == 2 and "n = 2" in fig.layout.title.text
    empty = gp.norm_histogram_figure(torch.tensor([math.nan, math.nan]))
    assert len(empty.data[0].x) == 0 and not empty.layout.shapes
    assert isinstance(gp.curvature_vs_m_figure(_curves(nan=True)), go.Figure)
    assert isinstance(gp.curvature_vs_m_figure({}), go.Figure)
    no_uap = gp.fooling_rate_vs_m_figure(_fooling(n_samples=1), uap_rate=math.nan)
    assert "UAP algorithm (CVPR 2017)" not in [t.name for t in no_uap.data]
    assert isinstance(gp.finite_difference_figure({"lenet": _robust(nan=True)}), go.Figure)
    for build in (
        gp.curvature_profile_figure,
        gp.finite_difference_figure,
        gp.robust_accuracy_figure,
        gp.loss_along_figure,
    ):
        assert isinstance(build({}), go.Figure)
    one = gp.inner_product_figure(np.ones((1, 1)))
    assert "single perturbation" in one.layout.title.text.replace("<br>", " ")  # no off-diagonal mean to give
    assert isinstance(gp.universal_gallery_figure([], NAMES), go.Figure)
    nan_std = gp.constrained_ratio_figure(_constrained(nan=True))
    assert np.isfinite(nan_std.data[0].error_y.array).all()


def test_certify_figures_without_a_successful_attack():
    study = _certify(success=False)
    scatter = gp.certified_scatter_figure(study)
    assert [t.name for t in scatter.data][:2] == ["ε_cert = ‖r‖", "with power-iteration L (not sound)"]
    ratio = gp.radius_ratio_figure(study)
    assert len(ratio.data) == 0  # no finite ratio: an empty chart, not a crash
    no_certificate = gp.accuracy_vs_eps_figure(_attack())
    assert [t.name for t in no_certificate.data] == ["accuracy under attack (‖r‖ > ε): upper bound"]


def test_certified_scatter_marks_violations_in_their_own_trace():
    fig = gp.certified_scatter_figure(_certify())
    violation = next(t for t in fig.data if t.name == "violation: ε_cert > ‖r‖")
    assert list(violation.customdata) == [3]


def test_certified_section_is_finished_once():
    """The certified disk is drawn on the un-finished section (section_traces): the legend is lowered for a
    wrapped x-axis title once, not once per pass."""
    cs = CertifiedSection(SECTION, 0.1, 0.15, float(SECTION.r_norm))
    fig = gp.certified_section_figure(cs, NAMES)
    assert "certified disk ε_cert = 0.1" in [t.name for t in fig.data]
    assert fig.layout.margin.b == 130  # the section's own bottom margin; the α title fits one line
