"""Take-away files (issue 14 item 3, :mod:`geometry.output.downloads`): a figure's HTML holds its data and
opens offline; PNG / SVG come from kaleido when a browser is there (skipped otherwise) and a missing
exporter is one clear error; a study result's tensors, tables and numbers round-trip through
``.npz``, ``.safetensors``, CSV and JSON with a README naming every key; the report's arguments
parse with the command line's own parser; several figures zipped share one plotly.js that every HTML file loads,
with monotone progress; and the report zip's ``index.html`` draws every figure
inline beside its numbers."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from safetensors.numpy import load as load_safetensors

from geometry.cli import commands as cli
from geometry.cli import options
from geometry.cli.options import report_argv
from geometry.output import downloads
from geometry.study import (
    CompareSettings,
    CurvatureSettings,
    HScale,
    PointSplit,
    SectionSettings,
    UniversalSettings,
    section_study,
)
from geometry.study.report import ReportSettings
from geometry.testing import sphere_classifier


def _zip(data: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data))


def _csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


@dataclass(frozen=True)
class Curve:
    """A curve for the tests.

    Attributes
    ----------
    m_values : (M,) int64
        Subspace dimensions.
    mean, std : (M,) float64
        Mean and standard deviation over points (logit / pixel²).
    per_point : (M, n) float64
        Each point's value.
    label : str
        Its name.
    """

    m_values: torch.Tensor
    mean: torch.Tensor
    std: np.ndarray
    per_point: torch.Tensor
    label: str


@pytest.fixture(scope="module")
def curve() -> Curve:
    g = torch.Generator().manual_seed(0)
    per = torch.randn(4, 7, generator=g, dtype=torch.float64)
    return Curve(torch.tensor([1, 2, 4, 8]), per.mean(1), per.std(1).numpy(), per, "S_c")


@pytest.fixture(scope="module")
def section():
    """A real section study on the analytic sphere (boundary ‖x − c‖ = R, curvature +1/R)."""
    clf = sphere_classifier(torch.full((1, 4, 4), 0.5), 0.3, input_shape=(1, 4, 4))
    x = torch.full((1, 4, 4), 0.5, dtype=torch.float64)
    x[0, 0, 0] += 0.1
    return section_study(clf, x, SectionSettings(resolution=24, method="exact"))


# ------------------------------------------------------------------------------------------ figures
def test_html_holds_the_figures_data_and_plotly_inline():
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[1.25, 3.5, 2.75], name="my-trace"))
    text = downloads.figure_html(fig).decode("utf-8")
    assert "my-trace" in text and "3.5" in text and "2.75" in text
    assert not re.search(r'<script[^>]+src="https?://', text)  # nothing fetched: plotly.js is inlined
    assert len(text) > 1_000_000


def _three_figures():
    return {
        f"Figure {k} (a/b)": (
            lambda k=k: go.Figure(go.Scatter(x=[0, 1, 2], y=[k, 2.5 * k + 0.125, 1], name=f"trace-{k}"))
        )
        for k in range(3)
    }


def test_figures_zip_shares_one_plotly_js_that_every_html_loads():
    progress: list[tuple[float, str]] = []
    data = downloads.figures_zip(_three_figures(), ("html",), progress=lambda f, m: progress.append((f, m)))
    z = zipfile.ZipFile(io.BytesIO(data))
    names = z.namelist()
    js = [n for n in names if n.endswith(".js")]
    assert js == [downloads.PLOTLY_JS]
    assert len(z.read(downloads.PLOTLY_JS)) > 1_000_000 and b"Plotly" in z.read(downloads.PLOTLY_JS)
    html = sorted(n for n in names if n.endswith(".html"))
    assert html == ["Figure_0_a_b.html", "Figure_1_a_b.html", "Figure_2_a_b.html"]
    for k, name in enumerate(html):
        text = z.read(name).decode("utf-8")
        assert re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", text) == [downloads.PLOTLY_JS]  # loads the shared copy
        assert f"trace-{k}" in text and str(2.5 * k + 0.125) in text  # this figure's own data
        assert len(text) < 100_000  # not inlined
    assert "Figure_0_a_b.html" in z.read("README.txt").decode("utf-8")
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions) and len(set(fractions)) >= 1 + 3 * 2  # a step per figure and file


def test_figures_zip_without_an_exporter_keeps_the_html_and_says_why(monkeypatch):
    monkeypatch.setattr(downloads, "static_export_problem", lambda: "PNG / SVG need the kaleido package")
    progress: list[float] = []
    z = zipfile.ZipFile(io.BytesIO(downloads.figures_zip(_three_figures(), progress=lambda f, m: progress.append(f))))
    assert not [n for n in z.namelist() if n.endswith((".png", ".svg"))]
    assert len([n for n in z.namelist() if n.endswith(".html")]) == 3
    assert "No PNG / SVG: PNG / SVG need the kaleido package" in z.read("README.txt").decode("utf-8")
    assert progress == sorted(progress) and progress[-1] == 1.0
    with pytest.raises(downloads.ExportUnavailableError, match="pdf"):
        downloads.figures_zip(_three_figures(), ("html", "pdf"))


def test_figures_zip_draws_png_and_svg_in_one_browser():
    problem = downloads.static_export_problem()
    if problem:
        pytest.skip(problem)
    figures = dict(list(_three_figures().items())[:2])
    progress: list[float] = []
    z = zipfile.ZipFile(
        io.BytesIO(
            downloads.figures_zip(figures, ("png", "svg"), width=300, scale=1, progress=lambda f, m: progress.append(f))
        )
    )
    for stem in ("Figure_0_a_b", "Figure_1_a_b"):
        png = z.read(f"{stem}.png")
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 300
        assert z.read(f"{stem}.svg").decode("utf-8").lstrip().startswith("<svg")
    assert downloads.PLOTLY_JS not in z.namelist()  # no HTML asked for: no script
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_missing_exporter_is_one_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "kaleido", None)  # import kaleido → ImportError
    downloads.static_export_problem.cache_clear()
    try:
        problem = downloads.static_export_problem()
        assert problem is not None and "kaleido" in problem and "\n" not in problem
        with pytest.raises(downloads.ExportUnavailableError, match="kaleido"):
            downloads.figure_image(go.Figure(), "png")
    finally:
        downloads.static_export_problem.cache_clear()


def test_png_and_svg_export():
    problem = downloads.static_export_problem()
    if problem:
        pytest.skip(problem)
    fig = go.Figure([go.Scatter(y=[1, 3, 2], name="exported-trace"), go.Scatter(y=[2, 1, 3], name="other")])
    png = downloads.figure_image(fig, "png", width=400, height=300, scale=1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (w, h) == (400, 300)
    svg = downloads.figure_image(fig, "svg", width=400, height=300, scale=1).decode("utf-8")
    assert svg.lstrip().startswith("<svg") and 'width="400"' in svg and "exported-trace" in svg  # the legend
    with pytest.raises(downloads.ExportUnavailableError, match="pdf"):
        downloads.figure_image(fig, "pdf")


# ------------------------------------------------------------------------------------------ data
def test_tables_tensors_and_readme_from_a_result(curve):
    bundle = downloads.result_bundle("test", {"curve": curve}, provenance={"network_fingerprint": "abc123"})
    # the equally long 1-D fields make one CSV table, in field order
    (table,) = bundle.tables
    rows = _csv(downloads.table_csv(table))
    assert list(rows[0]) == ["m_values", "mean", "std"]
    assert [int(r["m_values"]) for r in rows] == [1, 2, 4, 8]
    np.testing.assert_allclose([float(r["mean"]) for r in rows], curve.mean.numpy())
    # every tensor is a key, with its meaning from the class docstring
    keys = {t.key: t for t in bundle.tensors}
    assert set(keys) == {"curve.m_values", "curve.mean", "curve.std", "curve.per_point"}
    assert "logit / pixel²" in keys["curve.std"].meaning and keys["curve.std"].source.endswith("Curve.std")
    z = _zip(downloads.bundle_zip(bundle))
    npz = np.load(io.BytesIO(z.read("tensors.npz")))
    st = load_safetensors(z.read("tensors.safetensors"))
    for key in keys:
        np.testing.assert_array_equal(npz[key], st[key])
    np.testing.assert_array_equal(npz["curve.per_point"], curve.per_point.numpy())
    readme = z.read("README.txt").decode("utf-8")
    assert all(k in readme for k in keys) and "abc123" in readme and "(4, 7)" in readme
    numbers = json.loads(z.read("numbers.json"))
    assert numbers["results"]["curve"]["label"] == "S_c" and numbers["provenance"]["network_fingerprint"] == "abc123"
    assert _csv(z.read("tables/curve.csv")) == rows


def test_a_section_study_round_trips(section):
    bundle = downloads.result_bundle("sections", {"section": section})
    z = _zip(downloads.bundle_zip(bundle))
    npz = np.load(io.BytesIO(z.read("tensors.npz")))
    st = load_safetensors(z.read("tensors.safetensors"))
    # r(x), the section's grid and labels, v: keys and shapes of the result
    np.testing.assert_array_equal(npz["section.deepfool.r"], section.deepfool.r.numpy())
    np.testing.assert_array_equal(npz["section.section.labels"], section.section.labels.numpy())
    assert npz["section.section.labels"].shape == (24, 24) and npz["section.v"].shape == (1, 4, 4)
    assert set(npz.files) == set(st) == {t.key for t in bundle.tensors}
    # bool tensors (converged) are uint8 in safetensors
    assert st["section.deepfool.converged"].dtype in (np.uint8, np.bool_)
    readme = z.read("README.txt").decode("utf-8")
    assert all(f"  {k}  " in readme for k in npz.files)
    assert "pixel-space ℓ2" in readme  # the Section docstring's unit for alpha / r_norm
    # the sphere's normal curvature at z = x + r(x) along any tangent v is 1/‖z − c‖, in the numbers
    numbers = json.loads(z.read("numbers.json"))
    kappa = numbers["results"]["section"]["along"]["kappa"]
    z_minus_c = npz["section.deepfool.x_adv"][0] - 0.5
    assert kappa[0][0] == pytest.approx(1 / np.linalg.norm(z_minus_c), rel=1e-6)


def test_curves_of_one_mapping_are_also_one_long_table(curve):
    other = Curve(curve.m_values, curve.mean + 1, curve.std, curve.per_point, "S_f")
    bundle = downloads.result_bundle("t", {"curves": {"S_c": curve, "S_f": other}})
    assert [t.name for t in bundle.tables] == ["curves.S_c", "curves.S_f", "curves"]
    rows = _csv(downloads.table_csv(bundle.tables[-1]))
    assert list(rows[0]) == ["name", "m_values", "mean", "std"] and len(rows) == 8
    assert [r["name"] for r in rows] == ["S_c"] * 4 + ["S_f"] * 4
    np.testing.assert_allclose([float(r["mean"]) for r in rows[4:]], (curve.mean + 1).numpy())


def test_records_become_a_table_and_networks_are_skipped(section):
    records = [{"m": 1, "rate": 0.5}, {"m": 2, "rate": float("nan")}]
    clf = sphere_classifier(torch.zeros(4), 1.0, input_shape=(1, 2, 2))
    bundle = downloads.result_bundle("r", {"theorems": records, "network": clf})
    (table,) = bundle.tables
    rows = _csv(downloads.table_csv(table))
    assert list(rows[0]) == ["m", "rate"] and rows[1]["rate"] == ""
    assert bundle.tensors == () and "network" not in json.loads(downloads.numbers_json(bundle))["results"]


# ------------------------------------------------------------------------------------------ report
@pytest.mark.parametrize(
    "settings",
    [
        ReportSettings(),
        ReportSettings(
            curvature=CurvatureSettings(
                points=PointSplit(30, 12, 0, 2),
                m_max=5,
                method="finite_difference",
                scale=HScale("custom", 0.0625),
                point="inside",
                n_directions=4,
            ),
            share=0.5,
            n_samples=3,
            sections=1,
            resolution=40,
            extent_factor=2.5,
        ),
        ReportSettings(curvature=CurvatureSettings(method="smoothed", beta=3.0)),
        ReportSettings.following(CompareSettings(scale=CompareSettings.half_xi(0.8))),
        ReportSettings.following(CompareSettings(rx="unconstrained")),
        ReportSettings.following(UniversalSettings()),
        ReportSettings.following(UniversalSettings(xi_ratio=None, rx="unconstrained")),
        ReportSettings(xi_ratio=0.2, curvature=CurvatureSettings(rx="unconstrained")),
    ],
)
def test_the_command_line_of_report_settings_parses_back_to_them(settings):
    """What the app shows as the report's command line gives the same settings (no argv round trip in the
    app itself: it calls build_report with the settings object)."""
    argv = report_argv("digits-lenet", "digits", settings, out="elsewhere")
    args = cli.build_parser().parse_args(argv)
    assert (args.zoo, args.dataset, args.out) == ("digits-lenet", "digits", "elsewhere")
    assert options.report_settings(args, cli.build_parser()) == settings
    assert downloads.report_command(argv).startswith("boundary-atlas report --zoo digits-lenet --dataset digits")


def test_default_settings_give_the_shortest_command_line():
    assert report_argv("n", "d", ReportSettings()) == ["report", "--zoo", "n", "--dataset", "d", "--out", "report"]


def test_report_zip_builds_the_report_and_zips_the_written_folder(monkeypatch):
    """The zip holds exactly the folder ``write_report`` wrote for the Report ``build_report`` returned, with
    the settings object it was given (the report itself, index.html's inline figures included, is tested end
    to end in test_cli.py)."""
    from geometry.output import report as output_report
    from geometry.study import report as study_report

    seen = {}

    def fake_build(clf, data, settings, *, progress=None, model_source=None):
        seen["args"] = (clf, data, settings, model_source)
        progress(0.5, "DeepFool: 12 points")
        return "the report"

    def fake_write(report, out):
        seen["report"], seen["out"] = report, Path(out)
        out = Path(out)
        out.mkdir(parents=True)
        (out / "index.html").write_text("<html>index</html>", encoding="utf-8")
        (out / "deepfool.csv").write_text("index,norm\n0,0.5\n", encoding="utf-8")
        return out / "index.html"

    monkeypatch.setattr(study_report, "build_report", fake_build)
    monkeypatch.setattr(output_report, "write_report", fake_write)
    progress: list[tuple[float, str]] = []
    settings = ReportSettings(sections=0)
    z = _zip(
        downloads.report_zip("clf", "data", settings, progress=lambda f, m: progress.append((f, m)), model_source={})
    )
    assert sorted(z.namelist()) == ["report/deepfool.csv", "report/index.html"]
    assert _csv(z.read("report/deepfool.csv")) == [{"index": "0", "norm": "0.5"}]
    assert seen["args"] == ("clf", "data", settings, {}) and seen["report"] == "the report"
    assert not seen["out"].exists()  # a temporary folder, removed afterwards
    assert progress == [(0.5 * 0.97, "DeepFool: 12 points"), (0.97, "writing the files"), (1.0, "done")]


def test_a_page_settings_report_keeps_its_protocol():
    """The report of a page's settings uses that page's points, m, h and (Universal) share and samples."""
    u = UniversalSettings(points=PointSplit(40, 150, 150, 3), m_max=6, share=0.5, n_samples=4)
    r = ReportSettings.following(u)
    assert r.curvature.points == PointSplit(40, 150, 0, 3) and r.curvature.m_max == 6
    assert r.curvature.scale == u.scale and (r.share, r.n_samples) == (0.5, 4)
    c = CompareSettings(points=PointSplit(50, 200, 0, 1), m_estimated=8, scale=CompareSettings.half_xi())
    assert ReportSettings.following(c).curvature.scale.label.startswith("h = ξ/2")
    for rx in ("box", "unconstrained"):  # the Compare page's r(x) protocol goes into its report (issue 23, item 2)
        assert ReportSettings.following(dataclasses.replace(c, rx=rx)).curvature.rx == rx
    assert ReportSettings.following(None) == ReportSettings()
