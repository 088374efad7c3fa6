"""The server's warm-up (issue 22, item 2: fair share): after :func:`pages.ui.upload.warm_up_server`, drawing the
upload form and a whole upload — register, a prediction in the worker, a forward that breaks its budget and the
held refusal after it — import no module in the server process. A module imported while sessions are open costs
each of them a pass of Streamlit's source watcher over all of ``sys.modules`` (geometry/runtime/uploads.py,
``preload``); the first hostile upload of the fair-share benchmark used to cost the server seconds of CPU so.

The import checks run in a fresh interpreter (this test process has imported everything already), once without
the warm-up (the control: the upload path does import modules there) and once with it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest
from torch import nn

from pages.ui import upload as upload_ui

ROOT = Path(__file__).resolve().parent.parent


class _ZeroLoop(nn.Module):
    """The zero-pixel CPU bomb of tests/test_workers.py: cheap on the probe's random pixels, ~1e8 iterations when
    the batch holds exact zeros (as every real digit does)."""

    def forward(self, x):
        out = x.flatten(1)[:, :10]
        if bool((x == 0).any()):
            for _ in range(100000000):
                out = out + 1.0
        return out


#: run in a fresh interpreter: import the app as the server does, optionally warm up, then do what the first
#: (hostile) upload does in the server and print the modules that were imported by it, as JSON
SCRIPT = r"""
import json, sys
import torch
import app  # the server's own imports (pages, geometry, streamlit)
from pages.ui import upload as upload_ui
from geometry.errors import AtlasError
from geometry.runtime import uploads
from geometry.runtime.workers import WorkerLimits, WorkerPool

data = open(sys.argv[2], "rb").read()  # _ZeroLoop below, as TorchScript
uploads.set_upload_pool(WorkerPool(WorkerLimits(cpu_seconds=60, deadline_seconds=300, forward_floor_seconds=1.0)))
if sys.argv[1] == "warm":
    upload_ui.warm_up_server(block=True)
before = set(sys.modules)
upload_ui.upload_architectures()  # the form's list
from streamlit.string_util import extract_leading_emoji
extract_leading_emoji("Upload a model to inspect — it appears in every page")  # a label with a non-ASCII dash
clf = uploads.register(data, owner="s1", display="bomb.pt", input_shape=(1, 8, 8))
print(clf.predict(torch.rand(3, 1, 8, 8)).tolist(), file=sys.stderr)  # no zeros: answered
refused = []
for _ in range(2):  # the forward on zeros breaks its budget; the second call is the hold's refusal
    try:
        clf.predict(torch.zeros(2, 1, 8, 8))
    except AtlasError as exc:
        refused.append(str(exc)[:80])
uploads.upload_pool().close()
print(json.dumps({"new": sorted(set(sys.modules) - before), "refused": refused}))
"""


def _new_modules(mode: str, bomb: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(bomb)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_after_the_warm_up_the_upload_path_imports_nothing_in_the_server(tmp_path):
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(_ZeroLoop().eval()), buf)
    bomb = tmp_path / "bomb.pt"
    bomb.write_bytes(buf.getvalue())
    cold = _new_modules("cold", bomb)
    assert cold["new"], "control: without the warm-up the upload path imports modules in the server"
    assert any(m.startswith("torchvision") for m in cold["new"])  # the form's architecture list
    assert any(m.startswith("multiprocessing.") for m in cold["new"])  # the worker's start
    warm = _new_modules("warm", bomb)
    assert warm["new"] == [], f"imported by the upload path after the warm-up: {warm['new']}"
    for run in (cold, warm):  # the same path ran: a budget broken, then the hold's refusal
        assert len(run["refused"]) == 2
        assert "is held back" in run["refused"][1]


def test_warm_up_runs_once_however_many_sessions_ask(monkeypatch):
    calls = []
    monkeypatch.setitem(upload_ui._WARM_UP, "thread", None)
    monkeypatch.setattr(upload_ui, "_warm_up", lambda: calls.append(threading.get_native_id()))
    threads = [threading.Thread(target=upload_ui.warm_up_server) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = upload_ui.warm_up_server(block=True)
    assert upload_ui.warm_up_server() is first
    assert len(calls) == 1
    assert calls[0] != threading.get_native_id()  # in its own thread, not a page run's


def test_the_apps_first_run_starts_the_warm_up(monkeypatch):
    calls = []
    monkeypatch.setitem(upload_ui._WARM_UP, "thread", None)
    monkeypatch.setattr(upload_ui, "_warm_up", lambda: calls.append(1))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=400)
    at.run()
    upload_ui.warm_up_server(block=True)
    assert calls == [1]
    at.run()  # a second run does not start it again
    assert calls == [1]
