"""The app's uploads run only in workers (issue 22, item 1; geometry/runtime/uploads.py).

An upload registered the app's way (:func:`geometry.runtime.uploads.register`) is loaded and probed in
its session's worker; the server keeps a stand-in classifier. The three bombs of the issue pass the
probe (random pixels hold no exact zeros) and are then stopped by the worker's limits on a real digit,
each with its message, while this (the server's) process spends almost no CPU time; a benign upload's
whole study call, sent to the worker, gives the in-process numbers; a background job on an upload runs
in the worker; a gradient asked of the stand-in in the server is refused, never computed here.
"""

from __future__ import annotations

import dataclasses
import io
import os
import resource

import pytest
import torch
from test_workers import SHAPE, _digit, _GrowingAllocation, _GrowingMatmul, _ZeroLoop
from torch import nn

from geometry import study
from geometry.data import load_dataset
from geometry.loading import load_classifier
from geometry.runtime import jobs, uploads
from geometry.runtime.workers import WorkerLimitError, WorkerLimits, WorkerPool
from geometry.zoo import LeNet

LIMITS = WorkerLimits(cpu_seconds=3, memory_bytes=2**30, deadline_seconds=300)  # for the bombs
ROOMY = WorkerLimits(cpu_seconds=300, memory_bytes=2**30, deadline_seconds=900)  # for whole studies


@pytest.fixture(scope="module")
def pools():
    tight, roomy = WorkerPool(LIMITS, max_sessions=2), WorkerPool(ROOMY, max_sessions=2)
    old = uploads.set_upload_pool(None)
    yield tight, roomy
    uploads.set_upload_pool(old)
    tight.close()
    roomy.close()


@pytest.fixture
def pool(pools):
    uploads.set_upload_pool(pools[0])
    return pools[0]


@pytest.fixture
def roomy(pools):
    uploads.set_upload_pool(pools[1])
    return pools[1]


def _script(module: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module.eval()), buf)
    return buf.getvalue()


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _register(data: bytes, owner: str, name: str):
    return uploads.register(data, owner=owner, display=f"{name}.pt", input_shape=SHAPE, options={"name": name})


@pytest.mark.parametrize(
    ("module", "phrase"),
    [
        (_ZeroLoop(), r"more than its 3 s of CPU time on .*_forward\(tensor \(2, 1, 8, 8\)\)"),
        (_GrowingMatmul(), r"more than its 3 s of CPU time on .*_forward\(tensor \(2, 1, 8, 8\)\)"),
        (_GrowingAllocation(), r"more than 1\.0 GiB of memory on .*_forward\(tensor \(2, 1, 8, 8\)\)"),
    ],
    ids=["zero-pixel loop", "growing matmul", "growing allocation"],
)
def test_the_bombs_are_stopped_in_the_worker_and_the_server_spends_nothing(pool, module, phrase):
    clf = _register(_script(module), "mallory", type(module).__name__)  # passes the probe, in the worker
    assert uploads.is_uploaded(clf) and clf.num_classes == 10
    before = _cpu()
    with pytest.raises(WorkerLimitError, match=phrase):
        clf.predict(_digit())  # a page's predictions: the stand-in's forward runs in the worker
    spent = _cpu() - before
    print(f"{type(module).__name__}: the server process spent {spent:.2f} s CPU")
    assert spent < LIMITS.cpu_seconds / 2  # the bomb's CPU time was the worker's
    # the session goes on: its worker was replaced and loads a valid upload
    good = _register(_script(LeNet(SHAPE, 10)), "mallory", "lenet")
    assert good.predict(torch.rand(3, *SHAPE)).shape == (3,)


_DIGITS: dict = {}


@pytest.fixture
def digits_upload(roomy, digits_lenet):
    if not _DIGITS:  # registered once, in the roomy pool's worker; a trained network: DeepFool converges
        data = _script(digits_lenet.network)
        _DIGITS["upload"] = data, _register(data, "alice", "digits-upload")
    return _DIGITS["upload"]


def _points():
    split = study.PointSplit(12, 12, 0, 0)
    return study.split_points(load_dataset("digits", split="test"), load_dataset("digits", split="train"), split)


