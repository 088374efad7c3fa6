"""Robust training regimes on digits (issue 11): the page runs, and adversarial training shows what it should."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pagenav import switch_page
from streamlit.testing.v1 import AppTest

from geometry.data import load_dataset
from geometry.study.robust import RobustSettings, robust_study
from geometry.zoo import ZOO, load_model

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 300  # first run trains the digits regimes (≈ 10–20 s each on a busy 2-core machine)


@pytest.fixture(scope="module")
def regimes():
    test = load_dataset("digits", split="test")
    settings = RobustSettings(n_points=50, eps=0.1, h=0.5, fmn_max_stepsize=0.1)
    return {
        name: (load_model(name), robust_study(load_model(name), test.images, test.labels, settings))
        for name in ("digits-lenet", "digits-lenet-pgd")
    }


def test_adversarial_training_keeps_pgd_accuracy_and_flattens_the_loss(regimes):
    _, std = regimes["digits-lenet"]
    at_clf, at = regimes["digits-lenet-pgd"]
    assert at.clean_accuracy > 0.85  # AT does not buy robustness by giving up accuracy on digits
    assert at.pgd_accuracy > std.pgd_accuracy + 0.15  # measured: 0.48 → 0.79 on 200 points at ε = 0.1
    # the top eigenvalue of the (mean) curvature profile, and the curvature at the attack's scale
    assert float(at.profile.mean[0]) < 0.8 * float(std.profile.mean[0])  # measured factor ≈ 2
    assert float(at.profile.finite_difference.mean()) < 0.5 * float(std.profile.finite_difference.mean())  # ≈ 8×
    # and the boundary moves away: larger distance to it
    assert float(at.distance.median()) > float(std.distance.median())
    # robust accuracy falls with ε, starts at the clean accuracy, and AT stays above standard at every ε > 0
    assert at.curve.accuracy[0] == pytest.approx(at.clean_accuracy)
    assert bool((at.curve.accuracy[1:] <= at.curve.accuracy[:-1] + 0.02).all())
    assert bool((at.curve.accuracy[1:] >= std.curve.accuracy[1:]).all())
    card = at_clf.info["robustness"]
    assert card["eps"] == 0.1 and 0.0 <= card["pgd_accuracy"] <= card["clean_accuracy"] <= 1.0
    assert ZOO["digits-lenet-pgd"].recipe()["regime"] == "pgd-at"
    assert "regime" not in ZOO["digits-lenet"].recipe()  # standard entries keep their cache keys


def test_recipe_hash_changes_with_regime_parameters():
    import dataclasses

    from geometry.cache import cache_key

    e = ZOO["digits-lenet-pgd"]
    other = dataclasses.replace(e, regime_params={**e.regime_params, "eps": 0.2})
    assert cache_key(e.recipe()) != cache_key(other.recipe())
    cure = ZOO["digits-lenet-cure"]
    assert cure.recipe()["init_from"] == ZOO["digits-lenet"].recipe()


def test_robust_page_runs_on_the_digits_regimes(regimes):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["rob_nets"] = "digits-lenet,digits-lenet-pgd"
    at.query_params["rob_n"] = "30"
    at.run()
    switch_page(at, "pages/robust.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(specs) == 4 + 2  # accuracy vs ε, profile, finite-difference box, loss along, two sections
    assert "Robust accuracy" in specs[0]["layout"]["title"]["text"].replace("<br>", " ")
    assert specs[1]["layout"]["yaxis"]["type"] == "log"
    assert "h = 0.5" in specs[2]["layout"]["title"]["text"].replace("<br>", " ")  # the scale is on the chart
    df = at.dataframe[0].value
    assert list(df["network"]) == ["digits-lenet", "digits-lenet-pgd"]
    pgd_col = next(c for c in df.columns if c.startswith("PGD accuracy"))
    assert df[pgd_col].iloc[1] > df[pgd_col].iloc[0]
    curv = at.dataframe[1].value
    assert list(curv["network"]) == ["digits-lenet", "digits-lenet-pgd"]
    assert torch.isfinite(torch.tensor(curv["mean ‖H‖₂ (exact)"].to_numpy())).all()
    # issue 21: the distance is the minimal ensemble's, with who won; the ensemble's accuracy beside PGD's
    won = at.dataframe[2].value
    assert list(won.columns) == ["network", "attack", "points won", "optimality"]  # long: fits at 1280 px
    assert len(won) == 2 * 4 and (won.groupby("network")["points won"].sum() == 30).all()  # one winner per point
    ens = at.dataframe[3].value
    assert list(ens["network"]) == ["digits-lenet", "digits-lenet-pgd"]
    assert (ens["ensemble robust accuracy"] <= ens["clean accuracy"]).all()
    assert ens["ensemble robust accuracy"].iloc[1] > ens["ensemble robust accuracy"].iloc[0]
    # the zoo's digits networks raise no masking flag
    assert not [w.value for w in at.warning if w.value.startswith("**Masking flag")]


def _upload(clf, tmp_path, stem):
    """``clf`` saved as TorchScript and loaded back through the public upload path (as a user would)."""
    import io

    from geometry.loading import load_classifier

    path = tmp_path / f"{stem}.pt"
    torch.jit.save(torch.jit.script(clf.network), str(path))

    class Upload(io.BytesIO):  # what st.file_uploader hands over
        name = f"{stem}.pt"

    return load_classifier(
        Upload(path.read_bytes()), input_shape=(1, 8, 8), class_names=clf.class_names, name=f"upload:{stem}"
    )


def test_two_uploaded_models_are_ordered_by_their_robustness(regimes, tmp_path):
    """A pair of uploads nobody named for the zoo: the page must show which is the robust one."""
    ups = {
        "upload:model-a": _upload(regimes["digits-lenet-pgd"][0], tmp_path, "model-a"),
        "upload:model-b": _upload(regimes["digits-lenet"][0], tmp_path, "model-b"),
    }
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["_user_models"] = {k: {"clf": c, "dataset": "digits"} for k, c in ups.items()}
    at.session_state["rob_nets"] = list(ups)
    at.session_state["rob_n"] = 30
    at.run()
    switch_page(at, "pages/robust.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    acc = at.dataframe[0].value
    assert list(acc["regime"]) == ["uploaded", "uploaded"]
    pgd_col = next(c for c in acc.columns if c.startswith("PGD accuracy"))
    assert acc[pgd_col].iloc[0] > acc[pgd_col].iloc[1]  # model-a (adversarially trained) is the robust one
    curv = at.dataframe[1].value
    assert (
        curv[next(c for c in curv.columns if c.startswith("mean curvature at h"))].iloc[0]
        < curv[next(c for c in curv.columns if c.startswith("mean curvature at h"))].iloc[1]
    )
    assert curv["training time (s)"].isna().all()  # unknown for uploads: shown as n/a


def test_robust_page_compares_the_ready_networks_while_one_trains(regimes, monkeypatch):
    """Issue 20, item 3: a chosen network still training (a fake job held by an Event: nothing is trained) does not
    block the page: its training box shows the job's progress and the two trained networks are compared meanwhile."""
    import threading

    from geometry import zoo
    from geometry.runtime import jobs
    from pages.ui import jobs as ui_jobs

    name = "digits-lenet-fgsm"
    release, started = threading.Event(), threading.Event()

    def fake_train(n, *, progress):
        progress(0.3, "epoch 9/30")
        started.set()
        release.wait(30)
        return n

    real_is_cached = zoo.is_cached
    monkeypatch.setattr(zoo, "is_cached", lambda n: n != name and real_is_cached(n))
    monkeypatch.setattr(ui_jobs, "_train", fake_train)
    monkeypatch.setattr(ui_jobs, "STAND_IN_AFTER_SECONDS", 0.0)  # a digits network stands for a long training
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["rob_nets"] = f"digits-lenet,digits-lenet-pgd,{name}"
    at.query_params["rob_n"] = "30"
    try:
        at.run()
        switch_page(at, "pages/robust.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert started.wait(30)
        at.run()  # the job has reported its progress now (the first run may draw the box before it starts)
        assert not at.exception, [e.value for e in at.exception]
        infos = " ".join(i.value for i in at.info)
        assert f"**{name} is being trained**" in infos and "compares the chosen networks that are ready" in infos
        assert any(f"training {name}" in p.proto.text and "epoch 9/30" in p.proto.text for p in at.get("progress"))
        specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        assert len(specs) == 4 + 2  # as with two networks chosen: the two trained ones
    finally:
        release.set()
        job = jobs.registry().get(f"train:{name}")
        if job is not None:
            job.wait(30)
            jobs.registry().forget(f"train:{name}")
