"""The command line ``boundary-atlas``: ``train``, ``report`` end to end on digits (zoo network and a
TorchScript file of the same network), one-line errors with exit status 2, and ``--help`` from a
real subprocess. Small settings keep the whole module at a few seconds once digits-lenet is trained."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geometry.cli import commands as cli
from geometry.cli.progress import ProgressBar
from geometry.study import m_grid

# TorchScript is written on purpose (users still upload it); torch ≥ 2.10 calls it deprecated
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")

SMALL = [
    "--n-points",
    "20",
    "--n-heldout",
    "20",
    "--m",
    "5",
    "--sections",
    "2",
    "--resolution",
    "48",
    "--n-directions",
    "4",
    "--n-samples",
    "4",
    "--seed",
    "0",
]
ALWAYS = [
    "model_card.json",
    "deepfool.json",
    "deepfool.csv",
    "deepfool_norms.html",
    "sections.json",
    "section_1.html",
    "section_2.html",
    "subspaces.json",
    "curvature_vs_m.csv",
    "curvature_vs_m.html",
    "fooling_rate_vs_m.json",
    "report.json",
    "index.html",
    "plotly.min.js",
]
FOOLING = ["fooling_rate_vs_m.csv", "fooling_rate_vs_m.html"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``cli.main(argv)`` in-process: (exit status, stdout, stderr); argparse's SystemExit included."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------- train
@pytest.fixture(scope="module")
def trained():
    """``boundary-atlas train digits-lenet`` once for the module: (code, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["train", "digits-lenet"])
    return code, out.getvalue(), err.getvalue()


def test_train_prints_accuracy_and_cache_file(trained, capsys):
    code, out, err = trained
    assert code == 0, err
    assert "test accuracy:" in out
    acc = float(out.split("test accuracy:")[1].split("%")[0])
    assert 90 < acc <= 100
    cache_file = Path(out.split("cache file:")[1].strip())
    assert cache_file.is_file() and cache_file.suffix == ".safetensors"
    assert "%" in err and "[" in err  # the progress bar went to stderr
    # a second call loads from the cache
    code, out2, _ = run(capsys, "train", "digits-lenet", "-q")
    assert code == 0 and "loaded from cache" in out2 and str(cache_file) in out2


