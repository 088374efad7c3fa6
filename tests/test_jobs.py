"""Background jobs (geometry/jobs.py, pages/ui/jobs.py; issue 14 item 2 and 5, issue 13 item 4).

Properties: one key runs once however often it is submitted; a page reopened mid-job finds the
same job (AppTest, a slow fake study held by an Event); failures come back as messages; progress
never goes backwards and the ETA of linear progress is the true remaining time; the first-start
training starts only when allowed, needed and possible, and the default network follows it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pagenav import switch_page

from geometry.errors import InvalidInputError
from geometry.runtime import jobs

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
WAIT = 10.0  # generous: a busy 2-core machine


class Gate:
    """A fake piece of work: counts its calls, reports progress, blocks until released."""

    def __init__(self, result="ok"):
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.result = result
        self.args: list = []

    def __call__(self, *args, progress, **kwargs):
        self.calls += 1
        self.args.append((args, kwargs))
        progress(0.25, "a quarter")
        self.started.set()
        assert self.release.wait(WAIT)
        progress(0.75, "three quarters")
        return self.result


def test_submitting_a_key_twice_runs_the_work_once():
    reg = jobs.JobRegistry()
    gate = Gate()
    a = reg.submit("k", gate, 1, label="slow")
    assert gate.started.wait(WAIT)
    b = reg.submit("k", gate, 1)
    assert a is b and a.state == "running"
    gate.release.set()
    assert a.wait(WAIT) and a.state == "done" and a.result == "ok"
    c = reg.submit("k", gate, 1)  # a kept finished job is returned, not rerun
    assert c is a
    assert gate.calls == 1
    assert gate.args == [((1,), {})]


def test_queued_jobs_run_one_at_a_time_in_order_and_a_page_promotes_a_background_job():
    reg = jobs.JobRegistry()
    first, second, third = Gate(), Gate(), Gate()
    j1 = reg.submit("one", first, lane="background")
    assert first.started.wait(WAIT)
    j2 = reg.submit("two", second, lane="background")
    j3 = reg.submit("three", third, lane="background")
    assert (j2.state, j3.state) == ("queued", "queued")
    assert reg.ahead(j3) == [j1, j2]
    # a page asks for "three": it moves to the page lane and runs while "one" still blocks the background lane
    assert reg.submit("three", third, lane="page") is j3
    assert third.started.wait(WAIT) and j3.lane == "page"
    assert j2.state == "queued"
    # the page lane has two workers: a second page job runs at once, a third waits
    fourth, fifth = Gate(), Gate()
    reg.submit("four", fourth, lane="page")
    assert fourth.started.wait(WAIT)
    j5 = reg.submit("five", fifth, lane="page")
    assert j5.state == "queued" and reg.ahead(j5) == [j3, reg.get("four")]
    for g in (first, second, third, fourth, fifth):
        g.release.set()
    assert reg.wait_idle(WAIT)
    assert [j.state for j in (j1, j2, j3, j5)] == ["done"] * 4
    assert (first.calls, second.calls, third.calls, fourth.calls, fifth.calls) == (1, 1, 1, 1, 1)


def test_a_failure_gives_its_message_and_the_next_submission_retries():
    reg = jobs.JobRegistry()
    calls = []

    def bad(*, progress):
        calls.append(1)
        raise InvalidInputError("m must be at most d = 64, got 100")

    job = reg.submit("bad", bad)
    assert job.wait(WAIT) and job.state == "failed"
    assert job.error == "m must be at most d = 64, got 100"  # the AtlasError's text, no traceback
    with pytest.raises(InvalidInputError, match="failed"):
        _ = job.result

    def bug(*, progress):
        raise ZeroDivisionError("division by zero")

    buggy = reg.submit("bug", bug)
    assert buggy.wait(WAIT) and buggy.error == "ZeroDivisionError: division by zero"
    assert isinstance(buggy.exception, ZeroDivisionError) and isinstance(job.exception, InvalidInputError)
    again = reg.submit("bad", bad)
    assert again is not job and again.wait(WAIT) and len(calls) == 2


def test_cancel_a_queued_and_a_running_job():
    reg = jobs.JobRegistry()
    gate = Gate()
    running = reg.submit("run", gate, lane="background")
    assert gate.started.wait(WAIT)
    queued = reg.submit("wait", Gate(), lane="background")
    assert reg.cancel("wait") and queued.state == "cancelled"
    assert reg.cancel("run")
    gate.release.set()  # its next progress report stops it
    assert running.wait(WAIT) and running.state == "cancelled"
    assert not reg.cancel("run")


def test_progress_never_goes_back_and_the_eta_of_linear_progress_is_the_time_left():
    now = [0.0]
    reg = jobs.JobRegistry(clock=lambda: now[0])
    seen: list[jobs.JobStatus] = []
    holder: dict = {}

    def work(*, progress):
        for k in range(1, 10):
            now[0] += 1.0
            progress(k / 10, f"step {k}")
            seen.append(holder["job"].status())
        now[0] += 1.0
        progress(0.3, "a sub-step restarts at 0.3")  # reported backwards: the bar stays
        seen.append(holder["job"].status())
        return 42

    gate = Gate()
    reg.submit("blocker", gate, lane="background")  # keeps the lane busy while we read the queued job's estimate
    assert gate.started.wait(WAIT)
    job = reg.submit("linear", work, lane="background", expected_seconds=10.0)
    holder["job"] = job
    assert job.status().elapsed is None and job.eta() == 10.0  # queued: the expected duration
    gate.release.set()
    assert job.wait(WAIT) and job.result == 42
    fractions = [s.fraction for s in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(0.9)
    elapsed = [s.elapsed for s in seen]
    assert elapsed == sorted(elapsed)
    etas = [s.eta for s in seen[:9]]
    # f = k/10 after k seconds: the ETA elapsed·(1 − f)/f is exactly the 10 − k seconds left
    assert etas == pytest.approx([10.0 - k for k in range(1, 10)])
    assert job.eta() == 0.0 and job.status().fraction == 1.0


def test_first_start_training_is_gated_and_the_default_follows_it():
    reg = jobs.JobRegistry()
    trainer = Gate()

    def start(environ, cached=False, data=True):
        return jobs.start_background_training(
            reg, "mnist-lenet", trainer, cached=lambda: cached, data_available=lambda: data, environ=environ
        )

    assert start({"ATLAS_BACKGROUND_TRAINING": "0"}) is None
    assert start({"ATLAS_BACKGROUND_TRAINING": "off"}) is None
    assert start({}, cached=True) is None
    assert start({}, data=False) is None
    assert trainer.calls == 0 and reg.jobs() == []
    job = start({})
    assert job is not None and job.key == "train:mnist-lenet" and job.lane == "background"
    assert start({"ATLAS_BACKGROUND_TRAINING": "1"}) is job  # a second start finds it
    default = jobs.PreferredDefault("mnist-lenet", "digits-lenet", ready=False, job=job)
    assert trainer.started.wait(WAIT)
    assert default.current() == "digits-lenet"  # still training
    trainer.release.set()
    assert job.wait(WAIT)
    assert default.current() == "mnist-lenet" and trainer.calls == 1
    # switched off: the fallback stays the default even when the network is ready
    assert jobs.PreferredDefault("mnist-lenet", "digits-lenet", ready=True, job=job, enabled=False).current() == (
        "digits-lenet"
    )
    assert jobs.PreferredDefault("mnist-lenet", "digits-lenet", ready=True, job=None).current() == "mnist-lenet"
    assert jobs.background_training_allowed({}) and not jobs.background_training_allowed(
        {"ATLAS_BACKGROUND_TRAINING": "no"}
    )


def test_a_page_reopened_mid_job_finds_its_job_and_never_restarts_it(monkeypatch, digits_lenet):
    """The Curvature vs m page's study runs as a job; a new session opening the page meanwhile shows the
    same job's progress; "Prepare networks" (S_c at default settings) finds the same job too."""
    from streamlit.testing.v1 import AppTest

    from geometry import study
    from pages.ui import jobs as _jobs

    gate = Gate()
    monkeypatch.setattr(study, "curvature_study", gate)  # pages/ui/cached.py looks it up at call time
    monkeypatch.setattr(_jobs, "WAIT_SECONDS", 0.2)  # the page stops polling in-script after 0.2 s

    def open_page() -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        switch_page(at, "pages/curvature.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    try:
        first = open_page()
        assert gate.started.wait(WAIT)
        (job,) = [j for j in jobs.registry().jobs() if j.key.startswith("curvature:") and not j.finished]
        assert any("Computing S_c, S_f and curvature" in p.proto.text for p in first.get("progress"))
        second = open_page()
        assert [j for j in jobs.registry().jobs() if j.key == job.key] == [job]
        assert any(job.id in c.value for c in second.caption)  # the same job's progress, by id
        # Home → Prepare networks → S_c at default settings: the same key, so the same job
        key = _jobs._prepare_curvature("digits-lenet", progress=lambda f, msg: None)
        assert key == job.key
        assert gate.calls == 1
        ((args, _),) = gate.args
        assert args[2].key() == _jobs._default_curvature_settings().key()
        # the page's Cancel button stops the job at its next progress report
        second.button(key=f"_job_cancel_{job.key}").click().run()
        assert any("Cancelled" in i.value for i in second.info)
    finally:
        gate.release.set()
        for j in jobs.registry().jobs():  # never leave a fake result under a real study's key
            if j.key.startswith("curvature:") and j.wait(WAIT):
                jobs.registry().forget(j.key)
    assert job.state == "cancelled" and gate.calls == 1


def test_home_prepares_networks_in_the_background(digits_lenet):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    from geometry import zoo

    (select,) = [m for m in at.multiselect if m.key == "prep_nets"]
    assert "digits-lenet (trained)" in select.options
    untrained = [
        n for n in ("digits-mlp", "digits-nin", "digits-lenet-seed1") if f"{n} (trained)" not in select.options
    ]
    if not untrained:
        pytest.skip("every small digits network is already trained in this test session")
    name = untrained[0]
    assert not zoo.is_cached(name)
    select.set_value([name]).run()  # the button is enabled once a network is chosen
    at.button(key="prep_go").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    job = jobs.registry().get(f"train:{name}")
    assert job is not None and job.lane == "background"
    assert job.wait(120) and job.state == "done", job.error
    assert zoo.is_cached(name)


def test_a_failed_page_job_shows_its_message_not_a_traceback(monkeypatch, digits_lenet):
    from streamlit.testing.v1 import AppTest

    from geometry import study

    def failing(*args, progress, **kwargs):
        progress(0.5, "half way")
        raise InvalidInputError("the fake study refuses these settings")

    monkeypatch.setattr(study, "curvature_study", failing)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    switch_page(at, "pages/curvature.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("the fake study refuses these settings" in e.value for e in at.error)
    for j in jobs.registry().jobs():
        if j.key.startswith("curvature:"):
            jobs.registry().forget(j.key)


def test_home_offers_the_trained_default_to_a_session_still_on_digits(monkeypatch, digits_lenet):
    """After the first-start training: Home tells a session on digits-lenet and offers the switch."""
    from streamlit.testing.v1 import AppTest

    from geometry import zoo
    from pages.ui import jobs as _jobs

    reg = jobs.JobRegistry()
    done = reg.submit("train:mnist-lenet", lambda *, progress: "mnist-lenet", lane="background")
    assert done.wait(WAIT)
    # enabled=False keeps digits-lenet the default of this new session (no MNIST network in the test cache)
    fake = jobs.PreferredDefault("mnist-lenet", "digits-lenet", ready=False, job=done, enabled=False)
    monkeypatch.setattr(_jobs, "_DEFAULT", fake)
    real = zoo.is_cached
    monkeypatch.setattr(zoo, "is_cached", lambda name: name == "mnist-lenet" or real(name))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="model").value == "digits-lenet"
    assert any("mnist-lenet is trained" in s.value for s in at.success)
    assert at.button(key="_switch_default").label == "Switch this session to mnist-lenet"


# ------------------------------------------------------------------ clean stop (issue 22, item 5)
_TRAINING_SCRIPT = """
import os, sys, time
import torch
from geometry.cache import save_tensors
from geometry.runtime.jobs import JobRegistry, stop_cleanly_on_sigterm

folder, mode = sys.argv[1], sys.argv[2]
if mode == "sigterm":
    assert stop_cleanly_on_sigterm()
reg = JobRegistry()

def train(progress):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(512, 256), torch.randint(0, 10, (512,))
    for epoch in range(1000):  # bounded: the parent ends it long before
        for step in range(20):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            progress(epoch / 1000, f"epoch {epoch} step {step}")
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        save_tensors(os.path.join(folder, f"epoch{epoch % 3}.safetensors"), state, version=1)

job = reg.submit("train:toy", train)
end = time.monotonic() + 300
while "epoch 1" not in job.status().message and time.monotonic() < end:
    time.sleep(0.05)
print("training", flush=True)
if mode == "sigterm":
    time.sleep(300)
"""


@pytest.mark.parametrize("mode", ["normal exit", "sigterm"])
def test_a_process_ended_mid_training_cancels_its_jobs_and_exits_0(tmp_path, mode):
    """Before issue 22 both ended in std::terminate (exit status 134) with the job's thread inside torch."""
    import os
    import signal
    import subprocess
    import sys

    from geometry.cache import read_tensors

    script = tmp_path / "train.py"
    script.write_text(_TRAINING_SCRIPT)
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(cache), mode.split()[0]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "training"  # the job is inside its training loop
        if mode == "sigterm":
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "terminate called" not in err
    names = sorted(p.name for p in cache.iterdir())
    assert names and all(n.endswith(".safetensors") and not n.startswith(".") for n in names), names  # no temp file
    for path in cache.iterdir():
        tensors, _ = read_tensors(path, version=1)  # whole and verified (digest) — no partial entry
        assert set(tensors) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_shutdown_cancels_queued_and_running_jobs_and_refuses_new_ones():
    reg = jobs.JobRegistry({"page": 1})
    gate = Gate()
    running = reg.submit("a", gate)
    queued = reg.submit("b", Gate())
    assert gate.started.wait(WAIT)
    stopper = threading.Thread(target=reg.shutdown, kwargs={"timeout": WAIT})
    stopper.start()
    assert queued.wait(WAIT) and queued.state == "cancelled"
    gate.release.set()  # the running job reaches its next progress report and stops there
    stopper.join(WAIT)
    assert running.wait(WAIT) and running.state == "cancelled"
    late = reg.submit("c", Gate())
    assert late.state == "cancelled" and "stopping" in (late.error or "")


# ------------------------------------------------------------------ jobs belong to their sessions (issue 22, item 4)
def test_two_sessions_jobs_neither_can_cancel_the_others():
    reg = jobs.JobRegistry({"page": 2})
    gate_a, gate_b = Gate(), Gate()
    a = reg.submit("study-a", gate_a, owner="alice")
    b = reg.submit("study-b", gate_b, owner="bob")
    assert gate_a.started.wait(WAIT) and gate_b.started.wait(WAIT)
    assert [j.key for j in reg.jobs(owner="alice")] == ["study-a"]  # bob's own work is not listed to alice
    assert not reg.cancel("study-b", owner="alice") and not reg.cancel("study-a", owner="bob")
    assert a.state == b.state == "running" and b.owners == {"bob"}
    assert reg.cancel("study-a", owner="alice")
    gate_a.release.set()
    gate_b.release.set()
    assert a.wait(WAIT) and b.wait(WAIT)
    assert a.state == "cancelled" and b.state == "done"
    reg.shutdown(WAIT)


def test_shared_work_is_cancelled_only_when_no_session_waits_on_it():
    reg = jobs.JobRegistry({"background": 1})
    gate = Gate()
    job = reg.submit("train:net", gate, lane="background", owner="alice")
    assert reg.submit("train:net", Gate(), lane="background", owner="bob") is job  # bob waits on the same work
    assert gate.started.wait(WAIT)
    assert job.owners == {"alice", "bob"}
    assert not reg.cancel("train:net", owner="alice")  # bob still waits: alice only stops waiting
    assert job.owners == {"bob"} and job.state == "running"
    assert reg.cancel("train:net", owner="bob")  # the last one waiting: the work stops
    gate.release.set()
    assert job.wait(WAIT) and job.state == "cancelled"
    other = Gate()
    other.release.set()
    unowned = reg.submit("train:other", other, lane="background")
    assert unowned in reg.jobs(owner="carol")  # shared work nobody waits on is shown to every session
    assert unowned.wait(WAIT) and unowned.state == "done"
    reg.shutdown(WAIT)


def test_a_page_whose_network_trains_shows_the_nearest_ready_one_and_the_progress(monkeypatch, digits_lenet):
    """Issue 20, item 3: choosing an untrained network never blocks a page. The training runs as a job (a fake one
    here, held by a Gate: no network is trained); meanwhile the page draws the nearest trained network (same
    dataset, regime and architecture: digits-lenet for digits-lenet-seed1), says so, and shows the job's progress;
    the sidebar marks the network with its estimated cost. The training runs in the background lane, so a page's
    study submitted meanwhile runs at once."""
    from streamlit.testing.v1 import AppTest

    from geometry import zoo
    from pages.ui import jobs as ui_jobs

    name = "digits-lenet-seed1"
    real_is_cached = zoo.is_cached
    monkeypatch.setattr(zoo, "is_cached", lambda n: n != name and real_is_cached(n))
    gate = Gate()
    monkeypatch.setattr(ui_jobs, "_train", lambda n, *, progress: gate(n, progress=progress))
    monkeypatch.setattr(ui_jobs, "STAND_IN_AFTER_SECONDS", 0.0)  # a digits network stands for a long training
    at = AppTest.from_file(APP, default_timeout=240)
    for k, v in dict(model=name, res=64, seed=3, cv_n=10, cv_m=3).items():
        at.query_params[k] = v
    try:
        at.run()
        switch_page(at, "pages/cross_sections.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert gate.started.wait(WAIT) and gate.args[0][0] == (name,)
        at.run()  # the job has reported its progress now (the first run may draw the box before it starts)
        assert not at.exception, [e.value for e in at.exception]
        infos = " ".join(i.value for i in at.info)
        assert f"**{name} is being trained**" in infos and "this page shows **digits-lenet**" in infos
        bars = [p for p in at.get("progress") if f"training {name}" in p.proto.text]
        assert bars and "a quarter" in bars[0].proto.text
        assert len(at.get("plotly_chart")) == 1  # the section is drawn, on digits-lenet
        (network,) = [s for s in at.selectbox if s.key == "model"]
        (label,) = [o for o in network.options if o.startswith(f"{name} (")]
        assert label.startswith(f"{name} (trains ≈ ") and label.endswith(")"), label
        assert "digits-lenet (trained)" in network.options
        job = jobs.registry().get(f"train:{name}")
        assert job is not None and job.lane == "background" and gate.calls == 1
        # the page lane stays free for the pages' studies while the long training runs (fresh-start finding)
        quick = jobs.registry().submit("quick-study-beside-a-training", lambda *, progress: 7, lane="page")
        assert quick.wait(WAIT) and quick.result == 7 and job.state == "running"
        jobs.registry().forget("quick-study-beside-a-training")
    finally:
        gate.release.set()
        job = jobs.registry().get(f"train:{name}")
        if job is not None:
            job.wait(WAIT)
            jobs.registry().forget(f"train:{name}")  # never leave a fake result under a real network's key


def test_training_estimates_follow_epochs_regime_architecture_and_the_base_network(monkeypatch):
    """The sidebar's "trains ≈ N min" is epochs × seconds per epoch × architecture × regime factor, plus the base
    network of a fine-tuned one while that base is untrained; uploads have no estimate."""
    from geometry import zoo
    from pages.ui import jobs as ui_jobs

    monkeypatch.setattr(
        ui_jobs, "measured_epoch_seconds", lambda dataset, trained=None: None
    )  # nothing timed here: rough
    per_epoch = ui_jobs.EPOCH_SECONDS["mnist"]
    assert ui_jobs.estimated_train_seconds("mnist-lenet") == pytest.approx(ui_jobs.EXPECTED_TRAIN_SECONDS["mnist"])
    nin = ui_jobs.estimated_train_seconds("mnist-nin")
    assert nin == pytest.approx(zoo.ZOO["mnist-nin"].epochs * per_epoch * ui_jobs.ARCHITECTURE_FACTOR["nin"])
    pgd, fgsm = ui_jobs.estimated_train_seconds("mnist-lenet-pgd"), ui_jobs.estimated_train_seconds("mnist-lenet-fgsm")
    assert pgd == pytest.approx(6 * per_epoch * (1 + ui_jobs.PGD_STEP_FACTOR * 10))  # 10 PGD steps, 6 epochs
    assert fgsm < pgd
    monkeypatch.setattr(zoo, "is_cached", lambda n: True)
    cure_alone = ui_jobs.estimated_train_seconds("mnist-lenet-cure")
    monkeypatch.setattr(zoo, "is_cached", lambda n: False)
    assert ui_jobs.estimated_train_seconds("mnist-lenet-cure") == pytest.approx(cure_alone + 300.0)
    assert ui_jobs.estimated_train_seconds("user:mine") is None
    assert ui_jobs.cost_label("mnist-nin", True) == "trained"
    assert ui_jobs.cost_label("mnist-nin", False) == f"trains ≈ {ui_jobs._duration(nin)}, rough"
    assert ui_jobs.estimate_basis("mnist-nin").startswith("a rough estimate")


def test_training_estimates_are_scaled_from_the_trainings_timed_on_this_machine(monkeypatch):
    """Issue 20: once a network of a dataset was trained here, its card's train_seconds sets the seconds per
    LeNet-epoch of that dataset: mnist-lenet timed at 120 s for 4 standard epochs (30 s each) makes mnist-nin (2
    epochs × NiN's 11) ≈ 660 s, said as measured ("scaled from 1 training … timed on this machine"), not "rough";
    a dataset with nothing timed keeps the rough figure."""
    from geometry import zoo
    from pages.ui import jobs as ui_jobs

    cards = {"mnist-lenet": {"train_seconds": 120.0}, "mnist-mlp": {}}  # an old card without a time is skipped
    monkeypatch.setattr(ui_jobs, "trained_names", lambda: set(cards))
    monkeypatch.setattr(ui_jobs.zoo, "card", lambda name: cards.get(name))
    monkeypatch.setattr(ui_jobs, "_MEASURED", {})
    assert zoo.ZOO["mnist-lenet"].epochs == 4 and zoo.ZOO["mnist-nin"].epochs == 2
    assert ui_jobs.measured_epoch_seconds("mnist") == (pytest.approx(30.0), 1)
    nin = ui_jobs.estimated_train_seconds("mnist-nin")
    assert nin == pytest.approx(2 * ui_jobs.ARCHITECTURE_FACTOR["nin"] * 30.0)
    assert ui_jobs.cost_label("mnist-nin", False) == f"trains ≈ {ui_jobs._duration(nin)}"
    assert ui_jobs.estimate_basis("mnist-nin").startswith("scaled from 1 training of mnist networks timed on this")
    assert ui_jobs.measured_epoch_seconds("cifar10") is None
    assert ui_jobs.cost_label("cifar10-lenet", False).endswith(", rough")


def test_first_start_queues_the_networks_other_pages_open_with_in_visiting_order(monkeypatch):
    """After the default network: NiN (Compare), PGD-AT and CURE (Robust training), LMT (Certified), in that order,
    in the background lane, skipping trained ones; MNIST's presence is read once."""
    from pages.ui import jobs as ui_jobs

    seen: list[str] = []
    reads: list[int] = []

    def fake_start(registry, name, train, *, cached, data_available, expected_seconds=None, environ=None):
        if cached() or not data_available():
            return None
        seen.append(name)
        assert expected_seconds == ui_jobs.estimated_train_seconds(name)
        return name

    monkeypatch.setattr(jobs, "start_background_training", fake_start)
    monkeypatch.setattr(ui_jobs, "mnist_available", lambda: reads.append(1) or True)
    monkeypatch.setattr(ui_jobs.zoo, "is_cached", lambda n: n == "mnist-lenet-pgd")
    assert ui_jobs._queue_after_default() == ["mnist-nin", "mnist-lenet-cure", "mnist-lenet-lmt"]
    assert seen == ["mnist-nin", "mnist-lenet-cure", "mnist-lenet-lmt"] and len(reads) == 1
    monkeypatch.setattr(ui_jobs, "mnist_available", lambda: False)
    seen.clear()
    assert ui_jobs._queue_after_default() == [] and seen == []


def test_the_nearest_ready_network_prefers_dataset_then_regime_then_architecture(monkeypatch):
    """What stands in while a network trains: a trained one of its dataset with its regime and architecture first,
    then a digits network (unless the page needs the same dataset: Compare's B), never an excluded one (Compare's A)."""
    from pages.ui import jobs as ui_jobs

    trained = {"digits-lenet", "digits-nin", "digits-lenet-pgd", "mnist-lenet", "mnist-mlp"}
    monkeypatch.setattr(ui_jobs, "trained_names", lambda: set(trained))
    assert ui_jobs.nearest_ready("mnist-nin") == "mnist-lenet"  # same dataset beats same architecture
    assert ui_jobs.nearest_ready("mnist-nin", exclude=("mnist-lenet",)) == "mnist-mlp"
    assert ui_jobs.nearest_ready("mnist-lenet-pgd") == "mnist-lenet"
    assert ui_jobs.nearest_ready("cifar10-nin") == "digits-nin"  # no CIFAR-10 network: digits, same architecture
    assert ui_jobs.nearest_ready("cifar10-lenet") == "digits-lenet"
    assert ui_jobs.nearest_ready("cifar10-nin", same_dataset=True) is None
    assert (
        ui_jobs.nearest_ready("digits-lenet-fgsm") == "digits-lenet"
    )  # no FGSM network: a LeNet, the first in the zoo
    assert ui_jobs.nearest_ready("user:upload") is None
    assert ui_jobs.is_ready("mnist-lenet") and not ui_jobs.is_ready("mnist-nin") and ui_jobs.is_ready("user:upload")


def test_only_long_trainings_get_a_stand_in(monkeypatch):
    """Digits networks (estimated ≤ 82 s) still train in the page with a progress bar; MNIST / CIFAR-10 ones (≥ 300 s
    estimated) get a stand-in; trained networks and uploads never."""
    from geometry import zoo
    from pages.ui import jobs as ui_jobs

    monkeypatch.setattr(ui_jobs, "trained_names", lambda: {"digits-lenet"})
    # the rough figures (nothing timed here): a busy run's own timings would move the digits estimates
    monkeypatch.setattr(ui_jobs, "measured_epoch_seconds", lambda dataset, trained=None: None)
    assert max(ui_jobs.estimated_train_seconds(n) for n in zoo.model_names("digits")) < ui_jobs.STAND_IN_AFTER_SECONDS
    assert not ui_jobs.needs_stand_in("digits-nin") and not ui_jobs.needs_stand_in("digits-lenet")
    assert ui_jobs.needs_stand_in("mnist-lenet") and ui_jobs.needs_stand_in("cifar10-nin")
    assert not ui_jobs.needs_stand_in("user:upload")


def test_a_training_with_no_stand_in_offers_the_digits_networks_meanwhile():
    """Issue 20, item 3 (fresh start): Compare's B = mnist-nin while mnist-lenet, the only trained MNIST network, is A
    has no stand-in; the page offers a button that moves the session to the digits networks (ready in seconds). No
    button for a digits network (it is that dataset already)."""
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st

        from pages.ui import jobs as ui_jobs

        st.session_state.setdefault("dataset", "mnist")
        st.session_state.setdefault("model", "mnist-lenet")
        st.session_state["offered"] = [ui_jobs.fallback_meanwhile(n) for n in ("mnist-nin", "digits-nin", "upload:x")]

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["offered"] == [True, False, False]
    (button,) = at.button
    assert "digits" in button.label
    button.click().run()
    assert (at.session_state["dataset"], at.session_state["model"]) == ("digits", "digits-lenet")


def test_a_failed_study_behind_a_stand_in_is_said_not_retried_in_a_loop():
    """Issue 20, item 3: while a page shows the last finished study in place of its own, the box that watches its
    job reruns the page when the job is done; when the job fails it says so (with the job's error) and stays, instead
    of rerunning the page into a retry of a job that fails again."""
    from streamlit.testing.v1 import AppTest

    from geometry.errors import AtlasError

    def fails(*, progress):
        raise AtlasError("ξ is undefined here")

    registry = jobs.registry()
    job = registry.submit("test-study-that-fails", fails, lane="page")
    assert job.wait(WAIT) and job.state == "failed"

    def script():
        from pages.ui import jobs as ui_jobs

        ui_jobs.study_box("test-study-that-fails", "Some study", "net-a", "net-b", ["n 20 (chosen: 40)"])

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    (error,) = at.error
    assert "Some study of net-a stopped: ξ is undefined here" in error.value and "net-b's result" in error.value
    assert not at.info and registry.get("test-study-that-fails") is job  # not resubmitted
    registry.forget("test-study-that-fails")
