"""``boundary-atlas robust`` (issue 21): PGD beside the AutoAttack-style ensemble on the same points, the minimal
distance with who won, and the masking flags — on a zoo digits network (no flag) and on a deliberately masked
model file (a softmax after the logits: the probability flag with its remedy)."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from torch import nn

from geometry import zoo
from geometry.autoattack import autoattack
from geometry.cli import commands as cli
from geometry.data import load_dataset
from geometry.minimal import MINIMAL_ATTACKS
from geometry.study import choose_points

SMALL = ["--n-points", "20", "--ensemble-points", "20", "--k", "2", "-q"]


@pytest.fixture(scope="module")
def pgd_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("robust")
    buf = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(buf):
        code = cli.main(["robust", "--zoo", "digits-lenet-pgd", *SMALL, "--out", str(out)])
    assert code == 0
    return out, buf.getvalue()


def test_the_ensemble_is_reported_beside_pgd_on_the_same_points(pgd_run):
    out, text = pgd_run
    res = json.loads((out / "robust.json").read_text())
    ens = res["ensemble"]
    assert res["eps"] == 0.1 and res["n_points"] == ens["n_points"] == 20  # the page's ε on 8×8 digits
    # the same points and PGD settings: the ensemble's PGD column is the study's PGD accuracy
    assert ens["pgd_accuracy"] == pytest.approx(res["pgd_accuracy"])
    # the ensemble's number is autoattack's on the page's seeded choice of test points
    test = load_dataset("digits", split="test")
    idx = choose_points(len(test.images), 20, random_state=0)
    ref = autoattack(zoo.load_model("digits-lenet-pgd"), test.images[idx], test.labels[idx], eps=0.1, random_state=0)
    assert ens["robust_accuracy"] == pytest.approx(ref.robust_accuracy)
    assert ens["robust_accuracy"] <= ens["clean_accuracy"]
    assert sum(ens["broken_first_by"].values()) == round((ens["clean_accuracy"] - ens["robust_accuracy"]) * 20)
    assert f"robust accuracy {100 * ens['robust_accuracy']:.1f} %" in text and "PGD accuracy" in text
    assert res["masking_flags"] == [] and "masking flags: none" in text


def test_the_distance_is_the_minimal_ensembles_with_who_won(pgd_run):
    out, _ = pgd_run
    res = json.loads((out / "robust.json").read_text())
    rows = list(csv.DictReader((out / "robust.csv").open()))
    assert len(rows) == 20 and {r["won_by"] for r in rows} <= set(MINIMAL_ATTACKS)
    dist = torch.tensor([float(r["distance"]) for r in rows], dtype=torch.float64)
    assert float(dist.median()) == pytest.approx(res["distance"]["median"])
    assert sum(res["distance"]["won"].values()) == 20
    assert res["distance"]["optimality"]["ensemble"] == pytest.approx(1.0)
    assert all(0.0 <= v <= 1.0 for v in res["distance"]["optimality"].values())


def test_a_softmax_model_file_raises_the_probability_flag_with_its_remedy(tmp_path, capsys):
    lenet = zoo.load_model("digits-lenet")
    path = tmp_path / "softmax.pt"
    torch.jit.save(torch.jit.script(nn.Sequential(lenet.network, nn.Softmax(dim=1)).eval()), str(path))
    out = tmp_path / "out"
    code = cli.main(
        ["robust", "--model", str(path), "--dataset", "digits", "--trust-model-code", *SMALL, "--out", str(out)]
    )
    assert code == 0
    flags = json.loads((out / "robust.json").read_text())["masking_flags"]
    assert "probability_output" in {f["code"] for f in flags}
    text = capsys.readouterr().out
    assert "! probability_output:" in text and "Remove the final softmax" in text