# ---------------------------------------------------------------------------------------- report
def _check_report(d: Path, n: int = 20) -> dict:
    """Every listed file exists with sane content; returns the parsed JSON files."""
    files = ALWAYS + FOOLING
    for name in files:
        assert (d / name).is_file(), f"{name} missing"
    js = {name: json.loads((d / name).read_text(encoding="utf-8")) for name in files if name.endswith(".json")}

    card = js["model_card.json"]
    assert card["input_shape"] == [1, 8, 8] and card["num_classes"] == 10 and len(card["classes"]) == 10
    assert card["parameters"] > 1000 and 0.9 < card["test_accuracy"] <= 1.0
    assert card["accuracy_split"] == "test" and card["accuracy_n"] == 400
    assert card["normalisation"] is not None and len(card["normalisation"]["mean"]) == 1

    df = js["deepfool.json"]
    assert 0 < df["rho_adv"] < 1 and df["n"] == n
    assert df["median_norm"] > 0 and df["mean_norm"] > 0 and 0 <= df["converged_share"] <= 1
    table = rows(d / "deepfool.csv")
    assert len(table) == n
    assert list(table[0]) == ["index", "label", "adv_label", "norm", "converged", "true_label"]
    conv = [r for r in table if r["converged"] == "True"]
    assert len(conv) == df["n_converged"] and all(r["label"] != r["adv_label"] for r in conv)
    assert math.isclose(sum(float(r["norm"]) for r in conv) / len(conv), df["mean_norm"], rel_tol=1e-6)

    sub = js["subspaces.json"]
    assert sub["method"] == "finite_difference" and sub["h"] > 0 and sub["n"] > 0 and sub["m"] == 5
    assert len(sub["eigenvalues"]) == 5 and len(sub["curvatures"]) == 5
    assert sub["eigenvalues"] == sorted(sub["eigenvalues"], reverse=True)
    assert sub["asymmetry"] is None or sub["asymmetry"] >= 0
    cosines = sub["principal_angles_S_c_S_f"]["cosines"]
    assert all(-1e-9 <= c <= 1 + 1e-9 for c in cosines)
    curve = rows(d / "curvature_vs_m.csv")
    assert {r["subspace"] for r in curve} == {"S_c", "S_f", "random"}
    assert len(curve) == 3 * len(sub["curvature_vs_m"]["m_values"]) == 3 * 5

    fool = js["fooling_rate_vs_m.json"]
    assert fool["skipped"] is False and fool["xi"] > 0
    # ξ = 4 % of the median ‖x‖ (UniversalSettings.xi_ratio, the Universal page's default; issue 23, item 3)
    assert fool["xi_ratio"] == 0.04 and math.isclose(fool["xi"], fool["xi_ratio"] * fool["x_norm"])
    assert fool["noise_norm_quantile"] > 0
    fr = rows(d / "fooling_rate_vs_m.csv")
    assert len(fr) == 3 * 5 and all(0 <= float(r["mean"]) <= 1 for r in fr)

    sections = js["sections.json"]["sections"]
    assert [s["file"] for s in sections] == ["section_1.html", "section_2.html"]
    for name in files:
        if name.endswith(".html") and name != "index.html":
            text = (d / name).read_text(encoding="utf-8")
            assert "plotly" in text.lower() and 'src="plotly.min.js"' in text, name
    index = (d / "index.html").read_text(encoding="utf-8")
    for name in files:
        if name != "index.html":
            assert f'href="{name}"' in index, name
    # one page to read: every figure inline (one panel each, one shared plotly.min.js) beside its numbers
    figures = [f for f in files if f.endswith(".html") and f != "index.html"]
    assert index.count('class="panel"') == index.count("Plotly.newPlot") == len(figures)
    assert index.count('src="plotly.min.js"') == 1 and index.count('class="reading"') == len(figures)
    assert js["report.json"]["timings_s"]["total"] > 0
    return js


@pytest.fixture(scope="module")
def zoo_report(trained, tmp_path_factory):
    import io
    from contextlib import redirect_stderr, redirect_stdout

    d = tmp_path_factory.mktemp("zoo-report")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["report", "--zoo", "digits-lenet", "--dataset", "digits", *SMALL, "--out", str(d)])
    return d, code, out.getvalue(), err.getvalue()


def test_report_on_a_zoo_network(zoo_report):
    d, code, out, err = zoo_report
    assert code == 0, err
    js = _check_report(d)
    assert js["model_card.json"]["source"] == "zoo" and js["model_card.json"]["name"] == "digits-lenet"
    # summary on stdout, progress bar on stderr, no traceback
    assert "ρ_adv" in out and "index.html" in out and "fooling rate" in out
    assert "curvature study: S_c" in err and "100%" in err and "Traceback" not in err