def test_a_whole_study_in_the_worker_gives_the_in_process_numbers(digits_upload, one_thread):
    data, clf = digits_upload
    points = _points()
    settings = study.CurvatureSettings(points=points.split, m_max=4, n_directions=3)
    there = uploads.in_worker(study.curvature_study, clf, points, settings)
    here = study.curvature_study(load_classifier(data, input_shape=SHAPE, isolate=False), points, settings)
    assert there.h == here.h and there.m_values == here.m_values
    assert torch.equal(there.curved.basis, here.curved.basis)
    for kind in here.curves:
        for field in dataclasses.fields(here.curves[kind]):
            a, b = getattr(there.curves[kind], field.name), getattr(here.curves[kind], field.name)
            assert torch.equal(a, b) if isinstance(b, torch.Tensor) else a == b, (kind, field.name)


def test_a_background_job_on_an_upload_runs_in_its_worker(digits_upload):
    _, clf = digits_upload
    registry = jobs.JobRegistry()
    try:
        job = registry.submit("where", _where, clf, 3)
        assert job.wait(300), job.status()
        assert job.state == "done", job.error
        pid, value = job.result
        assert pid != os.getpid() and value == 3
    finally:
        registry.shutdown()


def _where(clf, k, *, progress):
    progress(0.5, "half")  # in the worker: forwarded to the job's bar
    return os.getpid(), int(clf.logits(torch.zeros(k, *SHAPE)).shape[0])


def test_the_stand_in_refuses_gradients_in_the_server(digits_upload):
    _, clf = digits_upload
    assert not list(clf.network.parameters())  # no weights here: the model is the worker's
    x = torch.rand(2, *SHAPE, requires_grad=True)
    with pytest.raises(uploads.UploadInWorkerError, match="runs only in its worker"):
        clf(x)
    logits = clf.logits(x.detach())  # gradient-free evaluations are sent to the worker
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_uploads_with_other_content_have_other_fingerprints(digits_upload):
    _, clf = digits_upload
    torch.manual_seed(1)
    other = _register(_script(LeNet(SHAPE, 10)), "alice", "other")
    assert study.network_fingerprint(clf) != study.network_fingerprint(other)


APP_SCRIPT = """
import streamlit as st
from pages.ui import sidebar as _sidebar, upload as _upload
st.session_state["_sidebar"] = _sidebar.sidebar()
_upload.upload_form()
sel = _sidebar.selection()
if sel is not None and sel.model_name.startswith("upload:"):
    with _sidebar.user_errors():
        st.write(sel.clf.predict(sel.dataset.images[:4]).tolist())
"""


def test_a_bomb_uploaded_through_the_form_is_stopped_with_its_message(pool, digits_lenet):
    # digits_lenet: trained first, so the Network picker's labels do not change between the runs (AppTest)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(APP_SCRIPT, default_timeout=600)
    at.run()
    (uploader,) = [u for u in at.file_uploader if u.label == "Model file"]
    uploader.upload("zero_loop.pt", _script(_ZeroLoop()))
    (load,) = [b for b in at.button if b.label == "Load model"]
    load.click().run()  # the probe passes (in the worker); the rerun predicts real digits (exact zeros)
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["_sidebar"]["model"].startswith("upload:zero_loop-")
    (error,) = [e.value for e in at.error]
    assert "'zero_loop.pt' used more than its 3 s of CPU time" in error and "its worker was stopped" in error


def _wait_for(clf, release, *, progress):
    release.wait(600)
    return os.getpid()


def _double(k, *, progress):
    return 2 * k


def test_upload_jobs_never_hold_the_page_lane(digits_upload):
    """Fair share (issue 22, item 2): jobs on an upload go to the upload lane, whose threads only wait on the
    session's worker; a zoo study submitted meanwhile to the page lane runs while they are all still blocked."""
    import multiprocessing

    _, clf = digits_upload
    registry = jobs.JobRegistry()  # the app's lanes
    with multiprocessing.Manager() as manager:
        release = manager.Event()
        try:
            held = [registry.submit(f"upload-{i}", _wait_for, clf, release, lane="page") for i in range(3)]
            assert [j.lane for j in held] == ["upload"] * 3
            page = registry.submit("zoo", _double, 2, lane="page")
            assert page.wait(300) and page.result == 4
            assert not any(j.finished for j in held)  # the uploads' calls wait in their worker, one at a time
            release.set()
            assert all(j.wait(300) for j in held)
            assert len({j.result for j in held}) == 1  # one session: one worker process for all three
        finally:
            release.set()
            registry.shutdown()


