"""``boundary-atlas certify`` (issue 21 item 4): CROWN's settings reachable from the command line, and the report is
the Certified page's ladder — each certificate, the best one, the best attack radius — recomputed here from the
study itself (an independent path through the JSON / CSV writers)."""

from __future__ import annotations

import csv
import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest

from geometry import zoo
from geometry.cli import commands as cli
from geometry.cli.certify import certify_settings
from geometry.data import load_dataset
from geometry.study.certify import CertifySettings, certify_study


def _parse(*argv: str) -> CertifySettings:
    args = cli.build_parser().parse_args(["certify", "--zoo", "digits-mlp", "--out", "x", *argv])
    return certify_settings(args)


def test_the_options_map_onto_the_pages_settings():
    page = CertifySettings()
    assert _parse() == CertifySettings(crown_points=page.n_points)  # the page's defaults, CROWN on every point
    s = _parse("--crown", "--norm", "inf", "--points", "50", "--crown-points", "80", "--crown-tol", "0.05")
    assert (s.n_points, s.crown_norm, s.crown_points, s.crown_tol) == (50, "linf", 50, 0.05)
    assert _parse("--norm", "2", "--crown-points", "7").crown_points == 7
    off = _parse("--no-crown", "--norm", "inf")
    assert off.crown_norm == "none" and off.crown_points == 0


@pytest.mark.parametrize("bad", [["--norm", "1"], ["--points", "0"], ["--crown-points", "-1"]])
def test_bad_options_are_one_line_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["certify", "--zoo", "digits-mlp", "--out", "x", *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err


def test_the_report_is_the_ladder_with_the_best_certificate_and_the_best_attack(tmp_path):
    buf = io.StringIO()
    argv = ["certify", "--zoo", "digits-mlp", "--crown", "--norm", "2", "--points", "30", "--crown-points", "10"]
    with redirect_stdout(buf):
        assert cli.main([*argv, "--crown-tol", "0.05", "-q", "--out", str(tmp_path)]) == 0
    text = buf.getvalue()
    res = json.loads((tmp_path / "certify.json").read_text())
    test = load_dataset("digits", split="test")
    settings = CertifySettings(n_points=30, crown_points=10, crown_tol=0.05)
    study = certify_study(zoo.load_model("digits-mlp"), test.images, test.labels.numpy(), settings)
    rungs = res["ladder"]["certificates"]
    assert list(rungs) == ["global Lipschitz", "LMT pair", "CROWN ℓ2", "best certificate"]
    assert rungs["CROWN ℓ2"]["points"] == 10 and rungs["global Lipschitz"]["points"] == 30
    for name, radius in study.ladder().items():
        assert rungs[name]["median_radius"] == pytest.approx(float(np.nanmedian(radius)))
    ok = np.isfinite(study.distance)
    assert res["ladder"]["attack"]["found"] == int(ok.sum())
    assert res["ladder"]["attack"]["median_radius"] == pytest.approx(float(np.median(study.distance[ok])))
    best = rungs["best certificate"]["median_ratio_to_attack"]
    assert 0 < best <= 1 and res["sound"] and res["masking_flags"] == []
    assert all(best >= rungs[k]["median_ratio_to_attack"] - 1e-12 for k in ("global Lipschitz", "LMT pair"))
    rows = list(csv.DictReader((tmp_path / "certify.csv").open()))
    assert len(rows) == 30
    for row in rows:  # the best certificate is the largest rung, named, and below the attack radius
        radii = {k: float(row[k]) for k in ("global Lipschitz", "LMT pair", "CROWN ℓ2") if row[k] != ""}
        assert float(row["best_certificate"]) == pytest.approx(max(radii.values()))
        assert radii[row["best_by"]] == pytest.approx(float(row["best_certificate"]))
        assert float(row["best_certificate"]) <= float(row["attack_radius"])
    assert row["CROWN ℓ2"] == ""  # beyond --crown-points
    for line in ("global Lipschitz", "LMT pair", "CROWN ℓ2", "best certificate", "best attack", "sound: yes"):
        assert line in text
    assert "masking flags: none" in text