def test_the_apps_report_is_the_command_lines_report(zoo_report):
    """The app's "Prepare report" (downloads.report_zip with a ReportSettings object, no argv) writes the numbers
    the command line wrote for the same settings, and the report's sections are the section study's."""
    import io
    import zipfile

    from geometry.cli.options import report_settings
    from geometry.output import downloads
    from geometry.study import section_study
    from geometry.study.report import load_report_data, zoo_source
    from geometry.zoo import load_model

    d0 = zoo_report[0]
    parser = cli.build_parser()
    settings = report_settings(parser.parse_args(["report", "--zoo", "digits-lenet", *SMALL, "--out", "x"]), parser)
    clf = load_model("digits-lenet")
    data = load_report_data("digits")
    blob = downloads.report_zip(clf, data, settings, model_source=zoo_source("digits-lenet", clf))
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        for name in ("deepfool.csv", "curvature_vs_m.csv", "fooling_rate_vs_m.csv"):
            assert z.read(f"report/{name}") == (d0 / name).read_bytes(), name
        for name in ("deepfool.json", "subspaces.json", "fooling_rate_vs_m.json", "sections.json"):
            assert json.loads(z.read(f"report/{name}")) == json.loads((d0 / name).read_text(encoding="utf-8"))
    # each section is geometry.study.section_study at the report's section settings
    sections = json.loads((d0 / "sections.json").read_text())["sections"]
    h = json.loads((d0 / "subspaces.json").read_text())["h"]
    assert len(sections) == 2
    for k, row in enumerate(sections):
        ref = section_study(clf, data.evaluated.images[row["index"]], settings.section(k, h=h))
        assert row["r_norm"] == ref.section.r_norm and row["resolution"] == 48
        assert row["kappa_along_v"] == float(ref.along.kappa[0, 0])


def test_report_on_a_torchscript_file(zoo_report, tmp_path, capsys):
    """The zoo network saved as TorchScript (without its normalisation, given as --mean/--std)
    reproduces the zoo report's numbers."""
    from geometry.zoo import load_model

    d0 = zoo_report[0]
    clf = load_model("digits-lenet")
    path = tmp_path / "digits_lenet.pt"
    torch.jit.save(torch.jit.script(clf.model), str(path))
    out_dir = tmp_path / "report"
    code, _out, err = run(
        capsys,
        "report",
        "--model",
        str(path),
        "--dataset",
        "digits",
        "--mean",
        *map(repr, clf.mean),
        "--std",
        *map(repr, clf.std),
        *SMALL,
        "--out",
        str(out_dir),
        "-q",
    )
    assert code == 0, err
    assert err == ""  # --quiet: no progress bar
    js = _check_report(out_dir)
    card = js["model_card.json"]
    assert card["source"] == "file" and card["format"] == "torchscript" and card["sha256"]
    assert card["classes"] == [str(i) for i in range(10)]
    ref = json.loads((d0 / "model_card.json").read_text())
    assert card["test_accuracy"] == ref["test_accuracy"]
    a, b = rows(out_dir / "deepfool.csv"), rows(d0 / "deepfool.csv")
    assert [r["index"] for r in a] == [r["index"] for r in b]
    assert all(math.isclose(float(x["norm"]), float(y["norm"]), rel_tol=1e-4) for x, y in zip(a, b, strict=True))


def test_infinite_noise_norm_skips_the_fooling_curve(trained, tmp_path, capsys, monkeypatch):
    import dataclasses

    import geometry.study.report as report

    real = report.noise_norm

    def never_fooled(*args, **kwargs):
        res = real(*args, **kwargs)
        return dataclasses.replace(res, quantile=float("inf"), infinite_share=1.0)

    monkeypatch.setattr(report, "noise_norm", never_fooled)  # build_report's noise norm
    code, out, err = run(
        capsys,
        "report",
        "--zoo",
        "digits-lenet",
        "--n-points",
        "8",
        "--n-heldout",
        "8",
        "--h-preset",
        "authors",
        "--m",
        "2",
        "--sections",
        "0",
        "--n-directions",
        "2",
        "--xi-from-noise",  # ξ from the noise norm (ICLR 2018 Fig. 7b): undefined when no noise fools
        "--out",
        str(tmp_path),
        "-q",
    )
    assert code == 0, err
    fool = json.loads((tmp_path / "fooling_rate_vs_m.json").read_text())
    assert fool["skipped"] is True and fool["xi"] is None and fool["noise_norm_quantile"] is None
    assert "infinite" in fool["reason"]
    assert not (tmp_path / "fooling_rate_vs_m.csv").exists() and not (tmp_path / "section_1.html").exists()
    assert "skipped" in out
    assert json.loads((tmp_path / "model_card.json").read_text())["dataset"] == "digits"  # --dataset defaulted