# ------------------------------------------------------------------ a forward pass's own CPU budget (fair share)
#: the call's budget is roomy (a whole study); each forward pass gets max(2 s, 50 × N × its measured cost)
FITTED = WorkerLimits(cpu_seconds=300, memory_bytes=2**30, deadline_seconds=900, forward_floor_seconds=2.0)


@pytest.fixture(scope="module")
def fitted_pool():
    p = WorkerPool(FITTED, max_sessions=2)
    yield p
    p.close()


def test_a_forward_that_loops_on_a_real_input_is_stopped_by_its_fitted_budget_not_the_calls(fitted_pool):
    """The zero-pixel bomb under a 300 s call budget: its forward pass on a digit is stopped at the per-forward
    budget the worker fitted at load (2 s here, the floor), and the message names that limit and the input."""
    old = uploads.set_upload_pool(fitted_pool)
    try:
        clf = _register(_script(_ZeroLoop()), "mallory", "zero_loop")
        assert "forward pass on N images" in clf.info["isolation"]
        assert "may use 2 s of CPU" in clf.info["isolation"]  # the floor: the bomb is cheap on the probe
        with pytest.raises(WorkerLimitError) as info:
            clf.predict(_digit())
        message = str(info.value)
        assert "'zero_loop.pt' used more than its 2 s of CPU time for one forward pass on 2 images" in message
        assert "50 × 2 × the" in message and "at least 2 s" in message  # how the budget was computed
        assert "_forward(tensor (2, 1, 8, 8))" in message and "its worker was stopped" in message
        assert "300 s" not in message  # not the call's limit
        # held back: the next page rerun (another digit) does not set it off again — no worker runs it
        workers_before = set(fitted_pool.owners())
        with pytest.raises(WorkerLimitError) as again:
            clf.predict(_digit())
        assert "is held back in this session" in str(again.value) and "load the file again" in str(again.value)
        assert "used more than its 2 s of CPU time for one forward pass" in str(again.value)  # the first message
        assert "mallory" not in workers_before and set(fitted_pool.owners()) == workers_before  # no worker started
        # another session is not affected, and loading the file again retries it (and it breaks the budget again)
        other = _register(_script(_ZeroLoop()), "trent", "zero_loop")
        with pytest.raises(WorkerLimitError, match="used more than its 2 s of CPU time for one forward"):
            other.predict(_digit())
        clf = _register(_script(_ZeroLoop()), "mallory", "zero_loop")
        with pytest.raises(WorkerLimitError, match="used more than its 2 s of CPU time for one forward"):
            clf.predict(_digit())
    finally:
        uploads.release("mallory")
        uploads.release("trent")
        uploads.set_upload_pool(old)


def test_a_valid_model_is_not_refused_by_the_fitted_budgets(fitted_pool, digits_lenet, one_thread):
    """A trained network's whole study (DeepFool, Hessian-vector products: forwards with gradients, jvp of grad)
    and a large batch's forward each run under a per-forward budget fitted to the model, and give the
    in-process numbers."""
    old = uploads.set_upload_pool(fitted_pool)
    try:
        data = _script(digits_lenet.network)
        clf = _register(data, "alice", "digits-fitted")
        assert clf.info["forward_cpu_seconds_per_image"] > 0
        points = _points()
        settings = study.CurvatureSettings(points=points.split, m_max=3, n_directions=2)
        there = uploads.in_worker(study.curvature_study, clf, points, settings)
        here = study.curvature_study(load_classifier(data, input_shape=SHAPE, isolate=False), points, settings)
        assert there.h == here.h and torch.equal(there.curved.basis, here.curved.basis)
        big = load_dataset("digits", split="train").images[:1024]
        assert torch.equal(clf.predict(big), load_classifier(data, input_shape=SHAPE, isolate=False).predict(big))
    finally:
        uploads.release("alice")
        uploads.set_upload_pool(old)
