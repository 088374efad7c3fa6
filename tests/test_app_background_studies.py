"""The Robust training, Certified vs empirical and Geometry in 2-D pages run their studies as background jobs
(issue 19, item 5; pages/ui/robust_views.py): a session opening the page mid-study finds the *same* job (its
id in the progress caption), leaving the page does not cancel the work, and coming back shows its result
without computing it again.

Each study function is wrapped by a gate that counts its calls and holds the work until the test releases it,
then runs the real study (the pages draw real results).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pagenav import switch_page
from streamlit.testing.v1 import AppTest

from geometry.runtime import jobs

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 400  # a first run may train networks on a busy 2-core machine
WAIT = 120.0  # generous: the real study runs after the gate opens


class Gate:
    """Wraps a study function: counts calls, reports progress, waits for ``release``, then runs the real one."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.calls = 0
        self.args: list[tuple] = []
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args: Any, progress: Callable[[float, str], None], **kwargs: Any) -> Any:
        with self.lock:
            self.calls += 1
            self.args.append(args)
        progress(0.1, "held by the test")
        self.started.set()
        assert self.release.wait(WAIT)
        return self.real(*args, progress=progress, **kwargs)


def _open(page: str, params: dict[str, str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    switch_page(at, page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _jobs(prefix: str) -> list[jobs.Job]:
    return [j for j in jobs.registry().jobs() if j.key.startswith(prefix)]


def _forget(prefix: str) -> None:
    """Drop the finished jobs under ``prefix`` once no job runs (none is left running at the test's end)."""
    assert jobs.registry().wait_idle(WAIT)
    for j in _jobs(prefix):
        if j.wait(WAIT):
            jobs.registry().forget(j.key)


@pytest.fixture
def polling(monkeypatch):
    """The page stops waiting in-script after 0.2 s and polls with a fragment (as after a long wait)."""
    from pages.ui import jobs as page_jobs

    monkeypatch.setattr(page_jobs, "WAIT_SECONDS", 0.2)


@pytest.fixture(scope="module")
def digits_pgd():
    """The adversarially trained digits LeNet, trained before the page opens (else the page waits for training)."""
    from geometry import zoo

    return zoo.load_model("digits-lenet-pgd")


def test_robust_studies_survive_leaving_the_page_and_are_found_again(monkeypatch, polling, digits_lenet, digits_pgd):
    from geometry.study import robust

    gate = Gate(robust.robust_study)
    monkeypatch.setattr(robust, "robust_study", gate)  # pages/ui/robust_views.py looks it up at call time
    params = {"rob_nets": "digits-lenet,digits-lenet-pgd", "rob_n": "10", "rob_steps": "5"}
    _forget("robust:")
    try:
        first = _open("pages/robust.py", params)
        assert gate.started.wait(WAIT)
        studies = _jobs("robust:")
        assert len(studies) == 2 and not any(j.finished for j in studies)  # both networks' studies were queued
        assert any("Measuring digits-lenet" in p.proto.text for p in first.get("progress"))
        # a second session opening the page meanwhile shows the same job, by id, and submits nothing new
        second = _open("pages/robust.py", params)
        assert sorted(j.id for j in _jobs("robust:")) == sorted(j.id for j in studies)
        shown = " ".join(c.value for c in second.caption)
        assert any(j.id in shown for j in studies)
        # leave the page: the work goes on
        switch_page(first, "pages/home.py").run()
        assert not first.exception, [e.value for e in first.exception]
        assert not any(j.state == "cancelled" for j in studies)
    finally:
        gate.release.set()
    assert all(j.wait(WAIT) and j.state == "done" for j in studies), [j.error for j in studies]
    # back on the page: the finished studies are shown, not computed again
    switch_page(first, "pages/robust.py").run()
    assert not first.exception, [e.value for e in first.exception]
    assert not first.error, [e.value for e in first.error]
    assert list(first.dataframe[0].value["network"]) == ["digits-lenet", "digits-lenet-pgd"]
    assert gate.calls == 2
    assert sorted(j.id for j in _jobs("robust:")) == sorted(j.id for j in studies)
    _forget("robust:")


def test_certified_study_survives_leaving_the_page_and_is_found_again(monkeypatch, polling, digits_lenet):
    from geometry.study import certify

    gate = Gate(certify.certify_study)
    monkeypatch.setattr(certify, "certify_study", gate)
    params = {"cert_n": "20"}
    _forget("certify:")
    try:
        first = _open("pages/certify.py", params)
        assert gate.started.wait(WAIT)
        (job,) = _jobs("certify:")
        assert not job.finished
        assert any("Certifying and attacking" in p.proto.text for p in first.get("progress"))
        second = _open("pages/certify.py", params)
        assert _jobs("certify:") == [job]
        assert any(job.id in c.value for c in second.caption)
        switch_page(first, "pages/home.py").run()
        assert not first.exception, [e.value for e in first.exception]
        assert job.state in ("queued", "running")
    finally:
        gate.release.set()
    assert job.wait(WAIT) and job.state == "done", job.error
    switch_page(second, "pages/certify.py").run()
    assert not second.exception, [e.value for e in second.exception]
    assert not second.error, [e.value for e in second.error]
    assert any("ε_cert(x) ≤ ‖r(x)‖ holds at all" in s.value for s in second.success)
    assert gate.calls == 1 and _jobs("certify:") == [job]
    _forget("certify:")


def test_certified_page_cancel_stops_its_job(monkeypatch, digits_lenet):
    """The progress bar's Cancel button cancels the page's job; the page says so instead of failing."""
    from geometry.study import certify
    from pages.ui import jobs as page_jobs

    gate = Gate(certify.certify_study)
    monkeypatch.setattr(certify, "certify_study", gate)
    monkeypatch.setattr(page_jobs, "WAIT_SECONDS", 0.2)
    # settings no other test uses: test_app_certify.py finishes cert_n=40, and when it ran first the in-memory study
    # cache answered this page without a job (the full run's one failure in a non-alphabetical order)
    params = {"cert_n": "60", "cert_crown": "none"}
    _forget("certify:")
    try:
        at = _open("pages/certify.py", params)
        assert gate.started.wait(WAIT)
        (job,) = _jobs("certify:")
        at.button(key=f"_job_cancel_{job.key}").click().run()
        assert any("Cancelled" in i.value for i in at.info)
    finally:
        gate.release.set()
    assert job.wait(WAIT) and job.state == "cancelled"
    _forget("certify:")


def test_lab_survives_leaving_the_page_and_is_found_again(monkeypatch, polling, digits_lenet):
    from geometry.study import toy2d

    gate = Gate(lambda *a, progress, **k: real(*a, **k))
    real = toy2d.lab_study
    monkeypatch.setattr(toy2d, "lab_study", lambda *a, **k: gate(*a, progress=lambda f, m: None, **k))
    # settings no other test uses, so that the in-memory study cache cannot answer
    params = {"g2_data": "xor", "g2_model": "mlp-relu", "g2_n": "60", "g2_seed": "911", "g2_pt": "3"}
    _forget("lab:")
    try:
        first = _open("pages/geometry_2d.py", params)
        assert gate.started.wait(WAIT)
        (job,) = [j for j in _jobs("lab:") if not j.finished]
        second = _open("pages/geometry_2d.py", params)
        assert [j for j in _jobs("lab:") if not j.finished] == [job]
        assert any(job.id in c.value for c in second.caption)
        switch_page(first, "pages/home.py").run()
        assert job.state in ("queued", "running")
    finally:
        gate.release.set()
    assert job.wait(WAIT) and job.state == "done", job.error
    switch_page(first, "pages/geometry_2d.py").run()
    assert not first.exception, [e.value for e in first.exception]
    assert first.slider(key="g2_pt").value == 3
    # the lab is shown: the 2-D lab component (its numbers are computed in the browser, issue 20)
    assert any(e.proto.component_name == "boundary_atlas.lab2d" for e in first.get("bidi_component"))
    assert [a[0].point for a in gate.args].count(3) == 1  # the lab at x: computed once, by the first job
    _forget("lab:")


@pytest.fixture
def meanwhile(monkeypatch):
    """Study pages show the last finished result of their study after 0.5 s instead of waiting (the app's own
    setting; the suite turns it off, tests/conftest.py), starting with no kept result."""
    from pages.ui import jobs as page_jobs

    monkeypatch.setattr(page_jobs, "MEANWHILE_AFTER_SECONDS", 0.5)
    monkeypatch.setattr(page_jobs, "_READY", {})


def test_universal_shows_the_last_finished_study_while_its_own_runs_then_its_own(monkeypatch, meanwhile, digits_lenet):
    """Issue 20, item 3: a study page whose study is not ready does not wait. The Universal page, after one finished
    study (m ≤ 4), opened with m ≤ 3 while that study's job is held: it draws the m ≤ 4 result at once, says whose it
    is and which setting differs, and shows the job's progress; when the job ends the same page shows its own
    result (m ≤ 3) and the sentence is gone."""
    from geometry import study

    small = {"uv_n": "20", "uv_samples": "2", "uv_heldout": "120", "uv_uap": "120"}
    _forget("universal:")
    first = _open("pages/universal.py", {**small, "uv_m": "4"})  # nothing kept yet: computed, then kept
    assert not first.error, [e.value for e in first.error]
    assert not [i for i in first.info if "being computed" in i.value]
    gate = Gate(study.universal_study)
    monkeypatch.setattr(study, "universal_study", gate)  # pages/ui/cached.py looks it up at call time
    try:
        at = _open("pages/universal.py", {**small, "uv_m": "3"})
        assert gate.started.wait(WAIT)
        at.run()  # the job has reported its progress now
        assert not at.exception, [e.value for e in at.exception]
        (box,) = [i.value for i in at.info if "being computed" in i.value]
        assert "**This study of digits-lenet is being computed**" in box and "on **digits-lenet**" in box
        assert "largest m 4 (chosen: 3)" in box and "replaces it by itself" in box
        (job,) = [j for j in _jobs("universal:") if not j.finished]
        bars = [p.proto.text for p in at.get("progress") if "Computing S_c, S_f, fooling rates" in p.proto.text]
        assert bars and "held by the test" in bars[0]
        assert any(job.id in c.value for c in at.caption)
        # the stand-in is drawn whole: its gallery's m choices are those of m ≤ 4
        (gm,) = [s for s in at.selectbox if s.label == "m for the S_c vectors below"]
        assert list(gm.options)[-1] == "m = 4"
        assert len(at.get("plotly_chart")) >= 3
        assert "Downloads" not in [e.label for e in at.expander]  # they would carry the chosen network's name
    finally:
        gate.release.set()
    assert job.wait(WAIT) and job.state == "done", job.error
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert not [i for i in at.info if "being computed" in i.value]
    (gm,) = [s for s in at.selectbox if s.label == "m for the S_c vectors below"]
    assert list(gm.options)[-1] == "m = 3"  # its own result now
    assert "Downloads" in [e.label for e in at.expander]
    assert gate.calls == 1
    _forget("universal:")


def test_certified_shows_the_last_finished_certificate_while_its_own_runs(monkeypatch, meanwhile, digits_lenet):
    """The same on Certified vs empirical: with 20 points certified, asking for 40 shows the 20-point certificate
    (named, "test points 20 (chosen: 40)") and the job's progress; the chosen point's section and the downloads wait
    for the network's own result, which replaces the stand-in when the job ends."""
    from geometry.study import certify

    _forget("certify:")
    first = _open("pages/certify.py", {"cert_n": "20", "cert_crown": "none"})
    assert any("ε_cert(x) ≤ ‖r(x)‖ holds at all" in s.value for s in first.success)
    gate = Gate(certify.certify_study)
    monkeypatch.setattr(certify, "certify_study", gate)
    try:
        at = _open("pages/certify.py", {"cert_n": "40", "cert_crown": "none"})
        assert gate.started.wait(WAIT)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        (box,) = [i.value for i in at.info if "being computed" in i.value]
        assert "test points 20 (chosen: 40)" in box and "on **digits-lenet**" in box
        assert any("Certifying and attacking" in p.proto.text for p in at.get("progress"))
        assert any("20 test points" in c.value for c in at.caption)  # the stand-in's numbers, said as such
        assert "Downloads" not in [e.label for e in at.expander]
        (job,) = [j for j in _jobs("certify:") if not j.finished]
    finally:
        gate.release.set()
    assert job.wait(WAIT) and job.state == "done", job.error
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [i for i in at.info if "being computed" in i.value]
    assert any("40 test points" in c.value for c in at.caption)
    assert "Downloads" in [e.label for e in at.expander]
    _forget("certify:")


def test_compare_shows_the_last_finished_comparison_while_its_own_runs_then_its_own(
    monkeypatch, meanwhile, digits_lenet
):
    """The same on Compare networks: after the comparison of digits-lenet and digits-nin on n = 20 points, asking
    for n = 30 while that job is held shows the 20-point principal angles, a box naming the pair and the setting that
    differs, and the job's progress; B's sections, the fooling matrix and the downloads wait for the pair's own
    comparison, which replaces the stand-in when the job ends."""
    from geometry import study

    small = {"cmp_b": "digits-nin", "cmp_m": "3", "cmp_res": "64", "cmp_vectors": "3"}
    _forget("compare:")
    first = _open("pages/compare.py", {**small, "cmp_n": "20"})  # nothing kept yet: computed, then kept
    assert not first.error, [e.value for e in first.error]
    assert not [i for i in first.info if "being computed" in i.value]
    gate = Gate(study.compare_study)
    monkeypatch.setattr(study, "compare_study", gate)  # pages/ui/cached.py looks it up at call time
    try:
        at = _open("pages/compare.py", {**small, "cmp_n": "30"})
        assert gate.started.wait(WAIT)
        at.run()  # the job has reported its progress now
        assert not at.exception, [e.value for e in at.exception]
        (box,) = [i.value for i in at.info if "being computed" in i.value]
        assert "**This study of digits-lenet and digits-nin is being computed**" in box
        assert "on **digits-lenet and digits-nin**" in box and "estimation points 20 (chosen: 30)" in box
        (job,) = [j for j in _jobs("compare:") if not j.finished]
        bars = [p.proto.text for p in at.get("progress") if "Estimating S_c and S_f" in p.proto.text]
        assert bars and "held by the test" in bars[0]
        assert any(job.id in c.value for c in at.caption)
        assert any("n = 20 training points" in c.value for c in at.caption)  # the stand-in's numbers, said as such
        assert len(at.get("plotly_chart")) == 2  # its principal angles only: no sections, no matrix
        assert "Downloads" not in [e.label for e in at.expander]
    finally:
        gate.release.set()
    assert job.wait(WAIT) and job.state == "done", job.error
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert not [i for i in at.info if "being computed" in i.value]
    assert any("n = 30 training points" in c.value for c in at.caption)  # its own result now
    assert len(at.get("plotly_chart")) == 5  # angles, B's two sections, the fooling matrix
    assert "Downloads" in [e.label for e in at.expander]
    assert gate.calls == 1
    _forget("compare:")