# ---------------------------------------------------------------------------------------- errors
def _one_line_error(code, err):
    assert code == 2
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_bad_model_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"this is not a model at all")
    code, _out, err = run(capsys, "report", "--model", str(bad), "--dataset", "digits", "--out", str(tmp_path / "r"))
    line = _one_line_error(code, err)
    assert "model.pt" in line
    assert not (tmp_path / "r").exists()
    code, _, err = run(
        capsys, "report", "--model", str(tmp_path / "missing.pt"), "--dataset", "digits", "--out", str(tmp_path / "r")
    )
    assert "does not exist" in _one_line_error(code, err)


def test_unknown_names_are_one_line_errors(trained, tmp_path, capsys):
    code, _, err = run(capsys, "report", "--zoo", "digits-lenet", "--dataset", "no-such-data", "--out", str(tmp_path))
    assert "no-such-data" in _one_line_error(code, err)
    code, _, err = run(capsys, "report", "--zoo", "no-such-net", "--out", str(tmp_path))
    assert "digits-lenet" in _one_line_error(code, err)  # the message lists the valid names
    code, _, err = run(capsys, "train", "no-such-net")
    assert "no-such-net" in _one_line_error(code, err)


def test_usage_errors_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "report", "--zoo", "digits-lenet")  # no --out
    assert code == 2 and "--out" in err
    code, _, err = run(capsys, "report", "--model", "x.pt", "--out", str(tmp_path))  # no --dataset
    assert code == 2 and "--dataset" in err
    code, _, err = run(capsys, "report", "--zoo", "digits-lenet", "--mean", "0.5", "--out", str(tmp_path))
    assert code == 2 and "--model only" in err
    code, _, err = run(capsys, "report", "--zoo", "digits-lenet", "--n-points", "0", "--out", str(tmp_path))
    assert code == 2 and "positive integer" in err


# ---------------------------------------------------------------------------------------- pieces
def test_help_in_a_subprocess():
    exe = Path(sys.executable).with_name("boundary-atlas")
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "geometry.cli", "--help"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "100"})
    assert res.returncode == 0, res.stderr
    assert "usage: boundary-atlas" in res.stdout and "report" in res.stdout and "train" in res.stdout


@pytest.mark.parametrize("command", [["train"], ["models"], ["report"], ["study"]])
def test_every_commands_help_formats(command, capsys):
    """argparse formats each help text with ``%``: a stray percent sign would only fail at ``--help``."""
    code, out, err = run(capsys, *command, "--help")
    assert code == 0 and err == "" and out.startswith(f"usage: boundary-atlas {command[0]}")


def test_name_lists_match_the_backend():
    from geometry.data import DATASETS
    from geometry.loading import FORMATS

    assert tuple(cli.DATASET_NAMES) == tuple(DATASETS)
    assert tuple(cli.FORMAT_NAMES) == tuple(FORMATS)


def test_progress_bar_plain_text():
    import io

    buf = io.StringIO()
    bar = ProgressBar(buf, width=10)
    step = bar.stage(0.0, 1.0, "computing S_c")
    step(0.5, "")
    step(0.52, "")  # under the logging step: not printed again
    step(1.0, "done")
    bar.close()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "[..........]   0% computing S_c"
    assert lines[1] == "[#####.....]  50% computing S_c"
    assert lines[-1] == "[##########] 100% computing S_c: done"
    assert len(lines) == 3
    quiet = io.StringIO()
    ProgressBar(quiet, enabled=False).update(0.5, "x")
    assert quiet.getvalue() == ""


def test_m_grid():
    assert m_grid(1) == [1]
    assert m_grid(5) == [1, 2, 3, 4, 5]
    g = m_grid(20)
    assert g[0] == 1 and g[-1] == 20 and g == sorted(set(g)) and len(g) <= 13  # about M_GRID_POINTS = 12
